"""Interoperability of sealed envelopes with the reference implementations, both ways.

* python-xmlsec (libxmlsec1 1.3) decrypts what gwexchange sealed, with a recipient's private key: the document
  payload for EC P-256 (ECDH-ES + ConcatKDF + kw-aes256) and RSA-2048 (xmlenc11#rsa-oaep, SHA-256, MGF1-SHA256)
  recipients, and the attachment parts (their octets are an AES-256-GCM CipherValue under the same content key).
  libxmlsec1 finds keys by name only: the recipient's key is named by its department code, and for ECDH-ES the
  originator's ephemeral public key, read from dsig11:PublicKey, is preloaded as ``originator:<code>``.
* gwexchange opens what python-xmlsec encrypted: an EncryptedData template in our profile — aes256-gcm, one
  EncryptedKey per recipient, rsa-oaep with its DigestMethod and MGF, ECDH-ES with the originator key given — that
  ``EncryptionContext.encrypt_binary`` fills in with a generated session key, put in an envelope a node signs.
* The node signature verifies with Debian's ``xmlsec1`` 1.2.37 (``--trusted-pem`` the root, at the tests' clock)
  and with signxml, for EC and RSA nodes, document and receipt envelopes; a changed envelope fails with both.
  (That xmlsec1 lacks xmlenc11#rsa-oaep, so decryption is checked with python-xmlsec only.)
* Envelopes and receipts validate with ``xmllint --schema`` against gwexchange/schemas/envelope.xsd and receipt.xsd.

The XML Encryption URIs and templates here are written out from the W3C specifications, not taken from gwexchange.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLVerifier
from signxml.exceptions import InvalidSignature

from gwexchange.crypto.certificates import Role, Usage
from gwexchange.crypto.keys import KeyAlgorithm
from gwexchange.crypto.xmldsig import Signer, sign_enveloped
from gwexchange.envelope.header import ENVELOPE_NS, MessageKind, RoutingHeader, eq, header_to_element
from gwexchange.envelope.model import Attachment, Classification, Department, Document
from gwexchange.envelope.receipts import ReceiptKind, SentRecord, make_receipt, verify_receipt
from gwexchange.envelope.sealing import Sealed, inspect, open_envelope, seal, seal_receipt
from gwexchange.envelope.signing import VerifiedDocument, sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.errors import DecryptionError

XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
DS = "http://www.w3.org/2000/09/xmldsig#"
DS11 = "http://www.w3.org/2009/xmldsig11#"
AES256_GCM = XENC11 + "aes256-gcm"
RSA_OAEP = XENC11 + "rsa-oaep"
SHA256 = XENC + "sha256"
MGF1_SHA256 = XENC11 + "mgf1sha256"
KW_AES256 = XENC + "kw-aes256"
ECDH_ES = XENC11 + "ECDH-ES"
CONCAT_KDF = XENC11 + "ConcatKDF"
P256 = "urn:oid:1.2.840.10045.3.1.7"
DOCUMENT_TYPE = "application/vnd.gwexchange.document+xml"
NSMAP = {"xenc": XENC, "xenc11": XENC11, "ds": DS, "dsig11": DS11}

OFFICE = "gd.gov.office"
CZT = "gd.gov.czt"
GXT = "gd.gov.gxt"
RSA = "gd.gov.rsa"
RSA2 = "gd.gov.rsa2"
RSA3 = "gd.gov.rsa3"  # not addressed
EC_HUB = "gd-hub"
RSA_HUB = "gz-hub"
RECIPIENTS = (CZT, RSA, RSA2)
REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Interop:
    pki: Any  # conftest's Pki
    trust: Any
    now: datetime
    passphrase: bytes
    verified: VerifiedDocument
    files: dict[str, bytes]

    def key_pem(self, code: str, usage: Usage = Usage.ENCRYPTION) -> bytes:
        pem: bytes = self.pki.files(code, usage).key.read_bytes()
        return pem

    def cert(self, code: str, usage: Usage = Usage.ENCRYPTION) -> x509.Certificate:
        cert: x509.Certificate = self.pki.cert(code, usage)
        return cert

    def node(self, code: str) -> Signer:
        signer: Signer = self.pki.signer(code, Usage.NODE)
        return signer

    def seal(self, node: str = EC_HUB, **kwargs: Any) -> tuple[Sealed, dict[str, bytes]]:
        parts: dict[str, bytes] = {}

        def sink(cid: str, octets: Any) -> None:
            parts[cid] = b"".join(octets)

        sealed = seal(
            self.verified,
            {code: self.cert(code) for code in RECIPIENTS},
            self.node(node),
            trust=self.trust,
            sender_department=OFFICE,
            node_id=node,
            now=self.now,
            attachments={name: [content] for name, content in self.files.items()},
            part_sink=sink,
            **kwargs,
        )
        return sealed, parts

    def open(self, envelope_xml: bytes, code: str) -> Any:
        key = self.pki.key(code, Usage.ENCRYPTION)
        return open_envelope(envelope_xml, code, key, self.trust, now=self.now)


@pytest.fixture(scope="module")
def interop(
    make_pki: Callable[..., Any], document_builder: Callable[..., Document], now: datetime, passphrase: bytes
) -> Interop:
    pki = make_pki(departments={OFFICE: "广东省人民政府办公厅", CZT: "广东省财政厅", GXT: "广东省工业和信息化厅"})
    start = pki.root.not_valid_before_utc
    pki.issue(RSA2, "广东省测试厅二（RSA-2048）", now=start, algorithm=KeyAlgorithm.RSA_2048)
    pki.issue(RSA3, "广东省测试厅三（RSA-2048）", now=start, algorithm=KeyAlgorithm.RSA_2048)
    pki.issue(EC_HUB, "广东省公文交换节点", Role.NODE, now=start)
    pki.issue(RSA_HUB, "广州市公文交换节点（RSA）", Role.NODE, now=start, algorithm=KeyAlgorithm.RSA_2048)
    files = {"附件一.csv": "序号,名称\n1,测试\n".encode() * 50, "附件二.bin": os.urandom(70_000)}
    entries = tuple(
        Attachment(
            title=name,
            file_name=name,
            media_type="application/octet-stream",
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )
        for name, content in files.items()
    )
    doc = document_builder(
        classification=Classification.INTERNAL,
        main_recipients=(Department(CZT, "广东省财政厅"), Department(RSA)),
        copy_recipients=(Department(RSA2),),
        attachments=entries,
        attachment_note=tuple(e.title for e in entries),
    )
    trust = pki.trust()
    verified = verify_document(sign_document(document_to_xml(doc), pki.signer(OFFICE), at=now), trust, now=now)
    return Interop(pki, trust, now, passphrase, verified, files)


def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# --- python-xmlsec decrypts what we sealed ----------------------------------------------------------------------


def encrypted_data(envelope_xml: bytes) -> etree._Element:
    """The envelope's EncryptedData, alone in a document of its own (as libxmlsec1 wants a node in a tree)."""
    data = parse(envelope_xml).find(f"{eq('Payload')}/{{{XENC}}}EncryptedData")
    assert data is not None
    return parse(etree.tostring(data))


