"""What an audit reports: each check, each finding, the rows of documents and receipts, the figures, and the
options an audit runs with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from gwexchange.archive.merkle import (
    EMPTY_ROOT,
)
from gwexchange.archive.treehead import (
    SignedTreeHead,
)
from gwexchange.envelope.times import format_utc


class Check(StrEnum):
    """What failed. The value is for scripts (``--json``); ``label`` for people."""

    ARCHIVE = "archive"
    LOG = "log"
    TREE_HEAD = "tree-head"
    ENVELOPE = "envelope"
    DIRECTORY = "directory"
    RECEIPT = "receipt"
    DOCUMENT = "document"
    COMPLETENESS = "completeness"
    DELIVERY = "delivery"
    PEER_HEAD = "peer-head"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Check.ARCHIVE: "归档",
    Check.LOG: "日志结构",
    Check.TREE_HEAD: "树头",
    Check.ENVELOPE: "信封签名",
    Check.DIRECTORY: "交换目录",
    Check.RECEIPT: "回执",
    Check.DOCUMENT: "收文",
    Check.COMPLETENESS: "回执完整性",
    Check.DELIVERY: "送达",
    Check.PEER_HEAD: "节点间一致性",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed check: at which node, which check, and where — entry ``index`` (for tree heads and peer heads:
    the line of the file, from 0), its ``message_id``, the ``recipient`` concerned, the ``peer`` whose view it is."""

    node: str
    check: Check
    message: str
    index: int | None = None
    message_id: str | None = None
    recipient: str | None = None
    peer: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "check": self.check.value,
            "index": self.index,
            "message_id": self.message_id,
            "recipient": self.recipient,
            "peer": self.peer,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = []
        if self.check in (Check.TREE_HEAD, Check.PEER_HEAD):
            if self.index is not None:
                where.append(f"第 {self.index} 行")
        elif self.index is not None:
            where.append(f"条目 {self.index}")
        if self.message_id:
            where.append(self.message_id)
        if self.recipient:
            where.append(f"收文机关 {self.recipient}")
        place = f"（{'，'.join(where)}）" if where else ""
        return f"[{self.node}] {self.check.label}{place}：{self.message}"


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """A document envelope in a node's log, and where each recipient stands by the receipts in that log."""

    index: int
    message_id: str
    sender_department: str
    sender_node: str
    recipients: tuple[str, ...]
    classification: str
    created: datetime
    role: str  # 发出, 收到, 转发 (joined with 、 when several)
    states: tuple[tuple[str, str], ...]  # (recipient, 送达/签收/退回/投递失败/无回执)

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "message_id": self.message_id,
            "sender_department": self.sender_department,
            "sender_node": self.sender_node,
            "recipients": list(self.recipients),
            "classification": self.classification,
            "created": format_utc(self.created),
            "role": self.role,
            "states": dict(self.states),
        }


@dataclass(frozen=True, slots=True)
class ReceiptRow:
    """A receipt envelope in a node's log: what it answers, who answered, when."""

    index: int
    message_id: str
    answers: str
    kind: str
    answerer: str
    time: datetime
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "message_id": self.message_id,
            "answers": self.answers,
            "kind": self.kind,
            "answerer": self.answerer,
            "time": format_utc(self.time),
            "reason": self.reason,
        }


@dataclass
class AuditStats:
    """Where the time went. ``signature_seconds`` is the entries' signature checks (envelope, receipt and
    document signatures, with the XML parsing and canonicalization they need); ``log_seconds`` is
    ``verify_log`` (the structure, and the tree heads' signatures)."""

    entries: int = 0
    envelope_signatures: int = 0
    receipt_signatures: int = 0
    document_signatures: int = 0
    head_signatures: int = 0
    log_seconds: float = 0.0
    signature_seconds: float = 0.0
    total_seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in self.__dict__.items()}


