"""Sealed envelopes: ``open_envelope(seal(x))`` gives back x, and every way an envelope must not open, with the
error it must raise.

* Round trips, property-tested: any document (any kind, 密级, 紧急程度, text, joint or not, attachments or not)
  addressed to 1 to 30 departments, EC P-256 and RSA-2048 alike, opens for each of them as the exact signed bytes.
* Attachments stream through seal and open in chunks of 1 byte, 7 bytes and 1 MiB.
* Refused: a wrong key; a department the envelope is not addressed to; header recipients, 密级, 紧急程度 or sender
  that differ from the document's; any byte of the payload, a key wrap, a part or the header changed; a wrap
  removed, duplicated or swapped between recipients; CBC content encryption and PKCS#1 v1.5 or SHA-1 OAEP key
  transport (real ciphertexts, not only their URIs); an expired envelope; a node signature made with a
  department's certificate, by another node than the header names, or under another root; schema violations.
* The ZIP package: stored members only, nothing unexpected, damaged bytes found.

Most negative cases change one thing and have the sending node sign the envelope again (``resign``), so that the
node signature is valid and the change itself is what must be caught; the same changes without re-signing are
caught by the node signature.

The session PKI of conftest names its node ``gd-hub.gov``, which is not a valid envelope node id, and has too few
departments for 30 recipients: this module makes its own PKI with ``make_pki`` (same root code, more departments,
a second RSA department and two nodes).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import struct
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives import padding as block_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gwexchange.crypto import xmlenc
from gwexchange.crypto.certificates import Role, Usage
from gwexchange.crypto.keys import KeyAlgorithm
from gwexchange.crypto.xmldsig import SIGNATURE_TAG, Signer, sign_enveloped
from gwexchange.envelope.header import ENVELOPE_NS, MessageKind, RoutingHeader, eq, header_to_element
from gwexchange.envelope.model import (
    Attachment,
    Classification,
    Department,
    DocKind,
    DocNumber,
    Document,
    Urgency,
)
from gwexchange.envelope.package import MIMETYPE, Package, is_package, write_package
from gwexchange.envelope.sealing import (
    DEFAULT_LIFETIME,
    DOCUMENT_MEDIA_TYPE,
    InspectedEnvelope,
    Part,
    Sealed,
    inspect,
    open_envelope,
    seal,
)
from gwexchange.envelope.signing import VerifiedDocument, sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.errors import (
    ConfigError,
    DecryptionError,
    EnvelopeError,
    InputError,
    SignatureError,
    TrustError,
    XmlInputError,
)

XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
DS = "http://www.w3.org/2000/09/xmldsig#"
DS11 = "http://www.w3.org/2009/xmldsig11#"
AES256_GCM = XENC11 + "aes256-gcm"
AES256_CBC = XENC + "aes256-cbc"
RSA_OAEP_11 = XENC11 + "rsa-oaep"
RSA_OAEP_MGF1P = XENC + "rsa-oaep-mgf1p"
RSA_1_5 = XENC + "rsa-1_5"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
SHA256 = XENC + "sha256"
MGF1_SHA1 = XENC11 + "mgf1sha1"
MGF1_SHA256 = XENC11 + "mgf1sha256"
KW_AES128 = XENC + "kw-aes128"
KW_AES256 = XENC + "kw-aes256"
ECDH_ES = XENC11 + "ECDH-ES"
CONCAT_KDF = XENC11 + "ConcatKDF"
P256 = "urn:oid:1.2.840.10045.3.1.7"
MIB = 1024 * 1024

OFFICE = "gd.gov.office"
CZT = "gd.gov.czt"
GXT = "gd.gov.gxt"
RSA = "gd.gov.rsa"
RSA2 = "gd.gov.rsa2"
HUB = "gd-hub"
OTHER_HUB = "gz-hub"
EXAMPLE_DEPARTMENTS = {
    OFFICE: "广东省人民政府办公厅",
    CZT: "广东省财政厅",
    GXT: "广东省工业和信息化厅",
    "gz.gov.office": "广州市人民政府办公厅",
    "gz.gov.czj": "广州市财政局",
    "sz.gov.office": "深圳市人民政府办公厅",
}
EXTRA_DEPARTMENTS = {f"gd.gov.t{i:02d}": f"广东省测试单位{i}" for i in range(1, 25)}
# Thirty departments to address: four of the examples, twenty-four more (all EC P-256) and two with RSA-2048 keys.
# gd.gov.office issues; gd.gov.gxt co-issues joint documents and is the outsider that was not addressed.
POOL = tuple(c for c in EXAMPLE_DEPARTMENTS if c not in (OFFICE, GXT)) + tuple(EXTRA_DEPARTMENTS) + (RSA, RSA2)
assert len(POOL) == 30


# --- the network: a PKI with departments and two nodes ---------------------------------------------------------


@dataclasses.dataclass
class Net:
    pki: Any  # conftest's Pki
    now: datetime

    @property
    def trust(self) -> Any:
        return self.pki.trust()

    @property
    def node(self) -> Signer:
        signer: Signer = self.pki.signer(HUB, Usage.NODE)
        return signer

    def key(self, code: str) -> Any:
        return self.pki.key(code, Usage.ENCRYPTION)

    def cert(self, code: str) -> x509.Certificate:
        cert: x509.Certificate = self.pki.cert(code, Usage.ENCRYPTION)
        return cert

    def certs(self, codes: Iterable[str]) -> dict[str, x509.Certificate]:
        return {code: self.cert(code) for code in codes}

    def sign(self, doc: Document) -> VerifiedDocument:
        xml = document_to_xml(doc)
        for issuer in doc.issuers:
            xml = sign_document(xml, self.pki.signer(issuer.code), at=self.now)
        return verify_document(xml, self._trust, now=self.now)

    def seal(self, verified: VerifiedDocument, **kwargs: Any) -> Sealed:
        codes = [d.code for d in verified.document.recipients]
        kwargs.setdefault("now", self.now)
        return seal(
            verified,
            kwargs.pop("recipients", None) or self.certs(codes),
            kwargs.pop("node", None) or self.node,
            trust=kwargs.pop("trust", self._trust),
            sender_department=kwargs.pop("sender_department", verified.document.issuers[0].code),
            node_id=kwargs.pop("node_id", HUB),
            **kwargs,
        )

    def open(self, envelope_xml: bytes, code: str, *, key: Any = None, now: datetime | None = None) -> Any:
        return open_envelope(
            envelope_xml, code, key if key is not None else self.key(code), self._trust, now=now or self.now
        )

    @property
    def _trust(self) -> Any:
        cached = self.__dict__.get("_cached_trust")
        if cached is None:
            cached = self.__dict__["_cached_trust"] = self.pki.trust()
        return cached


@pytest.fixture(scope="module")
def net(make_pki: Callable[..., Any], now: datetime) -> Net:
    pki = make_pki(departments={**EXAMPLE_DEPARTMENTS, **EXTRA_DEPARTMENTS}, rsa_department=True, node=False)
    start = pki.root.not_valid_before_utc
    pki.issue(RSA2, "广东省测试厅二（RSA-2048）", usages=[Usage.ENCRYPTION], now=start, algorithm=KeyAlgorithm.RSA_2048)
    pki.issue(HUB, "广东省公文交换节点", Role.NODE, now=start)
    pki.issue(OTHER_HUB, "广州市公文交换节点", Role.NODE, now=start)
    return Net(pki, now)


def dept(code: str) -> Department:
    return Department(code, {**EXAMPLE_DEPARTMENTS, **EXTRA_DEPARTMENTS}.get(code))


@pytest.fixture(scope="module")
def doc_ec_rsa(document_builder: Callable[..., Document]) -> Document:
    """A notice from gd.gov.office to gd.gov.czt (EC) with a copy to gd.gov.rsa (RSA)."""
    return document_builder(
        classification=Classification.INTERNAL,
        urgency=Urgency.URGENT,
        main_recipients=(dept(CZT),),
        copy_recipients=(dept(RSA),),
    )


@pytest.fixture(scope="module")
def verified(net: Net, doc_ec_rsa: Document) -> VerifiedDocument:
    return net.sign(doc_ec_rsa)


@pytest.fixture(scope="module")
def sealed(net: Net, verified: VerifiedDocument) -> Sealed:
    return net.seal(verified)


# --- helpers: take an envelope apart, change it, have the node sign it again -----------------------------------


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def resign(envelope_xml: bytes, node: Signer, change: Callable[[etree._Element], object]) -> bytes:
    """The envelope with ``change`` applied to it and a fresh node signature by ``node`` over the result."""
    root = parse(envelope_xml)
    signature = root[-1]
    assert signature.tag == SIGNATURE_TAG
    root.remove(signature)
    change(root)
    sign_enveloped(root, node)
    return serialise(root)


def build_envelope(header: RoutingHeader, payload: etree._Element, node: Signer, parts: Iterable[Part] = ()) -> bytes:
    """An envelope put together from its pieces, as a (possibly misbehaving) node would."""
    root = etree.Element(eq("Envelope"), nsmap={"env": ENVELOPE_NS})
    root.append(header_to_element(header))
    body = etree.SubElement(root, eq("Payload"))
    body.append(payload)
    for p in parts:
        etree.SubElement(body, eq("Part"), cid=p.cid, file=p.file_name, size=str(p.size), sha256=p.sha256)
    sign_enveloped(root, node)
    return serialise(root)


def header_for(
    verified: VerifiedDocument, now: datetime, *, sender: str = OFFICE, node: str = HUB, **changes: Any
) -> RoutingHeader:
    doc = verified.document
    header = RoutingHeader(
        message_id=str(uuid.uuid4()),
        kind=MessageKind.DOCUMENT,
        sender_department=sender,
        sender_node=node,
        recipients=tuple(d.code for d in doc.recipients),
        classification=doc.classification,
        urgency=doc.urgency,
        created=now,
        expires=now + DEFAULT_LIFETIME,
    )
    return dataclasses.replace(header, **changes)


def payload_for(
    net: Net, plaintext: bytes, wrap_for: Iterable[str], *, content_key: bytes | None = None
) -> tuple[etree._Element, bytes]:
    """An EncryptedData in our profile for ``plaintext``, with one wrap per department of ``wrap_for``."""
    key = content_key or os.urandom(32)
    wraps = [
        xmlenc.encrypted_key_for(key, net.cert(code).public_key(), recipient=code)  # type: ignore[arg-type]
        for code in wrap_for
    ]
    data = xmlenc.encrypted_data(xmlenc.gcm_encrypt(key, plaintext), wraps, mime_type=DOCUMENT_MEDIA_TYPE)
    return data, key


def encrypted_data_of(root: etree._Element) -> etree._Element:
    data = root.find(f"{eq('Payload')}/{{{XENC}}}EncryptedData")
    assert data is not None
    return data


def wrap_of(root: etree._Element, code: str) -> etree._Element:
    (wrap,) = [
        k
        for k in encrypted_data_of(root).iterfind(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey")
        if k.get("Recipient") == code
    ]
    return wrap


def flip_octet(text: str | None, index: int, mask: int = 0x01) -> str:
    """Base64 text whose decoded octet ``index`` has the bits of ``mask`` flipped."""
    octets = bytearray(base64.b64decode("".join((text or "").split())))
    octets[index % len(octets)] ^= mask
    return base64.b64encode(bytes(octets)).decode("ascii")


def content_key(net: Net, envelope_xml: bytes, code: str) -> bytes:
    return xmlenc.content_key_from(wrap_of(parse(envelope_xml), code), net.key(code))


def sink_into(store: dict[str, bytes]) -> Callable[[str, Iterable[bytes]], None]:
    def sink(cid: str, octets: Iterable[bytes]) -> None:
        assert cid not in store
        store[cid] = b"".join(octets)

    return sink


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def attachment_entry(name: str, content: bytes, title: str | None = None) -> Attachment:
    return Attachment(
        title=title or name,
        file_name=name,
        media_type="application/octet-stream",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )


def with_attachments(document_builder: Callable[..., Document], files: dict[str, bytes], **overrides: Any) -> Document:
    entries = tuple(attachment_entry(name, content) for name, content in files.items())
    fields: dict[str, Any] = {
        "main_recipients": (dept(CZT),),
        "copy_recipients": (dept(RSA),),
        "attachments": entries,
        "attachment_note": tuple(e.title for e in entries),
    }
    fields.update(overrides)
    return document_builder(**fields)


# --- round trips ---------------------------------------------------------------------------------------------


def test_seal_then_open_for_each_recipient(net: Net, verified: VerifiedDocument, sealed: Sealed, now: datetime) -> None:
    header = sealed.header
    assert header.kind is MessageKind.DOCUMENT
    assert header.recipients == (CZT, RSA)
    assert header.sender_department == OFFICE and header.sender_node == HUB
    assert header.classification is Classification.INTERNAL and header.urgency is Urgency.URGENT
    assert header.created == now and header.expires == now + DEFAULT_LIFETIME
    assert uuid.UUID(header.message_id).version == 4
    assert sealed.document_sha256 == verified.digest
    assert sealed.envelope_sha256 == hashlib.sha256(sealed.envelope_xml).hexdigest()
    for code in (CZT, RSA):
        opened = net.open(sealed.envelope_xml, code)
        assert opened.department == code
        assert opened.document.signed_bytes == verified.signed_bytes
        assert opened.document.document == verified.document
        assert [s.department for s in opened.document.signatures] == [OFFICE]
        assert opened.envelope.header == header
        assert opened.envelope.node.identity.code == HUB
        assert opened.envelope.envelope_xml == sealed.envelope_xml
        assert opened.envelope.parts == ()


def test_the_envelope_hides_the_document_and_wraps_once_per_recipient(
    net: Net, verified: VerifiedDocument, sealed: Sealed
) -> None:
    doc = verified.document
    for secret in (doc.title, *doc.body, doc.doc_number.text):
        assert secret.encode() not in sealed.envelope_xml
    root = parse(sealed.envelope_xml)
    data = encrypted_data_of(root)
    assert data.get("MimeType") == DOCUMENT_MEDIA_TYPE
    method = data.find(f"{{{XENC}}}EncryptionMethod")
    assert method is not None and method.get("Algorithm") == AES256_GCM
    wraps = list(data.iterfind(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey"))
    assert [w.get("Recipient") for w in wraps] == [CZT, RSA]
    ec_method, rsa_method = (w.find(f"{{{XENC}}}EncryptionMethod") for w in wraps)
    assert ec_method is not None and ec_method.get("Algorithm") == KW_AES256
    assert rsa_method is not None and rsa_method.get("Algorithm") == RSA_OAEP_11
    assert [(c.tag, c.get("Algorithm")) for c in rsa_method] == [
        (f"{{{DS}}}DigestMethod", SHA256),
        (f"{{{XENC11}}}MGF", MGF1_SHA256),
    ]
    agreement = wraps[0].find(f"{{{DS}}}KeyInfo/{{{XENC}}}AgreementMethod")
    assert agreement is not None and agreement.get("Algorithm") == ECDH_ES
    assert wraps[1].findtext(f"{{{DS}}}KeyInfo/{{{DS}}}KeyName") == RSA
    # Both recipients unwrap the same content key; the ciphertext is nonce ‖ ciphertext ‖ tag.
    key = content_key(net, sealed.envelope_xml, CZT)
    assert key == content_key(net, sealed.envelope_xml, RSA)
    octets = base64.b64decode(data.findtext(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue") or "")
    assert len(octets) == 12 + len(verified.signed_bytes) + 16
    assert AESGCM(key).decrypt(octets[:12], octets[12:], None) == verified.signed_bytes


def test_two_seals_of_one_document_share_nothing(net: Net, verified: VerifiedDocument, sealed: Sealed) -> None:
    again = net.seal(verified)
    assert again.header.message_id != sealed.header.message_id
    assert content_key(net, again.envelope_xml, CZT) != content_key(net, sealed.envelope_xml, CZT)
    assert net.open(again.envelope_xml, CZT).document.signed_bytes == verified.signed_bytes


def test_every_example_opens_for_each_of_its_recipients(net: Net, examples: dict[str, Document], now: datetime) -> None:
    files_dir = Path(__file__).resolve().parents[2] / "examples"
    for name, doc in examples.items():
        verified = net.sign(doc)
        store: dict[str, bytes] = {}
        sources = {a.file_name: [(files_dir / "attachments" / a.file_name).read_bytes()] for a in doc.attachments}
        sealed = net.seal(verified, attachments=sources, part_sink=sink_into(store))
        assert sealed.header.recipients == tuple(d.code for d in doc.recipients), name
        for code in sealed.header.recipients:
            opened = net.open(sealed.envelope_xml, code)
            assert opened.document.signed_bytes == verified.signed_bytes, (name, code)
            for part in opened.envelope.parts:
                plain = b"".join(opened.attachment(part, [store[part.cid]]))
                assert plain == sources[part.file_name][0]


TEXT = (
    st.text(
        st.characters(min_codepoint=0x20, exclude_categories=("Cs",), exclude_characters="\x7f\ufffe\uffff"),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)


@st.composite
def addressed_documents(draw: st.DrawFn) -> tuple[Document, dict[str, bytes]]:
    """Any document from gd.gov.office (with gd.gov.gxt if joint) to 1-30 departments of POOL, with its files."""
    kind = draw(st.sampled_from(DocKind))
    classification = draw(st.sampled_from(Classification))
    issuers = (dept(OFFICE), dept(GXT)) if draw(st.booleans()) else (dept(OFFICE),)
    recipients = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=30, unique=True))
    split = draw(st.integers(0, len(recipients)))
    contents = draw(st.lists(st.binary(max_size=3000), max_size=2))
    files = {f"附件{i}-{draw(st.sampled_from(['a', 'b']))}.bin": c for i, c in enumerate(contents, 1)}
    entries = tuple(attachment_entry(name, content, title=draw(TEXT)) for name, content in files.items())
    doc = Document(
        kind=kind,
        classification=classification,
        copy_number=draw(st.from_regex(r"[0-9]{6}", fullmatch=True)) if classification.is_classified else None,
        urgency=draw(st.none() | st.sampled_from(Urgency)),
        issuers=issuers,
        issuer_mark=draw(TEXT),
        doc_number=DocNumber(f"粤办发〔2026〕{draw(st.integers(1, 9999))}号"),
        signers=(draw(TEXT),) if kind.is_upward else (),
        title=draw(TEXT),
        body=tuple(draw(st.lists(TEXT, min_size=1, max_size=4))),
        signature_names=tuple(d.name or d.code for d in issuers),
        date=date(2026, 11, 20),
        main_recipients=tuple(dept(c) for c in recipients[:split]),
        copy_recipients=tuple(dept(c) for c in recipients[split:]),
        attachments=entries,
        attachment_note=tuple(e.title for e in entries),
        note=draw(st.none() | TEXT),
    )
    return doc, files


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=addressed_documents(), chunk=st.sampled_from([1, 7, 4096]), reply=st.none() | st.uuids(version=4))
def test_property_open_of_seal_is_the_document(
    net: Net, now: datetime, case: tuple[Document, dict[str, bytes]], chunk: int, reply: uuid.UUID | None
) -> None:
    doc, files = case
    verified = net.sign(doc)
    store: dict[str, bytes] = {}
    sender = doc.issuers[-1].code
    sealed = net.seal(
        verified,
        sender_department=sender,
        attachments={name: chunks(content, chunk) for name, content in files.items()},
        part_sink=sink_into(store),
        in_reply_to=str(reply) if reply else None,
    )
    codes = tuple(d.code for d in doc.recipients)
    assert sealed.header.recipients == codes
    assert sealed.header.sender_department == sender
    assert sealed.header.in_reply_to == (str(reply) if reply else None)
    assert len(parse(sealed.envelope_xml).findall(f".//{{{XENC}}}EncryptedKey")) == len(codes)
    for code in codes:
        opened = net.open(sealed.envelope_xml, code)
        assert opened.document.signed_bytes == verified.signed_bytes
        assert opened.document.document == doc
        assert [s.department for s in opened.document.signatures] == [d.code for d in doc.issuers]
        assert opened.envelope.header == sealed.header
        assert {p.file_name for p in opened.envelope.parts} == set(files)
        for part in opened.envelope.parts:
            assert b"".join(opened.attachment(part, chunks(store[part.cid], chunk))) == files[part.file_name]


def test_thirty_recipients_each_open_their_own_wrap(net: Net, document_builder: Callable[..., Document]) -> None:
    doc = document_builder(
        main_recipients=tuple(dept(c) for c in POOL[:20]), copy_recipients=tuple(dept(c) for c in POOL[20:])
    )
    verified = net.sign(doc)
    sealed = net.seal(verified)
    assert sealed.header.recipients == POOL
    root = parse(sealed.envelope_xml)
    assert [w.get("Recipient") for w in root.iterfind(f".//{{{XENC}}}EncryptedKey")] == list(POOL)
    keys = set()
    for code in POOL:
        assert net.open(sealed.envelope_xml, code).document.signed_bytes == verified.signed_bytes
        keys.add(content_key(net, sealed.envelope_xml, code))
    assert len(keys) == 1
    # Every wrap is its recipient's alone: no one else's key opens it.
    for code, other in zip(POOL, POOL[1:] + POOL[:1], strict=True):
        with pytest.raises(DecryptionError):
            net.open(sealed.envelope_xml, code, key=net.key(other))


# --- attachments ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunk", "size"),
    [(1, 20_011), (7, 150_001), (MIB, 3 * MIB + 5)],
    ids=["1-byte", "7-byte", "1-MiB"],
)
def test_attachments_stream_through_seal_and_open(
    net: Net, document_builder: Callable[..., Document], chunk: int, size: int
) -> None:
    files = {"数据.bin": os.urandom(size), "空.txt": b"", "一字节.txt": b"x"}
    verified = net.sign(with_attachments(document_builder, files))
    store: dict[str, bytes] = {}
    pulled: list[int] = []

    def source(content: bytes) -> Iterator[bytes]:
        for piece in chunks(content, chunk):
            pulled.append(len(piece))
            yield piece

    sealed = net.seal(verified, attachments={n: source(c) for n, c in files.items()}, part_sink=sink_into(store))
    assert max(pulled) <= chunk
    assert [(p.cid, p.file_name) for p in sealed.parts] == [
        ("part-1", "数据.bin"),
        ("part-2", "空.txt"),
        ("part-3", "一字节.txt"),
    ]
    nonces = {store[p.cid][:12] for p in sealed.parts}
    assert len(nonces) == 3
    for part in sealed.parts:
        octets = store[part.cid]
        assert part.size == len(octets) == len(files[part.file_name]) + 12 + 16
        assert part.sha256 == hashlib.sha256(octets).hexdigest()
        if len(files[part.file_name]) >= 16:  # (a byte or two may turn up in random octets by chance)
            assert files[part.file_name][:16] not in octets
    for code in (CZT, RSA):
        opened = net.open(sealed.envelope_xml, code)
        assert opened.envelope.parts == sealed.parts
        for part in opened.envelope.parts:
            out = list(opened.attachment(part, chunks(store[part.cid], chunk)))
            assert b"".join(out) == files[part.file_name]


@pytest.fixture(scope="module")
def with_parts(
    net: Net, document_builder: Callable[..., Document]
) -> tuple[Sealed, dict[str, bytes], dict[str, bytes]]:
    """A sealed document with three attachments, two of the same size; the files and the stored parts."""
    files = {"甲.txt": b"A" * 5000, "乙.txt": b"B" * 5000, "丙.bin": os.urandom(7777)}
    verified = net.sign(with_attachments(document_builder, files))
    store: dict[str, bytes] = {}
    sealed = net.seal(verified, attachments={n: [c] for n, c in files.items()}, part_sink=sink_into(store))
    return sealed, files, store


def damaged(octets: bytes, how: str) -> bytes:
    if how == "nonce":
        return bytes([octets[0] ^ 0x80]) + octets[1:]
    if how == "ciphertext":
        i = len(octets) // 2
        return octets[:i] + bytes([octets[i] ^ 0x01]) + octets[i + 1 :]
    if how == "tag":
        return octets[:-1] + bytes([octets[-1] ^ 0x01])
    if how == "truncated":
        return octets[:-1]
    if how == "extended":
        return octets + b"\x00"
    if how == "tag-only":
        return octets[-16:]
    if how == "empty":
        return b""
    raise AssertionError(how)


@pytest.mark.parametrize("chunk", [1, 7, MIB])
@pytest.mark.parametrize("how", ["nonce", "ciphertext", "tag", "truncated", "extended", "tag-only", "empty"])
def test_a_damaged_part_does_not_decrypt(net: Net, with_parts: Any, how: str, chunk: int) -> None:
    sealed, files, store = with_parts
    part = sealed.parts[2]
    opened = net.open(sealed.envelope_xml, CZT)
    assert b"".join(opened.attachment(part, [store[part.cid]])) == files[part.file_name]
    with pytest.raises(DecryptionError, match="cannot be opened with this key"):
        b"".join(opened.attachment(part, chunks(damaged(store[part.cid], how), chunk)))


def test_every_byte_of_a_part_is_authenticated(net: Net, with_parts: Any) -> None:
    sealed, _, store = with_parts
    part = sealed.parts[0]
    opened = net.open(sealed.envelope_xml, RSA)
    octets = store[part.cid]
    for i in range(len(octets)):
        bad = octets[:i] + bytes([octets[i] ^ 0x01]) + octets[i + 1 :]
        with pytest.raises(DecryptionError):
            b"".join(opened.attachment(part, [bad]))


def test_parts_swapped_between_attachments_are_refused(net: Net, with_parts: Any) -> None:
    """Same key, so the tag verifies: the digest signed in the document is what catches a swap."""
    sealed, _, store = with_parts
    first, second, third = sealed.parts
    opened = net.open(sealed.envelope_xml, CZT)
    assert first.size == second.size
    with pytest.raises(EnvelopeError, match="does not match the digest signed in the document"):
        b"".join(opened.attachment(first, [store[second.cid]]))
    with pytest.raises(DecryptionError):
        b"".join(opened.attachment(first, [store[third.cid]]))


def test_a_part_the_document_does_not_list_is_refused(net: Net, with_parts: Any) -> None:
    sealed, _, store = with_parts
    opened = net.open(sealed.envelope_xml, CZT)
    stranger = dataclasses.replace(sealed.parts[0], file_name="other.txt")
    with pytest.raises(EnvelopeError, match="does not list"):
        b"".join(opened.attachment(stranger, [store["part-1"]]))


def test_parts_are_bound_to_the_document(net: Net, with_parts: Any) -> None:
    sealed, _, _ = with_parts

    def drop_last_part(root: etree._Element) -> None:
        payload = root.find(eq("Payload"))
        assert payload is not None
        payload.remove(payload[-1])

    with pytest.raises(EnvelopeError, match="parts are not exactly the document's attachments"):
        net.open(resign(sealed.envelope_xml, net.node, drop_last_part), CZT)

    def rename_part(root: etree._Element) -> None:
        root.findall(f".//{eq('Part')}")[0].set("file", "乙.txt")

    with pytest.raises(EnvelopeError, match="parts are not exactly the document's attachments"):
        net.open(resign(sealed.envelope_xml, net.node, rename_part), CZT)


def test_a_part_size_or_digest_changed_in_the_envelope_breaks_the_node_signature(net: Net, with_parts: Any) -> None:
    sealed, _, _ = with_parts
    for attribute, value in (("size", "1"), ("sha256", "0" * 64)):
        root = parse(sealed.envelope_xml)
        root.findall(f".//{eq('Part')}")[0].set(attribute, value)
        with pytest.raises(SignatureError, match="digest does not match"):
            net.open(serialise(root), CZT)


def test_a_part_of_the_wrong_size_is_refused_even_if_it_decrypts(net: Net, with_parts: Any) -> None:
    """The size the node signed is checked too: a part that claims another size does not open."""
    sealed, _, store = with_parts
    opened = net.open(sealed.envelope_xml, CZT)
    part = sealed.parts[0]
    with pytest.raises(DecryptionError):
        b"".join(opened.attachment(dataclasses.replace(part, size=part.size + 1), [store[part.cid]]))


# --- seal refuses what it cannot do right ----------------------------------------------------------------------


def test_seal_needs_exactly_the_documents_recipients(net: Net, verified: VerifiedDocument) -> None:
    for codes in ([CZT], [CZT, RSA, GXT], [CZT, GXT]):
        with pytest.raises(ConfigError, match="addressed to"):
            net.seal(verified, recipients=net.certs(codes))


def test_seal_refuses_a_sender_that_did_not_issue_the_document(net: Net, verified: VerifiedDocument) -> None:
    with pytest.raises(ConfigError, match="did not issue"):
        net.seal(verified, sender_department=CZT)


def test_a_recipient_cannot_forward_what_it_received(net: Net, sealed: Sealed) -> None:
    """gd.gov.czt opened the notice; sealing it again for gd.gov.gxt, whom it does not name, is refused."""
    received = net.open(sealed.envelope_xml, CZT).document
    with pytest.raises(ConfigError, match="addressed to"):
        net.seal(received, recipients=net.certs([GXT]), sender_department=OFFICE)


def test_seal_checks_attachments(net: Net, document_builder: Callable[..., Document]) -> None:
    files = {"a.txt": b"alpha", "b.txt": b"beta"}
    verified = net.sign(with_attachments(document_builder, files))
    store: dict[str, bytes] = {}
    with pytest.raises(ConfigError, match="missing"):
        net.seal(verified, attachments={"a.txt": [b"alpha"]}, part_sink=sink_into(store))
    with pytest.raises(ConfigError, match="not in the document"):
        net.seal(verified, attachments={**{n: [c] for n, c in files.items()}, "c.txt": [b""]}, part_sink=sink_into({}))
    with pytest.raises(ConfigError, match="not the file whose digest"):
        net.seal(verified, attachments={"a.txt": [b"alpha"], "b.txt": [b"BETA"]}, part_sink=sink_into({}))
    with pytest.raises(ConfigError, match="part sink"):
        net.seal(verified, attachments={n: [c] for n, c in files.items()})


def test_wrapping_for_an_unsupported_key_is_refused() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ConfigError, match="cannot encrypt to"):
        xmlenc.encrypted_key_for(os.urandom(32), p384, recipient="gd.gov.p384")


# --- who may open -------------------------------------------------------------------------------------------


def test_a_department_not_addressed_cannot_open(net: Net, sealed: Sealed) -> None:
    with pytest.raises(EnvelopeError, match=r"not addressed to gd\.gov\.gxt"):
        net.open(sealed.envelope_xml, GXT)


@pytest.mark.parametrize(
    ("department", "key_of", "usage"),
    [
        (CZT, GXT, Usage.ENCRYPTION),  # another department's EC key
        (CZT, RSA, Usage.ENCRYPTION),  # an RSA key for an EC wrap
        (RSA, CZT, Usage.ENCRYPTION),  # an EC key for an RSA wrap
        (RSA, RSA2, Usage.ENCRYPTION),  # another RSA key
        (CZT, CZT, Usage.SIGNING),  # the right department's signing key
        (RSA, RSA, Usage.SIGNING),
    ],
)
def test_a_wrong_key_cannot_open(net: Net, sealed: Sealed, department: str, key_of: str, usage: Usage) -> None:
    with pytest.raises(DecryptionError) as caught:
        net.open(sealed.envelope_xml, department, key=net.pki.key(key_of, usage))
    assert str(caught.value) == DecryptionError.MESSAGE


def test_decryption_errors_all_say_the_same(net: Net, sealed: Sealed) -> None:
    """No oracle: a wrong key, a broken wrap and a broken ciphertext cannot be told apart by the error."""
    messages = set()
    for envelope, key in (
        (sealed.envelope_xml, net.key(GXT)),
        (resign(sealed.envelope_xml, net.node, lambda r: wrap_of(r, CZT).clear()), net.key(CZT)),
        (resign(sealed.envelope_xml, net.node, corrupt_payload(0)), net.key(CZT)),
        (resign(sealed.envelope_xml, net.node, corrupt_payload(-1)), net.key(CZT)),
    ):
        with pytest.raises(DecryptionError) as caught:
            net.open(envelope, CZT, key=key)
        messages.add((type(caught.value), str(caught.value)))
    assert messages == {(DecryptionError, DecryptionError.MESSAGE)}


def test_an_envelope_expires(net: Net, verified: VerifiedDocument, now: datetime) -> None:
    sealed = net.seal(verified, lifetime=timedelta(days=1))
    assert sealed.header.expires == now + timedelta(days=1)
    assert net.open(sealed.envelope_xml, CZT, now=now + timedelta(days=1)).department == CZT
    for late in (timedelta(days=1, seconds=1), timedelta(days=30)):
        with pytest.raises(EnvelopeError, match="expired at 2026-11-21 08:00:00"):
            net.open(sealed.envelope_xml, CZT, now=now + late)
    # A hop still reads an expired envelope (to answer it with 投递失败).
    inspected = inspect(sealed.envelope_xml, net.trust)
    assert inspected.header.expired(now + timedelta(days=2))
    assert not inspected.header.expired(now)


def test_the_default_lifetime_is_seven_days(net: Net, sealed: Sealed, now: datetime) -> None:
    net.open(sealed.envelope_xml, CZT, now=now + timedelta(days=7))
    with pytest.raises(EnvelopeError, match="expired"):
        net.open(sealed.envelope_xml, CZT, now=now + timedelta(days=7, seconds=1))


# --- header against document ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header_recipients", "wraps", "opener", "error", "match"),
    [
        # The header leaves out a department the document names.
        ((CZT,), (CZT, RSA), CZT, EnvelopeError, "differ from the document's"),
        # The header adds one the document does not name (with a wrap for it): forwarded, refused to both.
        ((CZT, RSA, GXT), (CZT, RSA, GXT), CZT, EnvelopeError, "differ from the document's"),
        ((CZT, RSA, GXT), (CZT, RSA, GXT), GXT, EnvelopeError, r"does not name gd\.gov\.gxt: it was forwarded"),
        # Same departments in another order: the set is what counts.
        ((RSA, CZT), (CZT, RSA), CZT, None, None),
        # The header names gd.gov.gxt, but no wrap is there for it.
        ((CZT, RSA, GXT), (CZT, RSA), GXT, DecryptionError, None),
    ],
)
def test_header_recipients_must_be_the_documents(
    net: Net,
    verified: VerifiedDocument,
    now: datetime,
    header_recipients: tuple[str, ...],
    wraps: tuple[str, ...],
    opener: str,
    error: type[Exception] | None,
    match: str | None,
) -> None:
    payload, _ = payload_for(net, verified.signed_bytes, wraps)
    envelope = build_envelope(header_for(verified, now, recipients=header_recipients), payload, net.node)
    if error is None:
        assert net.open(envelope, opener).document.signed_bytes == verified.signed_bytes
        return
    with pytest.raises(error, match=match):
        net.open(envelope, opener)


def test_a_document_forwarded_by_a_node_to_a_department_it_does_not_name(
    net: Net, document_builder: Callable[..., Document], now: datetime
) -> None:
    """A node takes a document addressed to gd.gov.czt only and seals it anew for gd.gov.gxt."""
    elsewhere = net.sign(document_builder(main_recipients=(dept(CZT),)))
    payload, _ = payload_for(net, elsewhere.signed_bytes, [GXT])
    for node, node_id in ((net.node, HUB), (net.pki.signer(OTHER_HUB, Usage.NODE), OTHER_HUB)):
        header = header_for(elsewhere, now, recipients=(GXT,), node=node_id)
        with pytest.raises(EnvelopeError, match=r"does not name gd\.gov\.gxt: it was forwarded, not addressed"):
            net.open(build_envelope(header, payload, node), GXT)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"classification": Classification.PUBLIC}, "密级 or 紧急程度"),
        ({"classification": Classification.SECRET}, "密级 or 紧急程度"),
        ({"urgency": None}, "密级 or 紧急程度"),
        ({"urgency": Urgency.EXTRA_URGENT}, "密级 or 紧急程度"),
        ({"sender_department": CZT}, "did not issue the document"),
        ({"kind": MessageKind.NOTICE}, "not a document"),
        ({"kind": MessageKind.RECEIPT}, "not a document"),
    ],
)
def test_header_must_agree_with_the_document(
    net: Net, verified: VerifiedDocument, now: datetime, changes: dict[str, Any], match: str
) -> None:
    payload, _ = payload_for(net, verified.signed_bytes, (CZT, RSA))
    good = build_envelope(header_for(verified, now), payload, net.node)
    assert net.open(good, CZT).document.signed_bytes == verified.signed_bytes
    payload, _ = payload_for(net, verified.signed_bytes, (CZT, RSA))
    envelope = build_envelope(header_for(verified, now, **changes), payload, net.node)
    with pytest.raises(EnvelopeError, match=match):
        net.open(envelope, CZT)


# --- payload and wraps changed ---------------------------------------------------------------------------------


def corrupt_payload(index: int, mask: int = 0x01) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        value = encrypted_data_of(root).find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
        assert value is not None
        value.text = flip_octet(value.text, index, mask)

    return change


def test_every_byte_of_the_payload_is_authenticated(net: Net, sealed: Sealed, verified: VerifiedDocument) -> None:
    """Every octet of nonce ‖ ciphertext ‖ tag, each bit pattern of one flip: the one DecryptionError."""
    key = content_key(net, sealed.envelope_xml, CZT)
    octets = base64.b64decode(
        encrypted_data_of(parse(sealed.envelope_xml)).findtext(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue") or ""
    )
    assert xmlenc.gcm_decrypt(key, octets) == verified.signed_bytes
    for i in range(len(octets)):
        for mask in (0x01, 0x80):
            with pytest.raises(DecryptionError):
                xmlenc.gcm_decrypt(key, octets[:i] + bytes([octets[i] ^ mask]) + octets[i + 1 :])
    for bad in (octets[:-1], octets + b"\x00", octets[:27], b""):
        with pytest.raises(DecryptionError):
            xmlenc.gcm_decrypt(key, bad)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, 12 + 20_000), mask=st.integers(1, 255), opener=st.sampled_from([CZT, RSA]))
def test_property_a_flipped_payload_byte_does_not_open(
    net: Net, sealed: Sealed, index: int, mask: int, opener: str
) -> None:
    """End to end: the node signs the changed payload again, and the GCM tag refuses it."""
    with pytest.raises(DecryptionError):
        net.open(resign(sealed.envelope_xml, net.node, corrupt_payload(index, mask)), opener)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_a_changed_byte_of_the_payload_text_breaks_the_node_signature(
    net: Net, sealed: Sealed, data: st.DataObject
) -> None:
    """Without the node's key, any change to the envelope's payload is refused before decryption."""
    start = sealed.envelope_xml.index(b"<xenc:CipherValue>", sealed.envelope_xml.index(b"</ds:KeyInfo>"))
    start += len(b"<xenc:CipherValue>")
    end = sealed.envelope_xml.index(b"</xenc:CipherValue>", start)
    i = data.draw(st.integers(start, end - 1))
    replacement = data.draw(st.sampled_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"))
    if replacement == sealed.envelope_xml[i]:
        replacement = ord("A") if replacement != ord("A") else ord("B")
    changed = sealed.envelope_xml[:i] + bytes([replacement]) + sealed.envelope_xml[i + 1 :]
    with pytest.raises(SignatureError, match="digest does not match"):
        net.open(changed, CZT)


def test_every_byte_of_a_wrap_is_authenticated(net: Net, sealed: Sealed) -> None:
    root = parse(sealed.envelope_xml)
    for code in (CZT, RSA):
        wrap = wrap_of(root, code)
        value = wrap.find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
        assert value is not None
        original = value.text
        length = len(base64.b64decode(original or ""))
        assert length == (40 if code == CZT else 256)
        for i in range(length):
            value.text = flip_octet(original, i)
            with pytest.raises(DecryptionError):
                xmlenc.content_key_from(wrap, net.key(code))
        value.text = original
        assert len(xmlenc.content_key_from(wrap, net.key(code))) == 32


def test_every_byte_of_the_originator_key_matters(net: Net, sealed: Sealed) -> None:
    root = parse(sealed.envelope_xml)
    wrap = wrap_of(root, CZT)
    point = wrap.find(f".//{{{DS11}}}PublicKey")
    assert point is not None
    original = point.text
    assert len(base64.b64decode(original or "")) == 65
    for i in range(65):
        point.text = flip_octet(original, i)
        with pytest.raises(DecryptionError):
            xmlenc.content_key_from(wrap, net.key(CZT))


@pytest.mark.parametrize("opener", [CZT, RSA])
@pytest.mark.parametrize("where", ["payload-nonce", "payload-tag", "wrap"])
def test_a_flipped_byte_with_a_valid_node_signature_does_not_open(
    net: Net, sealed: Sealed, opener: str, where: str
) -> None:
    def flip_wrap(root: etree._Element) -> None:
        value = wrap_of(root, opener).find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
        assert value is not None
        value.text = flip_octet(value.text, 5)

    change = {"payload-nonce": corrupt_payload(0), "payload-tag": corrupt_payload(-1), "wrap": flip_wrap}[where]
    with pytest.raises(DecryptionError):
        net.open(resign(sealed.envelope_xml, net.node, change), opener)
    # The other recipient, whose wrap is untouched, is only affected when the payload changed.
    other = RSA if opener == CZT else CZT
    if where == "wrap":
        assert net.open(resign(sealed.envelope_xml, net.node, change), other).department == other


def test_a_removed_wrap(net: Net, sealed: Sealed) -> None:
    envelope = resign(sealed.envelope_xml, net.node, lambda r: wrap_of(r, CZT).getparent().remove(wrap_of(r, CZT)))
    with pytest.raises(DecryptionError):
        net.open(envelope, CZT)
    assert net.open(envelope, RSA).department == RSA


def test_a_duplicated_wrap(net: Net, sealed: Sealed) -> None:
    def duplicate(root: etree._Element) -> None:
        wrap = wrap_of(root, CZT)
        wrap.addnext(parse(etree.tostring(wrap)))

    with pytest.raises(DecryptionError):
        net.open(resign(sealed.envelope_xml, net.node, duplicate), CZT)


def swap_recipients(a: str, b: str) -> Callable[[etree._Element], None]:
    """Swap the Recipient attributes (and the KeyNames naming them) of the wraps of ``a`` and ``b``."""

    def change(root: etree._Element) -> None:
        wa, wb = wrap_of(root, a), wrap_of(root, b)
        for wrap, new in ((wa, b), (wb, a)):
            wrap.set("Recipient", new)
            for name in wrap.iter(f"{{{DS}}}KeyName"):
                name.text = (name.text or "").replace(a if new == b else b, new)

    return change


def swap_cipher_values(a: str, b: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        va = wrap_of(root, a).find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
        vb = wrap_of(root, b).find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
        assert va is not None and vb is not None
        va.text, vb.text = vb.text, va.text

    return change


def swap_agreements(a: str, b: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        ka = wrap_of(root, a).find(f"{{{DS}}}KeyInfo")
        kb = wrap_of(root, b).find(f"{{{DS}}}KeyInfo")
        assert ka is not None and kb is not None
        pa, pb = ka.getparent(), kb.getparent()
        assert pa is not None and pb is not None
        ia, ib = pa.index(ka), pb.index(kb)
        pa.remove(ka)
        pb.remove(kb)
        pa.insert(ia, kb)
        pb.insert(ib, ka)

    return change


@pytest.fixture(scope="module")
def two_ec(net: Net, document_builder: Callable[..., Document]) -> Sealed:
    """A document for two EC departments (gd.gov.czt, gz.gov.office) and one RSA (gd.gov.rsa)."""
    doc = document_builder(main_recipients=(dept(CZT), dept("gz.gov.office")), copy_recipients=(dept(RSA),))
    return net.seal(net.sign(doc))


@pytest.mark.parametrize(
    ("swap", "a", "b"),
    [
        (swap_recipients, CZT, "gz.gov.office"),
        (swap_recipients, CZT, RSA),
        (swap_cipher_values, CZT, "gz.gov.office"),
        (swap_cipher_values, CZT, RSA),
        (swap_agreements, CZT, "gz.gov.office"),
    ],
    ids=["recipients-ec-ec", "recipients-ec-rsa", "values-ec-ec", "values-ec-rsa", "agreements-ec-ec"],
)
def test_wraps_swapped_between_recipients(net: Net, two_ec: Sealed, swap: Callable[..., Any], a: str, b: str) -> None:
    envelope = resign(two_ec.envelope_xml, net.node, swap(a, b))
    for code in (a, b):
        with pytest.raises(DecryptionError):
            net.open(envelope, code)
    # Without the node's signature, the same swap is refused before anything is decrypted.
    root = parse(two_ec.envelope_xml)
    swap(a, b)(root)
    with pytest.raises(SignatureError, match="digest does not match"):
        net.open(serialise(root), a)


def test_an_agreement_moved_to_an_rsa_wrap(net: Net, two_ec: Sealed) -> None:
    """The EC wrap loses its key agreement; the RSA wrap's KeyInfo only names its key, so it still opens."""
    envelope = resign(two_ec.envelope_xml, net.node, swap_agreements(CZT, RSA))
    with pytest.raises(DecryptionError):
        net.open(envelope, CZT)
    assert net.open(envelope, RSA).department == RSA


