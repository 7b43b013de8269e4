"""Sealed envelopes: sign (the department), encrypt (for each recipient), sign (the sending node).

The wire form (``gwexchange/schemas/envelope.xsd``) is one XML envelope plus one binary part per attachment::

    <env:Envelope>
      <env:Header>…routing header…</env:Header>
      <env:Payload>
        <xenc:EncryptedData>  the exact signed document bytes, AES-256-GCM; one EncryptedKey per recipient
        <env:Part cid="part-1" file="…" size="…" sha256="…"/>   an attachment, encrypted apart (see below)
      </env:Payload>
      <ds:Signature/>  the sending node's enveloped signature over header and payload
    </env:Envelope>

Attachments are large, so they are not inside the XML: each is a separate part whose octets are laid out as an
XML Encryption 1.1 AES-GCM CipherValue (nonce ‖ ciphertext ‖ tag) under the envelope's content key with its own
nonce. The part's size and SHA-256 are in the signed envelope, so a hop detects a damaged part without any key;
the plaintext SHA-256 is in the signed document, so the recipient proves the attachment is the one the issuer
signed. Sealing and opening stream the parts, so their size does not matter for memory.

Receipts travel in envelopes of kind ``receipt``: the signed receipt bytes as ``env:Content``, not encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from gwexchange import xmlsafe
from gwexchange.crypto.certificates import Usage
from gwexchange.crypto.suite import PrivateKey
from gwexchange.crypto.trust import TrustPolicy, ValidatedCertificate
from gwexchange.crypto.xmldsig import SIGNATURE_TAG, Signer, sign_enveloped, verify_enveloped
from gwexchange.crypto.xmlenc import (
    NONCE_BYTES,
    TAG_BYTES,
    GcmStreamEncryptor,
    Random,
    cipher_octets,
    content_key_from,
    encrypted_data,
    encrypted_key_for,
    encrypted_keys,
    gcm_decrypt,
    gcm_encrypt,
    new_content_key,
)
from gwexchange.envelope import schema
from gwexchange.envelope.header import (
    ENVELOPE_NS,
    MessageKind,
    RoutingHeader,
    eq,
    header_from_element,
    header_to_element,
)
from gwexchange.envelope.model import Attachment, Classification
from gwexchange.envelope.signing import VerifiedDocument, verify_document
from gwexchange.errors import ConfigError, DecryptionError, EnvelopeError

DOCUMENT_MEDIA_TYPE = "application/vnd.gwexchange.document+xml"
RECEIPT_MEDIA_TYPE = "application/vnd.gwexchange.receipt+xml"
DEFAULT_LIFETIME = timedelta(days=7)
MAX_ENVELOPE_BYTES = 64 * 1024 * 1024

# A part sink takes a part's id and its octets as an iterable of chunks, and stores them (a file, a ZIP member,
# a database blob); sealing never holds a whole part in memory.
PartSink = Callable[[str, Iterable[bytes]], None]


@dataclass(frozen=True, slots=True)
class Part:
    """One encrypted attachment: where its octets are and what the node signature says they must be."""

    cid: str
    file_name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Sealed:
    """The result of ``seal``: the envelope XML to send (parts went to the sink) and what the sender keeps."""

    header: RoutingHeader
    envelope_xml: bytes
    parts: tuple[Part, ...]
    document_sha256: str

    @property
    def envelope_sha256(self) -> str:
        return hashlib.sha256(self.envelope_xml).hexdigest()


@dataclass(frozen=True, slots=True)
class InspectedEnvelope:
    """What any hop can verify without a private key: the node's signature over header and payload."""

    header: RoutingHeader
    node: ValidatedCertificate
    parts: tuple[Part, ...]
    envelope_xml: bytes

    @property
    def envelope_sha256(self) -> str:
        return hashlib.sha256(self.envelope_xml).hexdigest()


@dataclass(frozen=True)
class OpenedEnvelope:
    """An envelope opened by one of its recipient departments: every wrap verified."""

    envelope: InspectedEnvelope
    document: VerifiedDocument
    department: str
    _content_key: bytes = field(repr=False)

    def attachment(self, part: Part, octets: Iterable[bytes]) -> Iterator[bytes]:
        """Decrypt one attachment part, streaming. The last chunk is yielded only after the GCM tag and the
        digest signed in the document both verified; a caller writes to a private file and publishes it when
        the iteration ends without error."""
        entry = _attachment_entry(self.document, part)
        return _decrypt_part(self._content_key, part, entry, octets)


