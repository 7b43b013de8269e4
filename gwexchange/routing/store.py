"""The node's durable store: SQLModel over SQLite (WAL, synchronous=FULL) by default, any SQLAlchemy URL otherwise.

Tables
    seen_message      every message id ever accepted (primary key): duplicates are dropped across restarts
    envelope          accepted envelopes, the XML byte for byte, with header fields for listing
    envelope_part     the parts of each envelope; their octets are files, ``<home>/parts/<message_id>/<cid>``
    queue_item        one copy per (message, next hop): attempts, next attempt, last error, state
    inbox_entry       one per (department, message): the signed document bytes and the clerk's state
    outbox_message    what a department here sent (the ``SentRecord``) and its route tree
    outbox_recipient  one per (message, recipient): queued, in transit, 送达, 签收, 退回, 投递失败
    receipt           every verified receipt, raw bytes, by digest

The Merkle log (``archive.log``) holds every accepted envelope again, in acceptance order: ``envelope.log_index``
is assigned (``assign_log_indices``) in a commit before the entry is appended, so a crash between the two is
repaired by appending again from the log's size (``logged_from``): the entries are the stored bytes.

Crash safety
    ``apply`` commits a decision's actions in ONE transaction (SQLite: ``BEGIN IMMEDIATE``, fsynced at commit
    with synchronous=FULL): after a crash all of them hold or none. Part files are written before the commit that
    references them — to a temporary name, fsynced, renamed, the folder fsynced — and ``Accept`` refuses to
    commit unless every part file is there with its signed size. So a row never points at a missing file; the
    only debris a crash leaves is part files without an envelope row, which ``Store`` sweeps when it opens. The
    listener answers 250 only after ``apply`` returned, so nothing acknowledged is lost.

Faults
    Transient trouble is ``StoreBusy`` (locked or busy database, I/O trouble) or ``StoreFull`` (disk or
    database full): the SMTP layer answers 4xx and the sender retries. Permanent faults stay the
    ``VerificationError`` they are (a damaged part, a bad signature): 5xx.
"""

import errno
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, LargeBinary, TypeDecorator, UniqueConstraint, event, func
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from gwexchange.envelope.model import Classification
from gwexchange.envelope.receipts import SentRecord
from gwexchange.envelope.sealing import Part
from gwexchange.errors import EnvelopeError, GwxError
from gwexchange.faults import check_storage
from gwexchange.routing.node_logic import (
    Accept,
    Action,
    Drop,
    Enqueue,
    FileInbox,
    Hop,
    HopFailed,
    HopRetry,
    HopSent,
    InboxItem,
    InboxState,
    RecipientState,
    RecordSent,
    SentInfo,
    SetInboxState,
    StoreReceipt,
    UpdateOutbox,
    advances,
)

CHUNK = 1024 * 1024
SWEEP_GRACE = timedelta(minutes=10)
"""Part files younger than this are never swept at start-up: another process may be about to commit them."""


class StoreBusy(GwxError):
    """Transient: the database is locked or busy, or the disk had an I/O fault. Nothing was committed."""


class StoreFull(GwxError):
    """Transient: the disk or the database is full. Nothing was committed."""


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out; stored naive (SQLite keeps no zone), so they compare."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("the store takes aware datetimes only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# --- tables --------------------------------------------------------------------------------------------------


class SeenMessage(SQLModel, table=True):
    __tablename__ = "seen_message"
    message_id: str = Field(primary_key=True)
    first_seen: datetime = Field(sa_type=UtcDateTime)
    envelope_sha256: str


class StoredEnvelope(SQLModel, table=True):
    __tablename__ = "envelope"
    message_id: str = Field(primary_key=True)
    envelope_xml: bytes = Field(sa_type=LargeBinary)
    envelope_sha256: str
    kind: str
    sender_department: str
    sender_node: str
    recipients: str  # space-separated department codes
    classification: str
    created: datetime = Field(sa_type=UtcDateTime)
    expires: datetime = Field(sa_type=UtcDateTime)
    in_reply_to: str | None = None
    received_at: datetime = Field(sa_type=UtcDateTime)
    accepted: int = Field(unique=True)  # 1, 2, 3, …: the order envelopes were accepted, kept by the Merkle log
    log_index: int | None = Field(default=None, unique=True)  # its entry in the node's Merkle log, once logged


