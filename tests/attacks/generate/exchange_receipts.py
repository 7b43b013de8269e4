"""Receipt envelopes at gd-czt, which sent ``envelope.xml`` to gd.gov.office: bound to another message, envelope or
document, answered by someone who may not, tampered, unsigned or signed with the wrong certificate, a DTD or no
receipt inside, unsolicited, replayed."""

from __future__ import annotations

from dataclasses import replace

from cryptography import x509
from lxml import etree

from gwexchange.crypto.xmldsig import sign_enveloped
from gwexchange.envelope.model import Classification
from gwexchange.envelope.receipts import RECEIPT_NS, AnswererRole, Receipt, ReceiptKind, sign_receipt
from gwexchange.envelope.sealing import seal_receipt

from . import base
from .base import CZT, DIGEST_CHANGED, DOCTYPE_REFUSED, OFFICE
from .exchange_common import RECEIPT_AT, Context, message_id, rand
from .exchange_pki import FGW


def receipt_attacks(c: Context) -> None:
    """Receipt envelopes arriving at gd-czt, which sent envelope.xml to gd.gov.office (its outbox holds it)."""
    pki, add = c.pki, c.add
    sent = c.envelope
    good = Receipt(
        kind=ReceiptKind.DELIVERED, message_id=sent.header.message_id, envelope_sha256=sent.envelope_sha256,
        document_sha256=c.document_digest, role=AnswererRole.DEPARTMENT, answerer=OFFICE, time=RECEIPT_AT,
    )  # fmt: skip

    def wrapped(
        receipt_xml: bytes, *, in_reply_to: str | None = None, node: base.Holder | None = None, sender: str = OFFICE
    ) -> bytes:
        node = node or pki.node_hub
        return seal_receipt(
            receipt_xml, node.signer, sender_department=sender, node_id=x509_code(node.cert),
            recipient=CZT, in_reply_to=in_reply_to or sent.header.message_id, now=RECEIPT_AT,
            classification=Classification.INTERNAL, random=rand,
        ).envelope_xml  # fmt: skip

    def receipt(
        name: str,
        cls: str,
        data: bytes | etree._Element,
        error: str,
        message: str,
        description: str,
        setup: str = "sent",
    ) -> None:
        add(name, cls, "node", data, error, message, description, setup=setup, node="gd-czt")

    other_id = message_id()
    receipt(
        "rcpt-replayed-for-other-message.xml",
        "replay-expiry",
        wrapped(sign_receipt(replace(good, message_id=other_id), pki.office.signer)),
        "EnvelopeError",
        f"the receipt answers message {other_id}, not {sent.header.message_id}",
        "gd.gov.office's 送达 for another message, replayed as the answer to envelope.xml.",
    )
    receipt(
        "rcpt-bound-to-other-envelope.xml",
        "receipts-forged",
        wrapped(sign_receipt(replace(good, envelope_sha256="e" * 64), pki.office.signer)),
        "EnvelopeError",
        "the receipt is bound to other envelope bytes than those sent",
        "A 送达 whose envelope digest is not that of the envelope sent.",
    )
    receipt(
        "rcpt-bound-to-other-document.xml",
        "receipts-forged",
        wrapped(sign_receipt(replace(good, document_sha256="d" * 64), pki.office.signer)),
        "EnvelopeError",
        "the receipt is bound to another document than the one sent",
        "A 送达 whose document digest is not that of the document sent.",
    )
    receipt(
        "rcpt-by-non-recipient.xml",
        "receipts-forged",
        wrapped(sign_receipt(replace(good, answerer=FGW), pki.fgw.signer), sender=FGW),
        "EnvelopeError",
        "gd.gov.fgw was not a recipient and cannot answer this document",
        "gd.gov.fgw, not a recipient, signs a 签收 for envelope.xml.",
    )
    failure = Receipt(
        kind=ReceiptKind.FAILED, message_id=sent.header.message_id, envelope_sha256=sent.envelope_sha256,
        document_sha256=None, role=AnswererRole.NODE, answerer="gd-edge", time=RECEIPT_AT, reason="信封已过期",
    )  # fmt: skip
    receipt(
        "rcpt-failure-by-off-route-node.xml",
        "receipts-forged",
        wrapped(sign_receipt(failure, pki.node_edge.signer), node=pki.node_edge, sender=OFFICE),
        "EnvelopeError",
        "node gd-edge is not on this envelope's route and cannot report failure",
        "gd-edge, not on the route, reports 投递失败 to cancel a delivery.",
    )
    forged = base.parse(sign_receipt(good, pki.fgw.signer))
    receipt(
        "rcpt-answerer-mismatch.xml",
        "receipts-forged",
        wrapped(base.serialize(forged)),
        "EnvelopeError",
        "the receipt names gd.gov.office, but gd.gov.fgw signed it",
        "A 送达 naming gd.gov.office as the answerer, signed by gd.gov.fgw.",
    )
    raw = base.parse(sign_receipt(good, pki.office.signer))
    raw.remove(raw[-1])
    base.first(raw, "{" + RECEIPT_NS + "}Kind").text = ReceiptKind.FAILED.value
    etree.SubElement(raw, "{" + RECEIPT_NS + "}Reason").text = "未收到"
    sign_enveloped(raw, pki.office.signer)
    receipt(
        "rcpt-department-claims-failure.xml",
        "receipts-forged",
        wrapped(base.serialize(raw)),
        "EnvelopeError",
        "投递失败 comes only from nodes",
        "gd.gov.office, having opened the document, signs 投递失败 to deny it arrived.",
    )
    tampered = sign_receipt(good, pki.office.signer).replace("送达".encode(), "签收".encode(), 1)
    receipt(
        "rcpt-signature-tampered.xml",
        "receipts-forged",
        wrapped(tampered),
        "SignatureError",
        DIGEST_CHANGED,
        "gd.gov.office's 送达 changed to 签收 after it was signed.",
    )
    unsigned = base.parse(sign_receipt(good, pki.office.signer))
    unsigned.remove(unsigned[-1])
    receipt(
        "rcpt-unsigned.xml",
        "receipts-forged",
        wrapped(base.serialize(unsigned)),
        "EnvelopeError",
        "not a valid receipt",
        "A 送达 without a signature.",
    )
    receipt(
        "rcpt-signer-revoked.xml",
        "certificates",
        wrapped(sign_receipt(good, pki.office_revoked.signer)),
        "TrustError",
        "was revoked on 2026-06-01T00:00:00Z (keyCompromise)",
        "A 送达 signed with gd.gov.office's revoked key.",
    )
    receipt(
        "rcpt-signer-self-signed.xml",
        "certificates",
        wrapped(sign_receipt(good, pki.office_self_signed.signer)),
        "TrustError",
        "certificate is self-signed",
        "A 送达 signed with a self-signed certificate naming gd.gov.office.",
    )
    receipt(
        "rcpt-node-signs-as-department.xml",
        "certificates",
        wrapped(sign_receipt(good, pki.node_hub.signer)),
        "TrustError",
        "is a node certificate, not a department one",
        "gd-hub's node key signs a department's 送达 for gd.gov.office.",
    )
    doctype = sign_receipt(good, pki.office.signer)
    cut = doctype.index(b"?>") + 2
    receipt(
        "rcpt-content-doctype.xml",
        "dtd-entities",
        wrapped(doctype[:cut] + b'\n<!DOCTYPE rc:Receipt [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + doctype[cut:]),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A receipt envelope, validly node-signed, whose receipt carries an external-entity DTD.",
    )
    receipt(
        "rcpt-content-not-receipt.xml",
        "receipts-forged",
        wrapped(c.envelope.envelope_xml),
        "EnvelopeError",
        "not a gwexchange receipt",
        "A receipt envelope carrying an envelope instead of a receipt.",
    )
    receipt(
        "rcpt-unsolicited.xml",
        "receipts-forged",
        wrapped(sign_receipt(replace(good, message_id=other_id), pki.office.signer), in_reply_to=other_id),
        "EnvelopeError",
        f"the receipt answers message {other_id}, which gd.gov.czt did not send from here",
        "A 签收 for a message gd-czt never sent.",
    )
    receipt(
        "rcpt-replayed.xml",
        "replay-expiry",
        c.receipt.envelope_xml,
        "duplicate",
        "duplicate message id",
        "The valid 送达 envelope again, after gd-czt took it in.",
        setup="receipt",
    )


def x509_code(cert: x509.Certificate) -> str:
    from gwexchange.crypto.certificates import identity_of

    return identity_of(cert).code
