"""The store-and-forward state machine on an in-memory network: four nodes, a hub that relays and fans out.

    src ── hub ── one
            └──── two

A department at each node (``src.gov.office`` sends; ``hub.gov.office``, ``one.gov.office`` and ``two.gov.office``
receive). Each node has its own ``Store`` over an in-memory SQLite database; ``Net.pump`` plays the daemons:
every due copy is inspected at its next hop, decided there with ``node_logic.receive`` and applied, and the
sender's queue is told the outcome.

Checked: the shared path travels once and fans out at the hub; duplicates (a lost acknowledgement, a retry) are
dropped; an expired envelope is answered 投递失败; receipts move the sender's outbox states; the back-off bounds
and jitter; and a hypothesis state machine that any interleaving of deliveries, lost acknowledgements and
duplicates gives each recipient each document exactly once.
"""

from __future__ import annotations

import itertools
import random as random_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from gwexchange.crypto.certificates import Role, Usage
from gwexchange.envelope.header import MessageKind
from gwexchange.envelope.model import Classification, Department, DocKind, DocNumber, Document
from gwexchange.envelope.receipts import ReceiptKind, make_failure
from gwexchange.envelope.sealing import Sealed, inspect, seal, seal_receipt
from gwexchange.envelope.signing import sign_document, verify_document
from gwexchange.envelope.xmlform import document_to_xml
from gwexchange.errors import EnvelopeError
from gwexchange.network.directory import DepartmentEntry, Directory, Link, NodeEntry, Zone, ZonePolicy
from gwexchange.routing.node_logic import (
    Accept,
    DepartmentKeys,
    Drop,
    Enqueue,
    FileInbox,
    Hop,
    HopFailed,
    HopRetry,
    InboxState,
    NodeView,
    RecipientState,
    RetryPolicy,
    answer,
    attempt_failed,
    attempt_succeeded,
    backoff,
    expire,
    originate,
    receive,
)
from gwexchange.routing.store import Store

NODES = ("src", "hub", "one", "two")
SENDER = "src.gov.office"
DEPARTMENTS = {
    SENDER: ("广东省发文测试厅", "src"),
    "hub.gov.office": ("广东省枢纽测试厅", "hub"),
    "one.gov.office": ("广东省第一测试厅", "one"),
    "two.gov.office": ("广东省第二测试厅", "two"),
}
RECIPIENTS = ("one.gov.office", "two.gov.office", "hub.gov.office")


def seeded(seed: int) -> random_module.Random:
    return random_module.Random(seed)  # noqa: S311 — reproducible jitter and ids in tests, not secrets


@pytest.fixture(scope="module")
def world(make_pki: Callable[..., Any], now: datetime) -> World:
    pki = make_pki(
        departments={code: name for code, (name, _) in DEPARTMENTS.items()}, rsa_department=False, node=False
    )
    start = pki.root.not_valid_before_utc
    for node in NODES:
        pki.issue(node, f"{node} 交换节点", Role.NODE, now=start)
    trust = pki.trust()
    everything = ZonePolicy(dict.fromkeys(Zone, Classification.TOP_SECRET))
    directory = Directory(
        serial=1,
        issued=now - timedelta(days=1),
        expires=now + timedelta(days=90),
        policy=everything,
        nodes=tuple(NodeEntry(n, f"{n}.example", 25, Zone.INTERNAL, pki.cert(n, Usage.NODE)) for n in NODES),
        departments=tuple(
            DepartmentEntry(code, name, home, pki.cert(code), pki.cert(code, Usage.ENCRYPTION))
            for code, (name, home) in DEPARTMENTS.items()
        ),
        links=(Link("src", "hub", Zone.INTERNAL), Link("hub", "one", Zone.INTERNAL), Link("hub", "two", Zone.INTERNAL)),
    )
    ids = seeded(7)
    views = {
        node: NodeView(
            node_id=node,
            directory=directory,
            trust=trust,
            node_signer=pki.signer(node, Usage.NODE),
            departments={
                code: DepartmentKeys(pki.signer(code), pki.key(code, Usage.ENCRYPTION))
                for code, (_, home) in DEPARTMENTS.items()
                if home == node
            },
            random=ids.randbytes,
        )
        for node in NODES
    }
    return World(pki=pki, trust=trust, now=now, views=views)


