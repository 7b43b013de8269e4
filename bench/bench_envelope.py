"""Seal and open throughput of gwexchange against python-xmlsec and signxml + cryptography; attachment MB/s and
peak memory.

Run from the repository root with the project's virtual environment::

    python bench/bench_envelope.py                   # the tables (about two minutes)
    python bench/bench_envelope.py --attachment-mb 0 # the seal/open table only

The sample notice (examples/notice.toml) addressed to two departments goes through the triple wrap, and back:

    seal  draft bytes -> inner signature (ECDSA P-256, the issuing department) -> AES-256-GCM encryption of the
          signed bytes -> two key wraps (one per recipient) -> envelope (routing header, payload) -> node
          signature (ECDSA P-256) -> envelope bytes (about 20 KB)
    open  envelope bytes -> node signature verified -> the recipient's wrap unwrapped -> payload decrypted ->
          inner signature verified -> the document

twice: with two RSA-2048 recipients (xmlenc11#rsa-oaep, SHA-256, MGF1-SHA256) and with two EC P-256 recipients
(xmlenc11#ECDH-ES, ConcatKDF SHA-256, kw-aes256). Every implementation makes the same XML (our profile), so each
one's envelopes open with every other one, which the bench checks before timing, together with each opener
refusing a tampered envelope.

* gwexchange: ``sign_document``, ``verify_document`` (``seal`` takes a verified document, as ``gwx seal`` does),
  ``seal``; ``open_envelope`` — which also validates the envelope and document schemas, the profile, the routing
  header against the document, and both certificates with the trust policy (chain, validity, usage, CRL).
* python-xmlsec (libxmlsec1): both signatures with ``SignatureContext`` (our template), the encryption with
  ``EncryptionContext.encrypt_binary`` on an EncryptedData template in our profile with a generated session key;
  opening verifies the node signature with the node's key preloaded, ``EncryptionContext.decrypt`` with the
  recipient's key, and the inner signature with the signer's key preloaded. For ECDH-ES libxmlsec1 takes the
  originator (ephemeral) key by name: the bench makes it with cryptography and hands it over in a KeysManager
  made for the message. A KeysManager loads OpenSSL's default CA store when it is made (tens of ms); the bench
  points that store at nothing, in python-xmlsec's favour, so that a per-message manager costs microseconds.
* signxml: ``XMLSigner``/``XMLVerifier`` for both signatures (certificates given, chains not built); the
  encryption and the key wraps written here with cryptography and lxml.

Only gwexchange checks certificates against a root; the others trust the preloaded keys blindly. Keys are
loaded once for all. Each case runs operations for ``--budget`` seconds, ``--repeat`` times; the table shows
the best rate and the median. The goal: seal and open each at least 1.5x the python-xmlsec pipeline.

The attachment benchmark seals a file of ``--attachment-mb`` MB (10^6 bytes) into a package (``write_package`` +
``seal``) and opens it (``Package`` + ``open_envelope`` + ``OpenedEnvelope.attachment`` to a file, fsynced), each
in a fresh Python process that reports its wall time and its peak RSS. Goal: 100 MB/s and less than 256 MB.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import gc
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a source tree without installing
    sys.path.insert(0, str(REPO))

# python-xmlsec's KeysManager() loads OpenSSL's default CA store each time it is made; nothing here uses that store
# (gwexchange has its own trust policy, signxml gets the certificates), so point it at nothing before libxmlsec1
# starts: a per-message KeysManager then costs microseconds instead of milliseconds, in python-xmlsec's favour.
# (GWX_BENCH_DEFAULT_CA=1 keeps the default store: the bench measures what a KeysManager costs with it.)
_EMPTY_CA = {"SSL_CERT_FILE": os.devnull, "SSL_CERT_DIR": os.devnull}
_GIVEN_CA = {k: os.environ[k] for k in _EMPTY_CA if k in os.environ}
if os.environ.get("GWX_BENCH_DEFAULT_CA") != "1":
    os.environ.update(_EMPTY_CA)

import benchenv  # noqa: E402
import cryptography  # noqa: E402
import signxml  # noqa: E402
import xmlsec  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.exceptions import InvalidTag  # noqa: E402
from cryptography.hazmat.backends.openssl import backend as openssl_backend  # noqa: E402
from cryptography.hazmat.primitives import hashes, keywrap, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash  # noqa: E402
from lxml import etree  # noqa: E402
from signxml import (  # noqa: E402
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureConstructionMethod,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)

from gwexchange.crypto.certificates import Role, Usage  # noqa: E402
from gwexchange.crypto.keys import KeyAlgorithm, UnsafeUnencrypted, key_from_pem  # noqa: E402
from gwexchange.crypto.trust import TrustPolicy  # noqa: E402
from gwexchange.crypto.xmldsig import Signer  # noqa: E402
from gwexchange.envelope.description import load_description_file  # noqa: E402
from gwexchange.envelope.model import Attachment, Department, Document  # noqa: E402
from gwexchange.envelope.package import Package, write_package  # noqa: E402
from gwexchange.envelope.sealing import open_envelope, seal  # noqa: E402
from gwexchange.envelope.signing import sign_document, verify_document  # noqa: E402
from gwexchange.envelope.xmlform import document_to_xml  # noqa: E402
from gwexchange.errors import GwxError  # noqa: E402
from gwexchange.files import read_chunks  # noqa: E402
from gwexchange.pki.authority import Authority  # noqa: E402

GW = "urn:gwexchange:document:1"
ENV = "urn:gwexchange:envelope:1"
DS = "http://www.w3.org/2000/09/xmldsig#"
DS11 = "http://www.w3.org/2009/xmldsig11#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
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

NOW = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)  # the bench's clock, as in the tests
SIGNED_AT = NOW - timedelta(hours=1)
SENDER = "gd.gov.office"
SENDER_NAME = "广东省人民政府办公厅"
NODE = "gd-hub"
RECIPIENTS = {  # two recipients per configuration; the first one opens
    "rsa": ("gd.gov.rsa1", "gd.gov.rsa2"),
    "ec": ("gd.gov.czt", "gd.gov.gxt"),
}
WRAP_LABEL = {"rsa": "2x RSA-OAEP", "ec": "2x ECDH-ES"}
ATTACHMENT_NAME = "附件.bin"
GOAL = 1.5
GOAL_MB_S = 100.0
GOAL_RSS_MB = 256.0
MB = 1_000_000
IMPLEMENTATIONS = ("gwexchange", "python-xmlsec", "signxml")

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def _parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, _PARSER)


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# --- material: a PKI in a temporary folder -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Material:
    home: Path
    trust: TrustPolicy
    signer: Signer  # the issuing department's signing key
    node: Signer
    recipient_certs: dict[str, x509.Certificate]
    recipient_keys: dict[str, Any]

    def pem(self, code: str, usage: Usage, kind: str) -> bytes:
        return (self.home / "issued" / code / f"{usage.value}.{kind}").read_bytes()


def make_material(home: Path) -> Material:
    start = NOW - timedelta(days=10)
    clear = UnsafeUnencrypted()
    ca = Authority.create(home, code="gd.gov.ca", name="广东省电子政务安全中心（测试）", protection=clear, now=start)

    def issue(code: str, role: Role, usage: Usage, algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256) -> None:
        ca.issue(code=code, name=code, role=role, usage=usage, protection=clear, now=start, algorithm=algorithm)

    issue(SENDER, Role.DEPARTMENT, Usage.SIGNING)
    issue(NODE, Role.NODE, Usage.NODE)
    for code in RECIPIENTS["rsa"]:
        issue(code, Role.DEPARTMENT, Usage.ENCRYPTION, KeyAlgorithm.RSA_2048)
    for code in RECIPIENTS["ec"]:
        issue(code, Role.DEPARTMENT, Usage.ENCRYPTION)
    return load_material(home)


def load_material(home: Path) -> Material:
    def signer(code: str, usage: Usage) -> Signer:
        folder = home / "issued" / code
        key = key_from_pem((folder / f"{usage.value}.key").read_bytes(), None)
        return Signer(key, x509.load_pem_x509_certificate((folder / f"{usage.value}.crt").read_bytes()))

    codes = [*RECIPIENTS["rsa"], *RECIPIENTS["ec"]]
    encryption = {code: encryption_pair(home, code) for code in codes}
    root = x509.load_pem_x509_certificate((home / "root.crt").read_bytes())
    crl = x509.load_pem_x509_crl((home / "crl.pem").read_bytes())
    return Material(
        home=home,
        trust=TrustPolicy(root, (crl,)),
        signer=signer(SENDER, Usage.SIGNING),
        node=signer(NODE, Usage.NODE),
        recipient_certs={code: cert for code, (cert, _) in encryption.items()},
        recipient_keys={code: key for code, (_, key) in encryption.items()},
    )


def encryption_pair(home: Path, code: str) -> tuple[x509.Certificate, Any]:
    """A recipient's encryption certificate and key (an ECDH key cannot make a ``Signer``)."""
    folder = home / "issued" / code
    cert = x509.load_pem_x509_certificate((folder / "encryption.crt").read_bytes())
    return cert, key_from_pem((folder / "encryption.key").read_bytes(), None)