class StoredPart(SQLModel, table=True):
    __tablename__ = "envelope_part"
    message_id: str = Field(primary_key=True)
    cid: str = Field(primary_key=True)
    file_name: str
    size: int
    sha256: str


class QueueItem(SQLModel, table=True):
    __tablename__ = "queue_item"
    __table_args__ = (UniqueConstraint("message_id", "next_hop"),)
    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(index=True)
    next_hop: str
    recipients: str  # space-separated: the recipients this copy is for
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True, sa_type=UtcDateTime)
    last_error: str | None = None
    state: str = "queued"  # queued, sent, failed ("sending" is the daemon's, in memory)
    expires: datetime = Field(sa_type=UtcDateTime)


class InboxEntry(SQLModel, table=True):
    __tablename__ = "inbox_entry"
    department: str = Field(primary_key=True)
    message_id: str = Field(primary_key=True)
    envelope_sha256: str
    document_sha256: str
    document_xml: bytes = Field(sa_type=LargeBinary)
    sender_department: str
    classification: str
    received_at: datetime = Field(sa_type=UtcDateTime)
    state: str = InboxState.NEW.value
    reason: str | None = None
    answered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    message_id: str = Field(primary_key=True)
    sender_department: str
    envelope_sha256: str
    document_sha256: str
    recipients: str  # space-separated, in the envelope's order
    paths: str  # JSON: recipient → node ids of its route
    created: datetime = Field(sa_type=UtcDateTime)


class OutboxRecipient(SQLModel, table=True):
    __tablename__ = "outbox_recipient"
    message_id: str = Field(primary_key=True)
    recipient: str = Field(primary_key=True)
    state: str
    updated_at: datetime = Field(sa_type=UtcDateTime)
    receipt_sha256: str | None = None


class StoredReceipt(SQLModel, table=True):
    __tablename__ = "receipt"
    sha256: str = Field(primary_key=True)
    message_id: str = Field(index=True)
    kind: str
    answerer: str
    receipt_xml: bytes = Field(sa_type=LargeBinary)
    received_at: datetime = Field(sa_type=UtcDateTime)


_TABLES = [
    SQLModel.metadata.tables[name]
    for name in (
        "seen_message",
        "envelope",
        "envelope_part",
        "queue_item",
        "inbox_entry",
        "outbox_message",
        "outbox_recipient",
        "receipt",
    )
]


# --- listings for the CLI ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxView:
    message_id: str
    sender_department: str
    created: datetime
    recipients: tuple[tuple[str, RecipientState, datetime], ...]  # (recipient, state, since)


# --- the store -----------------------------------------------------------------------------------------------


