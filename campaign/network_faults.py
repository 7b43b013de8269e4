"""Network: a hub cut off, envelopes past expiry, clock skew between nodes, tree-head times.

Daemons (``two_hubs(2)``: leaf-1 ── hub-a ── hub-b ── leaf-2):

* **hub-a cut off** (SIGTERM): letters from leaf-1 wait in leaf-1's queue, letters from leaf-2 in hub-b's, each
  copy retried; hub-a comes back; every letter is delivered once and signed for.
* **hub-b cut off** (SIGKILL): the same with the copies waiting at hub-a and at leaf-2.
* **expiry at a hub**: leaf-2 is down; a letter to gd.leaf-2.d1 (copy to gd.hub-a.d1) close to its expiry reaches
  hub-b and waits there; it expires; hub-b answers 投递失败, which comes back to the sender; leaf-2, started again,
  never receives it; gd.hub-a.d1 got its copy in time and signs for it.
* **expiry at the sender**: hub-a is down; the letter expires in leaf-1's own queue; leaf-1 answers 投递失败 for
  every recipient.

A letter "close to expiry" is sent with a lifetime of a few seconds (``send_document(..., lifetime=)``, what
``gwx send --lifetime`` does).

Clock skew. A daemon reads the real clock (``envelope.times.utcnow``) and has no way to be told otherwise, so the
skew cases run the four nodes in this process, as ``routing.node.Node`` with its ``clock`` parameter — the same
object ``gwx node run`` runs — each clerk reading its own node's clock:

* **skew tolerated**: clocks at +2, −1, +1 and −2 minutes; letters both ways are delivered and signed for.
* **skew beyond tolerance**: leaf-1 seven minutes ahead of leaf-2: leaf-2 refuses the letter (its signature claims
  a time in the future beyond the five minutes ``signing.CLOCK_SKEW`` allows) and the sender gets 投递失败 —
  refused and reported, never silently lost.
* **clock stepped back**: hub-b's clock goes back ten minutes between two runs; its tree heads stay strictly
  later than the last one (and every log verifies).

Every node's tree-head times are checked strictly increasing at the end of both networks (``network.check``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from campaign.network import (
    DELIVERED,
    FAILED,
    SIGNED_FOR,
    CampaignError,
    CampaignPki,
    Network,
    Sent,
    drive,
    finish,
    two_hubs,
)
from campaign.report import CaseResult, ClassResult
from gwexchange.errors import GwxError
from gwexchange.routing.context import load_context
from gwexchange.routing.home import NodeConfig
from gwexchange.routing.node import Node

CLASS = "network"
TOPOLOGY = two_hubs(2)
L1, L2, HA, HB = "gd.leaf-1.d1", "gd.leaf-2.d1", "gd.hub-a.d1", "gd.hub-b.d1"
WAIT = 60.0  # seconds without progress that make a wait a failure
BOUND = 300.0  # seconds any wait may take at all (a busy machine is slow, not stuck)
CUT_OFF_SECONDS = 4.0


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _queued(net: Network, node: str, docs: Sequence[Sent], next_hop: str, attempts: int) -> list[str]:
    """The docs that are NOT (yet) held in ``node``'s queue for ``next_hop`` with ``attempts`` tries."""
    rows = {(q.message_id, q.next_hop): q for q in net.queue(node)}
    missing = []
    for doc in docs:
        q = rows.get((doc.message_id, next_hop))
        if q is None or q.state != "queued" or q.attempts < attempts:
            missing.append(
                f"#{doc.serial} at {node} → {next_hop}: {q.state if q else 'absent'} ({q.attempts if q else 0})"
            )
    return missing


