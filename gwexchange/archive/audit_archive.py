"""What an auditor reads: one node's archive, from its home or from an exported file (``gwx audit export``).

The export file is a stored ZIP, after the envelope package (``gwexchange/envelope/package.py``)::

    mimetype                          "application/vnd.gwexchange.audit+zip", stored first
    manifest.json                     {"format": 1, "node", "created", "snapshot", "log": {"size", "root"}}
    log/format, log/commit            the Merkle log (``archive/log.py``) up to its last commit point …
    log/entries, log/offsets          … cut at the committed size, so a log being appended to exports whole
    log/level-00 … log/level-62
    log/heads                         the tree heads the node signed, up to the committed size
    peer-heads                        the heads the node received from its peers, one canonical line each
    directories/directory-N.xml       the signed directories the node held (N from 1)
    root.crt, crls/crl-N.pem          the trust the node was configured with
    inbox/<department>/<id>.xml       the exact signed bytes of every document delivered to a department here

Reading an export is hostile-input safe: the member count and the central directory are bounded before
``zipfile`` reads them; only the names above are accepted (so no name is ever a path: nothing is extracted under
a member's name); every member is stored, not encrypted, within its size limit, and no two members overlap (an
overlapping or inflating "zip bomb" is refused). The log members are copied to a private temporary folder, where
``verify_log`` reads them; the rest is read into memory one bounded member at a time.

**A live node.** The daemon appends while the auditor reads, so a home is never audited in place: its log is
copied up to the commit point read first (every file is only appended to, so the prefix the commit names is
stable), with the heads the node signed up to then. Heads signed after the snapshot began, over entries it does
not hold, are left out; inbox documents filed after it too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Self

from gwexchange import zipsafe
from gwexchange.archive.log import (
    COMMIT_FILE,
    ENTRIES_FILE,
    FORMAT_FILE,
    HEADS_FILE,
    LENGTH_BYTES,
    MAX_HEAD_LINE,
    OFFSET_BYTES,
    CommitPoint,
    commit_record,
    level_file,
    read_commit,
)
from gwexchange.archive.merkle import HASH_SIZE, MAX_LEVELS
from gwexchange.archive.treehead import SignedTreeHead, parse_head_line, parse_head_time
from gwexchange.codes import DEPARTMENT_CODE, is_node_id
from gwexchange.errors import ConfigError, GwxError, InputError, VerificationError
from gwexchange.network.directory import MAX_DIRECTORY_BYTES
from gwexchange.xmlsafe import DEFAULT_MAX_BYTES

MIMETYPE = "application/vnd.gwexchange.audit+zip"
MANIFEST = "manifest.json"
FORMAT = 1
PEER_HEADS = "peer-heads"
LOG_PREFIX = "log/"

MAX_MEMBERS = 100_000
"""Members of one export: the log's files, directories, CRLs and up to about this many inbox documents."""
MAX_CENTRAL_DIRECTORY = 24 * 1024 * 1024
"""``zipfile`` reads central directory records until this many bytes are used up, whatever the count claims."""
MAX_LOG_FILE = 1 << 40
MAX_HEADS_FILE = 1 << 30
MAX_MANIFEST = 64 * 1024
MAX_ROOT = 64 * 1024
MAX_CRL = 64 * 1024 * 1024
MAX_DIRECTORIES = 256
MAX_CRLS = 64
MAX_HELD_IN_MEMORY = 256 * 1024 * 1024
"""The directories and CRLs are read whole: together no more than this."""
MAX_DOCUMENT = DEFAULT_MAX_BYTES
LATE_HEAD_MARGIN = timedelta(minutes=1)
"""A head over more entries than the snapshot holds is the daemon's next one if signed this close to the snapshot
or later (its time is taken just before the commit it covers)."""

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_LOG_NAMES = frozenset(
    {FORMAT_FILE, COMMIT_FILE, ENTRIES_FILE, "offsets", HEADS_FILE, *(level_file(lv) for lv in range(MAX_LEVELS))}
)
_DIRECTORY_MEMBER = re.compile(r"directories/directory-([1-9][0-9]{0,2})\.xml")
_CRL_MEMBER = re.compile(r"crls/crl-([1-9][0-9]{0,1})\.pem")
_INBOX_MEMBER = re.compile(rf"inbox/(?P<department>{DEPARTMENT_CODE.pattern})/(?P<id>{_UUID})\.xml")
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class InboxDocument:
    """A document delivered to ``department`` here: the exact signed bytes the node filed."""

    department: str
    message_id: str
    document_xml: bytes


