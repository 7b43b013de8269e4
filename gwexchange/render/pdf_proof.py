"""A PDF of a 公文 that carries its own proof, and its verification.

What goes into the PDF, in this order:

1. the pages, laid out by ``pdf_layout`` from the verified document;
2. the exact signed XML of the document, embedded as an associated file in the PDF/A-3 manner (a file
   specification with ``/AFRelationship /Source``, listed in the catalog's ``/AF`` array and in the
   ``EmbeddedFiles`` name tree), and each attachment at hand, checked against the digest signed in the document,
   as ``/AFRelationship /Supplement``;
3. a PAdES signature (ETSI.CAdES.detached) by an issuing department, over the whole file, so that any PDF reader
   (and poppler's ``pdfsig``) shows who signed it.

``verify_pdf`` checks both proofs: the embedded XML as any signed document (``verify_document``), and every PDF
signature (pyHanko: integrity, chain to the same root) by the trust policy at its signing time, from a department
that issued the document. It returns a ``VerifiedPdf`` or raises; it never answers with a bool.

The PDF is not claimed to be PDF/A-3 conformant (that would also need an output intent and XMP metadata): it only
embeds its source the way PDF/A-3 does, which readers and archives understand.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import crl as asn1_crl  # type: ignore[import-untyped]
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PyPdfError
from pypdf.generic import ArrayObject, NameObject, NumberObject, TextStringObject

from gwexchange.crypto.certificates import Usage, identity_of
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.model import Attachment, Document
from gwexchange.envelope.signing import (
    CLOCK_SKEW,
    DocumentSignature,
    VerifiedDocument,
    verify_attachment,
    verify_document,
)
from gwexchange.errors import ConfigError, SignatureError, TrustError, VerificationError
from gwexchange.render.fonts import FontSet
from gwexchange.render.pdf_paint import render_pdf

SOURCE_FILE = "document.signed.xml"  # /F of the embedded XML; /UF carries the 发文字号
MAX_PDF_BYTES = 256 * 1024 * 1024
MAX_NAME_TREE_DEPTH = 16


@dataclass(frozen=True, slots=True)
class PdfSignature(DocumentSignature):
    """One verified PDF signature: a ``DocumentSignature`` (the issuing department whose key made it, when, with
    which certificate) in the PDF's signature field ``field_name``."""

    field_name: str


@dataclass(frozen=True, slots=True)
class VerifiedPdf:
    """What ``verify_pdf`` proved: the PDF's signatures, and the signed document embedded in it.

    ``attachments`` are the attachment files embedded in the PDF, each matching the digest signed in the document
    (an attachment the document lists may be absent from the PDF; it is then only described there).
    """

    verified_document: VerifiedDocument
    pdf_signatures: tuple[PdfSignature, ...]
    attachments: tuple[Attachment, ...]
    sha256: str

    @property
    def document(self) -> Document:
        return self.verified_document.document

    @property
    def signer(self) -> PdfSignature:
        """The signature over the whole file (the last one)."""
        return self.pdf_signatures[-1]


# --- making the PDF ------------------------------------------------------------------------------------------


def make_pdf(
    verified: VerifiedDocument,
    signer: Signer,
    fonts: FontSet,
    *,
    at: datetime,
    attachments: Mapping[str, bytes] | None = None,
    chain: Sequence[x509.Certificate] = (),
) -> bytes:
    """Render a verified document, embed its proof, and sign the PDF with an issuing department's key."""
    files = dict(attachments or {})
    layout = render_pdf(verified.document, verified.signatures, fonts, attachments=files)
    return sign_pdf(
        embed_proof(layout, verified, attachments=files, at=at), verified.document, signer, at=at, chain=chain
    )


