"""Receipts (回执): all four kinds made, signed, carried in receipt envelopes and verified against what was sent;
and every receipt the sender must refuse, with the error it must raise.

* 送达, 签收 and 退回 from a department that opened the envelope; 投递失败 from a node on the route.
* Refused: 退回 or 投递失败 without a reason; a node answering anything but 投递失败; 投递失败 from a node off the
  route; a receipt signed by another department than it names, or with the wrong kind of certificate; one from a
  department that was not a recipient; a wrong message id, envelope digest or document digest; any change to a
  signed receipt; schema violations.
* ``seal_receipt`` and ``receipt_content``: a receipt travels in an envelope of kind receipt and comes out as the
  same bytes.

The PKI is made here (the session PKI's node id ``gd-hub.gov`` is not a valid envelope node id): the departments
of the examples with EC keys, an RSA department, and three nodes.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gwexchange.crypto.certificates import Role, Usage, identity_of
from gwexchange.crypto.xmldsig import SIGNATURE_TAG, Signer, sign_enveloped
from gwexchange.envelope.header import MessageKind, eq
from gwexchange.envelope.model import Classification, Department, Document, Urgency
from gwexchange.envelope.receipts import (
    RECEIPT_NS,
    AnswererRole,
    Receipt,
    ReceiptKind,
    SentRecord,
    VerifiedReceipt,
    make_failure,
    make_receipt,
    receipt_sha256,
    sign_receipt,
    verify_receipt,
)
from gwexchange.envelope.sealing import (
    OpenedEnvelope,
    Sealed,
    inspect,
    open_envelope,
    receipt_content,
    seal,
    seal_receipt,
)
from gwexchange.envelope.signing import VerifiedDocument, sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.errors import EnvelopeError, SignatureError, TrustError, XmlInputError

OFFICE = "gd.gov.office"
CZT = "gd.gov.czt"
GXT = "gd.gov.gxt"
RSA = "gd.gov.rsa"
OUTSIDER = "gz.gov.office"  # has certificates, but the document does not name it
HUB = "gd-hub"  # the sender's node
CZT_HUB = "gz-hub"  # the recipient's node
OFF_ROUTE = "sz-hub"
DEPARTMENTS = {
    OFFICE: "广东省人民政府办公厅",
    CZT: "广东省财政厅",
    GXT: "广东省工业和信息化厅",
    OUTSIDER: "广州市人民政府办公厅",
}
RC = "{" + RECEIPT_NS + "}"
SCHEMA = Path(__file__).resolve().parents[2] / "gwexchange" / "schemas" / "receipt.xsd"
REASONS = {ReceiptKind.RETURNED: "文种使用不当，请按规定改为函后重新发送", ReceiptKind.FAILED: "信封已过期，未能投递"}


@dataclasses.dataclass
class World:
    pki: Any  # conftest's Pki
    trust: Any
    now: datetime
    verified: VerifiedDocument
    sealed: Sealed

    @property
    def record(self) -> SentRecord:
        return SentRecord.of(self.sealed)

    def opened(self, code: str) -> OpenedEnvelope:
        return open_envelope(
            self.sealed.envelope_xml, code, self.pki.key(code, Usage.ENCRYPTION), self.trust, now=self.now
        )

    def signer(self, code: str, usage: Usage = Usage.SIGNING) -> Signer:
        signer: Signer = self.pki.signer(code, usage)
        return signer

    def node(self, code: str) -> Signer:
        return self.signer(code, Usage.NODE)

    def verify(self, receipt_xml: bytes, **kwargs: Any) -> VerifiedReceipt:
        return verify_receipt(receipt_xml, kwargs.pop("record", self.record), self.trust, **kwargs)

    def receipt(self, **changes: Any) -> Receipt:
        """A 签收 from gd.gov.czt for the sealed envelope, with ``changes``."""
        receipt = Receipt(
            kind=ReceiptKind.SIGNED_FOR,
            message_id=self.sealed.header.message_id,
            envelope_sha256=self.sealed.envelope_sha256,
            document_sha256=self.verified.digest,
            role=AnswererRole.DEPARTMENT,
            answerer=CZT,
            time=self.now,
        )
        return dataclasses.replace(receipt, **changes)


@pytest.fixture(scope="module")
def world(make_pki: Callable[..., Any], document_builder: Callable[..., Document], now: datetime) -> World:
    pki = make_pki(departments=DEPARTMENTS, rsa_department=True, node=False)
    start = pki.root.not_valid_before_utc
    for node, name in ((HUB, "广东省公文交换节点"), (CZT_HUB, "广州市公文交换节点"), (OFF_ROUTE, "深圳市公文交换节点")):
        pki.issue(node, name, Role.NODE, now=start)
    trust = pki.trust()
    doc = document_builder(
        classification=Classification.INTERNAL,
        urgency=Urgency.EXTRA_URGENT,
        main_recipients=(Department(CZT, DEPARTMENTS[CZT]),),
        copy_recipients=(Department(RSA),),
    )
    signed = sign_document(document_to_xml(doc), pki.signer(OFFICE), at=now)
    verified = verify_document(signed, trust, now=now)
    sealed = seal(
        verified,
        {code: pki.cert(code, Usage.ENCRYPTION) for code in (CZT, RSA)},
        pki.signer(HUB, Usage.NODE),
        trust=trust,
        sender_department=OFFICE,
        node_id=HUB,
        now=now,
    )
    return World(pki=pki, trust=trust, now=now, verified=verified, sealed=sealed)


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def unsigned_receipt(receipt: Receipt) -> etree._Element:
    """The receipt XML before signing, written out here (not by gwexchange) from schemas/receipt.xsd."""
    root = etree.Element(RC + "Receipt", nsmap={"rc": RECEIPT_NS})
    etree.SubElement(root, RC + "Kind").text = receipt.kind.value
    etree.SubElement(root, RC + "MessageId").text = receipt.message_id
    etree.SubElement(root, RC + "EnvelopeDigest").text = receipt.envelope_sha256
    if receipt.document_sha256 is not None:
        etree.SubElement(root, RC + "DocumentDigest").text = receipt.document_sha256
    etree.SubElement(root, RC + "Answerer", role=receipt.role.value, code=receipt.answerer)
    etree.SubElement(root, RC + "Time").text = receipt.time.strftime("%Y-%m-%dT%H:%M:%SZ")
    if receipt.reason is not None:
        etree.SubElement(root, RC + "Reason").text = receipt.reason
    return root


def hand_signed(root: etree._Element, signer: Signer) -> bytes:
    """Sign receipt XML without ``sign_receipt``'s checks, as a careless or hostile answerer could."""
    sign_enveloped(root, signer)
    return serialise(root)