@dataclass
class World:
    pki: Any
    trust: Any
    now: datetime
    views: dict[str, NodeView]

    def seal(self, recipients: tuple[str, ...] = RECIPIENTS, *, at: datetime | None = None) -> Sealed:
        at = at or self.now
        doc = Document_(recipients, "关于开展交换测试工作的通知")
        signed = sign_document(document_to_xml(doc), self.pki.signer(SENDER), at=at)
        verified = verify_document(signed, self.trust, now=at)
        return seal(
            verified,
            {code: self.pki.cert(code, Usage.ENCRYPTION) for code in recipients},
            self.pki.signer("src", Usage.NODE),
            trust=self.trust,
            sender_department=SENDER,
            node_id="src",
            now=at,
        )


def Document_(recipients: tuple[str, ...], title: str) -> Document:
    name = DEPARTMENTS[SENDER][0]
    return Document(
        kind=DocKind.NOTICE,
        classification=Classification.INTERNAL,
        issuers=(Department(SENDER, name),),
        issuer_mark=f"{name}文件",
        doc_number=DocNumber("粤测发〔2026〕1号"),
        title=f"{name}{title}",
        body=("一、总体要求", "请按要求开展测试。"),
        signature_names=(name,),
        date=date(2026, 11, 20),
        main_recipients=tuple(Department(code, DEPARTMENTS[code][0]) for code in recipients),
    )


@dataclass
class Net:
    """Four nodes, each with its store; ``clock`` is the network's time."""

    world: World
    stores: dict[str, Store]
    clock: datetime
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, message id) per transfer

    def send(self, sealed: Sealed) -> None:
        src = self.stores["src"]
        src.apply(originate(sealed, SENDER, self.world.views["src"], src, self.clock))

    def deliver(self, node: str, hop: Hop, *, ack: bool = True) -> None:
        """One transfer: the next hop takes the copy; the sender hears 250 unless the acknowledgement is lost."""
        envelope = inspect(self.stores[node].envelope_xml(hop.message_id), self.world.trust)
        target = self.stores[hop.next_hop]
        target.apply(receive(envelope, self.world.views[hop.next_hop], target, self.clock))
        self.log.append((node, hop.next_hop, hop.message_id))
        if ack:
            self.stores[node].apply(attempt_succeeded(hop, self.clock))

    def pump(self) -> None:
        """Run every node's queue until nothing is due."""
        while True:
            due = [(node, hop) for node, store in self.stores.items() for hop in store.due(self.clock)]
            if not due:
                return
            for node, hop in due:
                self.deliver(node, hop)

    def inbox(self) -> list[tuple[str, str]]:
        return sorted((e.department, e.message_id) for s in self.stores.values() for e in s.inbox())

    def states(self, message_id: str) -> dict[str, RecipientState]:
        (view,) = [v for v in self.stores["src"].outbox() if v.message_id == message_id]
        return {code: state for code, state, _ in view.recipients}


@pytest.fixture
def net(world: World, tmp_path: Path) -> Iterator[Net]:
    stores = {node: Store(tmp_path / node, "sqlite://") for node in NODES}
    yield Net(world, stores, world.now)
    for store in stores.values():
        store.close()


@pytest.fixture(scope="module")
def sealed(world: World) -> Sealed:
    return world.seal()


# --- the network -----------------------------------------------------------------------------------------------


def test_shared_path_once_then_fan_out_and_receipts(net: Net, sealed: Sealed) -> None:
    mid = sealed.header.message_id
    net.send(sealed)
    assert net.states(mid) == dict.fromkeys(RECIPIENTS, RecipientState.QUEUED)
    assert [(h.next_hop, h.recipients) for h in net.stores["src"].due(net.clock)] == [("hub", RECIPIENTS)]
    net.pump()
    documents = [(a, b) for a, b, m in net.log if m == mid]
    assert documents == [("src", "hub"), ("hub", "one"), ("hub", "two")]  # the shared hop once, then split
    assert net.inbox() == sorted((code, mid) for code in RECIPIENTS)
    assert net.states(mid) == dict.fromkeys(RECIPIENTS, RecipientState.DELIVERED)
    (entry,) = net.stores["one"].inbox("one.gov.office")
    assert entry.document_sha256 == sealed.document_sha256 and entry.state == InboxState.NEW
    # the envelope is kept byte for byte at every hop
    for node in NODES:
        assert net.stores[node].envelope_xml(mid) == sealed.envelope_xml
    assert {r.kind for r in net.stores["src"].receipts(mid)} == {ReceiptKind.DELIVERED.value}