def xmlsec_keys(interop: Interop, data: etree._Element, code: str, *, key_of: str | None = None) -> xmlsec.KeysManager:
    """A keys manager holding ``code``'s private key under its name, and for an ECDH-ES wrap the originator's
    ephemeral public key (read from dsig11:PublicKey) as ``originator:<code>``."""
    manager = xmlsec.KeysManager()
    key = xmlsec.Key.from_memory(interop.key_pem(key_of or code), xmlsec.KeyFormat.PEM, interop.passphrase.decode())
    key.name = code
    manager.add_key(key)
    for wrap in data.iter(f"{{{XENC}}}EncryptedKey"):
        point = wrap.findtext(
            f".//{{{XENC}}}OriginatorKeyInfo/{{{DS}}}KeyValue/{{{DS11}}}ECKeyValue/{{{DS11}}}PublicKey"
        )
        if wrap.get("Recipient") != code or point is None:
            continue
        originator = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), base64.b64decode(point))
        pem = originator.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        public = xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM)
        public.name = f"originator:{code}"
        manager.add_key(public)
    return manager


def xmlsec_decrypt(interop: Interop, data: etree._Element, code: str, *, key_of: str | None = None) -> bytes:
    result = xmlsec.EncryptionContext(xmlsec_keys(interop, data, code, key_of=key_of)).decrypt(data)
    assert isinstance(result, bytes)
    return result


@pytest.mark.parametrize("code", RECIPIENTS)
def test_python_xmlsec_decrypts_our_payload(interop: Interop, code: str) -> None:
    sealed, _ = interop.seal()
    assert xmlsec_decrypt(interop, encrypted_data(sealed.envelope_xml), code) == interop.verified.signed_bytes