@dataclass
class NodeAudit:
    """What the audit found in one node's archive."""

    node_id: str
    label: str
    kind: str
    snapshot: datetime
    entries: int = 0
    root: bytes = EMPTY_ROOT
    committed: int | None = None
    heads: int = 0
    latest_head: SignedTreeHead | None = None
    inbox: int = 0
    directories: list[tuple[int, datetime, datetime]] = field(default_factory=list)
    documents: list[DocumentRow] = field(default_factory=list)
    receipts: list[ReceiptRow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def uncovered(self) -> int:
        """Entries after the latest signed head: in the log, not yet vouched for by a signature."""
        return self.entries - (self.latest_head.size if self.latest_head is not None else 0)

    def as_json(self) -> dict[str, Any]:
        head = self.latest_head
        return {
            "node": self.node_id,
            "source": self.label,
            "kind": self.kind,
            "snapshot": self.snapshot.isoformat(),
            "entries": self.entries,
            "root": self.root.hex(),
            "committed": self.committed,
            "heads": self.heads,
            "latest_head": None
            if head is None
            else {"size": head.size, "root": head.root_hash.hex(), "time": head.time_text},
            "uncovered_entries": self.uncovered,
            "inbox_documents": self.inbox,
            "directories": [
                {"serial": s, "issued": format_utc(a), "expires": format_utc(b)} for s, a, b in self.directories
            ],
            "documents": [d.as_json() for d in self.documents],
            "receipts": [r.as_json() for r in self.receipts],
        }


@dataclass
class AuditReport:
    """The audit of one or more nodes: ``ok`` only if every check of every node passed."""

    at: datetime
    root_given: bool
    revocation_checked: bool
    nodes: list[NodeAudit]
    findings: list[Finding]
    notes: list[str]
    stats: AuditStats
    findings_not_listed: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings and not self.findings_not_listed

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "at": self.at.isoformat(),
            "root": "given" if self.root_given else "archive",
            "revocation_checked": self.revocation_checked,
            "nodes": [n.as_json() for n in self.nodes],
            "findings": [f.as_json() for f in self.findings],
            "findings_not_listed": self.findings_not_listed,
            "notes": self.notes,
            "stats": self.stats.as_json(),
        }

    def summary(self) -> list[str]:
        """The human summary, in Chinese: a line per node, every failure, the notes, the verdict."""
        lines = [f"审计时间：{format_utc(self.at.replace(microsecond=0))}"]
        for n in self.nodes:
            head = n.latest_head
            signed = f"最新树头 {head.size} 条（{head.time_text}）" if head else "无签名树头"
            failed = sum(1 for f in self.findings if f.node == n.node_id)
            lines.append(
                f"节点 {n.node_id}（{'节点目录' if n.kind == 'home' else '归档文件'} {n.label}）：日志 {n.entries} 条，"
                f"根 {n.root.hex()[:16]}…，{signed}；公文 {len(n.documents)} 件，回执 {len(n.receipts)} 份，"
                f"收件箱 {n.inbox} 件 — {'通过' if failed == 0 else f'{failed} 项未通过'}"
            )
        for f in self.findings:
            lines.append(f"  ✗ {f}")
        if self.findings_not_listed:
            lines.append(f"  … 另有 {self.findings_not_listed} 项未列出")
        lines += [f"  注：{note}" for note in self.notes]
        total = len(self.findings) + self.findings_not_listed
        lines.append("结论：全部检查通过" if self.ok else f"结论：未通过（{total} 项问题）")
        return lines


Progress = Callable[[str, str, int, int], None]
"""``progress(node, phase, done, total)``: called as the audit goes (phase: 日志结构, 信封, 收件箱); ``total`` is
the log's committed size for 日志结构 (which reports its start and end only) and its entries for 信封."""


@dataclass(frozen=True)
class AuditOptions:
    """``at`` is the auditor's clock (CRLs must be current then); ``root`` (PEM), if given, is trusted instead of
    each archive's own root.crt; ``crls`` (PEM) are added to the archives' own; ``workers`` > 1 checks signatures
    in that many processes."""

    at: datetime | None = None
    root: bytes | None = None
    crls: tuple[bytes, ...] = ()
    progress: Progress | None = None
    max_findings: int = 10_000
    workers: int = 1
    """Processes that check the entries' signatures (the costly part) when a log has ``parallel_from`` entries."""
    parallel_from: int = 2000
    unsafe_no_revocation: bool = False
    """Audit an archive that holds no CRL (and none given) without revocation checks, rather than refuse it."""


__all__ = [
    "AuditOptions",
    "AuditReport",
    "AuditStats",
    "Check",
    "DocumentRow",
    "Finding",
    "NodeAudit",
    "Progress",
    "ReceiptRow",
]