def test_a_clerk_signs_for_and_returns(net: Net, sealed: Sealed, world: World) -> None:
    mid = sealed.header.message_id
    net.send(sealed)
    net.pump()
    for code, kind, reason in (
        ("one.gov.office", ReceiptKind.SIGNED_FOR, None),
        ("two.gov.office", ReceiptKind.RETURNED, "文种使用不当"),
    ):
        node = DEPARTMENTS[code][1]
        store = net.stores[node]
        store.apply(answer(store.inbox_item(code, mid), kind, world.views[node], store, net.clock, reason))
    net.pump()
    states = net.states(mid)
    assert states["one.gov.office"] is RecipientState.SIGNED_FOR
    assert states["two.gov.office"] is RecipientState.RETURNED
    assert states["hub.gov.office"] is RecipientState.DELIVERED
    assert net.stores["two"].inbox("two.gov.office")[0].reason == "文种使用不当"
    store = net.stores["one"]
    with pytest.raises(Exception, match="already answered"):
        answer(store.inbox_item("one.gov.office", mid), ReceiptKind.RETURNED, world.views["one"], store, net.clock, "x")


def test_a_duplicate_is_dropped_and_acknowledged(net: Net, sealed: Sealed) -> None:
    mid = sealed.header.message_id
    net.send(sealed)
    (hop,) = net.stores["src"].due(net.clock)
    net.deliver("src", hop, ack=False)  # the 250 was lost: src sends again
    hub = net.stores["hub"]
    again = receive(inspect(sealed.envelope_xml, net.world.trust), net.world.views["hub"], hub, net.clock)
    assert again == (Drop(mid, "duplicate message id"),)
    net.pump()
    assert net.inbox() == sorted((code, mid) for code in RECIPIENTS)
    assert [m for _, b, m in net.log if b == "hub" and m == mid] == [mid, mid]  # sent twice, filed once


def test_an_expired_envelope_is_answered_with_failure(net: Net, sealed: Sealed) -> None:
    mid = sealed.header.message_id
    net.send(sealed)
    (hop,) = net.stores["src"].due(net.clock)
    net.stores["src"].apply(attempt_succeeded(hop, net.clock))  # handed on, then held up on the way
    net.clock = sealed.header.expires + timedelta(seconds=1)
    hub = net.stores["hub"]
    actions = receive(inspect(sealed.envelope_xml, net.world.trust), net.world.views["hub"], hub, net.clock)
    assert isinstance(actions[0], Accept)
    assert not any(isinstance(a, FileInbox) for a in actions)
    (notice,) = [a for a in actions if isinstance(a, Enqueue)]
    assert notice.next_hop == "src" and notice.recipients == (SENDER,)
    hub.apply(actions)
    net.pump()
    assert net.inbox() == []
    assert net.states(mid) == dict.fromkeys(RECIPIENTS, RecipientState.FAILED)
    (failure,) = net.stores["src"].receipts(mid)
    assert (failure.kind, failure.answerer) == (ReceiptKind.FAILED.value, "hub")


def test_retries_back_off_until_expiry_then_fail(net: Net, sealed: Sealed) -> None:
    mid = sealed.header.message_id
    src, view = net.stores["src"], net.world.views["src"]
    net.send(sealed)
    envelope = inspect(sealed.envelope_xml, net.world.trust)
    rand = seeded(1).random
    attempts = 0
    while True:
        (hop,) = src.due(net.clock)
        if envelope.header.expired(net.clock):
            src.apply(expire(hop, envelope, view, src, net.clock))
            break
        actions = attempt_failed(hop, envelope, view, src, net.clock, error="421 busy", permanent=False, rand=rand)
        (retry,) = actions
        assert isinstance(retry, HopRetry) and retry.attempts == hop.attempts + 1
        assert net.clock < retry.next_attempt_at <= hop.expires + timedelta(seconds=1)
        src.apply(actions)
        attempts += 1
        net.clock = retry.next_attempt_at
    assert attempts > 10
    (item,) = src.queue()
    assert item.state == "failed" and item.last_error == "expired"
    assert net.states(mid) == dict.fromkeys(RECIPIENTS, RecipientState.FAILED)
    assert [r.answerer for r in src.receipts(mid)] == ["src"]


