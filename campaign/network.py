"""The campaign's harness: the local network of ``gwexchange.cli.local_network`` (the one ``gwx demo``, the tests and
the benchmark run) shaped into topologies, with a clerk per node, readers of every store, and the checker.

* ``CampaignPki`` — a ``LocalPki`` that issues, on demand, the node and department certificates every topology of
  the run needs.
* ``Topology`` / ``two_hubs`` / ``one_hub`` — nodes (two hubs linked together, leaves hanging off them
  alternately; or one hub), the departments each serves, the links.
* ``Network`` — a signed directory with fresh ports on 127.0.0.1 and one home per node; its daemons (``Daemons``)
  started with an environment of their own (a kill point, an injected disk fault), SIGKILLed, SIGTERMed,
  restarted; a clerk per node that sends as ``gwx send`` does (``clerk.send_document``) and signs for as ``gwx
  sign-for`` does (``clerk.answer_document``); readers of every store. Every daemon dies with the network: at
  ``close()`` (a context manager), at interpreter exit, and — on Linux — with the campaign process itself.
* ``check`` — the queue checker: no acknowledged document lost, none filed twice, every receipt back, every queue
  drained, every Merkle log verifying with each message id once, tree-head times strictly increasing.

Waits are bounded everywhere; a daemon's output goes to ``<network>/logs/<node>.log`` (appended over restarts).
"""

from __future__ import annotations

import atexit
import json
import os
import sqlite3
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from gwexchange.archive.head_store import TreeHeadStore
from gwexchange.archive.log import ENTRIES_FILE, MerkleLog
from gwexchange.archive.log_verify import verify_log
from gwexchange.cli.local_network import Daemons, LocalPki, free_ports, local_directory
from gwexchange.envelope.model import Attachment, Classification, Department, DocKind, DocNumber, Document
from gwexchange.envelope.receipts import ReceiptKind
from gwexchange.envelope.sealing import DEFAULT_LIFETIME
from gwexchange.files import measure_file
from gwexchange.pki.keyfiles import KEY_PASSPHRASE_ENV
from gwexchange.routing.clerk import answer_document, send_document
from gwexchange.routing.context import NodeContext, load_context, load_trust
from gwexchange.routing.home import NodeConfig
from gwexchange.routing.mime import envelope_message_id
from gwexchange.routing.node_logic import InboxState, RecipientState
from gwexchange.routing.store_tables import InboxEntry, OutboxMessage, OutboxRecipient, QueueItem, StoredEnvelope

AUTHORITY = "gd.gov.ca"
POLL = 0.05

NEW = InboxState.NEW.value
# The store's tables as the campaign reads them with plain SQL (checked against the models: a rename fails here).
_TABLES = {
    InboxEntry: "inbox_entry",
    OutboxMessage: "outbox_message",
    OutboxRecipient: "outbox_recipient",
    QueueItem: "queue_item",
    StoredEnvelope: "envelope",
}
for _model, _table in _TABLES.items():
    if getattr(_model, "__tablename__", None) != _table:
        raise ImportError(f"the store's table of {_model.__name__} is no longer {_table!r}: update campaign/network.py")
SIGNED_FOR = RecipientState.SIGNED_FOR.value
DELIVERED = RecipientState.DELIVERED.value
FAILED = RecipientState.FAILED.value


class CampaignError(Exception):
    """The harness could not do what it was asked (a daemon would not start, a wait ran out)."""


# --- topology --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeSpec:
    node_id: str
    departments: tuple[str, ...]
    hub: bool = False


@dataclass(frozen=True)
class Topology:
    nodes: tuple[NodeSpec, ...]
    links: tuple[tuple[str, str], ...]

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(n.node_id for n in self.nodes)

    @property
    def departments(self) -> dict[str, str]:
        """Department code → its home node."""
        return {code: n.node_id for n in self.nodes for code in n.departments}

    def node(self, node_id: str) -> NodeSpec:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(node_id)

    def home_of(self, code: str) -> str:
        return self.departments[code]