class Store:
    """The node's database and part files under ``home``. Use as a context manager (or call ``close``)."""

    def __init__(
        self,
        home: Path,
        url: str | None = None,
        *,
        busy_timeout: float = 5.0,
        sweep_grace: timedelta = SWEEP_GRACE,
    ) -> None:
        self.home = home
        self.parts_dir = home / "parts"
        home.mkdir(parents=True, exist_ok=True)
        self.parts_dir.mkdir(exist_ok=True)
        url = url or f"sqlite:///{home / 'node.db'}"
        self.engine = _engine(url, busy_timeout)
        self._reader = self.engine.execution_options(read_only=True)
        with _faults():
            SQLModel.metadata.create_all(self.engine, tables=_TABLES)
        self.sweep(sweep_grace)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # --- part files ---

    def part_path(self, message_id: str, cid: str) -> Path:
        return self.parts_dir / message_id / cid

    def stage_parts(self, message_id: str, parts: Sequence[Part], sources: Mapping[str, Iterable[bytes]]) -> None:
        """Write an envelope's parts to their files before the ``Accept`` that references them is applied.

        Each is checked against the size and SHA-256 the node signature covers (``EnvelopeError`` if damaged),
        written to a temporary name, fsynced and renamed, so a file under its final name is always whole.
        """
        folder = self.parts_dir / message_id
        with _faults():
            check_storage()
            folder.mkdir(exist_ok=True)
            for part in parts:
                if part.cid not in sources:
                    raise EnvelopeError(f"message {message_id} lacks its part {part.cid}")
                _write_part(folder, part, sources[part.cid])
            _fsync_dir(folder)
            _fsync_dir(self.parts_dir)

    def read_part(self, message_id: str, cid: str) -> Iterator[bytes]:
        with self.part_path(message_id, cid).open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def sweep(self, older_than: timedelta = timedelta(0)) -> list[Path]:
        """Remove what a crash left: temporary part files, and part folders no envelope row refers to.

        Only what has not been written to for ``older_than``: a clerk's command (or a bundle import) in another
        process may have staged parts it is about to commit — its folder has no row *yet*. At start-up the daemon
        sweeps with ``SWEEP_GRACE``; anything younger is debris for the next start.
        """
        cutoff = time.time() - older_than.total_seconds()
        with _faults(), Session(self._reader) as s:
            kept = set(s.exec(select(StoredEnvelope.message_id)).all())
        removed: list[Path] = []
        with _faults():
            for folder in sorted(self.parts_dir.iterdir()):
                if not folder.is_dir():
                    if folder.stat().st_mtime <= cutoff:
                        folder.unlink()
                        removed.append(folder)
                    continue
                if folder.name not in kept:
                    if _last_written(folder) <= cutoff and not self._referenced(folder.name):
                        shutil.rmtree(folder)
                        removed.append(folder)
                    continue
                for tmp in folder.glob(".*.tmp"):
                    if tmp.stat().st_mtime <= cutoff:
                        tmp.unlink()
                        removed.append(tmp)
        return removed

    def discard_parts(self, message_id: str) -> None:
        """Remove the part files staged for an envelope that was refused — unless an envelope with that id is
        stored (a duplicate refused after the first was accepted must not take its files)."""
        folder = self.parts_dir / message_id
        if folder.is_dir() and not self._referenced(message_id):
            with _faults():
                shutil.rmtree(folder)

    def _referenced(self, message_id: str) -> bool:
        """Asked again just before removing: a row committed since the first look keeps its folder."""
        query = select(StoredEnvelope.message_id).where(col(StoredEnvelope.message_id) == message_id)
        with self._reader.connect() as c:
            return c.execute(query).first() is not None

    # The hot reads (every envelope asks them) are plain SQL on a connection: an ORM session costs more than the
    # query itself.

    def seen(self, message_id: str) -> bool:
        query = select(SeenMessage.message_id).where(col(SeenMessage.message_id) == message_id)
        with _faults(), self._reader.connect() as c:
            return c.execute(query).first() is not None

    def sent(self, message_id: str) -> SentInfo | None:
        with _faults(), Session(self._reader) as s:
            msg = s.get(OutboxMessage, message_id)
            if msg is None:
                return None
            rows = s.exec(select(OutboxRecipient).where(OutboxRecipient.message_id == message_id)).all()
            recipients = tuple(msg.recipients.split())
            record = SentRecord(message_id, msg.envelope_sha256, msg.document_sha256, recipients)
            paths = {code: tuple(path) for code, path in json.loads(msg.paths).items()}
            states = {r.recipient: RecipientState(r.state) for r in rows}
            return SentInfo(msg.sender_department, record, paths, states)

    # --- what the daemon and the CLI read ---

    def envelope_xml(self, message_id: str) -> bytes:
        query = select(StoredEnvelope.envelope_xml).where(col(StoredEnvelope.message_id) == message_id)
        with _faults(), self._reader.connect() as c:
            row = c.execute(query).first()
        if row is None:
            raise KeyError(message_id)
        return bytes(row[0])

    def parts(self, message_id: str) -> tuple[Part, ...]:
        query = (
            select(StoredPart.cid, StoredPart.file_name, StoredPart.size, StoredPart.sha256)
            .where(col(StoredPart.message_id) == message_id)
            .order_by(col(StoredPart.cid))
        )
        with _faults(), self._reader.connect() as c:
            return tuple(Part(cid, name, size, sha) for cid, name, size, sha in c.execute(query))

    def due(self, now: datetime, limit: int = 100) -> tuple[Hop, ...]:
        """Queued copies whose next attempt is due, oldest first."""
        with _faults(), Session(self._reader) as s:
            rows = s.exec(
                select(QueueItem)
                .where(QueueItem.state == "queued", col(QueueItem.next_attempt_at) <= now)
                .order_by(col(QueueItem.next_attempt_at))
                .limit(limit)
            ).all()
            return tuple(_hop(r) for r in rows)

    def queue(self) -> tuple[QueueItem, ...]:
        with _faults(), Session(self._reader) as s:
            return tuple(s.exec(select(QueueItem).order_by(col(QueueItem.id))).all())

    def inbox(self, department: str | None = None) -> tuple[InboxEntry, ...]:
        with _faults(), Session(self._reader) as s:
            query = select(InboxEntry).order_by(col(InboxEntry.received_at), col(InboxEntry.message_id))
            if department is not None:
                query = query.where(InboxEntry.department == department)
            return tuple(s.exec(query).all())

    def inbox_item(self, department: str, message_id: str) -> InboxItem:
        with _faults(), Session(self._reader) as s:
            row = s.get(InboxEntry, (department, message_id))
            if row is None:
                raise KeyError((department, message_id))
            return InboxItem(
                department=row.department,
                message_id=row.message_id,
                envelope_sha256=row.envelope_sha256,
                document_sha256=row.document_sha256,
                sender_department=row.sender_department,
                classification=Classification(row.classification),
                state=InboxState(row.state),
            )

    def outbox(self) -> tuple[OutboxView, ...]:
        with _faults(), Session(self._reader) as s:
            views = []
            for msg in s.exec(select(OutboxMessage).order_by(col(OutboxMessage.created))).all():
                rows = {
                    r.recipient: r
                    for r in s.exec(select(OutboxRecipient).where(OutboxRecipient.message_id == msg.message_id))
                }
                states = tuple(
                    (code, RecipientState(rows[code].state), rows[code].updated_at) for code in msg.recipients.split()
                )
                views.append(OutboxView(msg.message_id, msg.sender_department, msg.created, states))
            return tuple(views)

    def receipts(self, message_id: str) -> tuple[StoredReceipt, ...]:
        with _faults(), Session(self._reader) as s:
            query = select(StoredReceipt).where(StoredReceipt.message_id == message_id)
            return tuple(s.exec(query.order_by(col(StoredReceipt.received_at))).all())

    # --- the one way to change anything ---

    def apply(self, actions: Iterable[Action]) -> None:
        """Commit the actions of one decision together, or none of them."""
        with _faults(), Session(self.engine) as s, s.begin():
            check_storage()
            for action in actions:
                self._apply(s, action)

    # --- the Merkle log's order ---

    def assign_log_indices(self, limit: int = 1000) -> int:
        """Give the envelopes not yet in the log their log indices, in acceptance order; return how many."""
        with _faults(), Session(self.engine) as s, s.begin():
            check_storage()
            last = s.exec(select(func.max(StoredEnvelope.log_index))).one()
            rows = s.exec(
                select(StoredEnvelope)
                .where(col(StoredEnvelope.log_index).is_(None))
                .order_by(col(StoredEnvelope.accepted))
                .limit(limit)
            ).all()
            start = -1 if last is None else last
            for offset, row in enumerate(rows, start=1):
                row.log_index = start + offset
                s.add(row)
            return len(rows)

    def logged_from(self, index: int, limit: int = 1000) -> tuple[tuple[int, bytes], ...]:
        """The envelopes with log index ≥ ``index``, in index order: what the log must append next."""
        with _faults(), Session(self._reader) as s:
            rows = s.exec(
                select(StoredEnvelope.log_index, StoredEnvelope.envelope_xml)
                .where(col(StoredEnvelope.log_index) >= index)
                .order_by(col(StoredEnvelope.log_index))
                .limit(limit)
            ).all()
            return tuple((int(i), bytes(xml)) for i, xml in rows if i is not None)

    def log_index_of(self, message_id: str) -> int | None:
        with _faults(), Session(self._reader) as s:
            row = s.get(StoredEnvelope, message_id)
            return row.log_index if row is not None else None

    def _apply(self, s: Session, action: Action) -> None:  # noqa: PLR0915 — one short branch per action
        match action:
            case Accept(envelope=env, at=at):
                h = env.header
                if s.get(SeenMessage, h.message_id) is not None:
                    return  # a racing duplicate: the first one holds
                for part in env.parts:  # never commit a row that points at a missing or short file
                    path = self.part_path(h.message_id, part.cid)
                    if not path.is_file() or path.stat().st_size != part.size:
                        raise EnvelopeError(f"part {part.cid} of message {h.message_id} was not stored")
                s.add(SeenMessage(message_id=h.message_id, first_seen=at, envelope_sha256=env.envelope_sha256))
                # Writers are serialised (BEGIN IMMEDIATE); elsewhere a race is an IntegrityError: StoreBusy, retried.
                last = s.exec(select(func.max(StoredEnvelope.accepted))).one()
                s.add(
                    StoredEnvelope(
                        message_id=h.message_id,
                        envelope_xml=env.envelope_xml,
                        envelope_sha256=env.envelope_sha256,
                        kind=h.kind.value,
                        sender_department=h.sender_department,
                        sender_node=h.sender_node,
                        recipients=" ".join(h.recipients),
                        classification=h.classification.value,
                        created=h.created,
                        expires=h.expires,
                        in_reply_to=h.in_reply_to,
                        received_at=at,
                        accepted=(last or 0) + 1,
                    )
                )
                for part in env.parts:
                    s.add(
                        StoredPart(
                            message_id=h.message_id,
                            cid=part.cid,
                            file_name=part.file_name,
                            size=part.size,
                            sha256=part.sha256,
                        )
                    )
                s.flush()  # later actions of the same decision read these rows
            case Drop():
                pass
            case Enqueue(message_id=mid, next_hop=hop, recipients=codes, expires=expires, at=at):
                s.add(
                    QueueItem(
                        message_id=mid,
                        next_hop=hop,
                        recipients=" ".join(codes),
                        next_attempt_at=at,
                        expires=expires,
                    )
                )
            case FileInbox():
                if s.get(InboxEntry, (action.department, action.message_id)) is not None:
                    return  # filed once, whatever happened before
                env_row = s.get(StoredEnvelope, action.message_id)
                if env_row is None:
                    raise EnvelopeError(f"message {action.message_id} is filed before it was accepted")
                s.add(
                    InboxEntry(
                        department=action.department,
                        message_id=action.message_id,
                        envelope_sha256=action.envelope_sha256,
                        document_sha256=action.document_sha256,
                        document_xml=action.document_xml,
                        sender_department=env_row.sender_department,
                        classification=env_row.classification,
                        received_at=action.at,
                    )
                )
            case RecordSent(sender_department=dept, record=record, paths=paths, at=at):
                s.add(
                    OutboxMessage(
                        message_id=record.message_id,
                        sender_department=dept,
                        envelope_sha256=record.envelope_sha256,
                        document_sha256=record.document_sha256,
                        recipients=" ".join(record.recipients),
                        paths=json.dumps({code: list(path) for code, path in paths.items()}),
                        created=at,
                    )
                )
                for code in record.recipients:
                    s.add(
                        OutboxRecipient(
                            message_id=record.message_id,
                            recipient=code,
                            state=RecipientState.QUEUED.value,
                            updated_at=at,
                        )
                    )
                s.flush()
            case UpdateOutbox():
                row = s.get(OutboxRecipient, (action.message_id, action.recipient))
                if row is not None and advances(RecipientState(row.state), action.state):
                    row.state, row.updated_at = action.state.value, action.at
                    row.receipt_sha256 = action.receipt_sha256
                    s.add(row)
            case StoreReceipt():
                if s.get(StoredReceipt, action.sha256) is None:
                    s.add(
                        StoredReceipt(
                            sha256=action.sha256,
                            message_id=action.message_id,
                            kind=action.kind.value,
                            answerer=action.answerer,
                            receipt_xml=action.receipt_xml,
                            received_at=action.at,
                        )
                    )
            case SetInboxState():
                entry = s.get(InboxEntry, (action.department, action.message_id))
                if entry is None:
                    raise KeyError((action.department, action.message_id))
                entry.state, entry.reason, entry.answered_at = action.state.value, action.reason, action.at
                s.add(entry)
            case HopSent(message_id=mid, next_hop=hop, at=at):
                item = _queue_item(s, mid, hop)
                item.state, item.attempts = "sent", item.attempts + 1
                s.add(item)
                for code in item.recipients.split():  # the sender's view: it left this node
                    row = s.get(OutboxRecipient, (mid, code))
                    if row is not None and advances(RecipientState(row.state), RecipientState.IN_TRANSIT):
                        row.state, row.updated_at = RecipientState.IN_TRANSIT.value, at
                        s.add(row)
            case HopRetry():
                item = _queue_item(s, action.message_id, action.next_hop)
                item.attempts, item.next_attempt_at = action.attempts, action.next_attempt_at
                item.last_error = action.error
                s.add(item)
            case HopFailed():
                item = _queue_item(s, action.message_id, action.next_hop)
                item.state, item.last_error = "failed", action.error
                s.add(item)


