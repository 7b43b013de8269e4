"""The node daemon: the SMTP listener, the store and the delivery loop of one exchange node, wired together.

The node home
    ``node.toml``      the configuration (``NodeConfig``); paths in it are relative to the home
    ``node.db``        the store (SQLite, WAL) unless ``database`` names another URL
    ``parts/``         the part files of stored envelopes
    ``run.json``       while the daemon runs: its pid and the port it listens on (removed at a clean stop)
    ``log/``           the Merkle log (``archive.log``): every envelope accepted here, byte for byte, and
                       ``log/heads``, the tree heads this node signed
    ``peer-heads``     the tree heads peers sent with their envelopes, one line each (``treehead.head_to_line``)
    ``directories/``   every directory the node took, ``directory-<serial>.xml``: the newest is in force

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
    # tree_head_seconds = 60            # sign a tree head this often while the log grows (and at every stop)
    # parallel_peers = 8                # next hops sent to at once, each over one kept-open connection

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
import time
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from gwexchange.archive.log import HEADS_FILE, MerkleLog, read_commit
from gwexchange.archive.treehead import (
    PeerHeads,
    SignedTreeHead,
    TreeHeadStore,
    contradiction,
    contradictions,
    read_heads,
    tree_head_from_xml,
    tree_head_to_xml,
)
from gwexchange.crypto.certificates import identity_of
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.sealing import inspect
from gwexchange.envelope.times import utcnow
from gwexchange.errors import (
    ConfigError,
    DocumentError,
    GwxError,
    InputError,
    TransientError,
    TrustError,
    VerificationError,
    XmlInputError,
)
from gwexchange.files import atomic_write, read_file
from gwexchange.network.directory import (
    Directory,
    VerifiedDirectory,
    authority_code_of,
    parse_endpoint,
    read_unverified_directory,
    verify_directory,
)
from gwexchange.pki.keyfiles import load_certificate, load_keypair
from gwexchange.routing import node_logic
from gwexchange.routing.faults import crash_point
from gwexchange.routing.node_logic import DepartmentKeys, Hop, NodeView, RetryPolicy
from gwexchange.routing.peer_tls import NodeTls, node_tls
from gwexchange.routing.smtp import Accepted, Outcome, Permanent, SmtpListener, Transient
from gwexchange.routing.smtp_client import PeerSession, SendStatus
from gwexchange.routing.store import Store

log = logging.getLogger("gwexchange.node")

CONFIG_NAME = "node.toml"
RUN_NAME = "run.json"
DIRECTORIES_NAME = "directories"
LOG_NAME = "log"
PEER_HEADS_NAME = "peer-heads"
IDLE_SESSION_SECONDS = 30.0
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
        "tree_head_seconds",
        "parallel_peers",
        "departments",
    }
)


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
    tree_head_seconds: float = 60.0
    parallel_peers: int = 8

    @property
    def log_dir(self) -> Path:
        return self.home / LOG_NAME

    @property
    def peer_heads_path(self) -> Path:
        return self.home / PEER_HEADS_NAME

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
            tree_head_seconds=number("tree_head_seconds", 60.0),
            parallel_peers=max(1, int(number("parallel_peers", 8))),
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
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(config, ("\n".join(lines) + "\n").encode("utf-8"))
    loaded = NodeConfig.load(home)  # what was written reads back
    load_context(loaded).store.close()  # and it works: keys, directory, trust
    return config


# --- the node's context: what the daemon and the clerk commands share ----------------------------------------


class SharedStore(Store):
    """The store as a clerk's command (or ``status``) opens it while the daemon may be running: it does not sweep,
    since the part files of an envelope the daemon is receiving have no row yet. The daemon sweeps when it starts.
    """

    def sweep(self, older_than: timedelta = timedelta(0)) -> list[Path]:
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
    directory_xml: bytes | None = None  # the signed bytes of ``directory``, passed on to peers

    def close(self) -> None:
        self.store.close()

    def adopt(self, verified: VerifiedDirectory) -> None:
        """Route by a newer directory from now on (kept first: a restart starts from it)."""
        keep_directory(self.config, verified)
        self.directory = verified.directory
        self.directory_xml = verified.signed_bytes
        self.view = replace(self.view, directory=verified.directory)


def load_trust(config: NodeConfig) -> TrustPolicy:
    root = load_certificate(config.root, "the root certificate")
    try:
        crls = tuple(x509.load_pem_x509_crl(read_file(p, "the CRL")) for p in config.crls)
    except ValueError as e:
        raise ConfigError(f"cannot read a CRL: {e}") from e
    return TrustPolicy(root, crls)


def held_directories(config: NodeConfig) -> list[tuple[int, Path]]:
    """The directories this node took, newest first: ``directories/directory-<serial>.xml``."""
    folder = config.home / DIRECTORIES_NAME
    found = []
    for path in folder.glob("directory-*.xml") if folder.is_dir() else ():
        serial = path.stem.removeprefix("directory-")
        if serial.isdigit():
            found.append((int(serial), path))
    return sorted(found, reverse=True)


def current_directory(config: NodeConfig, trust: TrustPolicy, now: datetime) -> VerifiedDirectory:
    """The directory in force at this node: the newest it holds, or the configured file if that is newer.

    Every directory taken is kept in ``directories/`` (an auditor needs the ones that were in force), so a
    node never falls back to an older directory, whatever its configuration file says.
    """
    authority = authority_code_of(trust.root)
    held: VerifiedDirectory | None = None
    for _, path in held_directories(config):
        try:
            held = verify_directory(path.read_bytes(), trust, authority_code=authority, now=now, held=None)
            break
        except (OSError, GwxError) as e:  # an expired one among them: the configured file may be newer
            log.warning("node.directory-unusable file=%s reason=%s", path.name, _one_line(e))
    try:
        configured_bytes = config.directory.read_bytes()
    except FileNotFoundError as e:
        if held is not None:
            return held
        raise ConfigError(f"the directory {config.directory} does not exist") from e
    try:
        configured = verify_directory(
            configured_bytes, trust, authority_code=authority, now=now, held=held.directory if held else None
        )
    except TrustError as e:
        if held is None or held.directory.serial <= read_unverified_directory(configured_bytes).serial:
            raise
        log.warning("node.directory-refused file=%s reason=%s", config.directory, _one_line(e))
        return held
    if configured.is_update:
        keep_directory(config, configured)
        return configured
    return held if held is not None else configured


def keep_directory(config: NodeConfig, verified: VerifiedDirectory) -> Path:
    """File a verified directory among those held (durably: it is what routes are computed from)."""
    folder = config.home / DIRECTORIES_NAME
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"directory-{verified.directory.serial}.xml"
    if not path.exists():
        atomic_write(path, verified.signed_bytes)
    return path


def load_context(config: NodeConfig, *, now: datetime | None = None, daemon: bool = False) -> NodeContext:
    """Trust policy, verified directory, keys, node view and store of a node home."""
    now = now or utcnow()
    trust = load_trust(config)
    in_force = current_directory(config, trust, now)
    directory = in_force.directory
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
    return NodeContext(config, trust, directory, view, tls, store, in_force.signed_bytes)


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
            log.warning("node.peer-head-refused peer=%s reason=%s", peer, _one_line(e))

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
                log.warning("node.directory-refused peer=%s reason=%s", peer, _one_line(e))
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
                log.error("node.directory-refused file=%s reason=%s", ctx.config.directory, _one_line(e))
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
            log.warning("node.deferred peer=%s message_id=%s reason=%s", peer, message_id, _one_line(e))
            return Transient(str(e))
        except (VerificationError, XmlInputError, DocumentError) as e:  # the peer's bytes: sending again won't help
            log.warning("node.refused peer=%s message_id=%s reason=%s", peer, message_id, _one_line(e))
            self._discard_parts(message_id)
            return Permanent(str(e))
        except InputError as e:  # this node's configuration (a department's keys): ours to fix, the peer retries
            log.error("node.deferred peer=%s message_id=%s reason=config detail=%s", peer, message_id, _one_line(e))
            self._discard_parts(message_id)
            return Transient(str(e))
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
            log.warning("node.discard-failed message_id=%s reason=%s", message_id, _one_line(e))

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
            _one_line(reason),
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
                log.warning("node.delivery-error reason=%s", _one_line(e))
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
            log.error("node.log-error reason=%s", _one_line(e))
        await self.listener.start()
        run_file = config.home / RUN_NAME
        me = {"pid": os.getpid(), "port": self.listener.port, "started": _process_started(os.getpid())}
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
                log.error("node.log-error reason=%s", _one_line(e))
            self.log.close()
            self.ctx.close()
            run_file.unlink(missing_ok=True)
            log.info("node.stopped node=%s", config.node_id)

    async def _sign_now(self) -> None:
        try:
            await asyncio.to_thread(self.log_accepted)
            await asyncio.to_thread(self.sign_head, force=True)
        except GwxError as e:
            log.error("node.tree-head-error reason=%s", _one_line(e))

    def _wait_idle(self, timeout: float) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=timeout)


def _close_sessions(sessions: list[PeerSession]) -> None:
    for session in sessions:
        session.close()


def _one_line(error: object) -> str:
    return str(error).replace("\n", " ")


def configure_logging(level: int = logging.INFO) -> None:
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
        started = _process_started(pid)
        return running if started is not None and started == running.get("started") else None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return running
    except OSError:
        return None
    return running


def _process_started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]  # after the command name, which may hold spaces and ')'
    except (OSError, IndexError):
        return None


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
