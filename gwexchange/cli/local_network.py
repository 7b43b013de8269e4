"""A network of real node daemons on this machine: what ``gwx demo``, the tests, the resilience campaign and the
network benchmark all run.

* ``LocalPki`` — a throw-away security centre (unencrypted keys: a demonstration or a drill, never a deployment)
  that issues, once each, node certificates and departments' signing and encryption certificates, signs the
  directory, and writes node homes pointing at its files.
* ``local_directory`` — a directory whose nodes listen on 127.0.0.1 (every zone may carry anything unless a
  policy says otherwise); ``free_ports`` finds them distinct ports.
* ``Daemons`` — ``gwx node run HOME`` processes, each logging to a file of its own (appended over restarts):
  started with an environment of their own, waited for until each has written its ``run.json``, SIGTERMed (and
  SIGKILLed after a grace period), SIGKILLed. Every daemon dies with its ``Daemons``: at ``close()`` (a context
  manager) and — on Linux — with the process that started it (``PR_SET_PDEATHSIG``), so none is left behind.

Waits are bounded everywhere; what goes wrong raises ``DaemonError`` naming the node and the end of its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from cryptography import x509

from gwexchange.crypto.certificates import Role, Usage
from gwexchange.crypto.keys import UnsafeUnencrypted
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.model import Classification
from gwexchange.errors import GwxError
from gwexchange.files import atomic_write
from gwexchange.network.directory import DepartmentEntry, Directory, Link, NodeEntry, Zone, ZonePolicy
from gwexchange.network.directory_xml import sign_directory
from gwexchange.pki.authority import Authority
from gwexchange.pki.keyfiles import KEY_PASSPHRASE_ENV, load_keypair
from gwexchange.routing.context import init_home
from gwexchange.routing.faults import CRASH_ENV, IO_FAULT_ENV
from gwexchange.routing.home import RUN_NAME

AUTHORITY_CODE = "gd.gov.ca"
START_TIMEOUT = 60.0  # seconds for a daemon to write run.json (several Python processes start on two busy cores)
STOP_TIMEOUT = 30.0  # seconds for a SIGTERMed daemon to finish what is in flight, before SIGKILL
LOG_NAME = "node.log"  # a daemon's log in its home, unless ``Daemons`` is given a folder for the logs
_POLL = 0.05


class DaemonError(GwxError):
    """A daemon would not start, died while starting, or would not stop: ``node`` names it, ``exit_code`` is its
    code if it ended (None: it still ran when the wait ran out)."""

    def __init__(self, message: str, *, node: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.exit_code = exit_code


# --- commands, ports, environments ------------------------------------------------------------------------------


def gwx_command() -> list[str]:
    """The command that runs ``gwx`` with this interpreter: the script beside it, or the package's entry point."""
    script = Path(sys.executable).with_name("gwx")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "from gwexchange.cli import main; main()"]


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the daemon binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_ports(names: Iterable[str]) -> dict[str, int]:
    """A distinct free port for each name."""
    wanted = list(dict.fromkeys(names))
    ports: dict[str, int] = {}
    while len(set(ports.values())) != len(wanted):
        ports = {name: _free_port() for name in wanted}
    return ports


def daemon_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A daemon's environment: this one without a key passphrase (the keys are unencrypted) or an armed fault,
    plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in (KEY_PASSPHRASE_ENV, CRASH_ENV, IO_FAULT_ENV)}
    env.update(extra or {})
    return env


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGKILL when its parent dies (Linux). Runs between fork and exec."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


# --- the security centre, the directory, the homes ------------------------------------------------------------------


