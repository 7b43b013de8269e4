"""A running daemon seen and steered from outside: its status, whether it runs (``run.json``), and the signals
that make it sign a tree head or take a new directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from gwexchange.archive.head_store import contradictions, read_heads
from gwexchange.archive.log import HEADS_FILE, read_commit
from gwexchange.archive.treehead import SignedTreeHead
from gwexchange.envelope.times import utcnow
from gwexchange.errors import (
    ConfigError,
    GwxError,
    InputError,
)
from gwexchange.network.directory import authority_code_of
from gwexchange.network.directory_xml import read_unverified_directory, verify_directory
from gwexchange.routing.context import (
    current_directory,
    held_directories,
    keep_directory,
    load_context,
    load_trust,
    open_store,
)
from gwexchange.routing.home import RUN_NAME, NodeConfig, process_started
from gwexchange.routing.node import Node

log = logging.getLogger("gwexchange.node")


def status(home: Path) -> dict[str, Any]:
    """What ``gwx node status`` shows: read from the store (the daemon need not run)."""
    config = NodeConfig.load(home)
    store = open_store(config)
    try:
        queue = store.queue()
        by_state: dict[str, int] = {}
        for item in queue:
            by_state[item.state] = by_state.get(item.state, 0) + 1
        errors = [
            {
                "message_id": q.message_id,
                "next_hop": q.next_hop,
                "attempts": q.attempts,
                "state": q.state,
                "error": q.last_error,
                "next_attempt_at": q.next_attempt_at.isoformat(),
            }
            for q in queue
            if q.last_error and q.state != "sent"
        ][-20:]
        inbox: dict[str, dict[str, int]] = {}
        for entry in store.inbox():
            counts = inbox.setdefault(entry.department, {})
            counts[entry.state] = counts.get(entry.state, 0) + 1
        outbox: dict[str, int] = {}
        for view in store.outbox():
            for _, state, _ in view.recipients:
                outbox[state.value] = outbox.get(state.value, 0) + 1
    finally:
        store.close()
    peers: list[dict[str, str]] = []
    serial: int | None = None
    try:
        held = held_directories(config)
        signed = (held[0][1] if held else config.directory).read_bytes()
        directory = read_unverified_directory(signed)
        serial = directory.serial
        peers = [
            {"node": other, "endpoint": directory.node(other).smtp_endpoint, "zone": link.zone.value}
            for other, link in directory.neighbours(config.node_id)
        ]
    except (OSError, GwxError):
        pass
    running = running_daemon(config.home)
    return {
        "node_id": config.node_id,
        "listen": f"{config.listen_host}:{config.listen_port}",
        "running": running,
        "queue": by_state,
        "peers": peers,
        "directory_serial": serial,
        "log": _log_status(config),
        "last_errors": errors,
        "inbox": inbox,
        "outbox": outbox,
    }


def _log_status(config: NodeConfig) -> dict[str, Any]:
    """The Merkle log as its files say (read without opening the log: the daemon holds it)."""
    commit = read_commit(config.log_dir) if (config.log_dir / "commit").is_file() else None
    own = read_heads(config.log_dir / HEADS_FILE)
    latest = own[-1] if own else None
    kept = read_heads(config.peer_heads_path)
    peers = {head.node_id: {"size": head.size, "time": head.time_text} for head in kept}
    return {
        "size": commit.size if commit is not None else 0,
        "latest_head": {"size": latest.size, "root": latest.root_hash.hex(), "time": latest.time_text}
        if latest is not None
        else None,
        "peer_heads": peers,
        "peer_head_alarms": [{"node": node, "what": what} for node, what in contradictions(kept)],
    }


def running_daemon(home: Path) -> dict[str, Any] | None:
    """``run.json`` of the daemon running at ``home`` (pid, port), or None if none runs.

    After a kill -9 the file stays behind, and its pid may be reused by any process: on Linux the process must
    also have started when the daemon did (/proc's start time, written beside the pid), elsewhere at least be alive.
    """
    try:
        running = json.loads((home / RUN_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(running, dict):
        return None
    pid = running.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if Path("/proc/self/stat").is_file():
        started = process_started(pid)
        return running if started is not None and started == running.get("started") else None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return running
    except OSError:
        return None
    return running


def _signal_daemon(config: NodeConfig, sig: signal.Signals) -> bool:
    """Send ``sig`` to the node's running daemon; False if none is running (a stale run.json is no daemon)."""
    running = running_daemon(config.home)
    if running is None:
        return False
    try:
        os.kill(running["pid"], sig)
    except OSError:
        return False
    return True


def sign_head_now(home: Path, *, wait: float = 10.0) -> SignedTreeHead:
    """``gwx node sign-head``: a tree head over everything logged, now — by the running daemon (SIGUSR1; it
    holds the log) or, when none runs, here. Returns the new head."""
    config = NodeConfig.load(home)
    before = read_heads(config.log_dir / HEADS_FILE)
    if _signal_daemon(config, signal.SIGUSR1):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            heads = read_heads(config.log_dir / HEADS_FILE)
            if len(heads) > len(before):
                return heads[-1]
            time.sleep(0.05)
        raise ConfigError(f"the node daemon of {home} did not sign a tree head within {wait:.0f} s: see its log")
    context = load_context(config, daemon=True)
    try:
        node = Node(context)
        try:
            node.log_accepted()
            node.sign_head(force=True)
        finally:
            node.log.close()
    finally:
        context.close()
    latest = read_heads(config.log_dir / HEADS_FILE)
    return latest[-1]


def update_directory(home: Path, signed: bytes) -> tuple[int, bool]:
    """``gwx node update-directory``: verify a newer directory against the one held, keep it and tell a running
    daemon (SIGHUP). Returns its serial and whether a daemon was told."""
    config = NodeConfig.load(home)
    trust = load_trust(config)
    now = utcnow()
    held = current_directory(config, trust, now)
    verified = verify_directory(
        signed, trust, authority_code=authority_code_of(trust.root), now=now, held=held.directory
    )
    if not verified.is_update:
        raise InputError(f"directory {verified.directory.serial} is already in force at node {config.node_id}")
    if verified.directory.find_node(config.node_id) is None:
        raise ConfigError(f"node {config.node_id} is not in directory {verified.directory.serial}: not taken")
    keep_directory(config, verified)
    return verified.directory.serial, _signal_daemon(config, signal.SIGHUP)


def staging_dir(home: Path) -> Path:
    """A private scratch folder in the home (same file system as the store), removed by the caller."""
    return Path(tempfile.mkdtemp(prefix=".outgoing-", dir=home))


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


__all__ = [
    "remove_dir",
    "running_daemon",
    "sign_head_now",
    "staging_dir",
    "status",
    "update_directory",
]
