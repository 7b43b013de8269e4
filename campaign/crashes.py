"""Crashes: every kill point of ``gwexchange.routing.faults``, R kills each (``--repeat``, 20 in CI) at the hub and the
recipient together.

The network (``one_hub(2)``: the shortest with a relay; every start of a daemon costs a second or two of CPU, and
the class starts one per kill)::

    leaf-1 (gd.leaf-1.d1, sends) ── hub-a (gd.hub-a.d1, 抄送) ── leaf-2 (gd.leaf-2.d1, 主送)

Each cycle sends one letter from gd.leaf-1.d1 to gd.leaf-2.d1 with a copy to gd.hub-a.d1: hub-a receives it, files
its own copy, relays it, returns 送达 and relays the receipts coming back; leaf-2 receives, files and answers.
hub-a and leaf-2 both run with ``GWX_CRASH_AT=<point>:<N>`` — each SIGKILLs itself the N-th time it reaches the
point in its life, N drawn for every life (1–3 the first time, 2–4 after a restart, so each life passes the point
at least once more before it dies: the network always moves forward) — and a process that dies is restarted at
once, armed again, until the point has R kills. The clerks sign for what arrives; a cycle ends when the sender
holds 签收 from both recipients (it is stuck if a minute passes without a kill and without that). Then a target
still armed is killed and restarted unarmed, everything drains, every daemon stops with
SIGTERM (each must exit 0), and the queue checker runs (``network.check``): no acknowledged document lost, none
filed twice, every receipt back, every queue drained, every log verifying with each message id once.

The eight moments of the issue and the points that stand for them — three coincide, because a node commits the
envelope, its inbox filing and every copy and receipt it queues in ONE transaction:

=================================  ==================================================================
after DATA received                ``data-received``
after verification                 ``verified`` (the node signature)
after the 送达 receipt is signed    ``receipt-signed`` (the decision made, nothing committed yet)
after commit                       ``committed``  ┐
after filing to the inbox          ``committed``  ├ one transaction: the same instant
after it is queued                 ``committed``  ┘
after 250                          ``acknowledged``
after it is sent                   ``hop-sent`` (next hop said 250, not yet marked) and ``hop-recorded``
=================================  ==================================================================

and two more: ``hop-sending`` (a queued copy about to go) and ``log-appended`` (entries appended to the Merkle
log, not yet committed to it).

One scenario besides the kill points, ``restart-during-send`` (``run_restart_during_send``): the sender's node is
SIGKILLed and started again while its clerk keeps sending letters with attachments, as clerks do whether or not
the daemon runs. It found that the daemon's start-up sweep deleted the part files of a letter the clerk was
committing at that moment (an acknowledged letter that could never be sent), and that such a copy then blocked
every later copy to the same peer; both fixed in f4281fa, and the scenario stays as their regression test.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from campaign.network import (
    CampaignError,
    CampaignPki,
    Network,
    Sent,
    attachment_file,
    drive,
    finish,
    one_hub,
)
from campaign.report import CaseResult, ClassResult
from gwexchange.cli.local_network import START_TIMEOUT, DaemonError
from gwexchange.errors import GwxError
from gwexchange.routing.faults import CRASH_ENV, CRASH_POINTS
from gwexchange.routing.node_logic import Action

CLASS = "crashes"
MOMENTS = (
    ("after DATA received", "data-received"),
    ("after verification", "verified"),
    ("after the 送达 receipt is signed", "receipt-signed"),
    ("after commit", "committed"),
    ("after filing to the inbox", "committed"),
    ("after it is queued", "committed"),
    ("after 250", "acknowledged"),
    ("after it is sent", "hop-sent"),
)
TOPOLOGY = one_hub(2)
SENDER = "gd.leaf-1.d1"
TO = ("gd.leaf-2.d1",)
CC = ("gd.hub-a.d1",)
HUB = "hub-a"
RECIPIENT = "leaf-2"
TARGETS = {"hub": (HUB,), "recipient": (RECIPIENT,), "both": (HUB, RECIPIENT)}
CYCLE_TIMEOUT = 60.0  # seconds without a kill and without 签收 that make a cycle stuck
DRAIN_TIMEOUT = 600.0  # the bound; a drain that makes no progress for a minute ends sooner


class PointRun:
    """The kills at one point: the network, who is armed, what died, what was sent."""

    def __init__(self, net: Network, point: str, repeat: int, targets: tuple[str, ...], seed: int) -> None:
        self.net, self.point, self.repeat, self.targets = net, point, repeat, targets
        self.rng = random.Random(f"{seed}:{point}:{'+'.join(targets)}")  # noqa: S311 — a drill's schedule
        self.kills: Counter[str] = Counter()
        self.armed: dict[str, bool] = {}
        self.unexpected: list[str] = []
        self.cycle_kills: list[str] = []
        self.sent: list[Sent] = []
        self.cases: list[CaseResult] = []
        self.cycles = 0

    @property
    def killed(self) -> int:
        return sum(self.kills.values())

    def arm(self, node: str, first: bool) -> dict[str, str]:
        """The environment of ``node``'s next life: the point and the passage to die at (none once enough kills)."""
        if self.killed >= self.repeat:
            self.armed[node] = False
            return {}
        self.armed[node] = True
        n = self.rng.randint(1, 3) if first else self.rng.randint(2, 4)
        return {CRASH_ENV: f"{self.point}:{n}"}

    def watch(self) -> None:
        """Restart, at once, whatever died; a death that was not its kill point is a failure."""
        net = self.net
        for node in self.targets:
            if net.running(node):
                continue
            code = net.reap(node)
            if code is None:
                continue
            if code == -signal.SIGKILL and self.armed.get(node):
                self.kills[node] += 1
                self.cycle_kills.append(node)
            else:
                self.unexpected.append(
                    f"{node} exited {code} (armed: {self.armed.get(node)})\n{net.log_tail(node, 2000)}"
                )
            net.spawn(node, self.arm(node, first=False))

    def cycle(self, cycle_timeout: float) -> bool:
        """One letter through to 签收 while the targets die and come back; False if it got stuck."""
        self.cycles += 1
        name = f"{self.point}#{self.cycles}"
        self.cycle_kills.clear()
        before = len(self.unexpected)
        t0 = time.monotonic()
        try:
            doc = self.net.send(self.cycles, SENDER, TO, CC)
        except GwxError as e:  # the sender is never killed: its clerk must always be able to send
            self.cases.append(CaseResult(CLASS, name, False, time.monotonic() - t0, f"send failed: {e}"))
            return True
        self.sent.append(doc)
        # Bounded by progress: stuck means no kill and no settling for ``cycle_timeout`` seconds (a cycle with many
        # kills on a busy machine takes many restarts, each of them seconds).
        last_kill, kills = time.monotonic(), self.killed
        while True:
            pending = drive(self.net, [doc], 2.0, each=self.watch)
            if self.killed != kills:
                last_kill, kills = time.monotonic(), self.killed
            if not pending or time.monotonic() - last_kill > cycle_timeout:
                break
        problems = [f"not settled {cycle_timeout:.0f} s after the last kill: {'; '.join(pending)}"] if pending else []
        problems += self.unexpected[before:]
        self.cases.append(
            CaseResult(
                CLASS,
                name,
                not problems,
                time.monotonic() - t0,
                "\n".join(problems),
                documents=1,
                kills=len(self.cycle_kills),
                figures={"killed": list(self.cycle_kills)},
            )
        )
        return not pending

    def finish(self, started: float) -> CaseResult:
        """Disarm, drain, stop every daemon, run the checker: the point's final case."""
        net = self.net
        settling = len(self.unexpected)
        t0 = time.monotonic()
        for node in self.targets:  # still armed: killed (an extra kill, not counted) and back unarmed
            if self.armed.get(node) and net.running(node):
                net.kill(node)
                net.spawn(node, {})
                self.armed[node] = False
        self.watch()
        problems: list[str] = []
        try:
            net.wait_ready(self.targets)
        except DaemonError as e:
            problems.append(str(e))
        verdict = finish(net, self.sent, DRAIN_TIMEOUT, each=self.watch)
        problems += verdict.problems()
        if self.killed < self.repeat:
            problems.append(f"the point was reached {self.killed} times in {self.cycles} cycles, not {self.repeat}")
        problems += self.unexpected[settling:]  # deaths after the last cycle (those before are in their cycles)
        cycle_times = [c.seconds for c in self.cases]
        return CaseResult(
            CLASS,
            f"{self.point}/check",
            not problems,
            time.monotonic() - t0,
            "\n".join(problems),
            lost=verdict.lost_documents,
            duplicated=verdict.duplicated_documents,
            figures={
                "point": self.point,
                "cycles": self.cycles,
                "kills": dict(self.kills),
                "starts": dict(net.starts),
                "deliveries": verdict.deliveries,
                "repeats dropped": verdict.repeats,
                "cycle_seconds_mean": round(sum(cycle_times) / len(cycle_times), 2) if cycle_times else None,
                "cycle_seconds_max": round(max(cycle_times), 2) if cycle_times else None,
                "point_seconds": round(time.monotonic() - started, 1),
            },
        )


