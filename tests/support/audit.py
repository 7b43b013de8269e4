"""A small exchange network played in-process, written to real node homes, for the audit tests.

    src (src.gov.office) ── hub (hub.gov.office) ── one (one.gov.office)

Three node homes (``node.toml``, ``node.db``, ``log/``, ``peer-heads``) made by the routing library's own decisions
(``node_logic``) over real stores, with real sealed envelopes and signed receipts: each accepted envelope is
appended to the node's Merkle log as the daemon does it (indices assigned in the store, then appended), a tree head
is signed whenever the log grew, and every transfer hands the sender's latest head to the receiver's
``peer-heads``. The traffic:

* D1 from src.gov.office to one.gov.office and hub.gov.office: delivered at both (送达); one signs for it (签收),
  hub returns it (退回);
* D2 to one.gov.office: delivered and signed for;
* D3 to one.gov.office, expired on the way: hub answers 投递失败.

Everything is dated from the real clock (a little in the past), so ``gwx`` and the library's default clock agree.
Not a test module: the audit tests import it (pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gwexchange.archive.head_store import PeerHeads, TreeHeadStore
from gwexchange.archive.log import MerkleLog
from gwexchange.crypto.certificates import Role, Usage
from gwexchange.crypto.keys import UnsafeUnencrypted
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.envelope.model import Classification, Department, DocKind, DocNumber, Document
from gwexchange.envelope.receipts import ReceiptKind
from gwexchange.envelope.sealing import Sealed, inspect, seal
from gwexchange.envelope.signing import sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.network.directory import DepartmentEntry, Directory, Link, NodeEntry, Zone, ZonePolicy
from gwexchange.network.directory_xml import sign_directory
from gwexchange.routing.node_logic import DepartmentKeys, Hop, NodeView, answer, attempt_succeeded, originate, receive
from gwexchange.routing.store import Store

NODES = ("src", "hub", "one")
AUTHORITY = "gd.gov.ca"
SENDER = "src.gov.office"
DEPARTMENTS = {
    SENDER: ("广东省发文测试厅", "src"),
    "hub.gov.office": ("广东省枢纽测试厅", "hub"),
    "one.gov.office": ("广东省第一测试厅", "one"),
}


@dataclass
class World:
    """The network's files and who sent what: ``homes`` per node, the message ids by name (D1, D2, D3)."""

    folder: Path
    homes: dict[str, Path]
    pki: Any
    trust: TrustPolicy
    directory_file: Path
    root_file: Path
    crl_file: Path
    messages: dict[str, str] = field(default_factory=dict)
    start: datetime = field(default_factory=lambda: datetime.now(UTC))

    def copy(self, target: Path) -> dict[str, Path]:
        """Fresh copies of the three homes under ``target`` (to tamper with)."""
        homes = {}
        for node, home in self.homes.items():
            homes[node] = target / node
            shutil.copytree(home, homes[node])
        return homes

    def node_signer(self, node: str) -> Any:
        return self.pki.signer(node, Usage.NODE)


class _Net:
    def __init__(self, world: World, views: dict[str, NodeView], clock: datetime) -> None:
        self.world = world
        self.views = views
        self.clock = clock
        self.stores = {n: Store(world.homes[n]) for n in NODES}
        self.logs = {n: MerkleLog(world.homes[n] / "log", create=True) for n in NODES}
        self.heads = {n: TreeHeadStore(self.logs[n].heads_path) for n in NODES}
        self.peer_heads = {n: PeerHeads(world.homes[n] / "peer-heads") for n in NODES}

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def apply(self, node: str, actions: Any) -> None:
        """Commit a decision, then log what it accepted and sign a head, as the daemon's rounds do."""
        store, merkle = self.stores[node], self.logs[node]
        store.apply(actions)
        store.assign_log_indices()
        while rows := store.logged_from(merkle.size):
            for index, envelope_xml in rows:
                assert index == merkle.size
                merkle.append(envelope_xml)
        merkle.flush()
        latest = self.heads[node].latest
        if latest is None or latest.size != merkle.committed.size:
            self.heads[node].sign(merkle, self.world.node_signer(node), node, self.tick())

    def deliver(self, node: str, hop: Hop) -> None:
        envelope = inspect(self.stores[node].envelope_xml(hop.message_id), self.world.trust)
        head = self.heads[node].latest
        if head is not None:  # every transfer carries the sender's latest head
            self.peer_heads[hop.next_hop].keep(head, node, self.world.trust)
        target = hop.next_hop
        self.apply(target, receive(envelope, self.views[target], self.stores[target], self.tick()))
        self.apply(node, attempt_succeeded(hop, self.tick()))

    def pump(self) -> None:
        while due := [(n, h) for n, s in self.stores.items() for h in s.due(self.clock)]:
            for node, hop in due:
                self.deliver(node, hop)

    def send(self, recipients: tuple[str, ...], title: str, lifetime: timedelta = timedelta(days=7)) -> str:
        at = self.tick()
        sealed = _seal(self.world, recipients, title, at, lifetime)
        self.apply("src", originate(sealed, SENDER, self.views["src"], self.stores["src"], at))
        return sealed.header.message_id

    def answer(self, department: str, message_id: str, kind: ReceiptKind, reason: str | None = None) -> None:
        node = DEPARTMENTS[department][1]
        store = self.stores[node]
        item = store.inbox_item(department, message_id)
        self.apply(node, answer(item, kind, self.views[node], store, self.tick(), reason))

    def close(self) -> None:
        for node in NODES:
            self.heads[node].sign(self.logs[node], self.world.node_signer(node), node, self.tick())  # at the stop
            self.logs[node].close()
            self.stores[node].close()


