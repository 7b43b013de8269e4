"""What both corpora share: where things are, the fixed facts of the vectors (dates, codes, names), XML names and
W3C algorithm URIs written out from the specifications, keys with their certificates, XML helpers, and signatures
computed from the specifications for the shapes our profile refuses.

Those signatures (``sign_shape``) use the real keys but none of gwexchange's XML-DSig code, so that nothing but the
profile stops the attacks they sign."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID
from lxml import etree

from gwexchange.crypto.certificates import Role
from gwexchange.crypto.keys import UnsafeUnencrypted, key_to_pem
from gwexchange.crypto.xmldsig import Signer

ATTACKS = Path(__file__).resolve().parent.parent
TESTS = ATTACKS.parent
REPO = TESTS.parent
VECTORS = TESTS / "vectors"
PKI = VECTORS / "pki"
ATTACKER = VECTORS / "attacker"
EXAMPLES = REPO / "examples"

# --- fixed facts (the test reads ``now`` from index.toml) ---------------------------------------------------

ROOT_START = datetime(2026, 1, 1, tzinfo=UTC)
LONG = timedelta(days=20 * 365)
EXPIRED_LIFETIME = timedelta(days=59)  # valid 2026-01-01 .. 2026-03-01
REVOKED_AT = datetime(2026, 6, 1, tzinfo=UTC)
SIGNED_AT = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
SECOND_SIGNED_AT = datetime(2026, 11, 20, 9, 30, 0, tzinfo=UTC)
VERIFY_NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
TIME = "%Y-%m-%dT%H:%M:%SZ"

ROOT_CODE = "gd.gov.ca"
ROOT_NAME = "广东省电子政务安全中心（测试向量）"
OFFICE = "gd.gov.office"
OFFICE_NAME = "广东省人民政府办公厅"
CZT, CZT_NAME = "gd.gov.czt", "广东省财政厅"
GXT, GXT_NAME = "gd.gov.gxt", "广东省工业和信息化厅"
NODE, NODE_NAME = "gd-hub.gov", "广东省公文交换节点（测试向量）"
UNSAFE = UnsafeUnencrypted()

# --- XML names and W3C algorithm URIs, written out from the specifications ---------------------------------

GW_NS = "urn:gwexchange:document:1"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
GW = "{" + GW_NS + "}"
DS = "{" + DS_NS + "}"
DS11_NS = "http://www.w3.org/2009/xmldsig11#"
DS11 = "{" + DS11_NS + "}"
EVIL_NS = "urn:attacker:evil"

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"
INCL_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XPATH_FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
MD5 = "http://www.w3.org/2001/04/xmldsig-more#md5"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ECDSA_SHA1 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
RSA_PSS = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
HMAC_SHA1 = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
HMAC_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"

EVIL_TITLE = "广东省人民政府办公厅关于将专项资金紧急划拨至指定账户的通知"
EVIL_PARAGRAPH = "请各单位于当日内将专项资金划入账户 6222 0000 0000 0000，不得延误。"


# --- keys and certificates -----------------------------------------------------------------------------------


@dataclass
class Holder:
    """A private key with its certificate (and the certificate's DER, as it goes into KeyInfo)."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def signer(self) -> Signer:
        return Signer(self.key, self.cert)


def subject(code: str, name: str, role: Role) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
            x509.NameAttribute(NameOID.USER_ID, code),
        ]
    )