def test_a_wrap_from_another_envelope(net: Net, verified: VerifiedDocument, sealed: Sealed) -> None:
    """Each envelope has its own content key: a wrap copied from another envelope unwraps the wrong key."""
    other = net.seal(verified)

    def transplant(root: etree._Element) -> None:
        mine = wrap_of(root, CZT)
        mine.addnext(wrap_of(parse(other.envelope_xml), CZT))
        mine.getparent().remove(mine)  # type: ignore[union-attr]

    with pytest.raises(DecryptionError):
        net.open(resign(sealed.envelope_xml, net.node, transplant), CZT)


# --- algorithms outside the profile, with real ciphertexts -----------------------------------------------------


def rsa_wrap(
    content: bytes, public: rsa.RSAPublicKey, recipient: str, algorithm: str, params: list[tuple[str, str]], pad: Any
) -> etree._Element:
    wrap = etree.Element(f"{{{XENC}}}EncryptedKey", nsmap=xmlenc.NSMAP, Recipient=recipient)
    method = etree.SubElement(wrap, f"{{{XENC}}}EncryptionMethod", Algorithm=algorithm)
    for tag, uri in params:
        etree.SubElement(method, tag, Algorithm=uri)
    key_info = etree.SubElement(wrap, f"{{{DS}}}KeyInfo")
    etree.SubElement(key_info, f"{{{DS}}}KeyName").text = recipient
    etree.SubElement(etree.SubElement(wrap, f"{{{XENC}}}CipherData"), f"{{{XENC}}}CipherValue").text = base64.b64encode(
        public.encrypt(content, pad)
    ).decode("ascii")
    return wrap