def notice_for(codes: tuple[str, ...], attachments: tuple[Attachment, ...] = ()) -> Document:
    """The sample notice, addressed to ``codes`` (first 主送, second 抄送), with ``attachments``."""
    notice = load_description_file(REPO / "examples" / "notice.toml")
    return dataclasses.replace(
        notice,
        main_recipients=(Department(codes[0]),),
        copy_recipients=tuple(Department(c) for c in codes[1:]),
        attachments=attachments,
        attachment_note=tuple(a.title for a in attachments) if attachments else notice.attachment_note,
    )


# --- the envelope header and the encryption, written out for the two reference pipelines ---------------------


def header_element(doc_root: etree._Element, recipients: tuple[str, ...]) -> etree._Element:
    """The routing header for a notice (read from its draft XML) to ``recipients``, as the schema lays it out."""
    header = etree.Element(f"{{{ENV}}}Header")

    def add(local: str, text: str | None = None, **attrs: str) -> etree._Element:
        child = etree.SubElement(header, f"{{{ENV}}}{local}", attrs)
        child.text = text
        return child

    add("MessageId", str(uuid.uuid4()))
    add("Kind", "document")
    add("Sender", department=SENDER, node=NODE)
    listed = add("Recipients")
    for code in recipients:
        etree.SubElement(listed, f"{{{ENV}}}Department", code=code)
    add("Classification", doc_root.findtext(f"{{{GW}}}Classification"))
    urgency = doc_root.findtext(f"{{{GW}}}Urgency")
    if urgency is not None:
        add("Urgency", urgency)
    add("Created", NOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    add("Expires", (NOW + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return header


def envelope_skeleton(
    signed_root: etree._Element, recipients: tuple[str, ...]
) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(f"{{{ENV}}}Envelope", nsmap={"env": ENV})
    root.append(header_element(signed_root, recipients))
    return root, etree.SubElement(root, f"{{{ENV}}}Payload")


def _x(parent: etree._Element | None, local: str, ns: str = XENC, **attrs: str) -> etree._Element:
    tag = f"{{{ns}}}{local}"
    return etree.Element(tag, attrs, nsmap=NSMAP) if parent is None else etree.SubElement(parent, tag, attrs)


def _point(public: ec.EllipticCurvePublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return base64.b64encode(raw).decode("ascii")


def encrypted_key(parent: etree._Element, code: str, originator: ec.EllipticCurvePublicKey | None) -> etree._Element:
    """An EncryptedKey for ``code`` without its CipherValue text: RSA-OAEP, or ECDH-ES from ``originator``."""
    wrap = _x(parent, "EncryptedKey", Recipient=code)
    if originator is None:
        method = _x(wrap, "EncryptionMethod", Algorithm=RSA_OAEP)
        _x(method, "DigestMethod", DS, Algorithm=SHA256)
        _x(method, "MGF", XENC11, Algorithm=MGF1_SHA256)
        _x(_x(wrap, "KeyInfo", DS), "KeyName", DS).text = code
    else:
        _x(wrap, "EncryptionMethod", Algorithm=KW_AES256)
        agreement = _x(_x(wrap, "KeyInfo", DS), "AgreementMethod", Algorithm=ECDH_ES)
        kdf = _x(agreement, "KeyDerivationMethod", XENC11, Algorithm=CONCAT_KDF)
        params = _x(
            kdf,
            "ConcatKDFParams",
            XENC11,
            AlgorithmID="00" + KW_AES256.encode().hex(),
            PartyUInfo="00",
            PartyVInfo="00",
        )
        _x(params, "DigestMethod", DS, Algorithm=SHA256)
        info = _x(agreement, "OriginatorKeyInfo")
        _x(info, "KeyName", DS).text = f"originator:{code}"
        value = _x(_x(info, "KeyValue", DS), "ECKeyValue", DS11)
        _x(value, "NamedCurve", DS11, URI=P256)
        _x(value, "PublicKey", DS11).text = _point(originator)
        _x(_x(agreement, "RecipientKeyInfo"), "KeyName", DS).text = code
    _x(_x(wrap, "CipherData"), "CipherValue")
    return wrap


def encrypted_data_template(
    recipients: tuple[str, ...], originators: dict[str, ec.EllipticCurvePublicKey]
) -> etree._Element:
    data = _x(None, "EncryptedData", MimeType=DOCUMENT_TYPE)
    _x(data, "EncryptionMethod", Algorithm=AES256_GCM)
    key_info = _x(data, "KeyInfo", DS)
    for code in recipients:
        encrypted_key(key_info, code, originators.get(code))
    _x(_x(data, "CipherData"), "CipherValue")
    return data


def find_wrap(data: etree._Element, code: str) -> etree._Element:
    for wrap in data.iterfind(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey"):
        if wrap.get("Recipient") == code:
            return wrap
    raise GwxError(f"no wrap for {code}")


def originator_of(wrap: etree._Element) -> ec.EllipticCurvePublicKey:
    point = wrap.findtext(f".//{{{XENC}}}OriginatorKeyInfo/{{{DS}}}KeyValue/{{{DS11}}}ECKeyValue/{{{DS11}}}PublicKey")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), base64.b64decode(point or ""))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()))


_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def _kek(shared: bytes) -> bytes:
    return ConcatKDFHash(hashes.SHA256(), 32, KW_AES256.encode()).derive(shared)


# --- the three implementations ---------------------------------------------------------------------------------


class Implementation:
    name = ""

    def seal(self, draft: bytes) -> bytes:
        raise NotImplementedError

    def open(self, envelope: bytes) -> object:
        raise NotImplementedError


class Gwexchange(Implementation):
    name = "gwexchange"

    def __init__(self, m: Material, recipients: tuple[str, ...]) -> None:
        self.m, self.recipients = m, recipients
        self.certs = {code: m.recipient_certs[code] for code in recipients}
        self.opener, self.key = recipients[0], m.recipient_keys[recipients[0]]

    def seal(self, draft: bytes) -> bytes:
        signed = sign_document(draft, self.m.signer, at=SIGNED_AT)
        verified = verify_document(signed, self.m.trust, now=NOW)
        return seal(
            verified, self.certs, self.m.node, trust=self.m.trust, sender_department=SENDER, node_id=NODE, now=NOW
        ).envelope_xml

    def open(self, envelope: bytes) -> object:
        return open_envelope(envelope, self.opener, self.key, self.m.trust, now=NOW)


def _signature_template(root: etree._Element) -> etree._Element:
    signature = xmlsec.template.create(root, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.ECDSA_SHA256, ns="ds")
    root.append(signature)
    reference = xmlsec.template.add_reference(signature, xmlsec.Transform.SHA256, uri="")
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
    xmlsec.template.x509_data_add_certificate(xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature)))
    return signature


