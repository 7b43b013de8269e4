"""What the real-daemon tests share: a PKI and signed directory valid at the real clock, node homes, ``gwx node run``
processes killed at teardown, bounded waits, and readers of a node's store.

    gd-gxt (gd.gov.gxt) ── gd-hub (gd.gov.office) ── gd-czt (gd.gov.czt)

Not a test module: ``test_node.py`` and ``test_node_failures.py`` import it (pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from cryptography import x509

from gwexchange.archive.log import MerkleLog
from gwexchange.crypto.certificates import Role, Usage
from gwexchange.crypto.keys import UnsafeUnencrypted, key_from_pem
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.model import Classification
from gwexchange.network.directory import DepartmentEntry, Directory, Link, NodeEntry, Zone, ZonePolicy
from gwexchange.network.directory_xml import sign_directory
from gwexchange.pki.authority import Authority
from gwexchange.routing.context import init_home, load_trust, open_store
from gwexchange.routing.home import NodeConfig

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # the network harness is the campaign's, one for the tests, the campaign and bench
    sys.path.insert(0, str(REPO))

from campaign.network import daemon_env, free_port  # noqa: E402, F401 (free_port: the tests import it from here)

LETTER = REPO / "examples" / "letter.toml"
GWX = str(Path(sys.executable).with_name("gwx"))
AUTHORITY = "gd.gov.ca"
NODES = {"gd-gxt": "gd.gov.gxt", "gd-hub": "gd.gov.office", "gd-czt": "gd.gov.czt"}
NAMES = {"gd.gov.gxt": "广东省工业和信息化厅", "gd.gov.office": "广东省人民政府办公厅", "gd.gov.czt": "广东省财政厅"}
LINKS = (("gd-gxt", "gd-hub"), ("gd-hub", "gd-czt"))
WAIT = 40.0
FAST = {"tick_seconds": 0.1, "retry_base_seconds": 0.2, "retry_cap_seconds": 1.0}
"""The delivery settings of the test nodes: a look at the queue every 0.1 s, retries within a second."""


env = daemon_env  # the test keys are unencrypted, and no fault is armed unless a test asks for it


def gwx(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([GWX, *map(str, args)], capture_output=True, text=True, timeout=60, env=env(), check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"gwx {' '.join(map(str, args))} failed ({result.returncode}): {result.stderr}")
    return result


# --- PKI, directory, homes -------------------------------------------------------------------------------------


def make_pki(home: Path) -> Path:
    """Root, CRL, node and department keys (unencrypted), and the authority's directory signing key, valid now."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    unsafe = UnsafeUnencrypted()
    authority = Authority.create(
        home, code=AUTHORITY, name="广东省电子政务安全中心（测试）", protection=unsafe, now=start
    )
    authority.issue(
        code=AUTHORITY, name="安全中心", role=Role.DEPARTMENT, usage=Usage.SIGNING, protection=unsafe, now=start
    )
    for node, code in NODES.items():
        authority.issue(
            code=node, name=f"{node} 交换节点", role=Role.NODE, usage=Usage.NODE, protection=unsafe, now=start
        )
        for usage in (Usage.SIGNING, Usage.ENCRYPTION):
            authority.issue(
                code=code, name=NAMES[code], role=Role.DEPARTMENT, usage=usage, protection=unsafe, now=start
            )
    return home


def cert(pki: Path, code: str, usage: Usage) -> x509.Certificate:
    return x509.load_pem_x509_certificate((pki / "issued" / code / f"{usage.value}.crt").read_bytes())


def make_directory(
    pki: Path,
    ports: Mapping[str, int],
    *,
    policy: ZonePolicy | None = None,
    zones: Mapping[tuple[str, str], Zone] | None = None,
) -> Directory:
    """The three nodes at ``ports`` (the port the directory names: it may differ from where a node listens),
    all in 内网, linked in a line; ``zones`` overrides a link's zone, ``policy`` the zone policy (default: every
    zone may carry anything)."""
    now = datetime.now(UTC).replace(microsecond=0)
    return Directory(
        serial=1,
        issued=now - timedelta(hours=1),
        expires=now + timedelta(days=30),
        policy=policy or ZonePolicy(dict.fromkeys(Zone, Classification.TOP_SECRET)),
        nodes=tuple(
            NodeEntry(node, "127.0.0.1", ports[node], Zone.INTERNAL, cert(pki, node, Usage.NODE)) for node in NODES
        ),
        departments=tuple(
            DepartmentEntry(code, NAMES[code], node, cert(pki, code, Usage.SIGNING), cert(pki, code, Usage.ENCRYPTION))
            for node, code in NODES.items()
        ),
        links=tuple(Link(a, b, (zones or {}).get((a, b), Zone.INTERNAL)) for a, b in LINKS),
    )


