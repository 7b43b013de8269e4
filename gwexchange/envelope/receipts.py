"""Receipts (回执): signed answers that prove what was received (``gwexchange/schemas/receipt.xsd``).

A receipt names the envelope it answers and binds the exact bytes: the SHA-256 of the envelope as it travelled
and, from a department, of the exact signed document inside. The sender keeps a ``SentRecord`` of what it sent;
``verify_receipt`` checks a receipt against it — signature, the answerer's right to answer, the digest binding —
and returns the verified ``Receipt``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from lxml import etree

from gwexchange import xmlsafe
from gwexchange.crypto.certificates import Usage
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import SIGNATURE_TAG, Signer, sign_enveloped, verify_enveloped
from gwexchange.envelope import schema
from gwexchange.envelope.header import parse_time
from gwexchange.envelope.sealing import InspectedEnvelope, OpenedEnvelope, Sealed
from gwexchange.envelope.times import format_utc
from gwexchange.errors import EnvelopeError, SignatureError

RECEIPT_NS = "urn:gwexchange:receipt:1"
_Q = "{" + RECEIPT_NS + "}"
MAX_RECEIPT_BYTES = 1024 * 1024


class ReceiptKind(StrEnum):
    DELIVERED = "送达"  # the recipient node verified and durably stored it
    SIGNED_FOR = "签收"  # a clerk accepted it
    RETURNED = "退回"  # a clerk refused it, with a reason
    FAILED = "投递失败"  # not delivered before it expired, or no permitted route

    @property
    def needs_reason(self) -> bool:
        return self in (ReceiptKind.RETURNED, ReceiptKind.FAILED)


class AnswererRole(StrEnum):
    DEPARTMENT = "department"
    NODE = "node"


@dataclass(frozen=True, slots=True)
class Receipt:
    kind: ReceiptKind
    message_id: str
    envelope_sha256: str
    document_sha256: str | None
    role: AnswererRole
    answerer: str
    time: datetime
    reason: str | None = None
    failed_for: tuple[str, ...] = ()  # 投递失败: the recipients the node could not reach (empty: not said)

    def __post_init__(self) -> None:
        if self.failed_for and self.kind is not ReceiptKind.FAILED:
            raise EnvelopeError("only a 投递失败 names the recipients it concerns")
        if self.kind.needs_reason and not self.reason:
            raise EnvelopeError(f"a {self.kind} receipt must give a reason")
        if self.role is AnswererRole.NODE and self.kind is not ReceiptKind.FAILED:
            raise EnvelopeError("a node answers only 投递失败; the other receipts come from departments")
        if self.role is AnswererRole.DEPARTMENT and self.kind is ReceiptKind.FAILED:
            # A recipient that opened a document cannot later claim it never arrived: 投递失败 is the nodes'.
            raise EnvelopeError("投递失败 comes only from nodes; a department answers 送达, 签收 or 退回")
        if self.role is AnswererRole.DEPARTMENT and self.document_sha256 is None:
            raise EnvelopeError("a department's receipt binds the digest of the document it received")


@dataclass(frozen=True, slots=True)
class SentRecord:
    """What the sender keeps of an envelope to check the answers to it."""

    message_id: str
    envelope_sha256: str
    document_sha256: str
    recipients: tuple[str, ...]

    @classmethod
    def of(cls, sealed: Sealed) -> SentRecord:
        return cls(
            message_id=sealed.header.message_id,
            envelope_sha256=sealed.envelope_sha256,
            document_sha256=sealed.document_sha256,
            recipients=sealed.header.recipients,
        )


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    receipt: Receipt
    signer_name: str
    receipt_xml: bytes


def make_receipt(
    kind: ReceiptKind,
    answered: OpenedEnvelope,
    signer: Signer,
    *,
    now: datetime,
    reason: str | None = None,
) -> bytes:
    """A department's signed receipt (送达, 签收, 退回) for an envelope it opened."""
    receipt = Receipt(
        kind=kind,
        message_id=answered.envelope.header.message_id,
        envelope_sha256=answered.envelope.envelope_sha256,
        document_sha256=answered.document.digest,
        role=AnswererRole.DEPARTMENT,
        answerer=answered.department,
        time=now.replace(microsecond=0),
        reason=reason,
    )
    return sign_receipt(receipt, signer)


def make_failure(
    answered: InspectedEnvelope,
    signer: Signer,
    *,
    node_id: str,
    now: datetime,
    reason: str,
    recipients: tuple[str, ...] = (),
) -> bytes:
    """A node's signed 投递失败 for an envelope it could not deliver to ``recipients`` (it cannot open it, so no
    document digest)."""
    receipt = Receipt(
        kind=ReceiptKind.FAILED,
        message_id=answered.header.message_id,
        envelope_sha256=answered.envelope_sha256,
        document_sha256=None,
        role=AnswererRole.NODE,
        answerer=node_id,
        time=now.replace(microsecond=0),
        reason=reason,
        failed_for=recipients,
    )
    return sign_receipt(receipt, signer)


