"""gwx audit: export a node's archive, verify archives, prove an entry's inclusion, and report in a PDF.

``verify`` and ``report`` exit 0 only if every check of every node passed (1 otherwise, after printing or writing
what failed); any other failure is one line on stderr with exit 1, as everywhere in gwx.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from cryptography import x509

from gwexchange.cli.common import JsonOption, emit_json, read
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.errors import ConfigError
from gwexchange.files import atomic_write

if TYPE_CHECKING:
    from gwexchange.archive.audit_model import AuditOptions, AuditReport

audit_app = typer.Typer(help="审计：导出节点归档，验证日志与回执，出具包含证明和审计报告。", no_args_is_help=True)

PathsArg = Annotated[list[Path], typer.Argument(help="Node homes or exported archives (.gwxa), one per node.")]
SourceArg = Annotated[Path, typer.Argument(help="A node home or an exported archive.")]
AuditRootOption = Annotated[
    Path | None,
    typer.Option("--root", help="Root certificate to trust (default: each archive's own root.crt).", envvar="GWX_ROOT"),
]
AuditCrlOption = Annotated[
    list[Path] | None, typer.Option("--crl", help="A further CRL signed by the root (repeatable).")
]
UnsafeNoRevocationOption = Annotated[
    bool,
    typer.Option(
        "--unsafe-no-revocation",
        help="UNSAFE: audit an archive that holds no CRL (and none is given) without checking revocation.",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Processes checking signatures in large logs (default: the CPUs, up to 8)."),
]
PROGRESS_FROM = 10_000  # entries: smaller audits finish before progress would help


class _Progress:
    """Progress on stderr for large archives, at most a line a second."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, node: str, phase: str, done: int, total: int) -> None:
        if total < PROGRESS_FROM:
            return
        now = time.monotonic()
        if done not in (0, total) and now - self.last < 1.0:
            return
        self.last = now
        typer.echo(f"{node}：{phase} {done}/{total}（{100 * done // max(total, 1)}%）", err=True)


def _options(
    root: Path | None,
    crl: list[Path] | None,
    unsafe_no_revocation: bool,
    *,
    progress: bool = True,
    workers: int | None = None,
) -> AuditOptions:
    from gwexchange.archive.audit_model import AuditOptions

    return AuditOptions(
        root=read(root) if root is not None else None,
        crls=tuple(read(p) for p in crl or []),
        progress=_Progress() if progress else None,
        workers=workers or min(8, os.cpu_count() or 1),
        unsafe_no_revocation=unsafe_no_revocation,
    )


def _audit(
    paths: list[Path], root: Path | None, crl: list[Path] | None, unsafe_no_revocation: bool, workers: int | None
) -> AuditReport:
    from gwexchange.archive.audit import audit
    from gwexchange.routing.home_source import open_source

    with contextlib.ExitStack() as stack:
        sources = [stack.enter_context(open_source(p)) for p in paths]
        return audit(sources, _options(root, crl, unsafe_no_revocation, workers=workers))


@audit_app.command("export")
def export_command(
    home: Annotated[Path, typer.Argument(help="The node home (node.toml, log/, peer-heads).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The archive to write (.gwxa).")],
    directory: Annotated[
        list[Path] | None,
        typer.Option("--directory", help="An earlier signed directory the node held, to include (repeatable)."),
    ] = None,
) -> None:
    """Write one node's self-contained archive; safe while the daemon runs (the log up to its last commit)."""
    from gwexchange.routing.home_source import export_archive

    summary = export_archive(home, output, extra_directories=tuple(directory or []))
    typer.echo(
        f"已导出节点 {summary.node_id} 的归档：{summary.path}（{summary.bytes} 字节）\n"
        f"日志 {summary.log_size} 条，根 {summary.log_root or '—'}；树头 {summary.heads} 个，对端树头 "
        f"{summary.peer_heads} 个；收件箱公文 {summary.inbox} 件；交换目录 {summary.directories} 份，吊销列表 "
        f"{summary.crls} 份"
    )