def resign(receipt_xml: bytes, signer: Signer, change: Callable[[etree._Element], object]) -> bytes:
    root = parse(receipt_xml)
    assert root[-1].tag == SIGNATURE_TAG
    root.remove(root[-1])
    change(root)
    return hand_signed(root, signer)


# --- the four kinds ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answerer", [CZT, RSA])
@pytest.mark.parametrize("kind", [ReceiptKind.DELIVERED, ReceiptKind.SIGNED_FOR, ReceiptKind.RETURNED])
def test_a_department_receipt_verifies(world: World, kind: ReceiptKind, answerer: str) -> None:
    opened = world.opened(answerer)
    at = world.now + timedelta(minutes=5, microseconds=123456)
    receipt_xml = make_receipt(kind, opened, world.signer(answerer), now=at, reason=REASONS.get(kind))
    verified = world.verify(receipt_xml)
    r = verified.receipt
    assert r.kind is kind
    assert r.message_id == world.sealed.header.message_id
    assert r.envelope_sha256 == world.sealed.envelope_sha256 == hashlib.sha256(world.sealed.envelope_xml).hexdigest()
    assert r.document_sha256 == world.verified.digest == hashlib.sha256(world.verified.signed_bytes).hexdigest()
    assert r.role is AnswererRole.DEPARTMENT
    assert r.answerer == answerer
    assert r.time == at.replace(microsecond=0)
    assert r.reason == REASONS.get(kind)
    assert verified.receipt_xml == receipt_xml
    assert verified.signer_name == identity_of(world.pki.cert(answerer)).name
    assert receipt_sha256(receipt_xml) == hashlib.sha256(receipt_xml).hexdigest()
    # What the receipt says, as written in its XML.
    root = parse(receipt_xml)
    assert root.findtext(RC + "Kind") == kind.value
    assert root.findtext(RC + "EnvelopeDigest") == world.sealed.envelope_sha256
    assert root.findtext(RC + "DocumentDigest") == world.verified.digest
    assert etree.XMLSchema(etree.parse(str(SCHEMA))).validate(root)


