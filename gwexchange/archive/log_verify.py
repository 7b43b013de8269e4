"""Auditing a node's Merkle log (``log``) from its files alone, trusting none of its stored hashes.

``verify_log`` reads a log directory without trusting any stored hash: it recomputes every leaf
hash from the entries and the whole tree from those, compares them with every stored record, and checks every
stored tree head — its signature through the trust policy, its place in the sequence (times strictly
increasing, sizes never decreasing) and its root against the root recomputed at its size. Two heads whose roots
both equal the recomputed ones are consistent with each other, so this also checks every successive pair. The
report names each entry, hash record and head that failed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from gwexchange.archive.log import (
    ENTRIES_FILE,
    FORMAT_FILE,
    FORMAT_LINE,
    HEADS_FILE,
    LENGTH_BYTES,
    MAX_HEAD_LINE,
    OFFSET_BYTES,
    OFFSETS_FILE,
    READ_BUFFER,
    CommitPoint,
    level_file,
    read_commit,
)
from gwexchange.archive.merkle import EMPTY_ROOT, HASH_SIZE, MAX_LEVELS, TreeState, node_hash
from gwexchange.archive.treehead import SignedTreeHead, parse_head_line, verify_tree_head
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.errors import ConfigError, GwxError, VerificationError

_sha256 = hashlib.sha256  # bound once: the audit hashes every entry and node


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing ``verify_log`` found wrong.

    ``kind`` is one of ``entry`` (the entry at ``index`` does not match its stored leaf hash: one of the two was
    changed), ``hash`` (a stored interior node, ``level`` and ``index``, differs from the tree the entries
    give), ``offset`` (``index``), ``tail`` (bytes after the last complete entry: an interrupted append, or a
    removal), ``file`` (a file missing, extra or too long), ``commit`` (the commit record) and ``head``
    (``index`` is the line of the ``heads`` file, from 0).
    """

    kind: str
    index: int | None
    message: str
    level: int | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class LogReport:
    """What ``verify_log`` found: the log as its entries say it is, and every problem (``ok`` if none)."""

    directory: Path
    size: int  # complete entries read
    root: bytes  # the root recomputed from the entries alone
    committed: TreeState | None
    heads: int  # tree heads read
    signatures_checked: bool
    problems: tuple[Problem, ...]
    problems_not_listed: int = 0  # beyond ``max_problems``

    @property
    def ok(self) -> bool:
        return not self.problems

    def entries_failed(self) -> tuple[int, ...]:
        return tuple(p.index for p in self.problems if p.kind == "entry" and p.index is not None)

    def heads_failed(self) -> tuple[int, ...]:
        return tuple(sorted({p.index for p in self.problems if p.kind == "head" and p.index is not None}))

    def raise_on_problems(self) -> LogReport:
        """This report if ``ok``; otherwise a ``VerificationError`` listing the first problems."""
        if self.ok:
            return self
        count = len(self.problems) + self.problems_not_listed
        listed = "; ".join(p.message for p in self.problems[:5])
        raise VerificationError(f"the log in {self.directory} failed verification ({count} problems): {listed}")

    def __str__(self) -> str:
        lines = [
            f"log {self.directory}: {self.size} entries, root {self.root.hex()}, {self.heads} tree heads"
            + ("" if self.signatures_checked else " (signatures not checked)")
        ]
        lines += [f"  {p.kind}: {p.message}" for p in self.problems]
        if self.problems_not_listed:
            lines.append(f"  … and {self.problems_not_listed} more problems")
        lines.append("  verified" if self.ok else "  FAILED")
        return "\n".join(lines)


@dataclass
class _Findings:
    limit: int
    problems: list[Problem] = field(default_factory=list)
    not_listed: int = 0

    def add(self, kind: str, index: int | None, message: str, level: int | None = None) -> None:
        if len(self.problems) < self.limit:
            self.problems.append(Problem(kind, index, message, level))
        else:
            self.not_listed += 1