class PythonXmlsec(Implementation):
    """libxmlsec1 for both signatures and for the encryption; keys (and, for RSA, keys managers) loaded once."""

    name = "python-xmlsec"

    def __init__(self, m: Material, recipients: tuple[str, ...]) -> None:
        self.recipients = recipients
        self.ec = isinstance(m.recipient_certs[recipients[0]].public_key(), ec.EllipticCurvePublicKey)

        def key(pem: bytes, cert: bytes | None = None) -> xmlsec.Key:
            k = xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM)
            if cert is not None:
                k.load_cert_from_memory(cert, xmlsec.KeyFormat.PEM)
            return k

        self.signing_key = key(m.pem(SENDER, Usage.SIGNING, "key"), m.pem(SENDER, Usage.SIGNING, "crt"))
        self.node_key = key(m.pem(NODE, Usage.NODE, "key"), m.pem(NODE, Usage.NODE, "crt"))
        self.node_public = xmlsec.Key.from_memory(m.pem(NODE, Usage.NODE, "crt"), xmlsec.KeyFormat.CERT_PEM)
        self.signer_public = xmlsec.Key.from_memory(m.pem(SENDER, Usage.SIGNING, "crt"), xmlsec.KeyFormat.CERT_PEM)
        self.public: dict[str, xmlsec.Key] = {}
        for code in recipients:
            self.public[code] = xmlsec.Key.from_memory(m.pem(code, Usage.ENCRYPTION, "crt"), xmlsec.KeyFormat.CERT_PEM)
            self.public[code].name = code
        self.opener = recipients[0]
        self.private = key(m.pem(self.opener, Usage.ENCRYPTION, "key"))
        self.private.name = self.opener
        self.seal_keys = self._manager(self.public.values())
        self.open_keys = self._manager([self.private])

    @staticmethod
    def _manager(keys: Any) -> xmlsec.KeysManager:
        manager = xmlsec.KeysManager()
        for k in keys:
            manager.add_key(k)
        return manager

    def _sign(self, root: etree._Element, key: xmlsec.Key) -> None:
        ctx = xmlsec.SignatureContext()
        ctx.key = key
        ctx.sign(_signature_template(root))

    def _verify(self, root: etree._Element, key: xmlsec.Key) -> None:
        signature = root[-1]
        if signature.tag != f"{{{DS}}}Signature":
            raise GwxError("no signature at the end")
        ctx = xmlsec.SignatureContext()
        ctx.key = key
        try:
            ctx.verify(signature)
        except xmlsec.Error as e:
            raise GwxError(str(e)) from e

    def seal(self, draft: bytes) -> bytes:
        document = _parse(draft)
        etree.SubElement(document, f"{{{GW}}}Signing", department=SENDER, time=SIGNED_AT.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self._sign(document, self.signing_key)
        signed = _serialise(document)
        root, payload = envelope_skeleton(document, self.recipients)
        originators: dict[str, ec.EllipticCurvePublicKey] = {}
        manager = self.seal_keys
        if self.ec:  # libxmlsec1 agrees with an originator key it is given by name, made here for each message
            manager = xmlsec.KeysManager()
            for code in self.recipients:
                ephemeral = ec.generate_private_key(ec.SECP256R1())
                originators[code] = ephemeral.public_key()
                pem = ephemeral.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                private = xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM)
                private.name = f"originator:{code}"
                manager.add_key(private)
                manager.add_key(self.public[code])
        template = encrypted_data_template(self.recipients, originators)
        payload.append(template)
        ctx = xmlsec.EncryptionContext(manager)
        ctx.key = xmlsec.Key.generate(xmlsec.KeyData.AES, 256, xmlsec.KeyDataType.SESSION)
        ctx.encrypt_binary(template, signed)
        self._sign(root, self.node_key)
        return _serialise(root)

    def open(self, envelope: bytes) -> object:
        root = _parse(envelope)
        self._verify(root, self.node_public)
        data = root.find(f"{{{ENV}}}Payload/{{{XENC}}}EncryptedData")
        if data is None:
            raise GwxError("no payload")
        manager = self.open_keys
        if self.ec:
            manager = xmlsec.KeysManager()
            manager.add_key(self.private)
            pem = originator_of(find_wrap(data, self.opener)).public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            originator = xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM)
            originator.name = f"originator:{self.opener}"
            manager.add_key(originator)
        try:
            signed = xmlsec.EncryptionContext(manager).decrypt(data)
        except xmlsec.Error as e:
            raise GwxError(str(e)) from e
        document = _parse(signed)
        self._verify(document, self.signer_public)
        return document


