"""gwx render: a signed document as a GB/T 9704 PDF that carries its own proof; and the report of a verified PDF."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from cryptography.hazmat.primitives import serialization

from gwexchange.cli.common import (
    CrlOption,
    RootOption,
    emit_json,
    now,
    read,
    read_passphrase,
    trust_policy,
)
from gwexchange.crypto.certificates import Usage, identity_of
from gwexchange.crypto.keys import key_from_pem
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.signing import VerifiedDocument, verify_attachment, verify_document
from gwexchange.files import atomic_write, read_chunks
from gwexchange.pki.keyfiles import KEY_PASSPHRASE_ENV, load_certificate

if TYPE_CHECKING:
    from gwexchange.render.pdf_proof import VerifiedPdf

# The PDF machinery (reportlab, pyHanko) is imported by the two functions that use it, not when gwx starts:
# it would add about a second to every other command.


def render(
    document: Annotated[Path, typer.Argument(help="A signed document XML.")],
    key: Annotated[Path, typer.Option(help="Signing key (signing.key) of an issuing department: it signs the PDF.")],
    cert: Annotated[Path, typer.Option(help="The signing certificate (signing.crt) that goes with --key.")],
    root: RootOption,
    crl: CrlOption = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="PDF to write; default: beside it.")] = None,
    attachments: Annotated[
        Path | None, typer.Option(help="Folder holding the attachment files; default: the document's folder.")
    ] = None,
    no_attachments: Annotated[bool, typer.Option(help="Embed no attachment files, only describe them.")] = False,
    passphrase_env: Annotated[str, typer.Option(help="Variable holding the key passphrase.")] = KEY_PASSPHRASE_ENV,
    passphrase_file: Annotated[Path | None, typer.Option(help="File with the key passphrase.")] = None,
    unsafe_unencrypted_key: Annotated[bool, typer.Option(help="UNSAFE: the key file is not encrypted.")] = False,
) -> None:
    """Render a signed document as a GB/T 9704 PDF: the signed XML (and the attachments found) embedded in it,
    and the PDF signed by an issuing department, so that the PDF alone proves the document."""
    from gwexchange.render.fonts import load_fonts
    from gwexchange.render.pdf_proof import make_pdf, page_count

    passphrase = None if unsafe_unencrypted_key else read_passphrase(passphrase_env, passphrase_file, "the signing key")
    certificate = load_certificate(cert)
    signer = Signer(key_from_pem(read(key), passphrase, source=str(key)), certificate)
    trust = trust_policy(root, crl, unsafe_no_revocation=False)
    at = now()
    verified = verify_document(read(document), trust, now=at)
    # A PDF signed with a certificate the verifier will refuse would be a false proof: check it first.
    trust.validate(certificate.public_bytes(serialization.Encoding.DER), usage=Usage.SIGNING, at=at)
    files = {} if no_attachments else _attachment_files(verified, attachments or document.parent)
    pdf = make_pdf(verified, signer, load_fonts(), at=at, attachments=files, chain=[trust.root])
    out = output or document.with_name(document.name.removesuffix(".xml").removesuffix(".signed") + ".pdf")
    atomic_write(out, pdf)
    doc = verified.document
    who = identity_of(certificate)
    typer.echo(f"已生成：{out}（{doc.doc_number.text}，{page_count(pdf)} 页）")
    typer.echo(f"嵌入：已签名公文 XML，附件 {len(files)} 个（共 {len(doc.attachments)} 个）")
    typer.echo(f"PDF 签名：{who.name}（{who.code}）")


def _attachment_files(verified: VerifiedDocument, folder: Path) -> dict[str, bytes]:
    """The attachment files found in ``folder``, each checked against its signed digest before it is embedded."""
    found: dict[str, bytes] = {}
    for a in verified.document.attachments:
        path = folder / a.file_name
        if path.is_file():
            verify_attachment(verified, a.file_name, read_chunks(path))
            found[a.file_name] = path.read_bytes()
    return found


def verify_pdf_file(data: bytes, trust: TrustPolicy, *, as_json: bool) -> None:
    """``gwx verify`` of a PDF: both proofs checked, and reported."""
    from gwexchange.render.pdf_proof import verify_pdf

    result = verify_pdf(data, trust, now=now())
    if as_json:
        emit_json(_pdf_json(result))
        return
    doc = result.document
    typer.echo("验证通过：PDF 签名有效，其中嵌入的已签名公文的所有签名、证书和摘要均有效。")
    typer.echo(f"发文字号：{doc.doc_number.text}")
    typer.echo(f"标题：{doc.title}")
    typer.echo(f"发文机关：{'、'.join(f'{d.label}（{d.code}）' for d in doc.issuers)}")
    for s in result.verified_document.signatures:
        typer.echo(
            f"公文签署：{s.signer_name}（{s.department}）于 {s.signed_at:%Y-%m-%d %H:%M:%S} UTC，"
            f"证书序列号 {s.certificate_serial:x}"
        )
    for p in result.pdf_signatures:
        typer.echo(
            f"PDF 签名：{p.signer_name}（{p.department}）于 {p.signed_at:%Y-%m-%d %H:%M:%S} UTC，"
            f"证书序列号 {p.certificate_serial:x}"
        )
    embedded = {a.file_name for a in result.attachments}
    if doc.attachments:
        missing = [a.file_name for a in doc.attachments if a.file_name not in embedded]
        typer.echo(
            f"附件：嵌入 {len(embedded)} 个，均与签名中的摘要一致"
            + (f"；未嵌入（仅有摘要）：{'、'.join(missing)}" if missing else "")
        )
    typer.echo(f"公文 SHA-256：{result.verified_document.digest}")
    typer.echo(f"PDF SHA-256：{result.sha256}")


def _pdf_json(result: VerifiedPdf) -> dict[str, object]:
    doc = result.document
    return {
        "verified": True,
        "kind": "pdf",
        "doc_number": doc.doc_number.text,
        "title": doc.title,
        "issuers": [d.code for d in doc.issuers],
        "signatures": [
            {
                "department": s.department,
                "signer": s.signer_name,
                "signed_at": s.signed_at.isoformat(),
                "certificate_serial": f"{s.certificate_serial:x}",
            }
            for s in result.verified_document.signatures
        ],
        "pdf_signatures": [
            {
                "field": p.field_name,
                "department": p.department,
                "signer": p.signer_name,
                "signed_at": p.signed_at.isoformat(),
                "certificate_serial": f"{p.certificate_serial:x}",
            }
            for p in result.pdf_signatures
        ],
        "attachments_embedded": [a.file_name for a in result.attachments],
        "sha256": result.verified_document.digest,
        "pdf_sha256": result.sha256,
    }


__all__ = [
    "render",
    "verify_pdf_file",
]