class _Heads:
    """The ``heads`` file read one line at a time: each head parsed, signature checked, order checked."""

    def __init__(
        self, path: Path, findings: _Findings, trust: TrustPolicy | None, node_id: str | None, at: datetime | None
    ) -> None:
        self._findings = findings
        self._trust, self._node_id, self._at = trust, node_id, at
        self._file: BinaryIO | None = path.open("rb") if path.exists() else None
        self._line = -1
        self._previous: SignedTreeHead | None = None
        self.count = 0
        self.next: tuple[int, SignedTreeHead] | None = None
        self.advance()

    def advance(self) -> None:
        """Move ``next`` to the following well-formed, correctly ordered head (problems reported on the way)."""
        self.next = None
        while self._file is not None:
            raw = self._file.readline(MAX_HEAD_LINE)
            if not raw:
                self._file.close()
                self._file = None
                return
            self._line += 1
            self.count += 1
            line = self._line
            if len(raw) == MAX_HEAD_LINE and not raw.endswith(b"\n"):  # never held whole: skipped to its end
                while (rest := self._file.readline(MAX_HEAD_LINE)) and not rest.endswith(b"\n"):
                    pass
                self._findings.add("head", line, f"tree head {line} is damaged: longer than {MAX_HEAD_LINE} bytes")
                continue
            if not raw.endswith(b"\n"):
                self._findings.add("head", line, f"tree head {line} is cut off (the heads file ends mid-line)")
                continue
            try:
                head = parse_head_line(raw[:-1])
            except GwxError as e:
                self._findings.add("head", line, f"tree head {line} is damaged: {e}")
                continue
            if not self._acceptable(line, head):
                continue
            self._previous = head
            self.next = (line, head)
            return

    def _acceptable(self, line: int, head: SignedTreeHead) -> bool:
        what = f"tree head {line} (size {head.size}, {head.time_text})"
        node = self._node_id
        if node is None and self._previous is not None:
            node = self._previous.node_id
        if node is not None and head.node_id != node:
            self._findings.add("head", line, f"{what} was signed as node {head.node_id}, not {node}")
            return False
        if self._trust is not None:
            try:
                verify_tree_head(head, self._trust, at=self._at)
            except GwxError as e:
                self._findings.add("head", line, f"{what}: signature not valid: {e}")
                return False
        previous = self._previous
        if previous is not None:
            if head.timestamp <= previous.timestamp:
                self._findings.add("head", line, f"{what} is not later than the head before it")
                return False
            if head.size < previous.size:
                self._findings.add("head", line, f"{what} is smaller than the head before it ({previous.size})")
                return False
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _open_reader(path: Path, size: int) -> BinaryIO:
    """A buffered reader with a buffer no larger than the file (small logs are audited often, in tests)."""
    return path.open("rb", buffering=max(4096, min(READ_BUFFER, size)))


def _fold(peaks: list[bytes]) -> bytes:
    if not peaks:
        return EMPTY_ROOT
    h = peaks[-1]
    for p in reversed(peaks[:-1]):
        h = node_hash(p, h)
    return h


class _Audit:
    """One pass over a log directory for ``verify_log``: entries → leaf hashes → tree, compared as it goes."""

    def __init__(self, directory: Path, findings: _Findings, heads: _Heads, commit: CommitPoint | None) -> None:
        self.directory = directory
        self.findings = findings
        self.heads = heads
        self.commit = commit
        self.files = {e.name: e.stat().st_size for e in os.scandir(directory) if e.is_file()}
        self.readers: list[BinaryIO | None] = []
        for level in range(MAX_LEVELS):
            size = self.files.get(level_file(level))
            self.readers.append(None if size is None else _open_reader(directory / level_file(level), size))
        self.missing: set[int] = set()
        self.peaks: list[bytes] = []
        self.tainted: list[bool] = []  # whether a peak covers an entry that failed its leaf hash
        self.commit_seen: tuple[int, bytes] | None = None
        self.size = 0

    def stored(self, level: int) -> bytes:
        """The next record of hash level ``level``, or b"" once it has run out (reported by ``record_missing``)."""
        f = self.readers[level]
        return f.read(HASH_SIZE) if f is not None else b""

    def record_missing(self, level: int, index: int) -> None:
        if level not in self.missing:
            self.missing.add(level)
            self.findings.add(
                "file", index, f"{level_file(level)} ends before record {index}: hashes are missing", level=level
            )

    def check_heads(self, size: int) -> None:
        heads = self.heads
        while heads.next is not None and heads.next[1].size == size:
            line, head = heads.next
            root = _fold(self.peaks)
            if head.root_hash != root:
                self.findings.add(
                    "head",
                    line,
                    f"tree head {line} (size {size}, {head.time_text}) says root {head.root_hash.hex()}, but the "
                    f"entries give {root.hex()} at that size: the head is from another history, or entries "
                    "below it were changed",
                )
            heads.advance()

    def add_leaf(self, index: int, data: bytes) -> None:
        """Hash entry ``index``, fold it into the tree, and compare each hash it completes with the stored one."""
        h = _sha256(b"\x00" + data).digest()
        stored = self.stored(0)
        bad = False
        if stored != h:
            if len(stored) != HASH_SIZE:
                self.record_missing(0, index)
            else:
                bad = True
                self.findings.add(
                    "entry",
                    index,
                    f"entry {index} does not match its stored leaf hash: the entry or the hash was changed",
                )
        peaks, tainted = self.peaks, self.tainted
        level, j = 0, index
        while j & 1:
            h = _sha256(b"\x01" + peaks.pop() + h).digest()
            bad = tainted.pop() or bad
            level += 1
            j >>= 1
            stored = self.stored(level)
            if stored != h:
                if len(stored) != HASH_SIZE:
                    self.record_missing(level, j)
                elif not bad:  # a stored node wrong over entries that are right: the hash file was changed
                    first = j << level
                    self.findings.add(
                        "hash",
                        first,
                        f"the stored hash of entries {first}–{first + (1 << level) - 1} "
                        f"({level_file(level)}, record {j}) differs from the one the entries give",
                        level=level,
                    )
        peaks.append(h)
        tainted.append(bad)

    def read_entries(self, entries: BinaryIO, offsets: BinaryIO | None) -> None:
        e_size = os.fstat(entries.fileno()).st_size
        read = entries.read
        heads = self.heads
        commit_size = self.commit.size if self.commit is not None else -1
        pos = index = 0
        while True:
            if heads.next is not None and heads.next[1].size == index:
                self.check_heads(index)
            if index == commit_size:
                self.commit_seen = (pos, _fold(self.peaks))
            header = read(LENGTH_BYTES)
            if not header:
                break
            length = int.from_bytes(header)
            if len(header) < LENGTH_BYTES or length == 0 or length > e_size - pos - LENGTH_BYTES:
                self.findings.add(
                    "tail",
                    index,
                    f"the entries file has {e_size - pos} bytes after entry {index - 1} that are not a complete "
                    "entry (an interrupted append — reopening the log removes it — or entries removed)",
                )
                break
            data = read(length)
            if offsets is not None:
                stored_offset = offsets.read(OFFSET_BYTES)
                if len(stored_offset) < OFFSET_BYTES:
                    self.findings.add("file", index, f"{OFFSETS_FILE} ends before entry {index}")
                    offsets = None
                elif int.from_bytes(stored_offset) != pos:
                    self.findings.add("offset", index, f"the stored offset of entry {index} is wrong")
            self.add_leaf(index, data)
            pos += LENGTH_BYTES + length
            index += 1
        self.size = index
        if offsets is not None and offsets.read(1):
            self.findings.add("file", None, f"{OFFSETS_FILE} is longer than the {index} entries need")

    def finish(self) -> None:
        n = self.size
        while self.heads.next is not None:
            line, head = self.heads.next
            self.findings.add(
                "head",
                line,
                f"tree head {line} ({head.time_text}) covers {head.size} entries, but the log has only {n}: "
                "entries were removed",
            )
            self.heads.advance()
        for level, f in enumerate(self.readers):
            if f is not None and level not in self.missing and f.read(1):
                self.findings.add("file", None, f"{level_file(level)} has more records than {n} entries need", level)
        commit = self.commit
        if commit is not None:
            if self.commit_seen is None:
                self.findings.add("commit", None, f"the log was committed at {commit.size} entries but has only {n}")
            elif self.commit_seen != (commit.entries_end, commit.root):
                self.findings.add(
                    "commit", None, f"the entries do not give the end and root of the commit at size {commit.size}"
                )

    def close(self) -> None:
        self.heads.close()
        for f in self.readers:
            if f is not None:
                f.close()


