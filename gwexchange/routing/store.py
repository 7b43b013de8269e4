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
import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Update,
    bindparam,
    event,
    func,
    insert,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import Session, SQLModel, col, create_engine, select

from gwexchange.envelope.model import Classification
from gwexchange.envelope.receipts import SentRecord
from gwexchange.envelope.sealing import Part
from gwexchange.errors import EnvelopeError, NotFoundError, TransientError
from gwexchange.files import sync_folder
from gwexchange.routing.faults import check_storage
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
from gwexchange.routing.store_tables import (
    ENVELOPE,
    INBOX,
    OUTBOX,
    OUTBOX_RECIPIENT,
    PART,
    QUEUE,
    RECEIPT,
    SEEN,
    TABLES,
    InboxEntry,
    OutboxMessage,
    OutboxRecipient,
    QueueItem,
    StoredEnvelope,
    StoredReceipt,
    UtcDateTime,
)

CHUNK = 1024 * 1024
SWEEP_GRACE = timedelta(minutes=10)
"""Part files younger than this are never swept at start-up: another process may be about to commit them."""


class StoreBusy(TransientError):
    """Transient: the database is locked or busy, or the disk had an I/O fault. Nothing was committed."""


class StoreFull(TransientError):
    """Transient: the disk or the database is full. Nothing was committed."""