class NodeSource(ABC):
    """One node's archive as the audit reads it; a context manager (it owns a temporary copy of the log).

    ``log_dir`` is a consistent copy of the log (``verify_log`` reads it); ``peer_heads`` the file of peer heads
    (None if the node kept none); ``snapshot`` when the copy began (heads the node signed later are not in it).
    """

    node_id: str
    label: str
    kind: str
    log_dir: Path
    peer_heads: Path | None
    directories: tuple[bytes, ...]
    root_pem: bytes
    crl_pems: tuple[bytes, ...]
    snapshot: datetime
    _tmp: Path | None = None

    @abstractmethod
    def inbox(self) -> Iterator[InboxDocument]:
        """Every document delivered here, one at a time."""

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- copying a log up to its commit point ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogCut:
    """How much of each log file belongs to the snapshot: ``(name, bytes)``; the commit record as read."""

    commit: CommitPoint | None
    commit_bytes: bytes | None
    lengths: tuple[tuple[str, int], ...]


def _plan_log_copy(log_dir: Path, snapshot: datetime) -> LogCut:
    """The prefix of each file of the log in ``log_dir`` that its last commit covers (read the commit first).

    A damaged or missing commit record is not repaired or hidden: the files are then taken whole, and the audit
    reports what is wrong with them.
    """
    if not (log_dir / FORMAT_FILE).is_file() and not (log_dir / ENTRIES_FILE).is_file():
        raise ConfigError(f"{log_dir} holds no log (the node keeps its Merkle log in <home>/log)")
    commit_bytes: bytes | None
    try:
        commit = read_commit(log_dir)
        commit_bytes = None if commit is None else commit_record(commit.state, commit.entries_end)
    except VerificationError:
        commit = None
        commit_bytes = read_small(log_dir / COMMIT_FILE, 4096)
    sizes = {e.name: e.stat().st_size for e in os.scandir(log_dir) if e.is_file() and e.name in _LOG_NAMES}
    lengths: list[tuple[str, int]] = []
    for name in sorted(sizes):
        if name in (COMMIT_FILE, HEADS_FILE):
            continue
        size = sizes[name]
        if commit is not None and name != FORMAT_FILE:
            n = commit.size
            if name == ENTRIES_FILE:
                size = min(size, commit.entries_end)
            elif name == "offsets":
                size = min(size, n * OFFSET_BYTES)
            elif name.startswith("level-"):
                records = n >> int(name[6:])
                if records == 0:
                    continue
                size = min(size, records * HASH_SIZE)
        lengths.append((name, size))
    if HEADS_FILE in sizes:
        lengths.append((HEADS_FILE, _heads_prefix(log_dir / HEADS_FILE, commit, snapshot)))
    return LogCut(commit, commit_bytes, tuple(lengths))


def _heads_prefix(path: Path, commit: CommitPoint | None, snapshot: datetime) -> int:
    """Bytes of head lines, up to the first well-formed head signed after the snapshot over entries it does not
    hold (the daemon's next head). Damaged lines are kept: the audit must see them; so is a torn last line unless
    the file was written just now (a head being appended)."""
    limit = commit.size if commit is not None else None
    at_rest = datetime.fromtimestamp(path.stat().st_mtime, UTC) < snapshot - LATE_HEAD_MARGIN
    kept = 0
    with path.open("rb") as f:
        for raw in head_lines(f):
            if not raw.endswith(b"\n") and not at_rest:
                break  # a head being written now; a file at rest keeps its torn line, for the audit to report
            if limit is not None:
                head = parse_head(raw[:-1])
                if head is not None and head.size > limit and head.timestamp >= snapshot - LATE_HEAD_MARGIN:
                    break
            kept += len(raw)
    return kept