@pytest.mark.parametrize("code", RECIPIENTS)
def test_python_xmlsec_decrypts_our_payload_with_only_that_recipients_wrap(interop: Interop, code: str) -> None:
    sealed, _ = interop.seal()
    data = encrypted_data(sealed.envelope_xml)
    for wrap in list(data.iter(f"{{{XENC}}}EncryptedKey")):
        if wrap.get("Recipient") != code:
            wrap.getparent().remove(wrap)  # type: ignore[union-attr]
    assert len(list(data.iter(f"{{{XENC}}}EncryptedKey"))) == 1
    assert xmlsec_decrypt(interop, data, code) == interop.verified.signed_bytes


@pytest.mark.parametrize(("code", "key_of"), [(CZT, GXT), (RSA, RSA3), (RSA2, RSA3)])
def test_python_xmlsec_cannot_decrypt_with_another_key(interop: Interop, code: str, key_of: str) -> None:
    """The check above can fail: with the key of a department the document does not name, loaded under the
    recipient's name, libxmlsec1 refuses. (It tries every wrap whatever their names say, so another recipient's
    key would open that recipient's own wrap.)"""
    sealed, _ = interop.seal()
    with pytest.raises(xmlsec.Error):
        xmlsec_decrypt(interop, encrypted_data(sealed.envelope_xml), code, key_of=key_of)


def test_python_xmlsec_refuses_our_payload_changed(interop: Interop) -> None:
    sealed, _ = interop.seal()
    data = encrypted_data(sealed.envelope_xml)
    value = data.find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    assert value is not None
    octets = bytearray(base64.b64decode(value.text or ""))
    octets[len(octets) // 2] ^= 0x01
    value.text = base64.b64encode(bytes(octets)).decode()
    with pytest.raises(xmlsec.Error):
        xmlsec_decrypt(interop, data, RSA)


@pytest.mark.parametrize("code", [CZT, RSA])
def test_python_xmlsec_decrypts_our_attachment_parts(interop: Interop, code: str) -> None:
    """A part's octets are an AES-256-GCM CipherValue under the content key: put in an EncryptedData with the
    envelope's wraps, libxmlsec1 decrypts them to the attachment."""
    sealed, parts = interop.seal()
    for part in sealed.parts:
        data = encrypted_data(sealed.envelope_xml)
        value = data.find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
        assert value is not None
        value.text = base64.b64encode(parts[part.cid]).decode("ascii")
        assert xmlsec_decrypt(interop, data, code) == interop.files[part.file_name]


# --- we open what python-xmlsec encrypted -----------------------------------------------------------------------


def xenc(parent: etree._Element | None, local: str, ns: str = XENC, **attrs: str) -> etree._Element:
    tag = f"{{{ns}}}{local}"
    return etree.Element(tag, attrs, nsmap=NSMAP) if parent is None else etree.SubElement(parent, tag, attrs)


def template(recipients: dict[str, x509.Certificate]) -> tuple[etree._Element, list[ec.EllipticCurvePrivateKey]]:
    """An EncryptedData template in our profile, one EncryptedKey per recipient; and the ephemeral EC keys made
    for the ECDH-ES wraps (libxmlsec1 does the agreement with a key it is given by name)."""
    data = xenc(None, "EncryptedData", MimeType=DOCUMENT_TYPE)
    xenc(data, "EncryptionMethod", Algorithm=AES256_GCM)
    key_info = xenc(data, "KeyInfo", DS)
    ephemerals = []
    for code, cert in recipients.items():
        wrap = xenc(key_info, "EncryptedKey", Recipient=code)
        if isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
            xenc(wrap, "EncryptionMethod", Algorithm=KW_AES256)
            agreement = xenc(xenc(wrap, "KeyInfo", DS), "AgreementMethod", Algorithm=ECDH_ES)
            kdf = xenc(agreement, "KeyDerivationMethod", XENC11, Algorithm=CONCAT_KDF)
            params = xenc(
                kdf,
                "ConcatKDFParams",
                XENC11,
                AlgorithmID="00" + KW_AES256.encode().hex(),
                PartyUInfo="00",
                PartyVInfo="00",
            )
            xenc(params, "DigestMethod", DS, Algorithm=SHA256)
            originator = xenc(agreement, "OriginatorKeyInfo")
            xenc(originator, "KeyName", DS).text = f"originator:{code}"
            ephemeral = ec.generate_private_key(ec.SECP256R1())
            ephemerals.append(ephemeral)
            point = ephemeral.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            ec_value = xenc(xenc(originator, "KeyValue", DS), "ECKeyValue", DS11)
            xenc(ec_value, "NamedCurve", DS11, URI=P256)
            xenc(ec_value, "PublicKey", DS11).text = base64.b64encode(point).decode("ascii")
            xenc(xenc(agreement, "RecipientKeyInfo"), "KeyName", DS).text = code
        else:
            method = xenc(wrap, "EncryptionMethod", Algorithm=RSA_OAEP)
            xenc(method, "DigestMethod", DS, Algorithm=SHA256)
            xenc(method, "MGF", XENC11, Algorithm=MGF1_SHA256)
            xenc(xenc(wrap, "KeyInfo", DS), "KeyName", DS).text = code
        xenc(xenc(wrap, "CipherData"), "CipherValue")
    xenc(xenc(data, "CipherData"), "CipherValue")
    return data, ephemerals


def xmlsec_encrypt(
    interop: Interop, plaintext: bytes, codes: tuple[str, ...], session: xmlsec.Key | None = None
) -> etree._Element:
    """python-xmlsec encrypts ``plaintext`` for ``codes`` with a generated (or the given) AES-256 session key."""
    recipients = {code: interop.cert(code) for code in codes}
    data, ephemerals = template(recipients)
    manager = xmlsec.KeysManager()
    for code, cert in recipients.items():
        public = xmlsec.Key.from_memory(cert.public_bytes(serialization.Encoding.PEM), xmlsec.KeyFormat.CERT_PEM)
        public.name = code
        manager.add_key(public)
    ec_codes = [code for code, cert in recipients.items() if isinstance(cert.public_key(), ec.EllipticCurvePublicKey)]
    for code, ephemeral in zip(ec_codes, ephemerals, strict=True):
        pem = ephemeral.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        private = xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM)
        private.name = f"originator:{code}"
        manager.add_key(private)
    context = xmlsec.EncryptionContext(manager)
    context.key = session or xmlsec.Key.generate(xmlsec.KeyData.AES, 256, xmlsec.KeyDataType.SESSION)
    etree.ElementTree(data)
    encrypted = context.encrypt_binary(data, plaintext)
    # libxmlsec1 changed the tree under lxml's feet: read it back from its serialisation.
    return parse(etree.tostring(encrypted))


