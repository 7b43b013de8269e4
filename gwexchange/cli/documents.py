"""gwx show and gwx export: one document of a department's inbox or outbox, by message id."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gwexchange import xmlsafe
from gwexchange.cli.common import JsonOption, emit_json, to_json
from gwexchange.cli.doc import document_lines
from gwexchange.cli.node import DepartmentOption, NodeHomeOption, department_of, open_home
from gwexchange.envelope.xmlform import document_from_element
from gwexchange.errors import InputError

MessageIdArg = Annotated[str, typer.Argument(help="The message id (报文编号) that gwx send, outbox or inbox printed.")]
_INBOX_STATES = {"new": "待签收", "signed-for": "已签收", "returned": "已退回"}
_RECEIPTS = {"delivered": "送达", "signed-for": "签收", "returned": "退回", "failed": "投递失败"}


def _utc(text: str) -> str:
    return text[:19].replace("T", " ") + " UTC"


def _find(home: Path, message_id: str, department: str | None) -> dict[str, Any]:
    """The message as the node knows it: the received document (inbox) or what was sent (outbox)."""
    from gwexchange.routing.context import open_store
    from gwexchange.routing.home import NodeConfig

    with open_store(NodeConfig.load(home)) as store:
        received = [e for e in store.inbox(department) if e.message_id == message_id]  # one per department served here
        sent = next((v for v in store.outbox() if v.message_id == message_id), None)
        if sent is not None and department is not None and sent.sender_department != department:
            sent = None
        sent_info = store.sent(message_id) if sent is not None else None
        receipts = store.receipts(message_id)
    if not received and sent is None:
        where = f"the inbox or outbox of {department}" if department else "this node's inboxes or outboxes"
        raise InputError(f"message {message_id} is not in {where} (see gwx inbox / gwx outbox)")
    found: dict[str, Any] = {"message_id": message_id}
    if received:
        entry = received[0]
        found["received"] = [
            {
                "department": e.department,
                "sender_department": e.sender_department,
                "classification": e.classification,
                "received_at": e.received_at.isoformat(),
                "state": e.state,
                "reason": e.reason,
                "answered_at": e.answered_at.isoformat() if e.answered_at else None,
            }
            for e in received
        ]
        found["document"] = to_json(document_from_element(xmlsafe.parse(entry.document_xml)))
        found["_document_xml"] = entry.document_xml
    if sent is not None:
        paths = sent_info.paths if sent_info is not None else {}
        found["sent"] = {
            "sender_department": sent.sender_department,
            "created": sent.created.isoformat(),
            "recipients": [
                {
                    "recipient": code,
                    "state": state.value,
                    "since": since.isoformat(),
                    "route": list(paths.get(code, ())),
                }
                for code, state, since in sent.recipients
            ],
        }
    found["receipts"] = [
        {"kind": r.kind, "answerer": r.answerer, "received_at": r.received_at.isoformat(), "sha256": r.sha256}
        for r in receipts
    ]
    return found


def show(
    message_id: MessageIdArg,
    home: NodeHomeOption,
    department: DepartmentOption = None,
    as_json: JsonOption = False,
) -> None:
    """One document: received — the whole 公文 and its state; sent — each recipient's state and route."""
    found = _find(home, message_id, department)
    document_xml = found.pop("_document_xml", None)
    if as_json:
        emit_json(found)
        return
    typer.echo(f"报文编号：{message_id}")
    for r in found.get("received", []):
        state = _INBOX_STATES.get(r["state"], r["state"])
        reason = f"（理由：{r['reason']}）" if r["reason"] else ""
        typer.echo(
            f"收文：{r['department']} ← {r['sender_department']}  {state}{reason}  收到于 {_utc(r['received_at'])}"
        )
    if document_xml is not None:
        typer.echo("")
        for line in document_lines(document_from_element(xmlsafe.parse(document_xml))):
            typer.echo(line)
        typer.echo("")
    sent = found.get("sent")
    if sent is not None:
        typer.echo(f"发文：{sent['sender_department']}  发出于 {_utc(sent['created'])}")
        for r in sent["recipients"]:
            route = " → ".join(r["route"]) if r["route"] else "本节点"
            typer.echo(f"  → {r['recipient']}：{r['state']}（{_utc(r['since'])}）  路由 {route}")
    for r in found["receipts"]:
        typer.echo(f"回执：{_RECEIPTS.get(r['kind'], r['kind'])}  来自 {r['answerer']}  {_utc(r['received_at'])}")


def export(
    message_id: MessageIdArg,
    home: NodeHomeOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="The folder to write to (created; must not clash).")],
    department: DepartmentOption = None,
) -> None:
    """Write a received document to a folder: the signed XML and its attachments, verified again."""
    from gwexchange.routing.clerk import export_document

    ctx = open_home(home)
    try:
        code = department_of(ctx, department)
        written = export_document(ctx, code, message_id, output)
    finally:
        ctx.close()
    typer.echo(f"已导出 {message_id} 到 {output}：")
    for path in written:
        typer.echo(f"  {path.name}（{path.stat().st_size} 字节）")


__all__ = [
    "MessageIdArg",
    "export",
    "show",
]
