"""Documents signed by their issuing departments, and their verification.

A signed document ends with one signature block per issuing department, lead department first::

    …document content…
    <gw:Signing department="gd.gov.czt" time="2026-11-20T08:00:00Z"/><ds:Signature>…</ds:Signature>
    <gw:Signing department="gd.gov.gxt" time="2026-11-20T09:30:00Z"/><ds:Signature>…</ds:Signature>

Each signature is enveloped over the document as it stood when that department signed: its own Signing element
(which fixes the signing time inside what is signed) and every earlier block included. So each verifies on its
own, with any XML-DSig tool, once the blocks after it are removed; the last one verifies as the document stands.

``verify_document`` returns a ``VerifiedDocument`` — the document read from the verified bytes and who signed it
when — and raises otherwise. Signed bytes are never re-serialised: ``signed_bytes`` is exactly what was verified.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from lxml import etree

from gwexchange import xmlsafe
from gwexchange.crypto.certificates import Identity, Role, Usage, identity_of
from gwexchange.crypto.suite import INTERNATIONAL, Suite
from gwexchange.crypto.trust import TrustPolicy, check_usage
from gwexchange.crypto.xmldsig import SIGNATURE_TAG, Signer, sign_enveloped, verify_enveloped
from gwexchange.envelope.model import Attachment, Document
from gwexchange.envelope.times import format_utc, parse_utc
from gwexchange.envelope.xmlform import document_from_element, q
from gwexchange.errors import ConfigError, DocumentError, SignatureError, TrustError, VerificationError

SIGNING_TAG = q("Signing")
# A signature may claim a time this far after the verifier's clock, no further.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class DocumentSignature:
    """One verified signature: which department signed, when, with which (validated) certificate."""

    department: str
    signer_name: str
    signed_at: datetime
    certificate: x509.Certificate

    @property
    def certificate_serial(self) -> int:
        return self.certificate.serial_number


@dataclass(frozen=True, slots=True)
class VerifiedDocument:
    """What ``verify_document`` proved: this document, signed by these departments, as these exact bytes."""

    document: Document
    signatures: tuple[DocumentSignature, ...]
    signed_bytes: bytes

    @property
    def digest(self) -> str:
        """SHA-256 of the exact signed bytes, the value receipts bind to."""
        return hashlib.sha256(self.signed_bytes).hexdigest()


def sign_document(xml: bytes, signer: Signer, *, at: datetime, trust: TrustPolicy | None = None) -> bytes:
    """Add the signature of the next issuing department to a draft or partly signed document.

    The signer's certificate must name that department. With ``trust``, the signatures already present (a joint
    document signed by the lead department) are verified before co-signing; without it they are only counted.
    """
    root = xmlsafe.parse(xml)
    if trust is not None and _signature_blocks(root):
        verify_document(xml, trust, now=at, complete=False, suite=signer.suite)
    blocks = _signature_blocks(root)
    document = document_from_element(root)
    identity = _signer_identity(signer.certificate)
    if len(blocks) >= len(document.issuers):
        raise DocumentError("发文机关", "所有发文机关都已签署，无需再签")
    expected = document.issuers[len(blocks)].code
    if identity.code != expected:
        raise ConfigError(
            f"this is the certificate of {identity.code}, but the next department to sign is {expected}"
            + ("（联合发文按发文机关顺序依次签署）" if document.is_joint else "")
        )
    cert = signer.certificate
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise ConfigError(f"the signing certificate of {identity.code} is not valid at {format_utc(at)}")
    etree.SubElement(root, SIGNING_TAG, department=identity.code, time=format_utc(at))
    sign_enveloped(root, signer)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def verify_document(
    data: bytes,
    trust: TrustPolicy,
    *,
    now: datetime,
    complete: bool = True,
    suite: Suite = INTERNATIONAL,
) -> VerifiedDocument:
    """Verify every signature on a signed document and return what they prove.

    ``now`` is the verifier's clock: no signature may claim a later time (beyond a small skew). With
    ``complete`` (the default) every issuing department must have signed, in the order of 发文机关.
    """
    root = xmlsafe.parse(data)
    if root.tag != q("Document"):
        raise DocumentError("公文", f"根元素应为 gw:Document（命名空间 {q('')[1:-1]}）")
    blocks = _signature_blocks(root)
    if not blocks:
        raise SignatureError("the document is not signed")
    if sum(1 for _ in root.iter(SIGNATURE_TAG)) != len(blocks):
        raise SignatureError("a signature appears outside the signature blocks at the end of the document")
    if sum(1 for _ in root.iter(SIGNING_TAG)) != len(blocks):
        raise SignatureError("a Signing element appears outside the signature blocks at the end of the document")
    # Each block costs a canonicalization of the whole document: check the order of signers first, so a
    # document with thousands of blocks is refused at once instead of after quadratic work.
    issuers = [d.get("code") for d in root.iterfind(f"{q('Issuers')}/{q('Department')}")]
    signed = [signing.get("department") for signing, _ in blocks]
    if signed != issuers[: len(signed)]:
        raise SignatureError(
            f"signatures by {', '.join(map(str, signed))} do not follow the issuing departments "
            f"{', '.join(map(str, issuers))}"
        )
    signatures: list[DocumentSignature] = []
    for signing, signature in reversed(blocks):
        department = signing.get("department", "")
        signed_at = _signing_time(signing)
        if signed_at > now + CLOCK_SKEW:
            raise SignatureError(f"the signature of {department} claims a future time {signing.get('time')}")
        validated = verify_enveloped(root, signature, trust=trust, at=signed_at, usage=Usage.SIGNING, suite=suite)
        if validated.identity.code != department:
            raise SignatureError(
                f"the Signing element names {department}, but the certificate is of {validated.identity.code}"
            )
        signatures.append(
            DocumentSignature(
                department=department,
                signer_name=validated.identity.name,
                signed_at=signed_at,
                certificate=validated.certificate,
            )
        )
        # The earlier signatures were made before this block existed.
        root.remove(signature)
        root.remove(signing)
    signatures.reverse()
    document = document_from_element(root)
    _check_signers(document, signatures, complete=complete)
    return VerifiedDocument(document=document, signatures=tuple(signatures), signed_bytes=data)


def verify_attachment(verified: VerifiedDocument, file_name: str, chunks: Iterable[bytes]) -> Attachment:
    """Check an attachment's bytes against the size and SHA-256 signed in the document; return its entry."""
    entry = next((a for a in verified.document.attachments if a.file_name == file_name), None)
    if entry is None:
        raise VerificationError(f"the document lists no attachment named {file_name}")
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    if size != entry.size or h.hexdigest() != entry.sha256:
        raise VerificationError(f"attachment {file_name} does not match the digest signed in the document")
    return entry


