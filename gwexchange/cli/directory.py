"""gwx directory: the security centre compiles, signs and shows the exchange directory; anyone computes routes."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Annotated, Any

import typer

from gwexchange.cli.common import (
    JsonOption,
    emit_json,
    now,
    read,
    trust_policy,
)
from gwexchange.crypto.certificates import identity_of
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.model import Classification
from gwexchange.envelope.times import format_utc
from gwexchange.errors import ConfigError
from gwexchange.files import atomic_write
from gwexchange.network.directory import Directory, authority_code_of, check_certificates
from gwexchange.network.directory_toml import compile_directory
from gwexchange.network.directory_xml import (
    VerifiedDirectory,
    directory_to_xml,
    read_unverified_directory,
    sign_directory_xml,
    verify_directory,
)
from gwexchange.network.routes import RoutePlan, format_path, plan
from gwexchange.pki.keyfiles import KEY_PASSPHRASE_ENV, load_keypair

directory_app = typer.Typer(help="交换目录：编译、签名、查看安全中心发布的目录，按密级计算路由。", no_args_is_help=True)

OptionalRoot = Annotated[
    Path | None,
    typer.Option("--root", help="Root certificate (root.crt): verify the directory's signature.", envvar="GWX_ROOT"),
]
OptionalCrl = Annotated[
    list[Path] | None, typer.Option("--crl", help="CRL signed by the root (repeatable).", envvar="GWX_CRL")
]
DirectoryFile = Annotated[Path, typer.Argument(help="A directory XML (signed, or as built).")]


@directory_app.command("build")
def build(
    source: Annotated[Path, typer.Argument(help="The directory written as TOML, e.g. network.toml.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Directory XML to write (unsigned).")] = None,
    root: OptionalRoot = None,
    crl: OptionalCrl = None,
) -> None:
    """Compile and check a directory from TOML (certificates relative to it); with --root, check they chain."""
    folder = source.parent
    try:
        text = read(source).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source} is not UTF-8") from e
    directory = compile_directory(text, lambda name: read(folder / name), now=now())
    if root is not None:
        check_certificates(directory, trust_policy(root, crl, unsafe_no_revocation=False), at=now())
    out = output or source.with_suffix(".xml")
    atomic_write(out, directory_to_xml(directory))
    typer.echo(
        f"已编译交换目录第 {directory.serial} 版：{len(directory.departments)} 个机关，{len(directory.nodes)} 个节点，"
        f"{len(directory.links)} 条链路，有效至 {format_utc(directory.expires)}"
    )
    if root is not None:
        typer.echo("所有证书均由根证书签发，当前有效")
    typer.echo(f"已写入 {out}（未签名：用 gwx directory sign 签名后发布）")


@directory_app.command("sign")
def sign(
    file: Annotated[Path, typer.Argument(help="The unsigned directory XML that 'gwx directory build' wrote.")],
    keys: Annotated[
        Path,
        typer.Option(
            "--keys", help="The authority's signing key folder (signing.key, signing.crt), e.g. ca/issued/gd.gov.ca."
        ),
    ],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Signed directory to write.")] = None,
    root: OptionalRoot = None,
    crl: OptionalCrl = None,
) -> None:
    """Sign a built directory as the security centre (key passphrase from $GWX_KEY_PASSPHRASE).

    With --root the signing certificate must be the authority's own (its code is the root's) and the signed
    directory is verified before it is written.
    """
    key, cert = load_keypair(keys, "signing", KEY_PASSPHRASE_ENV)
    trust = trust_policy(root, crl, unsafe_no_revocation=False) if root is not None else None
    authority = authority_code_of(trust.root) if trust is not None else None
    signed = sign_directory_xml(read(file), Signer(key, cert), authority_code=authority)
    if trust is not None and authority is not None:
        verify_directory(signed, trust, authority_code=authority, now=now(), held=None)
    out = output or file.with_name(file.name.removesuffix(".xml") + ".signed.xml")
    atomic_write(out, signed)
    identity = identity_of(cert)
    typer.echo(f"已由 {identity.name}（{identity.code}）签名：{out}")


@directory_app.command("show")
def show(
    file: DirectoryFile,
    root: OptionalRoot = None,
    crl: OptionalCrl = None,
    as_json: JsonOption = False,
) -> None:
    """Show a directory: departments, nodes and zones, links, the zone policy; verified when --root is given."""
    directory, verified = _load(file, root, crl)
    if as_json:
        emit_json(_directory_json(directory, verified))
        return
    issued, expires = format_utc(directory.issued), format_utc(directory.expires)
    typer.echo(f"交换目录 第 {directory.serial} 版  签发 {issued}  有效至 {expires}")
    if verified is not None:
        who = verified.signer_identity
        typer.echo(f"签名：有效，由 {who.name}（{who.code}）签发")
    else:
        typer.echo("签名：未验证（给出 --root 与 --crl 以验证）")
    typer.echo("\n密级策略（各网络可传输的最高密级）：")
    for zone, limit in directory.policy.limits.items():
        typer.echo(f"  {zone}  最高 {limit}")
    typer.echo(f"\n节点（{len(directory.nodes)}）：")
    for node in directory.nodes:
        typer.echo(f"  {_pad(node.node_id, 10)} {node.zone}  {_pad(node.smtp_endpoint, 34)} {node.name}")
    typer.echo(f"\n机关（{len(directory.departments)}）：")
    for dept in directory.departments:
        typer.echo(f"  {_pad(dept.code, 16)} {_pad(dept.name, 24)} 节点 {dept.home_node}")
    typer.echo(f"\n链路（{len(directory.links)}）：")
    for link in directory.links:
        limit = directory.policy.limit(link.zone)
        typer.echo(f"  {_pad(f'{link.a} — {link.b}', 22)} {link.zone}  最高 {limit}")


@directory_app.command("route")
def route(
    file: DirectoryFile,
    sender: Annotated[str, typer.Option("--from", help="Sending node id, or a department (its home node).")],
    to: Annotated[list[str], typer.Option("--to", help="Recipient department code (repeatable, or comma-separated).")],
    classification: Annotated[Classification, typer.Option(help="密级 of the document.")],
    root: OptionalRoot = None,
    crl: OptionalCrl = None,
    as_json: JsonOption = False,
) -> None:
    """Compute the routes a document of this 密级 takes from a node to its recipients, and where it fans out."""
    directory, _ = _load(file, root, crl)
    sender_node = sender
    if directory.find_node(sender) is None and (dept := directory.find_department(sender)) is not None:
        sender_node = dept.home_node
    recipients = [code.strip() for item in to for code in item.split(",") if code.strip()]
    routes = plan(directory, sender_node, recipients, classification)
    if as_json:
        emit_json(_plan_json(routes))
        return
    typer.echo(f"路由：{classification}文件，自节点 {sender_node} 发出，共 {len(recipients)} 个收文机关")
    for code in routes.recipients:
        name = directory.department(code).name
        path = routes.path(code)
        hops = "本节点投递" if len(path) == 1 else f"{len(path) - 1} 跳"
        typer.echo(f"  {_pad(code, 16)} {_pad(name, 22)} {format_path(directory, path)}（{hops}）")
    typer.echo(f"\n分发树（信封沿共同路径只传一次，在路径分岔处分发；共 {len(routes.edges)} 次传输）：")
    for line in _tree_lines(directory, routes, sender_node, "", None):
        typer.echo(f"  {line}")


def _load(file: Path, root: Path | None, crl: list[Path] | None) -> tuple[Directory, VerifiedDirectory | None]:
    data = read(file)
    if root is None:
        return read_unverified_directory(data), None
    trust = trust_policy(root, crl, unsafe_no_revocation=False)
    verified = verify_directory(data, trust, authority_code=authority_code_of(trust.root), now=now(), held=None)
    return verified.directory, verified


def _tree_lines(directory: Directory, routes: RoutePlan, node: str, indent: str, zone: str | None) -> list[str]:
    delivered = routes.delivered_at(node)
    label = node + (f"（{zone}）" if zone else "") + (f" → {'、'.join(delivered)}" if delivered else "")
    lines = [label]
    onward = list(routes.next_hops(node).items())
    for i, (next_node, _) in enumerate(onward):
        last = i == len(onward) - 1
        link = directory.link_between(node, next_node)
        below = _tree_lines(directory, routes, next_node, "", link.zone if link else None)
        lines.append(("└─ " if last else "├─ ") + below[0])
        lines.extend(("   " if last else "│  ") + line for line in below[1:])
    return [indent + line for line in lines]


def _pad(text: str, width: int) -> str:
    """Pad to ``width`` terminal columns (a CJK character takes two)."""
    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(width - used, 0)


def _directory_json(directory: Directory, verified: VerifiedDirectory | None) -> dict[str, Any]:
    return {
        "serial": directory.serial,
        "issued": format_utc(directory.issued),
        "expires": format_utc(directory.expires),
        "verified": verified is not None,
        "signer": verified.signer_identity.code if verified else None,
        "sha256": verified.digest if verified else None,
        "policy": {zone.value: limit.value for zone, limit in directory.policy.limits.items()},
        "nodes": [
            {
                "id": n.node_id,
                "smtp": n.smtp_endpoint,
                "zone": n.zone.value,
                "name": n.name,
                "certificate_serial": f"{n.certificate.serial_number:x}",
            }
            for n in directory.nodes
        ],
        "departments": [
            {
                "code": d.code,
                "name": d.name,
                "node": d.home_node,
                "signing_serial": f"{d.signing_certificate.serial_number:x}",
                "encryption_serial": f"{d.encryption_certificate.serial_number:x}",
            }
            for d in directory.departments
        ],
        "links": [{"nodes": [link.a, link.b], "zone": link.zone.value} for link in directory.links],
    }


def _plan_json(routes: RoutePlan) -> dict[str, Any]:
    return {
        "sender_node": routes.sender_node,
        "classification": routes.classification.value,
        "routes": {code: list(path) for code, path in routes.paths.items()},
        "local": list(routes.local_recipients),
        "next_hops": {
            node: {nxt: list(codes) for nxt, codes in routes.next_hops(node).items()}
            for node in routes.nodes
            if routes.next_hops(node)
        },
    }


__all__ = [
    "DirectoryFile",
    "OptionalCrl",
    "OptionalRoot",
    "build",
    "directory_app",
    "route",
    "show",
    "sign",
]
