"""gwx seal, open, inspect and receipt: sealed envelopes and the answers to them."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from gwexchange.cli.common import (
    CrlOption,
    JsonOption,
    KeysOption,
    NodeKeysOption,
    RootOption,
    emit_json,
    now,
    read,
    trust_policy,
)
from gwexchange.crypto.certificates import identity_of
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.package import Package, write_package
from gwexchange.envelope.receipts import ReceiptKind, SentRecord, make_receipt, verify_receipt
from gwexchange.envelope.sealing import InspectedEnvelope, OpenedEnvelope, inspect, open_envelope, seal
from gwexchange.envelope.signing import verify_document
from gwexchange.errors import ConfigError
from gwexchange.files import atomic_write, read_chunks, write_new
from gwexchange.pki.keyfiles import KEY_PASSPHRASE_ENV, load_certificate, load_keypair

PROGRESS_FROM = 8 * 1024 * 1024  # attachments smaller than this open too fast for a progress bar

receipt_app = typer.Typer(help="回执：为收到的公文出具签收、退回等回执，或验证回执。", no_args_is_help=True)

CertsOption = Annotated[
    Path,
    typer.Option(
        "--certs",
        help="Folder of recipients' certificates, <code>/encryption.crt (the CA's issued/ folder).",
        envvar="GWX_CERTS",
    ),
]


def seal_command(
    document: Annotated[Path, typer.Argument(help="A signed document XML.")],
    root: RootOption,
    node_keys: NodeKeysOption,
    certs: CertsOption = Path("keys/ca/issued"),
    crl: CrlOption = None,
    attachments: Annotated[
        Path | None, typer.Option(help="Folder holding the attachment files; default: the document's folder.")
    ] = None,
    sender: Annotated[str | None, typer.Option("--from", help="Sending department; default: the lead issuer.")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Envelope package to write (.gwx).")] = None,
) -> None:
    """Seal a signed document for all of its recipients, as the sending node."""
    trust = trust_policy(root, crl, unsafe_no_revocation=False)
    verified = verify_document(read(document), trust, now=now())
    doc = verified.document
    node_key, node_cert = load_keypair(node_keys, "node", KEY_PASSPHRASE_ENV)
    node_id = identity_of(node_cert).code
    recipients = {d.code: load_certificate(certs / d.code / "encryption.crt") for d in doc.recipients}
    folder = attachments or document.parent
    sources = {a.file_name: read_chunks(folder / a.file_name) for a in doc.attachments}
    for a in doc.attachments:
        if not (folder / a.file_name).is_file():
            raise ConfigError(f"attachment {a.file_name} is not in {folder}: give --attachments DIR")
    out = output or document.with_name(document.name.removesuffix(".xml").removesuffix(".signed") + ".gwx")
    sealed = write_package(
        out,
        lambda sink: seal(
            verified,
            recipients,
            Signer(node_key, node_cert),
            trust=trust,
            sender_department=sender or doc.issuers[0].code,
            node_id=node_id,
            now=now(),
            attachments=sources,
            part_sink=sink,
        ),
    )
    typer.echo(f"已封装：{out}")
    typer.echo(f"报文编号：{sealed.header.message_id}")
    typer.echo(f"收文机关：{'、'.join(sealed.header.recipients)}（每个机关一份加密密钥）")
    typer.echo(f"附件：{len(sealed.parts)} 个；有效期至 {sealed.header.expires:%Y-%m-%d %H:%M} UTC")


def inspect_command(
    envelope: Annotated[Path, typer.Argument(help="An envelope package (.gwx).")],
    root: RootOption,
    crl: CrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what a hub sees: the routing header, verified with the sending node's signature, without any key."""
    with Package(envelope) as package:
        inspected = inspect(package.envelope_xml(), trust_policy(root, crl, unsafe_no_revocation=False))
    if as_json:
        emit_json(envelope_summary(inspected))
        return
    for line in envelope_lines(inspected):
        typer.echo(line)


def open_command(
    envelope: Annotated[Path, typer.Argument(help="An envelope package (.gwx).")],
    keys: KeysOption,
    root: RootOption,
    crl: CrlOption = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the document and attachments.")] = Path(
        "."
    ),
) -> None:
    """Open an envelope addressed to your department: verify every wrap, write the document and attachments."""
    trust = trust_policy(root, crl, unsafe_no_revocation=False)
    key, cert = load_keypair(keys, "encryption", KEY_PASSPHRASE_ENV)
    department = identity_of(cert).code
    with Package(envelope) as package:
        opened = open_envelope(package.envelope_xml(), department, key, trust, now=now())
        output.mkdir(parents=True, exist_ok=True)
        doc_path = output / f"{opened.envelope.header.message_id}.signed.xml"
        write_new(doc_path, [opened.document.signed_bytes])
        written = [
            _write_attachment(opened, package, part_index, output) for part_index in range(len(opened.envelope.parts))
        ]
    doc = opened.document.document
    typer.echo(f"已拆封：{doc.doc_number.text}《{doc.title}》")
    typer.echo(f"发送节点：{opened.envelope.node.identity.name}（{opened.envelope.node.identity.code}），签名有效")
    for s in opened.document.signatures:
        typer.echo(f"签署：{s.signer_name}（{s.department}）于 {s.signed_at:%Y-%m-%d %H:%M:%S} UTC")
    typer.echo(f"公文：{doc_path}")
    for path in written:
        typer.echo(f"附件：{path}（摘要与签名一致）")