def seal(
    document: VerifiedDocument,
    recipients: Mapping[str, x509.Certificate],
    node: Signer,
    *,
    trust: TrustPolicy,
    sender_department: str,
    node_id: str,
    now: datetime,
    attachments: Mapping[str, Iterable[bytes]] | None = None,
    part_sink: PartSink | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
    in_reply_to: str | None = None,
    random: Random = os.urandom,
) -> Sealed:
    """Encrypt a verified document for every recipient it names and sign the envelope as ``node_id``.

    ``recipients`` maps each recipient department to its encryption certificate (from the directory) and must
    cover exactly the document's 主送 and 抄送; each is validated by ``trust`` (path, validity, encryption usage,
    revocation) and must name its department, so nothing is ever encrypted to a wrong or compromised key.
    ``attachments`` maps the document's attachment file names to their bytes in chunks; each is encrypted into
    ``part_sink``.
    """
    doc = document.document
    codes = tuple(d.code for d in doc.recipients)
    if set(recipients) != set(codes):
        raise ConfigError(
            f"encryption certificates given for {sorted(recipients)}, but the document is addressed to {sorted(codes)}"
        )
    if sender_department not in {d.code for d in doc.issuers}:
        raise ConfigError(f"{sender_department} did not issue this document and cannot send it")
    now = now.replace(microsecond=0)
    for code in codes:
        validated = trust.validate(
            recipients[code].public_bytes(serialization.Encoding.DER), usage=Usage.ENCRYPTION, at=now
        )
        if validated.identity.code != code:
            raise ConfigError(f"the encryption certificate given for {code} is {validated.identity.code}'s")
    header = RoutingHeader(
        message_id=str(uuid.UUID(bytes=random(16), version=4)),
        kind=MessageKind.DOCUMENT,
        sender_department=sender_department,
        sender_node=node_id,
        recipients=codes,
        classification=doc.classification,
        urgency=doc.urgency,
        created=now,
        expires=now + lifetime,
        in_reply_to=in_reply_to,
    )
    content_key = new_content_key(random)
    wraps = [
        encrypted_key_for(content_key, recipients[code].public_key(), recipient=code, random=random)  # type: ignore[arg-type]
        for code in codes
    ]
    payload = encrypted_data(
        gcm_encrypt(content_key, document.signed_bytes, random), wraps, mime_type=DOCUMENT_MEDIA_TYPE
    )
    parts = _seal_attachments(doc.attachments, attachments or {}, part_sink, content_key, random)
    root = _envelope(header, payload, parts)
    sign_enveloped(root, node)
    return Sealed(
        header=header,
        envelope_xml=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
        parts=parts,
        document_sha256=document.digest,
    )


def seal_receipt(
    receipt_xml: bytes,
    node: Signer,
    *,
    sender_department: str,
    node_id: str,
    recipient: str,
    in_reply_to: str,
    now: datetime,
    classification: Classification,
    lifetime: timedelta = DEFAULT_LIFETIME,
    random: Random = os.urandom,
) -> Sealed:
    """Wrap signed receipt bytes in an envelope of kind receipt (signed by the node, not encrypted).

    ``classification`` is the answered document's: a receipt takes the routes its document could take.
    """
    now = now.replace(microsecond=0)
    header = RoutingHeader(
        message_id=str(uuid.UUID(bytes=random(16), version=4)),
        kind=MessageKind.RECEIPT,
        sender_department=sender_department,
        sender_node=node_id,
        recipients=(recipient,),
        classification=classification,
        created=now,
        expires=now + lifetime,
        in_reply_to=in_reply_to,
    )
    content = etree.Element(eq("Content"), mediaType=RECEIPT_MEDIA_TYPE)
    content.text = base64.b64encode(receipt_xml).decode("ascii")
    root = _envelope(header, content, ())
    sign_enveloped(root, node)
    return Sealed(
        header=header,
        envelope_xml=etree.tostring(root, xml_declaration=True, encoding="UTF-8"),
        parts=(),
        document_sha256=hashlib.sha256(receipt_xml).hexdigest(),
    )


def inspect(envelope_xml: bytes, trust: TrustPolicy) -> InspectedEnvelope:
    """Verify the sending node's signature and return the routing header; needs no private key.

    The node's certificate is validated at the envelope's creation time. Expiry is the caller's to judge
    (``header.expired(now)``): a hop still needs to read an expired envelope to answer it with 投递失败.
    """
    return _inspect(envelope_xml, trust)[0]


