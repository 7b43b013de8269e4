"""Envelopes at gd-hub (or opened by gd.gov.office), beyond the shape of the node signature: the encryption inside
downgraded (AES-CBC, AES-128-GCM, RSA key transport, AES-128 key wrap, a SHA-1 KDF, a SHA-1 inner document), parser
attacks on the envelope and its encrypted document, the certificates of the node's and the document's signatures,
replays and expiry."""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from lxml import etree

from gwexchange.crypto import xmlenc
from gwexchange.crypto.xmldsig import sign_enveloped
from gwexchange.envelope.header import eq
from gwexchange.envelope.sealing import DOCUMENT_MEDIA_TYPE
from gwexchange.envelope.signing import verify_document
from gwexchange.envelope.xmlform import document_to_xml

from . import base
from .base import CZT, DIGEST_CHANGED, DOCTYPE_REFUSED, DS, INVALID_BYTES, OFFICE
from .exchange_common import (
    AES128_GCM,
    AES256_CBC,
    DECRYPTION,
    ENVELOPE_AT,
    KW_AES128,
    KW_AES256,
    RSA_1_5,
    RSA_OAEP_MGF1P,
    XENC,
    Context,
    cbc_encrypt,
    document,
    ecdh_wrap,
    envelope,
    header,
    open_document,
    payload,
    rand,
    rsa_wrap,
    unsigned_copy,
)
from .exchange_pki import FGW


