"""What every section of the exchange corpus uses: its fixed facts and the reproducible random bytes (message
ids, content keys: one seeded generator, drawn in section order), documents, envelopes and key wraps put
together by hand as a misbehaving node would, an attack with its target, the corpus, and the context."""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives import padding as block_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from lxml import etree

from gwexchange.crypto import xmlenc
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import SIGNATURE_TAG, sign_enveloped
from gwexchange.envelope.header import ENVELOPE_NS, MessageKind, RoutingHeader, eq, header_to_element
from gwexchange.envelope.model import Attachment, Classification, Department, DocKind, DocNumber, Document
from gwexchange.envelope.sealing import DOCUMENT_MEDIA_TYPE, Sealed, open_envelope, seal
from gwexchange.envelope.signing import VerifiedDocument, sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.network.directory import Directory

from . import base
from .base import CZT, DS, DS11, GXT, OFFICE
from .exchange_pki import FGW, FGW_NAME, Pki

OUT = base.ATTACKS / "exchange"

ENVELOPE_AT = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
RECEIPT_AT = datetime(2026, 11, 20, 11, 0, 0, tzinfo=UTC)
HEAD_AT = datetime(2026, 11, 20, 11, 30, 0, 123000, tzinfo=UTC)
DIRECTORY_ISSUED = datetime(2026, 11, 1, tzinfo=UTC)
DIRECTORY_EXPIRES = datetime(2045, 1, 1, tzinfo=UTC)
LIFETIME = timedelta(days=7)
NAMES = {OFFICE: base.OFFICE_NAME, CZT: base.CZT_NAME, GXT: base.GXT_NAME, FGW: FGW_NAME}
RNG = random.Random(20261120)  # noqa: S311 - reproducible message ids and keys of test vectors
rand = RNG.randbytes

XENC = "{" + xmlenc.XENC_NS + "}"
XENC11 = "{" + xmlenc.XENC11_NS + "}"
AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
RSA_1_5 = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
RSA_OAEP_MGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
KW_AES128 = "http://www.w3.org/2001/04/xmlenc#kw-aes128"
KW_AES256 = "http://www.w3.org/2001/04/xmlenc#kw-aes256"
ECDH_ES = "http://www.w3.org/2009/xmlenc11#ECDH-ES"
CONCAT_KDF = "http://www.w3.org/2009/xmlenc11#ConcatKDF"
P256 = "urn:oid:1.2.840.10045.3.1.7"

DECRYPTION = "the envelope cannot be opened with this key"
NOT_VALID_ENVELOPE = "not a valid envelope"


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


def open_document(ex: Exchange, envelope_xml: bytes) -> bytes:
    """The signed document of ``envelope_xml``, opened by gd.gov.office."""
    return open_envelope(
        envelope_xml, OFFICE, ex.pki.office_encryption.key, ex.trust, now=base.VERIFY_NOW
    ).document.signed_bytes


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
