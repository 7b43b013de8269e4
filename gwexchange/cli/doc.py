"""gwx doc: draft, sign and show documents."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509

from gwexchange import xmlsafe
from gwexchange.cli.common import (
    CrlOption,
    JsonOption,
    emit_json,
    now,
    read,
    read_passphrase,
    to_json,
    trust_policy,
)
from gwexchange.crypto.keys import key_from_pem
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.description import load_description_file
from gwexchange.envelope.model import Document, cn_date
from gwexchange.envelope.signing import SIGNING_TAG, sign_document
from gwexchange.envelope.xmlform import document_from_element, document_to_xml
from gwexchange.errors import ConfigError
from gwexchange.files import atomic_write
from gwexchange.pki.keyfiles import KEY_PASSPHRASE_ENV

doc_app = typer.Typer(help="公文：由描述文件起草、签发、查看。", no_args_is_help=True)


@doc_app.command("new")
def doc_new(
    description: Annotated[Path, typer.Argument(help="The clerk's TOML description of the document.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Draft XML to write.")] = None,
    departments: Annotated[
        Path | None, typer.Option(help="Department list (codes to names); default: departments.toml beside it.")
    ] = None,
) -> None:
    """Draft the XML of a document from its TOML description and body file."""
    doc = load_description_file(description, departments)
    out = output or description.with_suffix(".xml")
    atomic_write(out, document_to_xml(doc))
    typer.echo(
        f"已起草：{out}（{doc.kind}，{doc.doc_number.text}，{len(doc.body)} 段，附件 {len(doc.attachments)} 个）"
    )


@doc_app.command("sign")
def doc_sign(
    draft: Annotated[Path, typer.Argument(help="Draft (or, for a joint document, partly signed) XML.")],
    key: Annotated[Path, typer.Option(help="The department's signing key (signing.key).")],
    cert: Annotated[Path, typer.Option(help="The department's signing certificate (signing.crt).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Signed XML to write.")] = None,
    root: Annotated[Path | None, typer.Option(help="Root certificate: verify earlier signatures first.")] = None,
    crl: CrlOption = None,
    passphrase_env: Annotated[str, typer.Option(help="Variable holding the key passphrase.")] = KEY_PASSPHRASE_ENV,
    passphrase_file: Annotated[Path | None, typer.Option(help="File with the key passphrase.")] = None,
    unsafe_unencrypted_key: Annotated[bool, typer.Option(help="UNSAFE: the key file is not encrypted.")] = False,
) -> None:
    """Sign a document with the department's key (joint documents: each department in turn)."""
    passphrase = None if unsafe_unencrypted_key else read_passphrase(passphrase_env, passphrase_file, "the signing key")
    try:
        certificate = x509.load_pem_x509_certificate(read(cert))
    except ValueError as e:
        raise ConfigError(f"{cert} is not a PEM certificate") from e
    signer = Signer(key_from_pem(read(key), passphrase, source=str(key)), certificate)
    trust = trust_policy(root, crl, unsafe_no_revocation=False) if root is not None else None
    signed = sign_document(read(draft), signer, at=now(), trust=trust)
    out = output or draft.with_name(draft.stem.removesuffix(".draft") + ".signed.xml")
    atomic_write(out, signed)
    typer.echo(f"已签署：{out}")


@doc_app.command("show")
def doc_show(
    file: Annotated[Path, typer.Argument(help="A draft or signed document XML.")],
    as_json: JsonOption = False,
) -> None:
    """Show a document, in Chinese, in the order of GB/T 9704 (does not verify: use 'gwx verify')."""
    root = xmlsafe.parse(read(file))
    doc = document_from_element(root)
    signings = [(s.get("department", ""), s.get("time", "")) for s in root.iter(SIGNING_TAG)]
    if as_json:
        emit_json({"document": to_json(doc), "signings_unverified": [list(s) for s in signings]})
        return
    for line in document_lines(doc):
        typer.echo(line)
    for department, time in signings:
        typer.echo(f"签署（未验证）：{department}  {time}")
    if signings:
        typer.echo("提示：以上签署未经验证，请用 gwx verify 验证。")


def document_lines(doc: Document) -> list[str]:
    lines: list[str] = []

    def row(label: str, value: str | None) -> None:
        if value:
            lines.append(f"{label}：{value}")

    row("份号", doc.copy_number)
    row("密级", f"{doc.classification}★{doc.secrecy_period}" if doc.secrecy_period else doc.classification.value)
    row("紧急程度", doc.urgency.value if doc.urgency else None)
    row("文种", doc.kind.value)
    row("发文机关", "、".join(f"{d.label}（{d.code}）" for d in doc.issuers))
    row("发文机关标志", doc.issuer_mark)
    row("发文字号", doc.doc_number.text)
    row("签发人", "、".join(doc.signers))
    row("标题", doc.title)
    row("主送机关", doc.main_recipients_line or "、".join(d.label for d in doc.main_recipients))
    if doc.main_recipients:
        row("主送（交换）", "、".join(f"{d.label}（{d.code}）" for d in doc.main_recipients))
    lines.append("正文：")
    lines.extend(f"    {p}" for p in doc.body)
    if doc.attachment_note:
        lines.append("附件说明：")
        lines.extend(f"    {i}. {name}" for i, name in enumerate(doc.attachment_note, 1))
    row("发文机关署名", "、".join(doc.signature_names))
    row("成文日期", cn_date(doc.date))
    row("附注", f"（{doc.note}）" if doc.note else None)
    for i, a in enumerate(doc.attachments, 1):
        lines.append(f"附件{i}：{a.title}（{a.file_name}，{a.media_type}，{a.size} 字节，SHA-256 {a.sha256}）")
    row("抄送机关", "、".join(f"{d.label}（{d.code}）" for d in doc.copy_recipients))
    if doc.printer and doc.print_date:
        row("印发", f"{doc.printer}  {cn_date(doc.print_date)}印发")
    return lines


__all__ = [
    "doc_app",
    "doc_new",
    "doc_show",
    "doc_sign",
    "document_lines",
]
