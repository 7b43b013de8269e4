"""gwx verify: everything a signed object proves, checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gwexchange import xmlsafe
from gwexchange.cli.common import CrlOption, JsonOption, RootOption, emit_json, now, read, trust_policy
from gwexchange.cli.envelope import envelope_lines, envelope_summary
from gwexchange.cli.render import verify_pdf_file
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.header import MessageKind, eq
from gwexchange.envelope.package import Package, is_package
from gwexchange.envelope.receipts import RECEIPT_NS, VerifiedReceipt, verify_receipt_signature
from gwexchange.envelope.sealing import inspect, receipt_content
from gwexchange.envelope.signing import VerifiedDocument, verify_attachment, verify_document
from gwexchange.errors import VerificationError
from gwexchange.files import read_chunks

RECEIPT_TAG = "{" + RECEIPT_NS + "}Receipt"


def verify(
    file: Annotated[
        Path, typer.Argument(help="A signed document, its PDF, an envelope package (.gwx), an envelope or a receipt.")
    ],
    root: RootOption,
    crl: CrlOption = None,
    attachments: Annotated[
        Path | None, typer.Option(help="Folder holding the attachment files; default: the document's folder.")
    ] = None,
    no_attachments: Annotated[bool, typer.Option(help="Verify the document only, not its attachments.")] = False,
    unsafe_no_revocation_check: Annotated[bool, typer.Option(help="UNSAFE: do not consult any CRL.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Verify what a file proves: a signed document (every signature, certificate, revocation, attachment
    digest), an envelope (the sending node's signature) or a receipt (its signer)."""
    trust = trust_policy(root, crl, unsafe_no_revocation_check)
    data = read(file)
    if data.startswith(b"%PDF"):  # a PDF made by gwx render carries the signed document inside it
        verify_pdf_file(data, trust, as_json=as_json)
        return
    if is_package(data[:64]):
        with Package(file) as package:
            _report_envelope(package.envelope_xml(), trust, as_json=as_json)
        return
    root_tag = xmlsafe.parse(data).tag
    if root_tag == eq("Envelope"):
        _report_envelope(data, trust, as_json=as_json)
        return
    if root_tag == RECEIPT_TAG:
        _report_receipt(data, trust, as_json=as_json)
        return
    verified = verify_document(data, trust, now=now())
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


def _report_envelope(envelope_xml: bytes, trust: TrustPolicy, *, as_json: bool) -> None:
    inspected = inspect(envelope_xml, trust)
    receipt = None
    if inspected.header.kind is MessageKind.RECEIPT:
        receipt = verify_receipt_signature(receipt_content(inspected), trust)
    if as_json:
        emit_json({"verified": True, "envelope": envelope_summary(inspected), "receipt": _receipt_json(receipt)})
        return
    for line in envelope_lines(inspected):
        typer.echo(line)
    if receipt is not None:
        _receipt_lines(receipt)


def _report_receipt(receipt_xml: bytes, trust: TrustPolicy, *, as_json: bool) -> None:
    verified = verify_receipt_signature(receipt_xml, trust)
    if as_json:
        emit_json({"verified": True, "receipt": _receipt_json(verified)})
        return
    _receipt_lines(verified)
    typer.echo("提示：此处只验证了回执的签名；与所发信封和公文的绑定请用 gwx receipt verify 验证。")


def _receipt_json(verified: VerifiedReceipt | None) -> dict[str, object] | None:
    if verified is None:
        return None
    r = verified.receipt
    return {
        "kind": r.kind.value,
        "message_id": r.message_id,
        "answerer": r.answerer,
        "role": r.role.value,
        "signer": verified.signer_name,
        "time": r.time.isoformat(),
        "envelope_sha256": r.envelope_sha256,
        "document_sha256": r.document_sha256,
        "reason": r.reason,
    }


def _receipt_lines(verified: VerifiedReceipt) -> None:
    r = verified.receipt
    typer.echo(f"回执签名有效：{r.kind.value}，{verified.signer_name}（{r.answerer}）于 {r.time:%Y-%m-%d %H:%M:%S} UTC")
    typer.echo(f"答复报文：{r.message_id}")
    if r.reason:
        typer.echo(f"理由：{r.reason}")


__all__ = [
    "RECEIPT_TAG",
    "verify",
]
