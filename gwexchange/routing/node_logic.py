"""The store-and-forward state machine of a node: what to do with an envelope, as plain data.

Nothing here touches a disk, a socket or the clock: the time is passed in, randomness is injected, and what the
store already knows comes through the read-only ``Known`` protocol. Each function returns a tuple of actions
(``Accept``, ``Enqueue``, ``FileInbox``, …) that ``store.apply`` commits in ONE transaction, so a node killed at
any moment has done all of a decision or none of it. Crypto is done here (opening, signing receipts) because it
is pure computation on bytes; the keys come in the ``NodeView``.

The rules (the node issue):

* a message id already seen is dropped — acknowledged, never delivered twice;
* every new envelope is accepted (kept byte for byte) before anything else happens to it;
* an expired document envelope is answered with a signed 投递失败 to its sender (an expired receipt is dropped:
  answering receipts with receipts could loop);
* recipients at this node: a document is opened, verified, filed in the department's inbox and answered with a
  送达 receipt; a receipt is verified against the outbox's ``SentRecord`` and advances the recipient's state;
* other recipients: one queued copy per next hop of the route tree (``RoutePlan.next_hops``), the plan
  recomputed from the header's sending node, so every hop agrees and a shared path is travelled once;
* a failed hop is retried with capped exponential back-off and full jitter until the envelope expires; a
  permanent refusal or expiry fails the hop and answers 投递失败.

Receipts this node makes are themselves envelopes: they go through the same rules at once (``_receive``), so a
送达 for a department at this node updates the outbox in the same transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from gwexchange.crypto.suite import PrivateKey
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.crypto.xmlenc import Random
from gwexchange.envelope.header import MessageKind
from gwexchange.envelope.model import Classification
from gwexchange.envelope.receipts import (
    AnswererRole,
    Receipt,
    ReceiptKind,
    SentRecord,
    make_failure,
    make_receipt,
    receipt_sha256,
    sign_receipt,
    verify_receipt,
)
from gwexchange.envelope.sealing import InspectedEnvelope, Sealed, inspect, open_envelope, receipt_content, seal_receipt
from gwexchange.envelope.signing import CLOCK_SKEW
from gwexchange.errors import ConfigError, EnvelopeError, InputError
from gwexchange.network.directory import Directory
from gwexchange.network.routes import plan

RELAY_CLOCK_SKEW = timedelta(hours=1)
"""How far ahead of this node's clock an envelope it only passes on, or a receipt, may claim to be created."""

# --- states --------------------------------------------------------------------------------------------------


class RecipientState(StrEnum):
    """Where a sent document stands for one recipient, as ``gwx outbox`` shows it."""

    QUEUED = "queued"
    IN_TRANSIT = "in transit"
    FAILED = "投递失败"
    DELIVERED = "送达"
    SIGNED_FOR = "签收"
    RETURNED = "退回"

    @property
    def rank(self) -> int:
        # A state only moves forward: a late 投递失败 from one branch never undoes a 送达, and 签收/退回 are final.
        return _RANK[self]


_RANK = {
    RecipientState.QUEUED: 0,
    RecipientState.IN_TRANSIT: 1,
    RecipientState.FAILED: 2,
    RecipientState.DELIVERED: 3,
    RecipientState.SIGNED_FOR: 4,
    RecipientState.RETURNED: 4,
}
_RECEIPT_STATE = {
    ReceiptKind.DELIVERED: RecipientState.DELIVERED,
    ReceiptKind.SIGNED_FOR: RecipientState.SIGNED_FOR,
    ReceiptKind.RETURNED: RecipientState.RETURNED,
    ReceiptKind.FAILED: RecipientState.FAILED,
}


def advances(old: RecipientState, new: RecipientState) -> bool:
    return new.rank > old.rank


class InboxState(StrEnum):
    NEW = "new"
    SIGNED_FOR = "signed-for"
    RETURNED = "returned"


