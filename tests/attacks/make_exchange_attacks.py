"""Generate the exchange part of the hostile-input corpus: envelopes, SMTP messages, bundles, packages, receipts,
directories, tree heads, and more documents — all signed with the test PKI of ``tests/vectors/pki``.

Run by hand from the repository root (``make_attacks.py`` runs it too, after it made a new PKI)::

    python tests/attacks/make_exchange_attacks.py

It rewrites, and owns, exactly these files:

* ``tests/vectors/exchange/`` — what the exchange adds to the test PKI, issued by its root (keys UNENCRYPTED, test
  vectors only): the nodes gd-czt, gd-hub and gd-edge; gd-czt's node certificate once EXPIRED (2026-01-01 to
  2026-03-01) and once REVOKED for keyCompromise on 2026-06-01 (``crl.pem``, good for 20 years); encryption
  certificates of gd.gov.czt and gd.gov.gxt (EC P-256); the department gd.gov.fgw (EC signing, RSA-2048
  encryption); the authority's directory signing certificate (gd.gov.ca); and under ``keys/attacker/`` a
  self-signed gd-czt node certificate and one from the attacker's root. Then the valid vectors the runner starts
  from: ``directory.signed.xml`` (serial 5: gd-czt serves gd.gov.czt, gd-hub serves gd.gov.office and
  gd.gov.fgw, gd-edge serves gd.gov.gxt; links gd-czt–gd-hub and gd-czt–gd-edge), ``envelope.xml`` (a notice
  gd.gov.czt sent gd.gov.office through gd-czt), ``sent.json`` (gd-czt's outbox record of it),
  ``receipt.xml`` (gd-hub's envelope carrying gd.gov.office's 送达 for it) and ``treehead.xml`` (gd-hub's).
* ``tests/attacks/exchange/`` — the attack files and ``index.toml`` (format: see ``runner.py``).

Every attack is run by ``runner.py`` before it is kept, exactly as ``tests/test_attacks.py`` runs it: a case that
is accepted, refused for another reason, or leaves anything in a store is NOT written and is reported on stderr
(exit status 1), so that a hole is fixed in the library before its test lands in the corpus.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import random
import shutil
import struct
import sys
import uuid
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import make_attacks as base  # noqa: E402  (puts the repository on sys.path)
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, keywrap, serialization  # noqa: E402
from cryptography.hazmat.primitives import padding as block_padding  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash  # noqa: E402
from lxml import etree  # noqa: E402

from gwexchange.archive.merkle import TreeState  # noqa: E402
from gwexchange.archive.treehead import head_to_line, sign_tree_head, tree_head_to_xml  # noqa: E402
from gwexchange.crypto import xmlenc  # noqa: E402
from gwexchange.crypto.certificates import Revocation, RevocationReason, Role, Usage, make_crl  # noqa: E402
from gwexchange.crypto.certificates import issue as issue_certificate  # noqa: E402
from gwexchange.crypto.keys import KeyAlgorithm, generate_key, key_from_pem  # noqa: E402
from gwexchange.crypto.trust import TrustPolicy  # noqa: E402
from gwexchange.crypto.xmldsig import SIGNATURE_TAG, sign_enveloped  # noqa: E402
from gwexchange.envelope.header import ENVELOPE_NS, MessageKind, RoutingHeader, eq, header_to_element  # noqa: E402
from gwexchange.envelope.model import (  # noqa: E402
    Attachment,
    Classification,
    Department,
    DocKind,
    DocNumber,
    Document,
)
from gwexchange.envelope.package import write_package  # noqa: E402
from gwexchange.envelope.receipts import (  # noqa: E402
    RECEIPT_NS,
    AnswererRole,
    Receipt,
    ReceiptKind,
    SentRecord,
    sign_receipt,
    verify_receipt,
)
from gwexchange.envelope.sealing import DOCUMENT_MEDIA_TYPE, Sealed, seal, seal_receipt  # noqa: E402
from gwexchange.envelope.signing import VerifiedDocument, sign_document, verify_document  # noqa: E402
from gwexchange.envelope.xmlform import document_to_xml  # noqa: E402
from gwexchange.network.directory import DepartmentEntry, Directory, Link, NodeEntry, Zone, ZonePolicy  # noqa: E402
from gwexchange.network.directory_xml import directory_to_element, directory_to_xml, sign_directory  # noqa: E402
from gwexchange.routing import bundle as bundle_module  # noqa: E402
from gwexchange.routing.mime import encode_message  # noqa: E402

VECTORS = base.VECTORS
PKI = base.PKI
EXCHANGE = VECTORS / "exchange"
KEYS = EXCHANGE / "keys"
OUT = HERE / "exchange"

ENVELOPE_AT = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
RECEIPT_AT = datetime(2026, 11, 20, 11, 0, 0, tzinfo=UTC)
HEAD_AT = datetime(2026, 11, 20, 11, 30, 0, 123000, tzinfo=UTC)
DIRECTORY_ISSUED = datetime(2026, 11, 1, tzinfo=UTC)
DIRECTORY_EXPIRES = datetime(2045, 1, 1, tzinfo=UTC)
LIFETIME = timedelta(days=7)
OFFICE, CZT, GXT = base.OFFICE, base.CZT, base.GXT
FGW, FGW_NAME = "gd.gov.fgw", "广东省发展和改革委员会"
AUTHORITY = base.ROOT_CODE
NAMES = {OFFICE: base.OFFICE_NAME, CZT: base.CZT_NAME, GXT: base.GXT_NAME, FGW: FGW_NAME}
RNG = random.Random(20261120)  # noqa: S311 - reproducible message ids and keys of test vectors
rand = RNG.randbytes

XENC = "{" + xmlenc.XENC_NS + "}"
XENC11 = "{" + xmlenc.XENC11_NS + "}"
DS = base.DS
DS11 = base.DS11
AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
RSA_1_5 = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
KW_AES128 = "http://www.w3.org/2001/04/xmlenc#kw-aes128"
KW_AES256 = "http://www.w3.org/2001/04/xmlenc#kw-aes256"
ECDH_ES = "http://www.w3.org/2009/xmlenc11#ECDH-ES"
CONCAT_KDF = "http://www.w3.org/2009/xmlenc11#ConcatKDF"
P256 = "urn:oid:1.2.840.10045.3.1.7"

DIGEST_CHANGED = base.DIGEST_CHANGED
DOCTYPE_REFUSED = base.DOCTYPE_REFUSED
URI_REFUSED = base.URI_REFUSED
DECRYPTION = "the envelope cannot be opened with this key"
NOT_VALID_ENVELOPE = "not a valid envelope"


# --- the PKI -----------------------------------------------------------------------------------------------------


def holder(stem: Path) -> base.Holder:
    """A key and certificate stored as ``<stem>.key`` / ``<stem>.crt``."""
    key = key_from_pem(Path(f"{stem}.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    return base.Holder(key, x509.load_pem_x509_certificate(Path(f"{stem}.crt").read_bytes()))


def issued(
    issuer: base.Holder,
    folder: Path,
    stem: str,
    code: str,
    name: str,
    role: Role,
    usage: Usage,
    *,
    algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256,
    lifetime: timedelta = base.LONG,
) -> base.Holder:
    key = generate_key(algorithm)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    cert = issue_certificate(
        issuer.key, issuer.cert, key.public_key(), code=code, name=name, role=role, usage=usage,
        not_before=base.ROOT_START, lifetime=lifetime, serial=x509.random_serial_number(),
    )  # fmt: skip
    made = base.Holder(key, cert)
    base.save(folder / code, stem, made)
    return made


@dataclass
class Pki:
    root: base.Holder
    crls: tuple[x509.CertificateRevocationList, ...]
    office: base.Holder
    office_encryption: base.Holder
    office_revoked: base.Holder
    office_expired: base.Holder
    office_self_signed: base.Holder
    office_attacker: base.Holder
    czt: base.Holder
    czt_encryption: base.Holder
    gxt: base.Holder
    gxt_encryption: base.Holder
    fgw: base.Holder
    fgw_encryption: base.Holder
    authority: base.Holder
    authority_attacker: base.Holder
    node_czt: base.Holder
    node_hub: base.Holder
    node_edge: base.Holder
    node_czt_expired: base.Holder
    node_czt_revoked: base.Holder
    node_czt_self_signed: base.Holder
    node_czt_attacker: base.Holder

    def trust(self) -> TrustPolicy:
        return TrustPolicy(self.root.cert, self.crls, now=base.VERIFY_NOW)

    def encryption(self, code: str) -> x509.Certificate:
        return {
            OFFICE: self.office_encryption, CZT: self.czt_encryption, GXT: self.gxt_encryption,
            FGW: self.fgw_encryption,
        }[code].cert  # fmt: skip

    def signing(self, code: str) -> base.Holder:
        return {OFFICE: self.office, CZT: self.czt, GXT: self.gxt, FGW: self.fgw}[code]


def build_pki() -> Pki:
    issued_dir = PKI / "issued"
    root = holder(PKI / "root")
    attacker_root = holder(base.ATTACKER / "root" / "root")
    node = Role.NODE, Usage.NODE
    czt_node_name = "广东省财政厅交换节点（测试向量）"
    made = {
        "node_czt": issued(root, KEYS, "node", "gd-czt", czt_node_name, *node),
        "node_hub": issued(root, KEYS, "node", "gd-hub", "广东省公文交换枢纽节点（测试向量）", *node),
        "node_edge": issued(root, KEYS, "node", "gd-edge", "广东省边缘交换节点（测试向量）", *node),
        "node_czt_expired": issued(
            root, KEYS, "node-expired", "gd-czt", czt_node_name, *node, lifetime=base.EXPIRED_LIFETIME
        ),
        "node_czt_revoked": issued(root, KEYS, "node-revoked", "gd-czt", czt_node_name, *node),
        "node_czt_attacker": issued(attacker_root, KEYS / "attacker", "node-attacker-root", "gd-czt", czt_node_name,
                                    *node),
        "czt_encryption": issued(root, KEYS, "encryption", CZT, base.CZT_NAME, Role.DEPARTMENT, Usage.ENCRYPTION),
        "gxt_encryption": issued(root, KEYS, "encryption", GXT, base.GXT_NAME, Role.DEPARTMENT, Usage.ENCRYPTION),
        "fgw": issued(root, KEYS, "signing", FGW, FGW_NAME, Role.DEPARTMENT, Usage.SIGNING),
        "fgw_encryption": issued(root, KEYS, "encryption", FGW, FGW_NAME, Role.DEPARTMENT, Usage.ENCRYPTION,
                                 algorithm=KeyAlgorithm.RSA_2048),
        "authority": issued(root, KEYS, "signing", AUTHORITY, base.ROOT_NAME, Role.DEPARTMENT, Usage.SIGNING),
        "authority_attacker": issued(attacker_root, KEYS / "attacker", "signing-attacker-root", AUTHORITY,
                                     base.ROOT_NAME, Role.DEPARTMENT, Usage.SIGNING),
    }  # fmt: skip
    self_key = generate_key()
    assert isinstance(self_key, ec.EllipticCurvePrivateKey)
    node_dn = base.subject("gd-czt", czt_node_name, Role.NODE)
    self_signed = base.Holder(self_key, base.hand_made_certificate(self_key, self_key, node_dn, node_dn, ca=False))
    base.save(KEYS / "attacker" / "gd-czt", "node-self-signed", self_signed)
    revoked = made["node_czt_revoked"].cert.serial_number
    crl = make_crl(
        root.key, root.cert, [Revocation(revoked, base.REVOKED_AT, RevocationReason.KEY_COMPROMISE)],
        number=1_000, this_update=base.REVOKED_AT, next_update=base.REVOKED_AT + base.LONG,
    )  # fmt: skip
    (EXCHANGE / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return Pki(
        root=root,
        crls=(x509.load_pem_x509_crl((PKI / "crl.pem").read_bytes()), crl),
        office=holder(issued_dir / OFFICE / "signing"),
        office_encryption=holder(issued_dir / OFFICE / "encryption"),
        office_revoked=holder(issued_dir / OFFICE / "signing-revoked"),
        office_expired=holder(issued_dir / OFFICE / "signing-expired"),
        office_self_signed=holder(base.ATTACKER / "self-signed-office"),
        office_attacker=holder(base.ATTACKER / "root" / "issued" / OFFICE / "signing"),
        czt=holder(issued_dir / CZT / "signing"),
        gxt=holder(issued_dir / GXT / "signing"),
        node_czt_self_signed=self_signed,
        **made,
    )


# --- documents and envelopes -------------------------------------------------------------------------------------

SCAN = b"%PDF-1.7\n% scanned annex of the test vectors\n" + bytes(range(256)) * 64


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document(
    recipients: tuple[str, ...] = (OFFICE,),
    *,
    issuer: str = CZT,
    title: str = "关于开展公文交换安全测试的通知",
    attachment: bool = False,
) -> Document:
    name = NAMES[issuer]
    return Document(
        kind=DocKind.NOTICE,
        classification=Classification.INTERNAL,
        issuers=(Department(issuer, name),),
        issuer_mark=f"{name}文件",
        doc_number=DocNumber("粤测发〔2026〕8号"),
        title=f"{name}{title}",
        body=("一、总体要求", "请按要求开展公文交换安全测试。"),
        signature_names=(name,),
        date=base.SIGNED_AT.date(),
        main_recipients=tuple(Department(code, NAMES[code]) for code in recipients),
        attachment_note=("扫描件",) if attachment else (),
        attachments=(Attachment("扫描件", "scan.pdf", "application/pdf", len(SCAN), sha256(SCAN)),)
        if attachment
        else (),
    )


def message_id() -> str:
    return str(uuid.UUID(bytes=rand(16), version=4))


@dataclass
class Exchange:
    """The PKI, the directory and the valid vectors every section starts from."""

    pki: Pki
    trust: TrustPolicy
    directory: Directory

    def signed(self, doc: Document, signer: base.Holder | None = None) -> bytes:
        return sign_document(
            document_to_xml(doc), (signer or self.pki.signing(doc.issuers[0].code)).signer, at=base.SIGNED_AT
        )

    def verified(self, doc: Document) -> VerifiedDocument:
        return verify_document(self.signed(doc), self.trust, now=base.VERIFY_NOW)

    def seal(
        self,
        doc: Document | None = None,
        *,
        now: datetime = ENVELOPE_AT,
        lifetime: timedelta = LIFETIME,
        parts: dict[str, bytes] | None = None,
        verified: VerifiedDocument | None = None,
    ) -> Sealed:
        """gd-czt's envelope for ``doc`` (signed now), or for the document ``verified`` as signed once."""
        verified = verified or self.verified(doc or document())
        doc = verified.document
        sink_into = parts if parts is not None else {}

        def sink(cid: str, octets: object) -> None:
            sink_into[cid] = b"".join(octets)  # type: ignore[arg-type]

        return seal(
            verified,
            {d.code: self.pki.encryption(d.code) for d in doc.recipients},
            self.pki.node_czt.signer,
            trust=self.trust,
            sender_department=doc.issuers[0].code,
            node_id="gd-czt",
            now=now,
            lifetime=lifetime,
            attachments={"scan.pdf": [SCAN]} if doc.attachments else None,
            part_sink=sink if doc.attachments else None,
            random=rand,
        )


