"""The node's state machine under any order of events: a hypothesis ``RuleBasedStateMachine`` over three nodes.

    gd-hub (gd.gov.office, gd.gov.fgw) ── gd-czt (gd.gov.czt, sends) ── gd-edge (gd.gov.gxt)

The network, keys and directory are the exchange vectors of ``tests/vectors/exchange``. Each node has the real
``Store`` (SQLite in memory, part files in a temporary folder); the rules play the daemons in any order: send a
document, hand a due copy to its next hop (its 250 delivered or lost), fail an attempt (4xx, retried with back-off,
or 5xx, given up), replay a copy already handed on, let time pass (back-off comes due, envelopes expire — a due copy
past its expiry is failed as the daemon does), and let a clerk sign for (签收) or return (退回) a filed document.

``test_node_logic.py`` proves exactly-once delivery for deliveries, lost acknowledgements and duplicates; this adds
failures, retries, expiry and clerks, and checks after every step that

* each document is filed at most once per department, and only at the department's home node;
* a recipient's state in the sender's outbox only moves forward (queued → in transit → 投递失败 → 送达 → 签收/退回),
  and an inbox entry, once answered, stays answered;
* a message id is never enqueued twice for the same next hop at a node, and a replayed copy is only dropped;

and at the end, once every due copy was handed on and time ran out for the rest, that no copy is left queued, and
that — unless a receipt's own copy was failed on purpose — every recipient's state is final.
"""

from __future__ import annotations

import itertools
import json
import random as random_module
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gwexchange.crypto.keys import key_from_pem
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.header import MessageKind
from gwexchange.envelope.model import Classification, Department, DocKind, DocNumber, Document
from gwexchange.envelope.receipts import ReceiptKind
from gwexchange.envelope.sealing import Sealed, inspect, seal
from gwexchange.envelope.signing import sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.errors import InputError
from gwexchange.network.directory import Directory
from gwexchange.network.directory_xml import verify_directory
from gwexchange.routing.node_logic import (
    Action,
    DepartmentKeys,
    Drop,
    Enqueue,
    Hop,
    InboxState,
    NodeView,
    RecipientState,
    answer,
    attempt_failed,
    attempt_succeeded,
    expire,
    originate,
    receive,
)
from gwexchange.routing.store import Store

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
EXCHANGE = VECTORS / "exchange"
START = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
LIFETIME = timedelta(days=2)
SENDER = "gd.gov.czt"
NODES = ("gd-czt", "gd-hub", "gd-edge")
# code → (name, home node, signing key stem, encryption key stem), stems under tests/vectors
DEPARTMENTS = {
    SENDER: ("广东省财政厅", "gd-czt", "pki/issued/gd.gov.czt/signing", "exchange/keys/gd.gov.czt/encryption"),
    "gd.gov.office": (
        "广东省人民政府办公厅", "gd-hub", "pki/issued/gd.gov.office/signing", "pki/issued/gd.gov.office/encryption",
    ),
    "gd.gov.fgw": (
        "广东省发展和改革委员会", "gd-hub", "exchange/keys/gd.gov.fgw/signing", "exchange/keys/gd.gov.fgw/encryption",
    ),
    "gd.gov.gxt": (
        "广东省工业和信息化厅", "gd-edge", "pki/issued/gd.gov.gxt/signing", "exchange/keys/gd.gov.gxt/encryption",
    ),
}  # fmt: skip
# The documents gd.gov.czt sends: to a department at each hub, to one at one hub, to all three.
SEEN: Counter[str] = Counter()  # what the runs exercised (printed with -s)
RULES = ("handed on", "failed", "replayed", "time passed", "clerk")  # each rule's SEEN keys start so
ADDRESSEES = (("gd.gov.office", "gd.gov.gxt"), ("gd.gov.fgw",), ("gd.gov.office", "gd.gov.fgw", "gd.gov.gxt"))


def _signer(stem: str) -> Signer:
    key = key_from_pem((VECTORS / f"{stem}.key").read_bytes(), None)
    return Signer(key, x509.load_pem_x509_certificate((VECTORS / f"{stem}.crt").read_bytes()))


@dataclass
class World:
    trust: TrustPolicy
    directory: Directory
    views: dict[str, NodeView]
    sealed: tuple[Sealed, ...]


