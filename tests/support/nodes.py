"""What the real-daemon tests share: the harness of ``gwexchange.cli.local_network`` (the demo's, the campaign's and
the benchmark's) shaped into three nodes — a PKI and signed directory valid at the real clock, node homes, ``gwx node
run`` processes killed at teardown — with bounded waits and readers of a node's store.

    gd-gxt (gd.gov.gxt) ── gd-hub (gd.gov.office) ── gd-czt (gd.gov.czt)

Not a test module: ``test_node.py`` and ``test_node_failures.py`` import it (pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gwexchange.archive.log import MerkleLog
from gwexchange.cli.local_network import (
    Daemons,
    LocalPki,
    daemon_env,
    gwx_command,
    local_directory,
)
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.network.directory import Directory, Zone, ZonePolicy
from gwexchange.routing.context import load_trust, open_store
from gwexchange.routing.home import NodeConfig

REPO = Path(__file__).resolve().parents[2]
LETTER = REPO / "examples" / "letter.toml"
NODES = {"gd-gxt": "gd.gov.gxt", "gd-hub": "gd.gov.office", "gd-czt": "gd.gov.czt"}
NAMES = {"gd.gov.gxt": "广东省工业和信息化厅", "gd.gov.office": "广东省人民政府办公厅", "gd.gov.czt": "广东省财政厅"}
LINKS = (("gd-gxt", "gd-hub"), ("gd-hub", "gd-czt"))
WAIT = 40.0
FAST = {"tick_seconds": 0.1, "retry_base_seconds": 0.2, "retry_cap_seconds": 1.0}
"""The delivery settings of the test nodes: a look at the queue every 0.1 s, retries within a second."""

env = daemon_env  # the test keys are unencrypted, and no fault is armed unless a test asks for it


def gwx(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [*gwx_command(), *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env(), check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"gwx {' '.join(map(str, args))} failed ({result.returncode}): {result.stderr}")
    return result


# --- PKI, directory, homes -------------------------------------------------------------------------------------


def make_pki(folder: Path) -> LocalPki:
    """Root, CRL, node and department keys (unencrypted), and the authority's directory signing key, valid now."""
    pki = LocalPki(folder, name="广东省电子政务安全中心（测试）")
    for node, code in NODES.items():
        pki.issue_node(node, f"{node} 交换节点")
        pki.issue_department(code, NAMES[code])
    return pki


def make_directory(
    pki: LocalPki,
    ports: Mapping[str, int],
    *,
    policy: ZonePolicy | None = None,
    zones: Mapping[tuple[str, str], Zone] | None = None,
) -> Directory:
    """The three nodes at ``ports`` (the port the directory names: it may differ from where a node listens),
    all in 内网, linked in a line; ``zones`` overrides a link's zone, ``policy`` the zone policy (default: every
    zone may carry anything)."""
    departments = {code: (NAMES[code], node) for node, code in NODES.items()}
    return local_directory(pki, {n: ports[n] for n in NODES}, departments, LINKS, policy=policy, zones=zones)


@dataclass
class Network:
    """The files every node home points at, and one node home per node."""

    folder: Path
    homes: dict[str, Path]

    def daemons(self) -> Daemons:
        """The network's ``gwx node run`` processes, logging beside the homes (``<folder>/<node>.log``)."""
        return Daemons(self.homes, logs=self.folder)


def init_homes(
    pki: LocalPki,
    folder: Path,
    signed_directory: Path,
    listen: Mapping[str, int],
    *,
    nodes: Iterable[str] = NODES,
    settings: Mapping[str, float] = FAST,
) -> Network:
    """A node home per node listening on ``listen[node]``, written by the library as ``gwx node init`` does."""
    homes = {
        node: pki.init_home(
            folder / node,
            node_id=node,
            listen=f"127.0.0.1:{listen[node]}",
            directory=signed_directory,
            departments=[NODES[node]],
            settings=settings,
        )
        for node in nodes
    }
    return Network(folder, homes)


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
    return "\n".join(f"--- {n}\n{daemons.log_tail(n)}" for n in NODES)