class LocalPki:
    """A root in ``folder`` (``root.crt``, ``crl.pem``, ``issued/<code>/``) and the authority's own signing
    certificate; node and department certificates on demand, each issued once."""

    def __init__(
        self,
        folder: Path,
        *,
        name: str,
        start: datetime | None = None,
        code: str = AUTHORITY_CODE,
    ) -> None:
        # Valid from before now: a document dated back a little (or a clock that lags) still verifies.
        self.start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        self.folder = folder
        self.code = code
        self._protection = UnsafeUnencrypted()
        self.authority = Authority.create(folder, code=code, name=name, protection=self._protection, now=self.start)
        self._issued: set[str] = set()
        self._issue(code, name, Role.DEPARTMENT, (Usage.SIGNING,))

    def _issue(self, code: str, name: str, role: Role, usages: Iterable[Usage]) -> None:
        if code in self._issued:
            return
        for usage in usages:
            self.authority.issue(
                code=code, name=name, role=role, usage=usage, protection=self._protection, now=self.start
            )
        self._issued.add(code)

    def issue_node(self, node_id: str, name: str) -> None:
        self._issue(node_id, name, Role.NODE, (Usage.NODE,))

    def issue_department(self, code: str, name: str) -> None:
        self._issue(code, name, Role.DEPARTMENT, (Usage.SIGNING, Usage.ENCRYPTION))

    @property
    def root_path(self) -> Path:
        return self.folder / "root.crt"

    @property
    def crl_path(self) -> Path:
        return self.folder / "crl.pem"

    def keys(self, code: str) -> Path:
        return self.folder / "issued" / code

    def cert(self, code: str, usage: Usage) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.keys(code) / f"{usage.value}.crt").read_bytes())

    def signer(self, code: str) -> Signer:
        """``code``'s signing key and certificate (the authority's own signs the directory)."""
        key, cert = load_keypair(self.keys(code), Usage.SIGNING.value)
        return Signer(key, cert)

    def publish(self, directory: Directory, path: Path) -> Path:
        """Sign ``directory`` as the authority into ``path``."""
        atomic_write(path, sign_directory(directory, self.signer(self.code), authority_code=self.code))
        return path

    def init_home(
        self,
        home: Path,
        *,
        node_id: str,
        listen: str,
        directory: Path,
        departments: Iterable[str],
        settings: Mapping[str, float],
    ) -> Path:
        """A node home as ``gwx node init`` writes it, holding this PKI's keys for the node and ``departments``;
        ``home``."""
        init_home(
            home,
            node_id=node_id,
            listen=listen,
            directory=directory,
            root=self.root_path,
            crls=[self.crl_path],
            node_keys=self.keys(node_id),
            departments={code: self.keys(code) for code in departments},
            extra=dict(settings),
        )
        return home


