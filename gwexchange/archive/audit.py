"""The auditor's checks of one or more nodes' archives (``audit_archive.NodeSource``): what each log proves.

A node's log holds the exact bytes of every envelope it accepted, in order, under tree heads it signed; its peers
hold heads it gave them. From those alone — no store, no daemon, no key but public ones — the audit checks:

* **the log** (``verify_log``): every entry against its leaf hash, the tree from the entries up, every stored
  hash record and the commit point; every tree head the node kept: its signature, its order and its root against
  the root recomputed at its size (two heads whose roots are both the recomputed ones are consistent);
* **every entry** is an envelope whose node signature verifies, the node's certificate validated at the
  envelope's creation time, and that certificate is the one the directory valid at that time lists for the
  node; each message id once; the node is on the envelope's route;
* **every receipt**'s signature, and that it answers a document in the log (not necessarily before it: the
  daemon logs the envelopes one decision accepted in message-id order, a 送达 beside its document), bound to that
  envelope's digest, by a recipient (a department) or a node on the route (投递失败), sent to the document's
  sender; every department's receipt of one document binds the same document digest;
* **documents delivered here**: the signed bytes the node filed verify and are the ones its 送达 names;
* **completeness**: a document this node originated has, for each recipient, a 送达 and then a 签收 or 退回, or
  a 投递失败 from a node on the recipient's route; a document delivered here was answered with 送达 (or 投递失败);
* **across nodes**: every head of node X that another node holds must be X's: its root is the root of X's log
  at that size, X kept it, and a consistency proof from it reaches X's latest head. Otherwise X rewrote its
  history after its peers saw it, and the report says so. Two heads of one node for one size with two roots are
  a fork, whoever holds them.

Each failure is a ``Finding`` naming the node, the check, and where: the entry's index and message id, the
recipient, the head's line. Signature checks are timed apart (``AuditStats``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gwexchange import xmlsafe
from gwexchange.archive.audit_archive import (
    LATE_HEAD_MARGIN,
    InboxDocument,
    NodeSource,
    head_lines,
    iter_entries,
    parse_head,
)
from gwexchange.archive.log import HEADS_FILE, level_file, read_commit
from gwexchange.archive.log_verify import verify_log
from gwexchange.archive.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_root,
    verify_inclusion,
)
from gwexchange.archive.treehead import (
    SignedTreeHead,
    head_to_line,
    parse_head_line,
    verify_consistent_heads,
    verify_tree_head,
)
from gwexchange.codes import is_node_id
from gwexchange.crypto.certificates import identity_of
from gwexchange.crypto.suite import INTERNATIONAL
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.header import MessageKind, RoutingHeader, eq, header_from_element
from gwexchange.envelope.receipts import AnswererRole, Receipt, ReceiptKind, verify_receipt_signature
from gwexchange.envelope.sealing import MAX_ENVELOPE_BYTES, inspect, receipt_content
from gwexchange.envelope.signing import verify_document
from gwexchange.envelope.times import format_utc
from gwexchange.errors import ConfigError, GwxError, InputError, TrustError, VerificationError
from gwexchange.network.directory import Directory, authority_code_of, read_unverified_directory, verify_directory
from gwexchange.network.routes import RoutePlan, plan

_MESSAGE_ID_HINT = re.compile(rb"MessageId>([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})<")
_PROGRESS_EVERY = 1000


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


# --- reading the stored hashes of a log copy ---------------------------------------------------------------------


class LogHashes:
    """The stored hash records of a log copy, read by offset: a ``merkle.NodeReader`` for proofs, read-only."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fds: dict[int, int] = {}

    def node(self, level: int, index: int) -> bytes:
        fd = self._fds.get(level)
        if fd is None:
            try:
                fd = os.open(self.directory / level_file(level), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise VerificationError(f"the log has no {level_file(level)}: its hashes are missing") from None
            self._fds[level] = fd
        data = os.pread(fd, HASH_SIZE, index * HASH_SIZE)
        if len(data) != HASH_SIZE:
            raise VerificationError(f"the log's {level_file(level)} ends before record {index}")
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def numbered_heads(directory: Path) -> Iterator[tuple[int, SignedTreeHead | None]]:
    """``(line, head)`` for each line of a log copy's ``heads`` file; None for a line that does not parse."""
    path = directory / HEADS_FILE
    if not path.is_file():
        return
    with path.open("rb") as f:
        for line, raw in enumerate(head_lines(f)):
            yield line, parse_head(raw.rstrip(b"\n")) if raw.endswith(b"\n") else None


def read_peer_heads(path: Path | None) -> Iterator[tuple[int, bytes, SignedTreeHead | None, str | None]]:
    """``(line, raw, head, error)`` for each line of a ``peer-heads`` file."""
    if path is None or not path.is_file():
        return
    with path.open("rb") as f:
        for line, raw in enumerate(head_lines(f)):
            if not raw.endswith(b"\n"):
                yield line, raw, None, "the line is cut off"
                continue
            try:
                yield line, raw[:-1], parse_head_line(raw[:-1]), None
            except GwxError as e:
                yield line, raw[:-1], None, str(e)
            except RecursionError:
                yield line, raw[:-1], None, "JSON nested too deeply"


# --- trust and directories --------------------------------------------------------------------------------------


def trust_for(source: NodeSource, options: AuditOptions, at: datetime) -> tuple[TrustPolicy, list[Finding]]:
    """The trust policy an archive is audited under: the auditor's root if given (else the archive's), and every
    CRL that root signed. A CRL it did not sign is a finding, not trusted."""
    findings: list[Finding] = []
    try:
        own_root = x509.load_pem_x509_certificate(source.root_pem)
        root = x509.load_pem_x509_certificate(options.root) if options.root is not None else own_root
    except ValueError as e:
        raise ConfigError(f"{source.label}: the root certificate cannot be read: {e}") from e
    if options.root is not None and own_root != root:
        findings.append(
            Finding(source.node_id, Check.ARCHIVE, "节点配置的根证书不是审计员指定的根证书：节点信任另一个安全中心")
        )
    crls = []
    for number, pem in enumerate((*source.crl_pems, *options.crls), 1):
        try:
            crl = x509.load_pem_x509_crl(pem)
        except ValueError:
            findings.append(Finding(source.node_id, Check.ARCHIVE, f"第 {number} 个证书吊销列表无法读取"))
            continue
        if crl.issuer != root.subject or not crl.is_signature_valid(root.public_key()):  # type: ignore[arg-type]
            findings.append(Finding(source.node_id, Check.ARCHIVE, f"第 {number} 个证书吊销列表不是根证书签发的"))
            continue
        crls.append(crl)
    if not (source.crl_pems or options.crls) and not options.unsafe_no_revocation:  # refused ones are findings
        raise ConfigError(
            f"{source.label}: no CRL signed by the root to check revocation with: give one (--crl), or audit "
            "without revocation checks by asking for it (--unsafe-no-revocation)"
        )
    try:
        trust = TrustPolicy(root, tuple(crls), unsafe_skip_revocation=not crls, now=at)
    except ConfigError as e:
        raise ConfigError(f"{source.label}: {e}") from e
    return trust, findings


def read_directories(source: NodeSource, trust: TrustPolicy) -> tuple[list[Directory], list[Finding]]:
    """The archive's directories that the authority signed, each verified as of its own issue time."""
    authority = authority_code_of(trust.root)
    verified: list[Directory] = []
    findings: list[Finding] = []
    for number, xml in enumerate(source.directories, 1):
        try:
            issued = read_unverified_directory(xml).issued
            verified.append(verify_directory(xml, trust, authority_code=authority, now=issued, held=None).directory)
        except GwxError as e:
            findings.append(Finding(source.node_id, Check.DIRECTORY, f"第 {number} 份交换目录无效：{e}"))
    verified.sort(key=lambda d: d.serial)
    return verified, findings


def directory_at(directories: Sequence[Directory], at: datetime) -> Directory | None:
    """The directory in force at ``at``: the highest serial valid then."""
    valid = [d for d in directories if d.valid_at(at)]
    return valid[-1] if valid else None


# --- one node ------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Doc:
    index: int
    header: RoutingHeader
    envelope_sha256: str
    plan: RoutePlan | None


@dataclass(slots=True)
class _Receipt:
    index: int
    header: RoutingHeader
    receipt: Receipt


@dataclass
class _PeerHead:
    holder: str
    line: int
    head: SignedTreeHead


class _Findings:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[Finding] = []
        self.not_listed = 0

    def add(self, finding: Finding) -> None:
        if len(self.items) < self.limit:
            self.items.append(finding)
        else:
            self.not_listed += 1


class _Node:
    """The audit of one node's archive: the log pass, then the entry pass, then the checks over both."""

    def __init__(
        self, source: NodeSource, trust: TrustPolicy, at: datetime, options: AuditOptions, findings: _Findings
    ) -> None:
        self.source = source
        self.node_id = source.node_id
        self.trust = trust
        self.at = at
        self.options = options
        self.findings = findings
        self.result = NodeAudit(source.node_id, source.label, source.kind, source.snapshot)
        self.directories: list[Directory] = []
        self.docs: dict[str, _Doc] = {}
        self.receipts: list[_Receipt] = []
        self.by_answered: dict[str, list[_Receipt]] = {}
        self.roots_at: dict[int, bytes] = {0: EMPTY_ROOT}
        self.heads: list[SignedTreeHead] = []  # the node's heads that verified in every way
        self.signed_heads: list[SignedTreeHead] = []  # and those whose only fault is their root
        self.head_lines: set[bytes] = set()
        self._routes: dict[tuple[int, str, tuple[str, ...], str], RoutePlan] = {}

    def add(self, check: Check, message: str, **where: Any) -> None:
        self.findings.add(Finding(self.node_id, check, message, **where))

    def progress(self, phase: str, done: int, total: int) -> None:
        if self.options.progress is not None:
            self.options.progress(self.node_id, phase, done, total)

    # --- the log ---

    def check_log(self, stats: AuditStats) -> dict[int, str]:
        """``verify_log`` over the copy; returns the entries it flagged (index → what), named after the pass."""
        try:
            commit = read_commit(self.source.log_dir)
        except GwxError:
            commit = None
        size = commit.size if commit is not None else 0
        self.progress("日志结构", 0, size)
        t0 = time.perf_counter()
        report = verify_log(self.source.log_dir, trust=self.trust, node_id=self.node_id, max_problems=1000)
        stats.log_seconds += time.perf_counter() - t0
        self.progress("日志结构", size, size)
        r = self.result
        r.entries, r.root, r.heads = report.size, report.root, report.heads
        r.committed = report.committed.size if report.committed is not None else None
        if report.committed is None and report.size:
            self.add(Check.LOG, "日志有条目却没有提交记录（commit）：无法确定哪些条目已提交")
        flagged: dict[int, str] = {}
        bad_heads: set[int | None] = set()
        kinds = {"hash": "哈希记录", "offset": "偏移", "tail": "日志尾部", "file": "日志文件", "commit": "提交记录"}
        for p in report.problems:
            if p.kind == "head":
                bad_heads.add(p.index)
                self.add(Check.TREE_HEAD, p.message, index=p.index)
            elif p.kind == "entry" and p.index is not None:
                flagged[p.index] = f"条目与其存储的叶哈希不符，条目或哈希被改动（{p.message}）"
            else:
                self.add(Check.LOG, f"{kinds.get(p.kind, p.kind)}：{p.message}", index=p.index)
        if report.problems_not_listed:
            self.add(Check.LOG, f"另有 {report.problems_not_listed} 处日志结构问题未列出")
        for line, head in numbered_heads(self.source.log_dir):
            if head is None or head.node_id != self.node_id:
                continue
            if line in bad_heads or report.problems_not_listed:  # named already; signed by the node all the same?
                try:
                    verify_tree_head(head, self.trust)
                except GwxError:
                    continue
                self.signed_heads.append(head)  # evidence of a fork if its root differs from another's
                continue
            stats.head_signatures += 1  # verify_log checked its signature
            self.signed_heads.append(head)
            self.heads.append(head)
            self.head_lines.add(head_to_line(head))
        good = [h for h in self.heads if h.size <= report.size]
        r.latest_head = max(good, key=lambda h: h.timestamp) if good else None
        return flagged

    # --- the entries ---

    def read_entries(
        self, flagged: dict[int, str], needed: set[int], stats: AuditStats, pool: ProcessPoolExecutor | None
    ) -> None:
        """The entry pass: each entry's signatures (here, or in worker processes), then, in log order, the tree's
        roots where peers hold heads, duplicates, the directory, and the documents and receipts it records."""
        total = self.result.entries
        tree = CompactRange()
        seen: dict[str, int] = {}
        entries = iter_entries(self.source.log_dir, total)
        if pool is not None and total >= self.options.parallel_from:
            checked = _checked_in_pool(entries, self.trust, pool, self.options.workers)
        else:
            checked = _checked_here(entries, self.trust)
        for index, data, result in checked:
            if index % _PROGRESS_EVERY == 0:
                self.progress("信封", index, total)
            tree.push(leaf_hash(data))
            if tree.size in needed:
                self.roots_at[tree.size] = tree.root()
            hint = _message_id_hint(data)
            if index in flagged:
                self.add(Check.LOG, flagged.pop(index), index=index, message_id=hint)
            stats.signature_seconds += result.seconds
            header = result.header
            if header is None:
                self.add(
                    Check.ENVELOPE, f"不是有效的信封，或节点签名不成立：{result.error}", index=index, message_id=hint
                )
                continue
            stats.envelope_signatures += 1
            mid = header.message_id
            if mid in seen:
                twice = f"消息编号重复：与条目 {seen[mid]} 相同（重复的信封不应入日志）"
                self.add(Check.ENVELOPE, twice, index=index, message_id=mid)
                continue
            seen[mid] = index
            directory = directory_at(self.directories, header.created)
            route = None
            if directory is None:
                self.add(
                    Check.DIRECTORY,
                    f"归档中没有在信封生成时间 {format_utc(header.created)} 有效的交换目录，无法核对发送节点",
                    index=index,
                    message_id=mid,
                )
            else:
                route = self._check_against_directory(index, result.node_certificate, header, directory)
            if header.kind is MessageKind.DOCUMENT:
                self.docs[mid] = _Doc(index, header, result.envelope_sha256, route)
            elif header.kind is MessageKind.RECEIPT:
                if result.receipt is None:
                    self.add(Check.RECEIPT, f"回执签名无效：{result.error}", index=index, message_id=mid)
                    continue
                stats.receipt_signatures += 1
                receipt = _Receipt(index, header, result.receipt)
                self.receipts.append(receipt)
                self.by_answered.setdefault(result.receipt.message_id, []).append(receipt)
        self.progress("信封", total, total)
        for index, what in flagged.items():  # entries the pass did not reach
            self.add(Check.LOG, what, index=index)

    def _check_against_directory(
        self, index: int, certificate: bytes, header: RoutingHeader, directory: Directory
    ) -> RoutePlan | None:
        mid = header.message_id
        node = directory.find_node(header.sender_node)
        if node is None:
            self.add(
                Check.DIRECTORY,
                f"发送节点 {header.sender_node} 不在当时有效的交换目录（第 {directory.serial} 版）中",
                index=index,
                message_id=mid,
            )
            return None
        if _fingerprint(node.certificate) != certificate:
            self.add(
                Check.DIRECTORY,
                f"信封由节点 {header.sender_node} 的另一张证书签名，不是交换目录第 {directory.serial} 版所列的证书",
                index=index,
                message_id=mid,
            )
        if header.kind is MessageKind.DOCUMENT:  # a node re-sealing another's document (a replay): nodes refuse it
            department = directory.find_department(header.sender_department)
            home = department.home_node if department is not None else None
            if home != header.sender_node:
                self.add(
                    Check.ENVELOPE,
                    f"公文信封由节点 {header.sender_node} 以 {header.sender_department} 的名义发出，但交换目录第 "
                    f"{directory.serial} 版中该机关的所属节点是 {home or '（未列出）'}：只有所属节点可以发出它的公文",
                    index=index,
                    message_id=mid,
                )
        try:
            key = (directory.serial, header.sender_node, header.recipients, header.classification.value)
            route = self._routes.get(key)
            if route is None:
                route = plan(directory, header.sender_node, header.recipients, header.classification)
                self._routes[key] = route
        except GwxError as e:
            self.add(Check.DIRECTORY, f"按当时的交换目录，该信封无可用路由：{e}", index=index, message_id=mid)
            return None
        if self.node_id not in route.nodes:
            elsewhere = f"信封的路由不经过本节点 {self.node_id}，却在本节点日志中"
            self.add(Check.ENVELOPE, elsewhere, index=index, message_id=mid)
        return route

    # --- receipts, completeness, delivery ---

    def check_receipts(self, others: Sequence[_Node]) -> None:
        digests: dict[str, dict[str, list[_Receipt]]] = {}
        for r in self.receipts:
            rc, header = r.receipt, r.header
            mid = header.message_id
            if header.in_reply_to != rc.message_id:
                self.add(
                    Check.RECEIPT,
                    f"回执信封答复 {header.in_reply_to}，其中的回执却答复 {rc.message_id}",
                    index=r.index,
                    message_id=mid,
                )
            doc: _Doc | None = self.docs.get(rc.message_id)
            where = ""
            if doc is None:
                # a receipt only relayed here may take another route back than its document took out (ties
                # between equal paths are broken from each path's own start): look in the other nodes' logs
                relayed = self._relayed_only(header)
                found = next((n.docs[rc.message_id] for n in others if rc.message_id in n.docs), None)
                if not relayed or found is None:
                    self.add(
                        Check.RECEIPT,
                        f"回执（{rc.kind}，{rc.answerer}）所答复的公文 {rc.message_id} 不在"
                        + ("任何所审计节点的日志中" if relayed else "本节点日志中"),
                        index=r.index,
                        message_id=mid,
                    )
                    continue
                doc, where = found, "（该公文在其他节点的日志中）"
            self._check_binding(r, doc, where)
            if rc.role is AnswererRole.DEPARTMENT and rc.document_sha256 is not None:
                digests.setdefault(rc.message_id, {}).setdefault(rc.document_sha256, []).append(r)
        for answered, by_digest in digests.items():
            if len(by_digest) > 1:
                doc = self.docs.get(answered)
                listing = "；".join(
                    f"{digest[:16]}…（{'、'.join(sorted({x.receipt.answerer for x in rs}))}）"
                    for digest, rs in by_digest.items()
                )
                self.add(
                    Check.RECEIPT,
                    f"各收文机关的回执所绑定的公文摘要不一致：{listing}",
                    index=doc.index if doc else None,
                    message_id=answered,
                )

    def _relayed_only(self, header: RoutingHeader) -> bool:
        """A receipt this node neither made nor delivered: it only passed through."""
        if header.sender_node == self.node_id:
            return False
        directory = directory_at(self.directories, header.created)
        if directory is None:
            return False
        return all(
            (d := directory.find_department(code)) is None or d.home_node != self.node_id for code in header.recipients
        )

    def _check_binding(self, r: _Receipt, doc: _Doc, where: str) -> None:
        rc = r.receipt
        what = f"回执（{rc.kind}，{rc.answerer}）"
        problems = []
        if rc.envelope_sha256 != doc.envelope_sha256:
            problems.append(f"{what}绑定的信封摘要与日志中的公文信封不符{where}")
        if rc.time < doc.header.created:
            problems.append(f"{what}的时间早于公文信封的生成时间{where}")
        if r.header.recipients != (doc.header.sender_department,):
            problems.append(f"{what}没有发往公文的发文机关 {doc.header.sender_department}{where}")
        if rc.role is AnswererRole.DEPARTMENT:
            if rc.answerer not in doc.header.recipients:
                problems.append(f"{rc.answerer} 不是该公文的收文机关，无权回执{where}")
            if r.header.sender_department != rc.answerer:
                problems.append(f"{what}的信封以 {r.header.sender_department} 的名义发出")
        elif doc.plan is not None and rc.answerer not in doc.plan.nodes:
            problems.append(f"节点 {rc.answerer} 不在该公文的路由上，无权报告投递失败{where}")
        else:
            strangers = [c for c in rc.failed_for if c not in doc.header.recipients]
            if strangers:
                problems.append(f"{what}为非收文机关 {'、'.join(strangers)} 报告投递失败{where}")
            if doc.plan is not None:
                elsewhere = [c for c in rc.failed_for if c in doc.plan.paths and rc.answerer not in doc.plan.paths[c]]
                if elsewhere:
                    problems.append(f"{what}为路由不经过 {rc.answerer} 的 {'、'.join(elsewhere)} 报告投递失败{where}")
        for problem in problems:
            self.add(Check.RECEIPT, problem, index=r.index, message_id=r.header.message_id)

    def answers(self, doc_id: str) -> list[Receipt]:
        """The receipts in this log that answer ``doc_id`` and are bound to its envelope."""
        doc = self.docs[doc_id]
        return [r.receipt for r in self.by_answered.get(doc_id, []) if r.receipt.envelope_sha256 == doc.envelope_sha256]

    def check_completeness(self) -> None:
        for mid, doc in self.docs.items():
            if doc.header.sender_node != self.node_id or doc.plan is None:
                continue
            answers = self.answers(mid)
            pending = "（信封尚未过期，可能仍在办理中）" if not doc.header.expired(self.at) else ""
            for code, path in doc.plan.paths.items():
                problem = _incomplete(answers, code, path)
                if problem:
                    self.add(Check.COMPLETENESS, problem + pending, index=doc.index, message_id=mid, recipient=code)

    def check_delivery(self, stats: AuditStats) -> None:
        """Documents routed to a department here: answered with 送达 (or 投递失败), and filed as signed."""
        expected: dict[tuple[str, str], Receipt] = {}
        reported: set[tuple[str, str]] = set()
        for mid, doc in self.docs.items():
            if doc.plan is None:
                continue
            answers = self.answers(mid)
            for code in doc.plan.delivered_at(self.node_id):
                delivered = [
                    a
                    for a in answers
                    if a.kind is ReceiptKind.DELIVERED and a.answerer == code and a.role is AnswererRole.DEPARTMENT
                ]
                failed = [a for a in answers if a.answerer == self.node_id and _covers(a, code, (self.node_id,))]
                if delivered:
                    expected[(code, mid)] = delivered[0]
                elif not failed:
                    reported.add((code, mid))
                    self.add(
                        Check.DELIVERY,
                        f"公文发往本节点的 {code}，却既没有 {code} 的送达回执，也没有本节点的投递失败回执",
                        index=doc.index,
                        message_id=mid,
                        recipient=code,
                    )
        seen: set[tuple[str, str]] = set()
        for count, item in enumerate(self.source.inbox()):
            if count % _PROGRESS_EVERY == 0:
                self.progress("收件箱", count, len(expected))
            self.result.inbox += 1
            seen.add((item.department, item.message_id))
            self._check_filed(item, expected, reported, stats)
        for (code, mid), _ in expected.items():
            if (code, mid) not in seen:
                self.add(
                    Check.DOCUMENT,
                    f"{code} 已回执送达的公文不在归档的收件箱中",
                    index=self.docs[mid].index,
                    message_id=mid,
                    recipient=code,
                )

    def _check_filed(
        self,
        item: InboxDocument,
        expected: dict[tuple[str, str], Receipt],
        reported: set[tuple[str, str]],
        stats: AuditStats,
    ) -> None:
        """One inbox document: in the log, addressed here, signed, and the one its 送达 names."""
        key = (item.department, item.message_id)
        doc = self.docs.get(item.message_id)
        where: dict[str, Any] = {"message_id": item.message_id, "recipient": item.department}
        if doc is None:
            self.add(Check.DOCUMENT, "收件箱中的公文在本节点日志中没有对应的信封", **where)
            return
        where["index"] = doc.index
        if doc.plan is not None and item.department not in doc.plan.delivered_at(self.node_id):
            self.add(Check.DOCUMENT, f"收件箱中的公文并非发往本节点的 {item.department}", **where)
        t0 = time.perf_counter()
        try:
            verified = verify_document(item.document_xml, self.trust, now=self.at)
        except GwxError as e:
            self.add(Check.DOCUMENT, f"收件箱中公文的签名不成立：{e}", **where)
            return
        finally:
            stats.signature_seconds += time.perf_counter() - t0
        stats.document_signatures += len(verified.signatures)
        named = sorted(d.code for d in verified.document.recipients)
        if item.department not in named or named != sorted(doc.header.recipients):
            self.add(Check.DOCUMENT, "收件箱中公文的收文机关与信封所列不同", **where)
        if doc.header.sender_department not in {d.code for d in verified.document.issuers}:
            self.add(Check.DOCUMENT, f"发送机关 {doc.header.sender_department} 不是收件箱中公文的发文机关", **where)
        receipt = expected.get(key) or next(
            (
                a
                for a in self.answers(item.message_id)
                if a.kind is ReceiptKind.DELIVERED
                and a.role is AnswererRole.DEPARTMENT
                and a.answerer == item.department
            ),
            None,
        )
        if receipt is None:
            if key not in reported:
                self.add(Check.DOCUMENT, f"收件箱中的公文没有 {item.department} 的送达回执", **where)
        elif receipt.document_sha256 != verified.digest:
            bound = str(receipt.document_sha256)[:16]
            self.add(
                Check.DOCUMENT, f"收件箱中公文的摘要 {verified.digest[:16]}… 不是送达回执所绑定的 {bound}…", **where
            )

    # --- the tables ---

    def tables(self) -> None:
        for r in self.receipts:
            rc = r.receipt
            self.result.receipts.append(
                ReceiptRow(r.index, r.header.message_id, rc.message_id, rc.kind.value, rc.answerer, rc.time, rc.reason)
            )
        for mid, doc in sorted(self.docs.items(), key=lambda item: item[1].index):
            h = doc.header
            roles = []
            delivered_here = doc.plan.delivered_at(self.node_id) if doc.plan is not None else ()
            if h.sender_node == self.node_id:
                roles.append("发出")
            if delivered_here:
                roles.append("收到")
            if not roles:
                roles.append("转发")
            answers = self.answers(mid)
            states = tuple(
                (code, _state(answers, code, doc.plan.paths.get(code, ()) if doc.plan else ())) for code in h.recipients
            )
            self.result.documents.append(
                DocumentRow(
                    doc.index,
                    mid,
                    h.sender_department,
                    h.sender_node,
                    h.recipients,
                    h.classification.value,
                    h.created,
                    "、".join(roles),
                    states,
                )
            )


# --- each entry's signatures, here or in worker processes ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Checked:
    """What one entry's signature checks established: the verified header (None if the envelope failed), the
    SHA-256 fingerprint of the node certificate that signed it, and for a receipt envelope the verified receipt
    (None if it failed); ``error`` says why; ``seconds`` is the time the checks took."""

    header: RoutingHeader | None
    envelope_sha256: str
    node_certificate: bytes
    receipt: Receipt | None
    error: str | None
    seconds: float


def _check_entry(data: bytes, trust: TrustPolicy) -> _Checked:
    t0 = time.perf_counter()
    try:
        envelope = inspect(data, trust)
    except GwxError as e:
        return _Checked(None, "", b"", None, str(e), time.perf_counter() - t0)
    receipt, error = None, None
    if envelope.header.kind is MessageKind.RECEIPT:
        try:
            receipt = verify_receipt_signature(receipt_content(envelope), trust).receipt
        except GwxError as e:
            error = str(e)
    fingerprint = _fingerprint(envelope.node.certificate)
    return _Checked(envelope.header, envelope.envelope_sha256, fingerprint, receipt, error, time.perf_counter() - t0)


def _fingerprint(certificate: x509.Certificate) -> bytes:
    return certificate.fingerprint(hashes.SHA256())


def _checked_here(entries: Iterable[tuple[int, bytes]], trust: TrustPolicy) -> Iterator[tuple[int, bytes, _Checked]]:
    for index, data in entries:
        yield index, data, _check_entry(data, trust)


_BATCH = 128
TrustArgs = tuple[bytes, tuple[bytes, ...], bool, datetime]
_worker_trust: dict[TrustArgs, TrustPolicy] = {}


def _trust_args(trust: TrustPolicy) -> TrustArgs:
    """A trust policy as a worker process rebuilds it: root and CRLs (PEM), revocation, the auditor's clock."""
    pem = serialization.Encoding.PEM
    return (
        trust.root.public_bytes(pem),
        tuple(c.public_bytes(pem) for c in trust.crls),
        trust.unsafe_skip_revocation,
        trust.now or datetime.now(UTC),
    )


def _check_batch(args: TrustArgs, batch: list[bytes]) -> list[_Checked]:
    """In a worker process: the trust policy made once per node audited, then ``_check_entry`` for each entry."""
    trust = _worker_trust.get(args)
    if trust is None:
        root, crls, skip_revocation, at = args
        trust = TrustPolicy(
            x509.load_pem_x509_certificate(root),
            tuple(x509.load_pem_x509_crl(c) for c in crls),
            unsafe_skip_revocation=skip_revocation,
            now=at,
        )
        _worker_trust[args] = trust
    return [_check_entry(data, trust) for data in batch]


def _pool(workers: int) -> ProcessPoolExecutor:
    # spawned, not forked: a fork of a process holding threads and locks (a test runner, a daemon) can deadlock
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _checked_in_pool(
    entries: Iterable[tuple[int, bytes]], trust: TrustPolicy, pool: ProcessPoolExecutor, workers: int
) -> Iterator[tuple[int, bytes, _Checked]]:
    """``_checked_here`` over the pool's processes, in log order, with at most a few batches per worker in flight
    (memory stays bounded whatever the size of the log)."""
    args = _trust_args(trust)
    pending: deque[tuple[list[tuple[int, bytes]], Future[list[_Checked]]]] = deque()

    def ready() -> Iterator[tuple[int, bytes, _Checked]]:
        batch, future = pending.popleft()
        for (index, data), result in zip(batch, future.result(), strict=True):
            yield index, data, result

    batch: list[tuple[int, bytes]] = []
    for item in entries:
        batch.append(item)
        if len(batch) == _BATCH:
            pending.append((batch, pool.submit(_check_batch, args, [d for _, d in batch])))
            batch = []
            if len(pending) >= 4 * workers:
                yield from ready()
    if batch:
        pending.append((batch, pool.submit(_check_batch, args, [d for _, d in batch])))
    while pending:
        yield from ready()


def _incomplete(answers: Iterable[Receipt], code: str, path: Sequence[str]) -> str | None:
    """Why recipient ``code`` (route ``path``) lacks its answers, or None."""
    mine = [a for a in answers if a.role is AnswererRole.DEPARTMENT and a.answerer == code]
    delivered = [a for a in mine if a.kind is ReceiptKind.DELIVERED]
    signed = [a for a in mine if a.kind is ReceiptKind.SIGNED_FOR]
    returned = [a for a in mine if a.kind is ReceiptKind.RETURNED]
    failed = [a for a in answers if _covers(a, code, path)]
    if signed and returned:
        return f"{code} 既签收又退回了该公文"
    final = signed or returned
    if delivered and final:
        if min(f.time for f in final) < min(d.time for d in delivered):
            return f"{code} 的{final[0].kind}早于其送达"
        return None
    if failed:
        return None
    if final:
        return f"{code} 有{final[0].kind}回执，却没有送达回执"
    if delivered:
        return f"{code} 已送达，但没有签收或退回回执"
    return f"没有 {code} 的送达回执，也没有路由上节点的投递失败回执"


def _covers(answer: Receipt, code: str, path: Sequence[str]) -> bool:
    """Whether a 投递失败 answers for recipient ``code`` (route ``path``): the recipients it names, or — when it names
    none — every recipient whose route passes the node that reported it (``node_logic._take_receipt``)."""
    if answer.kind is not ReceiptKind.FAILED:
        return False
    if answer.failed_for:
        return code in answer.failed_for
    return answer.answerer in path


def _state(answers: Iterable[Receipt], code: str, path: Sequence[str]) -> str:
    rank = {ReceiptKind.FAILED: 1, ReceiptKind.DELIVERED: 2, ReceiptKind.SIGNED_FOR: 3, ReceiptKind.RETURNED: 3}
    best: ReceiptKind | None = None
    for a in answers:
        mine = (a.role is AnswererRole.DEPARTMENT and a.answerer == code) or _covers(a, code, path)
        if mine and (best is None or rank[a.kind] > rank[best]):
            best = a.kind
    return best.value if best is not None else "无回执"


def _message_id_hint(data: bytes) -> str | None:
    """The message id an entry claims (unverified): to name an entry that failed."""
    match = _MESSAGE_ID_HINT.search(data, 0, 4096)
    return match[1].decode("ascii") if match else None


# --- across nodes ------------------------------------------------------------------------------------------------


def _peer_heads(node: _Node, stats: AuditStats) -> list[_PeerHead]:
    """Every head node ``node`` holds from its peers, each verified; problems are findings against the holder."""
    held: list[_PeerHead] = []
    last: dict[str, SignedTreeHead] = {}
    for line, _raw, head, error in read_peer_heads(node.source.peer_heads):
        if head is None:
            node.add(Check.PEER_HEAD, f"对端树头无法读取：{error}", index=line)
            continue
        try:
            verify_tree_head(head, node.trust)
        except GwxError as e:
            node.add(Check.PEER_HEAD, f"节点 {head.node_id} 的树头签名不成立：{e}", index=line, peer=head.node_id)
            continue
        stats.head_signatures += 1
        previous = last.get(head.node_id)
        if previous is not None and head.timestamp > previous.timestamp and head.size < previous.size:
            node.findings.add(
                Finding(
                    head.node_id,
                    Check.PEER_HEAD,
                    f"节点 {head.node_id} 在 {previous.time_text} 签署了 {previous.size} 条，又在 {head.time_text} "
                    f"只签署了 {head.size} 条（{node.node_id} 所持，第 {line} 行）：其日志丢失了条目",
                    index=line,
                    peer=node.node_id,
                )
            )
        last[head.node_id] = head
        held.append(_PeerHead(node.node_id, line, head))
    return held


def _cross_check(nodes: dict[str, _Node], held: list[_PeerHead], findings: _Findings, notes: list[str]) -> None:
    by_size: dict[tuple[str, int], dict[bytes, str]] = {}
    for node in nodes.values():
        for head in node.signed_heads:
            own = f"{node.node_id} 自身保存的树头"
            by_size.setdefault((node.node_id, head.size), {}).setdefault(head.root_hash, own)
    for p in held:
        where = f"{p.holder} 所持第 {p.line} 行"
        by_size.setdefault((p.head.node_id, p.head.size), {}).setdefault(p.head.root_hash, where)
    for (node_id, size), roots in by_size.items():
        if len(roots) > 1:
            listing = "；".join(f"{root.hex()[:16]}…（{where}）" for root, where in roots.items())
            fork = f"节点 {node_id} 对同一规模 {size} 签署了不同的根：历史分叉（{listing}）"
            findings.add(Finding(node_id, Check.PEER_HEAD, fork))
    for p in held:
        x = nodes.get(p.head.node_id)
        if x is None or x.node_id == p.holder:
            continue
        _check_peer_view(x, p, findings, notes)


def _check_peer_view(x: _Node, p: _PeerHead, findings: _Findings, notes: list[str]) -> None:
    head = p.head
    what = f"{p.holder} 所持的 {x.node_id} 树头（规模 {head.size}，{head.time_text}，{p.holder} 第 {p.line} 行）"

    def fail(message: str) -> None:
        findings.add(Finding(x.node_id, Check.PEER_HEAD, message, index=p.line, peer=p.holder))

    late = head.timestamp >= x.result.snapshot - LATE_HEAD_MARGIN
    if head.size > x.result.entries:
        if late:
            notes.append(f"{what}签于 {x.node_id} 的归档快照之后，超出其日志，未核对")
        else:
            fail(f"{what}超出 {x.node_id} 日志现有的 {x.result.entries} 条：{x.node_id} 删除了已签署的条目")
        return
    root = x.roots_at.get(head.size)
    if root is not None and root != head.root_hash:
        fail(
            f"{x.node_id} 在 {p.holder} 见到其树头之后改写了历史：{what}签署的根为 {head.root_hash.hex()[:16]}…，"
            f"而 {x.node_id} 日志在该规模的根为 {root.hex()[:16]}…"
        )
        return
    if not late and head_to_line(head) not in x.head_lines:
        fail(f"{x.node_id} 保存的树头中没有{what}：其树头被删除或改写")
        return
    latest = x.result.latest_head
    if latest is None or latest.size < head.size or latest.timestamp < head.timestamp:
        return
    nodes = LogHashes(x.source.log_dir)
    try:
        proof = consistency_proof(head.size, latest.size, nodes.node)
        verify_consistent_heads(head, latest, proof, x.trust)
    except GwxError as e:
        fail(f"{what}无法以一致性证明连到 {x.node_id} 的最新树头（规模 {latest.size}）：{e}")
    finally:
        nodes.close()


# --- the whole audit -----------------------------------------------------------------------------------------------


def _start_node(source: NodeSource, options: AuditOptions, at: datetime, findings: _Findings) -> _Node:
    """A node's audit with its trust policy and verified directories (what fails there is already a finding)."""
    trust, trust_findings = trust_for(source, options, at)
    node = _Node(source, trust, at, options, findings)
    node.directories, directory_findings = read_directories(source, trust)
    for f in (*trust_findings, *directory_findings):
        findings.add(f)
    node.result.directories = [(d.serial, d.issued, d.expires) for d in node.directories]
    return node


def audit(sources: Sequence[NodeSource], options: AuditOptions | None = None) -> AuditReport:
    """Audit the nodes whose archives are ``sources`` (one or more, each a different node); see the module
    docstring. Returns the report (``ok`` only if everything passed); raises only for what makes the audit itself
    impossible (an unreadable root certificate, two archives of one node)."""
    options = options or AuditOptions()
    at = options.at or datetime.now(UTC)
    started = time.perf_counter()
    stats = AuditStats()
    findings = _Findings(options.max_findings)
    notes: list[str] = []
    ids = [s.node_id for s in sources]
    if len(set(ids)) != len(ids):
        raise InputError(f"two archives of the same node: {', '.join(sorted({i for i in ids if ids.count(i) > 1}))}")
    nodes = {source.node_id: _start_node(source, options, at, findings) for source in sources}
    revocation = all(n.trust.check_revocation for n in nodes.values())
    held: list[_PeerHead] = []
    for node in nodes.values():
        held += _peer_heads(node, stats)
    with contextlib.ExitStack() as stack:
        pool = None
        for node in nodes.values():
            flagged = node.check_log(stats)
            needed = {p.head.size for p in held if p.head.node_id == node.node_id}
            if pool is None and options.workers > 1 and node.result.entries >= options.parallel_from:
                pool = stack.enter_context(_pool(options.workers))
            node.read_entries(flagged, needed, stats, pool)
            stats.entries += node.result.entries
    everyone = list(nodes.values())
    if len({n.trust.root.fingerprint(hashes.SHA256()) for n in everyone}) > 1:
        for n in everyone:
            findings.add(Finding(n.node_id, Check.ARCHIVE, "各节点归档中的根证书不同：它们不属于同一个安全中心"))
    for node in everyone:
        node.check_receipts([n for n in everyone if n is not node])
        node.check_completeness()
        node.check_delivery(stats)
        node.tables()
    if len(nodes) > 1 or held:
        _cross_check(nodes, held, findings, notes)
    for node in everyone:
        r = node.result
        if r.latest_head is None and r.entries:
            notes.append(f"节点 {r.node_id} 的日志有 {r.entries} 条，但尚无签名树头为其作证")
        elif r.uncovered > 0:
            notes.append(f"节点 {r.node_id} 的最后 {r.uncovered} 条尚未被签名树头覆盖")
    if options.root is None:
        notes.append("根证书取自归档本身，未经审计员独立核对（可用 --root 指定）")
    if not revocation:
        notes.append("归档中没有证书吊销列表：未检查证书吊销")
    stats.total_seconds = time.perf_counter() - started
    for n in everyone:
        n.result.findings = [f for f in findings.items if f.node == n.node_id]
    return AuditReport(
        at=at,
        root_given=options.root is not None,
        revocation_checked=revocation,
        nodes=[n.result for n in everyone],
        findings=findings.items,
        notes=notes,
        stats=stats,
        findings_not_listed=findings.not_listed,
    )


# --- inclusion proofs ------------------------------------------------------------------------------------------------

PROOF_FORMAT = "gwexchange-inclusion-proof-v1"
MAX_PROOF_BYTES = 2 * MAX_ENVELOPE_BYTES
_PROOF_KEYS = frozenset(
    {"format", "hash", "message_id", "node", "leaf_index", "tree_size", "leaf_hash", "root_hash", "audit_path",
     "entry", "tree_head"}
)  # fmt: skip


@dataclass(frozen=True)
class InclusionProof:
    """The RFC 9162 proof that envelope ``message_id`` is entry ``leaf_index`` of the tree ``head`` signed."""

    message_id: str
    node_id: str
    leaf_index: int
    entry: bytes
    audit_path: tuple[bytes, ...]
    head: SignedTreeHead

    @property
    def tree_size(self) -> int:
        return self.head.size

    @property
    def root_hash(self) -> bytes:
        return self.head.root_hash

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.entry)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": PROOF_FORMAT,
            "hash": "RFC 9162 SHA-256: leaf = SHA-256(0x00 ‖ entry), node = SHA-256(0x01 ‖ left ‖ right)",
            "message_id": self.message_id,
            "node": self.node_id,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "root_hash": self.root_hash.hex(),
            "audit_path": [h.hex() for h in self.audit_path],
            "entry": base64.b64encode(self.entry).decode("ascii"),
            "tree_head": json.loads(head_to_line(self.head)),
        }


