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

import contextlib
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gwexchange.archive.audit_archive import (
    LATE_HEAD_MARGIN,
    InboxDocument,
    NodeSource,
    head_lines,
    iter_entries,
    parse_head,
)
from gwexchange.archive.audit_model import (
    AuditOptions,
    AuditReport,
    AuditStats,
    Check,
    DocumentRow,
    Finding,
    NodeAudit,
    ReceiptRow,
)
from gwexchange.archive.audit_signatures import checked_here, checked_in_pool, fingerprint, worker_pool
from gwexchange.archive.log import HEADS_FILE, level_file, read_commit
from gwexchange.archive.log_verify import verify_log
from gwexchange.archive.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    consistency_proof,
    leaf_hash,
)
from gwexchange.archive.treehead import (
    SignedTreeHead,
    head_to_line,
    parse_head_line,
    verify_consistent_heads,
    verify_tree_head,
)
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.header import MessageKind, RoutingHeader
from gwexchange.envelope.receipts import AnswererRole, Receipt, ReceiptKind
from gwexchange.envelope.signing import verify_document
from gwexchange.envelope.times import format_utc
from gwexchange.errors import ConfigError, GwxError, InputError, VerificationError
from gwexchange.network.directory import Directory, authority_code_of
from gwexchange.network.directory_xml import read_unverified_directory, verify_directory
from gwexchange.network.routes import RoutePlan, plan

_MESSAGE_ID_HINT = re.compile(rb"MessageId>([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})<")
_PROGRESS_EVERY = 1000


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


def _read_peer_heads(path: Path | None) -> Iterator[tuple[int, bytes, SignedTreeHead | None, str | None]]:
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


def _read_directories(source: NodeSource, trust: TrustPolicy) -> tuple[list[Directory], list[Finding]]:
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


def _directory_at(directories: Sequence[Directory], at: datetime) -> Directory | None:
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
            checked = checked_in_pool(entries, self.trust, pool, self.options.workers)
        else:
            checked = checked_here(entries, self.trust)
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
            directory = _directory_at(self.directories, header.created)
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
        if fingerprint(node.certificate) != certificate:
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
        directory = _directory_at(self.directories, header.created)
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
    for line, _raw, head, error in _read_peer_heads(node.source.peer_heads):
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
    node.directories, directory_findings = _read_directories(source, trust)
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
                pool = stack.enter_context(worker_pool(options.workers))
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


__all__ = [
    "LogHashes",
    "audit",
    "numbered_heads",
    "trust_for",
]