# --- the node's view and what the store knows ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delay before attempt n+1 is uniform in [0, min(cap, base·2ⁿ)] ("full jitter"): retries of many queues
    spread out instead of hitting a recovering peer together."""

    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class DepartmentKeys:
    """A department served by this node: it signs receipts and opens envelopes addressed to it."""

    signer: Signer
    encryption_key: PrivateKey


@dataclass(frozen=True)
class NodeView:
    node_id: str
    directory: Directory
    trust: TrustPolicy
    node_signer: Signer
    departments: Mapping[str, DepartmentKeys]
    retry: RetryPolicy = RetryPolicy()
    random: Random = field(default=os.urandom, repr=False)  # message ids of the receipts made here


@dataclass(frozen=True, slots=True)
class SentInfo:
    """An outbox entry: what was sent (to check receipts), its route tree, and each recipient's state."""

    sender_department: str
    record: SentRecord
    paths: Mapping[str, tuple[str, ...]]
    states: Mapping[str, RecipientState]

    @property
    def route_nodes(self) -> frozenset[str]:
        return frozenset(node for path in self.paths.values() for node in path)


class Known(Protocol):
    """The store, read-only."""

    def seen(self, message_id: str) -> bool: ...

    def sent(self, message_id: str) -> SentInfo | None: ...

    def filed(self, department: str, document_sha256: str) -> str | None:
        """The message id under which ``department`` filed the signed document with this digest, if it did."""
        ...


@dataclass(frozen=True, slots=True)
class Hop:
    """One queued copy: an envelope on its way to ``next_hop`` for ``recipients``."""

    message_id: str
    next_hop: str
    recipients: tuple[str, ...]
    attempts: int
    expires: datetime


@dataclass(frozen=True, slots=True)
class InboxItem:
    """What a clerk's answer (签收, 退回) needs of an inbox entry."""

    department: str
    message_id: str
    envelope_sha256: str
    document_sha256: str
    sender_department: str
    classification: Classification
    state: InboxState


# --- actions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    """Keep the envelope (byte for byte) and remember its message id forever."""

    envelope: InspectedEnvelope
    at: datetime


@dataclass(frozen=True, slots=True)
class Drop:
    message_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Enqueue:
    message_id: str
    next_hop: str
    recipients: tuple[str, ...]
    expires: datetime
    at: datetime  # the first attempt: now


@dataclass(frozen=True, slots=True)
class FileInbox:
    department: str
    message_id: str
    envelope_sha256: str
    document_xml: bytes  # the exact signed document bytes
    document_sha256: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RecordSent:
    sender_department: str
    record: SentRecord
    paths: Mapping[str, tuple[str, ...]]
    at: datetime


@dataclass(frozen=True, slots=True)
class UpdateOutbox:
    message_id: str
    recipient: str
    state: RecipientState
    at: datetime
    receipt_sha256: str | None


@dataclass(frozen=True, slots=True)
class StoreReceipt:
    receipt_xml: bytes
    sha256: str
    message_id: str
    kind: ReceiptKind
    answerer: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SetInboxState:
    department: str
    message_id: str
    state: InboxState
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class HopSent:
    message_id: str
    next_hop: str
    at: datetime


@dataclass(frozen=True, slots=True)
class HopRetry:
    message_id: str
    next_hop: str
    attempts: int
    next_attempt_at: datetime
    error: str


@dataclass(frozen=True, slots=True)
class HopFailed:
    message_id: str
    next_hop: str
    error: str
    at: datetime


Action = (
    Accept
    | Drop
    | Enqueue
    | FileInbox
    | RecordSent
    | UpdateOutbox
    | StoreReceipt
    | SetInboxState
    | HopSent
    | HopRetry
    | HopFailed
)


# --- decisions -----------------------------------------------------------------------------------------------


def receive(envelope: InspectedEnvelope, view: NodeView, known: Known, now: datetime) -> tuple[Action, ...]:
    """An envelope arrived (its node signature already verified by ``inspect``): what to do with it.

    Raises ``VerificationError`` (a permanent fault: the listener answers 5xx and nothing is stored) for an
    envelope not routed through this node, one that does not open, or a receipt that does not verify.
    """
    out: list[Action] = []
    _receive(envelope, view, _Pending(known, out), now, out)
    return tuple(out)


def originate(
    sealed: Sealed, sender_department: str, view: NodeView, known: Known, now: datetime
) -> tuple[Action, ...]:
    """A department at this node sends a sealed document: open its outbox entry, then route it like any other."""
    header = sealed.header
    if header.sender_node != view.node_id:
        raise ConfigError(f"the envelope was sealed by node {header.sender_node}, not by this node {view.node_id}")
    route = plan(view.directory, view.node_id, header.recipients, header.classification)
    out: list[Action] = [RecordSent(sender_department, SentRecord.of(sealed), dict(route.paths), now)]
    _receive(inspect(sealed.envelope_xml, view.trust), view, _Pending(known, out), now, out)
    return tuple(out)