def test_a_permanent_refusal_fails_at_once(net: Net, sealed: Sealed) -> None:
    src, view = net.stores["src"], net.world.views["src"]
    net.send(sealed)
    (hop,) = src.due(net.clock)
    envelope = inspect(sealed.envelope_xml, net.world.trust)
    actions = attempt_failed(hop, envelope, view, src, net.clock, error="554 bad", permanent=True, rand=lambda: 0.5)
    assert isinstance(actions[0], HopFailed)
    src.apply(actions)
    assert src.due(net.clock) == ()
    assert set(net.states(sealed.header.message_id).values()) == {RecipientState.FAILED}


def test_a_failed_branch_fails_only_the_recipients_behind_it(net: Net, sealed: Sealed) -> None:
    mid = sealed.header.message_id
    net.send(sealed)
    (hop,) = net.stores["src"].due(net.clock)
    net.deliver("src", hop)  # the hub files its own copy and queues one per branch
    hub, view = net.stores["hub"], net.world.views["hub"]
    (to_one,) = [h for h in hub.due(net.clock) if h.next_hop == "one"]
    envelope = inspect(sealed.envelope_xml, net.world.trust)
    hub.apply(attempt_failed(to_one, envelope, view, hub, net.clock, error="554 no", permanent=True, rand=lambda: 0))
    for back in [h for h in hub.due(net.clock) if h.next_hop == "src"]:  # the receipts reach src before "two" does
        net.deliver("hub", back)
    assert net.states(mid)["one.gov.office"] is RecipientState.FAILED
    assert net.states(mid)["two.gov.office"] is RecipientState.IN_TRANSIT  # not failed: its branch is on its way
    net.pump()
    states = net.states(mid)
    assert states["one.gov.office"] is RecipientState.FAILED
    assert states["two.gov.office"] is RecipientState.DELIVERED  # the other branch was never in doubt
    (failure,) = [r for r in net.stores["src"].receipts(mid) if r.kind == ReceiptKind.FAILED.value]
    assert b'<rc:Recipient code="one.gov.office"/>' in failure.receipt_xml


def test_an_envelope_not_routed_here_is_refused(net: Net, sealed: Sealed) -> None:
    one_only = net.world.seal(("one.gov.office",))
    with pytest.raises(EnvelopeError, match="not routed through node two"):
        receive(inspect(one_only.envelope_xml, net.world.trust), net.world.views["two"], net.stores["two"], net.clock)


def test_a_receipt_for_a_message_not_sent_here_is_refused(net: Net, sealed: Sealed) -> None:
    net.send(sealed)
    net.pump()
    (receipt_item,) = [i for i in net.stores["one"].queue() if i.message_id != sealed.header.message_id]
    receipt_envelope = inspect(net.stores["one"].envelope_xml(receipt_item.message_id), net.world.trust)
    assert receipt_envelope.header.kind is MessageKind.RECEIPT
    fresh = Store(net.stores["src"].home.parent / "fresh", "sqlite://")
    with pytest.raises(EnvelopeError, match="did not send from here"):
        receive(receipt_envelope, net.world.views["src"], fresh, net.clock)
    fresh.close()


# --- origin and replay: a peer with a valid certificate may still lie --------------------------------------------


def _reseal(net: Net, sealed: Sealed, node: str, *, at: datetime) -> Sealed:
    """The signed document of ``sealed``, as the hub filed it, sealed again by ``node`` as SENDER's, new id."""
    world = net.world
    (filed,) = net.stores["hub"].inbox("hub.gov.office")
    verified = verify_document(filed.document_xml, world.trust, now=at)
    assert verified.digest == sealed.document_sha256  # the same signed bytes, to the byte
    return seal(
        verified,
        {code: world.pki.cert(code, Usage.ENCRYPTION) for code in RECIPIENTS},
        world.pki.signer(node, Usage.NODE),
        trust=world.trust,
        sender_department=SENDER,
        node_id=node,
        now=at,
        random=seeded(99).randbytes,
    )