def local_directory(
    pki: LocalPki,
    ports: Mapping[str, int],
    departments: Mapping[str, tuple[str, str]],
    links: Iterable[tuple[str, str]],
    *,
    policy: ZonePolicy | None = None,
    zones: Mapping[tuple[str, str], Zone] | None = None,
) -> Directory:
    """Every node of ``ports`` on 127.0.0.1 in 内网; ``departments``: code → (name, home node); ``zones`` sets a
    link's zone (default 内网), ``policy`` the zone policy (default: every zone may carry anything)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return Directory(
        serial=1,
        issued=now - timedelta(hours=1),
        expires=now + timedelta(days=30),
        policy=policy or ZonePolicy(dict.fromkeys(Zone, Classification.TOP_SECRET)),
        nodes=tuple(
            NodeEntry(node, "127.0.0.1", port, Zone.INTERNAL, pki.cert(node, Usage.NODE))
            for node, port in ports.items()
        ),
        departments=tuple(
            DepartmentEntry(code, name, node, pki.cert(code, Usage.SIGNING), pki.cert(code, Usage.ENCRYPTION))
            for code, (name, node) in departments.items()
        ),
        links=tuple(Link(a, b, (zones or {}).get((a, b), Zone.INTERNAL)) for a, b in links),
    )


# --- the daemons -------------------------------------------------------------------------------------------------


class Daemons:
    """``gwx node run`` for the homes of ``homes`` (node id → home); logs in ``logs/<node>.log``, or in each
    home's ``node.log`` if no folder is given. Use as a context manager: whatever still runs at the end is killed.

    ``procs`` holds the running (or not yet reaped) processes; ``starts`` counts each node's starts and ``exits``
    records every ending seen, in order: (node, exit code)."""

    def __init__(self, homes: Mapping[str, Path], *, logs: Path | None = None) -> None:
        self.homes = homes
        self.logs = logs
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.envs: dict[str, dict[str, str]] = {}
        self.starts: Counter[str] = Counter()
        self.exits: list[tuple[str, int]] = []
        self._terminating: set[str] = set()

    def __enter__(self) -> Daemons:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Kill every daemon still running. Idempotent."""
        for node in list(self.procs):
            proc = self.procs.pop(node)
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self._terminating.clear()

    # --- logs ---

    def log_path(self, node: str) -> Path:
        return self.homes[node] / LOG_NAME if self.logs is None else self.logs / f"{node}.log"

    def log_tail(self, node: str, chars: int = 3000) -> str:
        path = self.log_path(node)
        try:
            return path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    # --- starting ---

    def spawn(
        self, node: str, env: Mapping[str, str] | None = None, *, command: Sequence[str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``gwx node run`` (or ``command``) for ``node``, ``env`` added to its environment; no waiting."""
        if self.running(node):
            raise DaemonError(f"{node} is already running", node=node)
        self.reap(node)
        home = self.homes[node]
        (home / RUN_NAME).unlink(missing_ok=True)  # a SIGKILLed daemon leaves it behind
        extra = dict(env or {})
        self.starts[node] += 1
        with self.log_path(node).open("ab") as log:  # the child keeps its own copy of the descriptor
            settings = " ".join(f"{k}={v}" for k, v in sorted(extra.items())) or "-"
            log.write(f"=== start #{self.starts[node]} of {node} ({settings})\n".encode())
            log.flush()
            main = threading.current_thread() is threading.main_thread()  # PDEATHSIG follows the forking thread
            proc = subprocess.Popen(
                list(command) if command is not None else [*gwx_command(), "node", "run", str(home)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=daemon_env(extra),
                preexec_fn=die_with_parent if main else None,  # noqa: PLW1509 — one prctl call, nothing else
            )
        self.procs[node] = proc
        self.envs[node] = extra
        return proc

    def ready(self, node: str) -> bool:
        """Whether ``node``'s daemon runs and has written its ``run.json`` (it listens)."""
        proc = self.procs.get(node)
        if proc is None or proc.poll() is not None:
            return False
        try:
            info = json.loads((self.homes[node] / RUN_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return bool(info.get("pid") == proc.pid)

    def wait_ready(self, nodes: Iterable[str], timeout: float = START_TIMEOUT) -> None:
        waiting = list(nodes)
        deadline = time.monotonic() + timeout
        while waiting:
            for node in list(waiting):
                if self.ready(node):
                    waiting.remove(node)
                elif not self.running(node):
                    code = self.exit_code(node)
                    message = f"{node} exited ({code}) while starting\n{self.log_tail(node)}"
                    raise DaemonError(message, node=node, exit_code=code)
            if waiting and time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}\n{self.log_tail(n)}" for n in waiting)
                raise DaemonError(f"{', '.join(waiting)} did not start in {timeout:.0f} s\n{tails}", node=waiting[0])
            time.sleep(_POLL)

    def start(self, *nodes: str, envs: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """Start ``nodes`` (every home, if none is named) with their environments; wait until each listens."""
        names = nodes or tuple(self.homes)
        for node in names:
            self.spawn(node, (envs or {}).get(node))
        self.wait_ready(names)

    # --- state ---

    def running(self, node: str) -> bool:
        proc = self.procs.get(node)
        return proc is not None and proc.poll() is None

    def exit_code(self, node: str) -> int | None:
        proc = self.procs.get(node)
        return None if proc is None else proc.poll()

    def reap(self, node: str) -> int | None:
        """Forget a daemon that ended (recording its exit code); its code, or None if none had ended."""
        proc = self.procs.get(node)
        if proc is None or proc.poll() is None:
            return None
        del self.procs[node]
        self._terminating.discard(node)
        code = proc.returncode
        self.exits.append((node, code))
        return code

    # --- stopping ---

    def kill(self, node: str) -> None:
        """SIGKILL: nothing is stopped cleanly."""
        proc = self.procs.get(node)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.reap(node)

    def stop(self, node: str, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait for the exit code; SIGKILL and ``DaemonError`` if it does not stop in time."""
        proc = self.procs.get(node)
        if proc is None:
            raise DaemonError(f"{node} is not running", node=node)
        self._terminate(node)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            self.kill(node)
            message = f"{node} did not stop within {timeout:.0f} s of SIGTERM\n{self.log_tail(node)}"
            raise DaemonError(message, node=node, exit_code=proc.returncode) from e
        code = self.reap(node)
        return proc.returncode if code is None else code

    def stop_all(self, timeout: float = STOP_TIMEOUT) -> dict[str, int]:
        """SIGTERM every running daemon at once and wait for all; SIGKILL whatever outlives ``timeout`` (its
        code is then ``-SIGKILL``). Every daemon's exit code; never raises for a slow one."""
        running = [n for n in self.procs if self.running(n)]
        procs = {node: self.procs[node] for node in running}
        try:
            for node in running:
                self._terminate(node)
            deadline = time.monotonic() + timeout
            for proc in procs.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        finally:  # a second Ctrl-C while waiting still leaves nothing behind
            for node in running:
                self.kill(node)
        return {node: proc.returncode for node, proc in procs.items()}

    def _terminate(self, node: str) -> None:
        # Once: a second SIGTERM after the daemon's handler is gone would kill it.
        proc = self.procs[node]
        if proc.poll() is None and node not in self._terminating:
            proc.send_signal(signal.SIGTERM)
            self._terminating.add(node)


__all__ = [
    "AUTHORITY_CODE",
    "LOG_NAME",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "DaemonError",
    "Daemons",
    "LocalPki",
    "daemon_env",
    "die_with_parent",
    "free_ports",
    "gwx_command",
    "local_directory",
]