def envelope_around(
    interop: Interop, verified: VerifiedDocument, payload: etree._Element, parts: list[tuple[str, str, bytes]]
) -> bytes:
    """An envelope as a node builds one (header, payload, parts), signed by the EC node."""
    doc = verified.document
    header = RoutingHeader(
        message_id=str(uuid.uuid4()),
        kind=MessageKind.DOCUMENT,
        sender_department=OFFICE,
        sender_node=EC_HUB,
        recipients=tuple(d.code for d in doc.recipients),
        classification=doc.classification,
        urgency=doc.urgency,
        created=interop.now,
        expires=interop.now + timedelta(days=7),
    )
    root = etree.Element(eq("Envelope"), nsmap={"env": ENVELOPE_NS})
    root.append(header_to_element(header))
    body = etree.SubElement(root, eq("Payload"))
    body.append(payload)
    for cid, name, octets in parts:
        etree.SubElement(
            body, eq("Part"), cid=cid, file=name, size=str(len(octets)), sha256=hashlib.sha256(octets).hexdigest()
        )
    sign_enveloped(root, interop.node(EC_HUB))
    return serialise(root)


def test_we_open_what_python_xmlsec_encrypted(interop: Interop) -> None:
    """One EncryptedData for an EC and two RSA recipients, made by libxmlsec1; the attachments encrypted by it
    too, under the same session key, their CipherValue octets stored as the parts."""
    content_key = os.urandom(32)

    def session() -> xmlsec.Key:
        return xmlsec.Key.from_binary_data(xmlsec.KeyData.AES, content_key)

    payload = xmlsec_encrypt(interop, interop.verified.signed_bytes, RECIPIENTS, session())
    wraps = list(payload.iter(f"{{{XENC}}}EncryptedKey"))
    assert [w.get("Recipient") for w in wraps] == list(RECIPIENTS)
    assert all(w.findtext(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue") for w in wraps)
    parts = []
    for i, (name, content) in enumerate(interop.files.items(), 1):
        part = xmlsec_encrypt(interop, content, (), session())
        octets = base64.b64decode("".join((part.findtext(f".//{{{XENC}}}CipherValue") or "").split()))
        parts.append((f"part-{i}", name, octets))
    envelope = envelope_around(interop, interop.verified, payload, parts)
    for code in RECIPIENTS:
        opened = interop.open(envelope, code)
        assert opened.document.signed_bytes == interop.verified.signed_bytes
        assert opened.document.document == interop.verified.document
        assert [p.cid for p in opened.envelope.parts] == ["part-1", "part-2"]
        for part, (_, name, octets) in zip(opened.envelope.parts, parts, strict=True):
            pieces = [octets[i : i + 4096] for i in range(0, len(octets), 4096)]
            assert b"".join(opened.attachment(part, pieces)) == interop.files[name]


@pytest.fixture(scope="module")
def plain(interop: Interop, document_builder: Callable[..., Document]) -> VerifiedDocument:
    """A document without attachments for the three recipients."""
    doc = document_builder(
        main_recipients=(Department(CZT, "广东省财政厅"), Department(RSA)), copy_recipients=(Department(RSA2),)
    )
    signed = sign_document(document_to_xml(doc), interop.pki.signer(OFFICE), at=interop.now)
    return verify_document(signed, interop.trust, now=interop.now)


@pytest.mark.parametrize("codes", [(RSA,), (CZT,), (RSA2, RSA, CZT)], ids=["rsa", "ec", "rsa-rsa-ec"])
def test_we_open_what_python_xmlsec_encrypted_with_a_generated_session_key(
    interop: Interop, plain: VerifiedDocument, codes: tuple[str, ...]
) -> None:
    payload = xmlsec_encrypt(interop, plain.signed_bytes, codes)
    envelope = envelope_around(interop, plain, payload, [])
    for code in codes:
        assert interop.open(envelope, code).document.signed_bytes == plain.signed_bytes
    # The header names all three; a recipient libxmlsec1 made no wrap for cannot open.
    for code in set(RECIPIENTS) - set(codes):
        with pytest.raises(DecryptionError):
            interop.open(envelope, code)


def test_what_python_xmlsec_encrypted_and_was_changed_does_not_open(interop: Interop, plain: VerifiedDocument) -> None:
    payload = xmlsec_encrypt(interop, plain.signed_bytes, RECIPIENTS)
    value = payload.find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    assert value is not None
    octets = bytearray(base64.b64decode("".join((value.text or "").split())))
    octets[-1] ^= 0x01  # the GCM tag
    value.text = base64.b64encode(bytes(octets)).decode()
    envelope = envelope_around(interop, plain, payload, [])
    for code in RECIPIENTS:
        with pytest.raises(DecryptionError):
            interop.open(envelope, code)


# --- node signatures with xmlsec1 and signxml; schemas with xmllint -----------------------------------------------


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which(args[0])
    assert path is not None, f"{args[0]} is not installed: ./dev.sh test installs it (Debian xmlsec1, libxml2-utils)"
    return subprocess.run(
        [path, *args[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TZ": "UTC"},
    )


def xmlsec1_verify(interop: Interop, path: Path, root: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``xmlsec1 --verify`` trusting only the root, at the tests' clock (the envelope has one signature)."""
    return run_tool(
        "xmlsec1",
        "--verify",
        "--trusted-pem",
        str(root or interop.pki.home / "root.crt"),
        "--verification-time",
        interop.now.strftime("%Y-%m-%d %H:%M:%S"),
        str(path),
    )


def assert_xmlsec1_ok(interop: Interop, path: Path) -> None:
    result = xmlsec1_verify(interop, path)
    assert result.returncode == 0, result.stdout
    assert "OK" in result.stdout.split(), result.stdout
    assert "SignedInfo References (ok/all): 1/1" in result.stdout, result.stdout


def signxml_verify(interop: Interop, data: bytes, node: str) -> Any:
    method = SignatureMethod.ECDSA_SHA256 if node == EC_HUB else SignatureMethod.RSA_SHA256
    config = SignatureConfiguration(
        location="./",
        expect_references=1,
        signature_methods=frozenset({method}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
        verification_time=interop.now,
    )
    cert = interop.cert(node, Usage.NODE).public_bytes(serialization.Encoding.PEM).decode("ascii")
    return XMLVerifier().verify(data, x509_cert=cert, expect_config=config)


def receipt_envelope(interop: Interop, node: str) -> tuple[bytes, bytes, Sealed]:
    sealed, _ = interop.seal()
    opened = interop.open(sealed.envelope_xml, CZT)
    receipt = make_receipt(ReceiptKind.SIGNED_FOR, opened, interop.pki.signer(CZT), now=interop.now)
    verify_receipt(receipt, SentRecord.of(sealed), interop.trust)
    wrapped = seal_receipt(
        receipt,
        interop.node(node),
        sender_department=CZT,
        node_id=node,
        recipient=OFFICE,
        in_reply_to=sealed.header.message_id,
        now=interop.now,
        classification=sealed.header.classification,
    )
    return wrapped.envelope_xml, receipt, sealed


@pytest.mark.parametrize("kind", ["document", "receipt"])
@pytest.mark.parametrize("node", [EC_HUB, RSA_HUB])
def test_node_signatures_verify_with_xmlsec1_and_signxml(
    interop: Interop, node: str, kind: str, tmp_path: Path
) -> None:
    envelope = interop.seal(node)[0].envelope_xml if kind == "document" else receipt_envelope(interop, node)[0]
    assert inspect(envelope, interop.trust).node.identity.code == node
    path = tmp_path / "envelope.xml"
    path.write_bytes(envelope)
    assert_xmlsec1_ok(interop, path)
    result = signxml_verify(interop, envelope, node)
    assert result.signed_xml.tag == eq("Envelope")
    assert result.signed_xml.find(eq("Header")) is not None


@pytest.mark.parametrize("node", [EC_HUB, RSA_HUB])
def test_a_changed_envelope_fails_with_xmlsec1_and_signxml(interop: Interop, node: str, tmp_path: Path) -> None:
    sealed, _ = interop.seal(node)
    expires = sealed.header.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (sealed.header.expires + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for old, new in ((expires, later), (RSA2, GXT)):
        assert sealed.envelope_xml.count(old.encode()) >= 1
        changed = sealed.envelope_xml.replace(old.encode(), new.encode())
        path = tmp_path / "changed.xml"
        path.write_bytes(changed)
        result = xmlsec1_verify(interop, path)
        assert result.returncode != 0, result.stdout
        assert "data and digest do not match" in result.stdout, result.stdout
        with pytest.raises(InvalidSignature, match="Digest mismatch"):
            signxml_verify(interop, changed, node)


def test_xmlsec1_checks_the_node_chain_to_the_root(
    interop: Interop, make_pki: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "envelope.xml"
    path.write_bytes(interop.seal()[0].envelope_xml)
    stranger = make_pki(departments={}, rsa_department=False, node=False)
    result = xmlsec1_verify(interop, path, root=stranger.home / "root.crt")
    assert result.returncode != 0, result.stdout
    assert "unable to get local issuer certificate" in result.stdout, result.stdout


def test_a_receipt_signature_verifies_with_xmlsec1(interop: Interop, tmp_path: Path) -> None:
    _, receipt, _ = receipt_envelope(interop, EC_HUB)
    path = tmp_path / "receipt.xml"
    path.write_bytes(receipt)
    assert_xmlsec1_ok(interop, path)
    path.write_bytes(receipt.replace("签收".encode(), "送达".encode()))
    result = xmlsec1_verify(interop, path)
    assert result.returncode != 0 and "data and digest do not match" in result.stdout, result.stdout


def xmllint(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    return run_tool("xmllint", "--noout", "--schema", str(REPO / "gwexchange" / "schemas" / schema), str(path))


def test_envelopes_and_receipts_validate_with_xmllint(interop: Interop, tmp_path: Path) -> None:
    sealed, _ = interop.seal()
    wrapped, receipt, _ = receipt_envelope(interop, RSA_HUB)
    for name, data, schema in (
        ("document-envelope.xml", sealed.envelope_xml, "envelope.xsd"),
        ("receipt-envelope.xml", wrapped, "envelope.xsd"),
        ("receipt.xml", receipt, "receipt.xsd"),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        result = xmllint(path, schema)
        assert result.returncode == 0 and f"{path} validates" in result.stdout, result.stdout
    # And xmllint can refuse: an envelope whose header lost its MessageId.
    root = parse(sealed.envelope_xml)
    header = root.find(eq("Header"))
    assert header is not None
    header.remove(header[0])
    bad = tmp_path / "bad.xml"
    bad.write_bytes(serialise(root))
    result = xmllint(bad, "envelope.xsd")
    assert result.returncode != 0 and f"{bad} fails to validate" in result.stdout, result.stdout