def _inspect(envelope_xml: bytes, trust: TrustPolicy) -> tuple[InspectedEnvelope, etree._Element]:
    root = xmlsafe.parse(envelope_xml, max_bytes=MAX_ENVELOPE_BYTES)
    if root.tag != eq("Envelope"):
        raise EnvelopeError(f"not a gwexchange envelope (root element must be env:Envelope in {ENVELOPE_NS})")
    schema.check_envelope(root)
    signature = root[-1]
    if signature.tag != SIGNATURE_TAG or sum(1 for _ in root.iter(SIGNATURE_TAG)) != 1:
        raise EnvelopeError("an envelope carries exactly one node signature, as its last element")
    header_el = root.find(eq("Header"))
    if header_el is None:
        raise EnvelopeError("the envelope has no header")
    header = header_from_element(header_el)
    node = verify_enveloped(root, signature, trust=trust, at=header.created, usage=Usage.NODE)
    if node.identity.code != header.sender_node:
        raise EnvelopeError(
            f"the envelope says it was sent by node {header.sender_node}, but node {node.identity.code} signed it"
        )
    parts = tuple(
        Part(
            cid=p.get("cid", ""), file_name=p.get("file", ""), size=int(p.get("size", "-1")), sha256=p.get("sha256", "")
        )
        for p in root.iterfind(f"{eq('Payload')}/{eq('Part')}")
    )
    return InspectedEnvelope(header=header, node=node, parts=parts, envelope_xml=envelope_xml), root


def open_envelope(
    envelope_xml: bytes,
    department: str,
    key: PrivateKey,
    trust: TrustPolicy,
    *,
    now: datetime,
) -> OpenedEnvelope:
    """Open a document envelope as ``department`` with its encryption key, verifying all three wraps.

    Refused: an expired envelope; one not addressed to ``department``; a document whose recipients, 密级 or
    紧急程度 differ from the header's, or that does not name ``department`` (surreptitious forwarding).
    """
    inspected, root = _inspect(envelope_xml, trust)
    header = inspected.header
    if header.kind is not MessageKind.DOCUMENT:
        raise EnvelopeError(f"this is a {header.kind} envelope, not a document")
    if header.expired(now):
        raise EnvelopeError(f"the envelope expired at {header.expires:%Y-%m-%d %H:%M:%S} UTC")
    if department not in header.recipients:
        raise EnvelopeError(f"the envelope is not addressed to {department}")
    data = root.find(f"{eq('Payload')}/{{http://www.w3.org/2001/04/xmlenc#}}EncryptedData")
    if data is None:
        raise DecryptionError()
    wraps = [k for k in encrypted_keys(data) if k.get("Recipient") == department]
    if len(wraps) != 1:
        raise DecryptionError()
    content_key = content_key_from(wraps[0], key)
    signed_bytes = gcm_decrypt(content_key, cipher_octets(data))
    verified = verify_document(signed_bytes, trust, now=now)
    _check_binding(header, verified, department, inspected.parts)
    return OpenedEnvelope(envelope=inspected, document=verified, department=department, _content_key=content_key)


def receipt_content(inspected: InspectedEnvelope) -> bytes:
    """The signed receipt bytes carried by a receipt envelope (verify them with ``receipts.verify_receipt``)."""
    if inspected.header.kind is not MessageKind.RECEIPT:
        raise EnvelopeError(f"this is a {inspected.header.kind} envelope, not a receipt")
    root = xmlsafe.parse(inspected.envelope_xml, max_bytes=MAX_ENVELOPE_BYTES)
    content = root.find(f"{eq('Payload')}/{eq('Content')}")
    if content is None:
        raise EnvelopeError("the receipt envelope has no content")
    try:
        return base64.b64decode("".join((content.text or "").split()), validate=True)
    except ValueError as e:  # binascii.Error, or non-ASCII characters
        raise EnvelopeError("the receipt envelope's content is not base64") from e


# --- internals -------------------------------------------------------------------------------------------------


def _envelope(header: RoutingHeader, payload_item: etree._Element, parts: tuple[Part, ...]) -> etree._Element:
    root = etree.Element(eq("Envelope"), nsmap={"env": ENVELOPE_NS})
    root.append(header_to_element(header))
    payload = etree.SubElement(root, eq("Payload"))
    payload.append(payload_item)
    for part in parts:
        etree.SubElement(
            payload, eq("Part"), cid=part.cid, file=part.file_name, size=str(part.size), sha256=part.sha256
        )
    return root


def _seal_attachments(
    entries: tuple[Attachment, ...],
    sources: Mapping[str, Iterable[bytes]],
    sink: PartSink | None,
    content_key: bytes,
    random: Random,
) -> tuple[Part, ...]:
    names = {a.file_name for a in entries}
    if set(sources) != names:
        missing, extra = sorted(names - set(sources)), sorted(set(sources) - names)
        raise ConfigError(f"attachments missing: {missing or '-'}; not in the document: {extra or '-'}")
    if not entries:
        return ()
    if sink is None:
        raise ConfigError("the document has attachments: a part sink is needed to store their encrypted parts")
    parts = []
    for i, entry in enumerate(entries, 1):
        cid = f"part-{i}"
        encryption = _PartEncryption(content_key, random)
        sink(cid, encryption.octets(sources[entry.file_name]))
        if encryption.plain_size != entry.size or encryption.plain.hexdigest() != entry.sha256:
            raise ConfigError(f"attachment {entry.file_name} is not the file whose digest the document signed")
        parts.append(
            Part(cid=cid, file_name=entry.file_name, size=encryption.size, sha256=encryption.cipher.hexdigest())
        )
    return tuple(parts)