def _document(recipients: tuple[str, ...], number: int) -> Document:
    name = DEPARTMENTS[SENDER][0]
    return Document(
        kind=DocKind.NOTICE,
        classification=Classification.INTERNAL,
        issuers=(Department(SENDER, name),),
        issuer_mark=f"{name}文件",
        doc_number=DocNumber(f"粤财发〔2026〕{number}号"),
        title=f"{name}关于第{number}批交换测试的通知",
        body=("请按要求开展测试。",),
        signature_names=(name,),
        date=date(2026, 11, 20),
        main_recipients=tuple(Department(code, DEPARTMENTS[code][0]) for code in recipients),
    )


@pytest.fixture(scope="module")
def world() -> World:
    root = x509.load_pem_x509_certificate((VECTORS / "pki" / "root.crt").read_bytes())
    crls = tuple(x509.load_pem_x509_crl(p.read_bytes()) for p in (VECTORS / "pki" / "crl.pem", EXCHANGE / "crl.pem"))
    trust = TrustPolicy(root, crls, now=START)
    signed = (EXCHANGE / "directory.signed.xml").read_bytes()
    directory = verify_directory(signed, trust, authority_code="gd.gov.ca", now=START, held=None).directory
    ids = random_module.Random(11)  # noqa: S311 - reproducible message ids of receipts, not secrets
    views = {
        node: NodeView(
            node_id=node,
            directory=directory,
            trust=trust,
            node_signer=_signer(f"exchange/keys/{node}/node"),
            departments={
                code: DepartmentKeys(_signer(signing), _signer(encryption).key)
                for code, (_, home, signing, encryption) in DEPARTMENTS.items()
                if home == node
            },
            random=ids.randbytes,
        )
        for node in NODES
    }
    czt = views["gd-czt"]
    sealed = []
    for number, recipients in enumerate(ADDRESSEES, 1):
        xml = sign_document(document_to_xml(_document(recipients, number)), czt.departments[SENDER].signer, at=START)
        sealed.append(
            seal(
                verify_document(xml, trust, now=START),
                {code: directory.department(code).encryption_certificate for code in recipients},
                czt.node_signer,
                trust=trust,
                sender_department=SENDER,
                node_id="gd-czt",
                now=START,
                lifetime=LIFETIME,
                random=ids.randbytes,
            )
        )
    return World(trust, directory, views, tuple(sealed))


@dataclass
class Net:
    """The three stores, the clock, and what the invariants remember."""

    world: World
    stores: dict[str, Store]
    clock: datetime = START
    transfers: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, message id)
    enqueued: set[tuple[str, str, str]] = field(default_factory=set)  # (node, message id, next hop)
    outbox_ranks: dict[tuple[str, str], int] = field(default_factory=dict)
    answered: dict[tuple[str, str], InboxState] = field(default_factory=dict)
    receipt_lost: bool = False
    rand: Any = field(default_factory=lambda: random_module.Random(5).random)  # noqa: S311 - jitter in a test

    def apply(self, node: str, actions: tuple[Action, ...]) -> None:
        for action in actions:
            if isinstance(action, Enqueue):
                key = (node, action.message_id, action.next_hop)
                assert key not in self.enqueued, f"{action.message_id} enqueued twice for {action.next_hop} at {node}"
                self.enqueued.add(key)
        self.stores[node].apply(actions)

    def due(self) -> list[tuple[str, Hop]]:
        return [(node, hop) for node, store in self.stores.items() for hop in store.due(self.clock)]

    def envelope(self, node: str, message_id: str) -> Any:
        return inspect(self.stores[node].envelope_xml(message_id), self.world.trust)

    def expired(self, node: str, hop: Hop) -> bool:
        """The daemon's first question for a due copy: past its expiry, it is failed, not sent."""
        envelope = self.envelope(node, hop.message_id)
        if not envelope.header.expired(self.clock):
            return False
        if envelope.header.kind is MessageKind.RECEIPT:
            self.receipt_lost = True
        SEEN[f"expired {envelope.header.kind}"] += 1
        store = self.stores[node]
        self.apply(node, expire(hop, envelope, self.world.views[node], store, self.clock))
        return True

    def hand_on(self, node: str, hop: Hop, *, ack: bool) -> None:
        if self.expired(node, hop):
            return
        envelope = self.envelope(node, hop.message_id)
        target = self.stores[hop.next_hop]
        self.apply(hop.next_hop, receive(envelope, self.world.views[hop.next_hop], target, self.clock))
        self.transfers.append((node, hop.next_hop, hop.message_id))
        if ack:
            self.apply(node, attempt_succeeded(hop, self.clock))

    def drain(self, limit: int = 400) -> None:
        """Hand on every due copy, moving the clock to the next retry when none is due, until nothing is queued."""
        for _ in range(limit):
            due = self.due()
            if due:
                for node, hop in due:
                    self.hand_on(node, hop, ack=True)
                continue
            waiting = [q.next_attempt_at for s in self.stores.values() for q in s.queue() if q.state == "queued"]
            if not waiting:
                return
            self.clock = max(self.clock, min(waiting))
        raise AssertionError(f"copies still queued after {limit} rounds")