def oaep(digest: hashes.HashAlgorithm, mgf: hashes.HashAlgorithm | None = None) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(mgf or digest), algorithm=digest, label=None)


SHA1_HASH = hashes.SHA1()  # noqa: S303  # only to make the ciphertexts that must be refused
DIGEST = f"{{{DS}}}DigestMethod"
MGF = f"{{{XENC11}}}MGF"
KEY_TRANSPORTS = {
    "rsa-1_5": (RSA_1_5, [], padding.PKCS1v15()),
    "rsa-oaep-mgf1p (SHA-1)": (RSA_OAEP_MGF1P, [(DIGEST, SHA1)], oaep(SHA1_HASH)),
    "rsa-oaep-mgf1p (SHA-256 digest)": (RSA_OAEP_MGF1P, [(DIGEST, SHA256)], oaep(hashes.SHA256(), SHA1_HASH)),
    "rsa-oaep, default SHA-1": (RSA_OAEP_11, [], oaep(SHA1_HASH)),
    "rsa-oaep, SHA-1 digest and MGF": (RSA_OAEP_11, [(DIGEST, SHA1), (MGF, MGF1_SHA1)], oaep(SHA1_HASH)),
    "rsa-oaep, SHA-256 without MGF": (RSA_OAEP_11, [(DIGEST, SHA256)], oaep(hashes.SHA256(), SHA1_HASH)),
}


