"""The node store's tables (SQLModel): what a node keeps of envelopes, parts, its queue, inboxes, outboxes and
receipts, and the Core tables its hot path queries.
"""

from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    Index,
    LargeBinary,
    Table,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine.interfaces import Dialect
from sqlmodel import Field, SQLModel

from gwexchange.routing.node_logic import (
    InboxState,
)


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
    # ``due`` reads the queued copies by time; the copies sent stay as history and outnumber them ever more, so
    # the index leads with the state: an index on the time alone made every round of the delivery loop scan them.
    __table_args__ = (
        UniqueConstraint("message_id", "next_hop"),
        Index("ix_queue_item_due", "state", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    message_id: str = Field(index=True)
    next_hop: str
    recipients: str  # space-separated: the recipients this copy is for
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UtcDateTime)
    last_error: str | None = None
    state: str = "queued"  # queued, sent, failed ("sending" is the daemon's, in memory)
    expires: datetime = Field(sa_type=UtcDateTime)


class InboxEntry(SQLModel, table=True):
    __tablename__ = "inbox_entry"
    __table_args__ = (Index("ix_inbox_entry_document", "department", "document_sha256"),)  # replays, by document
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


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


SEEN, ENVELOPE, PART, QUEUE = _table("seen_message"), _table("envelope"), _table("envelope_part"), _table("queue_item")
INBOX, OUTBOX, OUTBOX_RECIPIENT, RECEIPT = (
    _table("inbox_entry"),
    _table("outbox_message"),
    _table("outbox_recipient"),
    _table("receipt"),
)
TABLES = [SEEN, ENVELOPE, PART, QUEUE, INBOX, OUTBOX, OUTBOX_RECIPIENT, RECEIPT]


__all__ = [
    "ENVELOPE",
    "INBOX",
    "OUTBOX",
    "OUTBOX_RECIPIENT",
    "PART",
    "QUEUE",
    "RECEIPT",
    "SEEN",
    "TABLES",
    "InboxEntry",
    "OutboxMessage",
    "OutboxRecipient",
    "QueueItem",
    "SeenMessage",
    "StoredEnvelope",
    "StoredPart",
    "StoredReceipt",
    "UtcDateTime",
]