def test_receipt_names_its_signer(world: World) -> None:
    verified = world.verify(make_receipt(ReceiptKind.SIGNED_FOR, world.opened(CZT), world.signer(CZT), now=world.now))
    assert verified.signer_name == DEPARTMENTS[CZT]


@pytest.mark.parametrize("node", [HUB, CZT_HUB])
def test_a_failure_from_a_node_on_the_route_verifies(world: World, node: str) -> None:
    inspected = inspect(world.sealed.envelope_xml, world.trust)
    reason = REASONS[ReceiptKind.FAILED]
    receipt_xml = make_failure(inspected, world.node(node), node_id=node, now=world.now, reason=reason)
    verified = world.verify(receipt_xml, route_nodes=frozenset({HUB, CZT_HUB}))
    r = verified.receipt
    assert (r.kind, r.role, r.answerer, r.document_sha256) == (ReceiptKind.FAILED, AnswererRole.NODE, node, None)
    assert r.reason == REASONS[ReceiptKind.FAILED]
    assert r.envelope_sha256 == world.sealed.envelope_sha256
    assert parse(receipt_xml).find(RC + "DocumentDigest") is None


def test_a_failure_from_a_node_off_the_route_is_refused(world: World) -> None:
    inspected = inspect(world.sealed.envelope_xml, world.trust)
    receipt_xml = make_failure(inspected, world.node(OFF_ROUTE), node_id=OFF_ROUTE, now=world.now, reason="无路由")
    for route in (frozenset(), frozenset({HUB, CZT_HUB})):
        with pytest.raises(EnvelopeError, match="not on this envelope's route"):
            world.verify(receipt_xml, route_nodes=route)
    assert world.verify(receipt_xml, route_nodes=frozenset({OFF_ROUTE})).receipt.answerer == OFF_ROUTE


def test_an_expired_envelope_is_answered_by_its_node(world: World) -> None:
    """The node cannot deliver an expired envelope, but can still read it and answer 投递失败."""
    later = world.now + timedelta(days=8)
    inspected = inspect(world.sealed.envelope_xml, world.trust)
    assert inspected.header.expired(later)
    with pytest.raises(EnvelopeError, match="expired"):
        open_envelope(world.sealed.envelope_xml, CZT, world.pki.key(CZT, Usage.ENCRYPTION), world.trust, now=later)
    failure = make_failure(inspected, world.node(CZT_HUB), node_id=CZT_HUB, now=later, reason="信封已过期")
    assert world.verify(failure, route_nodes=frozenset({CZT_HUB})).receipt.time == later


# --- reasons and roles -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [None, ""])
def test_returned_without_a_reason_is_refused(world: World, reason: str | None) -> None:
    with pytest.raises(EnvelopeError, match="must give a reason"):
        make_receipt(ReceiptKind.RETURNED, world.opened(CZT), world.signer(CZT), now=world.now, reason=reason)
    with pytest.raises(EnvelopeError, match="must give a reason"):
        make_failure(
            inspect(world.sealed.envelope_xml, world.trust),
            world.node(HUB),
            node_id=HUB,
            now=world.now,
            reason=reason,  # type: ignore[arg-type]
        )


def test_a_signed_returned_receipt_without_a_reason_is_refused(world: World) -> None:
    """Written and signed by hand, past ``Receipt``'s own check: the verifier refuses it."""
    root = unsigned_receipt(world.receipt(kind=ReceiptKind.RETURNED, reason="x"))
    reason = root.find(RC + "Reason")
    assert reason is not None
    root.remove(reason)
    receipt_xml = hand_signed(root, world.signer(CZT))
    with pytest.raises(EnvelopeError, match="must give a reason"):
        world.verify(receipt_xml)
    # An empty Reason is not a reason either (the schema says so).
    root = unsigned_receipt(world.receipt(kind=ReceiptKind.RETURNED, reason="x"))
    root.find(RC + "Reason").text = ""  # type: ignore[union-attr]
    with pytest.raises(EnvelopeError):
        world.verify(hand_signed(root, world.signer(CZT)))