# --- internals -----------------------------------------------------------------------------------------------


def _engine(url: str, busy_timeout: float) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Python's sqlite3 would open transactions behind our back; we issue BEGIN ourselves (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk before 250 is answered
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # Take the write lock at the start: a deferred transaction that upgrades later can fail with SQLITE_BUSY
        # at once, without waiting out busy_timeout.
        # Readers (``read_only``) begin deferred, so under WAL they never wait for a writer.
        read_only = connection.get_execution_options().get("read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


@contextmanager
def _faults() -> Iterator[None]:
    """Database and disk faults as the node's transient errors; everything else passes through."""
    try:
        yield
    except OperationalError as e:
        text = str(e.orig).lower()
        if "full" in text or "no space" in text:
            raise StoreFull(f"the store is full: {e.orig}") from e
        raise StoreBusy(f"the store is busy: {e.orig}") from e
    except IntegrityError as e:  # a concurrent writer got there first; a retry sees its row
        raise StoreBusy(f"the store changed under this transaction: {e.orig}") from e
    except DBAPIError as e:
        raise StoreBusy(f"the store failed: {e.orig}") from e
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreFull(f"the disk is full: {e}") from e
        raise StoreBusy(f"the disk failed: {e}") from e


def _write_part(folder: Path, part: Part, octets: Iterable[bytes]) -> None:
    final = folder / part.cid
    tmp = folder / f".{part.cid}.tmp"
    digest, size = hashlib.sha256(), 0
    try:
        with tmp.open("wb") as f:
            for chunk in octets:
                size += len(chunk)
                if size > part.size:
                    raise EnvelopeError(f"part {part.cid} is longer than the {part.size} bytes signed for it")
                digest.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if size != part.size or digest.hexdigest() != part.sha256:
            raise EnvelopeError(f"part {part.cid} does not match the size and digest signed in the envelope")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _last_written(folder: Path) -> float:
    """The latest modification time of a folder and the files in it."""
    times = [folder.stat().st_mtime]
    times += [f.stat().st_mtime for f in folder.iterdir()]
    return max(times)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _queue_item(s: Session, message_id: str, next_hop: str) -> QueueItem:
    item = s.exec(select(QueueItem).where(QueueItem.message_id == message_id, QueueItem.next_hop == next_hop)).first()
    if item is None:
        raise KeyError((message_id, next_hop))
    return item


def _hop(row: QueueItem) -> Hop:
    return Hop(row.message_id, row.next_hop, tuple(row.recipients.split()), row.attempts, row.expires)