def header(**changes: object) -> RoutingHeader:
    made = RoutingHeader(
        message_id=message_id(),
        kind=MessageKind.DOCUMENT,
        sender_department=CZT,
        sender_node="gd-czt",
        recipients=(OFFICE,),
        classification=Classification.INTERNAL,
        created=ENVELOPE_AT,
        expires=ENVELOPE_AT + LIFETIME,
    )
    return replace(made, **changes)  # type: ignore[arg-type]


def payload(
    plaintext: bytes,
    wraps: list[etree._Element] | None = None,
    *,
    key: bytes | None = None,
    ex: Exchange | None = None,
    recipients: tuple[str, ...] = (OFFICE,),
) -> tuple[etree._Element, bytes]:
    """An EncryptedData in our profile, with ``wraps`` or one profile wrap per recipient."""
    key = key or rand(32)
    if wraps is None:
        assert ex is not None
        wraps = [
            xmlenc.encrypted_key_for(key, ex.pki.encryption(code).public_key(), recipient=code, random=rand)  # type: ignore[arg-type]
            for code in recipients
        ]
    return xmlenc.encrypted_data(xmlenc.gcm_encrypt(key, plaintext, rand), wraps, mime_type=DOCUMENT_MEDIA_TYPE), key


def envelope(
    head: RoutingHeader,
    content: etree._Element,
    node: base.Holder | None,
    parts: tuple[tuple[str, str, int, str], ...] = (),
) -> etree._Element:
    """An envelope put together from its pieces as a (possibly misbehaving) node would; signed by ``node``."""
    root = etree.Element(eq("Envelope"), nsmap={"env": ENVELOPE_NS})
    root.append(header_to_element(head))
    body = etree.SubElement(root, eq("Payload"))
    body.append(content)
    for cid, file_name, size, digest in parts:
        etree.SubElement(body, eq("Part"), cid=cid, file=file_name, size=str(size), sha256=digest)
    if node is not None:
        sign_enveloped(root, node.signer)
    return root


def unsigned_copy(xml: bytes) -> etree._Element:
    root = base.parse(xml)
    assert root[-1].tag == SIGNATURE_TAG
    root.remove(root[-1])
    return root


def resigned(xml: bytes, change: Callable[[etree._Element], object], node: base.Holder) -> bytes:
    root = unsigned_copy(xml)
    change(root)
    sign_enveloped(root, node.signer)
    return base.serialize(root)


def sign_raw(root: etree._Element, signer: base.Holder, shape: base.Shape) -> etree._Element:
    """An enveloped ds:Signature of ``shape`` over ``root``, computed from the W3C specifications (no Signing
    element, unlike ``make_attacks.sign_shape``), for the shapes our profile refuses."""
    signature = etree.SubElement(root, DS + "Signature", nsmap={"ds": base.DS_NS})
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
    etree.SubElement(x509_data, DS + "X509Certificate").text = base.b64(signer.der)
    if shape.before_signing is not None:
        shape.before_signing(signature)
    content = (shape.digest_input or base.enveloped_exc_c14n)(root, signature)
    digest_value.text = base.b64(base.digest_of(shape.digest, content))
    canonical = base.c14n(signed_info, exclusive=shape.c14n == base.EXC_C14N)
    value.text = base.b64(base.signature_value(shape.method, signer.key, canonical))
    return signature


def flip_base64(text: str | None, index: int = 40) -> str:
    octets = bytearray(base64.b64decode("".join((text or "").split())))
    octets[index % len(octets)] ^= 0x01
    return base64.b64encode(bytes(octets)).decode("ascii")