def department_code(node_id: str, k: int) -> str:
    return f"gd.{node_id}.d{k}"


def one_hub(leaves: int = 2, departments_per_leaf: int = 1, departments_per_hub: int = 1) -> Topology:
    """hub-a with leaf-1 … leaf-N around it: the shortest network with a relay between sender and recipient."""
    hub = NodeSpec("hub-a", tuple(department_code("hub-a", k) for k in range(1, departments_per_hub + 1)), True)
    nodes = [hub]
    for i in range(1, leaves + 1):
        leaf = f"leaf-{i}"
        nodes.append(NodeSpec(leaf, tuple(department_code(leaf, k) for k in range(1, departments_per_leaf + 1))))
    return Topology(tuple(nodes), tuple((hub.node_id, n.node_id) for n in nodes[1:]))


def two_hubs(leaves: int = 2, departments_per_leaf: int = 1, departments_per_hub: int = 1) -> Topology:
    """hub-a ── hub-b, leaf-1 on hub-a, leaf-2 on hub-b, leaf-3 on hub-a, …; each node serves departments
    ``gd.<node>.d1`` … (the hubs too: a provincial office sits at its hub)."""
    hubs = ("hub-a", "hub-b")
    nodes = [NodeSpec(h, tuple(department_code(h, k) for k in range(1, departments_per_hub + 1)), True) for h in hubs]
    links = [(hubs[0], hubs[1])]
    for i in range(1, leaves + 1):
        leaf = f"leaf-{i}"
        nodes.append(NodeSpec(leaf, tuple(department_code(leaf, k) for k in range(1, departments_per_leaf + 1))))
        links.append((hubs[(i - 1) % 2], leaf))
    return Topology(tuple(nodes), tuple(links))


# --- the PKI ---------------------------------------------------------------------------------------------------


def department_name(code: str) -> str:
    return f"演练机关（{code}）"


class CampaignPki(LocalPki):
    """A root that issues what each topology needs, once; keys unencrypted (a drill, not a deployment)."""

    def __init__(self, home: Path, *, start: datetime | None = None) -> None:
        # Valid from well before now: a document dated back (an envelope close to expiry) still verifies.
        start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
        super().__init__(home, name="广东省电子政务安全中心（演练）", start=start, code=AUTHORITY)

    def ensure(self, topology: Topology) -> None:
        for spec in topology.nodes:
            self.issue_node(spec.node_id, f"{spec.node_id} 交换节点（演练）")
            for code in spec.departments:
                self.issue_department(code, department_name(code))


# --- documents -------------------------------------------------------------------------------------------------


def attachment_file(folder: Path, size: int) -> Path:
    """A file of ``size`` random bytes in ``folder``, made once per size."""
    path = folder / f"attachment-{size}.bin"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            left = size
            while left:
                chunk = os.urandom(min(left, 1 << 20))
                f.write(chunk)
                left -= len(chunk)
        tmp.replace(path)
    return path


def letter(
    serial: int,
    sender: str,
    to: Sequence[str],
    cc: Sequence[str] = (),
    *,
    attachments: Sequence[Path] = (),
    body_lines: int = 2,
) -> tuple[Document, dict[str, Path]]:
    """A 函 numbered ``serial`` (its 发文字号 and title name it, so each document is recognisable in any inbox)."""
    name = department_name(sender)
    attached = []
    for i, path in enumerate(attachments, start=1):
        size, digest = measure_file(path)
        attached.append(Attachment(f"演练附件{i}", path.name, "application/octet-stream", size, digest))
    body = (
        "一、演练事项",
        f"这是第{serial}份演练公文，请按程序签收。",
        *(f"（{i}）本段为填充正文，用于检验不同长度的公文在交换网络中的传递。" for i in range(1, body_lines - 1)),
    )
    doc = Document(
        kind=DocKind.LETTER,
        classification=Classification.PUBLIC,
        issuers=(Department(sender, name),),
        issuer_mark=name,
        doc_number=DocNumber(f"演练函〔2026〕{serial}号"),
        title=f"关于演练公文{serial}的函",
        body=body,
        signature_names=(name,),
        date=datetime.now(UTC).date(),
        main_recipients=tuple(Department(c, department_name(c)) for c in to),
        copy_recipients=tuple(Department(c, department_name(c)) for c in cc),
        attachment_note=tuple(a.title for a in attached),
        attachments=tuple(attached),
    )
    return doc, {p.name: p for p in attachments}