@pytest.mark.parametrize("transport", list(KEY_TRANSPORTS))
def test_key_transport_outside_the_profile_is_refused(
    net: Net, verified: VerifiedDocument, now: datetime, transport: str
) -> None:
    algorithm, params, pad = KEY_TRANSPORTS[transport]
    key = os.urandom(32)
    public = net.cert(RSA).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    wrap = rsa_wrap(key, public, RSA, algorithm, params, pad)
    good = xmlenc.encrypted_key_for(key, net.cert(CZT).public_key(), recipient=CZT)  # type: ignore[arg-type]
    payload = xmlenc.encrypted_data(
        xmlenc.gcm_encrypt(key, verified.signed_bytes), [good, wrap], mime_type=DOCUMENT_MEDIA_TYPE
    )
    envelope = build_envelope(header_for(verified, now), payload, net.node)
    assert net.open(envelope, CZT).document.signed_bytes == verified.signed_bytes  # the envelope itself is fine
    # The wrap really holds the content key (so only the algorithm can be the reason it is refused) ...
    private = net.key(RSA)
    assert private.decrypt(base64.b64decode(wrap.findtext(f".//{{{XENC}}}CipherValue") or ""), pad) == key
    # ... and gwexchange refuses it.
    with pytest.raises(DecryptionError):
        net.open(envelope, RSA)