def envelope_content_attacks(c: Context) -> None:  # noqa: PLR0915 - one corpus section
    """Envelopes arriving at gd-hub (or opened by gd.gov.office), after ``envelope_signature_attacks``: downgraded
    inside, malformed, badly signed, replayed or expired."""
    ex, pki, add = c.ex, c.pki, c.add
    valid = c.envelope.envelope_xml
    text = valid.decode("utf-8")

    def node(
        name: str, cls: str, data: bytes | etree._Element, error: str, message: str, description: str, **kw: str
    ) -> None:
        add(name, cls, "node", data, error, message, description, **kw)

    # What ``envelope_signature_attacks`` starts from too: a notice of gd.gov.czt to gd.gov.office, signed (again:
    # signing draws no random bytes), and gd.gov.fgw's RSA encryption key.
    doc = document()
    verified = ex.verified(doc)
    fgw_public = pki.fgw_encryption.cert.public_key()
    assert isinstance(fgw_public, rsa.RSAPublicKey)

    # The crypto inside, downgraded (validly node-signed).
    def downgraded(
        name: str, content: etree._Element, description: str, recipients: tuple[str, ...] = (OFFICE,)
    ) -> None:
        node(
            name,
            "algorithm-downgrade",
            envelope(header(recipients=recipients), content, pki.node_czt),
            "DecryptionError",
            DECRYPTION,
            description,
        )

    key = rand(32)
    office_public = pki.office_encryption.cert.public_key()
    assert isinstance(office_public, ec.EllipticCurvePublicKey)
    wraps = [xmlenc.encrypted_key_for(key, office_public, recipient=OFFICE, random=rand)]
    cbc = xmlenc.encrypted_data(cbc_encrypt(key, verified.signed_bytes), wraps, mime_type=DOCUMENT_MEDIA_TYPE)
    base.first(cbc, XENC + "EncryptionMethod").set("Algorithm", AES256_CBC)
    downgraded("env-content-aes256-cbc.xml", cbc, "The document encrypted with AES-256-CBC (padding-oracle prone).")
    wraps = [xmlenc.encrypted_key_for(key, office_public, recipient=OFFICE, random=rand)]
    short = xmlenc.encrypted_data(
        xmlenc.gcm_encrypt(key[:16], verified.signed_bytes, rand), wraps, mime_type=DOCUMENT_MEDIA_TYPE
    )
    base.first(short, XENC + "EncryptionMethod").set("Algorithm", AES128_GCM)
    downgraded("env-content-aes128-gcm.xml", short, "The document encrypted with AES-128-GCM.")
    to_fgw = ex.verified(document((FGW,)))
    for name, algorithm, params, pad, description in (
        (
            "env-keytransport-rsa-pkcs1v15.xml",
            RSA_1_5,
            [],
            padding.PKCS1v15(),
            "The content key for gd.gov.fgw wrapped with RSA PKCS#1 v1.5 (Bleichenbacher).",
        ),
        (
            "env-keytransport-rsa-oaep-sha1.xml",
            RSA_OAEP_MGF1P,
            [(DS + "DigestMethod", base.SHA1)],
            padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),  # noqa: S303
            "The content key for gd.gov.fgw wrapped with RSA-OAEP over SHA-1 (rsa-oaep-mgf1p).",
        ),
    ):
        key = rand(32)
        wrap = rsa_wrap(key, fgw_public, FGW, algorithm, params, pad)
        content, _ = payload(to_fgw.signed_bytes, [wrap], key=key)
        downgraded(name, content, description, (FGW,))
    for name, kwargs, description in (
        (
            "env-keywrap-aes128.xml",
            {"wrap_uri": KW_AES128, "kek_bytes": 16},
            "gd.gov.office's content key wrapped with AES-128 key wrap.",
        ),
        (
            "env-kdf-sha1.xml",
            {"wrap_uri": KW_AES256, "kek_bytes": 32, "kdf_digest": base.SHA1},
            "ConcatKDF with a SHA-1 digest.",
        ),
    ):
        key = rand(32)
        content, _ = payload(verified.signed_bytes, [ecdh_wrap(key, office_public, OFFICE, **kwargs)], key=key)
        downgraded(name, content, description)
    sha1_doc = base.parse(document_to_xml(doc))
    base.sign_shape(sha1_doc, pki.czt, base.Shape(digest=base.SHA1), department=CZT)
    content, _ = payload(base.serialize(sha1_doc), ex=ex)
    node(
        "env-document-digest-sha1.xml",
        "algorithm-downgrade",
        envelope(header(), content, pki.node_czt),
        "SignatureError",
        f"digest algorithm {base.SHA1} is not accepted",
        "A validly sealed envelope whose document gd.gov.czt signed with a SHA-1 digest.",
    )

    # Parser attacks on the envelope.
    declaration_end = valid.index(b"?>") + 2
    head, rest = valid[:declaration_end], valid[declaration_end:]
    node(
        "env-doctype.xml",
        "dtd-entities",
        head + b"\n<!DOCTYPE env:Envelope>" + rest,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A DOCTYPE before the envelope.",
    )
    laughs = b"".join(
        b'<!ENTITY l%d "&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;">' % ((i,) + (i - 1,) * 10)
        for i in range(1, 10)
    )
    bomb = (
        head
        + b'\n<!DOCTYPE env:Envelope [<!ENTITY l0 "lol">'
        + laughs
        + b"]>"
        + rest.replace(b"<env:Classification>", b"<env:Classification>&l9;", 1)
    )
    node(
        "env-billion-laughs.xml",
        "dtd-entities",
        bomb,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "Billion laughs in the header's Classification.",
    )
    node(
        "env-external-entity.xml",
        "dtd-entities",
        head
        + b'\n<!DOCTYPE env:Envelope [<!ENTITY x SYSTEM "file:///etc/shadow">]>'
        + rest.replace(b"<env:Classification>", b"<env:Classification>&x;", 1),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "An external entity (file:///etc/shadow) in the header.",
    )
    inner = verified.signed_bytes
    inner_end = inner.index(b"?>") + 2
    inner_doctype = (
        inner[:inner_end] + b'\n<!DOCTYPE gw:Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + inner[inner_end:]
    )
    content, _ = payload(inner_doctype, ex=ex)
    node(
        "env-inner-document-doctype.xml",
        "dtd-entities",
        envelope(header(), content, pki.node_czt),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A validly sealed envelope whose encrypted document carries an external-entity DTD (found only once "
        "decrypted at the recipient's node).",
    )
    deep = etree.Element(XENC + "EncryptedData", nsmap=xmlenc.NSMAP)
    inner_el = deep
    for _ in range(40):
        inner_el = etree.SubElement(inner_el, XENC + "CipherData")
    node(
        "env-depth-bomb.xml",
        "oversize-depth",
        envelope(header(), deep, pki.node_czt),
        "XmlInputError",
        "XML is nested deeper than 32 levels",
        "A validly node-signed payload nested 40 levels deep.",
    )
    node(
        "env-utf8-invalid-in-header.xml",
        "invalid-utf8",
        valid.replace("内部".encode(), "内部".encode()[:-1] + b"\xff", 1),
        "XmlInputError",
        INVALID_BYTES,
        "An invalid UTF-8 sequence in the header's 密级.",
    )
    bad_inner = inner.replace(b"<gw:Title>", b"<gw:Title>\xc0\xaf", 1)
    content, _ = payload(bad_inner, ex=ex)
    node(
        "env-utf8-invalid-in-document.xml",
        "invalid-utf8",
        envelope(header(), content, pki.node_czt),
        "XmlInputError",
        INVALID_BYTES,
        "A validly sealed envelope whose encrypted document has an overlong UTF-8 sequence in its Title.",
    )
    node(
        "env-utf16.xml",
        "invalid-utf8",
        valid.decode("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"', 1).encode("utf-16"),
        "XmlInputError",
        "malformed XML: Start tag expected, '<' not found",
        "The valid envelope transcoded to UTF-16 with a BOM.",
    )
    node(
        "env-truncated.xml",
        "xml-form",
        valid[: len(valid) * 2 // 3],
        "XmlInputError",
        "malformed XML: Premature end of data in tag CipherValue",
        "The valid envelope cut at two thirds.",
    )
    node(
        "env-comment-in-header.xml",
        "xml-form",
        valid.replace(b"<env:Classification>", "<!-- 公开 --><env:Classification>".encode(), 1),
        "XmlInputError",
        base.COMMENTS_REFUSED,
        "A comment in the header (node signature otherwise intact).",
    )

    # Certificates of the node signature, and of the document inside.
    for name, signer, message, description in (
        (
            "env-node-cert-self-signed.xml",
            pki.node_czt_self_signed,
            "certificate is self-signed",
            "Signed by the attacker's self-signed certificate naming node gd-czt.",
        ),
        (
            "env-node-cert-attacker-root.xml",
            pki.node_czt_attacker,
            "certificate is not issued by the configured root",
            "Signed with a gd-czt node certificate from the attacker's own root.",
        ),
        (
            "env-node-cert-expired.xml",
            pki.node_czt_expired,
            "is not valid at 2026-11-20T10:00:00Z: valid 2026-01-01T00:00:00Z to 2026-03-01T00:00:00Z",
            "Signed with gd-czt's node certificate that expired on 2026-03-01.",
        ),
        (
            "env-node-cert-revoked.xml",
            pki.node_czt_revoked,
            "was revoked on 2026-06-01T00:00:00Z (keyCompromise)",
            "Signed with gd-czt's node certificate revoked for keyCompromise.",
        ),
        (
            "env-node-cert-department.xml",
            pki.czt,
            "is a department certificate, not a node one",
            "Signed with gd.gov.czt's department signing certificate instead of a node certificate.",
        ),
        (
            "env-node-cert-encryption.xml",
            pki.czt_encryption,
            "is a department certificate, not a node one",
            "Signed with gd.gov.czt's encryption (key agreement) key and certificate.",
        ),
    ):
        root = unsigned_copy(valid)
        sign_enveloped(root, signer.signer)
        node(name, "certificates", root, "TrustError", message, description)
    root = unsigned_copy(valid)
    base.first(root, f"{eq('Header')}/{eq('Created')}").text = "2025-12-01T00:00:00Z"
    sign_enveloped(root, pki.node_czt.signer)
    node(
        "env-backdated-before-certificate.xml",
        "replay-expiry",
        root,
        "TrustError",
        "is not valid at 2025-12-01T00:00:00Z",
        "An envelope claiming creation before gd-czt's certificate existed (backdated to dodge a revocation).",
    )
    # The document's certificate itself is judged by the document cases (cert-*.xml); these stop earlier now.
    for name, signer, _trust_message, description in (
        (
            "env-document-cert-revoked.xml",
            pki.office_revoked,
            "was revoked on 2026-06-01T00:00:00Z (keyCompromise)",
            "A validly sealed envelope whose document is signed with gd.gov.office's revoked key.",
        ),
        (
            "env-document-cert-expired.xml",
            pki.office_expired,
            "is not valid at 2026-11-20T08:00:00Z",
            "A validly sealed envelope whose document is signed with gd.gov.office's expired certificate.",
        ),
        (
            "env-document-cert-self-signed.xml",
            pki.office_self_signed,
            "certificate is self-signed",
            "A validly sealed envelope whose document is signed with a self-signed certificate naming gd.gov.office.",
        ),
        (
            "env-document-cert-attacker-root.xml",
            pki.office_attacker,
            "certificate is not issued by the configured root",
            "A validly sealed envelope whose document is signed by the attacker's gd.gov.office certificate.",
        ),
    ):
        forged_doc = base.parse(document_to_xml(document((FGW,), issuer=OFFICE)))
        base.sign_shape(forged_doc, signer, department=OFFICE)  # in our profile, without sign_document's checks
        content, _ = payload(base.serialize(forged_doc), ex=ex, recipients=(FGW,))
        node(
            name,
            "certificates",
            envelope(header(sender_department=OFFICE, recipients=(FGW,)), content, pki.node_czt),
            "EnvelopeError",
            "a document of gd.gov.office must come from its home node gd-hub, not from node gd-czt",
            f"{description[:-1]}, sealed by gd-czt: refused first because gd.gov.office's documents come from its "
            f"home node gd-hub.",
        )

    # Replays and expiry.
    node(
        "env-replayed.xml",
        "replay-expiry",
        valid,
        "duplicate",
        "duplicate message id",
        "The valid envelope again, after gd-hub took it in: acknowledged, nothing stored or forwarded twice.",
        setup="receive",
    )
    signed_once = verify_document(open_document(ex, valid), ex.trust, now=base.VERIFY_NOW)
    node(
        "env-replayed-under-new-id.xml",
        "replay-expiry",
        ex.seal(verified=signed_once, now=ENVELOPE_AT + timedelta(minutes=30)).envelope_xml,
        "EnvelopeError",
        f"filed this signed document as message {c.envelope.header.message_id}",
        "The document of the valid envelope, sealed again by gd-czt (its department's home node) under a new "
        "message id after gd-hub filed it: a replay, refused however new its envelope.",
        setup="receive",
    )
    node(
        "env-created-in-future.xml",
        "replay-expiry",
        ex.seal(now=ENVELOPE_AT + timedelta(days=1000), lifetime=timedelta(days=731)).envelope_xml,
        "EnvelopeError",
        "claims to be created at 2029-08-16 10:00:00 UTC, later than this node's clock allows",
        "A validly sealed envelope created 1,000 days ahead (and living two years from then).",
    )
    expired = ex.seal(lifetime=timedelta(hours=1))
    add(
        "env-expired.xml",
        "replay-expiry",
        "open",
        expired.envelope_xml,
        "EnvelopeError",
        "the envelope expired at 2026-11-20 11:00:00 UTC",
        "A valid envelope that expired at 11:00, opened by gd.gov.office at 12:00.",
    )
    add(
        "env-not-addressed-to-opener.xml",
        "readdressed",
        "open",
        ex.seal(document((FGW,))).envelope_xml,
        "EnvelopeError",
        "the envelope is not addressed to gd.gov.office",
        "A valid envelope for gd.gov.fgw, opened by gd.gov.office.",
    )
    add(
        "env-open-readdressed-header.xml",
        "readdressed",
        "open",
        text.replace(f'code="{OFFICE}"', f'code="{FGW}"', 1).encode(),
        "SignatureError",
        DIGEST_CHANGED,
        "The header re-addressed (as env-readdressed-header.xml), opened by the department's tool directly.",
    )
    add(
        "env-open-oversize.xml",
        "oversize-depth",
        "open",
        b"",
        "XmlInputError",
        "more than the limit of 67108864",
        "The valid envelope padded to 64 MiB + 1 byte.",
    )