def find_entry(log_dir: Path, message_id: str) -> tuple[int, bytes]:
    """The index and bytes of the envelope with ``message_id`` in a log copy; ``InputError`` if there is none."""
    needle = message_id.encode("ascii")
    for index, data in iter_entries(log_dir):
        if needle in data and _header(data).message_id == message_id:
            return index, data
    raise InputError(f"no envelope with message id {message_id} is in the log")


def _header(entry: bytes) -> RoutingHeader:
    root = xmlsafe.parse(entry, max_bytes=MAX_ENVELOPE_BYTES)
    header = root.find(eq("Header"))
    if header is None:
        raise VerificationError("the entry is not an envelope (it has no header)")
    return header_from_element(header)


def prove(source: NodeSource, message_id: str, trust: TrustPolicy) -> InclusionProof:
    """The inclusion proof of envelope ``message_id`` in ``source``'s log against the node's latest signed head,
    checked before it is handed out: the envelope, the head's signature, the log's root at the head's size."""
    log_dir = source.log_dir
    index, entry = find_entry(log_dir, message_id)
    inspect(entry, trust)
    heads = [h for _, h in numbered_heads(log_dir) if h is not None and h.node_id == source.node_id]
    if not heads:
        raise VerificationError(f"node {source.node_id} has signed no tree head yet: nothing vouches for its log")
    head = max(heads, key=lambda h: h.timestamp)
    if head.size <= index:
        raise VerificationError(
            f"entry {index} is not yet covered by a signed tree head (the latest covers {head.size} entries)"
        )
    verify_tree_head(head, trust)
    nodes = LogHashes(log_dir)
    try:
        commit = read_commit(log_dir)
        if commit is None or commit.size < head.size:
            raise VerificationError(f"the log's commit does not cover its latest head (size {head.size})")
        if tree_root(head.size, nodes.node) != head.root_hash:
            raise VerificationError(f"the log's stored hashes do not give the root of its head of size {head.size}")
        path = inclusion_proof(index, head.size, nodes.node)
    finally:
        nodes.close()
    verify_inclusion(leaf_hash(entry), index, head.size, path, head.root_hash)
    return InclusionProof(message_id, source.node_id, index, entry, tuple(path), head)