def answer(
    item: InboxItem,
    kind: ReceiptKind,
    view: NodeView,
    known: Known,
    now: datetime,
    reason: str | None = None,
) -> tuple[Action, ...]:
    """A clerk signs for (签收) or returns (退回) a document in the inbox; the receipt goes back to the sender.

    Made from the stored digests, not by opening the envelope again: a clerk may answer after it expired.
    """
    states = {ReceiptKind.SIGNED_FOR: InboxState.SIGNED_FOR, ReceiptKind.RETURNED: InboxState.RETURNED}
    if kind not in states:
        raise InputError(f"a clerk answers 签收 or 退回, not {kind}")
    if item.state is not InboxState.NEW:
        raise InputError(f"message {item.message_id} was already answered ({item.state})")
    keys = _keys(view, item.department)
    receipt = Receipt(
        kind=kind,
        message_id=item.message_id,
        envelope_sha256=item.envelope_sha256,
        document_sha256=item.document_sha256,
        role=AnswererRole.DEPARTMENT,
        answerer=item.department,
        time=now.replace(microsecond=0),
        reason=reason,
    )
    out: list[Action] = [SetInboxState(item.department, item.message_id, states[kind], reason, now)]
    _send_receipt(
        sign_receipt(receipt, keys.signer),
        sender_department=item.department,
        recipient=item.sender_department,
        in_reply_to=item.message_id,
        classification=item.classification,
        view=view,
        known=_Pending(known, out),
        now=now,
        out=out,
    )
    return tuple(out)


def backoff(policy: RetryPolicy, attempts: int, rand: Callable[[], float]) -> timedelta:
    """The wait after ``attempts`` failed attempts (≥ 1): full jitter under a capped exponential ceiling."""
    ceiling = min(policy.cap, policy.base * (1 << min(max(attempts - 1, 0), 32)))
    return ceiling * rand()


def attempt_succeeded(hop: Hop, now: datetime) -> tuple[Action, ...]:
    """The next hop answered 250: the copy is its responsibility now."""
    return (HopSent(hop.message_id, hop.next_hop, now),)


def attempt_failed(
    hop: Hop,
    envelope: InspectedEnvelope,
    view: NodeView,
    known: Known,
    now: datetime,
    *,
    error: str,
    permanent: bool,
    rand: Callable[[], float],
) -> tuple[Action, ...]:
    """Sending ``hop`` failed: retry later (transient, 4xx or no connection), or give up and answer 投递失败
    (permanent, 5xx, or the envelope has expired)."""
    if permanent or envelope.header.expired(now):
        reason = f"{hop.next_hop} 拒收：{error}" if permanent else f"信封已过期，未能送达 {hop.next_hop}（{error}）"
        return _give_up(hop, envelope, view, known, now, reason, error)
    attempts = hop.attempts + 1
    # Never sleep past expiry: the attempt due just after it is the one that finds it expired and answers.
    due = min(now + backoff(view.retry, attempts, rand), hop.expires + timedelta(seconds=1))
    return (HopRetry(hop.message_id, hop.next_hop, attempts, due, error),)


def expire(hop: Hop, envelope: InspectedEnvelope, view: NodeView, known: Known, now: datetime) -> tuple[Action, ...]:
    """A queued copy found expired when it came due: fail it without another attempt."""
    if not envelope.header.expired(now):
        raise ConfigError(f"message {hop.message_id} has not expired yet")
    return _give_up(hop, envelope, view, known, now, f"信封已过期，未能送达 {hop.next_hop}", "expired")


# --- internals -----------------------------------------------------------------------------------------------


class _Pending:
    """What the store knows plus what the actions decided so far in this transaction would add."""

    def __init__(self, known: Known, actions: list[Action]) -> None:
        self._known = known
        self._actions = actions

    def seen(self, message_id: str) -> bool:
        return self._known.seen(message_id) or any(
            isinstance(a, Accept) and a.envelope.header.message_id == message_id for a in self._actions
        )

    def filed(self, department: str, document_sha256: str) -> str | None:
        for a in self._actions:
            if isinstance(a, FileInbox) and (a.department, a.document_sha256) == (department, document_sha256):
                return a.message_id
        return self._known.filed(department, document_sha256)

    def sent(self, message_id: str) -> SentInfo | None:
        info = self._known.sent(message_id)
        for a in self._actions:
            if isinstance(a, RecordSent) and a.record.message_id == message_id:
                states = dict.fromkeys(a.record.recipients, RecipientState.QUEUED)
                info = SentInfo(a.sender_department, a.record, a.paths, states)
            elif isinstance(a, UpdateOutbox) and a.message_id == message_id and info is not None:
                info = replace(info, states={**info.states, a.recipient: a.state})
        return info