class SignxmlCryptography(Implementation):
    """signxml for both signatures; the encryption and key wraps with cryptography, the XML with lxml."""

    name = "signxml"

    def __init__(self, m: Material, recipients: tuple[str, ...]) -> None:
        self.recipients = recipients
        self.public = {code: m.recipient_certs[code].public_key() for code in recipients}
        self.opener, self.private = recipients[0], m.recipient_keys[recipients[0]]
        self.signing = (m.signer.key, [m.signer.certificate])
        self.node = (m.node.key, [m.node.certificate])
        self.signer_cert, self.node_cert = m.signer.certificate, m.node.certificate
        self.xml_signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=SignatureMethod.ECDSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
        self.config = SignatureConfiguration(
            location="./",
            expect_references=1,
            signature_methods=frozenset({SignatureMethod.ECDSA_SHA256}),
            digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
            verification_time=NOW,
        )

    def seal(self, draft: bytes) -> bytes:
        document = _parse(draft)
        etree.SubElement(document, f"{{{GW}}}Signing", department=SENDER, time=SIGNED_AT.strftime("%Y-%m-%dT%H:%M:%SZ"))
        document = self.xml_signer.sign(document, key=self.signing[0], cert=self.signing[1])
        signed = _serialise(document)
        content_key = os.urandom(32)
        nonce = os.urandom(12)
        ephemerals = {
            code: ec.generate_private_key(ec.SECP256R1())
            for code, public in self.public.items()
            if isinstance(public, ec.EllipticCurvePublicKey)
        }
        data = encrypted_data_template(self.recipients, {c: k.public_key() for c, k in ephemerals.items()})
        for code, public in self.public.items():
            if isinstance(public, rsa.RSAPublicKey):
                wrapped = public.encrypt(content_key, _OAEP)
            else:
                assert isinstance(public, ec.EllipticCurvePublicKey)
                wrapped = keywrap.aes_key_wrap(_kek(ephemerals[code].exchange(ec.ECDH(), public)), content_key)
            find_wrap(data, code).find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue").text = _b64(wrapped)  # type: ignore[union-attr]
        data.find(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue").text = _b64(  # type: ignore[union-attr]
            nonce + AESGCM(content_key).encrypt(nonce, signed, None)
        )
        root, payload = envelope_skeleton(document, self.recipients)
        payload.append(data)
        return _serialise(self.xml_signer.sign(root, key=self.node[0], cert=self.node[1]))

    def open(self, envelope: bytes) -> object:
        try:
            verified = XMLVerifier().verify(envelope, x509_cert=self.node_cert, expect_config=self.config)
            root = verified.signed_xml
            data = root.find(f"{{{ENV}}}Payload/{{{XENC}}}EncryptedData")
            wrap = find_wrap(data, self.opener)
            wrapped = _unb64(wrap.findtext(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue"))
            if isinstance(self.private, rsa.RSAPrivateKey):
                content_key = self.private.decrypt(wrapped, _OAEP)
            else:
                kek = _kek(self.private.exchange(ec.ECDH(), originator_of(wrap)))
                content_key = keywrap.aes_key_unwrap(kek, wrapped)
            octets = _unb64(data.findtext(f"{{{XENC}}}CipherData/{{{XENC}}}CipherValue"))
            signed = AESGCM(content_key).decrypt(octets[:12], octets[12:], None)
            return XMLVerifier().verify(signed, x509_cert=self.signer_cert, expect_config=self.config).signed_xml
        except (signxml.exceptions.InvalidInput, ValueError, InvalidTag, AttributeError) as e:
            raise GwxError(str(e)) from e


# --- checks: every implementation does the whole job, in the same format ------------------------------------------


REFUSALS = (GwxError, signxml.exceptions.InvalidSignature, signxml.exceptions.InvalidInput, xmlsec.Error)


def check(implementations: list[Implementation], draft: bytes) -> dict[str, int]:
    """Every implementation's envelope opens with every implementation (gwexchange included, which checks the
    profile, the schemas and the binding of header and document); every opener refuses a tampered envelope."""
    sizes = {}
    for sealer in implementations:
        envelope = sealer.seal(draft)
        sizes[sealer.name] = len(envelope)
        for opener in implementations:
            opened = opener.open(envelope)
            assert opened is not None, (sealer.name, opener.name)
        root = _parse(envelope)
        value = root.find(f"{{{ENV}}}Payload/{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
        assert value is not None
        octets = bytearray(_unb64(value.text))
        octets[len(octets) // 2] ^= 0x01
        value.text = _b64(bytes(octets))
        tampered = _serialise(root)
        for opener in implementations:
            try:
                opener.open(tampered)
            except REFUSALS:
                continue
            raise AssertionError(f"{opener.name} opened an envelope sealed by {sealer.name} and then changed")
    return sizes


# --- timing ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rate:
    runs: tuple[float, ...]

    @property
    def best(self) -> float:
        return max(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def cell(self) -> str:
        return f"{self.best:7.0f} ({self.median:.0f})"


def measure(op: Callable[[bytes], object], arg: bytes, budget: float, repeat: int, *, warm_up: bool = True) -> Rate:
    if warm_up:
        op(arg)  # first-use costs (schemas, caches) are not what is measured
    runs = []
    for _ in range(repeat):
        gc.collect()
        n = 0
        start = time.perf_counter()
        deadline = start + budget
        while True:
            op(arg)
            n += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        runs.append(n / (now - start))
    return Rate(tuple(runs))


def ratio_cell(ours: float, theirs: float, goal: float | None) -> str:
    r = ours / theirs
    verdict = "" if goal is None else (" ok  " if r >= goal else " MISS")
    return f"{r:5.2f}x{verdict}"


def breakdown(m: Material, recipients: tuple[str, ...], draft: bytes, budget: float) -> str:
    """Milliseconds per operation of each step of gwexchange's seal pipeline."""
    signed = sign_document(draft, m.signer, at=SIGNED_AT)
    verified = verify_document(signed, m.trust, now=NOW)
    certs = {code: m.recipient_certs[code] for code in recipients}
    steps: dict[str, Callable[[bytes], object]] = {
        "sign_document": lambda d: sign_document(d, m.signer, at=SIGNED_AT),
        "verify_document": lambda s: verify_document(s, m.trust, now=NOW),
        "seal": lambda _: seal(verified, certs, m.node, trust=m.trust, sender_department=SENDER, node_id=NODE, now=NOW),
    }
    args = {"sign_document": draft, "verify_document": signed, "seal": b""}
    cells = [f"{name} {1000 / measure(step, args[name], budget / 2, 1).best:.2f} ms" for name, step in steps.items()]
    return ", ".join(cells)


def run_throughput(m: Material, budget: float, repeat: int, configs: list[str]) -> bool:
    results: dict[tuple[str, str, str], Rate] = {}
    sizes: dict[str, dict[str, int]] = {}
    drafts: dict[str, bytes] = {}
    for config in configs:
        recipients = RECIPIENTS[config]
        draft = document_to_xml(notice_for(recipients))
        drafts[config] = draft
        impls: list[Implementation] = [
            Gwexchange(m, recipients),
            PythonXmlsec(m, recipients),
            SignxmlCryptography(m, recipients),
        ]
        sizes[config] = check(impls, draft)
        envelope = impls[0].seal(draft)
        # Round robin: each run of each implementation follows one of every other, so that a change in the load
        # of the machine falls on all of them alike.
        for op in ("seal", "open"):
            arg = draft if op == "seal" else envelope
            calls = {impl.name: getattr(impl, op) for impl in impls}
            runs: dict[str, list[float]] = {name: [] for name in calls}
            for call in calls.values():
                call(arg)  # warm-up: first-use costs (schemas, caches) are not what is measured
            for _ in range(repeat):
                for name, call in calls.items():
                    runs[name].extend(measure(call, arg, budget, 1, warm_up=False).runs)
            for name, rates in runs.items():
                results[(config, op, name)] = Rate(tuple(rates))

    first = configs[0]
    print(
        f"\nnotice: draft {len(drafts[first]) / 1024:.1f} KB; envelopes "
        + "; ".join(
            f"{WRAP_LABEL[c]} {', '.join(f'{n} {s / 1024:.1f} KB' for n, s in sizes[c].items())}" for c in configs
        )
    )
    print(f"ops/s, best of {repeat} runs of {budget:g} s (median in brackets)\n")
    header = (
        f"{'':<22}{'gwexchange':>16}{'python-xmlsec':>16}{'signxml':>16}   {'gwx/xmlsec':>12}   {'gwx/signxml':>12}"
    )
    print(header)
    print(f"{'':<22}{'':>16}{'':>16}{'':>16}   {f'goal >={GOAL:g}x':>12}")
    print("-" * len(header))
    met = True
    for config in configs:
        for op in ("seal", "open"):
            r = {name: results[(config, op, name)] for name in IMPLEMENTATIONS}
            vs_xmlsec = r["gwexchange"].best / r["python-xmlsec"].best
            met = met and vs_xmlsec >= GOAL
            print(
                f"{op + ' ' + WRAP_LABEL[config]:<22}"
                + "".join(f"{r[name].cell():>16}" for name in IMPLEMENTATIONS)
                + f"   {ratio_cell(r['gwexchange'].best, r['python-xmlsec'].best, GOAL):>12}"
                + f"   {ratio_cell(r['gwexchange'].best, r['signxml'].best, None):>12}"
            )
    print()
    for config in configs:
        steps = breakdown(m, RECIPIENTS[config], drafts[config], budget)
        print(f"gwexchange seal, {WRAP_LABEL[config]}, step by step: {steps}")
    print()
    print("seal = inner signature (ECDSA P-256) + AES-256-GCM + two key wraps + node signature (ECDSA P-256);")
    print("       gwexchange also verifies the document it just signed (seal takes a VerifiedDocument).")
    print("open = node signature + unwrap + decrypt + inner signature, as the first recipient; gwexchange also")
    print("       validates both schemas, the profile, header against document, and both certificates (root, CRL).")
    return met


# --- the large attachment, in child processes ----------------------------------------------------------------------


def make_attachment(path: Path, size: int) -> Attachment:
    h = hashlib.sha256()
    chunk = 1024 * 1024
    with path.open("wb") as f:
        written = 0
        block = os.urandom(chunk)
        while written < size:
            piece = block[: min(chunk, size - written)]
            # vary every chunk cheaply, so that no two chunks are the same
            piece = written.to_bytes(8, "big") + piece[8:] if len(piece) >= 8 else piece
            f.write(piece)
            h.update(piece)
            written += len(piece)
    return Attachment(
        title="大附件",
        file_name=ATTACHMENT_NAME,
        media_type="application/octet-stream",
        size=size,
        sha256=h.hexdigest(),
    )


def child(mode: str, work: Path) -> None:
    """One phase of the attachment benchmark; prints a JSON line: seconds and peak RSS (KiB)."""
    m = load_material(work / "ca")
    recipients = RECIPIENTS["ec"]
    started = time.perf_counter()
    if mode == "seal":
        verified = verify_document((work / "signed.xml").read_bytes(), m.trust, now=NOW)
        sealed = write_package(
            work / "big.gwx",
            lambda sink: seal(
                verified,
                {code: m.recipient_certs[code] for code in recipients},
                m.node,
                trust=m.trust,
                sender_department=SENDER,
                node_id=NODE,
                now=NOW,
                attachments={ATTACHMENT_NAME: read_chunks(work / ATTACHMENT_NAME)},
                part_sink=sink,
            ),
        )
        assert sealed.parts[0].size > 0
    elif mode == "open":
        opener = recipients[0]
        out = work / "opened"
        out.mkdir()
        with Package(work / "big.gwx") as package:
            opened = open_envelope(package.envelope_xml(), opener, m.recipient_keys[opener], m.trust, now=NOW)
            for part in opened.envelope.parts:
                tmp = out / f".{part.file_name}.partial"
                with tmp.open("wb") as f:
                    for chunk in opened.attachment(part, package.part(part.cid)):
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                tmp.replace(out / part.file_name)
    elif mode != "baseline":
        raise SystemExit(f"unknown child mode {mode}")
    seconds = time.perf_counter() - started
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "rss_kib": rss_kib}))


def run_child(mode: str, work: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(work)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"the {mode} child failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_attachment(work: Path, size: int) -> bool:
    entry = make_attachment(work / ATTACHMENT_NAME, size)
    m = load_material(work / "ca")
    draft = document_to_xml(notice_for(RECIPIENTS["ec"], (entry,)))
    (work / "signed.xml").write_bytes(sign_document(draft, m.signer, at=SIGNED_AT))
    baseline = run_child("baseline", work)
    sealed = run_child("seal", work)
    package_size = (work / "big.gwx").stat().st_size
    (work / ATTACHMENT_NAME).unlink()  # keep the disk use down: the opened copy is checked against the digest
    opened = run_child("open", work)
    h = hashlib.sha256()
    for chunk in read_chunks(work / "opened" / ATTACHMENT_NAME):
        h.update(chunk)
    assert h.hexdigest() == entry.sha256, "the opened attachment is not the one sealed"

    print(
        f"\nattachment: {size / MB:.0f} MB (10^6 bytes), EC recipients, package {package_size / MB:.1f} MB; "
        "each phase in a fresh process"
    )
    header = (
        f"{'':<8}{'seconds':>10}{'MB/s':>10}{'peak RSS':>12}   {f'goal >={GOAL_MB_S:g} MB/s, <{GOAL_RSS_MB:g} MB':>30}"
    )
    print(header)
    print("-" * len(header))
    met = True
    for label, result in (("seal", sealed), ("open", opened)):
        rate = size / MB / result["seconds"]
        rss = result["rss_kib"] / 1024
        ok = rate >= GOAL_MB_S and rss < GOAL_RSS_MB
        met = met and ok
        print(f"{label:<8}{result['seconds']:>10.2f}{rate:>10.0f}{rss:>9.0f} MB   {'ok' if ok else 'MISS':>30}")
    print(f"(a child that only imports and loads the keys peaks at {baseline['rss_kib'] / 1024:.0f} MB)")
    print("seal = verify the signed document, write_package + seal (stream the file into the ZIP, fsync, rename)")
    print("open = Package + open_envelope + OpenedEnvelope.attachment into a private file, fsync, rename")
    return met


# --- output ---------------------------------------------------------------------------------------------------


def environment() -> list[str]:
    return [
        f"gwexchange {benchenv.source_revision()}",
        benchenv.machine(),
        f"lxml {'.'.join(map(str, etree.LXML_VERSION[:3]))} / libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))}; "
        f"python-xmlsec {xmlsec.__version__} / libxmlsec1 {'.'.join(map(str, xmlsec.get_libxmlsec_version()))}; "
        f"{benchenv.library_versions('signxml')}; "
        f"cryptography {cryptography.__version__} / {openssl_backend.openssl_version_text()}",
    ]


def keys_manager_cost() -> tuple[float, float]:
    """Milliseconds to make one xmlsec.KeysManager, with OpenSSL's CA store as this environment sets it up and with
    it pointed at nothing (each in a fresh process: OpenSSL reads the setting once)."""
    costs = []
    for default_ca in ("1", "0"):
        env = {k: v for k, v in os.environ.items() if k not in _EMPTY_CA}
        env["GWX_BENCH_DEFAULT_CA"] = default_ca
        env.update(_GIVEN_CA if default_ca == "1" else _EMPTY_CA)
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", "keysmanager", "."],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            env=env,
        )
        costs.append(float(json.loads(done.stdout.strip().splitlines()[-1])["ms"]))
    return costs[0], costs[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1.5, help="seconds of operations per run (default 1.5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is shown (default 3)")
    parser.add_argument("--only", choices=sorted(RECIPIENTS), help="one kind of recipient key only")
    parser.add_argument("--attachment-mb", type=int, default=200, help="attachment size in MB; 0 skips (default 200)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child and args.child[0] == "keysmanager":
        start = time.perf_counter()
        for _ in range(20):
            xmlsec.KeysManager()
        print(json.dumps({"ms": (time.perf_counter() - start) / 20 * 1000}))
        return 0
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0

    started = time.perf_counter()
    for line in environment():
        print(line)
    with_store, without = keys_manager_cost()
    given = ", ".join(f"{k}={v}" for k, v in _GIVEN_CA.items()) or "OpenSSL's defaults"
    print(
        f"xmlsec.KeysManager(): {with_store:.2f} ms with the CA store of this environment ({given}), "
        f"{without:.3f} ms with none (the bench runs so)"
    )
    configs = [args.only] if args.only else ["rsa", "ec"]
    with tempfile.TemporaryDirectory(prefix="gwx-bench-envelope-") as tmp:
        work = Path(tmp)
        m = make_material(work / "ca")
        met = run_throughput(m, args.budget, args.repeat, configs)
        if args.attachment_mb > 0:
            met = run_attachment(work, args.attachment_mb * MB) and met
    print(f"\nall goals {'met' if met else 'NOT met'}; measured in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