def cbc_encrypt(key: bytes, plaintext: bytes) -> bytes:
    """AES-256-CBC as XML Encryption lays it out: IV ‖ ciphertext, padded to the block size."""
    iv = os.urandom(16)
    padder = block_padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


@pytest.mark.parametrize("opener", [CZT, RSA])
@pytest.mark.parametrize(
    "content", ["aes256-cbc", "aes256-cbc labelled gcm", "aes256-gcm labelled cbc", "aes128-gcm", "gcm with params"]
)
def test_content_encryption_outside_the_profile_is_refused(
    net: Net, verified: VerifiedDocument, now: datetime, content: str, opener: str
) -> None:
    key = os.urandom(32)
    wraps = [
        xmlenc.encrypted_key_for(key, net.cert(c).public_key(), recipient=c)  # type: ignore[arg-type]
        for c in (CZT, RSA)
    ]
    if content.startswith("aes256-cbc"):
        octets, uri = cbc_encrypt(key, verified.signed_bytes), AES256_CBC
        if content.endswith("labelled gcm"):
            uri = AES256_GCM
    elif content == "aes128-gcm":
        octets, uri = xmlenc.gcm_encrypt(key[:16], verified.signed_bytes), XENC11 + "aes128-gcm"
    else:
        octets, uri = xmlenc.gcm_encrypt(key, verified.signed_bytes), AES256_GCM
        if content == "aes256-gcm labelled cbc":
            uri = AES256_CBC
    payload = xmlenc.encrypted_data(octets, wraps, mime_type=DOCUMENT_MEDIA_TYPE)
    method = payload.find(f"{{{XENC}}}EncryptionMethod")
    assert method is not None
    method.set("Algorithm", uri)
    if content == "gcm with params":
        etree.SubElement(method, f"{{{XENC}}}KeySize").text = "256"
    envelope = build_envelope(header_for(verified, now), payload, net.node)
    with pytest.raises(DecryptionError):
        net.open(envelope, opener)