def cut_off_case(net: Network, hub: str, how: str, serial: int, sent: list[Sent]) -> CaseResult:
    """``hub`` stopped (``how``: SIGTERM or SIGKILL) for a while; letters both ways wait; all arrive once."""
    t0 = time.monotonic()
    problems: list[str] = []
    if how == "SIGTERM":
        code = net.stop(hub)
        if code != 0:
            problems.append(f"{hub} exited {code} at SIGTERM")
    else:
        net.kill(hub)
    east = [net.send(serial + i, L1, [L2], [HB if hub == "hub-a" else HA]) for i in range(3)]
    west = [net.send(serial + 3 + i, L2, [L1], [HB if hub == "hub-a" else HA]) for i in range(3)]
    docs = east + west
    sent += docs
    # Who holds the copies while the hub is away: the node before it on each path.
    holders = {"hub-a": (("leaf-1", east), ("hub-b", west)), "hub-b": (("hub-a", east), ("leaf-2", west))}[hub]
    time.sleep(CUT_OFF_SECONDS)
    for holder, group in holders:
        if not wait_until(lambda h=holder, g=group: not _queued(net, h, g, hub, 2), WAIT):  # type: ignore[misc]
            problems += _queued(net, holder, group, hub, 2)
    cut = {"hub-a": (L2, L1), "hub-b": (L2, L1)}[hub]
    states = {**net.outbox_states("leaf-1"), **net.outbox_states("leaf-2")}
    early = [f"#{d.serial} → {c}: {states.get((d.message_id, c))}" for d in docs for c in cut if c in d.recipients]
    early = [e for e in early if e.endswith((DELIVERED, SIGNED_FOR))]
    if early:
        problems.append(f"delivered across the cut-off {hub}: {'; '.join(early)}")
    net.start(hub)
    pending = drive(net, docs, BOUND, stall=WAIT)
    if pending:
        problems.append(f"not delivered {WAIT:.0f} s after {hub} came back: {'; '.join(pending)}")
    return CaseResult(
        CLASS, f"{hub} cut off ({how})", not problems, time.monotonic() - t0, "\n".join(problems), documents=len(docs)
    )


def expiry_at_hub_case(net: Network, serial: int, sent: list[Sent], failed: set[str]) -> CaseResult:
    t0 = time.monotonic()
    problems: list[str] = []
    net.stop("leaf-2")
    lifetime = 15.0
    doc = net.send(serial, L1, [L2], [HA], lifetime=timedelta(seconds=lifetime), expect={L2: FAILED})
    sent.append(doc)
    failed.add(doc.message_id)
    if not wait_until(lambda: not _queued(net, "hub-b", [doc], "leaf-2", 1), lifetime):
        problems.append(
            f"the letter did not reach hub-b before it expired: {_queued(net, 'hub-b', [doc], 'leaf-2', 1)}"
        )
    pending = drive(net, [doc], lifetime + BOUND, stall=lifetime + WAIT)
    if pending:
        problems.append(f"no 投递失败 back from the hub: {'; '.join(pending)}")
    failures = [r for r in net.context("leaf-1").store.receipts(doc.message_id) if r.kind == FAILED]
    if not any(r.answerer == "hub-b" for r in failures):
        problems.append(f"the 投递失败 is not hub-b's: {[(r.kind, r.answerer) for r in failures]}")
    net.start("leaf-2")
    time.sleep(2.0)
    if any(r.message_id == doc.message_id for r in net.inbox("leaf-2")):
        problems.append("leaf-2 filed the letter after it expired")
    return CaseResult(
        CLASS, "expiry at a hub (投递失败 back)", not problems, time.monotonic() - t0, "\n".join(problems), documents=1
    )


def expiry_at_sender_case(net: Network, serial: int, sent: list[Sent], failed: set[str]) -> CaseResult:
    t0 = time.monotonic()
    problems: list[str] = []
    net.stop("hub-a")
    lifetime = 3.0
    doc = net.send(serial, L1, [L2], [HA], lifetime=timedelta(seconds=lifetime), expect={L2: FAILED, HA: FAILED})
    sent.append(doc)
    failed.add(doc.message_id)
    pending = drive(net, [doc], lifetime + BOUND, stall=lifetime + WAIT)
    if pending:
        problems.append(f"no 投递失败 at the sender: {'; '.join(pending)}")
    net.start("hub-a")
    time.sleep(2.0)
    for node in ("hub-a", "leaf-2"):
        if any(r.message_id == doc.message_id for r in net.inbox(node)):
            problems.append(f"{node} filed the letter after it expired")
    return CaseResult(
        CLASS, "expiry at the sender (投递失败)", not problems, time.monotonic() - t0, "\n".join(problems), documents=1
    )


# --- in-process nodes with their own clocks -------------------------------------------------------------------


