"""Load: many documents of mixed sizes and fan-outs while a hub is SIGKILLed and restarted.

The network (``two_hubs(4, 8, 2)``): hub-a ── hub-b, leaf-1 and leaf-3 on hub-a, leaf-2 and leaf-4 on hub-b; eight
departments at each leaf and two at each hub — 36 departments on six nodes. Each document goes from a random
department to 1–30 others (most to one or a few, some to many: ``fan_out``); most are short letters, some carry
attachments of tens or hundreds of kilobytes, a few of several megabytes (``attachment_sizes``). The clerks send
as fast as they can, every clerk signs for what arrives as it goes, and hub-b is SIGKILLed and restarted at once
``kills`` times, evenly spread over the sending. Then everything must settle — every document delivered to every
recipient and every 签收 back — and the checker runs over every store and every log.

``--full``: 10,000 documents, 15% of them to more than five departments, multi-megabyte attachments (2–8 MB) on
1 in 100, hub-b killed twice. ``--ci``: 300 documents, 6% to more than five, five with a 2 MB attachment, hub-b
killed once. The first document of either goes to thirty departments.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from campaign.network import CampaignError, CampaignPki, Network, Sent, attachment_file, finish, two_hubs
from campaign.report import CaseResult, ClassResult
from gwexchange.errors import GwxError, TransientError

CLASS = "load"
TOPOLOGY = two_hubs(4, 8, 2)
VICTIM = "hub-b"
MB = 1024 * 1024
SEND_ATTEMPTS = 20  # a clerk told "busy, try again" tries again, a little later each time


@dataclass(frozen=True)
class LoadProfile:
    documents: int
    kills: int
    big_every: int  # one document in this many carries a multi-megabyte attachment
    big_sizes: tuple[int, ...]
    settle_seconds: float  # the bound on the final wait (not what it is expected to take)
    wide: float = 0.15  # the share of documents to more than five recipients

    @classmethod
    def ci(cls) -> LoadProfile:
        return cls(documents=300, kills=1, big_every=60, big_sizes=(2 * MB,), settle_seconds=900.0, wide=0.06)

    @classmethod
    def full(cls) -> LoadProfile:
        return cls(
            documents=10_000,
            kills=2,
            big_every=100,
            big_sizes=(2 * MB, 3 * MB, 5 * MB, 8 * MB),
            settle_seconds=4 * 3600.0,
        )

    @classmethod
    def of(cls, documents: int) -> LoadProfile:
        base = cls.ci() if documents <= 1000 else cls.full()
        return replace(base, documents=documents, settle_seconds=max(base.settle_seconds, documents * 2.0))


def fan_out(rng: random.Random, wide: float) -> int:
    """How many recipients: half the documents one, most a few, ``wide`` of them 6–15 and up to 30."""
    r = rng.random()
    if r < 0.5:
        return 1
    if r < 1 - wide:
        return rng.randint(2, 5)
    if r < 1 - wide / 4:
        return rng.randint(6, 15)
    return rng.randint(16, 30)


def attachment_sizes(serial: int, rng: random.Random, profile: LoadProfile) -> list[int]:
    if serial % profile.big_every == 0:
        return [rng.choice(profile.big_sizes)]
    r = rng.random()
    if r < 0.75:
        return []
    if r < 0.95:
        return [rng.choice((2, 8, 32, 64)) * 1024]
    return [rng.choice((256, 512, 1024)) * 1024, 16 * 1024]


@dataclass(frozen=True, slots=True)
class Planned:
    serial: int
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    attachments: tuple[Path, ...]


def plan(net: Network, profile: LoadProfile, rng: random.Random, files: Path) -> list[Planned]:
    """The documents, decided up front (the same for a seed): sender, 主送, 抄送, attachments."""
    codes = sorted(net.topology.departments)
    out = []
    for serial in range(1, profile.documents + 1):
        sender = rng.choice(codes)
        count = 30 if serial == 1 else fan_out(rng, profile.wide)  # the first goes to thirty departments
        recipients = rng.sample([c for c in codes if c != sender], count)
        split = max(1, len(recipients) * 2 // 3)
        paths = tuple(attachment_file(files, size) for size in attachment_sizes(serial, rng, profile))
        out.append(Planned(serial, sender, tuple(recipients[:split]), tuple(recipients[split:]), paths))
    return out


@dataclass
class Traffic:
    """What the clerks sent: the acknowledged documents, the sends refused, the kills, the daemons' own deaths;
    ``retried``: sends a clerk tried again after "busy, try again"."""

    sent: list[Sent] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    retried: int = 0
    crashes: list[str] = field(default_factory=list)
    kills: int = 0
    attached_bytes: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def done(self) -> int:
        with self.lock:
            return len(self.sent) + len(self.refused)


class Clerks:
    """A clerk per node, as in an office: one thread sends that node's documents in order, one signs for what
    arrives there. (One thread doing every clerk's work would measure the campaign, not the network.)"""

    def __init__(self, net: Network, traffic: Traffic) -> None:
        self.net, self.traffic = net, traffic
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        for node in net.topology.node_ids:  # open every clerk's store here, before the threads share them
            net.context(node)
            net.reader(node)

    def send(self, documents: list[Planned]) -> None:
        by_node: dict[str, list[Planned]] = {}
        for doc in documents:
            by_node.setdefault(self.net.topology.home_of(doc.sender), []).append(doc)
        for node, docs in by_node.items():
            self._thread(f"send-{node}", self._sender, docs)

    def sign(self) -> None:
        for node in self.net.topology.node_ids:
            self._thread(f"sign-{node}", self._signer, node)

    def senders_alive(self) -> bool:
        return any(t.is_alive() for t in self.threads if t.name.startswith("send-"))

    def join(self, timeout: float = 60.0) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout)

    def _thread(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=self._guarded, args=(target, *args), name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _guarded(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except Exception as e:  # a clerk thread's failure is a finding, reported with the rest
            with self.traffic.lock:
                self.traffic.crashes.append(f"clerk thread {threading.current_thread().name} failed: {e!r}")

    def _sender(self, docs: list[Planned]) -> None:
        for doc in docs:
            if self.stop.is_set():
                return
            for attempt in range(1, SEND_ATTEMPTS + 1):
                try:
                    sent = self.net.send(doc.serial, doc.sender, doc.to, doc.cc, attachments=doc.attachments)
                except TransientError as e:  # "busy, try again": what a clerk does, a moment later
                    if attempt < SEND_ATTEMPTS and not self.stop.wait(0.2 * attempt):
                        with self.traffic.lock:
                            self.traffic.retried += 1
                        continue
                    self._refused(doc, e)
                except GwxError as e:  # not acknowledged: the clerk saw the error; the document is not counted as sent
                    self._refused(doc, e)
                else:
                    with self.traffic.lock:
                        self.traffic.sent.append(sent)
                break

    def _refused(self, doc: Planned, error: GwxError) -> None:
        with self.traffic.lock:
            self.traffic.refused.append(f"#{doc.serial} from {doc.sender}: {error}")

    def _signer(self, node: str) -> None:
        while not self.stop.is_set():
            if not self.net.sign_for_new([node]):
                self.stop.wait(0.2)


def send_all(net: Network, profile: LoadProfile, documents: list[Planned]) -> tuple[Traffic, Clerks]:
    """Every clerk sends its documents and signs for what arrives; the victim is SIGKILLed (and restarted at once)
    each time another share of the documents has been sent. The clerks keep signing for until ``join``."""
    traffic = Traffic(attached_bytes=sum(p.stat().st_size for d in documents for p in d.attachments))
    clerks = Clerks(net, traffic)
    t0 = time.monotonic()
    kill_at = sorted(profile.documents * (k + 1) // (profile.kills + 1) for k in range(profile.kills))
    clerks.sign()
    clerks.send(documents)
    while clerks.senders_alive():
        if kill_at and traffic.done >= kill_at[0]:
            kill_at.pop(0)
            net.kill(VICTIM)  # SIGKILL in the middle of the traffic, restarted at once
            net.spawn(VICTIM)
            traffic.kills += 1
        watch(net, traffic)
        time.sleep(0.05)
    traffic.seconds = time.monotonic() - t0
    return traffic, clerks


def watch(net: Network, traffic: Traffic) -> None:
    """A daemon that died by itself crashed: say so, restart it."""
    for node in net.topology.node_ids:
        if not net.running(node):
            with traffic.lock:
                traffic.crashes.append(f"{node} exited {net.exit_code(node)} on its own\n{net.log_tail(node, 1500)}")
            net.reap(node)
            net.spawn(node)


def run(profile: LoadProfile, *, workdir: Path, pki: CampaignPki | None = None, seed: int = 1) -> ClassResult:
    result = ClassResult(CLASS)
    t0 = time.monotonic()
    rng = random.Random(seed)  # noqa: S311 — the drill's mix of documents, not a secret
    pki = pki or CampaignPki(workdir / "pki")
    try:
        with Network(workdir / "load", TOPOLOGY, pki) as net:
            net.start()
            documents = plan(net, profile, rng, workdir / "attachments")
            traffic, clerks = send_all(net, profile, documents)
            t_settle = time.monotonic()
            try:
                verdict = finish(
                    net,
                    traffic.sent,
                    profile.settle_seconds,
                    sign=False,
                    each=lambda: watch(net, traffic),
                    interval=1.0,
                    before_stop=clerks.join,
                    stall=180.0,
                )
            finally:
                clerks.join()
            settle_seconds = time.monotonic() - t_settle
            problems = verdict.problems() + traffic.crashes
            if traffic.refused:  # every send must be taken: a busy store is retried, as a clerk would
                problems.append(f"{len(traffic.refused)} sends refused: " + "; ".join(traffic.refused[:5]))
            sent = traffic.sent
            figures: dict[str, Any] = {
                "deliveries": verdict.deliveries,
                "repeats dropped": verdict.repeats,
                "recipients_max": max((len(d.recipients) for d in sent), default=0),
                "attachment_bytes": traffic.attached_bytes,
                "big_documents": profile.documents // profile.big_every,
                "sends_refused": len(traffic.refused),
                "send_seconds": round(traffic.seconds, 1),
                "settle_seconds": round(settle_seconds, 1),
                "documents_per_second": round(len(sent) / (traffic.seconds + settle_seconds), 1),
            }
            result.cases.append(
                CaseResult(
                    CLASS,
                    f"{profile.documents} documents, {VICTIM} killed {traffic.kills}×",
                    not problems,
                    time.monotonic() - t0,
                    "\n".join(problems),
                    documents=len(sent),
                    kills=traffic.kills,
                    lost=verdict.lost_documents,
                    duplicated=verdict.duplicated_documents,
                    figures=figures,
                )
            )
            result.figures = figures
            if traffic.retried:
                result.notes.append(f"{traffic.retried} sends tried again after the store said busy")
    except (CampaignError, GwxError, OSError) as e:
        result.cases.append(CaseResult(CLASS, "harness", False, time.monotonic() - t0, f"harness: {e}"))
    result.seconds = time.monotonic() - t0
    if result.figures:
        f = result.figures
        result.notes.append(
            f"{f['deliveries']} deliveries (up to {f['recipients_max']} recipients), "
            f"{f['attachment_bytes'] / MB:.0f} MB attached; sent in {f['send_seconds']} s, "
            f"settled {f['settle_seconds']} s later; "
            f"{f['documents_per_second']} documents/s end to end; {f['repeats dropped']} copies received twice and "
            "dropped"
        )
    return result
