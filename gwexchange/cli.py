"""``gwx``: the command line of gwexchange, a thin layer over the library.

Every command prints what a clerk needs in Chinese, ``--json`` where a script reads the result, and any error as
one plain line on stderr with a non-zero exit code (1: the input or the verification failed; 2: bad usage).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509

from gwexchange import xmlsafe
from gwexchange.crypto.authority import Authority
from gwexchange.crypto.certificates import RevocationReason, Role, Usage
from gwexchange.crypto.keys import KeyAlgorithm, Protection, UnsafeUnencrypted, key_from_pem
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.model import Document
from gwexchange.envelope.signing import SIGNING_TAG, VerifiedDocument, sign_document, verify_attachment, verify_document
from gwexchange.envelope.xmlform import document_from_element, document_to_xml
from gwexchange.errors import (
    ConfigError,
    DocumentError,
    GwxError,
    SignatureError,
    TrustError,
    VerificationError,
    XmlInputError,
)
from gwexchange.files import atomic_write, load_description_file, read_chunks

app = typer.Typer(
    name="gwx",
    help="gwexchange：公文交换 — 起草、签发、验证公文。",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
pki_app = typer.Typer(help="安全中心：根证书、签发与吊销证书、发布 CRL。", no_args_is_help=True)
doc_app = typer.Typer(help="公文：由描述文件起草、签发、查看。", no_args_is_help=True)
app.add_typer(pki_app, name="pki")
app.add_typer(doc_app, name="doc")

CA_PASSPHRASE_ENV = "GWX_CA_PASSPHRASE"
KEY_PASSPHRASE_ENV = "GWX_KEY_PASSPHRASE"

HomeOption = Annotated[Path, typer.Option("--home", help="CA home directory.", envvar="GWX_PKI_HOME")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
RootOption = Annotated[Path, typer.Option("--root", help="Root certificate (root.crt) to trust.", envvar="GWX_ROOT")]
CrlOption = Annotated[
    list[Path] | None, typer.Option("--crl", help="CRL signed by the root (repeatable).", envvar="GWX_CRL")
]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _passphrase(env: str, file: Path | None, what: str) -> bytes:
    """A passphrase from a file (first line) or an environment variable; never from the command line."""
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").splitlines()[0].encode("utf-8")
        except (OSError, IndexError) as e:
            raise ConfigError(f"cannot read the passphrase for {what} from {file}") from e
    value = os.environ.get(env)
    if not value:
        raise ConfigError(f"no passphrase for {what}: set ${env} or give --passphrase-file")
    return value.encode("utf-8")


def _protection(env: str, file: Path | None, unsafe: bool, what: str) -> Protection:
    return UnsafeUnencrypted() if unsafe else _passphrase(env, file, what)


def _trust(root: Path, crls: list[Path] | None, unsafe_no_revocation: bool) -> TrustPolicy:
    try:
        root_cert = x509.load_pem_x509_certificate(root.read_bytes())
        loaded = tuple(x509.load_pem_x509_crl(p.read_bytes()) for p in crls or [])
    except FileNotFoundError as e:
        raise ConfigError(f"{e.filename} does not exist") from e
    except ValueError as e:
        raise ConfigError(f"cannot read the root certificate or CRL: {e}") from e
    return TrustPolicy(root_cert, loaded, check_revocation=not unsafe_no_revocation)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"{path} does not exist") from e


def _cn_date(d: date) -> str:
    """成文日期 as GB/T 9704 writes it: Arabic numerals, no zero padding."""
    return f"{d.year}年{d.month}月{d.day}日"


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


# --- gwx pki -------------------------------------------------------------------------------------------------


@pki_app.command("init")
def pki_init(
    name: Annotated[str, typer.Option(help="Name of the security centre, e.g. 广东省电子政务安全中心.")],
    code: Annotated[str, typer.Option(help="Code of the root authority, e.g. gd.gov.ca.")],
    home: HomeOption = Path("keys/ca"),
    algorithm: Annotated[KeyAlgorithm, typer.Option(help="Root key algorithm.")] = KeyAlgorithm.EC_P256,
    passphrase_env: Annotated[str, typer.Option(help="Variable holding the CA key passphrase.")] = CA_PASSPHRASE_ENV,
    passphrase_file: Annotated[Path | None, typer.Option(help="File whose first line is the passphrase.")] = None,
    unsafe_unencrypted_keys: Annotated[bool, typer.Option(help="UNSAFE: store the root key in the clear.")] = False,
) -> None:
    """Create a root CA and its first (empty) CRL."""
    protection = _protection(passphrase_env, passphrase_file, unsafe_unencrypted_keys, "the CA key")
    ca = Authority.create(home, code=code, name=name, protection=protection, now=_now(), algorithm=algorithm)
    typer.echo(f"已创建根证书：{home / 'root.crt'}（序列号 {ca.root.serial_number:x}）")
    typer.echo(f"证书吊销列表：{home / 'crl.pem'}")


@pki_app.command("issue")
def pki_issue(
    code: Annotated[str, typer.Option(help="Directory code of the holder, e.g. gd.gov.czt or gd-hub.")],
    name: Annotated[str, typer.Option(help="Name of the holder, e.g. 广东省财政厅.")],
    role: Annotated[Role, typer.Option(help="department: a signing and an encryption certificate; node: one.")],
    home: HomeOption = Path("keys/ca"),
    algorithm: Annotated[KeyAlgorithm, typer.Option(help="Key algorithm.")] = KeyAlgorithm.EC_P256,
    passphrase_env: Annotated[str, typer.Option(help="Variable holding the CA key passphrase.")] = CA_PASSPHRASE_ENV,
    passphrase_file: Annotated[Path | None, typer.Option(help="File with the CA key passphrase.")] = None,
    key_passphrase_env: Annotated[
        str, typer.Option(help="Variable holding the passphrase for the new keys.")
    ] = KEY_PASSPHRASE_ENV,
    key_passphrase_file: Annotated[Path | None, typer.Option(help="File with the new keys' passphrase.")] = None,
    unsafe_unencrypted_keys: Annotated[bool, typer.Option(help="UNSAFE: store the new keys in the clear.")] = False,
) -> None:
    """Issue certificates (and keys) to a department or a node."""
    if role is Role.ROOT:
        raise ConfigError("the root certificate is made by 'gwx pki init'")
    ca = Authority.open(home, _passphrase(passphrase_env, passphrase_file, "the CA key"))
    protection = _protection(key_passphrase_env, key_passphrase_file, unsafe_unencrypted_keys, "the new keys")
    usages = [Usage.NODE] if role is Role.NODE else [Usage.SIGNING, Usage.ENCRYPTION]
    for usage in usages:
        files = ca.issue(
            code=code, name=name, role=role, usage=usage, protection=protection, now=_now(), algorithm=algorithm
        )
        typer.echo(f"{usage.value:<10} 证书 {files.certificate}  私钥 {files.key}")


@pki_app.command("revoke")
def pki_revoke(
    serial: Annotated[str, typer.Argument(help="Serial number (hex) of the certificate, see 'gwx pki list'.")],
    reason: Annotated[RevocationReason, typer.Option(help="RFC 5280 reason.")] = RevocationReason.UNSPECIFIED,
    home: HomeOption = Path("keys/ca"),
    passphrase_env: Annotated[str, typer.Option(help="Variable holding the CA key passphrase.")] = CA_PASSPHRASE_ENV,
    passphrase_file: Annotated[Path | None, typer.Option(help="File with the CA key passphrase.")] = None,
) -> None:
    """Revoke a certificate and publish a new CRL."""
    ca = Authority.open(home, _passphrase(passphrase_env, passphrase_file, "the CA key"))
    entry = ca.revoke(serial, reason=reason, now=_now())
    typer.echo(f"已吊销 {entry.code} 的 {entry.usage} 证书（序列号 {entry.serial}，原因 {entry.reason}）")
    typer.echo(f"新的证书吊销列表：{home / 'crl.pem'}")


@pki_app.command("crl")
def pki_crl(
    home: HomeOption = Path("keys/ca"),
    passphrase_env: Annotated[str, typer.Option(help="Variable holding the CA key passphrase.")] = CA_PASSPHRASE_ENV,
    passphrase_file: Annotated[Path | None, typer.Option(help="File with the CA key passphrase.")] = None,
) -> None:
    """Publish a fresh CRL (do this before the current one expires)."""
    ca = Authority.open(home, _passphrase(passphrase_env, passphrase_file, "the CA key"))
    typer.echo(f"已发布证书吊销列表：{ca.publish_crl(now=_now())}")


@pki_app.command("list")
def pki_list(home: HomeOption = Path("keys/ca"), as_json: JsonOption = False) -> None:
    """List every certificate issued, with its revocation state (needs no passphrase)."""
    index = home / "index.json"
    if not index.is_file():
        raise ConfigError(f"{home} is not a CA home; create one with 'gwx pki init'")
    issued = Authority.read_issued(home)
    if as_json:
        _emit_json([_to_json(e) for e in issued])
        return
    for e in issued:
        state = f"已吊销 {e.revoked_at[:10]}（{e.reason}）" if e.revoked_at else "有效"
        typer.echo(f"{e.serial:<42} {e.code:<20} {e.usage:<10} 至 {e.not_after[:10]}  {state}  {e.name}")


# --- gwx doc -------------------------------------------------------------------------------------------------


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
    passphrase = None if unsafe_unencrypted_key else _passphrase(passphrase_env, passphrase_file, "the signing key")
    try:
        certificate = x509.load_pem_x509_certificate(_read(cert))
    except ValueError as e:
        raise ConfigError(f"{cert} is not a PEM certificate") from e
    signer = Signer(key_from_pem(_read(key), passphrase, source=str(key)), certificate)
    trust = _trust(root, crl, unsafe_no_revocation=False) if root is not None else None
    signed = sign_document(_read(draft), signer, at=_now(), trust=trust)
    out = output or draft.with_name(draft.stem.removesuffix(".draft") + ".signed.xml")
    atomic_write(out, signed)
    typer.echo(f"已签署：{out}")


@doc_app.command("show")
def doc_show(
    file: Annotated[Path, typer.Argument(help="A draft or signed document XML.")],
    as_json: JsonOption = False,
) -> None:
    """Show a document, in Chinese, in the order of GB/T 9704 (does not verify: use 'gwx verify')."""
    root = xmlsafe.parse(_read(file))
    doc = document_from_element(root)
    signings = [(s.get("department", ""), s.get("time", "")) for s in root.iter(SIGNING_TAG)]
    if as_json:
        _emit_json({"document": _to_json(doc), "signings_unverified": [list(s) for s in signings]})
        return
    for line in _document_lines(doc):
        typer.echo(line)
    for department, time in signings:
        typer.echo(f"签署（未验证）：{department}  {time}")
    if signings:
        typer.echo("提示：以上签署未经验证，请用 gwx verify 验证。")


def _document_lines(doc: Document) -> list[str]:
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
    row("成文日期", _cn_date(doc.date))
    row("附注", f"（{doc.note}）" if doc.note else None)
    for i, a in enumerate(doc.attachments, 1):
        lines.append(f"附件{i}：{a.title}（{a.file_name}，{a.media_type}，{a.size} 字节，SHA-256 {a.sha256}）")
    row("抄送机关", "、".join(f"{d.label}（{d.code}）" for d in doc.copy_recipients))
    if doc.printer and doc.print_date:
        row("印发", f"{doc.printer}  {_cn_date(doc.print_date)}印发")
    return lines


# --- gwx verify ----------------------------------------------------------------------------------------------


@app.command("verify")
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
    trust = _trust(root, crl, unsafe_no_revocation_check)
    verified = verify_document(_read(file), trust, now=_now())
    checked = [] if no_attachments else _check_attachments(verified, attachments or file.parent)
    if as_json:
        _emit_json(
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


def _headline(error: GwxError) -> str:
    """The kind of failure in the clerk's words; the detail follows it."""
    for kind, words in (
        (DocumentError, "公文格式错误"),
        (XmlInputError, "XML 输入被拒绝"),
        (ConfigError, "配置错误"),
        (SignatureError, "签名无效"),
        (TrustError, "证书不可信"),
        (VerificationError, "验证失败"),
    ):
        if isinstance(error, kind):
            return words
    return "错误"


def main() -> None:
    """Entry point: typer reports usage errors (exit 2); every failure of ours becomes one line (exit 1)."""
    try:
        app()
    except GwxError as e:
        typer.echo(f"gwx: {_headline(e)}：{e}", err=True)
        sys.exit(1)
    except OSError as e:
        typer.echo(f"gwx: 文件错误：{e.strerror or e}：{e.filename or ''}", err=True)
        sys.exit(1)