class InProcessNode:
    """``routing.node.Node`` run in a thread of this process, with a clock ``skew`` off the real one."""

    def __init__(self, net: Network, node_id: str, skew: timedelta) -> None:
        self.net, self.node_id, self.skew = net, node_id, skew
        self.node: Node | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()

    def clock(self) -> datetime:
        return datetime.now(UTC) + self.skew

    def start(self, timeout: float = 30.0) -> None:
        self.net.skews[self.node_id] = self.skew
        context = load_context(NodeConfig.load(self.net.homes[self.node_id]), now=self.clock(), daemon=True)
        node = self.node = Node(context, clock=self.clock)

        def main() -> None:
            try:
                asyncio.run(node.run(ready=lambda _port: self._ready.set()))
            except BaseException as e:
                self.error = e
                self._ready.set()

        self.thread = threading.Thread(target=main, name=f"node-{self.node_id}", daemon=True)
        self.thread.start()
        if not self._ready.wait(timeout) or self.error is not None:
            raise CampaignError(f"in-process {self.node_id} did not start: {self.error}")

    def stop(self, timeout: float = 30.0) -> None:
        if self.node is None or self.thread is None:
            return
        self.node.stop()
        self.thread.join(timeout)
        alive = self.thread.is_alive()
        self.node, self.thread = None, None
        self._ready.clear()
        if alive:
            raise CampaignError(f"in-process {self.node_id} did not stop within {timeout:.0f} s")
        if self.error is not None:
            raise CampaignError(f"in-process {self.node_id} failed: {self.error}")


