"""gwx node (init, run, status) and the clerk's commands on a node home: send, outbox, inbox, sign-for, return."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gwexchange import xmlsafe
from gwexchange.cli.common import JsonOption, emit_json, now, parse_duration
from gwexchange.envelope.description import load_description_file
from gwexchange.envelope.receipts import ReceiptKind
from gwexchange.envelope.xmlform import document_from_element
from gwexchange.errors import ConfigError, GwxError, InputError
from gwexchange.files import read_file

if TYPE_CHECKING:
    from gwexchange.routing.context import NodeContext

node_cli = typer.Typer()
node_app = typer.Typer(help="交换节点：初始化、运行、查看状态。", no_args_is_help=True)
node_cli.add_typer(node_app, name="node")

NodeHomeArg = Annotated[Path, typer.Argument(help="The node home (node.toml, node.db, parts/).")]
NodeHomeOption = Annotated[
    Path, typer.Option("--home", help="The node home of your department's node.", envvar="GWX_NODE_HOME")
]
DepartmentOption = Annotated[
    str | None,
    typer.Option(
        "--department", help="Your department's code (default: the node's only department).", envvar="GWX_DEPARTMENT"
    ),
]


def _department_entry(values: Iterable[str]) -> dict[str, Path]:
    departments: dict[str, Path] = {}
    for value in values:
        code, sep, folder = value.partition("=")
        if not sep or not code or not folder:
            raise InputError(f"--department takes CODE=KEYFOLDER, not {value!r}")
        departments[code.strip()] = Path(folder.strip())
    return departments


@node_app.command("init")
def node_init(
    home: NodeHomeArg,
    node_id: Annotated[str, typer.Option("--node-id", help="This node's id (as in the directory).")],
    listen: Annotated[str, typer.Option(help="host:port to listen on (port 0: any free port).")],
    directory: Annotated[Path, typer.Option(help="The signed directory.")],
    root: Annotated[Path, typer.Option(help="Root certificate (root.crt).")],
    node_keys: Annotated[Path, typer.Option("--node-keys", help="The node's key folder (node.key, node.crt).")],
    crl: Annotated[list[Path] | None, typer.Option(help="CRL signed by the root (repeatable).")] = None,
    department: Annotated[
        list[str] | None, typer.Option("--department", help="CODE=KEYFOLDER of a department served here (repeatable).")
    ] = None,
    database: Annotated[str | None, typer.Option(help="Database URL; default: SQLite node.db in the home.")] = None,
    tick: Annotated[float | None, typer.Option(help="Seconds between looks at the queue.")] = None,
    retry_base: Annotated[float | None, typer.Option(help="Back-off base in seconds.")] = None,
    retry_cap: Annotated[float | None, typer.Option(help="Back-off cap in seconds.")] = None,
) -> None:
    """Write a node home: node.toml and an empty store (keys, directory and trust are checked now)."""
    from gwexchange.routing.context import init_home

    extra = {
        key: value
        for key, value in (("tick_seconds", tick), ("retry_base_seconds", retry_base), ("retry_cap_seconds", retry_cap))
        if value is not None
    }
    config = init_home(
        home,
        node_id=node_id,
        listen=listen,
        directory=directory,
        root=root,
        crls=crl or [],
        node_keys=node_keys,
        departments=_department_entry(department or []),
        database=database,
        extra=extra,
    )
    typer.echo(f"已初始化节点 {node_id}：{config}")


@node_app.command("run")
def node_run(home: NodeHomeArg) -> None:
    """Run the node in the foreground (SMTP listener and delivery); SIGTERM or Ctrl-C stops it cleanly."""
    from gwexchange.routing.node import run_node

    run_node(home)


@node_app.command("update-directory")
def node_update_directory(
    home: NodeHomeArg,
    file: Annotated[Path, typer.Argument(help="The newer signed directory the security centre published.")],
) -> None:
    """Take a newer signed directory (refused if older, altered or expired); a running node switches at once and
    passes it on to its peers with the next envelope it sends them."""
    from gwexchange.routing.control import update_directory

    serial, told = update_directory(home, read_file(file, "the directory"))
    typer.echo(f"已更新交换目录：第 {serial} 版" + ("（运行中的节点已切换）" if told else "（节点启动时生效）"))


@node_app.command("sign-head")
def node_sign_head(home: NodeHomeArg) -> None:
    """Sign a tree head over the node's log now (the running daemon does it; otherwise this command)."""
    from gwexchange.routing.control import sign_head_now

    head = sign_head_now(home)
    typer.echo(f"已签名树头：{head.size} 条，根 {head.root_hash.hex()}，时间 {head.time_text}")