def ecdh_wrap(
    content: bytes,
    recipient_key: ec.EllipticCurvePublicKey,
    recipient: str,
    *,
    wrap_uri: str,
    kek_bytes: int,
    algorithm_id: bytes,
    agreement_uri: str = ECDH_ES,
    kdf_digest: str = SHA256,
) -> etree._Element:
    """An ECDH-ES + ConcatKDF wrap written out from the spec, with the parameters given."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

    ephemeral = ec.generate_private_key(ec.SECP256R1())
    kek = ConcatKDFHash(hashes.SHA256(), kek_bytes, algorithm_id).derive(ephemeral.exchange(ec.ECDH(), recipient_key))
    wrap = etree.Element(f"{{{XENC}}}EncryptedKey", nsmap=xmlenc.NSMAP, Recipient=recipient)
    etree.SubElement(wrap, f"{{{XENC}}}EncryptionMethod", Algorithm=wrap_uri)
    agreement = etree.SubElement(
        etree.SubElement(wrap, f"{{{DS}}}KeyInfo"), f"{{{XENC}}}AgreementMethod", Algorithm=agreement_uri
    )
    kdf = etree.SubElement(agreement, f"{{{XENC11}}}KeyDerivationMethod", Algorithm=CONCAT_KDF)
    params = etree.SubElement(
        kdf, f"{{{XENC11}}}ConcatKDFParams", AlgorithmID="00" + algorithm_id.hex(), PartyUInfo="00", PartyVInfo="00"
    )
    etree.SubElement(params, f"{{{DS}}}DigestMethod", Algorithm=kdf_digest)
    originator = etree.SubElement(agreement, f"{{{XENC}}}OriginatorKeyInfo")
    value = etree.SubElement(etree.SubElement(originator, f"{{{DS}}}KeyValue"), f"{{{DS11}}}ECKeyValue")
    etree.SubElement(value, f"{{{DS11}}}NamedCurve", URI=P256)
    point = ephemeral.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    etree.SubElement(value, f"{{{DS11}}}PublicKey").text = base64.b64encode(point).decode("ascii")
    etree.SubElement(etree.SubElement(agreement, f"{{{XENC}}}RecipientKeyInfo"), f"{{{DS}}}KeyName").text = recipient
    etree.SubElement(etree.SubElement(wrap, f"{{{XENC}}}CipherData"), f"{{{XENC}}}CipherValue").text = base64.b64encode(
        keywrap.aes_key_wrap(kek, content)
    ).decode("ascii")
    return wrap


@pytest.mark.parametrize("variant", ["profile", "kw-aes128", "other AlgorithmID", "ECDH-SS label", "SHA-1 KDF digest"])
def test_key_agreement_outside_the_profile_is_refused(
    net: Net, verified: VerifiedDocument, now: datetime, variant: str
) -> None:
    """A wrap written here from the spec opens when it is in our profile, and is refused when it is not."""
    key = os.urandom(32)
    public = net.cert(CZT).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    kwargs: dict[str, Any] = {"wrap_uri": KW_AES256, "kek_bytes": 32, "algorithm_id": KW_AES256.encode()}
    if variant == "kw-aes128":
        kwargs.update(wrap_uri=KW_AES128, kek_bytes=16, algorithm_id=KW_AES128.encode())
    elif variant == "other AlgorithmID":
        kwargs.update(algorithm_id=b"gwexchange")
    elif variant == "ECDH-SS label":
        kwargs.update(agreement_uri=XENC11 + "ECDH-SS")
    elif variant == "SHA-1 KDF digest":
        kwargs.update(kdf_digest=SHA1)
    wraps = [
        ecdh_wrap(key, public, CZT, **kwargs),
        xmlenc.encrypted_key_for(key, net.cert(RSA).public_key(), recipient=RSA),
    ]  # type: ignore[arg-type]
    payload = xmlenc.encrypted_data(
        xmlenc.gcm_encrypt(key, verified.signed_bytes), wraps, mime_type=DOCUMENT_MEDIA_TYPE
    )
    envelope = build_envelope(header_for(verified, now), payload, net.node)
    assert net.open(envelope, RSA).department == RSA
    if variant == "profile":
        assert net.open(envelope, CZT).document.signed_bytes == verified.signed_bytes
    else:
        with pytest.raises(DecryptionError):
            net.open(envelope, CZT)


# --- the header changed ----------------------------------------------------------------------------------------


def test_every_byte_of_the_header_is_covered(net: Net, sealed: Sealed) -> None:
    """Each octet of the header, flipped: refused as malformed XML, as an invalid envelope, or by the node's
    signature — never opened. Which of the three is predicted independently (lxml and the schema file)."""
    xml = sealed.envelope_xml
    start, end = xml.index(b"<env:Header>"), xml.index(b"</env:Header>") + len(b"</env:Header>")
    schema = etree.XMLSchema(
        etree.parse(str(Path(__file__).resolve().parents[2] / "gwexchange" / "schemas" / "envelope.xsd"))
    )
    seen: dict[type[Exception], int] = {}
    for i in range(start, end):
        changed = xml[:i] + bytes([xml[i] ^ 0x01]) + xml[i + 1 :]
        try:
            tree = parse(changed)
        except etree.XMLSyntaxError:
            expected: type[Exception] = XmlInputError
        else:
            expected = SignatureError if schema.validate(tree) else EnvelopeError
        with pytest.raises((XmlInputError, EnvelopeError, SignatureError)) as caught:
            net.open(changed, CZT)
        if expected is SignatureError and isinstance(caught.value, EnvelopeError):
            # Schema-valid, but a value rule of the header (e.g. expiry before creation) caught it first.
            expected = EnvelopeError
        assert type(caught.value) is expected, (i, changed[start:end], caught.value)
        if expected is SignatureError:
            assert "digest does not match" in str(caught.value)
        seen[expected] = seen.get(expected, 0) + 1
    assert seen.get(SignatureError, 0) > 50, seen
    assert seen.get(XmlInputError, 0) > 0, seen


@pytest.mark.parametrize(
    ("element", "attribute", "value"),
    [
        ("MessageId", None, "00000000-0000-4000-8000-000000000000"),
        ("Kind", None, "notice"),
        ("Sender", "department", "gd.gov.czt"),
        ("Sender", "node", "gz-hub"),
        ("Department", "code", "gd.gov.gxt"),
        ("Classification", None, "公开"),
        ("Urgency", None, "特急"),
        ("Created", None, "2026-11-20T07:59:59Z"),
        ("Expires", None, "2027-11-20T08:00:00Z"),
    ],
)
def test_a_changed_header_field_breaks_the_node_signature(
    net: Net, sealed: Sealed, element: str, attribute: str | None, value: str
) -> None:
    root = parse(sealed.envelope_xml)
    target = root.find(f"{eq('Header')}//{eq(element)}")
    assert target is not None
    if attribute:
        target.set(attribute, value)
    else:
        target.text = value
    with pytest.raises(SignatureError, match="digest does not match"):
        net.open(serialise(root), CZT)


# --- the node signature --------------------------------------------------------------------------------------


def test_inspect_needs_no_key_and_names_the_node(net: Net, sealed: Sealed) -> None:
    inspected = inspect(sealed.envelope_xml, net.trust)
    assert isinstance(inspected, InspectedEnvelope)
    assert inspected.header == sealed.header
    assert inspected.node.identity.code == HUB
    assert inspected.node.identity.role is Role.NODE
    assert inspected.envelope_sha256 == sealed.envelope_sha256


def test_a_node_signature_made_with_a_department_certificate_is_refused(
    net: Net, verified: VerifiedDocument, now: datetime
) -> None:
    for signer in (net.pki.signer(OFFICE), net.pki.signer(OFFICE, Usage.ENCRYPTION), net.pki.signer(CZT)):
        payload, _ = payload_for(net, verified.signed_bytes, (CZT, RSA))
        envelope = build_envelope(header_for(verified, now, node=HUB), payload, signer)
        with pytest.raises(TrustError, match="department certificate, not a node one"):
            net.open(envelope, CZT)
        with pytest.raises(TrustError, match="department certificate, not a node one"):
            inspect(envelope, net.trust)


def test_a_node_signature_by_another_node_than_the_header_names_is_refused(
    net: Net, sealed: Sealed, verified: VerifiedDocument, now: datetime
) -> None:
    other = net.pki.signer(OTHER_HUB, Usage.NODE)
    with pytest.raises(EnvelopeError, match="sent by node gd-hub, but node gz-hub signed it"):
        net.open(resign(sealed.envelope_xml, other, lambda r: None), CZT)
    # The same node signing under its own name is fine.
    payload, _ = payload_for(net, verified.signed_bytes, (CZT, RSA))
    envelope = build_envelope(header_for(verified, now, node=OTHER_HUB), payload, other)
    assert net.open(envelope, CZT).envelope.node.identity.code == OTHER_HUB


def test_a_node_of_another_root_is_refused(net: Net, sealed: Sealed, make_pki: Callable[..., Any]) -> None:
    stranger = make_pki(departments={}, rsa_department=False, node=False)
    stranger.issue(HUB, "冒名节点", Role.NODE, now=stranger.root.not_valid_before_utc)
    envelope = resign(sealed.envelope_xml, stranger.signer(HUB, Usage.NODE), lambda r: None)
    with pytest.raises(TrustError, match="configured root"):
        net.open(envelope, CZT)


def test_a_node_certificate_is_checked_at_the_creation_time(
    net: Net, verified: VerifiedDocument, now: datetime
) -> None:
    before = net.pki.root.not_valid_before_utc - timedelta(days=1)
    payload, _ = payload_for(net, verified.signed_bytes, (CZT, RSA))
    header = header_for(verified, now, created=before, expires=now + timedelta(days=1))
    with pytest.raises(TrustError, match="not valid at"):
        net.open(build_envelope(header, payload, net.node), CZT)


def test_the_node_signature_must_be_there_and_alone(net: Net, sealed: Sealed) -> None:
    root = parse(sealed.envelope_xml)
    root.remove(root[-1])
    with pytest.raises(EnvelopeError, match="not a valid envelope"):
        net.open(serialise(root), CZT)

    def second_signature(r: etree._Element) -> None:
        sign_enveloped(r, net.node)

    with pytest.raises(EnvelopeError):
        net.open(resign(sealed.envelope_xml, net.node, second_signature), CZT)

    def hidden_signature(r: etree._Element) -> None:
        key_info = encrypted_data_of(r).find(f"{{{DS}}}KeyInfo")
        assert key_info is not None
        key_info.append(parse(etree.tostring(parse(sealed.envelope_xml)[-1])))

    with pytest.raises(EnvelopeError, match="exactly one node signature"):
        net.open(resign(sealed.envelope_xml, net.node, hidden_signature), CZT)


# --- schema ----------------------------------------------------------------------------------------------------


def _set(path: str, attribute: str | None, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        target = root.find(path)
        assert target is not None, path
        if attribute is None:
            target.text = value
        else:
            target.set(attribute, value)

    return change


def _append(path: str, tag: str, **attrs: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        target = root.find(path)
        assert target is not None, path
        etree.SubElement(target, tag, attrs)

    return change


def _remove(path: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        target = root.find(path)
        assert target is not None, path
        target.getparent().remove(target)  # type: ignore[union-attr]

    return change


def _remove_all(root: etree._Element, path: str) -> None:
    found = root.findall(path)
    assert found, path
    for element in found:
        element.getparent().remove(element)  # type: ignore[union-attr]


H = eq("Header")
SCHEMA_VIOLATIONS: dict[str, Callable[[etree._Element], None]] = {
    "unknown header element": _append(H, eq("Priority")),
    "unknown payload element": _append(eq("Payload"), eq("Extra")),
    "foreign attribute on the envelope": _set(".", "id", "x"),
    "kind not in the list": _set(f"{H}/{eq('Kind')}", None, "letter"),
    "upper-case message id": _set(f"{H}/{eq('MessageId')}", None, str(uuid.uuid4()).upper()),
    "classification not in the list": _set(f"{H}/{eq('Classification')}", None, "普通"),
    "urgency not in the list": _set(f"{H}/{eq('Urgency')}", None, "平急"),
    "time with fraction": _set(f"{H}/{eq('Created')}", None, "2026-11-20T08:00:00.5Z"),
    "time with offset": _set(f"{H}/{eq('Expires')}", None, "2026-11-27T16:00:00+08:00"),
    "department code with capitals": _set(f"{H}/{eq('Recipients')}/{eq('Department')}", "code", "GD.gov.czt"),
    "node id with a dot": _set(f"{H}/{eq('Sender')}", "node", "gd-hub.gov"),
    "no recipients": lambda root: _remove_all(root, f"{H}/{eq('Recipients')}/{eq('Department')}"),
    "no message id": _remove(f"{H}/{eq('MessageId')}"),
    "no payload": _remove(eq("Payload")),
    "part with cid 0": _append(eq("Payload"), eq("Part"), cid="part-0", file="a", size="1", sha256="0" * 64),
    "part with upper-case digest": _append(
        eq("Payload"), eq("Part"), cid="part-1", file="a", size="1", sha256="A" * 64
    ),
    "part with negative size": _append(eq("Payload"), eq("Part"), cid="part-1", file="a", size="-1", sha256="0" * 64),
}


@pytest.mark.parametrize("violation", list(SCHEMA_VIOLATIONS))
def test_schema_violations_are_refused(net: Net, sealed: Sealed, violation: str) -> None:
    envelope = resign(sealed.envelope_xml, net.node, SCHEMA_VIOLATIONS[violation])
    with pytest.raises(EnvelopeError, match="not a valid envelope"):
        net.open(envelope, CZT)
    with pytest.raises(EnvelopeError, match="not a valid envelope"):
        inspect(envelope, net.trust)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_set(f"{H}/{eq('Expires')}", None, "2026-11-20T08:00:00Z"), "must expire after it was created"),
        (_append(f"{H}/{eq('Recipients')}", eq("Department"), code=CZT), "names a recipient department twice"),
        (_set(f"{H}/{eq('Created')}", None, "2026-11-20T24:00:00Z"), "not of the form|malformed"),
    ],
)
def test_header_value_rules(net: Net, sealed: Sealed, change: Callable[[etree._Element], None], match: str) -> None:
    with pytest.raises(EnvelopeError, match=match):
        net.open(resign(sealed.envelope_xml, net.node, change), CZT)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"not xml", XmlInputError, "malformed"),
        (b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x "y">]><e/>', XmlInputError, "DOCTYPE"),
        (b"<Envelope/>", EnvelopeError, "not a gwexchange envelope"),
        (b'<env:Envelope xmlns:env="urn:gwexchange:envelope:2"/>', EnvelopeError, "not a gwexchange envelope"),
        (b'<env:Envelope xmlns:env="urn:gwexchange:envelope:1"/>', EnvelopeError, "not a valid envelope"),
    ],
)
def test_what_is_not_an_envelope(net: Net, data: bytes, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        net.open(data, CZT)
    with pytest.raises(error, match=match):
        inspect(data, net.trust)


# --- the package -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def package_files(net: Net, document_builder: Callable[..., Document]) -> tuple[VerifiedDocument, dict[str, bytes]]:
    files = {"甲.txt": os.urandom(3000), "乙.csv": b"a,b\n1,2\n"}
    return net.sign(with_attachments(document_builder, files)), files


def write_test_package(net: Net, path: Path, verified: VerifiedDocument, files: dict[str, bytes]) -> Sealed:
    return write_package(
        path, lambda sink: net.seal(verified, attachments={n: [c] for n, c in files.items()}, part_sink=sink)
    )


def test_package_round_trip(net: Net, package_files: Any, tmp_path: Path) -> None:
    verified, files = package_files
    path = tmp_path / "notice.gwx"
    sealed = write_test_package(net, path, verified, files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notice.gwx"]
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert [i.filename for i in infos] == ["mimetype", "parts/part-1", "parts/part-2", "envelope.xml"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        assert zf.read("mimetype") == MIMETYPE.encode()
    assert is_package(path.read_bytes()[:100])
    with Package(path) as package:
        assert package.envelope_xml() == sealed.envelope_xml
        for code in (CZT, RSA):
            opened = net.open(package.envelope_xml(), code)
            for part in opened.envelope.parts:
                assert b"".join(opened.attachment(part, package.part(part.cid))) == files[part.file_name]


def test_write_package_leaves_nothing_when_sealing_fails(net: Net, package_files: Any, tmp_path: Path) -> None:
    verified, files = package_files
    path = tmp_path / "notice.gwx"
    with pytest.raises(ConfigError, match="not the file whose digest"):
        write_test_package(net, path, verified, {**files, "乙.csv": b"changed"})
    assert list(tmp_path.iterdir()) == []


def stored_members(path: Path) -> list[tuple[str, bytes]]:
    """Each member's name and stored octets, read from its local header without any CRC check."""
    raw = path.read_bytes()
    members = []
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name_length = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
            extra_length = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
            start = info.header_offset + 30 + name_length + extra_length
            members.append((info.filename, raw[start : start + info.compress_size]))
    return members


