"""gwx verify: everything a signed object proves, checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gwexchange.cli.common import CrlOption, JsonOption, RootOption, emit_json, now, read, trust_policy
from gwexchange.envelope.signing import VerifiedDocument, verify_attachment, verify_document
from gwexchange.errors import VerificationError
from gwexchange.files import read_chunks


def verify(
    file: Annotated[Path, typer.Argument(help="A signed document XML.")],
    root: RootOption,
    crl: CrlOption = None,
    attachments: Annotated[
        Path | None, typer.Option(help="Folder holding the attachment files; default: the document's folder.")
    ] = None,
    no_attachments: Annotated[bool, typer.Option(help="Verify the document only, not its attachments.")] = False,
    unsafe_no_revocation_check: Annotated[bool, typer.Option(help="UNSAFE: do not consult any CRL.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Verify a signed document: every signature, certificate, revocation and attachment digest."""
    trust = trust_policy(root, crl, unsafe_no_revocation_check)
    verified = verify_document(read(file), trust, now=now())
    checked = [] if no_attachments else _check_attachments(verified, attachments or file.parent)
    if as_json:
        emit_json(
            {
                "verified": True,
                "doc_number": verified.document.doc_number.text,
                "title": verified.document.title,
                "issuers": [d.code for d in verified.document.issuers],
                "signatures": [
                    {
                        "department": s.department,
                        "signer": s.signer_name,
                        "signed_at": s.signed_at.isoformat(),
                        "certificate_serial": f"{s.certificate_serial:x}",
                    }
                    for s in verified.signatures
                ],
                "attachments_checked": checked,
                "sha256": verified.digest,
            }
        )
        return
    doc = verified.document
    typer.echo("验证通过：所有签名、证书和摘要均有效。")
    typer.echo(f"发文字号：{doc.doc_number.text}")
    typer.echo(f"标题：{doc.title}")
    typer.echo(f"发文机关：{'、'.join(f'{d.label}（{d.code}）' for d in doc.issuers)}")
    for s in verified.signatures:
        typer.echo(
            f"签署：{s.signer_name}（{s.department}）于 {s.signed_at:%Y-%m-%d %H:%M:%S} UTC，"
            f"证书序列号 {s.certificate_serial:x}"
        )
    if no_attachments:
        typer.echo(f"附件：未检查（{len(doc.attachments)} 个）")
    elif doc.attachments:
        typer.echo(f"附件：{len(checked)} 个，均与签名中的摘要一致")
    typer.echo(f"文件 SHA-256：{verified.digest}")


def _check_attachments(verified: VerifiedDocument, folder: Path) -> list[str]:
    checked = []
    for a in verified.document.attachments:
        path = folder / a.file_name
        if not path.is_file():
            raise VerificationError(
                f"attachment {a.file_name} is not in {folder}: give --attachments DIR, or --no-attachments"
            )
        verify_attachment(verified, a.file_name, read_chunks(path))
        checked.append(a.file_name)
    return checked