@dataclass(frozen=True, slots=True)
class Sent:
    """A document whose send returned: queued at its sender, so it must reach everyone (the acknowledged set).
    ``expect`` is each recipient's final state at the sender (签收 unless the scenario says otherwise)."""

    message_id: str
    serial: int
    sender: str
    sender_node: str
    recipients: tuple[str, ...]
    expect: Mapping[str, str] = field(default_factory=dict)

    def expected(self, recipient: str) -> str:
        return self.expect.get(recipient, SIGNED_FOR)


# --- processes -------------------------------------------------------------------------------------------------

_LIVE: weakref.WeakSet[Network] = weakref.WeakSet()


def _close_all() -> None:
    for net in list(_LIVE):
        net.close()


atexit.register(_close_all)


@dataclass(frozen=True)
class NodeSettings:
    """Production waits are minutes; a drill's are fractions of a second."""

    tick_seconds: float = 0.5  # a received envelope wakes the sender at once; the tick finds what clerks queued
    retry_base_seconds: float = 0.2
    retry_cap_seconds: float = 0.5
    send_timeout_seconds: float = 20.0
    tree_head_seconds: float = 1.0

    def extra(self) -> dict[str, float]:
        return {
            "tick_seconds": self.tick_seconds,
            "retry_base_seconds": self.retry_base_seconds,
            "retry_cap_seconds": self.retry_cap_seconds,
            "send_timeout_seconds": self.send_timeout_seconds,
            "tree_head_seconds": self.tree_head_seconds,
        }


@dataclass(frozen=True, slots=True)
class QueueRow:
    message_id: str
    next_hop: str
    state: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class InboxRow:
    department: str
    message_id: str
    document_sha256: str
    state: str