def member_offset(path: Path, member: str) -> int:
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    name_length = int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_length = int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    return info.header_offset + 30 + name_length + extra_length


def rezip(source: Path, target: Path, change: Callable[[str, bytes], tuple[str, bytes, int] | None]) -> Path:
    """Copy a package member by member; ``change`` may rename, rewrite, recompress (or drop: None) each."""
    with zipfile.ZipFile(target, "w") as dst:
        for name, data in stored_members(source):
            result = change(name, data)
            if result is None:
                continue
            new_name, new_data, compression = result
            dst.writestr(zipfile.ZipInfo(new_name), new_data, compress_type=compression)
    return target


def keep(name: str, data: bytes) -> tuple[str, bytes, int]:
    return name, data, zipfile.ZIP_STORED


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (
            lambda n, d: (n, d, zipfile.ZIP_DEFLATED if n == "envelope.xml" else zipfile.ZIP_STORED),
            EnvelopeError,
            "is compressed",
        ),
        (
            lambda n, d: (n, d, zipfile.ZIP_DEFLATED if n == "parts/part-1" else zipfile.ZIP_STORED),
            EnvelopeError,
            "is compressed",
        ),
        (
            lambda n, d: ("parts/part-01" if n == "parts/part-1" else n, d, zipfile.ZIP_STORED),
            EnvelopeError,
            "unexpected member",
        ),
        (
            lambda n, d: ("parts/../part-1" if n == "parts/part-1" else n, d, zipfile.ZIP_STORED),
            EnvelopeError,
            "unexpected member",
        ),
        (
            lambda n, d: ("README.txt" if n == "parts/part-2" else n, d, zipfile.ZIP_STORED),
            EnvelopeError,
            "unexpected member",
        ),
        (
            lambda n, d: (n, b"application/zip" if n == "mimetype" else d, zipfile.ZIP_STORED),
            EnvelopeError,
            "wrong mimetype",
        ),
        (lambda n, d: None if n == "mimetype" else keep(n, d), EnvelopeError, "no leading mimetype"),
    ],
    ids=["compressed-envelope", "compressed-part", "part-01", "dot-dot", "readme", "mimetype-value", "no-mimetype"],
)
def test_package_refuses(
    net: Net, package_files: Any, tmp_path: Path, change: Any, error: type[Exception], match: str
) -> None:
    verified, files = package_files
    good = tmp_path / "good.gwx"
    write_test_package(net, good, verified, files)
    bad = rezip(good, tmp_path / "bad.gwx", change)
    with pytest.raises(error, match=match), Package(bad):
        pass