def signing_key_usage(*, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def hand_made_certificate(
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    name: x509.Name,
    *,
    ca: bool,
) -> x509.Certificate:
    """A certificate built directly with ``cryptography``, bypassing the authority's rules."""
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(ROOT_START)
        .not_valid_after(ROOT_START + LONG)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(signing_key_usage(ca=ca), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def save(folder: Path, stem: str, holder: Holder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.crt").write_bytes(holder.cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(key_to_pem(holder.key, UNSAFE))


# --- XML helpers ---------------------------------------------------------------------------------------------

_PARSER = etree.XMLParser(remove_blank_text=False, resolve_entities=False)


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, _PARSER)


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def c14n(element: etree._Element, *, exclusive: bool = True, comments: bool = False) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=exclusive, with_comments=comments)


def enveloped_exc_c14n(root: etree._Element, signature: etree._Element) -> bytes:
    """The enveloped-signature transform then exclusive C14N 1.0, on a copy: ``signature`` is dropped, the text
    after it stays in the document (XPath data model)."""
    parent = signature.getparent()
    assert parent is not None
    tail = signature.tail
    previous = signature.getprevious()
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    index = parent.index(signature)
    parent.remove(signature)
    try:
        return c14n(root)
    finally:
        parent.insert(index, signature)
        signature.tail = tail
        if tail:
            if previous is not None:
                previous.tail = previous.tail[: -len(tail)] if previous.tail else None
            else:
                parent.text = parent.text[: -len(tail)] if parent.text else None


def signature_blocks(root: etree._Element) -> list[etree._Element]:
    """The trailing Signing and ds:Signature children of the document element, in order."""
    children = list(root)
    i = len(children)
    while i >= 2 and children[i - 1].tag == DS + "Signature" and children[i - 2].tag == GW + "Signing":
        i -= 2
    return children[i:]


def without_blocks(root: etree._Element) -> etree._Element:
    """A deep copy of a document with its signature blocks removed: the content the signatures cover."""
    clone = copy.deepcopy(root)
    for element in signature_blocks(clone):
        clone.remove(element)
    return clone


def blocks_copy(root: etree._Element) -> list[etree._Element]:
    return [copy.deepcopy(e) for e in signature_blocks(root)]


def evil_content(root: etree._Element) -> etree._Element:
    """The attacker's document: the original's content (no signatures) with another title and first paragraph."""
    clone = without_blocks(root)
    clone.find(GW + "Title").text = EVIL_TITLE
    clone.find(GW + "Body").find(GW + "P").text = EVIL_PARAGRAPH
    return clone


def first(root: etree._Element, path: str) -> etree._Element:
    element = root.find(path)
    assert element is not None, path
    return element


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- signatures computed from the specification, for shapes the profile refuses -----------------------------


def digest_of(algorithm: str, data: bytes) -> bytes:
    name = {SHA256: "sha256", SHA1: "sha1", MD5: "md5"}[algorithm]
    return hashlib.new(name, data, usedforsecurity=False).digest()


def signature_value(method: str, key: object, data: bytes, *, hmac_key: bytes = b"") -> bytes:
    """The XML-DSig SignatureValue of ``data``: raw r‖s for ECDSA (RFC 4051), PKCS#1 for RSA, HMAC bytes."""
    if method in (ECDSA_SHA256, ECDSA_SHA1):
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        digest = hashes.SHA256() if method == ECDSA_SHA256 else hashes.SHA1()  # noqa: S303 - the attack
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if method in (RSA_SHA256, RSA_SHA1):
        assert isinstance(key, rsa.RSAPrivateKey)
        digest = hashes.SHA256() if method == RSA_SHA256 else hashes.SHA1()  # noqa: S303 - the attack
        return key.sign(data, padding.PKCS1v15(), digest)
    if method == RSA_PSS:
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    if method in (HMAC_SHA1, HMAC_SHA256):
        return hmac.new(hmac_key, data, "sha1" if method == HMAC_SHA1 else "sha256").digest()
    raise AssertionError(method)


Hook = Callable[[etree._Element], None]


@dataclass
class Shape:
    """What the signature looks like; the defaults are exactly our profile."""

    c14n: str = EXC_C14N
    method: str = ECDSA_SHA256
    uri: str | None = ""
    transforms: tuple[tuple[str, Hook | None], ...] = ((ENVELOPED, None), (EXC_C14N, None))
    digest: str = SHA256
    certificates: tuple[bytes, ...] | None = None  # DER; None: the signer's own certificate
    hmac_key: bytes = b""
    # Called on the finished Signature element before the digest and signature value are computed.
    before_signing: Hook | None = None
    # What the reference's digest is computed over; None: the enveloped document.
    digest_input: Callable[[etree._Element, etree._Element], bytes] | None = None


def sign_shape(
    root: etree._Element,
    signer: Holder,
    shape: Shape | None = None,
    *,
    department: str = OFFICE,
    time: str | None = None,
) -> etree._Element:
    """Append a Signing element and a signature of ``shape`` to ``root``, computed with ``signer``'s key."""
    etree.SubElement(root, GW + "Signing", department=department, time=time or SIGNED_AT.strftime(TIME))
    return signature_of(root, signer, shape)


def signature_of(root: etree._Element, signer: Holder, shape: Shape | None = None) -> etree._Element:
    """Append an enveloped ds:Signature of ``shape`` over ``root``, computed from the W3C specifications with
    ``signer``'s key (no Signing element: envelopes and directories have none), for shapes the profile refuses."""
    shape = shape or Shape()
    signature = etree.SubElement(root, DS + "Signature", nsmap={"ds": DS_NS})
    signed_info = etree.SubElement(signature, DS + "SignedInfo")
    etree.SubElement(signed_info, DS + "CanonicalizationMethod", Algorithm=shape.c14n)
    etree.SubElement(signed_info, DS + "SignatureMethod", Algorithm=shape.method)
    reference = etree.SubElement(signed_info, DS + "Reference")
    if shape.uri is not None:
        reference.set("URI", shape.uri)
    transforms = etree.SubElement(reference, DS + "Transforms")
    for algorithm, build in shape.transforms:
        transform = etree.SubElement(transforms, DS + "Transform", Algorithm=algorithm)
        if build is not None:
            build(transform)
    etree.SubElement(reference, DS + "DigestMethod", Algorithm=shape.digest)
    digest_value = etree.SubElement(reference, DS + "DigestValue")
    value = etree.SubElement(signature, DS + "SignatureValue")
    x509_data = etree.SubElement(etree.SubElement(signature, DS + "KeyInfo"), DS + "X509Data")
    for der in shape.certificates if shape.certificates is not None else (signer.der,):
        etree.SubElement(x509_data, DS + "X509Certificate").text = b64(der)
    if shape.before_signing is not None:
        shape.before_signing(signature)
    content = (shape.digest_input or enveloped_exc_c14n)(root, signature)
    digest_value.text = b64(digest_of(shape.digest, content))
    canonical = c14n(
        signed_info, exclusive=shape.c14n in (EXC_C14N, EXC_C14N_COMMENTS), comments=shape.c14n == EXC_C14N_COMMENTS
    )
    value.text = b64(signature_value(shape.method, signer.key, canonical, hmac_key=shape.hmac_key))
    return signature


# Substrings of the messages that prove why an attack was refused.
DIGEST_CHANGED = "the document's digest does not match"
# Refused before any digest: the signature blocks must follow the order of the issuing departments.
ORDER_BROKEN = "do not follow the issuing departments"
NOT_SIGNED = "the document is not signed"
SIG_OUTSIDE = "a signature appears outside the signature blocks"
SIGNATURE_CHILDREN = "ds:Signature must contain exactly SignedInfo, SignatureValue, KeyInfo; found"
DOCTYPE_REFUSED = "XML with a DOCTYPE or entity declaration is refused"
INVALID_BYTES = "malformed XML: Invalid bytes in character encoding"  # libxml2's words for bad UTF-8
COMMENTS_REFUSED = "XML with comments or processing instructions is refused"
URI_REFUSED = 'the reference must be URI="" (the whole document)'
NO_PARAMETERS = "algorithm element must be empty (no parameters are accepted)"