def cbc_encrypt(key: bytes, plaintext: bytes) -> bytes:
    padder = block_padding.PKCS7(128).padder()
    iv = rand(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()


def rsa_wrap(
    content_key: bytes,
    public: rsa.RSAPublicKey,
    recipient: str,
    algorithm: str,
    params: list[tuple[str, str]],
    pad: padding.AsymmetricPadding,
) -> etree._Element:
    wrap = etree.Element(XENC + "EncryptedKey", nsmap=xmlenc.NSMAP, Recipient=recipient)
    method = etree.SubElement(wrap, XENC + "EncryptionMethod", Algorithm=algorithm)
    for tag, uri in params:
        etree.SubElement(method, tag, Algorithm=uri)
    etree.SubElement(etree.SubElement(wrap, DS + "KeyInfo"), DS + "KeyName").text = recipient
    etree.SubElement(etree.SubElement(wrap, XENC + "CipherData"), XENC + "CipherValue").text = base.b64(
        public.encrypt(content_key, pad)
    )
    return wrap


def ecdh_wrap(
    content_key: bytes,
    public: ec.EllipticCurvePublicKey,
    recipient: str,
    *,
    wrap_uri: str,
    kek_bytes: int,
    kdf_digest: str = base.SHA256,
) -> etree._Element:
    """An ECDH-ES + ConcatKDF wrap written out from the specification with the parameters given."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    algorithm_id = wrap_uri.encode("ascii")
    kek = ConcatKDFHash(hashes.SHA256(), kek_bytes, algorithm_id).derive(ephemeral.exchange(ec.ECDH(), public))
    wrap = etree.Element(XENC + "EncryptedKey", nsmap=xmlenc.NSMAP, Recipient=recipient)
    etree.SubElement(wrap, XENC + "EncryptionMethod", Algorithm=wrap_uri)
    agreement = etree.SubElement(etree.SubElement(wrap, DS + "KeyInfo"), XENC + "AgreementMethod", Algorithm=ECDH_ES)
    kdf = etree.SubElement(agreement, XENC11 + "KeyDerivationMethod", Algorithm=CONCAT_KDF)
    params = etree.SubElement(
        kdf, XENC11 + "ConcatKDFParams", AlgorithmID="00" + algorithm_id.hex(), PartyUInfo="00", PartyVInfo="00"
    )
    etree.SubElement(params, DS + "DigestMethod", Algorithm=kdf_digest)
    originator = etree.SubElement(agreement, XENC + "OriginatorKeyInfo")
    value = etree.SubElement(etree.SubElement(originator, DS + "KeyValue"), DS11 + "ECKeyValue")
    etree.SubElement(value, DS11 + "NamedCurve", URI=P256)
    point = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    etree.SubElement(value, DS11 + "PublicKey").text = base.b64(point)
    etree.SubElement(etree.SubElement(agreement, XENC + "RecipientKeyInfo"), DS + "KeyName").text = recipient
    etree.SubElement(etree.SubElement(wrap, XENC + "CipherData"), XENC + "CipherValue").text = base.b64(
        keywrap.aes_key_wrap(kek, content_key)
    )
    return wrap


# --- the corpus --------------------------------------------------------------------------------------------------


@dataclass
class Attack:
    name: str
    cls: str
    target: str
    data: bytes
    error: str
    message: str
    description: str
    setup: str | None = None
    node: str | None = None


class Corpus:
    def __init__(self) -> None:
        self.attacks: list[Attack] = []

    def add(
        self,
        name: str,
        cls: str,
        target: str,
        data: bytes | etree._Element,
        error: str,
        message: str,
        description: str,
        *,
        setup: str | None = None,
        node: str | None = None,
    ) -> None:
        if isinstance(data, etree._Element):
            data = base.serialize(data)
        assert not any(a.name == name for a in self.attacks), name
        self.attacks.append(Attack(name, cls, target, data, error, message, " ".join(description.split()), setup, node))


@dataclass
class Context:
    ex: Exchange
    corpus: Corpus
    envelope: Sealed  # the valid envelope (vectors/exchange/envelope.xml)
    receipt: Sealed  # gd-hub's envelope with gd.gov.office's 送达 for it
    document_digest: str

    def __post_init__(self) -> None:
        self.pki = self.ex.pki
        self.add = self.corpus.add


# --- documents ---------------------------------------------------------------------------------------------------


def document_attacks(c: Context) -> None:  # noqa: PLR0915 - one corpus section
    """More documents: duplicate IDs, invalid UTF-8, too many references or transforms, entity blow-ups."""
    add, office = c.add, c.pki.office
    draft = (VECTORS / "notice.draft.xml").read_bytes()
    signed = (VECTORS / "notice.signed.xml").read_bytes()

    def signed_by_shape(shape: base.Shape, change: Callable[[etree._Element], None] | None = None) -> etree._Element:
        root = base.parse(draft)
        if change is not None:
            change(root)
        base.sign_shape(root, office, shape)
        return root

    # Duplicate IDs: an ID reference resolves to whichever element a verifier finds first.
    def two_bodies(root: etree._Element) -> None:
        body = base.first(root, base.GW + "Body")
        body.set("Id", "content")
        forged = copy.deepcopy(body)
        base.first(forged, base.GW + "P").text = base.EVIL_PARAGRAPH
        body.addprevious(forged)

    def id_digest(target: str) -> Callable[[etree._Element, etree._Element], bytes]:
        def digest(root: etree._Element, signature: etree._Element) -> bytes:
            found = [
                e for e in root.iter() if target in (e.get("Id"), e.get("{http://www.w3.org/XML/1998/namespace}id"))
            ]
            return base.c14n(found[-1])  # the signed one is the second: a verifier taking the first sees the forgery

        return digest

    add(
        "doc-duplicate-id-body.xml",
        "duplicate-ids",
        "document",
        signed_by_shape(
            base.Shape(uri="#content", transforms=((base.EXC_C14N, None),), digest_input=id_digest("content")),
            two_bodies,
        ),
        "SignatureError",
        URI_REFUSED,
        'Two Body elements with Id="content" (the forged one first) and a signature whose reference #content '
        "covers the second: duplicate-ID wrapping.",
    )

    def two_xml_ids(root: etree._Element) -> None:
        paragraph = base.first(root, f"{base.GW}Body/{base.GW}P")
        paragraph.set("{http://www.w3.org/XML/1998/namespace}id", "p1")
        forged = copy.deepcopy(paragraph)
        forged.text = base.EVIL_PARAGRAPH
        paragraph.addprevious(forged)

    add(
        "doc-duplicate-xml-id.xml",
        "duplicate-ids",
        "document",
        signed_by_shape(
            base.Shape(uri="#p1", transforms=((base.EXC_C14N, None),), digest_input=id_digest("p1")), two_xml_ids
        ),
        "SignatureError",
        URI_REFUSED,
        'Two paragraphs with xml:id="p1" (libxml2 keeps both without complaint) and a reference #p1 to the second.',
    )
    root = base.parse(signed)
    forged_signature = copy.deepcopy(base.signature_blocks(root)[-1])
    forged_signature.set("Id", "node-signature")
    base.signature_blocks(root)[-1].set("Id", "node-signature")
    base.first(root, base.GW + "Body").append(forged_signature)
    add(
        "doc-duplicate-id-signature.xml",
        "duplicate-ids",
        "document",
        root,
        "SignatureError",
        base.SIG_OUTSIDE,
        "A copy of the valid signature with the same Id planted in the Body, for a verifier that looks signatures "
        "up by Id.",
    )

    # Invalid UTF-8.
    title = base.parse(signed).findtext(base.GW + "Title")
    assert title is not None
    title_bytes = title.encode("utf-8")
    cut = signed.index(title_bytes) + 6

    def utf8(name: str, bad: bytes, description: str) -> None:
        add(
            name,
            "invalid-utf8",
            "document",
            signed[:cut] + bad + signed[cut:],
            "XmlInputError",
            "malformed XML",
            description,
        )

    utf8("doc-utf8-invalid-byte.xml", b"\xff", "A 0xFF byte (never valid in UTF-8) in the signed Title.")
    utf8("doc-utf8-overlong-slash.xml", b"\xc0\xaf", "An overlong encoding of '/' (C0 AF) in the Title.")
    utf8("doc-utf8-surrogate.xml", b"\xed\xa0\x80", "A UTF-16 surrogate (U+D800) encoded in UTF-8 (CESU) in the Title.")
    utf8("doc-utf8-truncated-sequence.xml", b"\xe5\xb9", "A three-byte sequence cut after two bytes in the Title.")
    utf8("doc-utf8-beyond-unicode.xml", b"\xf4\x90\x80\x80", "A four-byte sequence beyond U+10FFFF in the Title.")
    utf8("doc-utf8-nul.xml", b"\x00", "A NUL byte in the Title.")
    utf8("doc-utf8-noncharacter.xml", "\ufffe".encode(), "The noncharacter U+FFFE in the Title.")
    latin = signed.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"', 1)
    latin = latin[:cut] + "é".encode("latin-1") + latin[cut:]
    add(
        "doc-utf8-latin1-declared.xml",
        "invalid-utf8",
        "document",
        latin,
        "XmlInputError",
        "malformed XML",
        "Declared ISO-8859-1 with a Latin-1 é in the Title: the parser reads UTF-8 whatever is declared.",
    )
    gb = signed.replace(b'encoding="UTF-8"', b'encoding="GB18030"', 1)
    gb = gb.replace(title_bytes, title.encode("gb18030"), 1)
    add(
        "doc-gb18030-declared.xml",
        "invalid-utf8",
        "document",
        gb,
        "XmlInputError",
        "malformed XML",
        "The signed notice transcoded to GB18030 with its declaration changed: the same characters in another "
        "encoding are refused, not reinterpreted.",
    )

    # Too many references or transforms.
    def many_references(signature: etree._Element) -> None:
        signed_info = base.first(signature, DS + "SignedInfo")
        reference = base.first(signed_info, DS + "Reference")
        for _ in range(99):
            reference.addnext(copy.deepcopy(reference))

    add(
        "doc-references-100.xml",
        "references-transforms",
        "document",
        signed_by_shape(base.Shape(before_signing=many_references)),
        "SignatureError",
        "ds:SignedInfo must contain exactly CanonicalizationMethod, SignatureMethod, Reference",
        "A signature with 100 identical references (work amplification: each would be digested).",
    )
    transforms = (*((base.ENVELOPED, None) for _ in range(99)), (base.EXC_C14N, None))
    add(
        "doc-transforms-100.xml",
        "references-transforms",
        "document",
        signed_by_shape(base.Shape(transforms=transforms)),
        "SignatureError",
        "ds:Transforms must contain exactly Transform, Transform",
        "A reference with 100 transforms (99 enveloped-signature, then exclusive C14N).",
    )
    c14n_chain = tuple((base.EXC_C14N, None) for _ in range(1000))
    add(
        "doc-transforms-1000-c14n.xml",
        "references-transforms",
        "document",
        signed_by_shape(base.Shape(transforms=((base.ENVELOPED, None), *c14n_chain))),
        "SignatureError",
        "ds:Transforms must contain exactly Transform, Transform",
        "A reference with enveloped-signature then 1,000 canonicalizations: each one a pass over the document.",
    )

    # Entity blow-ups and DOCTYPE disguises.
    declaration_end = signed.index(b"?>\n") + 3
    head, body = signed[:declaration_end], signed[declaration_end:]
    blob = b"A" * 50_000
    quadratic = (
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY a "'
        + blob
        + b'">]>\n'
        + body.replace(title_bytes, title_bytes + b"&a;" * 5_000, 1)
    )
    add(
        "doc-quadratic-blowup.xml",
        "dtd-entities",
        "document",
        quadratic,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "Quadratic blow-up: one 50 kB entity referenced 5,000 times in the Title (250 MB once expanded).",
    )
    add(
        "doc-doctype-after-bom.xml",
        "dtd-entities",
        "document",
        b"\xef\xbb\xbf" + head + b'<!DOCTYPE gw:Document [<!ENTITY t "x">]>\n' + body,
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A UTF-8 byte-order mark, then an internal DTD.",
    )
    assert b'code="gd.gov.office"' in body
    add(
        "doc-entity-in-attribute.xml",
        "dtd-entities",
        "document",
        head
        + b'<!DOCTYPE gw:Document [<!ENTITY d "gd.gov.czt">]>\n'
        + body.replace(b'code="gd.gov.office"', b'code="&d;"', 1),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "An entity that would rewrite a department code in an attribute.",
    )
    add(
        "doc-doctype-lowercase.xml",
        "xml-form",
        "document",
        head + b"<!doctype gw:Document>\n" + body,
        "XmlInputError",
        "malformed XML",
        "A lower-case <!doctype>: not XML, but an HTML-minded scanner's blind spot.",
    )
    add(
        "doc-cdata-doctype.xml",
        "dtd-entities",
        "document",
        signed.replace(
            title_bytes, title_bytes + b"<![CDATA[<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>]]>", 1
        ),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A DOCTYPE text inside CDATA in the Title: harmless as data, refused all the same by the byte scan (the "
        "scan errs on the side of refusing).",
    )


# --- envelopes at the node ---------------------------------------------------------------------------------------


def envelope_attacks(c: Context) -> None:  # noqa: PLR0915 - one corpus section
    """Envelopes arriving at gd-hub: tampered, re-addressed, wrapped, downgraded, badly signed, replayed."""
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
        sign_raw(root, pki.node_czt, shape)
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
        "malformed XML",
        "An invalid UTF-8 sequence in the header's 密级.",
    )
    bad_inner = inner.replace(b"<gw:Title>", b"<gw:Title>\xc0\xaf", 1)
    content, _ = payload(bad_inner, ex=ex)
    node(
        "env-utf8-invalid-in-document.xml",
        "invalid-utf8",
        envelope(header(), content, pki.node_czt),
        "XmlInputError",
        "malformed XML",
        "A validly sealed envelope whose encrypted document has an overlong UTF-8 sequence in its Title.",
    )
    node(
        "env-utf16.xml",
        "invalid-utf8",
        valid.decode("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"', 1).encode("utf-16"),
        "XmlInputError",
        "malformed XML",
        "The valid envelope transcoded to UTF-16 with a BOM.",
    )
    node(
        "env-truncated.xml",
        "xml-form",
        valid[: len(valid) * 2 // 3],
        "XmlInputError",
        "malformed XML",
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
    signed_once = verify_document(_open_document(ex, valid), ex.trust, now=base.VERIFY_NOW)
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


# --- receipts at the sender's node -------------------------------------------------------------------------------


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


# --- SMTP messages -----------------------------------------------------------------------------------------------


def mime_attacks(c: Context) -> None:
    """Whole SMTP messages from gd-czt to gd-hub carrying an envelope with one part, garbled."""
    ex, add = c.ex, c.add
    parts: dict[str, bytes] = {}
    sealed = ex.seal(document(attachment=True), parts=parts)
    mid = sealed.header.message_id
    good = encode_message("gd-czt", "gd-hub", sealed.envelope_xml, parts, message_id=mid)
    (EXCHANGE / "message.eml").write_bytes(good)
    lines = good.split(b"\r\n")
    boundary = next(line for line in lines if line.startswith(b"--=_gwx_"))[2:]
    head_end = good.index(b"\r\n\r\n") + 4

    def mime(name: str, cls: str, data: bytes, error: str, message: str, description: str) -> None:
        add(name, cls, "mime", data, error, message, description)

    def encoded(xml: bytes, part_octets: dict[str, bytes] | None = None) -> bytes:
        return encode_message("gd-czt", "gd-hub", xml, parts if part_octets is None else part_octets, message_id=mid)

    mime(
        "mime-truncated-half.eml",
        "mime-garbled",
        good[: len(good) // 2],
        "EnvelopeError",
        "the message is malformed MIME (CloseBoundaryNotFoundDefect)",
        "The valid message cut in half.",
    )
    mime(
        "mime-no-closing-boundary.eml",
        "mime-garbled",
        good.replace(b"--" + boundary + b"--", b""),
        "EnvelopeError",
        "malformed MIME",
        "The closing boundary removed.",
    )
    mime(
        "mime-no-boundary-parameter.eml",
        "mime-garbled",
        good.replace(b'; boundary="' + boundary + b'"', b"", 1),
        "EnvelopeError",
        "malformed MIME",
        "multipart/mixed without a boundary parameter.",
    )
    mime(
        "mime-wrong-boundary.eml",
        "mime-garbled",
        good.replace(b'boundary="' + boundary, b'boundary="x' + boundary, 1),
        "EnvelopeError",
        "malformed MIME",
        "A boundary parameter that no body line uses.",
    )
    mime(
        "mime-text-plain.eml",
        "mime-garbled",
        good.replace(b"Content-Type: multipart/mixed", b"Content-Type: text/plain", 1),
        "EnvelopeError",
        "not multipart/mixed",
        "The message declared text/plain.",
    )
    mime("mime-empty.eml", "mime-garbled", b"", "EnvelopeError", "not multipart/mixed", "An empty message.")
    mime(
        "mime-headers-only.eml",
        "mime-garbled",
        good[:head_end],
        "EnvelopeError",
        "malformed MIME",
        "Only the message headers, no body.",
    )
    mime(
        "mime-envelope-wrong-type.eml",
        "mime-garbled",
        good.replace(b"Content-Type: application/vnd.gwexchange.envelope+xml", b"Content-Type: text/xml", 1),
        "EnvelopeError",
        "a body part is text/xml, where application/vnd.gwexchange.envelope+xml belongs",
        "The envelope part labelled text/xml.",
    )
    mime(
        "mime-envelope-quoted-printable.eml",
        "mime-garbled",
        good.replace(b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: quoted-printable", 1),
        "EnvelopeError",
        "is not base64-encoded",
        "The envelope part labelled quoted-printable.",
    )
    mime(
        "mime-envelope-8bit.eml",
        "mime-garbled",
        good[:head_end] + b"--" + boundary + b"\r\nContent-Type: application/vnd.gwexchange.envelope+xml\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + sealed.envelope_xml + b"\r\n--" + boundary + b"--\r\n",
        "EnvelopeError",
        "is not base64-encoded",
        "The envelope XML sent raw as 8bit.",
    )
    body_start = good.index(b"\r\n\r\n", head_end + 1) + 4
    mime(
        "mime-envelope-bad-base64.eml",
        "mime-garbled",
        good[:body_start] + b"!!!!" + good[body_start + 4 :],
        "EnvelopeError",
        "is not valid base64",
        "Four characters of the envelope's base64 replaced by '!'.",
    )
    mime(
        "mime-envelope-garbage.eml",
        "mime-garbled",
        encoded(b"\x00\x01garbage, not XML" * 10),
        "XmlInputError",
        "malformed XML",
        "Well-formed MIME whose envelope part is not XML.",
    )
    mime(
        "mime-envelope-invalid-utf8.eml",
        "invalid-utf8",
        encoded(sealed.envelope_xml.replace(b"<env:Kind>", b"<env:Kind>\xff", 1)),
        "XmlInputError",
        "malformed XML",
        "Well-formed MIME whose envelope has an invalid UTF-8 byte.",
    )
    mime(
        "mime-envelope-doctype.eml",
        "dtd-entities",
        encoded(
            sealed.envelope_xml.replace(b"?>", b'?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "http://attacker.example/">]>', 1)
        ),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "Well-formed MIME carrying an envelope with an external-entity DTD.",
    )
    mime(
        "mime-part-cid-traversal.eml",
        "mime-garbled",
        good.replace(b"Content-ID: <part-1>", b"Content-ID: <../../etc/cron.d/x>", 1),
        "EnvelopeError",
        "not <part-N>",
        "A part whose Content-ID is a path out of the parts folder.",
    )
    mime(
        "mime-part-cid-missing.eml",
        "mime-garbled",
        good.replace(b"Content-ID: <part-1>\r\n", b"", 1),
        "EnvelopeError",
        "not <part-N>",
        "A part without a Content-ID.",
    )
    duplicate = good.replace(b"--" + boundary + b"--", b"", 1)
    part_start = duplicate.index(b"--" + boundary + b"\r\nContent-Type: application/octet-stream")
    duplicate = duplicate + duplicate[part_start:] + b"--" + boundary + b"--\r\n"
    mime(
        "mime-part-cid-duplicate.eml",
        "mime-garbled",
        duplicate,
        "EnvelopeError",
        "the part part-1 occurs twice",
        "The part twice under the same Content-ID.",
    )
    mime(
        "mime-part-nested-multipart.eml",
        "mime-garbled",
        good.replace(b"Content-Type: application/octet-stream", b'Content-Type: multipart/mixed; boundary="inner"', 1),
        "EnvelopeError",
        "the message nests multipart bodies",  # refused by its shape, before the MIME parser sees it
        "A part that claims to be multipart itself.",
    )
    mime(
        "mime-part-missing.eml",
        "mime-garbled",
        encoded(sealed.envelope_xml, {}),
        "EnvelopeError",
        "lacks its part part-1",
        "The envelope without its part.",
    )
    mime(
        "mime-part-tampered.eml",
        "mime-garbled",
        encoded(
            sealed.envelope_xml,
            {"part-1": parts["part-1"][:100] + bytes([parts["part-1"][100] ^ 1]) + parts["part-1"][101:]},
        ),
        "EnvelopeError",
        "does not match the size and digest signed in the envelope",
        "One bit of the part flipped.",
    )
    mime(
        "mime-part-truncated.eml",
        "mime-garbled",
        encoded(sealed.envelope_xml, {"part-1": parts["part-1"][:-1]}),
        "EnvelopeError",
        "does not match the size and digest signed in the envelope",
        "The part one byte short.",
    )
    mime(
        "mime-part-overlong.eml",
        "mime-garbled",
        encoded(sealed.envelope_xml, {"part-1": parts["part-1"] + b"\0"}),
        "EnvelopeError",
        "is longer than the",
        "The part one byte longer than signed.",
    )
    elsewhere: dict[str, bytes] = {}
    to_gxt = ex.seal(document((GXT,), attachment=True), parts=elsewhere)
    mime(
        "mime-not-routed-here-with-part.eml",
        "readdressed",
        encode_message("gd-czt", "gd-hub", to_gxt.envelope_xml, elsewhere, message_id=to_gxt.header.message_id),
        "EnvelopeError",
        "is not routed through node gd-hub",
        "A valid envelope with its part for gd.gov.gxt (served by gd-edge) sent to gd-hub: refused after its part "
        "was staged.",
    )
    add(
        "mime-replayed-with-stray-part.eml",
        "replay-expiry",
        "mime",
        encoded(c.envelope.envelope_xml, {"part-1": parts["part-1"]}),
        "duplicate",
        "duplicate message id",
        "The valid part-less envelope again, with a stray part-1, after gd-hub took it in: acknowledged, and the "
        "stray part never stored.",
        setup="receive",
    )


# --- bundles -----------------------------------------------------------------------------------------------------


def zip_bytes(members: list[tuple[str, bytes]], *, compress: set[str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names, on purpose
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in members:
                method = zipfile.ZIP_DEFLATED if compress and name in compress else zipfile.ZIP_STORED
                zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buffer.getvalue()


def set_encrypted_flag(data: bytes, member: str) -> bytes:
    """Set bit 0 (encrypted) of ``member``'s general-purpose flags in its local and central headers."""
    out = bytearray(data)
    name = member.encode()
    for signature, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (at := out.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", out, at + (26 if signature == b"PK\x03\x04" else 28))[0]
            if out[at + name_at : at + name_at + length] == name:
                out[at + flag_at] |= 0x01
            start = at + 4
    return bytes(out)


def set_central_size(data: bytes, member: str, size: int) -> bytes:
    """Claim ``size`` as ``member``'s size, stored and uncompressed, in the central directory (the data stays)."""
    out = bytearray(data)
    name = member.encode()
    start = 0
    while (at := out.find(b"PK\x01\x02", start)) >= 0:
        length = struct.unpack_from("<H", out, at + 28)[0]
        if out[at + 46 : at + 46 + length] == name:
            struct.pack_into("<II", out, at + 20, size, size)
        start = at + 4
    return bytes(out)


def flip_member_data(data: bytes, member: str, offset: int) -> bytes:
    """Flip one bit of ``member``'s stored data (its CRC left as it was)."""
    out = bytearray(data)
    at = out.find(b"PK\x03\x04" + b"")
    while at >= 0:
        name_length, extra_length = struct.unpack_from("<HH", out, at + 26)
        if out[at + 30 : at + 30 + name_length] == member.encode():
            out[at + 30 + name_length + extra_length + offset] ^= 0x01
            return bytes(out)
        at = out.find(b"PK\x03\x04", at + 4)
    raise AssertionError(member)


def name_not_utf8(data: bytes, member: str, *, central: bool) -> bytes:
    """Flag ``member``'s name as UTF-8 (bit 11) and make its first byte 0xFF, in the central directory or in its
    local header."""
    out = bytearray(data)
    signature, flags, name_at, length_at = (b"PK\x01\x02", 8, 46, 28) if central else (b"PK\x03\x04", 6, 30, 26)
    at = out.find(signature)
    while at >= 0:
        length = struct.unpack_from("<H", out, at + length_at)[0]
        if out[at + name_at : at + name_at + length] == member.encode():
            out[at + flags + 1] |= 0x08
            out[at + name_at] = 0xFF
            return bytes(out)
        at = out.find(signature, at + 4)
    raise AssertionError(member)


def bundle_attacks(c: Context) -> None:  # noqa: PLR0915 - one corpus section
    """Air-gap bundles from gd-czt for gd-hub."""
    ex, add = c.ex, c.add
    parts: dict[str, bytes] = {}
    sealed = ex.seal(document(attachment=True), parts=parts)
    mid = sealed.header.message_id
    xml = sealed.envelope_xml

    def manifest(entries: list[tuple[str, bytes]], **changes: object) -> bytes:
        value: dict[str, object] = {
            "format": bundle_module.FORMAT, "bundle_id": str(uuid.UUID(bytes=rand(16), version=4)), "from": "gd-czt",
            "to": "gd-hub", "created": ENVELOPE_AT.isoformat(),
            "envelopes": [{"message_id": m, "envelope_sha256": sha256(x)} for m, x in entries],
        }  # fmt: skip
        value.update(changes)
        return json.dumps(value, ensure_ascii=False, indent=1).encode("utf-8")

    def members(
        envelope_xml: bytes = xml,
        *,
        name: str = mid,
        digest_of: bytes | None = None,
        with_part: bytes | None = None,
        **changes: object,
    ) -> list[tuple[str, bytes]]:
        return [
            ("mimetype", bundle_module.MIMETYPE.encode()),
            (
                bundle_module.MANIFEST,
                manifest([(name, digest_of if digest_of is not None else envelope_xml)], **changes),
            ),
            (f"envelopes/{name}/envelope.xml", envelope_xml),
            (f"envelopes/{name}/parts/part-1", parts["part-1"] if with_part is None else with_part),
        ]

    good = zip_bytes(members())
    (EXCHANGE / "bundle.gwxb").write_bytes(good)

    def bundle(name: str, cls: str, data: bytes, error: str, message: str, description: str) -> None:
        add(name, cls, "bundle", data, error, message, description)

    bundle(
        "bundle-not-zip.gwxb",
        "bundle-garbled",
        b"This is not a bundle.\n" * 20,
        "InputError",
        "is not a bundle",
        "A text file named like a bundle.",
    )
    bundle(
        "bundle-truncated.gwxb",
        "bundle-garbled",
        good[: len(good) // 2],
        "InputError",
        "is not a bundle",
        "The valid bundle cut in half (no central directory).",
    )
    bundle(
        "bundle-truncated-central-directory.gwxb",
        "bundle-garbled",
        good[:-30],
        "InputError",
        "is not a bundle",
        "The valid bundle without the end of its central directory.",
    )
    bundle(
        "bundle-empty-zip.gwxb",
        "bundle-garbled",
        zip_bytes([]),
        "EnvelopeError",
        "no leading mimetype member",
        "An empty ZIP file.",
    )
    reordered = members()
    bundle(
        "bundle-mimetype-not-first.gwxb",
        "bundle-garbled",
        zip_bytes(reordered[1:] + reordered[:1]),
        "EnvelopeError",
        "no leading mimetype member",
        "The mimetype member last instead of first.",
    )
    bundle(
        "bundle-wrong-mimetype.gwxb",
        "bundle-garbled",
        zip_bytes([("mimetype", b"application/zip"), *members()[1:]]),
        "EnvelopeError",
        "wrong mimetype",
        "mimetype says application/zip.",
    )
    bundle(
        "bundle-envelope-package-mimetype.gwxb",
        "bundle-garbled",
        zip_bytes([("mimetype", b"application/vnd.gwexchange.envelope+zip"), *members()[1:]]),
        "EnvelopeError",
        "wrong mimetype",
        "An envelope package's mimetype in a bundle.",
    )
    bomb = members()
    bomb.append((f"envelopes/{mid}/parts/part-2", b"\0" * 5_000_000))
    bundle(
        "bundle-deflate-bomb.gwxb",
        "oversize-depth",
        zip_bytes(bomb, compress={f"envelopes/{mid}/parts/part-2"}),
        "EnvelopeError",
        "is compressed; bundles store members as-is",
        "A 5 MB member of zeros deflated to a few kB: refused before anything is inflated.",
    )
    bundle(
        "bundle-encrypted-member.gwxb",
        "bundle-garbled",
        set_encrypted_flag(good, f"envelopes/{mid}/envelope.xml"),
        "EnvelopeError",
        "is encrypted",
        "The envelope member flagged as encrypted (ZipCrypto).",
    )
    bundle(
        "bundle-duplicate-member.gwxb",
        "bundle-garbled",
        zip_bytes([*members(), (f"envelopes/{mid}/envelope.xml", c.envelope.envelope_xml)]),
        "EnvelopeError",
        "appears twice",
        "Two members named like the envelope: which one would be read?",
    )
    for name, member, description in (
        ("bundle-path-traversal.gwxb", "../../../home/gwx/.ssh/authorized_keys", "A member whose name climbs out."),
        ("bundle-absolute-path.gwxb", "/etc/cron.d/gwx", "A member with an absolute path."),
        ("bundle-backslash-path.gwxb", f"envelopes\\{mid}\\envelope.xml", "A member named with backslashes."),
        ("bundle-part-name-traversal.gwxb", f"envelopes/{mid}/parts/../../../x", "A part member climbing out."),
    ):
        bundle(
            name,
            "bundle-garbled",
            zip_bytes([*members(), (member, b"x")]),
            "EnvelopeError",
            "unexpected member",
            description,
        )
    bundle(
        "bundle-name-not-utf8-central.gwxb",
        "invalid-utf8",
        name_not_utf8(good, "manifest.json", central=True),
        "InputError",
        "is not a bundle",
        "The manifest's name flagged UTF-8 but invalid in the central directory (once a UnicodeDecodeError escaped).",
    )
    bundle(
        "bundle-name-not-utf8-local.gwxb",
        "invalid-utf8",
        name_not_utf8(good, "manifest.json", central=False),
        "EnvelopeError",
        "member manifest.json is damaged",
        "The manifest's name flagged UTF-8 but invalid in its local header (once a UnicodeDecodeError escaped).",
    )
    bundle(
        "bundle-manifest-missing.gwxb",
        "bundle-garbled",
        zip_bytes([m for m in members() if m[0] != "manifest.json"]),
        "EnvelopeError",
        "no manifest.json",
        "No manifest.",
    )
    bundle(
        "bundle-manifest-not-json.gwxb",
        "bundle-garbled",
        zip_bytes([(n, b"{'format': 1" if n == "manifest.json" else d) for n, d in members()]),
        "EnvelopeError",
        "manifest.json does not parse",
        "A manifest that is not JSON.",
    )
    bundle(
        "bundle-manifest-invalid-utf8.gwxb",
        "invalid-utf8",
        zip_bytes([(n, d.replace(b'"gd-czt"', b'"gd-\xffczt"') if n == "manifest.json" else d) for n, d in members()]),
        "EnvelopeError",
        "manifest.json does not parse",
        "A manifest with an invalid UTF-8 byte.",
    )
    bundle(
        "bundle-manifest-wrong-format.gwxb",
        "bundle-garbled",
        zip_bytes(members(format=2)),
        "EnvelopeError",
        "is not a format 1 manifest",
        "A format 2 manifest.",
    )
    bundle(
        "bundle-manifest-deep-json.gwxb",
        "oversize-depth",
        zip_bytes([(n, b"[" * 100_000 + b"]" * 100_000 if n == "manifest.json" else d) for n, d in members()]),
        "EnvelopeError",
        "manifest.json does not parse",
        "A manifest of 100,000 nested JSON arrays.",
    )
    bundle(
        "bundle-manifest-extra-envelope.gwxb",
        "bundle-garbled",
        zip_bytes(
            [(n, manifest([(mid, xml), (message_id(), b"x")]) if n == "manifest.json" else d) for n, d in members()]
        ),
        "EnvelopeError",
        "the manifest and the envelopes in the bundle do not match",
        "The manifest lists an envelope the bundle does not hold.",
    )
    bundle(
        "bundle-manifest-bad-message-id.gwxb",
        "bundle-garbled",
        zip_bytes([(n, manifest([("../../x", xml)]) if n == "manifest.json" else d) for n, d in members()]),
        "EnvelopeError",
        "manifest.json names a bad message id",
        "A manifest entry whose message id is a path.",
    )
    orphan = members()
    orphan.append((f"envelopes/{message_id()}/parts/part-1", b"x"))
    bundle(
        "bundle-parts-without-envelope.gwxb",
        "bundle-garbled",
        zip_bytes(orphan),
        "EnvelopeError",
        "parts without their envelope",
        "A part member with no envelope.",
    )
    bundle(
        "bundle-for-other-node.gwxb",
        "bundle-garbled",
        zip_bytes(members(to="gd-edge")),
        "EnvelopeError",
        "is a bundle for node gd-edge, not for this node gd-hub",
        "A bundle made for gd-edge, imported at gd-hub.",
    )
    bundle(
        "bundle-manifest-oversize-claimed.gwxb",
        "oversize-depth",
        set_central_size(good, "manifest.json", bundle_module.MAX_MANIFEST_BYTES + 1),
        "EnvelopeError",
        "member 'manifest.json' is larger than 4194304 bytes",
        "The central directory claims a 4 MiB + 1 byte manifest.",
    )
    # Refused envelope by envelope.
    bundle(
        "bundle-envelope-crc-damaged.gwxb",
        "bundle-garbled",
        flip_member_data(good, f"envelopes/{mid}/envelope.xml", 300),
        "EnvelopeError",
        "is damaged",
        "One bit of the envelope member flipped, its CRC not.",
    )
    bundle(
        "bundle-digest-mismatch.gwxb",
        "bundle-garbled",
        zip_bytes(members(digest_of=b"another envelope")),
        "EnvelopeError",
        "does not match the digest in the manifest",
        "The manifest's digest is not the envelope's.",
    )
    tampered = xml.replace(f'code="{OFFICE}"'.encode(), f'code="{FGW}"'.encode(), 1)
    bundle(
        "bundle-envelope-readdressed.gwxb",
        "readdressed",
        zip_bytes(members(tampered)),
        "SignatureError",
        DIGEST_CHANGED,
        "The envelope re-addressed to gd.gov.fgw and the manifest digest updated to match.",
    )
    bundle(
        "bundle-envelope-misfiled.gwxb",
        "bundle-garbled",
        zip_bytes(members(name=message_id())),
        "EnvelopeError",
        "the envelope filed as",
        "The envelope filed under another message id.",
    )
    flipped = bytearray(parts["part-1"])
    flipped[50] ^= 0x01
    bundle(
        "bundle-part-tampered.gwxb",
        "bundle-garbled",
        zip_bytes(members(with_part=bytes(flipped))),
        "EnvelopeError",
        "does not match the size and digest signed in the envelope",
        "One bit of the part flipped (the ZIP's CRC made to match).",
    )
    bundle(
        "bundle-part-missing.gwxb",
        "bundle-garbled",
        zip_bytes(members()[:3]),
        "EnvelopeError",
        "are not those its envelope signs",
        "The envelope without its part.",
    )
    elsewhere: dict[str, bytes] = {}
    to_gxt = ex.seal(document((GXT,), attachment=True), parts=elsewhere)
    gxt_mid = to_gxt.header.message_id
    bundle(
        "bundle-not-routed-here-with-part.gwxb",
        "readdressed",
        zip_bytes(
            [
                ("mimetype", bundle_module.MIMETYPE.encode()),
                (bundle_module.MANIFEST, manifest([(gxt_mid, to_gxt.envelope_xml)])),
                (f"envelopes/{gxt_mid}/envelope.xml", to_gxt.envelope_xml),
                (f"envelopes/{gxt_mid}/parts/part-1", elsewhere["part-1"]),
            ]
        ),
        "EnvelopeError",
        "is not routed through node gd-hub",
        "A valid envelope with its part for gd.gov.gxt (served by gd-edge) in a bundle for gd-hub: refused after its "
        "part was staged (the part once stayed on disk).",
    )
    bundle(
        "bundle-expired-node-signature.gwxb",
        "certificates",
        zip_bytes(members(base.serialize(_resigned_by(xml, c.pki.node_czt_expired)))),
        "TrustError",
        "is not valid at 2026-11-20T10:00:00Z",
        "An envelope signed with gd-czt's expired node certificate.",
    )
    add(
        "bundle-too-many-members.gwxb",
        "oversize-depth",
        "bundle",
        b"",
        "EnvelopeError",
        "claims 10001 members (at most 10000)",
        "A bundle of 10,001 members (made at run time).",
    )


def _resigned_by(xml: bytes, node: base.Holder) -> etree._Element:
    root = unsigned_copy(xml)
    sign_enveloped(root, node.signer)
    return root


# --- packages ----------------------------------------------------------------------------------------------------


def package_attacks(c: Context) -> None:
    """Envelope packages for gd.gov.office, opened by its clerk's tool."""
    ex, add = c.ex, c.add
    folder = OUT / ".package"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "good.gwxp"
    write_package(path, lambda sink: ex.seal(document(attachment=True), parts=_Sink(sink)))
    good = path.read_bytes()
    shutil.rmtree(folder)
    (EXCHANGE / "package.gwxp").write_bytes(good)
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        stored = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]

    def package(name: str, cls: str, data: bytes, error: str, message: str, description: str) -> None:
        add(name, cls, "package", data, error, message, description)

    def changed(change: Callable[[str, bytes], tuple[str, bytes] | None]) -> bytes:
        out = []
        for n, d in stored:
            new = change(n, d)
            if new is not None:
                out.append(new)
        return zip_bytes(out)

    package(
        "pkg-not-zip.gwxp",
        "package-garbled",
        b"%PDF-1.7 not a package",
        "InputError",
        "is not an envelope package",
        "A PDF named like a package.",
    )
    package(
        "pkg-truncated.gwxp",
        "package-garbled",
        good[: len(good) // 2],
        "InputError",
        "is not an envelope package",
        "The valid package cut in half.",
    )
    package(
        "pkg-no-mimetype.gwxp",
        "package-garbled",
        changed(lambda n, d: None if n == "mimetype" else (n, d)),
        "EnvelopeError",
        "no leading mimetype member",
        "The mimetype member removed.",
    )
    package(
        "pkg-wrong-mimetype.gwxp",
        "package-garbled",
        changed(lambda n, d: (n, bundle_module.MIMETYPE.encode()) if n == "mimetype" else (n, d)),
        "EnvelopeError",
        "wrong mimetype",
        "A bundle's mimetype in a package.",
    )
    package(
        "pkg-deflated.gwxp",
        "package-garbled",
        zip_bytes(stored, compress={"envelope.xml"}),
        "EnvelopeError",
        "is compressed",
        "The envelope member deflated.",
    )
    package(
        "pkg-encrypted-member.gwxp",
        "package-garbled",
        set_encrypted_flag(good, "parts/part-1"),
        "EnvelopeError",
        "is encrypted",
        "A part member flagged as encrypted.",
    )
    package(
        "pkg-unexpected-member.gwxp",
        "package-garbled",
        zip_bytes([*stored, ("../evil.sh", b"#!/bin/sh\n")]),
        "EnvelopeError",
        "unexpected member",
        "A member whose name climbs out of the package.",
    )
    damaged = bytearray(good)
    damaged[0:4] = b"PK\x03\x05"  # the mimetype member's local header: listed by the central directory, unreadable
    package(
        "pkg-mimetype-damaged.gwxp",
        "package-garbled",
        bytes(damaged),
        "EnvelopeError",
        "member mimetype is damaged",
        "The mimetype member's local header garbled (once an AttributeError: the refusal itself failed).",
    )
    package(
        "pkg-name-not-utf8-central.gwxp",
        "invalid-utf8",
        name_not_utf8(good, "envelope.xml", central=True),
        "InputError",
        "is not an envelope package",
        "envelope.xml's name flagged UTF-8 but invalid in the central directory (once a UnicodeDecodeError escaped).",
    )
    package(
        "pkg-name-not-utf8-local.gwxp",
        "invalid-utf8",
        name_not_utf8(good, "envelope.xml", central=False),
        "EnvelopeError",
        "member envelope.xml is damaged",
        "envelope.xml's name flagged UTF-8 but invalid in its local header (once a UnicodeDecodeError escaped).",
    )
    package(
        "pkg-no-envelope.gwxp",
        "package-garbled",
        changed(lambda n, d: None if n == "envelope.xml" else (n, d)),
        "EnvelopeError",
        "has no envelope.xml",
        "The envelope member removed.",
    )
    package(
        "pkg-part-missing.gwxp",
        "package-garbled",
        changed(lambda n, d: None if n == "parts/part-1" else (n, d)),
        "EnvelopeError",
        "lacks the part part-1",
        "The part member removed.",
    )
    package(
        "pkg-part-crc-damaged.gwxp",
        "package-garbled",
        flip_member_data(good, "parts/part-1", 20),
        "EnvelopeError",
        "part part-1 is damaged",
        "One bit of the part flipped, its CRC not.",
    )
    package(
        "pkg-part-tampered.gwxp",
        "package-garbled",
        changed(lambda n, d: (n, d[:20] + bytes([d[20] ^ 1]) + d[21:]) if n == "parts/part-1" else (n, d)),
        "DecryptionError",
        DECRYPTION,
        "One bit of the part flipped (CRC made to match): the GCM tag fails.",
    )
    package(
        "pkg-part-truncated.gwxp",
        "package-garbled",
        changed(lambda n, d: (n, d[:-1]) if n == "parts/part-1" else (n, d)),
        "DecryptionError",
        DECRYPTION,
        "The part one byte short.",
    )
    package(
        "pkg-envelope-readdressed.gwxp",
        "readdressed",
        changed(
            lambda n, d: (
                (n, d.replace(f'code="{OFFICE}"'.encode(), f'code="{FGW}"'.encode(), 1))
                if n == "envelope.xml"
                else (n, d)
            )
        ),
        "SignatureError",
        DIGEST_CHANGED,
        "The package's envelope re-addressed to gd.gov.fgw.",
    )
    package(
        "pkg-envelope-oversize-claimed.gwxp",
        "oversize-depth",
        set_central_size(good, "envelope.xml", 64 * 1024 * 1024 + 1),
        "EnvelopeError",
        "envelope.xml is larger than 67108864 bytes",
        "The central directory claims a 64 MiB + 1 byte envelope.",
    )
    package(
        "pkg-expired.gwxp",
        "replay-expiry",
        _package_of(ex, lifetime=timedelta(hours=1)),
        "EnvelopeError",
        "the envelope expired at 2026-11-20 11:00:00",
        "A package whose envelope expired at 11:00, opened at 12:00.",
    )


class _Sink(dict[str, bytes]):
    """Parts sent both to a package's sink and kept: ``Exchange.seal`` writes into a dict."""

    def __init__(self, sink: Callable[[str, object], None]) -> None:
        super().__init__()
        self._sink = sink

    def __setitem__(self, cid: str, octets: bytes) -> None:
        super().__setitem__(cid, octets)
        self._sink(cid, [octets])


def _package_of(ex: Exchange, *, lifetime: timedelta) -> bytes:
    folder = OUT / ".package"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "p.gwxp"
    write_package(path, lambda sink: ex.seal(document(attachment=True), parts=_Sink(sink), lifetime=lifetime))
    data = path.read_bytes()
    shutil.rmtree(folder)
    return data


# --- directories -------------------------------------------------------------------------------------------------


def directory_attacks(c: Context) -> None:
    """Directories offered to a node that holds serial 5."""
    pki, add, held = c.pki, c.add, c.ex.directory

    def directory(
        name: str, cls: str, data: bytes | etree._Element, error: str, message: str, description: str
    ) -> None:
        add(name, cls, "directory", data, error, message, description)

    newer = replace(held, serial=6)
    directory(
        "dir-unsigned.xml",
        "directory-untrusted",
        directory_to_xml(newer),
        "SignatureError",
        "the directory is not signed",
        "Directory 6 as built, never signed.",
    )
    directory(
        "dir-expired.xml",
        "directory-untrusted",
        sign_directory(
            replace(held, serial=6, issued=datetime(2026, 1, 1, tzinfo=UTC), expires=datetime(2026, 11, 1, tzinfo=UTC)),
            pki.authority.signer,
        ),
        "TrustError",
        "directory 6 expired on 2026-11-01T00:00:00Z",
        "A signed directory that expired.",
    )
    directory(
        "dir-not-yet-valid.xml",
        "directory-untrusted",
        sign_directory(replace(held, serial=6, issued=datetime(2026, 12, 1, tzinfo=UTC)), pki.authority.signer),
        "TrustError",
        "directory 6 is not valid yet",
        "A signed directory issued in December.",
    )
    directory(
        "dir-older-serial.xml",
        "directory-untrusted",
        sign_directory(replace(held, serial=4), pki.authority.signer),
        "TrustError",
        "directory 4 is older than directory 5 held here: refused (rollback)",
        "Directory 4, validly signed, offered to a node holding 5 (rollback to an old route or key).",
    )
    directory(
        "dir-serial-1.xml",
        "directory-untrusted",
        sign_directory(replace(held, serial=1), pki.authority.signer),
        "TrustError",
        "is older than directory 5",
        "The very first directory, replayed.",
    )
    directory(
        "dir-same-serial-different.xml",
        "directory-untrusted",
        sign_directory(replace(held, links=held.links[:1]), pki.authority.signer),
        "TrustError",
        "differs from the directory 5 held here under the same serial",
        "Serial 5 again with a link removed: two directories under one serial.",
    )
    directory(
        "dir-signed-by-department.xml",
        "directory-untrusted",
        sign_directory(newer, pki.czt.signer),
        "TrustError",
        "the directory is signed by gd.gov.czt; only the authority gd.gov.ca publishes it",
        "Directory 6 signed by gd.gov.czt, a trusted department but not the authority.",
    )
    root = directory_to_element(newer)
    sign_raw(root, pki.node_hub, base.Shape(method=base.ECDSA_SHA256))
    directory(
        "dir-signed-by-node.xml",
        "certificates",
        root,
        "TrustError",
        "is a node certificate, not a department one",
        "Directory 6 signed with gd-hub's node certificate.",
    )
    directory(
        "dir-signed-by-attacker-root.xml",
        "certificates",
        sign_directory(newer, pki.authority_attacker.signer),
        "TrustError",
        "certificate is not issued by the configured root",
        "Directory 6 signed by a gd.gov.ca certificate of the attacker's root.",
    )
    root = directory_to_element(newer)
    sign_raw(root, pki.office_self_signed, base.Shape())
    directory(
        "dir-signed-self-signed.xml",
        "certificates",
        root,
        "TrustError",
        "certificate is self-signed",
        "Directory 6 signed with a self-signed certificate.",
    )
    redirected = sign_directory(newer, pki.authority.signer).replace(
        b'smtp="127.0.0.1:2602"', b'smtp="203.0.113.9:25"', 1
    )
    assert b"203.0.113.9" in redirected
    directory(
        "dir-tampered-endpoint.xml",
        "directory-untrusted",
        redirected,
        "SignatureError",
        DIGEST_CHANGED,
        "Directory 6 with gd-hub's SMTP endpoint redirected to an attacker after signing.",
    )
    root = base.parse(sign_directory(newer, pki.authority.signer))
    root.append(copy.deepcopy(root[-1]))
    directory(
        "dir-two-signatures.xml",
        "signature-wrapping",
        root,
        "ConfigError",
        "Element '{http://www.w3.org/2000/09/xmldsig#}Signature': This element is not expected",
        "Directory 6 with its signature twice (the schema allows one).",
    )
    root = directory_to_element(newer)
    sign_raw(root, pki.authority, base.Shape(digest=base.SHA1))
    directory(
        "dir-digest-sha1.xml",
        "algorithm-downgrade",
        root,
        "SignatureError",
        f"digest algorithm {base.SHA1} is not accepted",
        "Directory 6 signed by the authority with a SHA-1 digest.",
    )
    signed = sign_directory(newer, pki.authority.signer)
    cut = signed.index(b"?>") + 2
    directory(
        "dir-doctype.xml",
        "dtd-entities",
        signed[:cut] + b"\n<!DOCTYPE dir:Directory>" + signed[cut:],
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A DOCTYPE before a signed directory.",
    )
    directory(
        "dir-not-a-directory.xml",
        "directory-untrusted",
        c.envelope.envelope_xml,
        "ConfigError",
        "not a gwexchange directory",
        "An envelope offered as a directory.",
    )
    unknown_zone = signed.replace("内网".encode(), "暗网".encode())
    directory(
        "dir-unknown-zone.xml",
        "directory-untrusted",
        unknown_zone,
        "ConfigError",
        "not a valid directory",
        "A zone no policy knows (暗网).",
    )
    directory(
        "dir-invalid-utf8.xml",
        "invalid-utf8",
        signed.replace("内网".encode(), "内网".encode()[:-1], 1),
        "XmlInputError",
        "malformed XML",
        "A zone name cut inside its last UTF-8 sequence.",
    )


# --- tree heads --------------------------------------------------------------------------------------------------


def treehead_attacks(c: Context) -> None:  # noqa: PLR0915 - one corpus section
    """Signed tree heads of gd-hub, as XML and as lines of a heads file."""
    pki, add = c.pki, c.add
    state = TreeState(1000, hashlib.sha256(b"gwexchange test vectors").digest())
    head = sign_tree_head(state, pki.node_hub.signer, "gd-hub", HEAD_AT)
    xml = tree_head_to_xml(head)
    text = xml.decode("ascii")
    size_attr, root_hex = 'size="1000"', head.root_hash.hex()
    line = head_to_line(head)
    (EXCHANGE / "treehead.line").write_bytes(line + b"\n")
    (EXCHANGE / "treehead.xml").write_bytes(xml)

    def th(name: str, cls: str, data: bytes | str | etree._Element, error: str, message: str, description: str) -> None:
        add(name, cls, "treehead", data.encode("utf-8") if isinstance(data, str) else data, error, message, description)

    def swap(old: str, new: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    th(
        "th-doctype.xml",
        "dtd-entities",
        swap("?>", '?>\n<!DOCTYPE th:TreeHead [<!ENTITY s "1000">]>'),
        "XmlInputError",
        DOCTYPE_REFUSED,
        "A tree head with an internal DTD.",
    )
    th(
        "th-wrong-root.xml",
        "treehead-malformed",
        swap("<th:TreeHead", "<th:Head").replace("</th:TreeHead>", "</th:Head>"),
        "InputError",
        "not a tree head",
        "The root element renamed.",
    )
    th(
        "th-extra-attribute.xml",
        "treehead-malformed",
        swap(size_attr, size_attr + ' origin="gd-czt"'),
        "InputError",
        "has exactly the attributes node, size and time",
        "An extra attribute on the head.",
    )
    th(
        "th-size-leading-zero.xml",
        "treehead-malformed",
        swap(size_attr, 'size="01000"'),
        "InputError",
        "is not a decimal number without leading zeros",
        "The size with a leading zero (a second encoding).",
    )
    th(
        "th-size-negative.xml",
        "treehead-malformed",
        swap(size_attr, 'size="-1"'),
        "InputError",
        "is not a decimal number without leading zeros",
        "A negative size.",
    )
    th(
        "th-size-over-2-63.xml",
        "treehead-malformed",
        swap(size_attr, 'size="9999999999999999999"'),
        "InputError",
        "is not a whole number from 0 to 2^63 - 1",
        "A size beyond 2^63 - 1.",
    )
    th(
        "th-size-huge.xml",
        "oversize-depth",
        swap(size_attr, 'size="' + "9" * 5000 + '"'),
        "InputError",
        "is not a decimal number without leading zeros",
        "A size of 5,000 digits (int() of it would be refused anyway).",
    )
    th(
        "th-root-uppercase.xml",
        "treehead-malformed",
        swap(root_hex, root_hex.upper()),
        "InputError",
        "th:RootHash is 64 lower-case hex digits",
        "The root hash in upper case.",
    )
    th(
        "th-root-short.xml",
        "treehead-malformed",
        swap(root_hex, root_hex[:-2]),
        "InputError",
        "th:RootHash is 64 lower-case hex digits",
        "A 31-byte root hash.",
    )
    th(
        "th-time-without-millis.xml",
        "treehead-malformed",
        swap(".123Z", "Z"),
        "InputError",
        "is not of the form 2026-11-20T08:00:00.000Z",
        "The time without milliseconds.",
    )
    th(
        "th-time-impossible.xml",
        "treehead-malformed",
        swap("2026-11-20T", "2026-02-30T"),
        "InputError",
        "is not a real time",
        "The 30th of February.",
    )
    th(
        "th-time-offset.xml",
        "treehead-malformed",
        swap(".123Z", ".123+08:00"),
        "InputError",
        "is not of the form",
        "A time with an offset instead of Z.",
    )
    signature_b64 = base.b64(head.signature)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert signature_b64.endswith("==")  # 64 bytes: the last character before the padding has 4 unused bits
    last = alphabet.index(signature_b64[-3])
    stray = signature_b64[:-3] + alphabet[last ^ 0x01] + "=="
    assert base64.b64decode(stray) == head.signature
    th(
        "th-signature-not-canonical.xml",
        "treehead-malformed",
        swap(signature_b64, stray),
        "InputError",
        "is not canonical base64",
        "The signature's base64 with a stray bit in the unused low bits: the same "
        "signature, a second encoding of the head.",
    )
    th(
        "th-signature-two-lines.xml",
        "treehead-malformed",
        swap(signature_b64, signature_b64[:20] + "\n" + signature_b64[20:]),
        "InputError",
        "th:Signature is not base64",
        "The signature's base64 broken over two lines.",
    )
    th(
        "th-signature-not-base64.xml",
        "treehead-malformed",
        swap(signature_b64, "!" + signature_b64[1:]),
        "InputError",
        "th:Signature is not base64",
        "A signature that is not base64.",
    )
    certificate_b64 = base64.b64encode(head.certificate).decode("ascii")
    th(
        "th-certificate-non-ascii.xml",
        "invalid-utf8",
        swap(certificate_b64, "\ufeff" + certificate_b64),
        "InputError",
        "th:Certificate is not base64",
        "A byte-order mark (valid UTF-8, not base64) before the certificate (once a ValueError escaped the parser).",
    )
    th(
        "th-signature-sha1.xml",
        "algorithm-downgrade",
        swap(head.method.value, base.ECDSA_SHA1),
        "InputError",
        "is not accepted",
        "The signature algorithm relabelled ECDSA-SHA1.",
    )
    th(
        "th-children-reordered.xml",
        "treehead-malformed",
        _reorder(xml),
        "InputError",
        "must contain exactly RootHash, Signature and Certificate, in that order",
        "Certificate before Signature.",
    )
    th(
        "th-text-inside.xml",
        "treehead-malformed",
        swap("<th:RootHash>", "size 1000000<th:RootHash>"),
        "InputError",
        "holds only its three child elements",
        "Text in the head claiming another size.",
    )
    th(
        "th-nested-deep.xml",
        "oversize-depth",
        swap("</th:Certificate>", "</th:Certificate>" + "<th:x>" * 5 + "</th:x>" * 5),
        "XmlInputError",
        "XML is nested deeper than 4 levels",
        "Elements nested below the head's four levels.",
    )
    th(
        "th-oversize.xml",
        "oversize-depth",
        swap("<th:RootHash>", " " * 70_000 + "<th:RootHash>"),
        "XmlInputError",
        "more than the limit of 65536",
        "A head padded past 64 KiB.",
    )
    th(
        "th-invalid-utf8.xml",
        "invalid-utf8",
        xml.replace(b'node="gd-hub"', b'node="gd-h\xffub"', 1),
        "XmlInputError",
        "malformed XML",
        "An invalid UTF-8 byte in the node id.",
    )
    th(
        "th-size-changed.xml",
        "treehead-malformed",
        swap(size_attr, 'size="1001"'),
        "SignatureError",
        "signature value does not verify",
        "The size raised to 1001 after signing (a forged growth).",
    )
    th(
        "th-node-mismatch.xml",
        "treehead-malformed",
        swap('node="gd-hub"', 'node="gd-czt"'),
        "SignatureError",
        "the tree head names node gd-czt, but node gd-hub's certificate signed it",
        "gd-hub's head claimed for gd-czt.",
    )
    for name, signer, node_id, message, description in (
        (
            "th-cert-department.xml",
            pki.czt,
            "gd-hub",
            "is a department certificate, not a node one",
            "A head signed with a department's signing certificate.",
        ),
        (
            "th-cert-expired.xml",
            pki.node_czt_expired,
            "gd-czt",
            "is not valid at 2026-11-20T11:30:00Z",
            "A head signed with gd-czt's expired node certificate.",
        ),
        (
            "th-cert-revoked.xml",
            pki.node_czt_revoked,
            "gd-czt",
            "was revoked on 2026-06-01T00:00:00Z (keyCompromise)",
            "A head signed with gd-czt's revoked node certificate.",
        ),
        (
            "th-cert-self-signed.xml",
            pki.node_czt_self_signed,
            "gd-czt",
            "certificate is self-signed",
            "A head signed with a self-signed node certificate.",
        ),
    ):
        from gwexchange.archive.treehead import SignedTreeHead, signed_bytes

        method, value = signer.signer.suite.sign(signer.key, signed_bytes(node_id, state.size, state.root, HEAD_AT))
        forged = SignedTreeHead(node_id, state.size, state.root, HEAD_AT, method, value, signer.der)
        th(name, "certificates", tree_head_to_xml(forged), "TrustError", message, description)

    def thl(name: str, cls: str, data: bytes, error: str, message: str, description: str) -> None:
        add(name, cls, "treehead-line", data + b"\n", error, message, description)

    record = json.loads(line)
    thl(
        "thl-not-json.line",
        "treehead-malformed",
        line[:-10],
        "VerificationError",
        "a tree head line is malformed",
        "A line cut short (a torn write).",
    )
    thl(
        "thl-keys-reordered.line",
        "treehead-malformed",
        json.dumps(dict(reversed(record.items())), separators=(",", ":")).encode(),
        "VerificationError",
        "a tree head line must have exactly the keys",
        "The keys in reverse order.",
    )
    thl(
        "thl-extra-key.line",
        "treehead-malformed",
        json.dumps({**record, "note": "x"}, separators=(",", ":")).encode(),
        "VerificationError",
        "a tree head line must have exactly the keys",
        "An extra key.",
    )
    for name, value, description in (
        ("thl-size-string.line", "1000", "The size as a string."),
        ("thl-size-float.line", 1000.0, "The size as a float."),
        ("thl-size-bool.line", True, "The size as true."),
        ("thl-size-negative.line", -1, "A negative size."),
    ):
        thl(
            name,
            "treehead-malformed",
            json.dumps({**record, "size": value}, separators=(",", ":")).encode(),
            "VerificationError",
            "a tree head line is malformed",
            description,
        )
    thl(
        "thl-size-nan.line",
        "treehead-malformed",
        line.replace(b'"size":1000', b'"size":NaN'),
        "VerificationError",
        "a tree head line is malformed",
        "NaN, which Python's json accepts, as the size.",
    )
    thl(
        "thl-size-5000-digits.line",
        "oversize-depth",
        line.replace(b'"size":1000', b'"size":' + b"9" * 5000),
        "VerificationError",
        "a tree head line is malformed",
        "A size of 5,000 digits (over int()'s digit limit).",
    )
    thl(
        "thl-spaces.line",
        "treehead-malformed",
        json.dumps(record).encode(),
        "VerificationError",
        "not in its canonical form",
        "The same head with spaces after the separators (a second encoding).",
    )
    thl(
        "thl-uppercase-hex.line",
        "treehead-malformed",
        line.replace(root_hex.encode(), root_hex.upper().encode()),
        "VerificationError",
        "a tree head line has a field of the wrong form",
        "The root hash in upper case.",
    )
    thl(
        "thl-duplicate-key.line",
        "treehead-malformed",
        line.replace(b'{"node":"gd-hub"', b'{"node":"gd-czt","node":"gd-hub"', 1),
        "VerificationError",
        "not in its canonical form",
        "The node key twice (json keeps the last).",
    )
    thl(
        "thl-invalid-utf8.line",
        "invalid-utf8",
        line.replace(b'"gd-hub"', b'"gd-h\xffub"', 1),
        "VerificationError",
        "a tree head line is malformed",
        "An invalid UTF-8 byte in the node id.",
    )
    thl(
        "thl-size-forged.line",
        "treehead-malformed",
        line.replace(b'"size":1000', b'"size":2000'),
        "SignatureError",
        "signature value does not verify",
        "The size doubled in a canonical line.",
    )


def _reorder(xml: bytes) -> bytes:
    root = base.parse(xml)
    root[1].addprevious(root[2])
    return base.serialize(root)


SECTIONS = (
    document_attacks,
    envelope_attacks,
    receipt_attacks,
    mime_attacks,
    bundle_attacks,
    package_attacks,
    directory_attacks,
    treehead_attacks,
)
# Made at run time by runner.py (too large to keep): name → generator.
GENERATED = {"env-open-oversize.xml": "oversize-envelope", "bundle-too-many-members.gwxb": "bundle-many-members"}


# --- writing and checking ----------------------------------------------------------------------------------------


def clean() -> None:
    for folder in (EXCHANGE, OUT):
        if folder.exists():
            shutil.rmtree(folder)
    EXCHANGE.mkdir(parents=True)
    OUT.mkdir(parents=True)


def write_vectors(ex: Exchange) -> Context:
    (EXCHANGE / "directory.signed.xml").write_bytes(
        sign_directory(ex.directory, ex.pki.authority.signer, authority_code=AUTHORITY)
    )
    doc = document()
    sealed = ex.seal(doc)
    (EXCHANGE / "envelope.xml").write_bytes(sealed.envelope_xml)
    verified = verify_document(_open_document(ex, sealed.envelope_xml), ex.trust, now=base.VERIFY_NOW)
    record = SentRecord.of(sealed)
    sent = {
        "sender_department": CZT, "message_id": record.message_id, "envelope_sha256": record.envelope_sha256,
        "document_sha256": record.document_sha256, "recipients": list(record.recipients),
        "paths": {OFFICE: ["gd-czt", "gd-hub"]},
    }  # fmt: skip
    assert record.document_sha256 == verified.digest
    (EXCHANGE / "sent.json").write_text(json.dumps(sent, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    good = Receipt(
        kind=ReceiptKind.DELIVERED, message_id=record.message_id, envelope_sha256=record.envelope_sha256,
        document_sha256=record.document_sha256, role=AnswererRole.DEPARTMENT, answerer=OFFICE, time=RECEIPT_AT,
    )  # fmt: skip
    receipt_xml = sign_receipt(good, ex.pki.office.signer)
    verify_receipt(receipt_xml, record, ex.trust, route_nodes=frozenset({"gd-czt", "gd-hub"}))
    receipt = seal_receipt(
        receipt_xml, ex.pki.node_hub.signer, sender_department=OFFICE, node_id="gd-hub", recipient=CZT,
        in_reply_to=record.message_id, now=RECEIPT_AT, classification=Classification.INTERNAL, random=rand,
    )  # fmt: skip
    (EXCHANGE / "receipt.xml").write_bytes(receipt.envelope_xml)
    (EXCHANGE / "README.md").write_text(VECTORS_README, encoding="utf-8")
    return Context(ex, Corpus(), sealed, receipt, record.document_sha256)


def _open_document(ex: Exchange, envelope_xml: bytes) -> bytes:
    from gwexchange.envelope.sealing import open_envelope

    return open_envelope(
        envelope_xml, OFFICE, ex.pki.office_encryption.key, ex.trust, now=base.VERIFY_NOW
    ).document.signed_bytes


VECTORS_README = """\
# Exchange test vectors — NOT SECRETS

Generated by `tests/attacks/make_exchange_attacks.py` and checked in on purpose; the keys (`*.key`) are
UNENCRYPTED throw-away test vectors, never to be trusted or used for anything real. Issued by the root of
`../pki/`; `crl.pem` revokes `keys/gd-czt/node-revoked` (keyCompromise, 2026-06-01) and is good for 20 years.

* `keys/gd-czt/node`, `keys/gd-hub/node`, `keys/gd-edge/node` — node certificates; `keys/gd-czt/node-expired`
  (valid 2026-01-01 to 2026-03-01), `keys/gd-czt/node-revoked`.
* `keys/gd.gov.czt/encryption`, `keys/gd.gov.gxt/encryption` (EC P-256), `keys/gd.gov.fgw/signing` (EC) and
  `keys/gd.gov.fgw/encryption` (RSA-2048); `keys/gd.gov.ca/signing` — the authority's directory signing key.
* `keys/attacker/` — a self-signed gd-czt node certificate, and a gd-czt node and a gd.gov.ca signing
  certificate from the attacker's root (`../attacker/root/`).
* `directory.signed.xml` — directory 5: gd-czt serves gd.gov.czt, gd-hub serves gd.gov.office and gd.gov.fgw,
  gd-edge serves gd.gov.gxt; links gd-czt–gd-hub and gd-czt–gd-edge.
* `envelope.xml` — a notice gd.gov.czt sent gd.gov.office through gd-czt at 2026-11-20T10:00:00Z (expires 7 days
  later); `sent.json` — gd-czt's outbox record of it; `receipt.xml` — gd-hub's envelope with gd.gov.office's 送达.
* `treehead.xml`, `treehead.line` — gd-hub's signed tree head of 1,000 entries at 2026-11-20T11:30:00.123Z, as XML
  and as a line of a heads file.
* `message.eml`, `bundle.gwxb`, `package.gwxp` — an envelope from gd.gov.czt to gd.gov.office with one attachment
  (its part), as an SMTP message from gd-czt to gd-hub, in an air-gap bundle for gd-hub, and as a package.
  Each is the valid input the corresponding attacks garble.
"""


def build_exchange() -> Exchange:
    pki = build_pki()
    trust = pki.trust()
    directory = Directory(
        serial=5,
        issued=DIRECTORY_ISSUED,
        expires=DIRECTORY_EXPIRES,
        policy=ZonePolicy(dict.fromkeys(Zone, Classification.TOP_SECRET)),
        nodes=(
            NodeEntry("gd-czt", "127.0.0.1", 2601, Zone.INTERNAL, pki.node_czt.cert),
            NodeEntry("gd-hub", "127.0.0.1", 2602, Zone.INTERNAL, pki.node_hub.cert),
            NodeEntry("gd-edge", "127.0.0.1", 2603, Zone.INTERNAL, pki.node_edge.cert),
        ),
        departments=(
            DepartmentEntry(CZT, base.CZT_NAME, "gd-czt", pki.czt.cert, pki.czt_encryption.cert),
            DepartmentEntry(OFFICE, base.OFFICE_NAME, "gd-hub", pki.office.cert, pki.office_encryption.cert),
            DepartmentEntry(FGW, FGW_NAME, "gd-hub", pki.fgw.cert, pki.fgw_encryption.cert),
            DepartmentEntry(GXT, base.GXT_NAME, "gd-edge", pki.gxt.cert, pki.gxt_encryption.cert),
        ),
        links=(Link("gd-czt", "gd-hub", Zone.INTERNAL), Link("gd-czt", "gd-edge", Zone.INTERNAL)),
    )
    return Exchange(pki, trust, directory)


def toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_index(attacks: list[Attack]) -> None:
    lines = [
        "# The exchange part of the hostile-input corpus: generated by make_exchange_attacks.py, run by runner.py",
        "# (see its docstring for the targets). Trust: tests/vectors/pki and tests/vectors/exchange at `now`.",
        "",
        f"now = {base.VERIFY_NOW.strftime(base.TIME)}",
        "",
    ]
    for attack in sorted(attacks, key=lambda a: a.name):
        lines.append(f"[attacks.{toml_string(attack.name)}]")
        lines.append(f"class = {toml_string(attack.cls)}")
        lines.append(f"target = {toml_string(attack.target)}")
        if attack.name in GENERATED:
            lines.append(f"generate = {toml_string(GENERATED[attack.name])}")
        if attack.setup is not None:
            lines.append(f"setup = {toml_string(attack.setup)}")
        if attack.node is not None:
            lines.append(f"node = {toml_string(attack.node)}")
        lines += [
            f"error = {toml_string(attack.error)}",
            f"message = {toml_string(attack.message)}",
            f"description = {toml_string(attack.description)}",
            "",
        ]
    (OUT / "index.toml").write_text("\n".join(lines), encoding="utf-8")


def main() -> int:
    clean()
    ex = build_exchange()
    context = write_vectors(ex)
    for section in SECTIONS:
        section(context)
    attacks = context.corpus.attacks
    for attack in attacks:
        if attack.name not in GENERATED:
            (OUT / attack.name).write_bytes(attack.data)
    write_index(attacks)
    import runner

    world = runner.World.load()
    try:
        cases = {case.name: case for case in runner.load_cases([OUT / "index.toml"])}
        bad = []
        for attack in attacks:
            result = runner.run_case(cases[attack.name], world)
            if not result.passed:
                bad.append((attack, result.detail))
    finally:
        world.close()
    for attack, _ in bad:
        (OUT / attack.name).unlink(missing_ok=True)
    failed = {a.name for a, _ in bad}
    write_index([a for a in attacks if a.name not in failed])
    print(f"{len(attacks) - len(bad)} exchange attacks written to {OUT.relative_to(base.REPO)}/, index.toml updated")
    for attack, detail in bad:
        print(f"NOT WRITTEN {attack.name}: {detail}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