# The hot path (every envelope runs it, at every node) is SQLAlchemy Core over these statements, built once: an
# ORM session (identity map, unit of work, instances) cost more CPU than the rest of the node's work together.
_M: BindParameter[str] = bindparam("m")
_SEEN_ONE = core_select(SEEN.c.message_id).where(SEEN.c.message_id == _M)
_ENVELOPE_ONE = core_select(ENVELOPE.c.message_id).where(ENVELOPE.c.message_id == _M)
_ENVELOPE_XML = core_select(ENVELOPE.c.envelope_xml).where(ENVELOPE.c.message_id == _M)
_ENVELOPE_ORIGIN = core_select(ENVELOPE.c.sender_department, ENVELOPE.c.classification).where(
    ENVELOPE.c.message_id == _M
)
_LAST_ACCEPTED = core_select(func.max(ENVELOPE.c.accepted))
_LAST_LOGGED = core_select(func.max(ENVELOPE.c.log_index))
_UNLOGGED = (
    core_select(ENVELOPE.c.message_id)
    .where(ENVELOPE.c.log_index.is_(None))
    .order_by(ENVELOPE.c.accepted)
    .limit(bindparam("n"))
)
_SET_LOG_INDEX = update(ENVELOPE).where(ENVELOPE.c.message_id == _M).values(log_index=bindparam("i"))
_LOGGED_FROM = (
    core_select(ENVELOPE.c.log_index, ENVELOPE.c.envelope_xml)
    .where(ENVELOPE.c.log_index >= bindparam("i"))
    .order_by(ENVELOPE.c.log_index)
    .limit(bindparam("n"))
)
_LOG_INDEX_OF = core_select(ENVELOPE.c.log_index).where(ENVELOPE.c.message_id == _M)
_PARTS = (
    core_select(PART.c.cid, PART.c.file_name, PART.c.size, PART.c.sha256)
    .where(PART.c.message_id == _M)
    .order_by(PART.c.cid)
)
_DUE = (
    core_select(QUEUE.c.message_id, QUEUE.c.next_hop, QUEUE.c.recipients, QUEUE.c.attempts, QUEUE.c.expires)
    .where(
        QUEUE.c.state == "queued",
        QUEUE.c.next_attempt_at <= bindparam("now", type_=UtcDateTime),
        QUEUE.c.next_hop.not_in(bindparam("skip", expanding=True)),
    )
    .order_by(QUEUE.c.next_attempt_at)
    .limit(bindparam("n"))
)
_HOP = (QUEUE.c.message_id == _M) & (QUEUE.c.next_hop == bindparam("hop"))
_HOP_RECIPIENTS = core_select(QUEUE.c.recipients).where(_HOP)
_OUTBOX_ONE = core_select(OUTBOX).where(OUTBOX.c.message_id == _M)
_OUTBOX_STATES = core_select(OUTBOX_RECIPIENT.c.recipient, OUTBOX_RECIPIENT.c.state).where(
    OUTBOX_RECIPIENT.c.message_id == _M
)
_RECIPIENT = (OUTBOX_RECIPIENT.c.message_id == _M) & (OUTBOX_RECIPIENT.c.recipient == bindparam("r"))
_RECIPIENT_STATE = core_select(OUTBOX_RECIPIENT.c.state).where(_RECIPIENT)
_INBOX_KEY = (INBOX.c.department == bindparam("d")) & (INBOX.c.message_id == _M)
_INBOX_ONE = core_select(INBOX.c.message_id).where(_INBOX_KEY)
_INBOX_BY_DOCUMENT = (
    core_select(INBOX.c.message_id)
    .where((INBOX.c.department == bindparam("d")) & (INBOX.c.document_sha256 == bindparam("h")))
    .limit(1)
)
_RECEIPT_ONE = core_select(RECEIPT.c.sha256).where(RECEIPT.c.sha256 == bindparam("h"))
# The updates: bound names differ from the column names, which SQLAlchemy keeps for itself in SET.
_AT: BindParameter[datetime] = bindparam("at", type_=UtcDateTime)
_SET_INBOX_STATE = (
    update(INBOX).where(_INBOX_KEY).values(state=bindparam("s"), reason=bindparam("why"), answered_at=_AT)
)
_HOP_SENT = update(QUEUE).where(_HOP).values(state="sent", attempts=QUEUE.c.attempts + 1)
_HOP_RETRY = update(QUEUE).where(_HOP).values(attempts=bindparam("n"), next_attempt_at=_AT, last_error=bindparam("why"))
_HOP_FAILED = update(QUEUE).where(_HOP).values(state="failed", last_error=bindparam("why"))
_ADVANCE = update(OUTBOX_RECIPIENT).where(_RECIPIENT).values(state=bindparam("s"), updated_at=_AT)
_ADVANCE_WITH_RECEIPT = _ADVANCE.values(receipt_sha256=bindparam("h"))


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
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.parts_dir.mkdir(mode=0o700, exist_ok=True)
        if url is None:  # the decrypted documents live here: 0600 before SQLite opens it (its -wal and -shm follow)
            database = home / "node.db"
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
            database.chmod(0o600)  # made by an earlier version, or under a looser umask
            url = f"sqlite:///{database}"
        self.engine = _engine(url, busy_timeout)
        self._reader = self.engine.execution_options(read_only=True)
        with _faults():
            SQLModel.metadata.create_all(self.engine, tables=TABLES)
            for index in (index for table in TABLES for index in table.indexes):
                index.create(self.engine, checkfirst=True)  # added since the store was made: create_all skips it
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
            folder.mkdir(mode=0o700, exist_ok=True)
            for part in parts:
                if part.cid not in sources:
                    raise EnvelopeError(f"message {message_id} lacks its part {part.cid}")
                _write_part(folder, part, sources[part.cid])
            sync_folder(folder)
            sync_folder(self.parts_dir)

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
        with self._reader.connect() as c:
            return c.execute(_ENVELOPE_ONE, {"m": message_id}).first() is not None

    def seen(self, message_id: str) -> bool:
        with _faults(), self._reader.connect() as c:
            return c.execute(_SEEN_ONE, {"m": message_id}).first() is not None

    def filed(self, department: str, document_sha256: str) -> str | None:
        with _faults(), self._reader.connect() as c:
            row = c.execute(_INBOX_BY_DOCUMENT, {"d": department, "h": document_sha256}).first()
        return None if row is None else str(row[0])

    def sent(self, message_id: str) -> SentInfo | None:
        with _faults(), self._reader.connect() as c:
            msg = c.execute(_OUTBOX_ONE, {"m": message_id}).mappings().first()
            if msg is None:
                return None
            states = {code: RecipientState(state) for code, state in c.execute(_OUTBOX_STATES, {"m": message_id})}
        record = SentRecord(
            message_id, msg["envelope_sha256"], msg["document_sha256"], tuple(msg["recipients"].split())
        )
        paths = {code: tuple(path) for code, path in json.loads(msg["paths"]).items()}
        return SentInfo(msg["sender_department"], record, paths, states)

    # --- what the daemon and the CLI read ---

    def envelope_xml(self, message_id: str) -> bytes:
        with _faults(), self._reader.connect() as c:
            row = c.execute(_ENVELOPE_XML, {"m": message_id}).first()
        if row is None:
            raise NotFoundError(f"message {message_id} is not in this store")
        return bytes(row[0])

    def parts(self, message_id: str) -> tuple[Part, ...]:
        with _faults(), self._reader.connect() as c:
            return tuple(Part(cid, name, size, sha) for cid, name, size, sha in c.execute(_PARTS, {"m": message_id}))

    def due(self, now: datetime, limit: int = 100, skip: Collection[str] = ()) -> tuple[Hop, ...]:
        """Queued copies whose next attempt is due, oldest first; none for the next hops in ``skip``."""
        with _faults(), self._reader.connect() as c:
            rows = c.execute(_DUE, {"now": now, "n": limit, "skip": list(skip)})
            return tuple(
                Hop(mid, hop, tuple(codes.split()), attempts, expires) for mid, hop, codes, attempts, expires in rows
            )

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
                raise NotFoundError(f"message {message_id} is not in the inbox of {department}")
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
        with _faults(), self.engine.begin() as c:
            check_storage()
            for action in actions:
                self._apply(c, action)

    # --- the Merkle log's order ---

    def assign_log_indices(self, limit: int = 1000) -> int:
        """Give the envelopes not yet in the log their log indices, in acceptance order; return how many."""
        with _faults():
            with self._reader.connect() as c:  # most rounds have nothing to assign: no write lock for them
                if c.execute(_UNLOGGED, {"n": 1}).first() is None:
                    return 0
            with self.engine.begin() as c:
                check_storage()
                last = c.execute(_LAST_LOGGED).scalar()
                ids = c.execute(_UNLOGGED, {"n": limit}).scalars().all()
                start = -1 if last is None else int(last)
                if ids:
                    c.execute(_SET_LOG_INDEX, [{"m": m, "i": start + k} for k, m in enumerate(ids, start=1)])
                return len(ids)

    def logged_from(self, index: int, limit: int = 1000) -> tuple[tuple[int, bytes], ...]:
        """The envelopes with log index ≥ ``index``, in index order: what the log must append next."""
        with _faults(), self._reader.connect() as c:
            return tuple((int(i), bytes(xml)) for i, xml in c.execute(_LOGGED_FROM, {"i": index, "n": limit}))

    def log_index_of(self, message_id: str) -> int | None:
        with _faults(), self._reader.connect() as c:
            value = c.execute(_LOG_INDEX_OF, {"m": message_id}).scalar()
            return None if value is None else int(value)

    def _apply(self, c: Connection, action: Action) -> None:
        match action:
            case Accept(envelope=env, at=at):
                h = env.header
                if c.execute(_SEEN_ONE, {"m": h.message_id}).first() is not None:
                    return  # a racing duplicate: the first one holds
                # Never commit a row that points at a missing or short file. Ours to mend, not the peer's fault:
                # a refused copy of the same message, staged at the same time, may have discarded the files.
                for part in env.parts:
                    path = self.part_path(h.message_id, part.cid)
                    if not path.is_file() or path.stat().st_size != part.size:
                        raise StoreBusy(f"part {part.cid} of message {h.message_id} is not on disk; nothing was stored")
                c.execute(
                    insert(SEEN),
                    {"message_id": h.message_id, "first_seen": at, "envelope_sha256": env.envelope_sha256},
                )
                # Writers are serialised (BEGIN IMMEDIATE); elsewhere a race is an IntegrityError: StoreBusy, retried.
                last = c.execute(_LAST_ACCEPTED).scalar()
                c.execute(
                    insert(ENVELOPE),
                    {
                        "message_id": h.message_id,
                        "envelope_xml": env.envelope_xml,
                        "envelope_sha256": env.envelope_sha256,
                        "kind": h.kind.value,
                        "sender_department": h.sender_department,
                        "sender_node": h.sender_node,
                        "recipients": " ".join(h.recipients),
                        "classification": h.classification.value,
                        "created": h.created,
                        "expires": h.expires,
                        "in_reply_to": h.in_reply_to,
                        "received_at": at,
                        "accepted": (last or 0) + 1,
                        "log_index": None,
                    },
                )
                if env.parts:
                    c.execute(
                        insert(PART),
                        [
                            {
                                "message_id": h.message_id,
                                "cid": p.cid,
                                "file_name": p.file_name,
                                "size": p.size,
                                "sha256": p.sha256,
                            }
                            for p in env.parts
                        ],
                    )
            case Drop():
                pass
            case Enqueue(message_id=mid, next_hop=hop, recipients=codes, expires=expires, at=at):
                c.execute(
                    insert(QUEUE),
                    {
                        "message_id": mid,
                        "next_hop": hop,
                        "recipients": " ".join(codes),
                        "attempts": 0,
                        "next_attempt_at": at,
                        "last_error": None,
                        "state": "queued",
                        "expires": expires,
                    },
                )
            case FileInbox():
                key = {"d": action.department, "m": action.message_id}
                if c.execute(_INBOX_ONE, key).first() is not None:
                    return  # filed once, whatever happened before
                origin = c.execute(_ENVELOPE_ORIGIN, {"m": action.message_id}).first()
                if origin is None:
                    raise EnvelopeError(f"message {action.message_id} is filed before it was accepted")
                c.execute(
                    insert(INBOX),
                    {
                        "department": action.department,
                        "message_id": action.message_id,
                        "envelope_sha256": action.envelope_sha256,
                        "document_sha256": action.document_sha256,
                        "document_xml": action.document_xml,
                        "sender_department": origin[0],
                        "classification": origin[1],
                        "received_at": action.at,
                        "state": InboxState.NEW.value,
                        "reason": None,
                        "answered_at": None,
                    },
                )
            case RecordSent(sender_department=dept, record=record, paths=paths, at=at):
                c.execute(
                    insert(OUTBOX),
                    {
                        "message_id": record.message_id,
                        "sender_department": dept,
                        "envelope_sha256": record.envelope_sha256,
                        "document_sha256": record.document_sha256,
                        "recipients": " ".join(record.recipients),
                        "paths": json.dumps({code: list(path) for code, path in paths.items()}),
                        "created": at,
                    },
                )
                c.execute(
                    insert(OUTBOX_RECIPIENT),
                    [
                        {
                            "message_id": record.message_id,
                            "recipient": code,
                            "state": RecipientState.QUEUED.value,
                            "updated_at": at,
                            "receipt_sha256": None,
                        }
                        for code in record.recipients
                    ],
                )
            case UpdateOutbox():
                _advance(c, action.message_id, action.recipient, action.state, action.at, action.receipt_sha256)
            case StoreReceipt():
                if c.execute(_RECEIPT_ONE, {"h": action.sha256}).first() is None:
                    c.execute(
                        insert(RECEIPT),
                        {
                            "sha256": action.sha256,
                            "message_id": action.message_id,
                            "kind": action.kind.value,
                            "answerer": action.answerer,
                            "receipt_xml": action.receipt_xml,
                            "received_at": action.at,
                        },
                    )
            case SetInboxState():
                key = {"d": action.department, "m": action.message_id}
                values = {"s": action.state.value, "why": action.reason, "at": action.at}
                if c.execute(_SET_INBOX_STATE, key | values).rowcount == 0:
                    raise NotFoundError(f"message {action.message_id} is not in the inbox of {action.department}")
            case HopSent(message_id=mid, next_hop=hop, at=at):
                recipients = c.execute(_HOP_RECIPIENTS, {"m": mid, "hop": hop}).scalar()
                if recipients is None:
                    raise NotFoundError(f"message {mid} has no copy queued for {hop}")
                c.execute(_HOP_SENT, {"m": mid, "hop": hop})
                for code in recipients.split():  # the sender's view: it left this node
                    _advance(c, mid, code, RecipientState.IN_TRANSIT, at, None, keep_receipt=True)
            case HopRetry():
                retry = {"n": action.attempts, "at": action.next_attempt_at, "why": action.error}
                _update_hop(c, _HOP_RETRY, action.message_id, action.next_hop, retry)
            case HopFailed():
                _update_hop(c, _HOP_FAILED, action.message_id, action.next_hop, {"why": action.error})


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
    # A name of its own: the same envelope may be staged twice at once (SMTP and a bundle, or a retry while the
    # first copy is still being written), and a shared name would let one writer truncate the other's file.
    fd, name = tempfile.mkstemp(prefix=f".{part.cid}.", suffix=".tmp", dir=folder)
    tmp = Path(name)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as f:
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


def _advance(
    c: Connection,
    message_id: str,
    recipient: str,
    state: RecipientState,
    at: datetime,
    receipt_sha256: str | None,
    *,
    keep_receipt: bool = False,
) -> None:
    """Move a recipient's state at the sender forward (never back: receipts may arrive in any order)."""
    key = {"m": message_id, "r": recipient}
    current = c.execute(_RECIPIENT_STATE, key).scalar()
    if current is None or not advances(RecipientState(current), state):
        return
    values = {"s": state.value, "at": at}
    if keep_receipt:
        c.execute(_ADVANCE, key | values)
    else:
        c.execute(_ADVANCE_WITH_RECEIPT, key | values | {"h": receipt_sha256})


def _update_hop(c: Connection, statement: Update, message_id: str, next_hop: str, values: dict[str, object]) -> None:
    if c.execute(statement, {"m": message_id, "hop": next_hop} | values).rowcount == 0:
        raise NotFoundError(f"message {message_id} has no copy queued for {next_hop}")


__all__ = [
    "CHUNK",
    "SWEEP_GRACE",
    "OutboxView",
    "Store",
    "StoreBusy",
    "StoreFull",
]