@pytest.mark.parametrize("kind", [ReceiptKind.DELIVERED, ReceiptKind.SIGNED_FOR, ReceiptKind.RETURNED])
def test_a_node_answers_only_failure(world: World, kind: ReceiptKind) -> None:
    fields: dict[str, Any] = {
        "kind": kind,
        "role": AnswererRole.NODE,
        "answerer": HUB,
        "document_sha256": None,
        "reason": REASONS.get(kind),
    }
    with pytest.raises(EnvelopeError, match="a node answers only 投递失败"):
        world.receipt(**fields)
    # Written and signed by hand: a 投递失败 turned into another kind, the node's signature made over it.
    receipt = dataclasses.replace(world.receipt(), **{**fields, "kind": ReceiptKind.FAILED, "reason": "x"})
    root = unsigned_receipt(receipt)
    root.find(RC + "Kind").text = kind.value  # type: ignore[union-attr]
    if kind is not ReceiptKind.RETURNED:
        root.remove(root.find(RC + "Reason"))  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="a node answers only 投递失败"):
        world.verify(hand_signed(root, world.node(HUB)), route_nodes=frozenset({HUB}))


def test_a_department_receipt_binds_the_document(world: World) -> None:
    with pytest.raises(EnvelopeError, match="binds the digest of the document"):
        world.receipt(document_sha256=None)
    root = unsigned_receipt(world.receipt())
    root.remove(root.find(RC + "DocumentDigest"))  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="binds the digest of the document"):
        world.verify(hand_signed(root, world.signer(CZT)))


# --- who signed, who may answer ---------------------------------------------------------------------------------


def test_a_receipt_signed_by_another_department_is_refused(world: World) -> None:
    # gd.gov.gxt signs a receipt that names gd.gov.czt as the answerer.
    forged = make_receipt(ReceiptKind.SIGNED_FOR, world.opened(CZT), world.signer(GXT), now=world.now)
    with pytest.raises(EnvelopeError, match=r"names gd\.gov\.czt, but gd\.gov\.gxt signed it"):
        world.verify(forged)
    # The RSA department signs for the EC one, both recipients.
    forged = sign_receipt(world.receipt(), world.signer(RSA))
    with pytest.raises(EnvelopeError, match=r"names gd\.gov\.czt, but gd\.gov\.rsa signed it"):
        world.verify(forged)


def test_a_department_that_was_not_a_recipient_cannot_answer(world: World) -> None:
    """gd.gov.gxt and gz.gov.office sign receipts in their own names: right digests, but they were not addressed."""
    for code in (GXT, OUTSIDER):
        receipt_xml = sign_receipt(world.receipt(answerer=code), world.signer(code))
        with pytest.raises(EnvelopeError, match=f"{code} was not a recipient"):
            world.verify(receipt_xml)


def test_the_sender_itself_cannot_answer(world: World) -> None:
    receipt_xml = sign_receipt(world.receipt(answerer=OFFICE), world.signer(OFFICE))
    with pytest.raises(EnvelopeError, match="was not a recipient"):
        world.verify(receipt_xml)


@pytest.mark.parametrize(
    ("what", "answerer", "usage", "role", "error", "match"),
    [
        (
            "department receipt, encryption certificate",
            CZT,
            Usage.ENCRYPTION,
            AnswererRole.DEPARTMENT,
            TrustError,
            "not a signing certificate",
        ),
        (
            "department receipt, node certificate",
            HUB,
            Usage.NODE,
            AnswererRole.DEPARTMENT,
            TrustError,
            "node certificate, not a department one",
        ),
        (
            "node failure, department certificate",
            CZT,
            Usage.SIGNING,
            AnswererRole.NODE,
            TrustError,
            "department certificate, not a node one",
        ),
    ],
)
def test_a_receipt_signed_with_the_wrong_kind_of_certificate(
    world: World, what: str, answerer: str, usage: Usage, role: AnswererRole, error: type[Exception], match: str
) -> None:
    if role is AnswererRole.NODE:
        receipt = world.receipt(kind=ReceiptKind.FAILED, role=role, answerer=answerer, document_sha256=None, reason="x")
    else:
        receipt = world.receipt(answerer=answerer)
    receipt_xml = sign_receipt(receipt, world.signer(answerer, usage))
    with pytest.raises(error, match=match):
        world.verify(receipt_xml, route_nodes=frozenset({answerer}))


