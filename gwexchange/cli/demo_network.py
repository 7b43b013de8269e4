"""``gwx demo``: the six-node example network, run for real on this machine from nothing to 签收.

1. A PKI (root, node certificates, each department's signing and encryption certificates, the security centre's
   own signing certificate) and the signed directory of ``examples/network.toml``, its SMTP endpoints moved to
   free ports on 127.0.0.1 — the topology, zones and policy are the file's, compiled by ``compile_directory``.
2. A node home per node, each run as its own ``gwx node run`` process logging to ``HOME/node.log`` — the local
   network of ``local_network`` (``LocalPki``, ``Daemons``), the one the tests, the campaign and the benchmark run.
3. The four sample documents, sent from their issuers' nodes by ``clerk.send_document`` (what ``gwx send``
   does), with the route each takes — and, where the 密级 forbids the shortest one, which zone it avoids.
4. Every document × recipient followed in the senders' outboxes until 送达; then each recipient's clerk signs
   for everything in the inbox (``clerk.answer_document``, what ``gwx sign-for`` does) and the demo waits until
   every sender holds every 签收.

The demo's keys are unencrypted (``UnsafeUnencrypted``): it is a demonstration, not a deployment. Whatever
happens — success, a timeout, a daemon that dies, Ctrl-C — every daemon is stopped before ``run_demo`` returns
or raises: SIGTERM first (the node stops cleanly), SIGKILL only after a grace period.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import tempfile
import time
import tomllib
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from gwexchange.cli.local_network import START_TIMEOUT, DaemonError, Daemons, LocalPki, free_ports
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.description import load_description_file
from gwexchange.envelope.model import Classification, Document
from gwexchange.envelope.receipts import ReceiptKind
from gwexchange.errors import ConfigError, GwxError
from gwexchange.network.directory import Directory, Zone
from gwexchange.network.directory_toml import compile_directory
from gwexchange.network.routes import RoutePlan, format_path, plan
from gwexchange.pki.keyfiles import KEY_PASSPHRASE_ENV
from gwexchange.routing.clerk import answer_document, attachment_files, send_document
from gwexchange.routing.context import NodeContext, load_context
from gwexchange.routing.home import NodeConfig
from gwexchange.routing.node_logic import InboxState, RecipientState

Say = Callable[[str], None]

AUTHORITY_NAME = "广东省电子政务安全中心"
SAMPLES = ("notice.toml", "request.toml", "letter.toml", "joint-notice.toml")
# Short enough that six hops and their receipts take seconds, not the production minutes.
NODE_SETTINGS = {"tick_seconds": 0.2, "retry_base_seconds": 0.5, "retry_cap_seconds": 2.0}
STOP_GRACE = 10.0  # seconds after SIGTERM before SIGKILL
POLL = 0.1
TAIL_LINES = 8
_WORDS = {RecipientState.QUEUED: "排队待发", RecipientState.IN_TRANSIT: "传输中"}  # the others are Chinese already


def examples_folder() -> Path:
    """``examples/`` of the source tree this package runs from (the demo's network and documents)."""
    package = Path(__file__).resolve().parent.parent  # gwexchange/: examples/ is in it when installed from a wheel
    for folder in (package / "examples", package.parent / "examples"):
        if (folder / "network.toml").is_file():
            return folder
    raise ConfigError("gwx demo needs the examples/ folder of the gwexchange source tree (network.toml and samples)")


@dataclass(frozen=True, slots=True)
class DemoResult:
    folder: Path
    seconds: float
    rows: tuple[tuple[str, str, str], ...]  # document, recipient name, final state


@dataclass(frozen=True, slots=True)
class _Sent:
    label: str  # 文种 and 发文字号: how the progress lines name the document
    message_id: str
    sender_node: str
    recipients: tuple[str, ...]


def run_demo(folder: Path | None, *, timeout: float = 60.0, say: Say = print) -> DemoResult:
    """Run the whole demo in ``folder`` (a fresh temporary folder if None; an existing one must be empty).

    ``timeout`` bounds the wait from the first send until every recipient has signed for every document. Raises
    ``GwxError`` (one line naming what did not arrive) when it runs out or a daemon dies; the node logs' last lines
    go to ``say`` first.
    """
    examples = examples_folder()
    demo = _Demo(_prepare(folder), examples, say)
    with _without(KEY_PASSPHRASE_ENV):
        try:
            demo.build()
            demo.start()
            demo.send_all()
            deadline = time.monotonic() + timeout
            demo.follow(RecipientState.DELIVERED, deadline, timeout)
            demo.sign_for_all()
            demo.follow(RecipientState.SIGNED_FOR, deadline, timeout)
            rows = demo.summary()
        finally:
            demo.close()
    return DemoResult(demo.folder, demo.elapsed(), rows)


def _prepare(folder: Path | None) -> Path:
    if folder is None:
        return Path(tempfile.mkdtemp(prefix="gwx-demo-")).resolve()
    if folder.exists():
        if not folder.is_dir():
            raise ConfigError(f"{folder} is not a folder")
        if any(folder.iterdir()):
            raise ConfigError(f"{folder} is not empty: give gwx demo a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


@contextlib.contextmanager
def _without(variable: str) -> Iterator[None]:
    """The demo's keys are unencrypted, and an unencrypted key loads only when no passphrase is set."""
    saved = os.environ.pop(variable, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[variable] = saved


class _Demo:
    def __init__(self, folder: Path, examples: Path, say: Say) -> None:
        self.folder = folder
        self.examples = examples
        self.say = say
        self.started = time.monotonic()
        self.ca = folder / "ca"
        self.directory_file = folder / "directory.signed.xml"
        self.homes: dict[str, Path] = {}
        self.daemons = Daemons(self.homes)  # logs in each home's node.log; homes join as they are written
        self._pki: LocalPki | None = None
        self.contexts: dict[str, NodeContext] = {}
        self.sent: list[_Sent] = []
        self.states: dict[tuple[str, str], RecipientState] = {}  # (message id, recipient) → last state seen
        self._directory: Directory | None = None

    # --- the network ---

    @property
    def pki(self) -> LocalPki:
        if self._pki is None:
            raise ConfigError("the demo's PKI is not built yet")
        return self._pki

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            raise ConfigError("the demo's directory is not built yet")
        return self._directory

    def build(self) -> None:
        """The PKI, and the signed directory with local endpoints."""
        source = self.examples / "network.toml"
        text = source.read_text(encoding="utf-8")
        spec = tomllib.loads(text)
        nodes = [str(n.get("id")) for n in spec.get("node", [])]  # compile_directory checks the file below
        departments = {str(d.get("code")): (str(d.get("name")), str(d.get("node"))) for d in spec.get("department", [])}
        self.step(f"1. 安全中心：根证书，{len(nodes)} 个节点证书，{len(departments)} 个机关的签名与加密证书")
        self._pki = pki = LocalPki(self.ca, name=AUTHORITY_NAME)
        for node_id in nodes:
            served = [name for name, home in departments.values() if home == node_id]
            pki.issue_node(node_id, f"{served[0]}交换节点" if served else f"交换节点 {node_id}")
        for code, (name, _) in departments.items():
            pki.issue_department(code, name)

        # The file names its certificates relative to itself ("ca/issued"): the demo folder has the same layout.
        compiled = compile_directory(text, lambda name: (self.folder / name).read_bytes(), now=datetime.now(UTC))
        ports = free_ports(n.node_id for n in compiled.nodes)
        local = tuple(replace(n, smtp_host="127.0.0.1", smtp_port=ports[n.node_id]) for n in compiled.nodes)
        self._directory = directory = replace(compiled, nodes=local)
        pki.publish(directory, self.directory_file)
        limits = "，".join(f"{zone}最高{limit}" for zone, limit in directory.policy.limits.items())
        self.say(
            f"   交换目录第 {directory.serial} 版（{source.name}）：{len(directory.nodes)} 个节点，"
            f"{len(directory.links)} 条链路；{limits}；由{AUTHORITY_NAME}签名"
        )

    def start(self) -> None:
        """A node home per node, its daemon started at once (it loads while the next home is written)."""
        self.step("2. 节点：每个节点一个目录，各自运行 gwx node run（SMTP + STARTTLS，双方出示节点证书）")
        directory = self.directory
        for node in directory.nodes:
            self.homes[node.node_id] = self.pki.init_home(
                self.folder / "nodes" / node.node_id,
                node_id=node.node_id,
                listen=node.smtp_endpoint,
                directory=self.directory_file,
                departments=[d.code for d in directory.departments_at(node.node_id)],
                settings=NODE_SETTINGS,
            )
            self.daemons.spawn(node.node_id)  # at once: it loads while the next home is written
        try:
            self.daemons.wait_ready(self.homes)
        except DaemonError as e:
            if e.exit_code is None:
                self.fail(f"节点 {e.node} 在 {START_TIMEOUT:.0f} 秒内未就绪")
            self.fail(f"节点 {e.node} 未能启动（退出码 {e.exit_code}）")
        for node in directory.nodes:
            names = "、".join(d.name for d in directory.departments_at(node.node_id))
            pid = self.daemons.procs[node.node_id].pid
            self.say(f"   {_pad(node.node_id, 8)} {node.zone}  {_pad(node.smtp_endpoint, 16)} pid {pid:<7} {names}")
        self.say(f"   {len(self.homes)} 个节点已就绪（{self.clock()}）")

    # --- the documents ---

    def send_all(self) -> None:
        self.step(f"3. 发文：{len(SAMPLES)} 份示例公文，各由发文机关所在节点签署、加密、发出（即 gwx send）")
        for name in SAMPLES:
            description = self.examples / name
            doc = load_description_file(description)
            sender = doc.issuers[0].code  # the lead department sends a joint document
            sender_node = self.directory.department(sender).home_node
            co_signers = [self.signer_of(d.code) for d in doc.issuers[1:]]
            at = datetime.now(UTC).replace(microsecond=0)
            sent = send_document(
                self.context(sender_node), sender, doc, attachment_files(description), at=at, co_signers=co_signers
            )
            label = f"{doc.kind} {doc.doc_number.text}"
            self.sent.append(_Sent(label, sent.message_id, sender_node, sent.route.recipients))
            self.show_route(label, doc, sent.route, sent.message_id)

    def show_route(self, label: str, doc: Document, route: RoutePlan, message_id: str) -> None:
        directory = self.directory
        flags = "，".join([str(doc.classification)] + ([str(doc.urgency)] if doc.urgency else []))
        issuers = "、".join(directory.department(d.code).name for d in doc.issuers)
        joint = "（联合发文，依次签署）" if doc.is_joint else ""
        self.say(f"\n   {label}《{doc.title}》（{flags}）")
        self.say(f"   {issuers}{joint} 自节点 {route.sender_node} 发出，报文编号 {message_id}")
        # The route the same recipients would take if 密级 set no limit: where they differ, a zone was avoided.
        free = plan(directory, route.sender_node, route.recipients, Classification.PUBLIC)
        for code in route.recipients:
            path = route.path(code)
            self.say(f"     → {_pad(directory.department(code).name, 22)} {format_path(directory, path)}")
            if free.path(code) != path:
                zones = [
                    z
                    for z in Zone
                    if z in _zones(directory, free.path(code)) and not directory.policy.allows(z, doc.classification)
                ]
                avoided = "、".join(f"{z}（最高{directory.policy.limit(z)}）" for z in zones)
                self.say(
                    f"       {doc.classification}文件不得经过{avoided}：不走更短的 "
                    f"{format_path(directory, free.path(code))}，改走上面这条 {len(path) - 1} 跳的路由"
                )

    def sign_for_all(self) -> None:
        self.step("5. 签收：每个收文机关的收发员签收收件箱中的公文（即 gwx sign-for），签收回执发回发文机关")
        labels = {s.message_id: s.label for s in self.sent}
        for department in dict.fromkeys(code for s in self.sent for code in s.recipients):
            node = self.directory.department(department).home_node
            ctx = self.context(node)
            for entry in ctx.store.inbox(department):
                if entry.message_id not in labels or entry.state != InboxState.NEW:
                    continue
                at = datetime.now(UTC).replace(microsecond=0)
                answer_document(ctx, department, entry.message_id, ReceiptKind.SIGNED_FOR, at=at)
                name = self.directory.department(department).name
                self.say(f"{self.clock()} {name} 签收 {labels[entry.message_id]}")

    # --- following the outboxes ---

    def follow(self, target: RecipientState, deadline: float, timeout: float) -> None:
        """Print every state change until each document × recipient reaches ``target`` (or fail)."""
        if target is RecipientState.DELIVERED:
            self.step("4. 传输：发文机关发件箱中每个收文机关的状态（回执逐跳返回）")
        while True:
            self.poll()
            failed = [(k, s) for k, s in self.states.items() if s in (RecipientState.FAILED, RecipientState.RETURNED)]
            if failed:
                self.fail(f"有公文{failed[0][1]}", target)
            if not self.short_of(target):
                return
            for node_id in self.homes:
                if not self.daemons.running(node_id):
                    self.fail(f"节点 {node_id} 意外退出（退出码 {self.daemons.exit_code(node_id)}）", target)
            if time.monotonic() > deadline:
                self.fail(f"{timeout:g} 秒内未完成", target)
            time.sleep(POLL)

    def state(self, sent: _Sent, recipient: str) -> RecipientState:
        return self.states.get((sent.message_id, recipient), RecipientState.QUEUED)

    def short_of(self, target: RecipientState) -> list[tuple[_Sent, str]]:
        """Document × recipient not at ``target``: behind it, or failed or returned on the way."""
        stuck = (RecipientState.FAILED, RecipientState.RETURNED)
        return [
            (sent, r)
            for sent in self.sent
            for r in sent.recipients
            if self.state(sent, r).rank < target.rank or (self.state(sent, r) in stuck and target not in stuck)
        ]

    def poll(self) -> None:
        labels = {s.message_id: s for s in self.sent}
        for node in dict.fromkeys(s.sender_node for s in self.sent):
            for view in self.context(node).store.outbox():
                sent = labels.get(view.message_id)
                if sent is None:
                    continue
                for recipient, state, _ in view.recipients:
                    key = (view.message_id, recipient)
                    if self.states.get(key) != state:
                        self.states[key] = state
                        name = self.directory.department(recipient).name
                        self.say(f"{self.clock()} {sent.label} → {name}：{_WORDS.get(state, state.value)}")

    def summary(self) -> tuple[tuple[str, str, str], ...]:
        pairs = sum(len(sent.recipients) for sent in self.sent)
        rows = self.table(f"6. 结果：{len(self.sent)} 份公文，{pairs} 个收文，用时 {self.elapsed():.1f} 秒")
        sender = self.homes[self.sent[0].sender_node]
        receiver = self.homes[self.directory.department(self.sent[0].recipients[0]).home_node]
        self.say(f"\n节点目录在 {self.folder / 'nodes'}（每个节点的日志：node.log），节点停止后仍可查看：")
        self.say(f"   gwx node status {sender}")
        self.say(f"   gwx outbox --home {sender}")
        self.say(f"   gwx inbox --home {receiver}")
        return rows

    def table(self, title: str) -> tuple[tuple[str, str, str], ...]:
        """Every document × recipient with the state its sender's outbox shows."""
        rows = tuple(
            (sent.label, self.directory.department(r).name, _WORDS.get(self.state(sent, r), self.state(sent, r).value))
            for sent in self.sent
            for r in sent.recipients
        )
        self.step(title)
        width = max((_width(row[0]) for row in rows), default=0) + 2
        self.say(f"   {_pad('公文', width)}{_pad('收文机关', 24)}状态")
        for label, name, state in rows:
            self.say(f"   {_pad(label, width)}{_pad(name, 24)}{state}")
        return rows

    # --- helpers ---

    def context(self, node_id: str) -> NodeContext:
        """The node's keys, directory and store, as a clerk's command opens them beside the running daemon."""
        if node_id not in self.contexts:
            self.contexts[node_id] = load_context(NodeConfig.load(self.homes[node_id]))
        return self.contexts[node_id]

    def signer_of(self, department: str) -> Signer:
        """A co-issuing department's signing key, from the demo's PKI (at its own node, in real life)."""
        return self.pki.signer(department)

    def fail(self, reason: str, target: RecipientState | None = None) -> None:
        if self.sent:
            self.table("未完成：各收文机关此刻的状态")
        self.say("\n节点日志（最后几行）：")
        for node_id in self.homes:
            log = self.daemons.log_path(node_id)
            self.say(f"--- {node_id}（{log}）")
            for line in _tail(log):
                self.say(f"    {line}")
        if target is None:
            raise GwxError(f"演示未完成：{reason}")
        pending: dict[str, list[str]] = {}
        for sent, r in self.short_of(target):
            state = self.state(sent, r)
            pending.setdefault(sent.label, []).append(
                f"{self.directory.department(r).name}（{_WORDS.get(state, state.value)}）"
            )
        pending_text = "；".join(f"{label} → {'、'.join(names)}" for label, names in pending.items())
        raise GwxError(f"演示未完成：{reason}；未{target}：{pending_text or '无'}")

    def close(self) -> None:
        """Stop every daemon, then close the stores."""
        try:
            self.stop_daemons()
        finally:
            for ctx in self.contexts.values():
                ctx.close()
            self.contexts.clear()

    def stop_daemons(self) -> None:
        """SIGTERM (a node stops cleanly), then SIGKILL whatever outlives the grace period or a second Ctrl-C."""
        gone = {n: self.daemons.exit_code(n) for n in self.daemons.procs if not self.daemons.running(n)}
        codes = self.daemons.stop_all(STOP_GRACE)
        if not codes and not gone:
            return
        killed = [n for n, code in codes.items() if code == -signal.SIGKILL]
        clean = sum(1 for code in codes.values() if code == 0)
        notes = [f"{len(codes)} 个节点进程已停止（SIGTERM），{clean} 个正常退出"]
        if killed:
            notes.append(f"{'、'.join(killed)} 超时未退出，已强制结束（SIGKILL）")
        if gone:
            notes.append("此前已退出：" + "、".join(f"{n}（退出码 {code}）" for n, code in gone.items()))
        self.say("\n" + "；".join(notes))

    def step(self, title: str) -> None:
        self.say(f"\n== {title}")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def clock(self) -> str:
        return f"[{self.elapsed():5.1f}s]"


def _zones(directory: Directory, path: tuple[str, ...]) -> set[Zone]:
    """The zones a path passes: its nodes' and its links'."""
    zones = {directory.node(n).zone for n in path}
    zones.update(link.zone for a, b in itertools.pairwise(path) if (link := directory.link_between(a, b)))
    return zones


def _tail(log: Path) -> list[str]:
    """The last lines of a node log, without the SMTP library's chatter."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if "logger=mail.log" not in line][-TAIL_LINES:]


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    """Pad to ``width`` terminal columns (a CJK character takes two)."""
    return text + " " * max(width - _width(text), 0)


__all__ = [
    "AUTHORITY_NAME",
    "NODE_SETTINGS",
    "POLL",
    "SAMPLES",
    "STOP_GRACE",
    "TAIL_LINES",
    "DemoResult",
    "Say",
    "examples_folder",
    "run_demo",
]