def run_point(
    point: str,
    repeat: int,
    folder: Path,
    pki: CampaignPki,
    *,
    seed: int = 1,
    target: str = "both",
    cycle_timeout: float = CYCLE_TIMEOUT,
) -> list[CaseResult]:
    """``repeat`` kills at ``point``: one case per cycle (a letter through to 签收) and a final case (the checker)."""
    if point not in CRASH_POINTS:
        raise CampaignError(f"no kill point {point!r} (one of {', '.join(CRASH_POINTS)})")
    started = time.monotonic()
    with Network(folder, TOPOLOGY, pki) as net:
        run = PointRun(net, point, repeat, TARGETS[target], seed)
        net.start(envs={node: run.arm(node, first=True) for node in run.targets})
        while run.killed < repeat and run.cycles < 3 * repeat + 3:
            if not run.cycle(cycle_timeout):
                break  # stuck: no point sending more into it; the final case says what is left
        final = run.finish(started)
    return [*run.cases, final]


RESTART_DURING_SEND = "restart-during-send"
SCENARIOS = (RESTART_DURING_SEND,)
POINTS = (*CRASH_POINTS, *SCENARIOS)  # what --point accepts
DEBRIS = 1000
ROUNDS = 3  # starts of restart-during-send, whatever --repeat says: the race shows at once