def test_a_document_resealed_by_a_node_not_its_departments_home_is_refused(net: Net, sealed: Sealed) -> None:
    """The hub relayed (and, as a recipient, opened) the notice; sealed again as its own, with a new id."""
    net.send(sealed)
    net.pump()
    replay = _reseal(net, sealed, "hub", at=net.clock + timedelta(minutes=1))
    for node in ("one", "two"):
        with pytest.raises(EnvelopeError, match=r"must come from its home node src, not from node hub"):
            receive(inspect(replay.envelope_xml, net.world.trust), net.world.views[node], net.stores[node], net.clock)
    assert net.inbox() == sorted((code, sealed.header.message_id) for code in RECIPIENTS)


def test_a_signed_document_is_filed_once_whatever_its_message_id(net: Net, sealed: Sealed) -> None:
    """Even its home node cannot make a department file the same signed document twice."""
    net.send(sealed)
    net.pump()
    again = _reseal(net, sealed, "src", at=net.clock + timedelta(minutes=1))
    assert again.header.message_id != sealed.header.message_id
    hub = net.stores["hub"]  # a recipient itself (hub.gov.office), and the relay for one and two
    with pytest.raises(EnvelopeError, match=rf"is a replay: hub\.gov\.office filed .* {sealed.header.message_id}"):
        receive(inspect(again.envelope_xml, net.world.trust), net.world.views["hub"], hub, net.clock)
    one = net.stores["one"]
    with pytest.raises(EnvelopeError, match="is a replay"):
        receive(inspect(again.envelope_xml, net.world.trust), net.world.views["one"], one, net.clock)
    # A department that never had it files it: the check is per department, not per network.
    fresh = net.world.seal(("one.gov.office",))
    assert any(
        isinstance(a, FileInbox)
        for a in receive(inspect(fresh.envelope_xml, net.world.trust), net.world.views["one"], one, net.clock)
    )


@pytest.mark.parametrize(
    ("recipients", "ahead", "refused"),
    [
        (RECIPIENTS, timedelta(minutes=4), False),
        (RECIPIENTS, timedelta(minutes=6), True),  # the hub delivers to hub.gov.office: the signatures' skew
        (("one.gov.office",), timedelta(minutes=30), False),  # the hub only relays: a clock some minutes off
        (("one.gov.office",), timedelta(minutes=61), True),
        (("one.gov.office",), timedelta(days=1000), True),
    ],
)
def test_an_envelope_created_in_the_future_is_refused_beyond_the_skew(
    net: Net, world: World, recipients: tuple[str, ...], ahead: timedelta, refused: bool
) -> None:
    early = world.seal(recipients, at=net.clock + ahead)
    envelope = inspect(early.envelope_xml, world.trust)
    hub = net.stores["hub"]
    if refused:
        with pytest.raises(EnvelopeError, match=r"claims to be created at .* later than this node's clock allows"):
            receive(envelope, world.views["hub"], hub, net.clock)
    else:
        assert isinstance(receive(envelope, world.views["hub"], hub, net.clock)[0], Accept)


def test_a_failure_reported_from_another_branch_is_refused(net: Net, sealed: Sealed, world: World) -> None:
    """Node two is on the route (to two.gov.office), but not on the way to one.gov.office."""
    net.send(sealed)
    envelope = inspect(sealed.envelope_xml, world.trust)

    def failure_from(node: str, recipients: tuple[str, ...]) -> Any:
        notice = make_failure(
            envelope, world.pki.signer(node, Usage.NODE), node_id=node, now=net.clock, reason="x", recipients=recipients
        )
        resealed = seal_receipt(
            notice,
            world.pki.signer(node, Usage.NODE),
            sender_department=recipients[0],
            node_id=node,
            recipient=SENDER,
            in_reply_to=sealed.header.message_id,
            now=net.clock,
            classification=sealed.header.classification,
            random=seeded(5).randbytes,
        )
        return inspect(resealed.envelope_xml, world.trust)

    src = net.stores["src"]
    with pytest.raises(EnvelopeError, match=r"node two is not on the route to one\.gov\.office"):
        receive(failure_from("two", ("one.gov.office",)), world.views["src"], src, net.clock)
    src.apply(receive(failure_from("two", ("two.gov.office",)), world.views["src"], src, net.clock))  # its own branch
    states = net.states(sealed.header.message_id)
    assert states["two.gov.office"] is RecipientState.FAILED
    assert states["one.gov.office"] is RecipientState.QUEUED