def embed_proof(pdf: bytes, verified: VerifiedDocument, *, attachments: Mapping[str, bytes], at: datetime) -> bytes:
    """Embed the signed XML (and the attachments, once checked against their signed digests) as associated files."""
    doc = verified.document
    for name, data in attachments.items():
        verify_attachment(verified, name, [data])
    try:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    except (PyPdfError, ValueError) as e:
        raise ConfigError(f"the rendered PDF cannot be read back: {e}") from e
    associated = ArrayObject()
    source = _embed(
        writer,
        SOURCE_FILE,
        f"{doc.doc_number.text}.signed.xml",
        verified.signed_bytes,
        "application/xml",
        "/Source",
        f"已签名公文（XML-DSig）：{doc.doc_number.text}《{doc.title}》",
        at,
    )
    associated.append(source)
    for i, a in enumerate(doc.attachments, 1):
        if a.file_name in attachments:
            description = f"附件{i}：{a.title}（SHA-256 {a.sha256}）"
            data = attachments[a.file_name]
            associated.append(
                _embed(writer, a.file_name, a.file_name, data, a.media_type, "/Supplement", description, at)
            )
    catalog = writer._root_object
    catalog[NameObject("/AF")] = associated
    catalog[NameObject("/Lang")] = TextStringObject("zh-CN")
    stamp = _pdf_date(at)
    writer.add_metadata({"/CreationDate": stamp, "/ModDate": stamp, "/Producer": "gwexchange"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _embed(
    writer: PdfWriter,
    file: str,
    unicode_name: str,
    data: bytes,
    media_type: str,
    relationship: str,
    description: str,
    at: datetime,
) -> Any:
    embedded = writer.add_attachment(file, data)
    embedded.associated_file_relationship = NameObject(relationship)
    embedded.subtype = NameObject("/" + media_type)  # pypdf writes the slash as #2F
    embedded.description = TextStringObject(description)
    embedded.size = NumberObject(len(data))
    embedded.modification_date = at
    spec = embedded.pdf_object
    spec[NameObject("/UF")] = TextStringObject(unicode_name)
    return spec.indirect_reference


def sign_pdf(
    pdf: bytes,
    document: Document,
    signer: Signer,
    *,
    at: datetime,
    chain: Sequence[x509.Certificate] = (),
) -> bytes:
    """A PAdES baseline signature over the whole PDF by ``signer``, who must be an issuing department."""
    identity = identity_of(signer.certificate)
    issuers = [d.code for d in document.issuers]
    if identity.code not in issuers:
        raise ConfigError(
            f"this is the certificate of {identity.code}, but the document is issued by {', '.join(issuers)}: "
            "the PDF is signed by an issuing department"
        )
    cert = signer.certificate
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise ConfigError(f"the signing certificate of {identity.code} is not valid at {at.isoformat()}")
    der = serialization.Encoding.DER
    key = asn1_keys.PrivateKeyInfo.load(
        signer.key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    pdf_signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(der)),
        signing_key=key,
        cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
            [asn1_x509.Certificate.load(c.public_bytes(der)) for c in chain]
        ),
    )
    meta = signers.PdfSignatureMetadata(
        field_name=_field_name(identity.code),
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        name=identity.name,
        reason=f"发文机关签发：{document.doc_number.text}",
        location=identity.code,
    )
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
        out = _PdfSignerAt(meta, pdf_signer, at=at).sign_pdf(writer)
    except (PdfError, ValueError) as e:  # pyHanko's validation errors are ValueErrors
        raise ConfigError(f"cannot sign the PDF: {e}") from e
    signed: bytes = out.getvalue()
    return signed


class _PdfSignerAt(signers.PdfSigner):
    """pyHanko's signer, with the signing time (the signature's /M) given by the caller, not read from the clock."""

    def __init__(self, meta: Any, signer: Any, *, at: datetime) -> None:
        super().__init__(meta, signer)
        self._at = at

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only=existing_fields_only)
        session.system_time = self._at
        return session


def _field_name(code: str) -> str:
    # A period in a field name means a parent field: keep the code readable without one.
    return "gwx-" + code.replace(".", "-")


def _pdf_date(at: datetime) -> str:
    return at.strftime("D:%Y%m%d%H%M%S+00'00'")


# --- verifying it --------------------------------------------------------------------------------------------


def _is_pdf(data: bytes) -> bool:
    return data.startswith(b"%PDF")


def page_count(pdf: bytes) -> int:
    """The number of pages of a PDF this module made."""
    try:
        return len(PdfReader(io.BytesIO(pdf)).pages)
    except (PyPdfError, ValueError) as e:
        raise VerificationError(f"the PDF cannot be read: {e}") from e