def _write_attachment(opened: OpenedEnvelope, package: Package, index: int, output: Path) -> Path:
    """Decrypt one part and publish it under its name once it verified (never over an existing file)."""
    part = opened.envelope.parts[index]
    target = output / part.file_name
    show = part.size >= PROGRESS_FROM and sys.stderr.isatty()
    with typer.progressbar(length=part.size, label=f"解密 {part.file_name}", file=sys.stderr, hidden=not show) as bar:
        write_new(target, opened.attachment(part, _counting(package.part(part.cid), bar)))
    return target


def _counting(chunks: Iterable[bytes], bar: Any) -> Iterator[bytes]:
    """Pass chunks through, advancing the progress bar (shown only on a terminal) by their size."""
    for chunk in chunks:
        bar.update(len(chunk))
        yield chunk


def envelope_summary(inspected: InspectedEnvelope) -> dict[str, object]:
    h = inspected.header
    return {
        "message_id": h.message_id,
        "kind": h.kind.value,
        "sender_department": h.sender_department,
        "sender_node": h.sender_node,
        "node_signature": "valid",
        "node_certificate_serial": f"{inspected.node.identity.serial:x}",
        "recipients": list(h.recipients),
        "classification": h.classification.value,
        "urgency": h.urgency.value if h.urgency else None,
        "created": h.created.isoformat(),
        "expires": h.expires.isoformat(),
        "in_reply_to": h.in_reply_to,
        "parts": [{"cid": p.cid, "file": p.file_name, "size": p.size, "sha256": p.sha256} for p in inspected.parts],
        "sha256": inspected.envelope_sha256,
    }


def envelope_lines(inspected: InspectedEnvelope) -> list[str]:
    h = inspected.header
    lines = [
        f"交换信封：节点签名有效（{inspected.node.identity.name}，{h.sender_node}）",
        f"报文编号：{h.message_id}（{h.kind.value}）",
        f"发送机关：{h.sender_department}",
        f"收文机关：{'、'.join(h.recipients)}",
        f"密级：{h.classification.value}" + (f"  紧急程度：{h.urgency.value}" if h.urgency else ""),
        f"创建：{h.created:%Y-%m-%d %H:%M:%S} UTC  有效期至：{h.expires:%Y-%m-%d %H:%M:%S} UTC",
    ]
    if h.in_reply_to:
        lines.append(f"答复报文：{h.in_reply_to}")
    for p in inspected.parts:
        lines.append(f"加密附件：{p.cid} {p.file_name}（{p.size} 字节）")
    lines.append(f"信封 SHA-256：{inspected.envelope_sha256}")
    return lines


@receipt_app.command("make")
def receipt_make(
    envelope: Annotated[Path, typer.Argument(help="The envelope package (.gwx) you received.")],
    kind: Annotated[ReceiptKind, typer.Option(help="送达, 签收 or 退回.")],
    keys: KeysOption,
    root: RootOption,
    crl: CrlOption = None,
    reason: Annotated[str | None, typer.Option(help="Why (required for 退回).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Receipt XML to write.")] = None,
) -> None:
    """Make your department's signed receipt for an envelope it received."""
    if kind is ReceiptKind.FAILED:
        raise ConfigError("投递失败 is reported by nodes, not by departments")
    trust = trust_policy(root, crl, unsafe_no_revocation=False)
    enc_key, enc_cert = load_keypair(keys, "encryption", KEY_PASSPHRASE_ENV)
    sign_key, sign_cert = load_keypair(keys, "signing", KEY_PASSPHRASE_ENV)
    with Package(envelope) as package:
        opened = open_envelope(package.envelope_xml(), identity_of(enc_cert).code, enc_key, trust, now=now())
    receipt = make_receipt(kind, opened, Signer(sign_key, sign_cert), now=now(), reason=reason)
    out = output or envelope.with_name(f"{opened.envelope.header.message_id}.{kind.name.lower()}.receipt.xml")
    atomic_write(out, receipt)
    typer.echo(f"已出具{kind.value}回执：{out}")


@receipt_app.command("verify")
def receipt_verify(
    receipt: Annotated[Path, typer.Argument(help="A receipt XML.")],
    envelope: Annotated[Path, typer.Option(help="The envelope package (.gwx) that was sent.")],
    document: Annotated[Path, typer.Option(help="The signed document that was sent in it.")],
    root: RootOption,
    crl: CrlOption = None,
    route_node: Annotated[list[str] | None, typer.Option(help="A node on the route (may answer 投递失败).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Verify a receipt against what was sent: signature, the answerer's right to answer, the digest binding."""
    trust = trust_policy(root, crl, unsafe_no_revocation=False)
    with Package(envelope) as package:
        inspected = inspect(package.envelope_xml(), trust)
    record = SentRecord(
        message_id=inspected.header.message_id,
        envelope_sha256=inspected.envelope_sha256,
        document_sha256=hashlib.sha256(read(document)).hexdigest(),
        recipients=inspected.header.recipients,
    )
    verified = verify_receipt(read(receipt), record, trust, route_nodes=frozenset(route_node or ()))
    r = verified.receipt
    if as_json:
        emit_json(
            {
                "verified": True,
                "kind": r.kind.value,
                "message_id": r.message_id,
                "answerer": r.answerer,
                "role": r.role.value,
                "time": r.time.isoformat(),
                "reason": r.reason,
            }
        )
        return
    typer.echo(f"回执有效：{r.kind.value}，{verified.signer_name}（{r.answerer}）于 {r.time:%Y-%m-%d %H:%M:%S} UTC")
    typer.echo(f"答复报文：{r.message_id}，与所发信封和公文的摘要一致")
    if r.reason:
        typer.echo(f"理由：{r.reason}")


__all__ = [
    "PROGRESS_FROM",
    "CertsOption",
    "envelope_lines",
    "envelope_summary",
    "inspect_command",
    "open_command",
    "receipt_app",
    "receipt_make",
    "receipt_verify",
    "seal_command",
]