@dataclass(frozen=True)
class CheckedProof:
    """What ``check_proof`` established; ``signer_trusted`` says whether the head's certificate was checked
    against a root (else only that the certificate's key made the signature)."""

    proof: InclusionProof
    signer_trusted: bool
    envelope_verified: bool


def check_proof(data: bytes, trust: TrustPolicy | None, *, unsafe_without_root: bool = False) -> CheckedProof:
    """Verify a saved ``gwx audit prove --json`` independently: the entry's leaf hash, the RFC 9162 audit path to
    the root, and that root's tree head signature through ``trust``. ``VerificationError`` otherwise. Without a
    trust policy only the head's signature against the certificate it carries is checked, and only if asked for
    by name (``unsafe_without_root``): anyone can make such a certificate."""
    if trust is None and not unsafe_without_root:
        raise ConfigError("a proof is checked against a root: give the trust policy, or ask for unsafe_without_root")
    if len(data) > MAX_PROOF_BYTES:
        raise InputError(f"the proof file is larger than {MAX_PROOF_BYTES} bytes")
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InputError(f"the proof is not JSON: {e}") from e
    if not isinstance(record, dict) or set(record) != _PROOF_KEYS or record.get("format") != PROOF_FORMAT:
        raise InputError(f"the file is not a {PROOF_FORMAT} proof")
    try:
        head = parse_head_line(json.dumps(record["tree_head"], separators=(",", ":"), ensure_ascii=True).encode())
        message_id, node = str(record["message_id"]), str(record["node"])
        index, size = record["leaf_index"], record["tree_size"]
        if type(index) is not int or type(size) is not int:
            raise InputError("leaf_index and tree_size are whole numbers")
        path = tuple(_hex_hash(h, "an audit path element") for h in _list(record["audit_path"]))
        claimed_leaf = _hex_hash(record["leaf_hash"], "leaf_hash")
        claimed_root = _hex_hash(record["root_hash"], "root_hash")
        entry = base64.b64decode(str(record["entry"]), validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"the proof is malformed: {e}") from e
    if not is_node_id(node) or head.node_id != node:
        raise VerificationError(f"the tree head is node {head.node_id}'s, the proof says node {node!r}")
    if head.size != size or head.root_hash != claimed_root:
        raise VerificationError("the proof's tree size or root hash is not the signed tree head's")
    if leaf_hash(entry) != claimed_leaf:
        raise VerificationError("the entry does not hash to the proof's leaf hash")
    verify_inclusion(claimed_leaf, index, size, path, head.root_hash)
    if trust is not None:
        verify_tree_head(head, trust)
        envelope = inspect(entry, trust)
        found = envelope.header.message_id
    else:
        _verify_head_signature_only(head)
        found = _header(entry).message_id
    if found != message_id:
        raise VerificationError(f"the entry is message {found}, not {message_id}")
    proof = InclusionProof(message_id, node, index, entry, path, head)
    return CheckedProof(proof, signer_trusted=trust is not None, envelope_verified=trust is not None)


def _verify_head_signature_only(head: SignedTreeHead) -> None:
    try:
        cert = x509.load_der_x509_certificate(head.certificate)
        code = identity_of(cert).code
    except (ValueError, TrustError) as e:
        raise VerificationError(f"the tree head's certificate cannot be read: {e}") from e
    if code != head.node_id:
        raise VerificationError(f"the tree head names node {head.node_id}, but the certificate is {code}'s")
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise VerificationError("the tree head's certificate holds a key type gwexchange does not verify")
    INTERNATIONAL.verify(key, head.method, head.signature, head.signed_bytes)


def _list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise ValueError("audit_path is a list of hex hashes")
    return value


def _hex_hash(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"{what} is not 64 lower-case hex digits")
    return bytes.fromhex(value)


__all__ = [
    "AuditOptions",
    "AuditReport",
    "AuditStats",
    "Check",
    "CheckedProof",
    "DocumentRow",
    "Finding",
    "InclusionProof",
    "LogHashes",
    "NodeAudit",
    "ReceiptRow",
    "audit",
    "check_proof",
    "directory_at",
    "find_entry",
    "prove",
    "read_directories",
    "trust_for",
]