def _missing_parts(net: Network, node: str, docs: Sequence[Sent]) -> list[Sent]:
    store = net.context(node).store
    return [
        d for d in docs if any(not store.part_path(d.message_id, p.cid).is_file() for p in store.parts(d.message_id))
    ]


@contextmanager
def commit_while_sweeping(net: Network, node: str, debris: list[Path]) -> Iterator[None]:
    """The clerk's next commit waits until ``node``'s starting daemon has begun to sweep ``debris`` away (one of
    the folders is gone), then goes ahead: the interleaving a busy clerk meets by chance, made certain."""
    store = net.context(node).store
    apply = store.apply

    def apply_while_sweeping(actions: Iterable[Action]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while all(d.exists() for d in debris) and not net.ready(node) and time.monotonic() < deadline:
            time.sleep(0.001)
        apply(actions)

    store.apply = apply_while_sweeping  # type: ignore[method-assign]
    try:
        yield
    finally:
        del store.apply  # the class's method again


def run_restart_during_send(
    repeat: int, folder: Path, pki: CampaignPki, *, debris: int = DEBRIS, rounds_max: int = ROUNDS
) -> list[CaseResult]:
    """leaf-1 is SIGKILLed and started again while its clerk sends letters with an attachment (``gwx send`` does
    not need the daemon, and a clerk does not wait for it). A daemon sweeps its part files when it starts: part
    folders no envelope row names are crash debris. Before each start ``debris`` such folders, an hour old, are
    left in leaf-1's ``parts/`` — what crashes in the middle of receiving leave; a store that already holds many
    envelopes makes the sweep as long. Each start, one letter's commit is made to land while the sweep runs
    (``commit_while_sweeping``), then the clerk sends as fast as it can until the daemon listens. One case per
    start: every letter the clerk was told is queued must keep its part files, and no send may be refused for the
    daemon's sake; then a final case: everything delivered and signed for. At most ``rounds_max`` starts."""
    cases: list[CaseResult] = []
    with Network(folder, TOPOLOGY, pki) as net:
        net.start()
        attachment = attachment_file(folder / "attachments", 4096)
        parts = net.homes["leaf-1"] / "parts"
        sent: list[Sent] = []
        serial = 0
        for r in range(1, min(repeat, rounds_max) + 1):
            t0 = time.monotonic()
            net.kill("leaf-1")
            planted = []
            old = time.time() - 3600  # written an hour ago: debris the sweep is to remove
            for i in range(debris):
                planted.append(parts / f"0-debris-{r}-{i:04d}")  # sorted before any message id
                planted[-1].mkdir()
                (planted[-1] / "part-1").write_bytes(b"debris")
                os.utime(planted[-1] / "part-1", (old, old))
                os.utime(planted[-1], (old, old))
            net.spawn("leaf-1")
            round_sent: list[Sent] = []
            refused: list[str] = []
            forced: list[Sent] = []
            serial += 1
            try:
                with commit_while_sweeping(net, "leaf-1", planted):
                    forced.append(net.send(serial, SENDER, TO, CC, attachments=[attachment]))
            except GwxError as e:
                refused.append(f"#{serial} (committed during the sweep): {e}")
            while not net.ready("leaf-1") and time.monotonic() - t0 < START_TIMEOUT:
                serial += 1
                try:
                    round_sent.append(net.send(serial, SENDER, TO, CC, attachments=[attachment]))
                except GwxError as e:
                    refused.append(f"#{serial}: {e}")
            round_sent = forced + round_sent
            sent += round_sent
            lost = _missing_parts(net, "leaf-1", round_sent)
            problems = [
                f"#{d.serial} {d.message_id}{' (committed during the sweep)' if d in forced else ''}: queued (the "
                "clerk was given its message id), then its part files were deleted by leaf-1's start-up sweep"
                for d in lost
            ]
            problems += [f"send refused while leaf-1 started: {e}" for e in refused[:3]]
            cases.append(
                CaseResult(
                    CLASS,
                    f"{RESTART_DURING_SEND}#{r}",
                    not problems,
                    time.monotonic() - t0,
                    "\n".join(problems),
                    documents=len(round_sent),
                    kills=1,
                    lost=len(lost),
                    figures={
                        "sent while starting": len(round_sent),
                        "refused": len(refused),
                        "lost by chance": len([d for d in lost if d not in forced]),
                    },
                )
            )
        t0 = time.monotonic()
        doomed = _missing_parts(net, "leaf-1", sent)
        healthy = [d for d in sent if d not in doomed]
        pending = drive(net, healthy, DRAIN_TIMEOUT, stall=60.0)
        verdict = finish(net, sent, 5.0)
        problems = verdict.problems()
        if pending:
            problems.insert(0, f"{len(pending)} deliveries of letters whose parts survived are stuck too")
        cases.append(
            CaseResult(
                CLASS,
                f"{RESTART_DURING_SEND}/check",
                not problems,
                time.monotonic() - t0,
                "\n".join(problems),
                lost=max(0, verdict.lost_documents - len(doomed)),  # the doomed ones are counted in their rounds
                duplicated=verdict.duplicated_documents,
                figures={
                    "deliveries": verdict.deliveries,
                    "repeats dropped": verdict.repeats,
                    "parts lost": len(doomed),
                },
            )
        )
    return cases


def run_one(point: str, repeat: int, folder: Path, pki: CampaignPki, *, seed: int, target: str) -> list[CaseResult]:
    if point == RESTART_DURING_SEND:
        return run_restart_during_send(repeat, folder, pki)
    return run_point(point, repeat, folder, pki, seed=seed, target=target)


def run(
    points: Sequence[str] = POINTS,
    repeat: int = 20,
    *,
    workdir: Path,
    seed: int = 1,
    target: str = "both",
) -> ClassResult:
    """Every point in ``points``, one after the other (``runner`` runs several at once, each in a worker)."""
    result = ClassResult(CLASS)
    t0 = time.monotonic()
    pki = CampaignPki(workdir / "pki")
    for point in points:
        try:
            result.cases += run_one(point, repeat, workdir / point, pki, seed=seed, target=target)
        except (CampaignError, GwxError, OSError) as e:
            result.cases.append(CaseResult(CLASS, f"{point}/check", False, 0.0, f"harness: {e}"))
    result.seconds = time.monotonic() - t0
    result.notes.append(
        f"kill points × {repeat} kills at {'/'.join(TARGETS[target])} (and the scenario {', '.join(SCENARIOS)}); "
        "committed = after commit = after filing = after queued (one transaction)"
    )
    return result


def cycle_note(result: ClassResult) -> None:
    """The mean cycle over every point's cases (after the units of the class were merged)."""
    repeats = sum(int(c.figures.get("repeats dropped", 0)) for c in result.cases)
    if repeats:
        result.notes.append(f"{repeats} copies sent again after a crash and dropped as duplicates by their receivers")
    cycles = [c.seconds for c in result.cases if "#" in c.name and not c.name.startswith(tuple(SCENARIOS))]
    if cycles:
        result.figures["cycle_seconds_mean"] = round(sum(cycles) / len(cycles), 2)
        result.notes.append(
            f"{len(cycles)} cycles, mean {result.figures['cycle_seconds_mean']} s (one letter to 签收, kills and "
            "restarts included)"
        )
