"""The routing header of an envelope (交换信封): what every hop reads, and the sending node signs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from lxml import etree

from gwexchange.codes import check_node_id, is_message_id
from gwexchange.envelope.model import Classification, Urgency, check_department_code
from gwexchange.envelope.times import format_utc, parse_utc
from gwexchange.errors import EnvelopeError

ENVELOPE_NS = "urn:gwexchange:envelope:1"
_Q = "{" + ENVELOPE_NS + "}"


MAX_LIFETIME = timedelta(days=731)
"""The longest an envelope may travel before it expires and is answered with 投递失败."""


def eq(local: str) -> str:
    """The qualified name of an envelope element."""
    return _Q + local


class MessageKind(StrEnum):
    DOCUMENT = "document"
    RECEIPT = "receipt"
    NOTICE = "notice"


@dataclass(frozen=True, slots=True)
class RoutingHeader:
    message_id: str  # a UUID, lower-case
    kind: MessageKind
    sender_department: str
    sender_node: str
    recipients: tuple[str, ...]  # department codes
    classification: Classification
    created: datetime
    expires: datetime
    urgency: Urgency | None = None
    in_reply_to: str | None = None

    def __post_init__(self) -> None:
        for message_id in (self.message_id, self.in_reply_to):
            if message_id is not None and not is_message_id(message_id):
                raise EnvelopeError(f"message id {message_id!r} is not a lower-case UUID")
        if not isinstance(self.kind, MessageKind):
            raise EnvelopeError(f"unknown message kind {self.kind!r}")
        check_department_code("发送机关", self.sender_department)
        check_node_id(self.sender_node, EnvelopeError)
        if not self.recipients:
            raise EnvelopeError("an envelope needs at least one recipient department")
        if len(set(self.recipients)) != len(self.recipients):
            raise EnvelopeError("an envelope names a recipient department twice")
        for code in self.recipients:
            check_department_code("收文机关", code)
        for t in (self.created, self.expires):
            if t.tzinfo is None or t.microsecond:
                raise EnvelopeError("envelope times are whole seconds in UTC")
        if self.expires <= self.created:
            raise EnvelopeError("an envelope must expire after it was created")
        if self.expires - self.created > MAX_LIFETIME:
            # A bound every node can do arithmetic with (and no envelope should wander for years).
            raise EnvelopeError(
                f"an envelope may travel at most {MAX_LIFETIME.days} days, not until {self.expires:%Y-%m-%d}"
            )

    def expired(self, now: datetime) -> bool:
        return now > self.expires


def header_to_element(header: RoutingHeader) -> etree._Element:
    el = etree.Element(eq("Header"))

    def add(local: str, text: str | None = None, **attrs: str) -> etree._Element:
        child = etree.SubElement(el, eq(local), attrs)
        child.text = text
        return child

    add("MessageId", header.message_id)
    add("Kind", header.kind.value)
    add("Sender", department=header.sender_department, node=header.sender_node)
    recipients = add("Recipients")
    for code in header.recipients:
        etree.SubElement(recipients, eq("Department"), code=code)
    add("Classification", header.classification.value)
    if header.urgency is not None:
        add("Urgency", header.urgency.value)
    add("Created", format_utc(header.created))
    add("Expires", format_utc(header.expires))
    if header.in_reply_to is not None:
        add("InReplyTo", header.in_reply_to)
    return el


def header_from_element(el: etree._Element) -> RoutingHeader:
    """Read a header the schema already validated; value rules are checked by ``RoutingHeader``."""

    def text(local: str) -> str | None:
        child = el.find(eq(local))
        return None if child is None else child.text or ""

    sender = el.find(eq("Sender"))
    urgency = text("Urgency")
    try:
        return RoutingHeader(
            message_id=text("MessageId") or "",
            kind=MessageKind(text("Kind") or ""),
            sender_department=sender.get("department", "") if sender is not None else "",
            sender_node=sender.get("node", "") if sender is not None else "",
            recipients=tuple(d.get("code", "") for d in el.iterfind(f"{eq('Recipients')}/{eq('Department')}")),
            classification=Classification(text("Classification") or ""),
            urgency=Urgency(urgency) if urgency is not None else None,
            created=parse_time(text("Created") or ""),
            expires=parse_time(text("Expires") or ""),
            in_reply_to=text("InReplyTo"),
        )
    except ValueError as e:
        raise EnvelopeError(f"envelope header is malformed: {e}") from e


def parse_time(text: str) -> datetime:
    t = parse_utc(text)
    if t is None:
        raise EnvelopeError(f"time {text!r} is not of the form 2026-11-20T08:00:00Z")
    return t


__all__ = [
    "ENVELOPE_NS",
    "MAX_LIFETIME",
    "MessageKind",
    "RoutingHeader",
    "eq",
    "header_from_element",
    "header_to_element",
    "parse_time",
]