def test_a_receipt_dated_outside_the_certificate_is_refused(world: World) -> None:
    before = world.pki.root.not_valid_before_utc - timedelta(days=1)
    receipt_xml = sign_receipt(world.receipt(time=before), world.signer(CZT))
    with pytest.raises(TrustError, match="not valid at"):
        world.verify(receipt_xml)


def test_a_receipt_signed_under_another_root_is_refused(world: World, make_pki: Callable[..., Any]) -> None:
    stranger = make_pki(departments={CZT: "冒名财政厅"}, rsa_department=False, node=False)
    receipt_xml = sign_receipt(world.receipt(), stranger.signer(CZT))
    with pytest.raises(TrustError, match="configured root"):
        world.verify(receipt_xml)


# --- binding to what was sent ----------------------------------------------------------------------------------


def test_sent_record_keeps_what_was_sent(world: World) -> None:
    record = SentRecord.of(world.sealed)
    assert record.message_id == world.sealed.header.message_id
    assert record.envelope_sha256 == hashlib.sha256(world.sealed.envelope_xml).hexdigest()
    assert record.document_sha256 == hashlib.sha256(world.verified.signed_bytes).hexdigest()
    assert record.recipients == (CZT, RSA)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"message_id": "00000000-0000-4000-8000-000000000000"}, "answers message 00000000-"),
        ({"envelope_sha256": "0" * 64}, "other envelope bytes"),
        ({"envelope_sha256": hashlib.sha256(b"another envelope").hexdigest()}, "other envelope bytes"),
        ({"document_sha256": "f" * 64}, "another document"),
    ],
)
def test_a_receipt_bound_to_something_else_is_refused(world: World, changes: dict[str, Any], match: str) -> None:
    receipt_xml = sign_receipt(world.receipt(**changes), world.signer(CZT))
    with pytest.raises(EnvelopeError, match=match):
        world.verify(receipt_xml)


def test_a_receipt_for_another_envelope_of_the_same_document(world: World) -> None:
    """The same document sealed again is another message: a receipt for one does not answer the other."""
    again = seal(
        world.verified,
        {code: world.pki.cert(code, Usage.ENCRYPTION) for code in (CZT, RSA)},
        world.node(HUB),
        trust=world.trust,
        sender_department=OFFICE,
        node_id=HUB,
        now=world.now,
    )
    opened = open_envelope(again.envelope_xml, CZT, world.pki.key(CZT, Usage.ENCRYPTION), world.trust, now=world.now)
    receipt_xml = make_receipt(ReceiptKind.DELIVERED, opened, world.signer(CZT), now=world.now)
    assert world.verify(receipt_xml, record=SentRecord.of(again)).receipt.kind is ReceiptKind.DELIVERED
    with pytest.raises(EnvelopeError, match="answers message"):
        world.verify(receipt_xml)


def test_a_receipt_binds_the_exact_envelope_bytes(world: World) -> None:
    """An envelope re-serialised on the way still opens (the node signature covers its canonical form), but the
    receipt binds the bytes that arrived, and the sender sees they are not the bytes it sent."""
    altered = world.sealed.envelope_xml.replace(
        b"<?xml version='1.0' encoding='UTF-8'?>", b'<?xml version="1.0" encoding="UTF-8"?>'
    )
    assert altered != world.sealed.envelope_xml
    opened = open_envelope(altered, CZT, world.pki.key(CZT, Usage.ENCRYPTION), world.trust, now=world.now)
    receipt_xml = make_receipt(ReceiptKind.DELIVERED, opened, world.signer(CZT), now=world.now)
    with pytest.raises(EnvelopeError, match="other envelope bytes"):
        world.verify(receipt_xml)


# --- a changed receipt ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def returned(world: World) -> bytes:
    return make_receipt(
        ReceiptKind.RETURNED, world.opened(CZT), world.signer(CZT), now=world.now, reason=REASONS[ReceiptKind.RETURNED]
    )