def _receive(envelope: InspectedEnvelope, view: NodeView, known: Known, now: datetime, out: list[Action]) -> None:
    header = envelope.header
    if known.seen(header.message_id):
        out.append(Drop(header.message_id, "duplicate message id"))
        return
    if header.kind is MessageKind.DOCUMENT:
        _check_home(view.directory, header.sender_department, header.sender_node, "a document of")
    route = plan(view.directory, header.sender_node, header.recipients, header.classification)
    local = route.delivered_at(view.node_id)
    onward = route.next_hops(view.node_id)
    if not local and not onward:
        raise EnvelopeError(f"message {header.message_id} is not routed through node {view.node_id}")
    # From the future: a document delivered here, beyond the skew its signatures are allowed (they were made just
    # before it was sealed); anything else — a copy this node only carries, a receipt — an hour, so that a clock
    # some minutes off (a relay's stepped back) cuts nobody off, while an envelope dated days ahead goes nowhere.
    skew = CLOCK_SKEW if local and header.kind is MessageKind.DOCUMENT else RELAY_CLOCK_SKEW
    if header.created > now + skew:
        raise EnvelopeError(
            f"message {header.message_id} claims to be created at {header.created:%Y-%m-%d %H:%M:%S} UTC, "
            f"later than this node's clock allows ({skew.seconds // 60} minutes of skew)"
        )
    out.append(Accept(envelope, now))
    if header.expired(now):
        if header.kind is MessageKind.DOCUMENT:
            here = (*local, *(code for codes in onward.values() for code in codes))
            _fail(envelope, here, "信封已过期", view, known, now, out)
        else:
            out.append(Drop(header.message_id, "expired receipt: not answered"))
        return
    for next_hop, recipients in onward.items():
        out.append(Enqueue(header.message_id, next_hop, recipients, header.expires, now))
    for department in local:
        if header.kind is MessageKind.DOCUMENT:
            _deliver(envelope, department, view, known, now, out)
        elif header.kind is MessageKind.RECEIPT:
            _take_receipt(envelope, department, known, view, now, out)
        else:
            raise EnvelopeError(f"this node does not deliver {header.kind} envelopes")


def _deliver(
    envelope: InspectedEnvelope, department: str, view: NodeView, known: Known, now: datetime, out: list[Action]
) -> None:
    keys = _keys(view, department)
    opened = open_envelope(envelope.envelope_xml, department, keys.encryption_key, view.trust, now=now)
    header = envelope.header
    earlier = known.filed(department, opened.document.digest)
    if earlier is not None:  # a node re-sealing a document it saw, under a new message id: a replay
        raise EnvelopeError(
            f"message {header.message_id} is a replay: {department} filed this signed document as message {earlier}"
        )
    out.append(
        FileInbox(
            department,
            header.message_id,
            envelope.envelope_sha256,
            opened.document.signed_bytes,
            opened.document.digest,
            now,
        )
    )
    _send_receipt(
        make_receipt(ReceiptKind.DELIVERED, opened, keys.signer, now=now),
        sender_department=department,
        recipient=header.sender_department,
        in_reply_to=header.message_id,
        classification=header.classification,
        view=view,
        known=known,
        now=now,
        out=out,
    )