def parse_head(raw: bytes) -> SignedTreeHead | None:
    """``treehead.parse_head_line``, or None for a line that is not a head — whatever is wrong with it, even JSON
    nested too deeply for the parser (a RecursionError, which ``parse_head_line`` lets through)."""
    try:
        return parse_head_line(raw)
    except (GwxError, RecursionError):
        return None


def defuse_heads(path: Path) -> None:
    """In a private copy of a heads file, replace each line ``parse_head_line`` cannot even try to parse (JSON
    nested too deeply: it raises RecursionError, and so would ``verify_log``) with a line that is plainly
    damaged, so the audit reports it at its line instead of stopping."""
    if not path.is_file():
        return
    with path.open("rb") as f:
        lines = list(head_lines(f))
    bad = False
    for number, raw in enumerate(lines):
        try:
            parse_head_line(raw.rstrip(b"\n"))
        except RecursionError:
            lines[number] = b"damaged: JSON nested too deeply\n"
            bad = True
        except GwxError:
            pass
    if bad:
        path.write_bytes(b"".join(lines))


def head_lines(f: BinaryIO) -> Iterator[bytes]:
    """The lines of a heads file, each with its newline (the last one maybe without); a line longer than
    ``MAX_HEAD_LINE`` comes in pieces of that size, none of which parses — never a gigabyte in memory at once."""
    while raw := f.readline(MAX_HEAD_LINE):
        yield raw


def complete_lines(path: Path, limit: int) -> int:
    """Bytes of ``path`` up to the end of its last complete line (a peer head being appended is left out)."""
    size = path.stat().st_size
    if size > limit:
        raise ConfigError(f"{path} is larger than {limit} bytes")
    with path.open("rb") as f:
        data = f.read(size)
    return data.rfind(b"\n") + 1


def copy_prefix(src: Path, length: int, out: BinaryIO) -> None:
    """Copy the first ``length`` bytes of ``src`` to ``out``; the file must still hold them."""
    remaining = length
    with src.open("rb") as f:
        while remaining:
            chunk = f.read(min(_COPY_CHUNK, remaining))
            if not chunk:
                raise ConfigError(f"{src} became shorter while it was copied")
            out.write(chunk)
            remaining -= len(chunk)


def read_small(path: Path, limit: int) -> bytes:
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"{path} is larger than {limit} bytes")
    return data


def snapshot_log(log_dir: Path, dest: Path, snapshot: datetime) -> LogCut:
    """Copy the committed prefix of the log in ``log_dir`` to the new folder ``dest``."""
    cut = _plan_log_copy(log_dir, snapshot)
    dest.mkdir(parents=True)
    for name, length in cut.lengths:
        with (dest / name).open("wb") as out:
            copy_prefix(log_dir / name, length, out)
    if cut.commit_bytes is not None:
        (dest / COMMIT_FILE).write_bytes(cut.commit_bytes)
    for name in (ENTRIES_FILE, "offsets"):  # a log nothing was appended to yet has none: it is empty
        (dest / name).touch()
    return cut