class Network(Daemons):
    """Node homes under ``folder`` for ``topology``, with their daemons (``Daemons``: logs in ``folder/logs``) and
    clerks. Use as a context manager."""

    def __init__(
        self,
        folder: Path,
        topology: Topology,
        pki: CampaignPki,
        settings: NodeSettings | None = None,
    ) -> None:
        os.environ.pop(KEY_PASSPHRASE_ENV, None)  # the drill's keys are unencrypted: the clerks load them too
        self.folder = folder
        self.topology = topology
        self.pki = pki
        self.settings = settings or NodeSettings()
        folder.mkdir(parents=True, exist_ok=True)
        pki.ensure(topology)
        self.ports = free_ports(topology.node_ids)
        departments = {code: (department_name(code), node) for code, node in topology.departments.items()}
        directory = local_directory(pki, self.ports, departments, topology.links)
        self.directory_path = pki.publish(directory, folder / "directory.signed.xml")
        homes: dict[str, Path] = {}
        for spec in topology.nodes:
            homes[spec.node_id] = pki.init_home(
                folder / "nodes" / spec.node_id,
                node_id=spec.node_id,
                listen=f"127.0.0.1:{self.ports[spec.node_id]}",
                directory=self.directory_path,
                departments=spec.departments,
                settings=self.settings.extra(),
            )
        super().__init__(homes, logs=folder / "logs")
        self.homes: dict[str, Path] = homes
        self._contexts: dict[str, NodeContext] = {}
        self._readers: dict[str, Engine] = {}
        self._sql: dict[str, sqlite3.Connection] = {}
        self._sql_lock = threading.Lock()
        self.skews: dict[str, timedelta] = {}  # a node's clock − the real clock, for its clerk (see network_faults)
        _LIVE.add(self)

    def __enter__(self) -> Network:
        return self

    def close(self) -> None:
        """Kill every daemon still running and close the clerks' stores. Idempotent."""
        super().close()
        with self._sql_lock:
            for conn in self._sql.values():
                conn.close()
            self._sql.clear()
        for ctx in self._contexts.values():
            ctx.close()
        self._contexts.clear()
        self._readers.clear()
        _LIVE.discard(self)

    # --- the clerks ---

    def now(self, node: str) -> datetime:
        """The clock of ``node``'s machine, which its clerk's commands read."""
        return datetime.now(UTC) + self.skews.get(node, timedelta(0))

    def context(self, node: str) -> NodeContext:
        """The clerk's view of a node home (as ``gwx send`` opens it), kept open for the run."""
        ctx = self._contexts.get(node)
        if ctx is None:
            ctx = self._contexts[node] = load_context(NodeConfig.load(self.homes[node]))
        return ctx

    def send(
        self,
        serial: int,
        sender: str,
        to: Sequence[str],
        cc: Sequence[str] = (),
        *,
        attachments: Sequence[Path] = (),
        body_lines: int = 2,
        at: datetime | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
        expect: Mapping[str, str] | None = None,
    ) -> Sent:
        """Send a letter as ``gwx send`` does; the returned ``Sent`` is acknowledged (queued at the sender)."""
        node = self.topology.home_of(sender)
        doc, files = letter(serial, sender, to, cc, attachments=attachments, body_lines=body_lines)
        sent = send_document(self.context(node), sender, doc, files, at=at or self.now(node), lifetime=lifetime)
        return Sent(sent.message_id, serial, sender, node, (*to, *cc), dict(expect or {}))

    def sign_for(self, department: str, message_id: str) -> None:
        """签收, as ``gwx sign-for`` does."""
        node = self.topology.home_of(department)
        answer_document(self.context(node), department, message_id, ReceiptKind.SIGNED_FOR, at=self.now(node))

    def sign_for_new(self, nodes: Iterable[str] | None = None) -> int:
        """Every clerk signs for what is new in its inbox; how many were signed for."""
        count = 0
        for node in nodes or self.topology.node_ids:
            if not self.topology.node(node).departments:
                continue
            rows = self.query(node, "SELECT department, message_id FROM inbox_entry WHERE state = ?", NEW)
            for department, message_id in rows:
                self.sign_for(department, message_id)
                count += 1
        return count

    # --- reading the stores ---
    # Plain read-only SQLite connections, kept open: the campaign polls the stores many times a second, and an
    # ORM session per poll would cost more CPU than the nodes it watches. Under WAL a reader never waits for the
    # daemon's writer, and sees every transaction committed before its query began.

    def query(self, node: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with self._sql_lock:
            conn = self._sql.get(node)
            if conn is None:
                url = NodeConfig.load(self.homes[node]).database_url
                if not url.startswith("sqlite:///"):
                    raise CampaignError(f"{node}: the campaign reads SQLite stores only, not {url}")
                path = Path(url.removeprefix("sqlite:///"))
                conn = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    timeout=10,
                    isolation_level=None,
                    check_same_thread=False,
                )
                self._sql[node] = conn
            return conn.execute(sql, args).fetchall()

    def reader(self, node: str) -> Engine:
        """A read-only SQLAlchemy engine on the node's store (for tests that want the models)."""
        engine = self._readers.get(node)
        if engine is None:
            engine = self._readers[node] = self.context(node).store.engine.execution_options(read_only=True)
        return engine

    def outbox_states(self, node: str, message_ids: Iterable[str] | None = None) -> dict[tuple[str, str], str]:
        """(message id, recipient) → state, for what departments at ``node`` sent."""
        if message_ids is None:
            rows = self.query(node, "SELECT message_id, recipient, state FROM outbox_recipient")
        else:
            rows = self.query(
                node,
                "SELECT message_id, recipient, state FROM outbox_recipient"
                " WHERE message_id IN (SELECT value FROM json_each(?))",
                json.dumps(list(message_ids)),
            )
        return {(m, r): st for m, r, st in rows}

    def sent_documents(self, node: str) -> dict[str, str]:
        """message id → document SHA-256 of everything sent from ``node``."""
        return dict(self.query(node, "SELECT message_id, document_sha256 FROM outbox_message"))

    def inbox(self, node: str) -> list[InboxRow]:
        rows = self.query(node, "SELECT department, message_id, document_sha256, state FROM inbox_entry")
        return [InboxRow(*row) for row in rows]

    def queue(self, node: str) -> list[QueueRow]:
        rows = self.query(node, "SELECT message_id, next_hop, state, attempts, last_error FROM queue_item")
        return [QueueRow(*row) for row in rows]

    def envelope_ids(self, node: str) -> list[str]:
        return [m for (m,) in self.query(node, "SELECT message_id FROM envelope")]

    def seen(self, node: str, message_id: str) -> bool:
        return self.context(node).store.seen(message_id)

    def log_ids(self, node: str) -> list[str]:
        """The message id of every entry of the node's Merkle log, in log order (read a stopped node's log)."""
        with MerkleLog(self.homes[node] / "log") as merkle:
            return [envelope_message_id(xml) for _, xml in merkle.iter_entries()]

    def head_times(self, node: str) -> list[datetime]:
        return [h.timestamp for h in TreeHeadStore(self.homes[node] / "log" / "heads")]

    def trust_of(self, node: str) -> Any:
        return load_trust(NodeConfig.load(self.homes[node]))