def _take_receipt(
    envelope: InspectedEnvelope, department: str, known: Known, view: NodeView, now: datetime, out: list[Action]
) -> None:
    original = envelope.header.in_reply_to
    sent = known.sent(original) if original is not None else None
    if sent is None or sent.sender_department != department:
        raise EnvelopeError(f"the receipt answers message {original}, which {department} did not send from here")
    verified = verify_receipt(receipt_content(envelope), sent.record, view.trust, route_nodes=sent.route_nodes)
    receipt = verified.receipt
    if receipt.role is AnswererRole.DEPARTMENT:
        _check_home(view.directory, receipt.answerer, envelope.header.sender_node, "a receipt of")
    else:
        if receipt.answerer != envelope.header.sender_node:
            raise EnvelopeError(
                f"node {envelope.header.sender_node} sent a 投递失败 made by node {receipt.answerer}, not its own"
            )
        off_branch = [code for code in receipt.failed_for if receipt.answerer not in sent.paths.get(code, ())]
        if off_branch:
            raise EnvelopeError(
                f"node {receipt.answerer} is not on the route to {'、'.join(off_branch)} and cannot report its failure"
            )
    digest = receipt_sha256(verified.receipt_xml)
    out.append(StoreReceipt(verified.receipt_xml, digest, receipt.message_id, receipt.kind, receipt.answerer, now))
    if receipt.role is AnswererRole.DEPARTMENT:
        affected: tuple[str, ...] = (receipt.answerer,)
    elif receipt.failed_for:  # a node's 投递失败 names the recipients behind the hop that failed
        affected = receipt.failed_for
    else:  # or, unsaid, concerns every recipient whose route passes it
        affected = tuple(code for code, path in sent.paths.items() if receipt.answerer in path)
    state = _RECEIPT_STATE[receipt.kind]
    for code in affected:
        if advances(sent.states.get(code, RecipientState.QUEUED), state):
            out.append(UpdateOutbox(receipt.message_id, code, state, now, digest))


def _check_home(directory: Directory, department: str, sender_node: str, what: str) -> None:
    """A department's documents and receipts are sent by its home node: another node with a valid certificate
    re-sealing them (a replay under a new message id, a forged 送达) is refused."""
    entry = directory.find_department(department)
    if entry is None:
        raise EnvelopeError(f"department {department} is not in directory {directory.serial}")
    if entry.home_node != sender_node:
        raise EnvelopeError(
            f"{what} {department} must come from its home node {entry.home_node}, not from node {sender_node}"
        )


def _give_up(
    hop: Hop, envelope: InspectedEnvelope, view: NodeView, known: Known, now: datetime, reason: str, error: str
) -> tuple[Action, ...]:
    out: list[Action] = [HopFailed(hop.message_id, hop.next_hop, error, now)]
    if envelope.header.kind is MessageKind.DOCUMENT:
        _fail(envelope, hop.recipients, reason, view, _Pending(known, out), now, out)
    return tuple(out)


def _fail(
    envelope: InspectedEnvelope,
    recipients: tuple[str, ...],
    reason: str,
    view: NodeView,
    known: Known,
    now: datetime,
    out: list[Action],
) -> None:
    """Answer 投递失败 to the sender. The notice's envelope names as its sending department the first recipient
    it reports on: an envelope needs a department, and the node signs both the notice and its envelope."""
    header = envelope.header
    notice = make_failure(
        envelope, view.node_signer, node_id=view.node_id, now=now, reason=reason, recipients=recipients
    )
    _send_receipt(
        notice,
        sender_department=recipients[0] if recipients else header.recipients[0],
        recipient=header.sender_department,
        in_reply_to=header.message_id,
        classification=header.classification,
        view=view,
        known=known,
        now=now,
        out=out,
    )


def _send_receipt(
    receipt_xml: bytes,
    *,
    sender_department: str,
    recipient: str,
    in_reply_to: str,
    classification: Classification,
    view: NodeView,
    known: Known,
    now: datetime,
    out: list[Action],
) -> None:
    sealed = seal_receipt(
        receipt_xml,
        view.node_signer,
        sender_department=sender_department,
        node_id=view.node_id,
        recipient=recipient,
        in_reply_to=in_reply_to,
        now=now,
        classification=classification,
        random=view.random,
    )
    _receive(inspect(sealed.envelope_xml, view.trust), view, known, now, out)


def _keys(view: NodeView, department: str) -> DepartmentKeys:
    keys = view.departments.get(department)
    if keys is None:
        raise ConfigError(f"department {department} is served by node {view.node_id}, but its keys are not configured")
    return keys


__all__ = [
    "RELAY_CLOCK_SKEW",
    "Accept",
    "Action",
    "DepartmentKeys",
    "Drop",
    "Enqueue",
    "FileInbox",
    "Hop",
    "HopFailed",
    "HopRetry",
    "HopSent",
    "InboxItem",
    "InboxState",
    "Known",
    "NodeView",
    "RecipientState",
    "RecordSent",
    "RetryPolicy",
    "SentInfo",
    "SetInboxState",
    "StoreReceipt",
    "UpdateOutbox",
    "advances",
    "answer",
    "attempt_failed",
    "attempt_succeeded",
    "backoff",
    "expire",
    "originate",
    "receive",
]