def test_any_order_of_events_keeps_the_node_invariants(world: World, tmp_path: Path) -> None:
    runs = itertools.count()

    class NodeStates(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            home = tmp_path / f"run-{next(runs)}"
            self.net = Net(world, {node: Store(home / node, "sqlite://") for node in NODES})
            self.sent: list[Sealed] = []

        def teardown(self) -> None:
            for store in self.net.stores.values():
                store.close()

        @initialize(which=st.integers(0, len(world.sealed) - 1))
        def first_send(self, which: int) -> None:
            self.send(which)

        @rule(which=st.integers(0, len(world.sealed) - 1))
        def send(self, which: int) -> None:
            sealed = world.sealed[which]
            if sealed in self.sent:
                return
            self.sent.append(sealed)
            czt = self.net.stores["gd-czt"]
            self.net.apply("gd-czt", originate(sealed, SENDER, world.views["gd-czt"], czt, self.net.clock))

        @rule(pick=st.integers(0, 1000), ack=st.booleans())
        def hand_on(self, pick: int, ack: bool) -> None:
            due = self.net.due()
            if due:
                node, hop = due[pick % len(due)]
                SEEN[f"handed on a {self.net.envelope(node, hop.message_id).header.kind}"] += 1
                self.net.hand_on(node, hop, ack=ack)

        @rule(pick=st.integers(0, 1000), permanent=st.booleans())
        def fail_attempt(self, pick: int, permanent: bool) -> None:
            due = self.net.due()
            if not due:
                return
            node, hop = due[pick % len(due)]
            if self.net.expired(node, hop):
                return
            envelope = self.net.envelope(node, hop.message_id)
            if permanent and envelope.header.kind is MessageKind.RECEIPT:
                self.net.receipt_lost = True
            SEEN["failed permanently" if permanent else "failed, retried"] += 1
            actions = attempt_failed(
                hop, envelope, world.views[node], self.net.stores[node], self.net.clock,
                error="554 5.7.1 refused" if permanent else "451 4.3.0 busy", permanent=permanent,
                rand=self.net.rand,
            )  # fmt: skip
            self.net.apply(node, actions)

        @precondition(lambda self: bool(self.net.transfers))
        @rule(pick=st.integers(0, 1000))
        def replay(self, pick: int) -> None:
            """A copy already handed on arrives again: dropped, whatever happened since."""
            node, target, mid = self.net.transfers[pick % len(self.net.transfers)]
            envelope = self.net.envelope(node, mid)
            store = self.net.stores[target]
            actions = receive(envelope, world.views[target], store, self.net.clock)
            assert actions == (Drop(mid, "duplicate message id"),)
            SEEN["replayed"] += 1
            self.net.apply(target, actions)

        @rule(minutes=st.integers(1, 90) | st.integers(1, 3 * 24 * 60))
        def time_passes(self, minutes: int) -> None:
            self.net.clock += timedelta(minutes=minutes)
            SEEN["time passed"] += 1

        @rule(pick=st.integers(0, 1000), kind=st.sampled_from((ReceiptKind.SIGNED_FOR, ReceiptKind.RETURNED)))
        def clerk_answers(self, pick: int, kind: ReceiptKind) -> None:
            entries = [(node, e) for node, s in self.net.stores.items() for e in s.inbox() if e.state == "new"]
            if not entries:
                return
            node, entry = entries[pick % len(entries)]
            store, view = self.net.stores[node], world.views[node]
            item = store.inbox_item(entry.department, entry.message_id)
            reason = "文种使用不当" if kind is ReceiptKind.RETURNED else None
            SEEN[f"clerk {kind}"] += 1
            self.net.apply(node, answer(item, kind, view, store, self.net.clock, reason))
            with pytest.raises(InputError, match="already answered"):
                answer(store.inbox_item(entry.department, entry.message_id), kind, view, store, self.net.clock, reason)

        @invariant()
        def filed_at_most_once_and_only_at_home(self) -> None:
            filed = [(e.department, e.message_id, node) for node, s in self.net.stores.items() for e in s.inbox()]
            assert len({(d, m) for d, m, _ in filed}) == len(filed), filed
            assert all(DEPARTMENTS[d][1] == node for d, _, node in filed), filed

        @invariant()
        def states_only_move_forward(self) -> None:
            for view in self.net.stores["gd-czt"].outbox():
                for code, state, _ in view.recipients:
                    key = (view.message_id, code)
                    assert state.rank >= self.net.outbox_ranks.get(key, 0), (key, state)
                    self.net.outbox_ranks[key] = state.rank
            for store in self.net.stores.values():
                for entry in store.inbox():
                    key = (entry.department, entry.message_id)
                    state = InboxState(entry.state)
                    before = self.net.answered.get(key)
                    assert before is None or before is state, (key, before, state)
                    if state is not InboxState.NEW:
                        self.net.answered[key] = state

        @invariant()
        def one_copy_per_message_and_hop(self) -> None:
            for store in self.net.stores.values():
                copies = [(q.message_id, q.next_hop) for q in store.queue()]
                assert len(copies) == len(set(copies)), copies

        def check_end(self) -> None:
            self.net.drain()
            queued = [
                (q.message_id, q.next_hop) for s in self.net.stores.values() for q in s.queue() if q.state == "queued"
            ]
            assert not queued
            for view in self.net.stores["gd-czt"].outbox():
                for code, state, _ in view.recipients:
                    SEEN[f"ended {state}"] += 1
                    if not self.net.receipt_lost:
                        assert state.rank >= RecipientState.FAILED.rank, (view.message_id, code, state)

    class Checked(NodeStates):
        def teardown(self) -> None:
            try:
                self.check_end()
            finally:
                super().teardown()

    SEEN.clear()
    run_state_machine_as_test(
        Checked,
        settings=settings(
            max_examples=40,  # a run ends at 签收 one time in a few: in 40 runs, all but surely
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    print(dict(SEEN))
    # Not vacuous: every rule did something in 1,600 steps (a rule that cannot act, never does), and documents
    # reached 送达 and 签收 — a machine that failed every copy would end at 投递失败 only, and fail here.
    idle = [rule for rule in RULES if not any(key.startswith(rule) for key in SEEN)]
    assert not idle, f"rules that never did anything: {idle} (seen: {dict(SEEN)})"
    for end in (RecipientState.DELIVERED, RecipientState.SIGNED_FOR):
        assert SEEN[f"ended {end}"] > 0, f"no document ended {end} in any run: {dict(SEEN)}"


def test_the_invariants_can_fail(world: World, tmp_path: Path) -> None:
    """The checks are not vacuous: a second Enqueue of one copy, and a replay that is not dropped, are caught."""
    net = Net(world, {node: Store(tmp_path / node, "sqlite://") for node in NODES})
    try:
        czt = net.stores["gd-czt"]
        actions = originate(world.sealed[1], SENDER, world.views["gd-czt"], czt, net.clock)
        net.apply("gd-czt", actions)
        again = tuple(a for a in actions if isinstance(a, Enqueue))
        with pytest.raises(AssertionError, match="enqueued twice"):
            net.apply("gd-czt", again)
        ((node, hop),) = net.due()
        envelope = net.envelope(node, hop.message_id)
        fresh = Store(tmp_path / "fresh", "sqlite://")
        assert not any(isinstance(a, Drop) for a in receive(envelope, world.views["gd-hub"], fresh, net.clock))
        fresh.close()
    finally:
        for store in net.stores.values():
            store.close()


def test_the_world_is_consistent(world: World) -> None:
    assert [s.header.recipients for s in world.sealed] == list(ADDRESSEES)
    assert all(s.header.expires == START + LIFETIME for s in world.sealed)
    assert json.loads((EXCHANGE / "sent.json").read_text(encoding="utf-8"))["sender_department"] == SENDER