def sign_receipt(receipt: Receipt, signer: Signer) -> bytes:
    root = etree.Element(_Q + "Receipt", nsmap={"rc": RECEIPT_NS})
    for local, text in (
        ("Kind", receipt.kind.value),
        ("MessageId", receipt.message_id),
        ("EnvelopeDigest", receipt.envelope_sha256),
        ("DocumentDigest", receipt.document_sha256),
    ):
        if text is not None:
            etree.SubElement(root, _Q + local).text = text
    etree.SubElement(root, _Q + "Answerer", role=receipt.role.value, code=receipt.answerer)
    etree.SubElement(root, _Q + "Time").text = format_utc(receipt.time)
    if receipt.reason is not None:
        etree.SubElement(root, _Q + "Reason").text = receipt.reason
    for code in receipt.failed_for:
        etree.SubElement(root, _Q + "Recipient", code=code)
    sign_enveloped(root, signer)
    schema.check_receipt(root)  # never hand out a receipt a verifier would refuse
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def verify_receipt(
    receipt_xml: bytes,
    original: SentRecord,
    trust: TrustPolicy,
    *,
    route_nodes: frozenset[str] = frozenset(),
) -> VerifiedReceipt:
    """Check a receipt's signature, the answerer's right to answer and its binding to what was sent.

    A department may answer if it was a recipient; a node may answer 投递失败 if it is on the route
    (``route_nodes``, the nodes the envelope was to pass).
    """
    verified = verify_receipt_signature(receipt_xml, trust)
    receipt = verified.receipt
    if receipt.message_id != original.message_id:
        raise EnvelopeError(f"the receipt answers message {receipt.message_id}, not {original.message_id}")
    if receipt.envelope_sha256 != original.envelope_sha256:
        raise EnvelopeError("the receipt is bound to other envelope bytes than those sent")
    if receipt.role is AnswererRole.DEPARTMENT:
        if receipt.answerer not in original.recipients:
            raise EnvelopeError(f"{receipt.answerer} was not a recipient and cannot answer this document")
        if receipt.document_sha256 != original.document_sha256:
            raise EnvelopeError("the receipt is bound to another document than the one sent")
    elif receipt.answerer not in route_nodes:
        raise EnvelopeError(f"node {receipt.answerer} is not on this envelope's route and cannot report failure")
    strangers = [code for code in receipt.failed_for if code not in original.recipients]
    if strangers:
        raise EnvelopeError(f"the 投递失败 names {'、'.join(strangers)}, who were not recipients of this document")
    return verified


def verify_receipt_signature(receipt_xml: bytes, trust: TrustPolicy) -> VerifiedReceipt:
    """Who signed this receipt, and that the signature and certificate hold — but not what it answers:
    only ``verify_receipt``, given the sender's record, proves the binding to what was sent."""
    root = xmlsafe.parse(receipt_xml, max_bytes=MAX_RECEIPT_BYTES)
    if root.tag != _Q + "Receipt":
        raise EnvelopeError(f"not a gwexchange receipt (root element must be rc:Receipt in {RECEIPT_NS})")
    schema.check_receipt(root)
    receipt = _read(root)
    signature = root[-1]
    if signature.tag != SIGNATURE_TAG or sum(1 for _ in root.iter(SIGNATURE_TAG)) != 1:
        raise SignatureError("a receipt carries exactly one signature, as its last element")
    usage = Usage.SIGNING if receipt.role is AnswererRole.DEPARTMENT else Usage.NODE
    signer = verify_enveloped(root, signature, trust=trust, at=receipt.time, usage=usage)
    if signer.identity.code != receipt.answerer:
        raise EnvelopeError(f"the receipt names {receipt.answerer}, but {signer.identity.code} signed it")
    return VerifiedReceipt(receipt=receipt, signer_name=signer.identity.name, receipt_xml=receipt_xml)


def receipt_sha256(receipt_xml: bytes) -> str:
    return hashlib.sha256(receipt_xml).hexdigest()


def _read(root: etree._Element) -> Receipt:
    def text(local: str) -> str | None:
        el = root.find(_Q + local)
        return None if el is None else el.text or ""

    answerer = root.find(_Q + "Answerer")
    if answerer is None:
        raise EnvelopeError("the receipt names no answerer")
    try:
        return Receipt(
            kind=ReceiptKind(text("Kind") or ""),
            message_id=text("MessageId") or "",
            envelope_sha256=text("EnvelopeDigest") or "",
            document_sha256=text("DocumentDigest"),
            role=AnswererRole(answerer.get("role", "")),
            answerer=answerer.get("code", ""),
            time=parse_time(text("Time") or ""),
            reason=text("Reason"),
            failed_for=tuple(el.get("code", "") for el in root.iterfind(_Q + "Recipient")),
        )
    except ValueError as e:
        raise EnvelopeError(f"the receipt is malformed: {e}") from e


__all__ = [
    "MAX_RECEIPT_BYTES",
    "RECEIPT_NS",
    "AnswererRole",
    "Receipt",
    "ReceiptKind",
    "SentRecord",
    "VerifiedReceipt",
    "make_failure",
    "make_receipt",
    "receipt_sha256",
    "sign_receipt",
    "verify_receipt",
    "verify_receipt_signature",
]