@pytest.mark.parametrize(
    ("element", "attribute", "value"),
    [
        ("Kind", None, "签收"),
        ("MessageId", None, "00000000-0000-4000-8000-000000000000"),
        ("EnvelopeDigest", None, "0" * 64),
        ("DocumentDigest", None, "0" * 64),
        ("Answerer", "code", RSA),
        ("Time", None, "2026-11-19T08:00:00Z"),
        ("Reason", None, "同意"),
    ],
)
def test_a_changed_receipt_is_refused(
    world: World, returned: bytes, element: str, attribute: str | None, value: str
) -> None:
    root = parse(returned)
    target = root.find(RC + element)
    assert target is not None
    if attribute:
        target.set(attribute, value)
    else:
        target.text = value
    with pytest.raises(SignatureError, match="digest does not match"):
        world.verify(serialise(root))


def test_every_byte_of_a_receipt_is_covered(world: World, returned: bytes) -> None:
    """Each octet before the signature, flipped: malformed, invalid, or a broken signature — never accepted."""
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    start = returned.index(b"<rc:Receipt")
    end = returned.index(b"<ds:Signature")
    seen: dict[type[Exception], int] = {}
    for i in range(start, end):
        changed = returned[:i] + bytes([returned[i] ^ 0x01]) + returned[i + 1 :]
        try:
            tree = parse(changed)
        except etree.XMLSyntaxError:
            expected: type[Exception] = XmlInputError
        else:
            expected = SignatureError if schema.validate(tree) else EnvelopeError
        with pytest.raises((XmlInputError, EnvelopeError, SignatureError)) as caught:
            world.verify(changed)
        if expected is SignatureError and isinstance(caught.value, EnvelopeError):
            expected = EnvelopeError  # schema-valid, but a rule of Receipt (a node answering 签收…) came first
        assert type(caught.value) is expected, (i, changed[start:end].decode(errors="replace"), caught.value)
        seen[expected] = seen.get(expected, 0) + 1
    assert seen.get(SignatureError, 0) > 50, seen
    assert seen.get(XmlInputError, 0) > 0, seen


# --- not a receipt -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: r.remove(r.find(RC + "EnvelopeDigest")), "not a valid receipt"),
        (lambda r: r.find(RC + "Kind").__setattr__("text", "已读"), "not a valid receipt"),
        (lambda r: r.find(RC + "EnvelopeDigest").__setattr__("text", "A" * 64), "not a valid receipt"),
        (lambda r: r.find(RC + "Answerer").set("role", "clerk"), "not a valid receipt"),
        (lambda r: r.find(RC + "Time").__setattr__("text", "2026-11-20 08:00:00"), "not a valid receipt"),
        (lambda r: etree.SubElement(r, RC + "Note").__setattr__("text", "x"), "not a valid receipt"),
    ],
    ids=["no-envelope-digest", "unknown-kind", "upper-case-digest", "unknown-role", "time-format", "extra-element"],
)
def test_receipt_schema_violations(world: World, change: Callable[[etree._Element], object], match: str) -> None:
    receipt_xml = resign(sign_receipt(world.receipt(), world.signer(CZT)), world.signer(CZT), change)
    with pytest.raises(EnvelopeError, match=match):
        world.verify(receipt_xml)