# --- waiting ---------------------------------------------------------------------------------------------------


def settled(net: Network, sent: Iterable[Sent]) -> tuple[bool, list[str]]:
    """Whether every document stands at its expected state for every recipient at its sender; what does not."""
    by_node: dict[str, list[Sent]] = {}
    for doc in sent:
        by_node.setdefault(doc.sender_node, []).append(doc)
    pending: list[str] = []
    for node, docs in by_node.items():
        states = net.outbox_states(node, [d.message_id for d in docs] if len(docs) <= 200 else None)
        for doc in docs:
            for code in doc.recipients:
                state = states.get((doc.message_id, code), "missing")
                if state != doc.expected(code):
                    pending.append(f"#{doc.serial} {doc.message_id} → {code}: {state}")
    return not pending, pending


def queued(net: Network) -> list[str]:
    """Every copy still waiting in some node's queue."""
    return [
        f"{node}: {q.message_id} → {q.next_hop} ({q.attempts} attempts: {q.last_error})"
        for node in net.topology.node_ids
        for q in net.queue(node)
        if q.state == "queued"
    ]


def drive(
    net: Network,
    sent: Sequence[Sent],
    timeout: float,
    *,
    sign: bool = True,
    drain: bool = False,
    each: Callable[[], None] | None = None,
    interval: float = 0.1,
    stall: float | None = None,
) -> list[str]:
    """Sign for what arrives and wait until every document is settled — and, with ``drain``, every queue at every
    node is empty (a copy sent again after a crash is still work in flight); what is still pending when the wait
    ended (empty: all done). The wait ends after ``timeout`` seconds, or — with ``stall`` — as soon as nothing has
    moved for ``stall`` seconds: a slow machine is not a stuck network. ``each`` runs every round (restarts a
    crashed daemon)."""
    start = moved = time.monotonic()
    pending: list[str] = []
    while True:
        if each is not None:
            each()
        if sign:
            net.sign_for_new()
        done, now_pending = settled(net, sent)
        if done and drain:
            now_pending = queued(net)
            done = not now_pending
        if done:
            return []
        if now_pending != pending:
            pending, moved = now_pending, time.monotonic()
        now = time.monotonic()
        if now - start > timeout or (stall is not None and now - moved > stall):
            return pending
        time.sleep(interval)