class InProcessNetwork:
    """Every node of ``net`` in this process; their log lines go to ``<network>/logs/in-process.log``."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.nodes: dict[str, InProcessNode] = {}
        self._handler = logging.FileHandler(net.folder / "logs" / "in-process.log", encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(message)s"))
        self._logger = logging.getLogger("gwexchange")
        self._saved = (self._logger.level, self._logger.propagate)

    def __enter__(self) -> InProcessNetwork:
        self._logger.addHandler(self._handler)
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self._logger.removeHandler(self._handler)
            self._logger.setLevel(self._saved[0])
            self._logger.propagate = self._saved[1]
            self._handler.close()

    def start(self, skews: dict[str, timedelta]) -> None:
        for node_id, skew in skews.items():
            self.nodes[node_id] = InProcessNode(self.net, node_id, skew)
            self.nodes[node_id].start()

    def stop(self) -> None:
        errors = []
        for node in self.nodes.values():
            try:
                node.stop()
            except CampaignError as e:
                errors.append(str(e))
        self.nodes.clear()
        if errors:
            raise CampaignError("; ".join(errors))


def _minutes(**skews: float) -> dict[str, timedelta]:
    return {node.replace("_", "-"): timedelta(minutes=m) for node, m in skews.items()}


def skew_cases(net: Network, sent: list[Sent], failed: set[str]) -> list[CaseResult]:
    cases: list[CaseResult] = []
    with InProcessNetwork(net) as nodes:
        # Phase 1: a few minutes apart, within the five minutes a signature may claim to be ahead.
        t0 = time.monotonic()
        phase1 = _minutes(leaf_1=2, hub_a=-1, hub_b=1, leaf_2=-2)
        nodes.start(phase1)
        docs = [net.send(1, L1, [L2], [HA]), net.send(2, L1, [L2, HB]), net.send(3, L2, [L1], [HA, HB])]
        sent += docs
        pending = drive(net, docs, BOUND, stall=WAIT)
        detail = f"clocks {', '.join(f'{n} {s.total_seconds() / 60:+.0f} min' for n, s in phase1.items())}"
        cases.append(
            CaseResult(
                CLASS,
                "clock skew tolerated (±2 min)",
                not pending,
                time.monotonic() - t0,
                "\n".join(pending) or "",
                documents=3,
                figures={"clocks": detail},
            )
        )
        heads_before = {n: net.head_times(n)[-1] for n in phase1 if net.head_times(n)}
        nodes.stop()

        # Phase 2: leaf-1 seven minutes ahead of leaf-2; hub-b's clock stepped back ten minutes.
        t0 = time.monotonic()
        phase2 = _minutes(leaf_1=7, hub_a=0, hub_b=-9, leaf_2=0)
        nodes.start(phase2)
        ahead = net.send(4, L1, [L2], expect={L2: FAILED})
        sent.append(ahead)
        failed.add(ahead.message_id)
        pending = drive(net, [ahead], BOUND, stall=WAIT)
        problems = list(pending)
        reasons = [r.receipt_xml for r in net.context("leaf-1").store.receipts(ahead.message_id) if r.kind == FAILED]
        if pending or not reasons:
            problems.append("no 投递失败 for a letter signed seven minutes in the recipient's future")
        if any(r.message_id == ahead.message_id for r in net.inbox("leaf-2")):
            problems.append("leaf-2 filed a letter whose signature claims a time seven minutes ahead")
        cases.append(
            CaseResult(
                CLASS,
                "clock skew beyond 5 min (refused, 投递失败 back)",
                not problems,
                time.monotonic() - t0,
                "\n".join(problems),
                documents=1,
            )
        )

        t0 = time.monotonic()
        back = [
            net.send(5, L2, [L1], [HA]),
            net.send(6, L2, [HA]),
        ]  # through hub-b, not to it: its clock is 9 min behind
        sent += back
        pending = drive(net, back, BOUND, stall=WAIT)
        problems = list(pending)
        problems += drive(net, sent, BOUND, drain=True, stall=WAIT)  # nothing left in flight when they stop
        nodes.stop()
        after = net.head_times("hub-b")
        newer = [t for t in after if t > heads_before.get("hub-b", datetime.min.replace(tzinfo=UTC))]
        if not newer:
            problems.append("hub-b signed no tree head after its clock went back")
        backwards = [i for i in range(1, len(after)) if after[i] <= after[i - 1]]
        if backwards:
            problems.append(f"hub-b's tree-head times go backwards at {backwards[:5]}")
        cases.append(
            CaseResult(
                CLASS,
                "clock stepped back 10 min (tree heads still increase)",
                not problems,
                time.monotonic() - t0,
                "\n".join(problems),
                documents=2,
                figures={"hub-b heads": len(after)},
            )
        )
    return cases


def _final(net: Network, sent: list[Sent], failed: set[str], name: str) -> CaseResult:
    """Drain, stop what runs (daemons; the in-process nodes have stopped already), check."""
    t0 = time.monotonic()
    verdict = finish(net, sent, BOUND, failed_hops=failed)
    return CaseResult(
        CLASS,
        name,
        verdict.ok,
        time.monotonic() - t0,
        "\n".join(verdict.problems()),
        lost=verdict.lost_documents,
        duplicated=verdict.duplicated_documents,
        figures={"deliveries": verdict.deliveries, "repeats dropped": verdict.repeats},
    )


def run(*, workdir: Path, pki: CampaignPki | None = None) -> ClassResult:
    result = ClassResult(CLASS)
    t0 = time.monotonic()
    pki = pki or CampaignPki(workdir / "pki")
    try:
        with Network(workdir / "network", TOPOLOGY, pki) as net:
            net.start()
            sent: list[Sent] = []
            failed: set[str] = set()
            steps: list[tuple[str, Callable[[], CaseResult]]] = [
                ("hub-a cut off", lambda: cut_off_case(net, "hub-a", "SIGTERM", 100, sent)),
                ("hub-b cut off", lambda: cut_off_case(net, "hub-b", "SIGKILL", 200, sent)),
                ("expiry at a hub", lambda: expiry_at_hub_case(net, 300, sent, failed)),
                ("expiry at the sender", lambda: expiry_at_sender_case(net, 400, sent, failed)),
            ]
            for name, step in steps:
                result.cases.append(_guard(name, step))
                for node in net.topology.node_ids:  # a case that failed half-way may leave a node down
                    if not net.running(node):
                        net.start(node)
            result.cases.append(_final(net, sent, failed, "check (daemons)"))
        with Network(workdir / "skew", TOPOLOGY, pki) as net:
            sent, failed = [], set()
            try:
                result.cases += skew_cases(net, sent, failed)
            except (CampaignError, GwxError, OSError) as e:
                result.cases.append(CaseResult(CLASS, "clock skew", False, 0.0, f"harness: {e}"))
            result.cases.append(_final(net, sent, failed, "check (in-process, skewed clocks)"))
    except (CampaignError, GwxError, OSError) as e:
        result.cases.append(CaseResult(CLASS, "harness", False, 0.0, f"harness: {e}"))
    result.seconds = time.monotonic() - t0
    result.notes.append(
        "clock skew runs routing.node.Node in-process with its clock parameter: daemons read the real clock "
        "(no GWX_CLOCK_SKEW_SECONDS in routing/node.py yet)"
    )
    return result


def _guard(name: str, case: Callable[[], CaseResult]) -> CaseResult:
    t0 = time.monotonic()
    try:
        return case()
    except (CampaignError, GwxError, OSError) as e:
        return CaseResult(CLASS, name, False, time.monotonic() - t0, f"harness: {e}")