@node_app.command("status")
def node_status(home: NodeHomeArg, as_json: JsonOption = False) -> None:
    """Queue sizes by state, peers, last errors, inbox and outbox counts."""
    from gwexchange.routing.control import status

    data = status(home)
    if as_json:
        emit_json(data)
        return
    running = data["running"]
    typer.echo(f"节点：{data['node_id']}  监听：{data['listen']}")
    typer.echo(
        f"运行：{'是（pid ' + str(running['pid']) + '，端口 ' + str(running['port']) + '）' if running else '否'}"
    )
    typer.echo("队列：" + ("、".join(f"{k} {v}" for k, v in data["queue"].items()) or "空"))
    typer.echo(f"交换目录：第 {data['directory_serial']} 版")
    merkle = data["log"]
    head = merkle["latest_head"]
    signed = f"，最新签名树头 {head['size']} 条（{head['time']}）" if head else "，尚无签名树头"
    typer.echo(f"日志：{merkle['size']} 条{signed}；持有对端树头：{'、'.join(merkle['peer_heads']) or '无'}")
    for alarm in merkle["peer_head_alarms"]:
        typer.echo(f"告警：节点 {alarm['node']} 的签名树头与它此前的树头矛盾（{alarm['what']}）：请交审计核查")
    for peer in data["peers"]:
        typer.echo(f"相邻节点：{peer['node']}  {peer['endpoint']}（{peer['zone']}）")
    for code, counts in data["inbox"].items():
        typer.echo(f"收件箱 {code}：" + "、".join(f"{k} {v}" for k, v in counts.items()))
    if data["outbox"]:
        typer.echo("发件箱：" + "、".join(f"{k} {v}" for k, v in data["outbox"].items()))
    for e in data["last_errors"]:
        typer.echo(f"错误：{e['message_id']} → {e['next_hop']}（第 {e['attempts']} 次，{e['state']}）：{e['error']}")


# --- the clerk's commands --------------------------------------------------------------------------------------


def open_home(home: Path) -> NodeContext:
    from gwexchange.routing.context import load_context
    from gwexchange.routing.home import NodeConfig

    return load_context(NodeConfig.load(home))


def department_of(ctx: NodeContext, department: str | None) -> str:
    served = sorted(ctx.view.departments)
    if department is None:
        if len(served) != 1:
            raise ConfigError(
                f"node {ctx.config.node_id} serves {'、'.join(served) or 'no department'}: give --department"
            )
        return served[0]
    if department not in ctx.view.departments:
        raise ConfigError(
            f"department {department} is not served by node {ctx.config.node_id} (its keys are not configured)"
        )
    return department


@node_cli.command("send")
def send(
    home: NodeHomeOption,
    description: Annotated[
        Path | None, typer.Argument(help="The clerk's TOML description of the document (or give --signed).")
    ] = None,
    signed: Annotated[
        Path | None,
        typer.Option(
            "--signed", help="A document XML its issuers signed in turn (gwx doc sign): a joint document (联合发文)."
        ),
    ] = None,
    department: DepartmentOption = None,
    departments: Annotated[
        Path | None, typer.Option(help="Department list (codes to names); default: departments.toml beside it.")
    ] = None,
    attachments: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the attachment files; default: as the description names them, or beside --signed."
        ),
    ] = None,
    lifetime: Annotated[
        str,
        typer.Option(help="How long the envelope may travel before 投递失败 is returned: 90s, 30m, 12h, 7d."),
    ] = "7d",
) -> None:
    """Draft, sign, route-check, seal and queue a document; prints its message id."""
    from gwexchange.routing.clerk import attachment_files, send_document, send_signed

    if (description is None) == (signed is None):
        raise InputError("give either the document's TOML description or --signed with its signed XML")
    travel = parse_duration(lifetime, "--lifetime")
    ctx = open_home(home)
    try:
        code = department_of(ctx, department)
        if description is not None:
            doc = load_description_file(description, departments)
            files = attachment_files(description, attachments)
            sent = send_document(ctx, code, doc, files, at=now(), lifetime=travel)
        elif signed is not None:
            xml = read_file(signed, "the signed document")
            files = attachment_files(signed, attachments or signed.parent)
            sent = send_signed(ctx, code, xml, files, at=now(), lifetime=travel)
    finally:
        ctx.close()
    typer.echo(sent.message_id)