def test_a_departments_receipt_resealed_by_another_node_is_refused(net: Net, sealed: Sealed, world: World) -> None:
    net.send(sealed)
    net.pump()
    (original,) = [r for r in net.stores["src"].receipts(sealed.header.message_id) if r.answerer == "one.gov.office"]
    resealed = seal_receipt(
        original.receipt_xml,
        world.pki.signer("hub", Usage.NODE),
        sender_department="one.gov.office",
        node_id="hub",
        recipient=SENDER,
        in_reply_to=sealed.header.message_id,
        now=net.clock,
        classification=sealed.header.classification,
        random=seeded(6).randbytes,
    )
    with pytest.raises(EnvelopeError, match=r"a receipt of one\.gov\.office must come from its home node one"):
        receive(inspect(resealed.envelope_xml, world.trust), world.views["src"], net.stores["src"], net.clock)


# --- back-off ----------------------------------------------------------------------------------------------------


def test_backoff_is_full_jitter_under_a_capped_exponential() -> None:
    policy = RetryPolicy(base=timedelta(seconds=30), cap=timedelta(hours=2))
    assert backoff(policy, 1, lambda: 1.0) == timedelta(seconds=30)
    assert backoff(policy, 4, lambda: 1.0) == timedelta(seconds=240)
    assert backoff(policy, 100, lambda: 1.0) == timedelta(hours=2)
    assert backoff(policy, 5, lambda: 0.0) == timedelta(0)
    rand = seeded(42).random
    for attempts in range(1, 30):
        ceiling = min(policy.cap, policy.base * 2 ** (attempts - 1))
        delays = [backoff(policy, attempts, rand) for _ in range(50)]
        assert all(timedelta(0) <= d <= ceiling for d in delays)
        assert len(set(delays)) > 40  # jittered, not one value
    again = seeded(42).random
    assert backoff(policy, 3, again) == backoff(policy, 3, seeded(42).random)


# --- any interleaving: exactly once --------------------------------------------------------------------------------


def test_any_interleaving_delivers_exactly_once(world: World, tmp_path: Path) -> None:
    sealed_messages = [world.seal(), world.seal(("one.gov.office", "two.gov.office"))]
    counter = itertools.count()

    class Interleavings(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            home = tmp_path / f"run-{next(counter)}"
            self.net = Net(world, {n: Store(home / n, "sqlite://") for n in NODES}, world.now)
            self.sent: list[Sealed] = []

        def teardown(self) -> None:
            for store in self.net.stores.values():
                store.close()

        def _due(self) -> list[tuple[str, Hop]]:
            return [(node, hop) for node, store in self.net.stores.items() for hop in store.due(self.net.clock)]

        @rule(which=st.integers(0, len(sealed_messages) - 1))
        def send(self, which: int) -> None:
            sealed = sealed_messages[which]
            if sealed not in self.sent:
                self.sent.append(sealed)
                self.net.send(sealed)

        @rule(pick=st.integers(0, 100), ack=st.booleans())
        def transfer(self, pick: int, ack: bool) -> None:
            due = self._due()
            if due:
                node, hop = due[pick % len(due)]
                self.net.deliver(node, hop, ack=ack)

        @rule(pick=st.integers(0, 100))
        def replay(self, pick: int) -> None:
            """A copy already handed on arrives again (a retry after a lost 250, or a looping relay)."""
            if self.net.log:
                node, target, mid = self.net.log[pick % len(self.net.log)]
                envelope = inspect(self.net.stores[node].envelope_xml(mid), world.trust)
                store = self.net.stores[target]
                store.apply(receive(envelope, world.views[target], store, self.net.clock))

        @invariant()
        def never_twice(self) -> None:
            inbox = self.net.inbox()
            assert len(inbox) == len(set(inbox))

        def check_end(self) -> None:
            self.net.pump()
            expected = sorted((code, s.header.message_id) for s in self.sent for code in s.header.recipients)
            assert self.net.inbox() == expected
            for s in self.sent:
                assert set(self.net.states(s.header.message_id).values()) == {RecipientState.DELIVERED}

    class Checked(Interleavings):
        def teardown(self) -> None:
            try:
                self.check_end()
            finally:
                super().teardown()

    run_state_machine_as_test(
        Checked,
        settings=settings(
            max_examples=15, stateful_step_count=12, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )
