"""The exchange network end to end: documents/s and latency through three real nodes on loopback.

Run from the repository root with the project's virtual environment::

    python bench/bench_network.py                  # 2,000 documents, all offered at once
    python bench/bench_network.py --docs 500 --rate 100   # offered at a fixed 100 documents/s
    python bench/bench_network.py --profile        # cProfile inside each daemon instead (slower: not the figures)

What is measured
    Three ``gwx node run`` processes on 127.0.0.1 — gd-gxt (sends, gd.gov.gxt) ── gd-hub (gd.gov.office) ──
    gd-czt (gd.gov.czt) — with the default store (SQLite, WAL, synchronous=FULL: every commit and every part file
    fsynced) and the default node settings (``--tick`` and ``--retry-base`` change the two that matter here).
    The documents are the samples of ``examples/``: the letter (函, 公开, two small attachments, to gd.gov.czt with
    gd.gov.office in 抄送) and, for ``--notice-share`` of them (10 %), the notice (通知, 内部, 加急, a 7 KB body)
    addressed the same way. So each document is one copy to the hub, delivered there (送达 back to the sender) and
    relayed to gd-czt (送达 back through the hub): five SMTP transmissions, two openings, two receipts per document.

    The clerk's work — sign, verify, seal for both recipients (``sign_document``, ``verify_document``, ``seal``,
    as ``gwx send`` does) — is done for every document before the clock starts, and timed on its own. Then the
    documents are queued into the sender's store while its daemon runs, as ``gwx send`` queues them (stage the
    parts, ``originate`` in one commit per document): all at once, or at ``--rate`` per second. The clock runs from
    the first enqueue until every recipient's 送达 is back at the sender (or ``--timeout``).

    * documents/s: documents / (last 送达 at the sender − first enqueue); and "steady", the rate between the 10th
      and the 90th percentile of completion times (no ramp-up, no tail);
    * latency per document: from its enqueue (``outbox_message.created``) to the later of its two 送达 at the
      sender (``outbox_recipient.updated_at``), both written by the same clock: p50, p90, p99, max;
    * lost: documents without a 送达 from every recipient at the end; duplicated: inbox entries per message at a
      recipient above one, 送达 receipts per (message, recipient) at the sender above one, and copies a node
      received again and dropped as duplicates (``node.duplicate`` in its log: retransmissions, harmless);
    * CPU seconds of each daemon (from /proc) and per document.

    Goals of the issue: ≥ 200 documents/s sustained, p99 < 2 s, none lost. The peer figures printed beside them are
    PUBLISHED figures, not measured here: a public X-Road sizing guide gives a small security server under 50
    requests per minute; an AS4 access point was reported at about 400 messages/s for a few seconds.

``--profile`` runs each daemon under cProfile (every thread: the asyncio loop, the listener's and the senders'
workers) through this script's own ``--serve`` mode, reading ``BENCH_NETWORK_PROFILE`` — nothing in gwexchange
knows about it — and prints each node's top functions by own time, per document.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import io
import os
import pstats
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a source tree without installing
    sys.path.insert(0, str(REPO))

import benchenv  # noqa: E402

from gwexchange.cli.local_network import Daemons, LocalPki, free_ports, local_directory  # noqa: E402
from gwexchange.envelope.description import load_description_file  # noqa: E402
from gwexchange.envelope.model import Department, Document  # noqa: E402
from gwexchange.envelope.sealing import Sealed, seal  # noqa: E402
from gwexchange.envelope.signing import sign_document, verify_document  # noqa: E402
from gwexchange.envelope.xmlform import document_to_xml  # noqa: E402
from gwexchange.files import read_chunks  # noqa: E402
from gwexchange.routing import node_logic  # noqa: E402
from gwexchange.routing.context import NodeContext, load_context  # noqa: E402
from gwexchange.routing.home import NodeConfig  # noqa: E402

EXAMPLES = REPO / "examples"
AUTHORITY = "gd.gov.ca"
SENDER, HUB, RECIPIENT = "gd-gxt", "gd-hub", "gd-czt"
NODES = {SENDER: "gd.gov.gxt", HUB: "gd.gov.office", RECIPIENT: "gd.gov.czt"}
NAMES = {"gd.gov.gxt": "广东省工业和信息化厅", "gd.gov.office": "广东省人民政府办公厅", "gd.gov.czt": "广东省财政厅"}
PROFILE_ENV = "BENCH_NETWORK_PROFILE"

GOAL_DOCS_PER_S = 200.0
GOAL_P99_S = 2.0
# Published figures, not measured here.
XROAD_SMALL_PER_S = 50 / 60  # X-Road sizing guide: a small security server, under 50 requests per minute
AS4_PEAK_PER_S = 400.0  # an AS4 access point: about 400 messages/s, for a few seconds


# --- the network ----------------------------------------------------------------------------------------------


def make_network(folder: Path, settings: dict[str, float]) -> dict[str, Path]:
    """PKI (unencrypted test keys), signed directory and the three node homes, as ``gwx node init`` writes them."""
    pki = LocalPki(folder / "ca", name="安全中心（基准测试）")
    for node, code in NODES.items():
        pki.issue_node(node, f"{node} 交换节点")
        pki.issue_department(code, NAMES[code])
    ports = free_ports(NODES)
    departments = {code: (NAMES[code], node) for node, code in NODES.items()}
    directory = local_directory(pki, ports, departments, ((SENDER, HUB), (HUB, RECIPIENT)))
    signed = pki.publish(directory, folder / "directory.signed.xml")
    return {
        node: pki.init_home(
            folder / node,
            node_id=node,
            listen=f"127.0.0.1:{ports[node]}",
            directory=signed,
            departments=[code],
            settings=settings,
        )
        for node, code in NODES.items()
    }


class BenchDaemons(Daemons):
    """The three node processes: ``gwx node run``, or this script's ``--serve`` under cProfile; logs in ``folder``."""

    def __init__(self, homes: dict[str, Path], folder: Path, profile: str | None) -> None:
        super().__init__(homes, logs=folder)
        self.folder = folder
        self.profile = profile

    def profile_path(self, node: str) -> Path:
        return self.folder / f"{node}.pstats"

    def start_all(self) -> None:
        for node, home in self.homes.items():
            if self.profile:
                command = [sys.executable, str(Path(__file__).resolve()), "--serve", str(home)]
                self.spawn(node, {PROFILE_ENV: f"{self.profile_path(node)}:{self.profile}"}, command=command)
            else:
                self.spawn(node)
        self.wait_ready(self.homes)

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU time of each daemon so far (its threads included), from /proc."""
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for node, proc in self.procs.items():
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                out[node] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                out[node] = float("nan")
        return out


# --- the documents --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Prepared:
    sealed: Sealed
    parts: dict[str, bytes]
    kind: str


def sample_documents() -> dict[str, tuple[Document, dict[str, Path]]]:
    """The letter as it is, and the notice addressed like the letter (from gd.gov.gxt to gd.gov.czt, 抄送
    gd.gov.office), with their attachment files."""
    letter = load_description_file(EXAMPLES / "letter.toml")
    notice = load_description_file(EXAMPLES / "notice.toml")
    gxt = Department("gd.gov.gxt", NAMES["gd.gov.gxt"])
    notice = dataclasses.replace(
        notice,
        issuers=(gxt,),
        issuer_mark="广东省工业和信息化厅文件",
        signature_names=(NAMES["gd.gov.gxt"],),
        main_recipients=letter.main_recipients,
        main_recipients_line=None,
        copy_recipients=letter.copy_recipients,
    )
    files = {a.file_name: EXAMPLES / "attachments" / a.file_name for a in letter.attachments}
    return {"letter": (letter, files), "notice": (notice, {})}


def prepare(ctx: NodeContext, count: int, notice_share: float) -> tuple[list[Prepared], float]:
    """Sign, verify and seal ``count`` documents at the sender, as ``gwx send`` does: the documents and seconds."""
    samples = sample_documents()
    every = round(1 / notice_share) if notice_share > 0 else 0
    signer = ctx.view.departments[NODES[SENDER]].signer
    out: list[Prepared] = []
    started = time.perf_counter()
    for i in range(count):
        kind = "notice" if every and i % every == every - 1 else "letter"
        doc, files = samples[kind]
        at = datetime.now(UTC)
        signed = sign_document(document_to_xml(doc), signer, at=at, trust=ctx.trust)
        verified = verify_document(signed, ctx.trust, now=at)
        certs = {d.code: ctx.directory.department(d.code).encryption_certificate for d in doc.recipients}
        parts: dict[str, bytes] = {}

        def sink(cid: str, octets: Iterable[bytes], parts: dict[str, bytes] = parts) -> None:
            parts[cid] = b"".join(octets)

        sealed = seal(
            verified,
            certs,
            ctx.view.node_signer,
            trust=ctx.trust,
            sender_department=NODES[SENDER],
            node_id=SENDER,
            now=at,
            attachments={name: read_chunks(path) for name, path in files.items()},
            part_sink=sink,
        )
        out.append(Prepared(sealed, parts, kind))
    return out, time.perf_counter() - started


def enqueue(ctx: NodeContext, docs: list[Prepared], rate: float | None) -> float:
    """Queue the documents at the sender as ``gwx send`` does, one commit each; returns the seconds it took."""
    started = time.perf_counter()
    for i, doc in enumerate(docs):
        if rate:
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        message_id = doc.sealed.header.message_id
        ctx.store.stage_parts(message_id, doc.sealed.parts, {cid: [data] for cid, data in doc.parts.items()})
        ctx.store.apply(node_logic.originate(doc.sealed, NODES[SENDER], ctx.view, ctx.store, datetime.now(UTC)))
    return time.perf_counter() - started


# --- watching and reading the stores ----------------------------------------------------------------------------


def read_only(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{home / 'node.db'}?mode=ro", uri=True, timeout=30)


def delivered_count(home: Path) -> int:
    with contextlib.closing(read_only(home)) as db:
        return int(db.execute("select count(*) from outbox_recipient where state = '送达'").fetchone()[0])


def wait_delivered(home: Path, expected: int, timeout: float, out: TextIO) -> bool:
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while time.monotonic() < deadline:
        done = delivered_count(home)
        if done >= expected:
            return True
        if time.monotonic() - last_report >= 10:
            print(f"  … {done:,} of {expected:,} 送达 back at the sender", file=out, flush=True)
            last_report = time.monotonic()
        time.sleep(0.25)
    return False


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclasses.dataclass
class Results:
    documents: int
    recipients_each: int
    first_enqueue: datetime
    latencies: list[float]  # seconds, per completed document
    completions: list[datetime]
    lost: int
    inbox_duplicates: int
    receipt_duplicates: int
    dropped_retransmissions: dict[str, int]
    sent_twice: dict[str, int]
    failed: int


def collect(homes: dict[str, Path], message_ids: list[str], folder: Path) -> Results:
    wanted = set(message_ids)
    with contextlib.closing(read_only(homes[SENDER])) as db:
        created = {
            mid: parse_time(at)
            for mid, at in db.execute("select message_id, created from outbox_message")
            if mid in wanted
        }
        rows = db.execute("select message_id, recipient, state, updated_at from outbox_recipient").fetchall()
        receipts = db.execute(
            "select message_id, answerer, count(*) from receipt where kind = '送达' group by message_id, answerer"
        ).fetchall()
    states: dict[str, list[tuple[str, datetime]]] = {}
    for mid, _recipient, state, at in rows:
        if mid in wanted:
            states.setdefault(mid, []).append((state, parse_time(at)))
    latencies, completions, lost, failed = [], [], 0, 0
    recipients_each = max((len(v) for v in states.values()), default=0)
    for mid in message_ids:
        entries = states.get(mid, [])
        if entries and all(state == "送达" for state, _ in entries):
            done = max(at for _, at in entries)
            completions.append(done)
            latencies.append((done - created[mid]).total_seconds())
        else:
            lost += 1
            failed += any(state == "投递失败" for state, _ in entries)
    inbox_duplicates = 0
    for node in (HUB, RECIPIENT):
        with contextlib.closing(read_only(homes[node])) as db:
            for (count,) in db.execute("select count(*) from inbox_entry group by department, message_id"):
                inbox_duplicates += max(0, int(count) - 1)
    receipt_duplicates = sum(max(0, int(count) - 1) for _, _, count in receipts)
    dropped = {
        node: (folder / f"{node}.log").read_text(errors="replace").count("event=node.duplicate ") for node in homes
    }
    sent_twice = {node: _sent_twice(folder / f"{node}.log") for node in homes}
    return Results(
        documents=len(message_ids),
        recipients_each=recipients_each,
        first_enqueue=min(created.values()),
        latencies=latencies,
        completions=sorted(completions),
        lost=lost,
        inbox_duplicates=inbox_duplicates,
        receipt_duplicates=receipt_duplicates,
        dropped_retransmissions=dropped,
        sent_twice=sent_twice,
        failed=failed,
    )


def _sent_twice(log: Path) -> int:
    """Copies (message, next hop) a node logged as sent (250 received) more than once."""
    counts: dict[tuple[str, str], int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "event=node.sent " in line:
            fields = dict(f.split("=", 1) for f in line.split("event=node.sent ", 1)[1].split() if "=" in f)
            key = (fields.get("message_id", ""), fields.get("next_hop", ""))
            counts[key] = counts.get(key, 0) + 1
    return sum(1 for c in counts.values() if c > 1)


def log_events(folder: Path, node: str) -> dict[str, int]:
    """How many of each event a node logged (warnings tell of retries and deferrals)."""
    counts: dict[str, int] = {}
    for line in (folder / f"{node}.log").read_text(errors="replace").splitlines():
        _, found, rest = line.partition("event=")
        if found:
            name = rest.split(" ", 1)[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


# --- the report -----------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def ok(good: bool) -> str:
    return "ok" if good else "MISS"


def report(
    results: Results,
    *,
    seal_seconds: float,
    enqueue_seconds: float,
    cpu: dict[str, float],
    events: dict[str, dict[str, int]],
    kinds: dict[str, int],
    rate: float | None,
) -> None:
    n = results.documents
    done = len(results.latencies)
    elapsed = (results.completions[-1] - results.first_enqueue).total_seconds() if results.completions else float("nan")
    throughput = done / elapsed if done else 0.0
    steady = float("nan")
    if done >= 10:
        lo, hi = results.completions[int(0.1 * done)], results.completions[int(0.9 * done) - 1]
        span = (hi - lo).total_seconds()
        steady = (int(0.9 * done) - 1 - int(0.1 * done)) / span if span > 0 else float("nan")
    lat = results.latencies
    p50, p90, p99 = (percentile(lat, q) for q in (0.5, 0.9, 0.99))
    worst = max(lat) if lat else float("nan")
    print()
    print(
        f"documents     {n:,} ({', '.join(f'{c:,} {k}' for k, c in kinds.items())}), "
        f"{results.recipients_each} recipients each"
    )
    print(
        f"clerk's work  sign + verify + seal, before the clock: {seal_seconds:.1f} s, "
        f"{n / seal_seconds:,.0f} documents/s, {seal_seconds / n * 1e3:.2f} ms each (one process)"
    )
    offered = f"at {rate:g}/s" if rate else "all at once"
    print(
        f"enqueue       {offered}: {enqueue_seconds:.1f} s, {n / enqueue_seconds:,.0f} documents/s "
        "(stage parts + originate, one commit each, while the daemons run)"
    )
    print()
    print(f"{'':34}{'measured':>14}  {'goal':>10}")
    print(
        f"{'documents/s (enqueue → all 送达)':34}{throughput:14.1f}  {'≥ 200':>10}  {ok(throughput >= GOAL_DOCS_PER_S)}"
    )
    print(f"{'documents/s steady (p10–p90)':34}{steady:14.1f}")
    print(f"{'elapsed (s)':34}{elapsed:14.1f}")
    print(f"{'latency p50 (s)':34}{p50:14.3f}")
    print(f"{'latency p90 (s)':34}{p90:14.3f}")
    print(f"{'latency p99 (s)':34}{p99:14.3f}  {'< 2':>10}  {ok(p99 < GOAL_P99_S)}")
    print(f"{'latency max (s)':34}{worst:14.3f}")
    print(f"{'lost (no 送达 from all)':34}{results.lost:14d}  {'0':>10}  {ok(results.lost == 0)}")
    if results.failed:
        print(f"{'  of which 投递失败':34}{results.failed:14d}")
    duplicates = results.inbox_duplicates
    print(f"{'duplicated: inbox entries > 1':34}{duplicates:14d}  {'0':>10}  {ok(not duplicates)}")
    print(f"{'duplicated: 送达 receipts > 1':34}{results.receipt_duplicates:14d}  {'0':>10}")
    dropped = ", ".join(f"{node} {count}" for node, count in results.dropped_retransmissions.items())
    print(f"{'copies received twice, dropped':34}{sum(results.dropped_retransmissions.values()):14d}  ({dropped})")
    twice = ", ".join(f"{node} {count}" for node, count in results.sent_twice.items())
    print(f"{'copies sent twice (node.sent)':34}{sum(results.sent_twice.values()):14d}  ({twice})")
    print()
    print("CPU per daemon (user + system, from listening to the last 送达):")
    for node, seconds in cpu.items():
        print(f"  {node:8} {seconds:8.1f} s   {seconds / n * 1e3:7.2f} ms per document")
    per_doc = {node: seconds / n for node, seconds in cpu.items()}
    cpus = os.cpu_count() or 1
    ceiling = min(1 / max(per_doc.values()), cpus / sum(per_doc.values()))
    print(
        f"  CPU-bound ceiling on this machine with nothing else running: {ceiling:.1f} documents/s "
        f"(min of 1 / the busiest daemon's CPU per document — one core each, the GIL — and {cpus} CPUs / their sum)"
    )
    trouble = {
        node: {k: v for k, v in counts.items() if k in _TROUBLE}
        for node, counts in events.items()
        if any(k in _TROUBLE for k in counts)
    }
    if trouble:
        print("warnings in the daemons' logs: " + "; ".join(f"{n}: {c}" for n, c in trouble.items()))
    print()
    print("Peer figures (PUBLISHED, not measured here; other systems, other hardware, other work per message):")
    print(
        f"  X-Road, small security server (sizing guide): < 50 requests/min = {XROAD_SMALL_PER_S:.2f}/s   "
        f"measured here / that: {throughput / XROAD_SMALL_PER_S:,.0f}×"
    )
    print(
        f"  AS4 access point, a few seconds' burst: ~{AS4_PEAK_PER_S:.0f} messages/s   "
        f"measured here / that: {throughput / AS4_PEAK_PER_S:.2f}×"
    )


_TROUBLE = {
    "node.deferred",
    "node.send-failed",
    "node.store-busy",
    "node.attempt-error",
    "node.delivery-error",
    "smtp.deferred",
    "smtp.error",
    "node.expired",
}


# --- profiles -------------------------------------------------------------------------------------------------


def serve_profiled(home: Path) -> None:
    """``--serve HOME``: ``gwx node run HOME`` under cProfile, every thread, written to $BENCH_NETWORK_PROFILE."""
    from gwexchange.routing.node import run_node

    target, _, clock = os.environ[PROFILE_ENV].rpartition(":")
    timer = time.thread_time if clock == "cpu" else time.perf_counter  # CPU of each thread, or wall time
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    original_run = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile(timer)
        with lock:
            profiles.append(profile)
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    main = cProfile.Profile(timer)
    main.enable()
    try:
        run_node(home)
    finally:
        main.disable()
        stats = pstats.Stats(main)
        with lock:
            for profile in profiles:
                with contextlib.suppress(TypeError):  # a thread still running has no stats yet
                    stats.add(profile)
        stats.dump_stats(target)


PHASES = (
    # (label, file suffix, function): cumulative time of that function, per document
    ("SMTP in: DATA (line reads + handler)", "gwexchange/routing/smtp.py", "smtp_DATA"),
    ("  MIME decode (line by line)", "gwexchange/routing/mime.py", "feed"),
    ("  tree head kept (on_tree_head)", "gwexchange/routing/node.py", "on_tree_head"),
    ("receive (worker): Node._receive", "gwexchange/routing/node.py", "_receive"),
    ("  inspect: node signature", "gwexchange/envelope/sealing.py", "inspect"),
    ("  store.seen", "gwexchange/routing/store.py", "seen"),
    ("  store.stage_parts (write + fsync)", "gwexchange/routing/store.py", "stage_parts"),
    ("  node_logic.receive (open, receipts)", "gwexchange/routing/node_logic.py", "receive"),
    ("    open_envelope", "gwexchange/envelope/sealing.py", "open_envelope"),
    ("    seal_receipt", "gwexchange/envelope/sealing.py", "seal_receipt"),
    ("    verify_receipt", "gwexchange/envelope/receipts.py", "verify_receipt"),
    ("store.apply (all commits)", "gwexchange/routing/store.py", "apply"),
    ("delivery loop: log_accepted", "gwexchange/routing/node.py", "log_accepted"),
    ("  MerkleLog.flush", "gwexchange/archive/log.py", "flush"),
    ("delivery loop: store.due", "gwexchange/routing/store.py", "due"),
    ("delivery loop: sign_head", "gwexchange/routing/node.py", "sign_head"),
    ("send: Node.attempt", "gwexchange/routing/node.py", "attempt"),
    ("  PeerSession.deliver (MIME + SMTP client)", "gwexchange/routing/smtp_client.py", "deliver"),
    ("  encode_message", "gwexchange/routing/mime.py", "encode_message"),
    ("store: BEGIN / BEGIN IMMEDIATE (wall: waits for the write lock)", "gwexchange/routing/store.py", "_begin"),
    ("SQLAlchemy Session.execute (everywhere)", "sqlalchemy/orm/session.py", "execute"),
    ("sqlite3 execute (C)", "~", "<method 'execute' of 'sqlite3.Cursor' objects>"),
    ("fsync + fdatasync", "~", "<built-in method posix.fsync>"),
    (
        "ECDSA verify (C)",
        "~",
        "<method 'verify' of 'cryptography.hazmat.bindings._rust.openssl.ec.ECPublicKey' objects>",
    ),
)


def print_profile(node: str, path: Path, documents: int, top: int) -> None:
    if not path.is_file():
        print(f"\n{node}: no profile written")
        return
    stats = pstats.Stats(str(path), stream=io.StringIO())
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    rows = []
    total = 0.0
    for (file, line, name), (_cc, calls, tottime, cumtime, _callers) in table.items():
        total += tottime
        rows.append((tottime, cumtime, calls, _where(file, line, name)))
    rows.sort(reverse=True)
    per = documents / 1e3
    print(f"\n{node}: {total:.1f} s profiled in all threads ({total / per:.2f} ms per document)")
    print(f"  {'ms/doc':>8} {'calls/doc':>9}  phase (cumulative)")
    for label, suffix, function in PHASES:
        cum, calls = 0.0, 0
        for (file, _line, name), (_cc, n, _tt, ct, _callers) in table.items():
            if name == function and file.endswith(suffix):
                cum, calls = cum + ct, calls + n
        if calls:
            print(f"  {cum / per:8.2f} {calls / documents:9.1f}  {label}")
    print(f"  {'own ms/doc':>10} {'cum ms/doc':>10} {'calls/doc':>9}  function (top {top} by own time)")
    for tottime, cumtime, calls, where in rows[:top]:
        print(f"  {tottime / per:10.3f} {cumtime / per:10.3f} {calls / documents:9.1f}  {where}")


def _where(file: str, line: int, name: str) -> str:
    if file == "~":
        return name
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{file}:{line}({name})"


# --- main -----------------------------------------------------------------------------------------------------


def environment() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"gwexchange {benchenv.source_revision('gwexchange')}\n{benchenv.machine()}; "
        f"{benchenv.library_versions('cryptography', 'lxml', 'aiosmtpd', 'sqlmodel')}; "
        f"sqlite {sqlite3.sqlite_version}\n"
        f"load average before the run: {load}"
    )


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 — one run, told in order
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--docs", type=int, default=2000, help="documents to send (default 2000)")
    parser.add_argument("--rate", type=float, default=None, help="offer documents at this rate per second")
    parser.add_argument("--notice-share", type=float, default=0.1, help="share of notices among the documents")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every 送达")
    parser.add_argument("--tick", type=float, default=None, help="node tick_seconds (default: the node's 1.0)")
    parser.add_argument("--retry-base", type=float, default=None, help="node retry_base_seconds (default 30)")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="cpu",
        choices=("cpu", "wall"),
        help="cProfile inside each daemon, timing each thread's CPU (default) or wall time; print the top costs",
    )
    parser.add_argument("--top", type=int, default=25, help="functions listed per node with --profile")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (homes, logs, profiles)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve_profiled(args.serve)
        return 0

    print(environment())
    settings = {k: v for k, v in (("tick_seconds", args.tick), ("retry_base_seconds", args.retry_base)) if v}
    shown = ", ".join(f"{k} {v:g}" for k, v in settings.items()) or "all defaults"
    print(
        f"nodes         {SENDER} ── {HUB} ── {RECIPIENT} on 127.0.0.1, SQLite WAL synchronous=FULL; settings: {shown}"
    )
    if args.profile:
        print(
            f"PROFILING ({args.profile} time): every daemon runs under cProfile — the rates below are NOT the "
            "benchmark's figures"
        )
    folder = Path(tempfile.mkdtemp(prefix="gwx-bench-network-"))
    daemons: BenchDaemons | None = None
    try:
        homes = make_network(folder, settings)
        ctx = load_context(NodeConfig.load(homes[SENDER]))
        try:
            docs, seal_seconds = prepare(ctx, args.docs, args.notice_share)
            kinds: dict[str, int] = {}
            for d in docs:
                kinds[d.kind] = kinds.get(d.kind, 0) + 1
            daemons = BenchDaemons(homes, folder, args.profile)
            daemons.start_all()
            started_cpu = daemons.cpu_seconds()  # imports, keys, directory: not the documents'
            print(f"folder        {folder}; daemons up, pids {', '.join(str(p.pid) for p in daemons.procs.values())}")
            enqueue_seconds = enqueue(ctx, docs, args.rate)
        finally:
            ctx.close()
        expected = sum(len(d.sealed.header.recipients) for d in docs)
        complete = wait_delivered(homes[SENDER], expected, args.timeout, sys.stdout)
        if not complete:
            print(f"TIMEOUT after {args.timeout:g} s: not every 送达 came back")
        cpu = {node: seconds - started_cpu[node] for node, seconds in daemons.cpu_seconds().items()}
        daemons.stop_all(timeout=60)
        results = collect(homes, [d.sealed.header.message_id for d in docs], folder)
        events = {node: log_events(folder, node) for node in homes}
        report(
            results,
            seal_seconds=seal_seconds,
            enqueue_seconds=enqueue_seconds,
            cpu=cpu,
            events=events,
            kinds=kinds,
            rate=args.rate,
        )
        print(f"load average after the run: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.profile:
            for node in homes:
                print_profile(node, daemons.profile_path(node), args.docs, args.top)
        return 0 if complete and results.lost == 0 else 1
    finally:
        if daemons is not None:
            daemons.close()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