# --- the checker -----------------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the queue checker found after the run (every daemon stopped)."""

    documents: int = 0
    deliveries: int = 0
    repeats: int = 0  # copies a node received again and dropped as duplicates (a sender that could not record)
    lost: list[str] = field(default_factory=list)  # acknowledged, not filed at a recipient
    duplicated: list[str] = field(default_factory=list)  # filed twice, or twice in one Merkle log
    unreceipted: list[str] = field(default_factory=list)  # delivered, but the sender does not hold the receipt
    stuck: list[str] = field(default_factory=list)  # a copy still queued, or failed unexpectedly
    phantom: list[str] = field(default_factory=list)  # filed, but never acknowledged to a sender
    logs: list[str] = field(default_factory=list)  # verify_log problems, log ≠ store, head times
    exits: list[str] = field(default_factory=list)  # a clean stop that was not clean
    unsettled: list[str] = field(default_factory=list)  # still pending when the final wait ran out

    @property
    def ok(self) -> bool:
        return not self.problems()

    @property
    def lost_documents(self) -> int:
        """Documents (not deliveries) lost: those with a recipient they never reached."""
        return len({item.split()[1] for item in self.lost})

    @property
    def duplicated_documents(self) -> int:
        return len(self.duplicated)

    def problems(self) -> list[str]:
        out: list[str] = []
        for name in ("unsettled", "lost", "duplicated", "unreceipted", "stuck", "phantom", "logs", "exits"):
            items: list[str] = getattr(self, name)
            out += [f"{name}: {item}" for item in items[:20]]
            if len(items) > 20:
                out.append(f"{name}: … and {len(items) - 20} more")
        return out


def check(
    net: Network,
    sent: Sequence[Sent],
    *,
    stop_codes: Mapping[str, int] | None = None,
    failed_hops: Iterable[str] = (),
) -> Verdict:
    """Jepsen's queue checker over the stores and logs of a network whose daemons have all stopped.

    ``failed_hops`` are message ids whose queued copies may end failed (an expiry scenario); ``stop_codes`` are
    the exit codes of the final SIGTERM (each must be 0).
    """
    if any(net.running(n) for n in net.topology.node_ids):
        raise CampaignError("check() reads the logs of stopped nodes: stop every daemon first")
    v = Verdict(documents=len(sent))
    allowed_failed = set(failed_hops)
    for node, exit_code in (stop_codes or {}).items():
        if exit_code != 0:
            v.exits.append(f"{node} exited {exit_code} at SIGTERM\n{net.log_tail(node, 1500)}")
    acked = {d.message_id: d for d in sent}
    digests: dict[str, str] = {}
    for node in {d.sender_node for d in sent}:
        digests.update(net.sent_documents(node))
    inboxes = {node: net.inbox(node) for node in net.topology.node_ids}
    filed: Counter[tuple[str, str]] = Counter()
    for node, rows in inboxes.items():
        by_document: Counter[tuple[str, str]] = Counter()
        for row in rows:
            filed[(row.department, row.message_id)] += 1
            by_document[(row.department, row.document_sha256)] += 1
            if row.message_id not in acked:
                v.phantom.append(f"{row.message_id} in the inbox of {row.department} at {node}")
            elif digests.get(row.message_id) != row.document_sha256:
                v.phantom.append(f"{row.message_id} at {row.department}: not the document its sender sent")
        v.duplicated += [
            f"document {h[:16]}… filed {n} times for {d} at {node}" for (d, h), n in by_document.items() if n > 1
        ]
    v.duplicated += [f"{m} filed {n} times for {d}" for (d, m), n in filed.items() if n > 1]
    states: dict[tuple[str, str], str] = {}
    for node in {d.sender_node for d in sent}:
        states.update(net.outbox_states(node))
    for doc in sent:
        for code in doc.recipients:
            expected = doc.expected(code)
            state = states.get((doc.message_id, code), "missing")
            in_inbox = filed.get((code, doc.message_id), 0) > 0
            if expected in (DELIVERED, SIGNED_FOR):
                v.deliveries += 1
                if not in_inbox:
                    v.lost.append(f"#{doc.serial} {doc.message_id} never filed for {code} (sender sees {state})")
                elif state != expected:
                    v.unreceipted.append(f"#{doc.serial} {doc.message_id} → {code}: {state}, not {expected}")
            else:
                if in_inbox:
                    v.phantom.append(f"#{doc.serial} {doc.message_id} filed for {code} though it should be {expected}")
                if state != expected:
                    v.unreceipted.append(f"#{doc.serial} {doc.message_id} → {code}: {state}, not {expected}")
    for node in net.topology.node_ids:
        log = net.log_path(node)
        if log.is_file():
            with log.open("rb") as f:
                v.repeats += sum(b"event=node.duplicate " in line for line in f)
        for q in net.queue(node):
            if q.state == "sent" or (q.state == "failed" and q.message_id in allowed_failed):
                continue
            v.stuck.append(
                f"{node}: {q.message_id} → {q.next_hop} {q.state} after {q.attempts} attempts ({q.last_error})"
            )
        _check_log(net, node, v)
    return v