@node_cli.command("outbox")
def outbox(home: NodeHomeOption, department: DepartmentOption = None, as_json: JsonOption = False) -> None:
    """What your department sent: each document × recipient, and where it stands."""
    from gwexchange.routing.context import open_store
    from gwexchange.routing.home import NodeConfig

    config = NodeConfig.load(home)
    with open_store(config) as store:
        views = [v for v in store.outbox() if department is None or v.sender_department == department]
    rows = [
        {
            "message_id": v.message_id,
            "sender_department": v.sender_department,
            "recipient": recipient,
            "state": state.value,
            "since": since.isoformat(),
        }
        for v in views
        for recipient, state, since in v.recipients
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo("发件箱为空")
        return
    typer.echo(f"{'报文编号':<36}  {'发文机关':<16}  {'收文机关':<16}  {'状态':<10}  更新时间（UTC）")
    for r in rows:
        typer.echo(
            f"{r['message_id']:<36}  {r['sender_department']:<20}  {r['recipient']:<20}  {r['state']:<12}  "
            f"{r['since'][:19].replace('T', ' ')}"
        )


@node_cli.command("inbox")
def inbox(home: NodeHomeOption, department: DepartmentOption = None, as_json: JsonOption = False) -> None:
    """What your department received: message id, sender, title, state."""
    from gwexchange.routing.context import open_store
    from gwexchange.routing.home import NodeConfig

    config = NodeConfig.load(home)
    with open_store(config) as store:
        entries = store.inbox(department)
    rows = []
    for e in entries:
        try:
            doc = document_from_element(xmlsafe.parse(e.document_xml))
            title, number = doc.title, doc.doc_number.text
        except GwxError:
            title, number = "", ""
        rows.append(
            {
                "department": e.department,
                "message_id": e.message_id,
                "sender_department": e.sender_department,
                "doc_number": number,
                "title": title,
                "classification": e.classification,
                "received_at": e.received_at.isoformat(),
                "state": e.state,
                "reason": e.reason,
            }
        )
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo("收件箱为空")
        return
    states = {"new": "待签收", "signed-for": "已签收", "returned": "已退回"}
    for r in rows:
        typer.echo(
            f"{r['message_id']}  {r['department']} ← {r['sender_department']}  {r['doc_number']}《{r['title']}》  "
            f"{r['classification']}  {states.get(str(r['state']), r['state'])}  {str(r['received_at'])[:19]}"
        )


def _answer(home: Path, department: str | None, message_id: str, kind: ReceiptKind, reason: str | None) -> str:
    from gwexchange.routing import node_logic

    ctx = open_home(home)
    try:
        code = department_of(ctx, department)
        item = ctx.store.inbox_item(code, message_id)  # NotFoundError names the message and the inbox
        ctx.store.apply(node_logic.answer(item, kind, ctx.view, ctx.store, now(), reason=reason))
        return code
    finally:
        ctx.close()


@node_cli.command("sign-for")
def sign_for(
    message_id: Annotated[str, typer.Argument(help="The message id from 'gwx inbox'.")],
    home: NodeHomeOption,
    department: DepartmentOption = None,
) -> None:
    """签收: sign for a document in the inbox; the signed receipt goes back to the sender."""
    code = _answer(home, department, message_id, ReceiptKind.SIGNED_FOR, None)
    typer.echo(f"已签收：{message_id}（{code}），签收回执已发出")


@node_cli.command("return")
def return_(
    message_id: Annotated[str, typer.Argument(help="The message id from 'gwx inbox'.")],
    home: NodeHomeOption,
    reason: Annotated[str, typer.Option(help="Why it is returned.")],
    department: DepartmentOption = None,
) -> None:
    """退回: return a document in the inbox, with the reason; the signed receipt goes back to the sender."""
    code = _answer(home, department, message_id, ReceiptKind.RETURNED, reason)
    typer.echo(f"已退回：{message_id}（{code}），退回回执已发出")


# --- air gaps: bundles on removable media ---------------------------------------------------------------------

bundle_app = typer.Typer(help="隔离网络：把待发往相邻节点的信封导出为一个文件，或在另一侧导入。", no_args_is_help=True)
node_cli.add_typer(bundle_app, name="bundle")


@bundle_app.command("export")
def bundle_export(
    home: NodeHomeOption,
    peer: Annotated[str, typer.Option("--peer", help="The node the bundle is for (the next hop).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The bundle file to write.")],
) -> None:
    """Write every envelope queued for PEER into one bundle file; they count as sent once it is written."""
    from gwexchange.routing.bundle import export_bundle

    ctx = open_home(home)
    try:
        report = export_bundle(ctx.store, ctx.view, peer, output, now())
    finally:
        ctx.close()
    typer.echo(f"已导出 {len(report.message_ids)} 封信封：{ctx.config.node_id} → {peer}，文件 {output}")


@bundle_app.command("import")
def bundle_import(
    file: Annotated[Path, typer.Argument(help="The bundle file.")],
    home: NodeHomeOption,
    as_json: JsonOption = False,
) -> None:
    """Take in the envelopes of a bundle, each with the checks, dedup and receipts of an SMTP delivery."""
    from gwexchange.routing.bundle import import_bundle

    ctx = open_home(home)
    try:
        report = import_bundle(file, ctx.store, ctx.view, now())
    finally:
        ctx.close()
    if as_json:
        emit_json(report.as_json())
        return
    typer.echo(
        f"已导入 {report.from_node} → {report.to_node} 的交换包：接收 {len(report.accepted)} 封，"
        f"重复 {len(report.duplicates)} 封，拒收 {len(report.refused)} 封"
    )
    for mid, reason in report.refused:
        typer.echo(f"拒收：{mid}：{reason}")


__all__ = [
    "DepartmentOption",
    "NodeHomeArg",
    "NodeHomeOption",
    "bundle_app",
    "bundle_export",
    "bundle_import",
    "department_of",
    "inbox",
    "node_app",
    "node_cli",
    "node_init",
    "node_run",
    "node_sign_head",
    "node_status",
    "node_update_directory",
    "open_home",
    "outbox",
    "return_",
    "send",
    "sign_for",
]