def _signature_blocks(root: etree._Element) -> list[tuple[etree._Element, etree._Element]]:
    """The trailing (Signing, ds:Signature) pairs of the document element, in document order."""
    children = list(root)
    blocks: list[tuple[etree._Element, etree._Element]] = []
    while len(children) >= 2 and children[-1].tag == SIGNATURE_TAG and children[-2].tag == SIGNING_TAG:
        blocks.append((children[-2], children[-1]))
        del children[-2:]
    blocks.reverse()
    return blocks


def _signing_time(signing: etree._Element) -> datetime:
    text = signing.get("time", "")
    signed_at = parse_utc(text)
    if signed_at is None:
        raise SignatureError(f"signing time {text!r} is not of the form 2026-11-20T08:00:00Z")
    return signed_at


def _signer_identity(cert: x509.Certificate) -> Identity:
    try:
        identity = identity_of(cert)
    except VerificationError as e:
        raise ConfigError(f"the signing certificate is not one of ours: {e}") from e
    if identity.role is not Role.DEPARTMENT:
        raise ConfigError(f"documents are signed with a department certificate, not a {identity.role} one")
    try:
        check_usage(cert, identity, Usage.SIGNING)  # never sign what every verifier would refuse
    except TrustError as e:
        raise ConfigError(f"{e}: sign with the department's signing.key and signing.crt") from e
    return identity


def _check_signers(document: Document, signatures: list[DocumentSignature], *, complete: bool) -> None:
    issuers = [d.code for d in document.issuers]
    signed = [s.department for s in signatures]
    if signed != issuers[: len(signed)]:
        raise SignatureError(
            f"signatures by {', '.join(signed)} do not follow the issuing departments {', '.join(issuers)}"
        )
    if complete and len(signed) < len(issuers):
        missing = ", ".join(issuers[len(signed) :])
        raise SignatureError(f"the document is not fully signed: {missing} has not signed yet")
    for earlier, later in itertools.pairwise(signatures):
        if later.signed_at < earlier.signed_at:
            raise SignatureError(f"{later.department} claims to have signed before {earlier.department}")


__all__ = [
    "CLOCK_SKEW",
    "SIGNING_TAG",
    "DocumentSignature",
    "VerifiedDocument",
    "sign_document",
    "verify_attachment",
    "verify_document",
]
