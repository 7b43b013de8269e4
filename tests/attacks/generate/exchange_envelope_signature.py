"""Envelopes at gd-hub, against what the node signature covers: the signed header changed, re-addressing (also
validly signed), the payload swapped or altered, signature wrapping, and node signatures outside the profile
(downgraded digests, XPath and XSLT transforms, external references, two references, 50 transforms, duplicate
IDs)."""

from __future__ import annotations

import copy
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from gwexchange.crypto import xmlenc
from gwexchange.crypto.xmldsig import sign_enveloped
from gwexchange.envelope.header import eq

from . import base
from .base import CZT, DIGEST_CHANGED, DS, GXT, OFFICE, URI_REFUSED
from .exchange_common import (
    DECRYPTION,
    NOT_VALID_ENVELOPE,
    XENC,
    Context,
    document,
    envelope,
    flip_base64,
    header,
    payload,
    rand,
    resigned,
    unsigned_copy,
)
from .exchange_pki import FGW


def envelope_signature_attacks(c: Context) -> None:  # noqa: PLR0915 - one corpus section
    """Envelopes arriving at gd-hub: tampered, re-addressed, wrapped, node-signed outside the profile (the rest of
    the envelopes follow, in ``exchange_envelope_content``)."""
    ex, pki, add = c.ex, c.pki, c.add
    valid = c.envelope.envelope_xml
    text = valid.decode("utf-8")

    def node(
        name: str, cls: str, data: bytes | etree._Element, error: str, message: str, description: str, **kw: str
    ) -> None:
        add(name, cls, "node", data, error, message, description, **kw)

    # The header changed after the node signed it.
    for name, cls, old, new, description in (
        (
            "env-readdressed-header.xml",
            "readdressed",
            f'code="{OFFICE}"',
            f'code="{FGW}"',
            "The recipient gd.gov.office replaced by gd.gov.fgw in the signed header (another department at the same "
            "node).",
        ),
        (
            "env-readdressed-recipient-added.xml",
            "readdressed",
            f'<env:Department code="{OFFICE}"/>',
            f'<env:Department code="{OFFICE}"/><env:Department code="{FGW}"/>',
            "gd.gov.fgw added to the recipients of the signed header.",
        ),
        (
            "env-header-sender-changed.xml",
            "envelope-tampering",
            f'department="{CZT}"',
            f'department="{GXT}"',
            "The sending department changed from gd.gov.czt to gd.gov.gxt in the signed header.",
        ),
        (
            "env-header-classification-lowered.xml",
            "envelope-tampering",
            "<env:Classification>内部",
            "<env:Classification>公开",
            "The header's 密级 lowered from 内部 to 公开 (so it may take public routes).",
        ),
        (
            "env-header-expiry-extended.xml",
            "replay-expiry",
            "<env:Expires>2026-11-27",
            "<env:Expires>2027-11-27",
            "The header's expiry pushed a year later, to keep a captured envelope alive.",
        ),
        (
            "env-header-message-id-changed.xml",
            "replay-expiry",
            c.envelope.header.message_id,
            "00000000-0000-4000-8000-000000000001",
            "The message id changed: a replay disguised as a new message.",
        ),
        (
            "env-header-urgency-added.xml",
            "envelope-tampering",
            "<env:Created>",
            "<env:Urgency>特急</env:Urgency><env:Created>",
            "特急 added to a header that had no urgency, to jump queues.",
        ),
    ):
        assert old in text, name
        node(name, cls, text.replace(old, new, 1).encode("utf-8"), "SignatureError", DIGEST_CHANGED, description)

    # Re-addressed and still validly signed by the (rogue or mistaken) sending node.
    doc = document()
    verified = ex.verified(doc)
    key = rand(32)
    gxt_public = pki.gxt_encryption.cert.public_key()
    assert isinstance(gxt_public, ec.EllipticCurvePublicKey)
    wrong = xmlenc.encrypted_key_for(key, gxt_public, recipient=OFFICE, random=rand)
    data, _ = payload(verified.signed_bytes, [wrong], key=key)
    node(
        "env-readdressed-key-for-someone-else.xml",
        "readdressed",
        envelope(header(), data, pki.node_czt),
        "DecryptionError",
        DECRYPTION,
        "Validly node-signed and addressed to gd.gov.office, but its EncryptedKey (Recipient=gd.gov.office) is "
        "wrapped for gd.gov.gxt's key.",
    )
    to_gxt = ex.verified(document((GXT,)))
    data, _ = payload(to_gxt.signed_bytes, ex=ex)
    node(
        "env-readdressed-forwarded-document.xml",
        "readdressed",
        envelope(header(), data, pki.node_czt),
        "EnvelopeError",
        "the document inside does not name gd.gov.office: it was forwarded, not addressed",
        "A document addressed only to gd.gov.gxt, re-sealed for gd.gov.office by the sending node "
        "(surreptitious forwarding).",
    )
    both = ex.verified(document((OFFICE, FGW)))
    data, _ = payload(both.signed_bytes, ex=ex)
    node(
        "env-readdressed-header-recipients-differ.xml",
        "readdressed",
        envelope(header(), data, pki.node_czt),
        "EnvelopeError",
        "the header's recipients ['gd.gov.office'] differ from the document's",
        "A document for gd.gov.office and gd.gov.fgw in an envelope whose header names only gd.gov.office.",
    )
    key = rand(32)
    fgw_public = pki.fgw_encryption.cert.public_key()
    assert isinstance(fgw_public, rsa.RSAPublicKey)
    relabelled = xmlenc.encrypted_key_for(key, fgw_public, recipient=OFFICE, random=rand)
    fgw_wrap = xmlenc.encrypted_key_for(key, fgw_public, recipient=FGW, random=rand)
    data, _ = payload(both.signed_bytes, [relabelled, fgw_wrap], key=key)
    node(
        "env-readdressed-wrap-relabelled.xml",
        "readdressed",
        envelope(header(recipients=(OFFICE, FGW)), data, pki.node_czt),
        "DecryptionError",
        DECRYPTION,
        "gd.gov.office's wrap replaced by a copy of gd.gov.fgw's relabelled Recipient=gd.gov.office.",
    )
    sealed_gxt = ex.seal(document((GXT,)))
    node(
        "env-readdressed-to-other-node.xml",
        "readdressed",
        sealed_gxt.envelope_xml,
        "EnvelopeError",
        "is not routed through node gd-hub",
        "A valid envelope for gd.gov.gxt (served by gd-edge) delivered to gd-hub, which is not on its route.",
    )

    other = ex.seal()
    swapped = base.parse(valid)
    swapped_payload = base.first(swapped, eq("Payload"))
    swapped_payload[0] = copy.deepcopy(
        base.first(base.parse(other.envelope_xml), f"{eq('Payload')}/{XENC}EncryptedData")
    )
    node(
        "env-payload-swapped.xml",
        "envelope-tampering",
        swapped,
        "SignatureError",
        DIGEST_CHANGED,
        "The valid header and node signature around the payload of another envelope.",
    )
    added = base.parse(valid)
    etree.SubElement(
        base.first(added, eq("Payload")), eq("Part"), cid="part-1", file="scan.pdf", size="28", sha256="0" * 64
    )
    node(
        "env-part-added.xml",
        "envelope-tampering",
        added,
        "SignatureError",
        DIGEST_CHANGED,
        "A Part element added to the signed payload.",
    )

    def flip_cipher(r: etree._Element) -> None:
        value = base.first(r, f"{eq('Payload')}/{XENC}EncryptedData/{XENC}CipherData/{XENC}CipherValue")
        value.text = flip_base64(value.text)

    node(
        "env-ciphertext-flipped-resigned.xml",
        "envelope-tampering",
        resigned(valid, flip_cipher, pki.node_czt),
        "DecryptionError",
        DECRYPTION,
        "One ciphertext bit flipped, the node signature made again: the GCM tag fails.",
    )

    def relabel(r: etree._Element) -> None:
        base.first(r, f"{eq('Header')}/{eq('Classification')}").text = "公开"

    node(
        "env-classification-mismatch-resigned.xml",
        "envelope-tampering",
        resigned(valid, relabel, pki.node_czt),
        "EnvelopeError",
        "the header's 密级 or 紧急程度 differs from the document's",
        "A header saying 公开 around a 内部 document, validly node-signed.",
    )

    def sender(r: etree._Element) -> None:
        base.first(r, f"{eq('Header')}/{eq('Sender')}").set("department", GXT)

    node(
        "env-sender-not-issuer-resigned.xml",
        "envelope-tampering",
        resigned(valid, sender, pki.node_czt),
        "EnvelopeError",
        "a document of gd.gov.gxt must come from its home node gd-edge, not from node gd-czt",
        "A header naming gd.gov.gxt as the sender of gd.gov.czt's document, validly node-signed by gd-czt, which is "
        "not gd.gov.gxt's home node.",
    )

    def notice_kind(r: etree._Element) -> None:
        base.first(r, f"{eq('Header')}/{eq('Kind')}").text = "notice"

    node(
        "env-kind-notice-resigned.xml",
        "envelope-tampering",
        resigned(valid, notice_kind, pki.node_czt),
        "EnvelopeError",
        "this node does not deliver notice envelopes",
        "An envelope of kind notice.",
    )

    # Signature wrapping around the node signature.
    root = base.parse(valid)
    original_header = base.first(root, eq("Header"))
    forged = copy.deepcopy(original_header)
    base.first(forged, f"{eq('Recipients')}/{eq('Department')}").set("code", FGW)
    signature = root[-1]
    obj = etree.SubElement(signature, DS + "Object")
    original_header.addprevious(forged)
    obj.append(original_header)
    node(
        "env-xsw-original-header-in-object.xml",
        "signature-wrapping",
        root,
        "SignatureError",
        "ds:Signature must contain exactly SignedInfo, SignatureValue, KeyInfo",
        "The signed header moved into a ds:Object of the node signature, a forged one (to gd.gov.fgw) in its place.",
    )
    root = base.parse(valid)
    signature = root[-1]
    root.insert(0, copy.deepcopy(signature))
    node(
        "env-xsw-signature-first.xml",
        "signature-wrapping",
        root,
        "EnvelopeError",
        NOT_VALID_ENVELOPE,
        "A copy of the node signature placed before the header as well.",
    )
    root = unsigned_copy(valid)
    sign_enveloped(root, pki.node_czt.signer)
    sign_enveloped(root, pki.node_edge.signer)
    node(
        "env-xsw-two-signatures.xml",
        "signature-wrapping",
        root,
        "EnvelopeError",
        NOT_VALID_ENVELOPE,
        "Two node signatures (gd-czt, then gd-edge over it).",
    )
    root = unsigned_copy(valid)
    node(
        "env-signature-removed.xml",
        "signature-wrapping",
        root,
        "EnvelopeError",
        NOT_VALID_ENVELOPE,
        "The node signature removed.",
    )
    root = base.parse(valid)
    base.first(root, eq("Payload")).append(root[-1])
    node(
        "env-xsw-signature-in-payload.xml",
        "signature-wrapping",
        root,
        "EnvelopeError",
        NOT_VALID_ENVELOPE,
        "The node signature moved into the payload.",
    )
    wrapper = etree.Element("{urn:attacker:evil}Wrapper", nsmap={"evil": base.EVIL_NS})
    wrapper.append(base.parse(valid))
    node(
        "env-xsw-wrapper-root.xml",
        "signature-wrapping",
        wrapper,
        "EnvelopeError",
        "not a gwexchange envelope",
        "The valid envelope inside an attacker's root element.",
    )
    forged_root = base.parse(valid)
    base.first(forged_root, f"{eq('Header')}/{eq('Recipients')}/{eq('Department')}").set("code", FGW)
    base.first(forged_root, eq("Payload")).append(base.parse(valid))
    node(
        "env-xsw-original-inside-payload.xml",
        "signature-wrapping",
        forged_root,
        "EnvelopeError",
        NOT_VALID_ENVELOPE,
        "A forged envelope (to gd.gov.fgw) carrying the valid one inside its payload.",
    )
    root = unsigned_copy(valid)
    sign_enveloped(root, pki.node_edge.signer)
    node(
        "env-signed-by-other-node.xml",
        "signature-wrapping",
        root,
        "EnvelopeError",
        "the envelope says it was sent by node gd-czt, but node gd-edge signed it",
        "The header names gd-czt; gd-edge (a trusted node) signed it.",
    )

    # The node signature outside the profile, computed from the specification with gd-czt's key.
    def xpath_leaving_out_header(transform: etree._Element) -> None:
        etree.SubElement(transform, DS + "XPath").text = "not(ancestor-or-self::env:Header)"

    def shaped(shape: base.Shape, change: Callable[[etree._Element], None] | None = None) -> etree._Element:
        root = unsigned_copy(valid)
        if change is not None:
            change(root)
        base.signature_of(root, pki.node_czt, shape)
        return root

    for name, cls, shape, message, description in (
        (
            "env-node-digest-sha1.xml",
            "algorithm-downgrade",
            base.Shape(digest=base.SHA1),
            f"digest algorithm {base.SHA1} is not accepted",
            "The node signature with a SHA-1 digest.",
        ),
        (
            "env-node-digest-md5.xml",
            "algorithm-downgrade",
            base.Shape(digest=base.MD5),
            f"digest algorithm {base.MD5} is not accepted",
            "The node signature with an MD5 digest.",
        ),
        (
            "env-node-ecdsa-sha1.xml",
            "algorithm-downgrade",
            base.Shape(method=base.ECDSA_SHA1),
            f"signature algorithm {base.ECDSA_SHA1} is not accepted",
            "The node signature as ECDSA-SHA1.",
        ),
        (
            "env-node-c14n-with-comments.xml",
            "algorithm-downgrade",
            base.Shape(c14n=base.EXC_C14N_COMMENTS),
            "is not accepted",
            "The node signature's SignedInfo canonicalized WithComments.",
        ),
        (
            "env-node-transform-xpath.xml",
            "xslt-xpath-external",
            base.Shape(transforms=((base.XPATH, xpath_leaving_out_header), (base.EXC_C14N, None))),
            "the transform algorithm element must be empty (no parameters are accepted)",
            "An XPath transform that would leave the header out of the node's digest.",
        ),
        (
            "env-node-transform-xslt.xml",
            "xslt-xpath-external",
            base.Shape(transforms=((base.ENVELOPED, None), (base.XSLT, None))),
            f"transform algorithm {base.XSLT} is not accepted",
            "An XSLT transform in the node signature.",
        ),
        (
            "env-node-reference-http.xml",
            "xslt-xpath-external",
            base.Shape(uri="http://attacker.example/envelope.xml"),
            URI_REFUSED,
            "The node signature's reference points at an attacker's URL.",
        ),
        (
            "env-node-reference-file.xml",
            "xslt-xpath-external",
            base.Shape(uri="file:///etc/passwd"),
            URI_REFUSED,
            "The node signature's reference points at a local file.",
        ),
    ):
        node(name, cls, shaped(shape), "SignatureError", message, description)

    def two_references(signature: etree._Element) -> None:
        reference = base.first(signature, f"{DS}SignedInfo/{DS}Reference")
        reference.addnext(copy.deepcopy(reference))

    node(
        "env-node-two-references.xml",
        "references-transforms",
        shaped(base.Shape(before_signing=two_references)),
        "SignatureError",
        "ds:SignedInfo must contain exactly CanonicalizationMethod, SignatureMethod, Reference",
        "A node signature with two references.",
    )
    many = tuple((base.EXC_C14N, None) for _ in range(49))
    node(
        "env-node-transforms-50.xml",
        "references-transforms",
        shaped(base.Shape(transforms=((base.ENVELOPED, None), *many))),
        "SignatureError",
        "ds:Transforms must contain exactly Transform, Transform",
        "A node signature with 50 transforms.",
    )

    def ids(root: etree._Element) -> None:
        data = base.first(root, f"{eq('Payload')}/{XENC}EncryptedData")
        data.set("Id", "payload")
        base.first(data, XENC + "CipherData").set("Id", "payload")

    node(
        "env-duplicate-id-reference.xml",
        "duplicate-ids",
        shaped(
            base.Shape(
                uri="#payload",
                transforms=((base.EXC_C14N, None),),
                digest_input=lambda r, s: base.c14n(base.first(r, f"{eq('Payload')}/{XENC}EncryptedData")),
            ),
            ids,
        ),
        "SignatureError",
        URI_REFUSED,
        'Two elements of the payload carry Id="payload"; the node signature references #payload.',
    )