def test_a_receipt_without_its_signature_or_with_two(world: World) -> None:
    good = sign_receipt(world.receipt(), world.signer(CZT))
    root = parse(good)
    root.remove(root[-1])
    with pytest.raises(EnvelopeError, match="not a valid receipt"):
        world.verify(serialise(root))
    root = parse(good)
    sign_enveloped(root, world.signer(CZT))
    with pytest.raises(EnvelopeError, match=r"not a valid receipt: .*Signature': This element is not expected"):
        world.verify(serialise(root))


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"", XmlInputError, "malformed"),
        (b"<Receipt/>", EnvelopeError, "not a gwexchange receipt"),
        (b'<rc:Receipt xmlns:rc="urn:gwexchange:receipt:1"/>', EnvelopeError, "not a valid receipt"),
        (b'<!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>', XmlInputError, "DOCTYPE"),
    ],
)
def test_what_is_not_a_receipt(world: World, data: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        world.verify(data)


# --- receipts in envelopes -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receipt_envelope(world: World) -> tuple[bytes, Sealed]:
    receipt_xml = make_receipt(ReceiptKind.SIGNED_FOR, world.opened(CZT), world.signer(CZT), now=world.now)
    sealed = seal_receipt(
        receipt_xml,
        world.node(CZT_HUB),
        sender_department=CZT,
        node_id=CZT_HUB,
        recipient=OFFICE,
        in_reply_to=world.sealed.header.message_id,
        now=world.now,
        classification=world.sealed.header.classification,
    )
    return receipt_xml, sealed


def test_seal_receipt_and_receipt_content_round_trip(world: World, receipt_envelope: tuple[bytes, Sealed]) -> None:
    receipt_xml, sealed = receipt_envelope
    header = sealed.header
    assert header.kind is MessageKind.RECEIPT
    assert (header.sender_department, header.sender_node, header.recipients) == (CZT, CZT_HUB, (OFFICE,))
    assert header.in_reply_to == world.sealed.header.message_id
    assert header.classification is Classification.INTERNAL
    assert sealed.parts == ()
    assert sealed.document_sha256 == hashlib.sha256(receipt_xml).hexdigest()
    inspected = inspect(sealed.envelope_xml, world.trust)
    assert inspected.header == header
    assert inspected.node.identity.code == CZT_HUB
    content = receipt_content(inspected)
    assert content == receipt_xml
    verified = world.verify(content)
    assert (verified.receipt.kind, verified.receipt.answerer) == (ReceiptKind.SIGNED_FOR, CZT)
    # The receipt is carried in the clear (it reveals nothing of the document), base64 in env:Content.
    content_el = parse(sealed.envelope_xml).find(f"{eq('Payload')}/{eq('Content')}")
    assert content_el is not None
    assert base64.b64decode(content_el.text or "") == receipt_xml


def test_a_receipt_envelope_is_not_a_document_and_back(world: World, receipt_envelope: tuple[bytes, Sealed]) -> None:
    _, sealed = receipt_envelope
    with pytest.raises(EnvelopeError, match="not a document"):
        open_envelope(sealed.envelope_xml, OFFICE, world.pki.key(OFFICE, Usage.ENCRYPTION), world.trust, now=world.now)
    with pytest.raises(EnvelopeError, match="not a receipt"):
        receipt_content(inspect(world.sealed.envelope_xml, world.trust))


def _resign_envelope(envelope_xml: bytes, node: Signer, change: Callable[[etree._Element], object]) -> bytes:
    root = parse(envelope_xml)
    root.remove(root[-1])
    change(root)
    sign_enveloped(root, node)
    return serialise(root)


def test_a_receipt_changed_inside_its_envelope(world: World, receipt_envelope: tuple[bytes, Sealed]) -> None:
    receipt_xml, sealed = receipt_envelope
    tampered = receipt_xml.replace("签收".encode(), "送达".encode())
    assert tampered != receipt_xml

    def replace_content(root: etree._Element) -> None:
        root.find(f"{eq('Payload')}/{eq('Content')}").text = base64.b64encode(tampered).decode()  # type: ignore[union-attr]

    # The node signs the changed envelope again: the envelope is fine, the receipt inside is not.
    envelope = _resign_envelope(sealed.envelope_xml, world.node(CZT_HUB), replace_content)
    content = receipt_content(inspect(envelope, world.trust))
    assert content == tampered
    with pytest.raises(SignatureError, match="digest does not match"):
        world.verify(content)
    # Without re-signing, the node's signature refuses it first.
    root = parse(sealed.envelope_xml)
    replace_content(root)
    with pytest.raises(SignatureError, match="digest does not match"):
        inspect(serialise(root), world.trust)


def test_a_receipt_envelope_whose_content_is_not_base64(world: World, receipt_envelope: tuple[bytes, Sealed]) -> None:
    _, sealed = receipt_envelope

    def garble(root: etree._Element) -> None:
        root.find(f"{eq('Payload')}/{eq('Content')}").text = "not base64!"  # type: ignore[union-attr]

    with pytest.raises(EnvelopeError):
        receipt_content(inspect(_resign_envelope(sealed.envelope_xml, world.node(CZT_HUB), garble), world.trust))
