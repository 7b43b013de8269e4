"""The node daemon: the SMTP listener, the store and the delivery loop of one exchange node, wired together.

The node home and its configuration are ``home``; what the daemon and the clerk commands share, ``context``;
status and signals to a running daemon, ``control``.

All state is in the store: a node killed at any moment starts again where it was (``Store`` sweeps debris, the
queue holds every copy not yet acknowledged by its next hop, seen message ids drop duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from gwexchange.archive.head_store import PeerHeads, TreeHeadStore, contradiction
from gwexchange.archive.log import MerkleLog
from gwexchange.archive.treehead import tree_head_from_xml, tree_head_to_xml
from gwexchange.envelope.sealing import inspect
from gwexchange.envelope.times import utcnow
from gwexchange.errors import (
    ConfigError,
    DocumentError,
    GwxError,
    InputError,
    TransientError,
    VerificationError,
    XmlInputError,
)
from gwexchange.files import atomic_write
from gwexchange.network.directory import authority_code_of
from gwexchange.network.directory_xml import verify_directory
from gwexchange.routing import node_logic
from gwexchange.routing.context import NodeContext, current_directory, load_context, one_line
from gwexchange.routing.faults import crash_point
from gwexchange.routing.home import RUN_NAME, NodeConfig, process_started
from gwexchange.routing.node_logic import Hop
from gwexchange.routing.smtp import Accepted, Outcome, Permanent, SmtpListener, Transient
from gwexchange.routing.smtp_client import PeerSession, SendStatus

log = logging.getLogger("gwexchange.node")

IDLE_SESSION_SECONDS = 30.0

# --- the daemon ----------------------------------------------------------------------------------------------


def _jitter() -> float:
    return random.SystemRandom().random()  # os.urandom underneath


class Node:
    """One running node: ``run()`` serves until ``stop()`` (or SIGTERM/SIGINT with ``install_signals``).

    Receiving happens in the listener's worker threads; sending in one worker per next hop (at most
    ``parallel_peers`` at once), each over a connection kept open to its peer. Every round of the delivery loop
    first appends newly accepted envelopes to the Merkle log; a tree head is signed every ``tree_head_seconds``
    while the log grows, on SIGUSR1, and at every stop, and travels with every envelope sent.
    """

    def __init__(self, context: NodeContext, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.ctx = context
        self.clock = clock
        config = context.config
        self.listener = SmtpListener(
            config.listen_host,
            config.listen_port,
            config.node_id,
            context.tls,
            context.trust,
            self.on_envelope,
            on_tree_head=self.on_tree_head,
            on_directory=self.on_directory,
        )
        self.log = MerkleLog(config.log_dir, create=True)
        self.heads = TreeHeadStore(self.log.heads_path)
        self.peer_heads = PeerHeads(config.peer_heads_path)
        self._head_xml = tree_head_to_xml(self.heads.latest) if self.heads.latest is not None else None
        self._head_lock = threading.Lock()
        self._directory_lock = threading.Lock()
        self._directory_sent: dict[str, int] = {}  # peer → the serial it was sent (this run)
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = 0
        self._idle = threading.Condition()
        self._sessions: dict[str, PeerSession] = {}
        self._session_used: dict[str, float] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._finished: dict[str, float] = {}  # peer → when its last worker ended (monotonic)

    # --- receiving ---

    def on_envelope(self, peer: str, envelope_xml: bytes, parts: dict[str, bytes]) -> Outcome:
        """The listener's callback (a worker thread): store the envelope and decide, or say why not."""
        with self._idle:
            self._busy += 1
        try:
            outcome = self._receive(peer, envelope_xml, parts)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()
        if isinstance(outcome, Accepted):
            self._nudge()  # copies to forward and receipts to return are due now
        return outcome

    def on_tree_head(self, peer: str, head_xml: bytes) -> None:
        """A peer's latest signed tree head came with its envelope: keep it (verified) as evidence."""
        try:
            head = tree_head_from_xml(head_xml)
            earlier = self.peer_heads.last(peer)
            if self.peer_heads.keep(head, peer, self.ctx.trust):
                log.debug("node.peer-head peer=%s", peer)
                said = contradiction(earlier, head) if earlier is not None else None
                if said is not None:  # kept all the same: it is the evidence an auditor needs
                    log.error("node.peer-head-alarm peer=%s what=%s", peer, said)
        except GwxError as e:
            log.warning("node.peer-head-refused peer=%s reason=%s", peer, one_line(e))

    def on_directory(self, peer: str, directory_xml: bytes) -> None:
        """A peer passed on the directory it holds: take it if newer (verified against the one held here)."""
        ctx = self.ctx
        with self._directory_lock:
            held = ctx.directory
            try:
                verified = verify_directory(
                    directory_xml,
                    ctx.trust,
                    authority_code=authority_code_of(ctx.trust.root),
                    now=self.clock(),
                    held=held,
                )
            except GwxError as e:  # older (the peer has not heard of ours yet), unsigned, expired, …
                log.warning("node.directory-refused peer=%s reason=%s", peer, one_line(e))
                return
            if verified.is_update:
                ctx.adopt(verified)
                log.info(
                    "node.directory-updated serial=%d from=%s previous=%d", verified.directory.serial, peer, held.serial
                )

    def reload_directory(self) -> None:
        """SIGHUP: the operator put a new directory in place (node.toml's file): take it if newer."""
        ctx = self.ctx
        with self._directory_lock:
            try:
                in_force = current_directory(ctx.config, ctx.trust, self.clock())
            except GwxError as e:
                log.error("node.directory-refused file=%s reason=%s", ctx.config.directory, one_line(e))
                return
            if in_force.directory.serial > ctx.directory.serial:
                previous = ctx.directory.serial
                ctx.adopt(in_force)
                log.info("node.directory-updated serial=%d from=file previous=%d", in_force.directory.serial, previous)

    def _receive(self, peer: str, envelope_xml: bytes, parts: dict[str, bytes]) -> Outcome:
        store, view = self.ctx.store, self.ctx.view
        message_id = "?"
        try:
            inspected = inspect(envelope_xml, self.ctx.trust)
            message_id = inspected.header.message_id
            crash_point("verified")
            if store.seen(message_id):
                log.info("node.duplicate peer=%s message_id=%s", peer, message_id)
                return Accepted(message_id)
            store.stage_parts(message_id, inspected.parts, {cid: [data] for cid, data in parts.items()})
            actions = node_logic.receive(inspected, view, store, self.clock())
            crash_point("receipt-signed")
            store.apply(actions)
            crash_point("committed")
        except TransientError as e:  # the one place where trouble that passes becomes a 4xx
            log.warning("node.deferred peer=%s message_id=%s reason=%s", peer, message_id, one_line(e))
            return Transient(str(e), e)
        except (VerificationError, XmlInputError, DocumentError) as e:  # the peer's bytes: sending again won't help
            log.warning("node.refused peer=%s message_id=%s reason=%s", peer, message_id, one_line(e))
            self._discard_parts(message_id)
            return Permanent(str(e), e)
        except InputError as e:  # this node's configuration (a department's keys): ours to fix, the peer retries
            log.error("node.deferred peer=%s message_id=%s reason=config detail=%s", peer, message_id, one_line(e))
            self._discard_parts(message_id)
            return Transient(str(e), e)
        log.info(
            "node.received peer=%s message_id=%s kind=%s sender=%s",
            peer,
            message_id,
            inspected.header.kind.value,
            inspected.header.sender_department,
        )
        return Accepted(message_id)

    def _discard_parts(self, message_id: str) -> None:
        """A refused envelope leaves no part files behind (unless a copy with its id was accepted)."""
        if message_id == "?":
            return
        try:
            self.ctx.store.discard_parts(message_id)
        except (GwxError, OSError) as e:
            log.warning("node.discard-failed message_id=%s reason=%s", message_id, one_line(e))

    # --- the log ---

    def log_accepted(self) -> int:
        """Append the envelopes accepted since the last call to the Merkle log, and commit it; return how many.

        Indices are committed to the store first, so after a crash the log catches up from its own size.
        """
        store, merkle = self.ctx.store, self.log
        store.assign_log_indices()
        before = merkle.size
        while rows := store.logged_from(merkle.size):
            for index, envelope_xml in rows:
                if index != merkle.size:
                    raise ConfigError(f"the store's log index {index} does not follow the log's size {merkle.size}")
                merkle.append(envelope_xml)
        if merkle.size != before:
            crash_point("log-appended")
            merkle.flush()
        return merkle.size - before

    def sign_head(self, *, force: bool = False) -> None:
        """Sign a tree head over the committed log when it grew (or ``force``) and the interval has passed."""
        with self._head_lock:
            latest = self.heads.latest
            committed = self.log.committed
            now = self.clock()
            interval = timedelta(seconds=self.ctx.config.tree_head_seconds)
            if (
                latest is not None
                and not force
                and (committed.size == latest.size or now - latest.timestamp < interval)
            ):
                return
            at = now if latest is None else max(now, latest.timestamp + timedelta(milliseconds=1))
            head = self.heads.sign(self.log, self.ctx.view.node_signer, self.ctx.config.node_id, at)
            self._head_xml = tree_head_to_xml(head)
        log.info("node.tree-head size=%d root=%s time=%s", head.size, head.root_hash.hex()[:16], head.time_text)

    # --- sending ---

    def attempt(self, hop: Hop, session: PeerSession | None = None) -> None:
        """One attempt at one due copy: expire it, or send it and record the outcome."""
        store, view = self.ctx.store, self.ctx.view
        envelope_xml = store.envelope_xml(hop.message_id)
        now = self.clock()
        if now > hop.expires:
            inspected = inspect(envelope_xml, self.ctx.trust)
            store.apply(node_logic.expire(hop, inspected, view, store, now))
            log.warning("node.expired message_id=%s next_hop=%s", hop.message_id, hop.next_hop)
            return
        entry = self.ctx.directory.find_node(hop.next_hop)
        if entry is None:
            result_status, code, reason = SendStatus.PERMANENT, None, f"node {hop.next_hop} is not in the directory"
        else:
            parts = {p.cid: b"".join(store.read_part(hop.message_id, p.cid)) for p in store.parts(hop.message_id)}
            crash_point("hop-sending")
            own = session or self._session(hop.next_hop, entry.smtp_endpoint)
            serial, directory_xml = self.ctx.directory.serial, self.ctx.directory_xml
            if self._directory_sent.get(hop.next_hop) == serial:
                directory_xml = None  # the peer has it
            result = own.deliver(
                envelope_xml, parts, message_id=hop.message_id, tree_head=self._head_xml, directory=directory_xml
            )
            if session is None:
                own.close()
            if result.delivered:
                self._directory_sent[hop.next_hop] = serial
            result_status, code, reason = result.status, result.code, result.reason
        now = self.clock()
        if result_status is SendStatus.DELIVERED:
            crash_point("hop-sent")
            store.apply(node_logic.attempt_succeeded(hop, now))
            crash_point("hop-recorded")
            log.info("node.sent message_id=%s next_hop=%s attempts=%d", hop.message_id, hop.next_hop, hop.attempts + 1)
            return
        permanent = result_status is SendStatus.PERMANENT
        inspected = inspect(envelope_xml, self.ctx.trust)
        store.apply(
            node_logic.attempt_failed(hop, inspected, view, store, now, error=reason, permanent=permanent, rand=_jitter)
        )
        log.warning(
            "node.send-failed message_id=%s next_hop=%s attempts=%d permanent=%s code=%s reason=%s",
            hop.message_id,
            hop.next_hop,
            hop.attempts + 1,
            permanent,
            code,
            one_line(reason),
        )

    def _session(self, next_hop: str, endpoint: str) -> PeerSession:
        config = self.ctx.config
        return PeerSession(endpoint, next_hop, self.ctx.tls, trust=self.ctx.trust, timeout=config.send_timeout_seconds)

    def _send_to(self, next_hop: str, hops: list[Hop], stop: asyncio.Event) -> None:
        """A peer's worker (a thread): its due copies in order, over the connection kept open to it."""
        session = self._sessions.get(next_hop)
        entry = self.ctx.directory.find_node(next_hop)
        if session is None and entry is not None:
            session = self._sessions[next_hop] = self._session(next_hop, entry.smtp_endpoint)
        for hop in hops:
            if stop.is_set():
                break
            try:
                self.attempt(hop, session)
            except TransientError as e:  # the decision was not committed: the copy stays due
                log.warning("node.store-busy message_id=%s next_hop=%s reason=%s", hop.message_id, hop.next_hop, e)
                break
            except Exception as e:  # this copy's own trouble (a damaged part, …): it backs off, the others go on
                log.exception("node.attempt-error message_id=%s next_hop=%s", hop.message_id, hop.next_hop)
                self._defer(hop, f"{type(e).__name__}: {e}")
        self._session_used[next_hop] = time.monotonic()

    def _defer(self, hop: Hop, error: str) -> None:
        """Record a failed attempt that raised, so the copy backs off instead of blocking its peer's queue; it
        is answered with 投递失败 when it expires."""
        store = self.ctx.store
        try:
            inspected = inspect(store.envelope_xml(hop.message_id), self.ctx.trust)
            actions = node_logic.attempt_failed(
                hop, inspected, self.ctx.view, store, self.clock(), error=error, permanent=False, rand=_jitter
            )
            store.apply(actions)
        except Exception:
            log.exception("node.defer-error message_id=%s next_hop=%s", hop.message_id, hop.next_hop)

    async def _close_idle_sessions(self, older_than: float) -> None:
        now = time.monotonic()
        idle = [
            self._sessions.pop(peer)
            for peer in list(self._sessions)
            if peer not in self._workers and now - self._session_used.get(peer, 0.0) >= older_than
        ]
        if idle:  # QUIT waits for the peer's answer (up to the client's time-out): never on the event loop
            await asyncio.to_thread(_close_sessions, idle)

    def _nudge(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    async def _deliver(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        tick = self.ctx.config.tick_seconds
        limit = 500
        while not stop.is_set():
            wake.clear()
            due: tuple[Hop, ...] = ()
            started = 0
            try:
                await asyncio.to_thread(self.log_accepted)
                await asyncio.to_thread(self.sign_head)
                asked = time.monotonic()
                busy = tuple(self._workers)  # their copies wait for them: reading those again is wasted
                due = await asyncio.to_thread(self.ctx.store.due, self.clock(), limit, busy)
                started = self._start_workers(due, stop, wake, asked)
                await self._close_idle_sessions(IDLE_SESSION_SECONDS)
            except GwxError as e:
                log.warning("node.delivery-error reason=%s", one_line(e))
            if len(due) == limit and started:
                await asyncio.sleep(0)  # more may be due for other peers: another round at once
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=tick)

    def _start_workers(self, due: tuple[Hop, ...], stop: asyncio.Event, wake: asyncio.Event, asked: float) -> int:
        """Start a worker for each peer with due copies that has none; how many were started. (A worker that ends
        wakes the loop, so a peer's backlog is never re-read while its worker is busy — that was a busy loop.)"""
        started = 0
        by_peer: dict[str, list[Hop]] = {}
        for hop in due:
            by_peer.setdefault(hop.next_hop, []).append(hop)
        for peer, hops in by_peer.items():
            if peer in self._workers or len(self._workers) >= self.ctx.config.parallel_peers:
                continue  # its worker is busy (it sees these next round), or enough peers at once
            if self._finished.get(peer, 0.0) >= asked:
                continue  # its worker ended while the list was read: the list may hold copies it just sent

            def done(_: asyncio.Task[None], peer: str = peer) -> None:
                self._workers.pop(peer, None)
                self._finished[peer] = time.monotonic()
                wake.set()  # what it left, or what another peer waits for

            task = asyncio.create_task(asyncio.to_thread(self._send_to, peer, hops, stop))
            task.add_done_callback(done)
            self._workers[peer] = task
            started += 1
        return started

    # --- running ---

    def stop(self) -> None:
        """Ask the node to stop (thread-safe)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(self, *, install_signals: bool = False, ready: Callable[[int], None] | None = None) -> None:
        self._loop = loop = asyncio.get_running_loop()
        # Listener workers and peer workers block on disks and sockets: more threads than the default few.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=16 + self.ctx.config.parallel_peers))
        self._stop = stop = asyncio.Event()
        self._wake = wake = asyncio.Event()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(self._sign_now()))
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(asyncio.to_thread(self.reload_directory)))
        config = self.ctx.config
        try:  # catch up with what was accepted before a crash (the delivery loop retries if the disk fails now)
            await asyncio.to_thread(self.log_accepted)
            await asyncio.to_thread(self.sign_head)
        except GwxError as e:
            log.error("node.log-error reason=%s", one_line(e))
        await self.listener.start()
        run_file = config.home / RUN_NAME
        me = {"pid": os.getpid(), "port": self.listener.port, "started": process_started(os.getpid())}
        atomic_write(run_file, json.dumps(me).encode("utf-8"))
        log.info("node.started node=%s endpoint=%s pid=%d", config.node_id, self.listener.endpoint, os.getpid())
        if ready is not None:
            ready(self.listener.port)
        delivery = asyncio.create_task(self._deliver(stop, wake))
        try:
            await stop.wait()
        finally:
            log.info("node.stopping node=%s", config.node_id)
            stop.set()
            await self.listener.stop()  # stop accepting
            await asyncio.to_thread(self._wait_idle, 30.0)  # envelopes being stored
            await delivery
            if self._workers:  # the sends in flight finish and are recorded
                await asyncio.wait(list(self._workers.values()))
            sessions, self._sessions = list(self._sessions.values()), {}
            await asyncio.to_thread(_close_sessions, sessions)
            try:
                await asyncio.to_thread(self.log_accepted)
                await asyncio.to_thread(self.sign_head, force=True)
            except GwxError as e:
                log.error("node.log-error reason=%s", one_line(e))
            self.log.close()
            self.ctx.close()
            run_file.unlink(missing_ok=True)
            log.info("node.stopped node=%s", config.node_id)

    async def _sign_now(self) -> None:
        try:
            await asyncio.to_thread(self.log_accepted)
            await asyncio.to_thread(self.sign_head, force=True)
        except GwxError as e:
            log.error("node.tree-head-error reason=%s", one_line(e))

    def _wait_idle(self, timeout: float) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=timeout)


def _close_sessions(sessions: list[PeerSession]) -> None:
    for session in sessions:
        session.close()


def _configure_logging(level: int = logging.INFO) -> None:
    """key=value lines on stderr, one per event: ours, and a library's warnings (aiosmtpd logs every command of
    every client at INFO — a flood anyone could write into the node's log)."""
    logging.getLogger("mail.log").setLevel(max(level, logging.WARNING))
    logging.basicConfig(
        force=True,  # in place of the terminal handler gwx's main() set up for short commands
        level=level,
        format="%(asctime)s level=%(levelname)s logger=%(name)s event=%(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def run_node(home: Path) -> None:
    """``gwx node run``: serve in the foreground until SIGTERM or SIGINT."""
    _configure_logging()
    context = load_context(NodeConfig.load(home), daemon=True)
    asyncio.run(Node(context).run(install_signals=True))


__all__ = [
    "IDLE_SESSION_SECONDS",
    "Node",
    "run_node",
]
