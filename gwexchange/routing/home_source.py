"""A node home as the auditor reads it (``HomeSource``), and its export to an audit archive (``gwx audit export``).

The format and the reading of an export are ``archive.audit_archive``'s; what a home holds (its config, its store,
the directories it took) is the node's, so reading one lives here, beside the daemon that writes it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, col, select

from gwexchange.archive.audit_archive import (
    FORMAT,
    LATE_HEAD_MARGIN,
    LOG_PREFIX,
    MANIFEST,
    MAX_CRL,
    MAX_CRLS,
    MAX_DIRECTORIES,
    MAX_HEADS_FILE,
    MAX_MEMBERS,
    MAX_ROOT,
    MIMETYPE,
    PEER_HEADS,
    ArchiveSource,
    InboxDocument,
    NodeSource,
    complete_lines,
    copy_prefix,
    defuse_heads,
    is_archive,
    read_small,
    snapshot_log,
)
from gwexchange.archive.log import HEADS_FILE
from gwexchange.archive.treehead import format_head_time
from gwexchange.errors import ConfigError, InputError
from gwexchange.files import CHUNK, atomic_file
from gwexchange.network.directory import MAX_DIRECTORY_BYTES
from gwexchange.routing.context import held_directories, open_store
from gwexchange.routing.home import NodeConfig
from gwexchange.routing.store_tables import InboxEntry, StoredEnvelope

# --- a node home -----------------------------------------------------------------------------------------------


class HomeSource(NodeSource):
    """A node home (``node.toml``): the log copied up to its commit point, the rest read from the home."""

    def __init__(self, home: Path, *, extra_directories: tuple[Path, ...] = (), label: str | None = None) -> None:
        config = NodeConfig.load(home)
        self.config = config
        self.node_id = config.node_id
        self.label = label or str(home)
        self.kind = "home"
        self.root_pem = _read_file(config.root, MAX_ROOT, "the root certificate")
        self.crl_pems = tuple(_read_file(p, MAX_CRL, "a CRL") for p in config.crls)
        # every directory the node took (directories/, oldest first), the one node.toml names, and any given
        paths = [path for _, path in reversed(held_directories(config))] + [config.directory, *extra_directories]
        directories = [_read_file(p, MAX_DIRECTORY_BYTES, "a directory") for p in paths]
        self.directories = tuple(dict.fromkeys(directories))
        if len(self.directories) > MAX_DIRECTORIES:
            raise ConfigError(f"{home} holds more than {MAX_DIRECTORIES} directories: export a part of them")
        self.snapshot = datetime.now(UTC)
        self._tmp = Path(tempfile.mkdtemp(prefix="gwx-audit-"))
        try:
            self.cut = snapshot_log(config.log_dir, self._tmp / "log", self.snapshot)
            self.log_dir = self._tmp / "log"
            defuse_heads(self.log_dir / HEADS_FILE)
            self.peer_heads = None
            peer = config.peer_heads_path
            if peer.is_file():
                self.peer_heads = self._tmp / PEER_HEADS
                with self.peer_heads.open("wb") as out:
                    copy_prefix(peer, complete_lines(peer, MAX_HEADS_FILE), out)
        except BaseException:
            self.close()
            raise

    def inbox(self) -> Iterator[InboxDocument]:
        """The inbox rows whose envelope the log copy holds, one row read at a time (an inbox can be large).

        The daemon appends accepted envelopes to its log a moment after it files them, so a row whose envelope
        has no log index yet, or one beyond the copy, is the next snapshot's — unless it has had no log index for
        longer than that moment: then the audit must see it (and will say the log lacks its envelope).
        """
        logged = self.cut.commit.size if self.cut.commit is not None else None
        store = open_store(self.config)
        try:
            reader = store.engine.execution_options(read_only=True)
            with Session(reader) as s:
                rows = s.exec(
                    select(
                        InboxEntry.department, InboxEntry.message_id, InboxEntry.received_at, StoredEnvelope.log_index
                    )
                    .join(StoredEnvelope, col(StoredEnvelope.message_id) == col(InboxEntry.message_id), isouter=True)
                    .order_by(col(InboxEntry.received_at), col(InboxEntry.message_id))
                ).all()
            unlogged_before = self.snapshot - LATE_HEAD_MARGIN
            for department, message_id, received_at, log_index in rows:
                if log_index is None:
                    if received_at >= unlogged_before:
                        continue
                elif logged is not None and log_index >= logged:
                    continue
                with Session(reader) as s:
                    row = s.get(InboxEntry, (department, message_id))
                    if row is not None:
                        yield InboxDocument(row.department, row.message_id, row.document_xml)
        finally:
            store.close()


def _read_file(path: Path, limit: int, what: str) -> bytes:
    try:
        return read_small(path, limit)
    except FileNotFoundError as e:
        raise ConfigError(f"{what} {path} does not exist") from e
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from e


# --- the export file ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: Path
    node_id: str
    log_size: int
    log_root: str
    heads: int
    peer_heads: int
    inbox: int
    directories: int
    crls: int
    bytes: int


def export_archive(home: Path, out: Path, *, extra_directories: tuple[Path, ...] = ()) -> ExportSummary:
    """Write the archive of the node at ``home`` to ``out``: complete and durable, or not there at all."""
    with HomeSource(home, extra_directories=extra_directories) as source:
        cut = source.cut
        heads = peers = inbox = 0
        with atomic_file(out) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE)
            manifest = {
                "format": FORMAT,
                "node": source.node_id,
                "created": format_head_time(datetime.now(UTC)),
                "snapshot": format_head_time(source.snapshot),
                "log": {
                    "size": cut.commit.size if cut.commit else None,
                    "root": cut.commit.root.hex() if cut.commit else None,
                },
            }
            zf.writestr(zipfile.ZipInfo(MANIFEST), json.dumps(manifest, ensure_ascii=False, indent=1))
            for path in sorted(source.log_dir.iterdir()):
                _write_member(zf, LOG_PREFIX + path.name, path)
                if path.name == HEADS_FILE:
                    heads = _count_lines(path)
            if source.peer_heads is not None:
                _write_member(zf, PEER_HEADS, source.peer_heads)
                peers = _count_lines(source.peer_heads)
            for number, data in enumerate(source.directories, 1):
                zf.writestr(zipfile.ZipInfo(f"directories/directory-{number}.xml"), data)
            zf.writestr(zipfile.ZipInfo("root.crt"), source.root_pem)
            for number, data in enumerate(source.crl_pems, 1):
                zf.writestr(zipfile.ZipInfo(f"crls/crl-{number}.pem"), data)
            for doc in source.inbox():
                inbox += 1
                if inbox + 64 + MAX_DIRECTORIES + MAX_CRLS > MAX_MEMBERS:
                    raise ConfigError(f"the node has more inbox documents than one export holds ({MAX_MEMBERS})")
                zf.writestr(zipfile.ZipInfo(f"inbox/{doc.department}/{doc.message_id}.xml"), doc.document_xml)
        return ExportSummary(
            path=out,
            node_id=source.node_id,
            log_size=cut.commit.size if cut.commit else 0,
            log_root=cut.commit.root.hex() if cut.commit else "",
            heads=heads,
            peer_heads=peers,
            inbox=inbox,
            directories=len(source.directories),
            crls=len(source.crl_pems),
            bytes=out.stat().st_size,
        )


def _write_member(zf: zipfile.ZipFile, name: str, path: Path) -> None:
    with zf.open(zipfile.ZipInfo(name), "w", force_zip64=True) as member, path.open("rb") as f:
        shutil.copyfileobj(f, member, CHUNK)


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(CHUNK), b""))


def open_source(path: Path, *, extra_directories: tuple[Path, ...] = ()) -> NodeSource:
    """A node home or an export file, whichever ``path`` is."""
    if is_archive(path):
        if extra_directories:
            raise InputError("extra directories are given with a node home; an export carries its own")
        return ArchiveSource(path)
    if path.is_dir():
        return HomeSource(path, extra_directories=extra_directories)
    raise ConfigError(f"{path} is neither a node home nor an audit archive")


__all__ = ["ExportSummary", "HomeSource", "export_archive", "open_source"]