def verify_log(
    directory: Path,
    *,
    trust: TrustPolicy | None,
    node_id: str | None = None,
    at: datetime | None = None,
    max_problems: int = 1000,
) -> LogReport:
    """Audit the log in ``directory`` from its entries up, trusting no stored hash; see the module docstring.

    ``trust`` checks each tree head's signature (node certificate, and ``node_id`` if given); ``trust=None``
    checks the structure only and says so in the report. ``at`` is the time to validate certificates at
    (default: each head's own time). Reads the files without locking: audit a closed log or a copy, or the
    report will include the tail an open log has not yet written out. Memory does not grow with the log.
    """
    directory = Path(directory)
    if not (directory / ENTRIES_FILE).is_file():
        raise ConfigError(f"{directory} is not a gwexchange log (no {ENTRIES_FILE} file)")
    findings = _Findings(max_problems)
    try:
        if (directory / FORMAT_FILE).read_bytes() != FORMAT_LINE:
            findings.add("file", None, f"{FORMAT_FILE} does not name the gwexchange log format")
    except FileNotFoundError:
        findings.add("file", None, f"{FORMAT_FILE} is missing")
    commit: CommitPoint | None = None
    try:
        commit = read_commit(directory)
    except VerificationError as e:
        findings.add("commit", None, str(e))
    audit = _Audit(directory, findings, _Heads(directory / HEADS_FILE, findings, trust, node_id, at), commit)
    offsets_size = audit.files.get(OFFSETS_FILE)
    if offsets_size is None:
        findings.add("file", None, f"{OFFSETS_FILE} is missing")
    try:
        with _open_reader(directory / ENTRIES_FILE, audit.files.get(ENTRIES_FILE, 0)) as entries:
            if offsets_size is not None:
                with _open_reader(directory / OFFSETS_FILE, offsets_size) as offsets:
                    audit.read_entries(entries, offsets)
            else:
                audit.read_entries(entries, None)
        audit.finish()
    finally:
        audit.close()
    return LogReport(
        directory=directory,
        size=audit.size,
        root=_fold(audit.peaks),
        committed=commit.state if commit is not None else None,
        heads=audit.heads.count,
        signatures_checked=trust is not None,
        problems=tuple(findings.problems),
        problems_not_listed=findings.not_listed,
    )


__all__ = ["LogReport", "Problem", "verify_log"]