def test_a_package_with_a_member_twice_is_refused(net: Net, package_files: Any, tmp_path: Path) -> None:
    """zipfile reads the last of two same-named members: a second envelope.xml appended would be the one opened."""
    verified, files = package_files
    path = tmp_path / "twice.gwx"
    write_test_package(net, path, verified, files)
    with Package(path) as package:
        envelope = package.envelope_xml()
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as zf, pytest.warns(UserWarning, match="Duplicate"):
        zf.writestr(zipfile.ZipInfo("envelope.xml"), envelope.replace(b"<", b" <", 1))
    with pytest.raises(EnvelopeError, match=r"member 'envelope\.xml' appears twice"), Package(path):
        pass


def test_package_with_mimetype_not_first(net: Net, package_files: Any, tmp_path: Path) -> None:
    verified, files = package_files
    good = tmp_path / "good.gwx"
    write_test_package(net, good, verified, files)
    bad = tmp_path / "bad.gwx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        infos = src.infolist()
        for info in [*infos[1:], infos[0]]:
            dst.writestr(zipfile.ZipInfo(info.filename), src.read(info))
    with pytest.raises(EnvelopeError, match="no leading mimetype"), Package(bad):
        pass


def test_a_package_claiming_too_many_members_is_refused_before_zipfile_reads_it(
    net: Net, package_files: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified, files = package_files
    path = tmp_path / "many.gwx"
    write_test_package(net, path, verified, files)
    data = path.read_bytes()
    path.write_bytes(data[:-12] + struct.pack("<H", 10_001) + data[-10:])  # the end record's member count

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile read a package its end record had already refused")

    monkeypatch.setattr(zipfile, "ZipFile", never)
    with pytest.raises(EnvelopeError, match="claims 10001 members"), Package(path):
        pass


def test_package_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.gwx"
    path.write_bytes(b"<env:Envelope/>")
    with pytest.raises(InputError, match="not an envelope package"), Package(path):
        pass


def test_package_without_a_part_or_envelope(net: Net, package_files: Any, tmp_path: Path) -> None:
    verified, files = package_files
    good = tmp_path / "good.gwx"
    write_test_package(net, good, verified, files)
    no_part = rezip(good, tmp_path / "no-part.gwx", lambda n, d: None if n == "parts/part-2" else keep(n, d))
    with Package(no_part) as package, pytest.raises(EnvelopeError, match="lacks the part part-2"):
        b"".join(package.part("part-2"))
    no_envelope = rezip(good, tmp_path / "no-env.gwx", lambda n, d: None if n == "envelope.xml" else keep(n, d))
    with Package(no_envelope) as package, pytest.raises(EnvelopeError, match=r"no envelope\.xml"):
        package.envelope_xml()


def flip_in_member(path: Path, member: str, offset: int) -> None:
    """Flip one byte of a stored member's data inside the ZIP file, leaving its recorded CRC as it was."""
    raw = bytearray(path.read_bytes())
    raw[member_offset(path, member) + offset] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("offset", [0, 1500, -1])
def test_a_damaged_part_in_a_package_is_found(net: Net, package_files: Any, tmp_path: Path, offset: int) -> None:
    verified, files = package_files
    path = tmp_path / "damaged.gwx"
    write_test_package(net, path, verified, files)
    with zipfile.ZipFile(path) as zf:
        size = zf.getinfo("parts/part-1").file_size
    flip_in_member(path, "parts/part-1", offset % size)
    # The ZIP's CRC no longer matches: reading the part finds it (before or with the GCM tag).
    with Package(path) as package:
        opened = net.open(package.envelope_xml(), CZT)
        with pytest.raises((DecryptionError, EnvelopeError)):
            b"".join(opened.attachment(opened.envelope.parts[0], package.part("part-1")))
    # Re-zipped with a CRC that matches the damaged octets: the GCM tag finds it.
    rezipped = rezip(path, tmp_path / "rezipped.gwx", keep)
    with Package(rezipped) as package:
        opened = net.open(package.envelope_xml(), CZT)
        with pytest.raises(DecryptionError):
            b"".join(opened.attachment(opened.envelope.parts[0], package.part("part-1")))


def test_an_envelope_that_would_travel_for_ages_is_refused() -> None:
    from gwexchange.envelope.header import MAX_LIFETIME, MessageKind, RoutingHeader

    start = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    fields = dict(
        message_id="6f1c0e4a-5b8d-4c3e-9a7f-2d1b0c9e8f7a",
        kind=MessageKind.DOCUMENT,
        sender_department="gd.gov.office",
        sender_node="gd-hub",
        recipients=("gd.gov.czt",),
        classification=Classification.INTERNAL,
        created=start,
    )
    RoutingHeader(**fields, expires=start + MAX_LIFETIME)  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="at most 731 days"):
        RoutingHeader(**fields, expires=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))  # type: ignore[arg-type]