def write_directory(pki: Path, directory: Directory, path: Path) -> Path:
    """Sign ``directory`` with the authority's key into ``path``."""
    ca_files = pki / "issued" / AUTHORITY
    signer = Signer(key_from_pem((ca_files / "signing.key").read_bytes(), None), cert(pki, AUTHORITY, Usage.SIGNING))
    path.write_bytes(sign_directory(directory, signer, authority_code=AUTHORITY))
    return path


@dataclass
class Network:
    """The files every node home points at, and one node home per node."""

    folder: Path
    homes: dict[str, Path]


def init_homes(
    pki: Path,
    folder: Path,
    signed_directory: Path,
    listen: Mapping[str, int],
    *,
    nodes: Iterable[str] = NODES,
    settings: Mapping[str, float] = FAST,
) -> Network:
    """A node home per node listening on ``listen[node]``, written by the library as ``gwx node init`` does."""
    homes = {}
    for node in nodes:
        code = NODES[node]
        homes[node] = folder / node
        init_home(
            homes[node],
            node_id=node,
            listen=f"127.0.0.1:{listen[node]}",
            directory=signed_directory,
            root=pki / "root.crt",
            crls=[pki / "crl.pem"],
            node_keys=pki / "issued" / node,
            departments={code: pki / "issued" / code},
            extra=dict(settings),
        )
    return Network(folder, homes)


# --- daemons ---------------------------------------------------------------------------------------------------


class Daemons:
    """``gwx node run`` processes; whatever is still running at teardown is killed."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[IO[bytes]] = []

    def launch(self, node: str, extra_env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``gwx node run`` for ``node`` without waiting for it to listen."""
        home = self.network.homes[node]
        (home / "run.json").unlink(missing_ok=True)  # a SIGKILLed daemon leaves it behind
        log = self.log(node).open("ab")
        self.logs.append(log)
        proc = subprocess.Popen([GWX, "node", "run", str(home)], stdout=log, stderr=log, env=env(extra_env))
        self.procs[node] = proc
        return proc

    def wait_listening(self, node: str) -> None:
        home, proc = self.network.homes[node], self.procs[node]
        wait_for((home / "run.json").is_file, f"{node} to listen", proc=proc, log=self.log(node))
        info = json.loads((home / "run.json").read_text())
        assert info["pid"] == proc.pid

    def start(self, *nodes: str, env: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """Start the nodes together (``env``: more environment variables for some) and wait until each listens."""
        for node in nodes:
            self.launch(node, (env or {}).get(node))
        for node in nodes:
            self.wait_listening(node)

    def kill(self, node: str) -> None:
        proc = self.procs.pop(node)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, node: str) -> int:
        """SIGTERM and wait: the exit code."""
        proc = self.procs.pop(node)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=20)

    def log(self, node: str) -> Path:
        return self.network.folder / f"{node}.log"

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
        for proc in self.procs.values():
            proc.wait(timeout=10)
        self.procs.clear()
        for log in self.logs:
            log.close()


def wait_for(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = WAIT,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-4000:] if log is not None and log.is_file() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


# --- reading a node's store --------------------------------------------------------------------------------------


def node_trust(home: Path) -> TrustPolicy:
    config = NodeConfig.load(home)
    return load_trust(config)


def log_entries(folder: Path) -> list[tuple[int, bytes]]:
    with MerkleLog(folder) as merkle:
        return list(merkle.iter_entries())


def outbox_states(home: Path) -> dict[tuple[str, str], str]:
    with open_store(NodeConfig.load(home)) as store:
        return {(v.message_id, code): state.value for v in store.outbox() for code, state, _ in v.recipients}


def inbox_ids(home: Path, department: str) -> list[str]:
    with open_store(NodeConfig.load(home)) as store:
        return [e.message_id for e in store.inbox(department)]


def logs(daemons: Daemons) -> str:
    return "\n".join(f"--- {n}\n{daemons.log(n).read_text(errors='replace')[-3000:]}" for n in NODES)