@audit_app.command("verify")
def verify_command(
    paths: PathsArg,
    root: AuditRootOption = None,
    crl: AuditCrlOption = None,
    workers: WorkersOption = None,
    as_json: JsonOption = False,
    unsafe_no_revocation: UnsafeNoRevocationOption = False,
) -> None:
    """Check every entry, tree head, envelope, receipt and delivered document; with several nodes, that each
    node's history is the one its peers saw. Exit 0 only if everything passed."""
    report = _audit(paths, root, crl, unsafe_no_revocation, workers)
    if as_json:
        emit_json(report.as_json())
    else:
        for line in report.summary():
            typer.echo(line)
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("report")
def report_command(
    paths: PathsArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="The PDF to write.")],
    root: AuditRootOption = None,
    crl: AuditCrlOption = None,
    workers: WorkersOption = None,
    unsafe_no_revocation: UnsafeNoRevocationOption = False,
) -> None:
    """The findings as a PDF in Chinese: summary, documents, receipts, every failure. Exit 0 only if all passed."""
    from gwexchange.archive.audit_report import render_report
    from gwexchange.render.fonts import load_fonts

    fonts = load_fonts()
    report = _audit(paths, root, crl, unsafe_no_revocation, workers)
    atomic_write(output, render_report(report, fonts))
    verdict = "全部检查通过" if report.ok else f"未通过（{len(report.findings) + report.findings_not_listed} 项问题）"
    typer.echo(f"已写出审计报告：{output}；结论：{verdict}")
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("prove")
def prove_command(
    message_id: Annotated[str, typer.Argument(help="The message id of the envelope.")],
    path: SourceArg,
    root: AuditRootOption = None,
    crl: AuditCrlOption = None,
    as_json: JsonOption = False,
    unsafe_no_revocation: UnsafeNoRevocationOption = False,
) -> None:
    """The RFC 9162 inclusion proof of an envelope in the node's log against its latest signed tree head."""
    from gwexchange.archive.audit import trust_for
    from gwexchange.archive.audit_proof import prove
    from gwexchange.routing.home_source import open_source

    options = _options(root, crl, unsafe_no_revocation, progress=False)
    with open_source(path) as source:
        trust, _ = trust_for(source, options, datetime.now(UTC))
        proof = prove(source, message_id.strip().lower(), trust)
    if as_json:
        emit_json(proof.as_json())
        return
    head = proof.head
    typer.echo(f"消息 {proof.message_id} 是节点 {proof.node_id} 日志的第 {proof.leaf_index} 条（自 0 起计）")
    typer.echo(f"树规模：{proof.tree_size}")
    typer.echo(f"根哈希：{proof.root_hash.hex()}")
    typer.echo(f"叶哈希：{proof.leaf_hash.hex()}（SHA-256(0x00 ‖ 信封)）")
    typer.echo(f"树头：节点 {head.node_id}，规模 {head.size}，时间 {head.time_text}，{head.method.value}，签名已验证")
    typer.echo(f"审计路径（{len(proof.audit_path)} 个哈希，自叶向根）：")
    for h in proof.audit_path:
        typer.echo(f"  {h.hex()}")
    typer.echo("树头所签的内容：")
    for line in head.signed_bytes.decode("ascii").splitlines():
        typer.echo(f"  {line}")
    typer.echo(f"签名：{head.signature.hex()}")
    typer.echo("签名证书与信封原文见 --json（tree_head.certificate、entry）")


@audit_app.command("check-proof")
def check_proof_command(
    file: Annotated[Path, typer.Argument(help="A proof saved with gwx audit prove --json.")],
    root: Annotated[
        Path | None, typer.Option("--root", help="Root certificate the tree head's signer must chain to.")
    ] = None,
    crl: AuditCrlOption = None,
    as_json: JsonOption = False,
    unsafe_without_root: Annotated[
        bool,
        typer.Option(
            "--unsafe-without-root",
            help="UNSAFE: without --root, check only the tree head's signature against the certificate it carries.",
        ),
    ] = False,
    unsafe_no_revocation: UnsafeNoRevocationOption = False,
) -> None:
    """Verify a saved proof on its own: entry → leaf hash → audit path → root → the signed tree head."""
    from gwexchange.archive.audit_proof import check_proof
    from gwexchange.archive.treehead import format_head_time

    trust = None
    if root is not None:
        try:
            root_cert = x509.load_pem_x509_certificate(read(root))
            crls = tuple(x509.load_pem_x509_crl(read(p)) for p in crl or [])
        except ValueError as e:
            raise ConfigError(f"cannot read the root certificate or CRL: {e}") from e
        if not crls and not unsafe_no_revocation:
            raise ConfigError(
                "give the root's CRL (--crl), or check without revocation by asking: --unsafe-no-revocation"
            )
        trust = TrustPolicy(root_cert, crls, unsafe_skip_revocation=not crls)
    elif not unsafe_without_root:
        raise ConfigError(
            "give the root certificate (--root), or check the signature alone by asking: --unsafe-without-root"
        )
    checked = check_proof(read(file), trust, unsafe_without_root=unsafe_without_root)
    proof = checked.proof
    if as_json:
        emit_json(
            {
                "ok": True,
                "message_id": proof.message_id,
                "node": proof.node_id,
                "leaf_index": proof.leaf_index,
                "tree_size": proof.tree_size,
                "root_hash": proof.root_hash.hex(),
                "tree_head_time": proof.head.time_text,
                "signer_checked_against_root": checked.signer_trusted,
                "revocation_checked": bool(trust is not None and trust.check_revocation),
            }
        )
        return
    typer.echo(
        f"证明成立：消息 {proof.message_id} 是节点 {proof.node_id} 日志第 {proof.leaf_index} 条，"
        f"包含于规模 {proof.tree_size}、根 {proof.root_hash.hex()} 的树中"
    )
    typer.echo(f"树头签署于 {format_head_time(proof.head.timestamp)}，签名已验证")
    if not checked.signer_trusted:
        typer.echo("注意：未指定 --root，仅验证了树头签名与其所附证书相符，未核对证书是否由安全中心签发")
    elif not trust or not trust.check_revocation:
        typer.echo("注意：未提供证书吊销列表（--crl），未检查证书吊销")


__all__ = [
    "PROGRESS_FROM",
    "AuditCrlOption",
    "AuditRootOption",
    "PathsArg",
    "SourceArg",
    "UnsafeNoRevocationOption",
    "WorkersOption",
    "audit_app",
    "check_proof_command",
    "export_command",
    "prove_command",
    "report_command",
    "verify_command",
]
