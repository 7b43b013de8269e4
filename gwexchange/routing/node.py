"""The node daemon: the SMTP listener, the store and the delivery loop of one exchange node, wired together.

The node home
    ``node.toml``      the configuration (``NodeConfig``); paths in it are relative to the home
    ``node.db``        the store (SQLite, WAL) unless ``database`` names another URL
    ``parts/``         the part files of stored envelopes
    ``run.json``       while the daemon runs: its pid and the port it listens on (removed at a clean stop)

``node.toml``::

    node_id = "gd-hub"
    listen = "127.0.0.1:2525"           # port 0: any free port (run.json tells which)
    directory = "directory.signed.xml"  # the signed directory, verified at every start
    root = "root.crt"
    crl = ["crl.pem"]
    node_keys = "keys/gd-hub"           # node.key, node.crt
    # database = "sqlite:////var/lib/gwx/node.db"
    # tick_seconds = 1.0                # how often the delivery loop looks for due copies
    # retry_base_seconds = 30           # back-off: full jitter under min(cap, base·2ⁿ)
    # retry_cap_seconds = 7200
    # send_timeout_seconds = 60

    [departments]                       # departments served here: their key folders
    "gd.gov.office" = "keys/gd.gov.office"   # signing.key/.crt, encryption.key/.crt

Key passphrases come from ``$GWX_KEY_PASSPHRASE`` (unencrypted keys load only when it is unset).

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
import shutil
import signal
import tempfile
import threading
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from gwexchange.crypto.certificates import identity_of
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.sealing import inspect
from gwexchange.errors import ConfigError, GwxError, InputError, VerificationError
from gwexchange.files import atomic_write, load_certificate, load_keypair, read_file
from gwexchange.routing import node_logic
from gwexchange.routing.directory import (
    Directory,
    authority_code_of,
    parse_endpoint,
    read_unverified_directory,
    verify_directory,
)
from gwexchange.routing.node_logic import DepartmentKeys, Hop, NodeView, RetryPolicy
from gwexchange.routing.smtp import (
    Accepted,
    NodeTls,
    Outcome,
    Permanent,
    SendStatus,
    SmtpListener,
    Transient,
    node_tls,
    send_envelope,
)
from gwexchange.routing.store import Store, StoreBusy, StoreFull

log = logging.getLogger("gwexchange.node")

CONFIG_NAME = "node.toml"
RUN_NAME = "run.json"
_KEYS = frozenset(
    {
        "node_id",
        "listen",
        "directory",
        "root",
        "crl",
        "node_keys",
        "database",
        "tick_seconds",
        "retry_base_seconds",
        "retry_cap_seconds",
        "send_timeout_seconds",
        "departments",
    }
)


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- configuration -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeConfig:
    home: Path
    node_id: str
    listen_host: str
    listen_port: int
    directory: Path
    root: Path
    crls: tuple[Path, ...]
    node_keys: Path
    departments: dict[str, Path] = field(default_factory=dict)
    database: str | None = None
    tick_seconds: float = 1.0
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 7200.0
    send_timeout_seconds: float = 60.0

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.home / 'node.db'}"

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(timedelta(seconds=self.retry_base_seconds), timedelta(seconds=self.retry_cap_seconds))

    @classmethod
    def load(cls, home: Path) -> NodeConfig:
        path = home / CONFIG_NAME
        try:
            spec = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"{home} is not a node home (no {CONFIG_NAME}): create one with 'gwx node init'") from e
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read {path}: {e}") from e
        unknown = set(spec) - _KEYS
        if unknown:
            raise ConfigError(f"{path}: unknown settings {', '.join(sorted(unknown))}")

        def text(key: str) -> str:
            value = spec.get(key)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{path}: {key} must be a non-empty string")
            return value

        def number(key: str, default: float) -> float:
            value = spec.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{path}: {key} must be a positive number")
            return float(value)

        def resolve(name: str) -> Path:
            return (home / name).resolve()

        host, port = _listen(text("listen"))
        crl = spec.get("crl", [])
        if isinstance(crl, str):
            crl = [crl]
        if not isinstance(crl, list) or not all(isinstance(c, str) for c in crl):
            raise ConfigError(f"{path}: crl must be a list of paths")
        departments = spec.get("departments", {})
        if not isinstance(departments, dict) or not all(isinstance(v, str) for v in departments.values()):
            raise ConfigError(f'{path}: [departments] must map department codes to key folders ("code" = "path")')
        database = spec.get("database")
        if database is not None and not isinstance(database, str):
            raise ConfigError(f"{path}: database must be a URL")
        return cls(
            home=home.resolve(),
            node_id=text("node_id"),
            listen_host=host,
            listen_port=port,
            directory=resolve(text("directory")),
            root=resolve(text("root")),
            crls=tuple(resolve(c) for c in crl),
            node_keys=resolve(text("node_keys")),
            departments={str(k): resolve(v) for k, v in departments.items()},
            database=database,
            tick_seconds=number("tick_seconds", 1.0),
            retry_base_seconds=number("retry_base_seconds", 30.0),
            retry_cap_seconds=number("retry_cap_seconds", 7200.0),
            send_timeout_seconds=number("send_timeout_seconds", 60.0),
        )


def _listen(text: str) -> tuple[str, int]:
    if text.endswith(":0"):  # any free port
        return parse_endpoint(text[:-2] + ":1", "listen")[0], 0
    return parse_endpoint(text, "listen")


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def init_home(
    home: Path,
    *,
    node_id: str,
    listen: str,
    directory: Path,
    root: Path,
    crls: Iterable[Path],
    node_keys: Path,
    departments: dict[str, Path],
    database: str | None = None,
    extra: dict[str, float] | None = None,
) -> Path:
    """Write a node home: ``node.toml`` (absolute paths) and an empty store. Refuses to overwrite a home."""
    config = home / CONFIG_NAME
    if config.exists():
        raise ConfigError(f"{home} already holds a node ({CONFIG_NAME}); refusing to overwrite it")
    _listen(listen)
    lines = [
        f"node_id = {_toml_string(node_id)}",
        f"listen = {_toml_string(listen)}",
        f"directory = {_toml_string(str(directory.resolve()))}",
        f"root = {_toml_string(str(root.resolve()))}",
        f"crl = [{', '.join(_toml_string(str(c.resolve())) for c in crls)}]",
        f"node_keys = {_toml_string(str(node_keys.resolve()))}",
    ]
    if database is not None:
        lines.append(f"database = {_toml_string(database)}")
    for key, value in (extra or {}).items():
        lines.append(f"{key} = {value!r}")
    lines += ["", "[departments]"]
    lines += [f"{_toml_string(code)} = {_toml_string(str(p.resolve()))}" for code, p in departments.items()]
    home.mkdir(parents=True, exist_ok=True)
    atomic_write(config, ("\n".join(lines) + "\n").encode("utf-8"))
    loaded = NodeConfig.load(home)  # what was written reads back
    load_context(loaded).store.close()  # and it works: keys, directory, trust
    return config


# --- the node's context: what the daemon and the clerk commands share ----------------------------------------


class SharedStore(Store):
    """The store as a clerk's command (or ``status``) opens it while the daemon may be running: it does not sweep,
    since the part files of an envelope the daemon is receiving have no row yet. The daemon sweeps when it starts.
    """

    def sweep(self) -> list[Path]:
        return []


def open_store(config: NodeConfig, *, daemon: bool = False) -> Store:
    return (Store if daemon else SharedStore)(config.home, config.database_url)


@dataclass
class NodeContext:
    config: NodeConfig
    trust: TrustPolicy
    directory: Directory
    view: NodeView
    tls: NodeTls
    store: Store

    def close(self) -> None:
        self.store.close()


def load_trust(config: NodeConfig) -> TrustPolicy:
    root = load_certificate(config.root, "the root certificate")
    try:
        crls = tuple(x509.load_pem_x509_crl(read_file(p, "the CRL")) for p in config.crls)
    except ValueError as e:
        raise ConfigError(f"cannot read a CRL: {e}") from e
    return TrustPolicy(root, crls)


def load_context(config: NodeConfig, *, now: datetime | None = None, daemon: bool = False) -> NodeContext:
    """Trust policy, verified directory, keys, node view and store of a node home."""
    now = now or utcnow()
    trust = load_trust(config)
    try:
        signed = config.directory.read_bytes()
    except FileNotFoundError as e:
        raise ConfigError(f"the directory {config.directory} does not exist") from e
    verified = verify_directory(signed, trust, authority_code=authority_code_of(trust.root), now=now, held=None)
    directory = verified.directory
    if directory.find_node(config.node_id) is None:
        raise ConfigError(f"node {config.node_id} is not in directory {directory.serial}")
    node_key, node_cert = load_keypair(config.node_keys, "node")
    if identity_of(node_cert).code != config.node_id:
        raise ConfigError(
            f"{config.node_keys} holds the key of node {identity_of(node_cert).code}, not {config.node_id}"
        )
    departments: dict[str, DepartmentKeys] = {}
    for code, folder in config.departments.items():
        entry = directory.find_department(code)
        if entry is None or entry.home_node != config.node_id:
            raise ConfigError(f"department {code} is not served by node {config.node_id} in the directory")
        sign_key, sign_cert = load_keypair(folder, "signing")
        enc_key, _ = load_keypair(folder, "encryption")
        departments[code] = DepartmentKeys(Signer(sign_key, sign_cert), enc_key)
    view = NodeView(
        node_id=config.node_id,
        directory=directory,
        trust=trust,
        node_signer=Signer(node_key, node_cert),
        departments=departments,
        retry=config.retry,
    )
    tls = node_tls(config.node_id, node_key, node_cert, trust.root)
    store = open_store(config, daemon=daemon)
    return NodeContext(config, trust, directory, view, tls, store)


# --- the daemon ----------------------------------------------------------------------------------------------


def _jitter() -> float:
    return random.SystemRandom().random()  # os.urandom underneath


class Node:
    """One running node: ``run()`` serves until ``stop()`` (or SIGTERM/SIGINT with ``install_signals``)."""

    def __init__(self, context: NodeContext, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.ctx = context
        self.clock = clock
        self.listener = SmtpListener(
            context.config.listen_host,
            context.config.listen_port,
            context.config.node_id,
            context.tls,
            context.trust,
            self.on_envelope,
        )
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = 0
        self._idle = threading.Condition()

    # --- receiving ---

    def on_envelope(self, peer: str, envelope_xml: bytes, parts: dict[str, bytes]) -> Outcome:
        """The listener's callback (a worker thread): store the envelope and decide, or say why not."""
        with self._idle:
            self._busy += 1
        try:
            return self._receive(peer, envelope_xml, parts)
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def _receive(self, peer: str, envelope_xml: bytes, parts: dict[str, bytes]) -> Outcome:
        store, view = self.ctx.store, self.ctx.view
        message_id = "?"
        try:
            inspected = inspect(envelope_xml, self.ctx.trust)
            message_id = inspected.header.message_id
            if store.seen(message_id):
                log.info("node.duplicate peer=%s message_id=%s", peer, message_id)
                return Accepted(message_id)
            store.stage_parts(message_id, inspected.parts, {cid: [data] for cid, data in parts.items()})
            store.apply(node_logic.receive(inspected, view, store, self.clock()))
        except (StoreBusy, StoreFull) as e:
            log.warning("node.deferred peer=%s message_id=%s reason=%s", peer, message_id, _one_line(e))
            return Transient(str(e))
        except VerificationError as e:
            log.warning("node.refused peer=%s message_id=%s reason=%s", peer, message_id, _one_line(e))
            return Permanent(str(e))
        except InputError as e:  # this node's configuration (a department's keys): ours to fix, the peer retries
            log.error("node.deferred peer=%s message_id=%s reason=config detail=%s", peer, message_id, _one_line(e))
            return Transient(str(e))
        log.info(
            "node.received peer=%s message_id=%s kind=%s sender=%s",
            peer,
            message_id,
            inspected.header.kind.value,
            inspected.header.sender_department,
        )
        return Accepted(message_id)

    # --- sending ---

    def attempt(self, hop: Hop) -> None:
        """One attempt at one due copy: expire it, or send it and record the outcome."""
        store, view = self.ctx.store, self.ctx.view
        envelope_xml = store.envelope_xml(hop.message_id)
        inspected = inspect(envelope_xml, self.ctx.trust)
        now = self.clock()
        if inspected.header.expired(now):
            store.apply(node_logic.expire(hop, inspected, view, store, now))
            log.warning("node.expired message_id=%s next_hop=%s", hop.message_id, hop.next_hop)
            return
        entry = self.ctx.directory.find_node(hop.next_hop)
        if entry is None:
            result_status, code, reason = SendStatus.PERMANENT, None, f"node {hop.next_hop} is not in the directory"
        else:
            parts = {p.cid: b"".join(store.read_part(hop.message_id, p.cid)) for p in store.parts(hop.message_id)}
            result = send_envelope(
                entry.smtp_endpoint,
                hop.next_hop,
                self.ctx.tls,
                envelope_xml,
                parts,
                trust=self.ctx.trust,
                timeout=self.ctx.config.send_timeout_seconds,
                message_id=hop.message_id,
            )
            result_status, code, reason = result.status, result.code, result.reason
        now = self.clock()
        if result_status is SendStatus.DELIVERED:
            store.apply(node_logic.attempt_succeeded(hop, now))
            log.info("node.sent message_id=%s next_hop=%s attempts=%d", hop.message_id, hop.next_hop, hop.attempts + 1)
            return
        permanent = result_status is SendStatus.PERMANENT
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
            _one_line(reason),
        )

    async def _deliver(self, stop: asyncio.Event) -> None:
        tick = self.ctx.config.tick_seconds
        while not stop.is_set():
            try:
                due = await asyncio.to_thread(self.ctx.store.due, self.clock())
                for hop in due:
                    if stop.is_set():
                        break
                    await asyncio.to_thread(self._attempt_logged, hop)
            except GwxError as e:
                log.warning("node.delivery-error reason=%s", _one_line(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick)

    def _attempt_logged(self, hop: Hop) -> None:
        try:
            self.attempt(hop)
        except (StoreBusy, StoreFull) as e:  # the decision was not committed: the copy stays due
            log.warning("node.store-busy message_id=%s next_hop=%s reason=%s", hop.message_id, hop.next_hop, e)
        except Exception:
            log.exception("node.attempt-error message_id=%s next_hop=%s", hop.message_id, hop.next_hop)

    # --- running ---

    def stop(self) -> None:
        """Ask the node to stop (thread-safe)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(self, *, install_signals: bool = False, ready: Callable[[int], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = stop = asyncio.Event()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, stop.set)
        config = self.ctx.config
        await self.listener.start()
        run_file = config.home / RUN_NAME
        atomic_write(run_file, json.dumps({"pid": os.getpid(), "port": self.listener.port}).encode("utf-8"))
        log.info("node.started node=%s endpoint=%s pid=%d", config.node_id, self.listener.endpoint, os.getpid())
        if ready is not None:
            ready(self.listener.port)
        delivery = asyncio.create_task(self._deliver(stop))
        try:
            await stop.wait()
        finally:
            log.info("node.stopping node=%s", config.node_id)
            stop.set()
            await self.listener.stop()  # stop accepting
            await asyncio.to_thread(self._wait_idle, 30.0)  # envelopes being stored
            await delivery  # the send in flight finishes and is recorded
            self.ctx.close()
            run_file.unlink(missing_ok=True)
            log.info("node.stopped node=%s", config.node_id)

    def _wait_idle(self, timeout: float) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=timeout)


def _one_line(error: object) -> str:
    return str(error).replace("\n", " ")


def configure_logging(level: int = logging.INFO) -> None:
    """key=value lines on stderr, one per event."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s level=%(levelname)s logger=%(name)s event=%(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


def run_node(home: Path) -> None:
    """``gwx node run``: serve in the foreground until SIGTERM or SIGINT."""
    configure_logging()
    context = load_context(NodeConfig.load(home), daemon=True)
    asyncio.run(Node(context).run(install_signals=True))


# --- status --------------------------------------------------------------------------------------------------


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
    try:
        signed = config.directory.read_bytes()
        directory = read_unverified_directory(signed)
        peers = [
            {"node": other, "endpoint": directory.node(other).smtp_endpoint, "zone": link.zone.value}
            for other, link in directory.neighbours(config.node_id)
        ]
    except (OSError, GwxError):
        pass
    running: dict[str, Any] | None = None
    run_file = config.home / RUN_NAME
    if run_file.is_file():
        try:
            running = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            running = None
    return {
        "node_id": config.node_id,
        "listen": f"{config.listen_host}:{config.listen_port}",
        "running": running,
        "queue": by_state,
        "peers": peers,
        "last_errors": errors,
        "inbox": inbox,
        "outbox": outbox,
    }


def staging_dir(home: Path) -> Path:
    """A private scratch folder in the home (same file system as the store), removed by the caller."""
    return Path(tempfile.mkdtemp(prefix=".outgoing-", dir=home))


def remove_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