class ArchiveSource(NodeSource):
    """An export file, its shape checked before anything in it is read (see the module docstring)."""

    def __init__(self, path: Path, *, label: str | None = None) -> None:
        self.path = path
        self.label = label or str(path)
        self.kind = "archive"
        self._zip, infos = zipsafe.open_checked(
            path,
            max_members=MAX_MEMBERS,
            max_directory_bytes=MAX_CENTRAL_DIRECTORY,
            refuse=self._refuse,
            unreadable=lambda e: InputError(f"{path} is not an audit archive: {e}"),
        )
        try:
            self._check(infos)
            self._extract()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._zip.close()
        super().close()

    def _refuse(self, why: str) -> InputError:
        return InputError(f"{self.path} is refused as an audit archive: {why}")

    def _check(self, infos: list[zipfile.ZipInfo]) -> None:
        names = {info.filename for info in infos}
        directories: dict[int, str] = {}
        crls: dict[int, str] = {}
        self._inbox: list[tuple[str, str, str]] = []
        self._log: list[str] = []
        for info in infos:
            name = info.filename
            if info.flag_bits & 0x1:
                raise self._refuse(f"member {name!r} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise self._refuse(f"member {name!r} is compressed; an audit archive stores its members as they are")
            limit = self._limit(name, directories, crls)
            if info.file_size > limit:
                raise self._refuse(f"member {name!r} is larger than {limit} bytes")
        if len(directories) > MAX_DIRECTORIES or len(crls) > MAX_CRLS:
            raise self._refuse("too many directories or CRLs")
        held = sum(self._zip.getinfo(name).file_size for name in (*directories.values(), *crls.values()))
        if held > MAX_HELD_IN_MEMORY:
            raise self._refuse(f"its directories and CRLs together are larger than {MAX_HELD_IN_MEMORY} bytes")
        for what, found in (("directories/directory", directories), ("crls/crl", crls)):
            if sorted(found) != list(range(1, len(found) + 1)):
                raise self._refuse(f"the {what}-N members are not numbered 1, 2, 3, …")
        for required in ("mimetype", MANIFEST, "root.crt", LOG_PREFIX + ENTRIES_FILE):
            if required not in names:
                raise self._refuse(f"no {required} member")
        if not directories:
            raise self._refuse("no directory")
        self._check_layout(infos)
        if self._read("mimetype", 100) != MIMETYPE.encode("ascii"):
            raise self._refuse("not a gwexchange audit archive (wrong mimetype)")
        self._manifest()
        self.directories = tuple(
            self._read(directories[n], MAX_DIRECTORY_BYTES) for n in range(1, len(directories) + 1)
        )
        self.crl_pems = tuple(self._read(crls[n], MAX_CRL) for n in range(1, len(crls) + 1))
        self.root_pem = self._read("root.crt", MAX_ROOT)

    def _limit(self, name: str, directories: dict[int, str], crls: dict[int, str]) -> int:
        if name == "mimetype":
            return 100
        if name == MANIFEST:
            return MAX_MANIFEST
        if name == "root.crt":
            return MAX_ROOT
        if name == PEER_HEADS:
            return MAX_HEADS_FILE
        if name.startswith(LOG_PREFIX) and name[len(LOG_PREFIX) :] in _LOG_NAMES:
            self._log.append(name)
            return MAX_HEADS_FILE if name.endswith("/" + HEADS_FILE) else MAX_LOG_FILE
        if m := _DIRECTORY_MEMBER.fullmatch(name):
            directories[int(m[1])] = name
            return MAX_DIRECTORY_BYTES
        if m := _CRL_MEMBER.fullmatch(name):
            crls[int(m[1])] = name
            return MAX_CRL
        if m := _INBOX_MEMBER.fullmatch(name):
            self._inbox.append((name, m["department"], m["id"]))
            return MAX_DOCUMENT
        raise self._refuse(f"unexpected member {name!r}")

    def _check_layout(self, infos: list[zipfile.ZipInfo]) -> None:
        """No two members share bytes and none reaches into the central directory: what a stored member says it
        holds is all it can hand out, so reading the archive never yields more than the file's size."""
        end_of_data = self._zip.start_dir  # the central directory's offset
        ordered = sorted(infos, key=lambda i: i.header_offset)
        for info, following in zip(ordered, [*ordered[1:], None], strict=True):
            end = info.header_offset + 30 + len(info.orig_filename.encode("utf-8")) + info.compress_size
            limit = following.header_offset if following is not None else end_of_data
            if end > limit:
                raise self._refuse(f"member {info.filename!r} overlaps another member (a zip bomb)")

    def _manifest(self) -> None:
        try:
            data = json.loads(self._read(MANIFEST, MAX_MANIFEST).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise self._refuse(f"manifest.json does not parse ({e})") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise self._refuse(f"manifest.json is not a format {FORMAT} manifest")
        if set(data) != {"format", "node", "created", "snapshot", "log"}:
            raise self._refuse("manifest.json does not have exactly the keys format, node, created, snapshot, log")
        node = data["node"]
        if not is_node_id(node):
            raise self._refuse(f"manifest.json names no valid node ({node!r})")
        try:
            self.snapshot = parse_head_time(data["snapshot"])
            self.created = parse_head_time(data["created"])
        except InputError as e:
            raise self._refuse(f"manifest.json: {e}") from e
        self.node_id = node

    def _read(self, name: str, limit: int) -> bytes:
        try:
            info = self._zip.getinfo(name)
            if info.file_size > limit:
                raise self._refuse(f"member {name!r} is larger than {limit} bytes")
            with self._zip.open(info) as member:
                return member.read(limit + 1)
        except zipsafe.FAULTS as e:  # a CRC mismatch or a damaged local header
            raise self._refuse(f"member {name} is damaged ({e})") from e

    def _extract(self) -> None:
        """Copy the log and the peer heads to a private folder, by names of our own making."""
        self._tmp = Path(tempfile.mkdtemp(prefix="gwx-audit-"))
        self.log_dir = self._tmp / "log"
        self.log_dir.mkdir()
        for name in self._log:
            self._copy(name, self.log_dir / name[len(LOG_PREFIX) :])
        defuse_heads(self.log_dir / HEADS_FILE)
        self.peer_heads = None
        if PEER_HEADS in self._zip.NameToInfo:
            self.peer_heads = self._tmp / PEER_HEADS
            self._copy(PEER_HEADS, self.peer_heads)

    def _copy(self, name: str, target: Path) -> None:
        try:
            with self._zip.open(name) as member, target.open("xb") as out:
                shutil.copyfileobj(member, out, _COPY_CHUNK)
        except zipsafe.FAULTS as e:
            if isinstance(e, FileExistsError):
                raise
            raise self._refuse(f"member {name} is damaged ({e})") from e

    def inbox(self) -> Iterator[InboxDocument]:
        for name, department, message_id in self._inbox:
            yield InboxDocument(department, message_id, self._read(name, MAX_DOCUMENT))


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a file (an export) rather than a node home."""
    return path.is_file()


def iter_entries(log_dir: Path, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
    """``(index, entry)`` of the entries file of a log copy, until the first incomplete record (or ``limit``)."""
    path = log_dir / ENTRIES_FILE
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    with path.open("rb", buffering=_COPY_CHUNK) as f:
        pos = index = 0
        while limit is None or index < limit:
            header = f.read(LENGTH_BYTES)
            length = int.from_bytes(header)
            if len(header) < LENGTH_BYTES or length == 0 or length > size - pos - LENGTH_BYTES:
                return
            yield index, f.read(length)
            pos += LENGTH_BYTES + length
            index += 1


__all__ = [
    "FORMAT",
    "LATE_HEAD_MARGIN",
    "LOG_PREFIX",
    "MANIFEST",
    "MAX_CENTRAL_DIRECTORY",
    "MAX_CRL",
    "MAX_CRLS",
    "MAX_DIRECTORIES",
    "MAX_DOCUMENT",
    "MAX_HEADS_FILE",
    "MAX_HELD_IN_MEMORY",
    "MAX_LOG_FILE",
    "MAX_MANIFEST",
    "MAX_MEMBERS",
    "MAX_ROOT",
    "MIMETYPE",
    "PEER_HEADS",
    "ArchiveSource",
    "InboxDocument",
    "LogCut",
    "NodeSource",
    "complete_lines",
    "copy_prefix",
    "defuse_heads",
    "head_lines",
    "is_archive",
    "iter_entries",
    "parse_head",
    "read_small",
    "snapshot_log",
]