def document_for(recipients: tuple[str, ...], title: str, day: date) -> Document:
    """A notice of SENDER's to ``recipients``, dated ``day``."""
    name = DEPARTMENTS[SENDER][0]
    return Document(
        kind=DocKind.NOTICE,
        classification=Classification.INTERNAL,
        issuers=(Department(SENDER, name),),
        issuer_mark=f"{name}文件",
        doc_number=DocNumber("粤测发〔2026〕1号"),
        title=f"{name}{title}",
        body=("一、总体要求", "请按要求开展审计测试。"),
        signature_names=(name,),
        date=day,
        main_recipients=tuple(Department(code, DEPARTMENTS[code][0]) for code in recipients),
    )


def _seal(world: World, recipients: tuple[str, ...], title: str, at: datetime, lifetime: timedelta) -> Sealed:
    pki = world.pki
    signed = sign_document(document_to_xml(document_for(recipients, title, at.date())), pki.signer(SENDER), at=at)
    verified = verify_document(signed, world.trust, now=at)
    return seal(
        verified,
        {code: pki.cert(code, Usage.ENCRYPTION) for code in recipients},
        world.node_signer("src"),
        trust=world.trust,
        sender_department=SENDER,
        node_id="src",
        now=at,
        lifetime=lifetime,
    )


def build_world(folder: Path, make_pki: Callable[..., Any]) -> World:
    """Make the PKI, the signed directory, the three homes and the traffic (see the module docstring)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    pki = make_pki(
        start=start - timedelta(days=1),
        protection=UnsafeUnencrypted(),  # throw-away keys: no key derivation at every load
        departments={**{code: name for code, (name, _) in DEPARTMENTS.items()}, AUTHORITY: "安全中心（目录签发）"},
        rsa_department=False,
        node=False,
    )
    for node in NODES:
        pki.issue(node, f"{node} 交换节点", Role.NODE, now=start - timedelta(days=1))
    trust = TrustPolicy(pki.root, (pki.crl(),))
    directory = Directory(
        serial=1,
        issued=start - timedelta(days=1),
        expires=start + timedelta(days=30),
        policy=ZonePolicy(dict.fromkeys(Zone, Classification.TOP_SECRET)),
        nodes=tuple(NodeEntry(n, f"{n}.example", 25, Zone.INTERNAL, pki.cert(n, Usage.NODE)) for n in NODES),
        departments=tuple(
            DepartmentEntry(code, name, home, pki.cert(code), pki.cert(code, Usage.ENCRYPTION))
            for code, (name, home) in DEPARTMENTS.items()
        ),
        links=(Link("src", "hub", Zone.INTERNAL), Link("hub", "one", Zone.INTERNAL)),
    )
    folder.mkdir(parents=True, exist_ok=True)
    directory_file = folder / "directory.signed.xml"
    directory_file.write_bytes(sign_directory(directory, pki.signer(AUTHORITY), authority_code=AUTHORITY))
    homes = {node: folder / node for node in NODES}
    world = World(folder, homes, pki, trust, directory_file, pki.home / "root.crt", pki.crl_path, start=start)
    for node, home in homes.items():
        home.mkdir()
        departments = {code: pki.home / "issued" / code for code, (_, at) in DEPARTMENTS.items() if at == node}
        lines = [
            f"node_id = {json.dumps(node)}",
            'listen = "127.0.0.1:2525"',
            f"directory = {json.dumps(str(directory_file))}",
            f"root = {json.dumps(str(world.root_file))}",
            f"crl = [{json.dumps(str(world.crl_file))}]",
            f"node_keys = {json.dumps(str(pki.home / 'issued' / node))}",
            "",
            "[departments]",
            *(f"{json.dumps(code)} = {json.dumps(str(path))}" for code, path in departments.items()),
        ]
        (home / "node.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ids = random.Random(5).randbytes  # noqa: S311 — reproducible message ids, not secrets
    views = {
        node: NodeView(
            node_id=node,
            directory=directory,
            trust=trust,
            node_signer=world.node_signer(node),
            departments={
                code: DepartmentKeys(pki.signer(code), pki.key(code, Usage.ENCRYPTION))
                for code, (_, at) in DEPARTMENTS.items()
                if at == node
            },
            random=ids,
        )
        for node in NODES
    }
    net = _Net(world, views, start)
    try:
        d1 = net.send(("one.gov.office", "hub.gov.office"), "关于开展审计测试的通知")
        net.pump()
        net.answer("one.gov.office", d1, ReceiptKind.SIGNED_FOR)
        net.answer("hub.gov.office", d1, ReceiptKind.RETURNED, "文种使用不当")
        net.pump()
        d2 = net.send(("one.gov.office",), "关于报送审计材料的通知")
        net.pump()
        net.answer("one.gov.office", d2, ReceiptKind.SIGNED_FOR)
        net.pump()
        d3 = net.send(("one.gov.office",), "关于过期测试的通知", lifetime=timedelta(minutes=5))
        net.clock += timedelta(minutes=6)  # held up on the way: it reaches the hub expired
        net.pump()
    finally:
        net.close()
    world.messages = {"D1": d1, "D2": d2, "D3": d3}
    return world