def _check_log(net: Network, node: str, v: Verdict) -> None:
    home = net.homes[node]
    if not (home / "log" / ENTRIES_FILE).is_file():  # never ran: it must hold nothing, then
        if net.envelope_ids(node):
            v.logs.append(f"{node}: holds envelopes but has no Merkle log (it never ran)")
        return
    report = verify_log(home / "log", trust=net.trust_of(node), node_id=node)
    if not report.ok:
        v.logs.append(f"{node}: verify_log: " + "; ".join(p.message for p in report.problems[:3]))
    ids = net.log_ids(node)
    twice = [m for m, n in Counter(ids).items() if n > 1]
    v.duplicated += [f"{m} twice in the Merkle log of {node}" for m in twice]
    stored = set(net.envelope_ids(node))
    if stored != set(ids):
        missing, extra = stored - set(ids), set(ids) - stored
        v.logs.append(f"{node}: log ≠ store ({len(missing)} stored but not logged, {len(extra)} logged but not stored)")
    times = net.head_times(node)
    if not times:
        v.logs.append(f"{node}: no tree head signed")
    backwards = [i for i in range(1, len(times)) if times[i] <= times[i - 1]]
    if backwards:
        v.logs.append(f"{node}: tree-head times not strictly increasing at heads {backwards[:5]}")
    heads = list(TreeHeadStore(home / "log" / "heads"))
    if heads and heads[-1].size != report.size:
        v.logs.append(f"{node}: the last tree head covers {heads[-1].size} entries, the log has {report.size}")


def finish(
    net: Network,
    sent: Sequence[Sent],
    timeout: float,
    *,
    failed_hops: Iterable[str] = (),
    sign: bool = True,
    each: Callable[[], None] | None = None,
    interval: float = 0.1,
    before_stop: Callable[[], None] | None = None,
    stall: float | None = 60.0,
) -> Verdict:
    """The end of a scenario: wait until everything settled and every queue drained (at most ``timeout`` seconds,
    and no longer than ``stall`` seconds without progress), SIGTERM every daemon (each must exit 0), and run the
    checker."""
    pending = drive(net, sent, timeout, sign=sign, drain=True, each=each, interval=interval, stall=stall)
    if before_stop is not None:
        before_stop()
    codes = net.stop_all()
    verdict = check(net, sent, stop_codes=codes, failed_hops=failed_hops)
    if pending:
        verdict.unsettled.append(f"{len(pending)} after {timeout:.0f} s: " + "; ".join(pending[:10]))
    return verdict