def verify_pdf(data: bytes, trust: TrustPolicy, *, now: datetime) -> VerifiedPdf:
    """Verify a gwexchange PDF: its PDF signatures and the signed document (and attachments) embedded in it."""
    if not _is_pdf(data):
        raise VerificationError("not a PDF file (it does not start with %PDF)")
    if len(data) > MAX_PDF_BYTES:
        raise VerificationError(f"the PDF is larger than {MAX_PDF_BYTES // 1024 // 1024} MiB")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=True)
        signatures = _verify_pdf_signatures(reader, trust, now=now)
        files = list(_associated_files(reader))
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise VerificationError(f"the PDF cannot be read: {type(e).__name__}: {e}") from e

    sources = [f for f in files if f.relationship == "/Source"]
    if len(sources) != 1:
        raise VerificationError(
            f"the PDF should embed one signed document (/AFRelationship /Source), not {len(sources)}"
        )
    verified = verify_document(sources[0].data, trust, now=now)
    issuers = {d.code for d in verified.document.issuers}
    for s in signatures:
        if s.department not in issuers:
            raise SignatureError(
                f"the PDF is signed by {s.department}, which is not an issuing department of "
                f"{verified.document.doc_number.text} ({', '.join(sorted(issuers))})"
            )
    attachments: list[Attachment] = []
    for f in files:
        if f.relationship == "/Source":
            continue
        if f.relationship != "/Supplement":
            raise VerificationError(f"the PDF embeds {f.name!r} as {f.relationship}, which is not part of the proof")
        attachments.append(verify_attachment(verified, f.name, [f.data]))
    return VerifiedPdf(
        verified_document=verified,
        pdf_signatures=tuple(signatures),
        attachments=tuple(attachments),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _verify_pdf_signatures(reader: Any, trust: TrustPolicy, *, now: datetime) -> list[PdfSignature]:
    embedded = list(reader.embedded_signatures)
    if not embedded:
        raise SignatureError("the PDF is not signed")
    root = asn1_x509.Certificate.load(trust.root.public_bytes(serialization.Encoding.DER))
    crls = [asn1_crl.CertificateList.load(c.public_bytes(serialization.Encoding.DER)) for c in trust.crls]
    result: list[PdfSignature] = []
    for index, sig in enumerate(embedded):
        name = sig.field_name
        if sig.sig_object_type != "/Sig":
            raise SignatureError(f"PDF signature {name} is a {sig.sig_object_type}, not a signature")
        signed_at = sig.self_reported_timestamp
        if signed_at is None:
            raise SignatureError(f"PDF signature {name} carries no signing time")
        if signed_at > now + CLOCK_SKEW:
            raise SignatureError(f"PDF signature {name} claims a future time {signed_at.isoformat()}")
        # The chain is checked at the signing time, as for the XML signatures; revocation, with the reasons that
        # void past signatures, is the trust policy's (below), so pyHanko only needs the root and the CRLs.
        context = ValidationContext(
            trust_roots=[root], crls=crls, allow_fetching=False, revocation_mode="soft-fail", moment=signed_at
        )
        status = validate_pdf_signature(sig, context)
        if not (status.intact and status.valid):
            raise SignatureError(f"PDF signature {name} does not match the file: the PDF was changed after signing")
        if not status.trusted:
            raise TrustError(f"the certificate of PDF signature {name} does not chain to the configured root")
        last = index == len(embedded) - 1
        if last and status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
            raise SignatureError(f"PDF signature {name} does not cover the whole file: something was added after it")
        if not last and status.modification_level not in (
            ModificationLevel.NONE,
            ModificationLevel.LTA_UPDATES,
            ModificationLevel.FORM_FILLING,
        ):
            raise SignatureError(f"the PDF was changed after signature {name} beyond adding signatures")
        validated = trust.validate(status.signing_cert.dump(), usage=Usage.SIGNING, at=signed_at)
        result.append(
            PdfSignature(
                field_name=str(name),
                department=validated.identity.code,
                signer_name=validated.identity.name,
                signed_at=signed_at,
                certificate=validated.certificate,
            )
        )
    return result


@dataclass(frozen=True, slots=True)
class _EmbeddedFile:
    name: str
    relationship: str
    data: bytes


def _associated_files(reader: Any) -> Iterator[_EmbeddedFile]:
    """The catalog's associated files; they must be exactly the files of the EmbeddedFiles name tree, so that
    what a reader's attachment pane shows is what was verified."""
    catalog = reader.root
    listed = catalog.get("/AF")
    specs = list(listed.get_object()) if listed is not None else []
    names = catalog.get("/Names")
    in_tree = list(_name_tree(names.get_object().get("/EmbeddedFiles") if names is not None else None, 0))
    af_ids = sorted(_ref_id(s) for s in specs)
    tree_ids = sorted(_ref_id(s) for s in in_tree)
    if af_ids != tree_ids:
        raise VerificationError("the embedded files and the associated files (/AF) of the PDF differ")
    for ref in specs:
        spec = ref.get_object()
        stream = spec["/EF"].get_object()["/F"].get_object()
        yield _EmbeddedFile(
            name=str(spec.get("/UF") or spec.get("/F")),
            relationship=str(spec.get("/AFRelationship", "/Unspecified")),
            data=stream.data,
        )


def _name_tree(node: Any, depth: int) -> Iterator[Any]:
    if node is None:
        return
    if depth > MAX_NAME_TREE_DEPTH:
        raise VerificationError("the PDF's name tree of embedded files is too deep")
    node = node.get_object()
    names = node.get("/Names")
    if names is not None:
        values = list(names.get_object())
        yield from values[1::2]
    for kid in node.get("/Kids", generic.ArrayObject()).get_object():
        yield from _name_tree(kid, depth + 1)


def _ref_id(ref: Any) -> tuple[int, int]:
    if not isinstance(ref, generic.IndirectObject):
        raise VerificationError("an embedded file of the PDF is not an indirect object")
    return (ref.idnum, ref.generation)


__all__ = [
    "MAX_NAME_TREE_DEPTH",
    "MAX_PDF_BYTES",
    "SOURCE_FILE",
    "PdfSignature",
    "VerifiedPdf",
    "embed_proof",
    "make_pdf",
    "page_count",
    "sign_pdf",
    "verify_pdf",
]