class _PartEncryption:
    """Encrypts one attachment as it streams through, keeping the digests and sizes of both sides."""

    def __init__(self, content_key: bytes, random: Random) -> None:
        self.plain = hashlib.sha256()
        self.cipher = hashlib.sha256()
        self.plain_size = 0
        self.size = 0
        self._encryptor = GcmStreamEncryptor(content_key, random)

    def octets(self, source: Iterable[bytes]) -> Iterator[bytes]:
        yield self._out(self._encryptor.header)
        for chunk in source:
            self.plain.update(chunk)
            self.plain_size += len(chunk)
            yield self._out(self._encryptor.update(chunk))
        yield self._out(self._encryptor.finalize())

    def _out(self, octets: bytes) -> bytes:
        self.cipher.update(octets)
        self.size += len(octets)
        return octets


def _attachment_entry(document: VerifiedDocument, part: Part) -> Attachment:
    for entry in document.document.attachments:
        if entry.file_name == part.file_name:
            return entry
    raise EnvelopeError(f"part {part.cid} carries {part.file_name}, which the document does not list")


def _decrypt_part(content_key: bytes, part: Part, entry: Attachment, octets: Iterable[bytes]) -> Iterator[bytes]:
    # The GCM tag authenticates the ciphertext and the signed document's digest the plaintext, so the part's
    # ciphertext digest (there for hops without the key) need not be computed again here.
    plain_digest = hashlib.sha256()
    size = 0
    buffer = b""
    decryptor = None
    held = b""  # the last TAG_BYTES seen so far: the tag, once the stream ends
    for chunk in octets:
        size += len(chunk)
        if size > part.size:  # refuse an overlong part at once, not after decrypting all of it
            raise DecryptionError()
        data = chunk
        if decryptor is None:
            buffer += chunk
            if len(buffer) < NONCE_BYTES:
                continue
            nonce, data = buffer[:NONCE_BYTES], buffer[NONCE_BYTES:]
            decryptor = Cipher(algorithms.AES(content_key), modes.GCM(nonce)).decryptor()
        held += data
        if len(held) > TAG_BYTES:
            out = decryptor.update(held[:-TAG_BYTES])
            held = held[-TAG_BYTES:]
            plain_digest.update(out)
            yield out
    if decryptor is None or len(held) != TAG_BYTES or size != part.size:
        raise DecryptionError()
    try:
        last = decryptor.finalize_with_tag(held)
    except InvalidTag as e:
        raise DecryptionError() from e
    plain_digest.update(last)
    if plain_digest.hexdigest() != entry.sha256:
        raise EnvelopeError(f"attachment {entry.file_name} does not match the digest signed in the document")
    yield last


def _check_binding(header: RoutingHeader, verified: VerifiedDocument, department: str, parts: tuple[Part, ...]) -> None:
    doc = verified.document
    named = tuple(d.code for d in doc.recipients)
    if department not in named:
        raise EnvelopeError(f"the document inside does not name {department}: it was forwarded, not addressed")
    if sorted(named) != sorted(header.recipients):
        raise EnvelopeError(
            f"the header's recipients {sorted(header.recipients)} differ from the document's {sorted(named)}"
        )
    if header.classification is not doc.classification or header.urgency != doc.urgency:
        raise EnvelopeError("the header's 密级 or 紧急程度 differs from the document's")
    if header.sender_department not in {d.code for d in doc.issuers}:
        raise EnvelopeError(f"{header.sender_department} sent the envelope but did not issue the document")
    if sorted(p.file_name for p in parts) != sorted(a.file_name for a in doc.attachments):
        raise EnvelopeError("the envelope's parts are not exactly the document's attachments")


__all__ = [
    "DEFAULT_LIFETIME",
    "DOCUMENT_MEDIA_TYPE",
    "MAX_ENVELOPE_BYTES",
    "RECEIPT_MEDIA_TYPE",
    "InspectedEnvelope",
    "OpenedEnvelope",
    "Part",
    "PartSink",
    "Sealed",
    "inspect",
    "open_envelope",
    "receipt_content",
    "seal",
    "seal_receipt",
]
