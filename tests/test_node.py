"""The node daemon end to end: real ``gwx node run`` processes on 127.0.0.1, real SMTP with STARTTLS between them.

    gd-gxt (sends, gd.gov.gxt) ── gd-hub (gd.gov.office) ── gd-czt (gd.gov.czt)

The letter of ``examples/letter.toml`` goes from gd.gov.gxt to gd.gov.czt (主送) and gd.gov.office (抄送): one
copy to the hub, delivered there and relayed to gd-czt. The PKI and the signed directory are made here, valid at
the real clock (the daemons read it). Every wait is bounded; every process is killed in teardown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest

from gwexchange.archive.log import MerkleLog, verify_log
from gwexchange.archive.treehead import PeerHeads, TreeHeadStore
from gwexchange.crypto.authority import Authority
from gwexchange.crypto.certificates import Role, Usage
from gwexchange.crypto.keys import UnsafeUnencrypted, key_from_pem
from gwexchange.crypto.trust import TrustPolicy
from gwexchange.crypto.xmldsig import Signer
from gwexchange.envelope.model import Classification
from gwexchange.routing.directory import DepartmentEntry, Directory, Link, NodeEntry, Zone, ZonePolicy, sign_directory
from gwexchange.routing.node import NodeConfig, load_trust, open_store
from gwexchange.routing.smtp import envelope_message_id

REPO = Path(__file__).resolve().parent.parent
LETTER = REPO / "examples" / "letter.toml"
GWX = str(Path(sys.executable).with_name("gwx"))
AUTHORITY = "gd.gov.ca"
NODES = {"gd-gxt": "gd.gov.gxt", "gd-hub": "gd.gov.office", "gd-czt": "gd.gov.czt"}
NAMES = {"gd.gov.gxt": "广东省工业和信息化厅", "gd.gov.office": "广东省人民政府办公厅", "gd.gov.czt": "广东省财政厅"}
WAIT = 40.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.pop("GWX_KEY_PASSPHRASE", None)  # the test keys are unencrypted
    return e


def gwx(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([GWX, *map(str, args)], capture_output=True, text=True, timeout=60, env=env(), check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"gwx {' '.join(map(str, args))} failed ({result.returncode}): {result.stderr}")
    return result


@dataclass
class Network:
    """The files every node home points at, and one node home per node (made with ``gwx node init``)."""

    folder: Path
    homes: dict[str, Path]


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root, CRL, node and department keys, and the authority's directory signing key, valid now."""
    home = tmp_path_factory.mktemp("node-pki") / "ca"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    unsafe = UnsafeUnencrypted()
    authority = Authority.create(
        home, code=AUTHORITY, name="广东省电子政务安全中心（测试）", protection=unsafe, now=start
    )
    for usage in (Usage.SIGNING,):
        authority.issue(
            code=AUTHORITY, name="安全中心", role=Role.DEPARTMENT, usage=usage, protection=unsafe, now=start
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


def cert(pki: Path, code: str, usage: Usage) -> Any:
    from cryptography import x509

    return x509.load_pem_x509_certificate((pki / "issued" / code / f"{usage.value}.crt").read_bytes())


@pytest.fixture
def network(pki_dir: Path, tmp_path: Path) -> Network:
    """A signed directory with fresh ports, and a node home per node."""
    now = datetime.now(UTC).replace(microsecond=0)
    ports = {node: free_port() for node in NODES}
    directory = Directory(
        serial=1,
        issued=now - timedelta(hours=1),
        expires=now + timedelta(days=30),
        policy=ZonePolicy(dict.fromkeys(Zone, Classification.TOP_SECRET)),
        nodes=tuple(
            NodeEntry(node, "127.0.0.1", ports[node], Zone.INTERNAL, cert(pki_dir, node, Usage.NODE)) for node in NODES
        ),
        departments=tuple(
            DepartmentEntry(
                code, NAMES[code], node, cert(pki_dir, code, Usage.SIGNING), cert(pki_dir, code, Usage.ENCRYPTION)
            )
            for node, code in NODES.items()
        ),
        links=(Link("gd-gxt", "gd-hub", Zone.INTERNAL), Link("gd-hub", "gd-czt", Zone.INTERNAL)),
    )
    ca_files = pki_dir / "issued" / AUTHORITY
    signer = Signer(
        key_from_pem((ca_files / "signing.key").read_bytes(), None), cert(pki_dir, AUTHORITY, Usage.SIGNING)
    )
    signed = tmp_path / "directory.signed.xml"
    signed.write_bytes(sign_directory(directory, signer, authority_code=AUTHORITY))
    homes = {}
    for node, code in NODES.items():
        home = tmp_path / node
        gwx(
            "node", "init", home, "--node-id", node, "--listen", f"127.0.0.1:{ports[node]}",
            "--directory", signed, "--root", pki_dir / "root.crt", "--crl", pki_dir / "crl.pem",
            "--node-keys", pki_dir / "issued" / node, "--department", f"{code}={pki_dir / 'issued' / code}",
            "--tick", "0.2", "--retry-base", "0.5", "--retry-cap", "1",
        )  # fmt: skip
        homes[node] = home
    return Network(tmp_path, homes)


class Daemons:
    """``gwx node run`` processes; whatever is still running at teardown is killed."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[IO[bytes]] = []

    def start(self, node: str) -> None:
        home = self.network.homes[node]
        (home / "run.json").unlink(missing_ok=True)  # a SIGKILLed daemon leaves it behind
        log = (self.network.folder / f"{node}.log").open("ab")
        self.logs.append(log)
        proc = subprocess.Popen([GWX, "node", "run", str(home)], stdout=log, stderr=log, env=env())
        self.procs[node] = proc
        wait_for((home / "run.json").is_file, f"{node} to listen", proc=proc, log=self.log(node))
        info = json.loads((home / "run.json").read_text())
        assert info["pid"] == proc.pid

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


@pytest.fixture
def daemons(network: Network) -> Iterator[Daemons]:
    d = Daemons(network)
    try:
        yield d
    finally:
        d.close()


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


def test_a_letter_goes_through_the_hub_and_is_signed_for(network: Network, daemons: Daemons) -> None:
    gxt, hub, czt = (network.homes[n] for n in NODES)
    for node in NODES:
        daemons.start(node)
    message_id = gwx("send", LETTER, "--home", gxt, "--department", "gd.gov.gxt").stdout.strip()
    wanted = {(message_id, "gd.gov.czt"): "送达", (message_id, "gd.gov.office"): "送达"}
    wait_for(lambda: outbox_states(gxt) == wanted, f"送达 in {wanted}", log=daemons.log("gd-gxt"))

    inbox = json.loads(gwx("inbox", "--home", czt, "--json").stdout)
    assert [(r["message_id"], r["sender_department"], r["state"]) for r in inbox] == [(message_id, "gd.gov.gxt", "new")]
    assert inbox[0]["title"] == "广东省工业和信息化厅关于商请提供政务数据共享目录的函"
    assert inbox_ids(hub, "gd.gov.office") == [message_id]
    gwx("sign-for", message_id, "--home", czt)
    wait_for(
        lambda: outbox_states(gxt)[(message_id, "gd.gov.czt")] == "签收",
        "签收 at the sender",
        log=daemons.log("gd-gxt"),
    )
    rows = json.loads(gwx("outbox", "--home", gxt, "--json").stdout)
    assert {(r["recipient"], r["state"]) for r in rows} == {("gd.gov.czt", "签收"), ("gd.gov.office", "送达")}
    table = gwx("outbox", "--home", gxt).stdout
    assert "签收" in table and "送达" in table and message_id in table

    status = json.loads(gwx("node", "status", hub, "--json").stdout)
    assert status["running"]["pid"] == daemons.procs["gd-hub"].pid
    assert {p["node"] for p in status["peers"]} == {"gd-gxt", "gd-czt"}
    assert status["inbox"] == {"gd.gov.office": {"new": 1}}
    assert set(status["queue"]) == {"sent"}, status

    # a clean stop: SIGTERM ends each daemon with 0 and removes run.json
    for node in NODES:
        assert daemons.stop(node) == 0, logs(daemons)
        assert not (network.homes[node] / "run.json").exists()

    # every node logged every envelope it took, byte for byte, under a tree head signed at the stop
    for node, home in network.homes.items():
        with open_store(NodeConfig.load(home)) as store:
            stored = {q.message_id for q in store.queue()} | {e.message_id for e in store.inbox()}
        report = verify_log(home / "log", trust=node_trust(home), node_id=node)
        assert report.ok, report
        heads = list(TreeHeadStore(home / "log" / "heads"))
        assert heads and heads[-1].size == report.size >= 2, (node, report.size)
        entries = [envelope_message_id(xml) for _, xml in log_entries(home / "log")]
        assert len(entries) == len(set(entries)) == report.size
        assert stored <= set(entries), (node, stored - set(entries))
        assert message_id in entries
    # the tree heads travelled with the envelopes: each node holds its neighbours' heads, and they verify
    held = {h.node_id for h in PeerHeads(czt / "peer-heads")}
    assert held == {"gd-hub"}
    assert {h.node_id for h in PeerHeads(hub / "peer-heads")} == {"gd-gxt", "gd-czt"}


def test_the_hub_is_killed_and_restarted_and_the_letter_arrives_once(network: Network, daemons: Daemons) -> None:
    gxt, hub, czt = (network.homes[n] for n in NODES)
    daemons.start("gd-gxt")
    daemons.start("gd-hub")
    daemons.kill("gd-hub")  # SIGKILL: nothing stopped cleanly
    message_id = gwx("send", LETTER, "--home", gxt, "--department", "gd.gov.gxt").stdout.strip()

    def failed_once() -> bool:
        errors = json.loads(gwx("node", "status", gxt, "--json").stdout)["last_errors"]
        return any(e["message_id"] == message_id and e["next_hop"] == "gd-hub" for e in errors)

    wait_for(failed_once, "a failed attempt at the hub", log=daemons.log("gd-gxt"))
    assert outbox_states(gxt)[(message_id, "gd.gov.office")] == "queued"

    daemons.start("gd-hub")  # gd-czt is still down: the hub delivers its own copy and queues gd-czt's
    wait_for(
        lambda: outbox_states(gxt)[(message_id, "gd.gov.office")] == "送达",
        "送达 from the hub",
        log=daemons.log("gd-hub"),
    )
    assert outbox_states(gxt)[(message_id, "gd.gov.czt")] == "in transit"
    daemons.kill("gd-hub")  # with gd-czt's copy in its queue
    daemons.start("gd-czt")
    daemons.start("gd-hub")
    wait_for(
        lambda: outbox_states(gxt)[(message_id, "gd.gov.czt")] == "送达",
        "送达 from gd-czt after the hub restarted",
        log=daemons.log("gd-hub"),
    )
    assert inbox_ids(czt, "gd.gov.czt") == [message_id]
    assert inbox_ids(hub, "gd.gov.office") == [message_id]
    with open_store(NodeConfig.load(hub)) as store:
        assert [(q.next_hop, q.state) for q in store.queue() if q.message_id == message_id] == [("gd-czt", "sent")]


def test_an_unroutable_letter_is_refused_in_one_line_before_anything_is_queued(network: Network) -> None:
    folder = network.folder / "desk"
    shutil.copytree(LETTER.parent, folder, ignore=shutil.ignore_patterns("*.gwx", "*.xml", "*.pdf"))
    text = (folder / "letter.toml").read_text(encoding="utf-8")
    (folder / "letter.toml").write_text(text.replace('cc = ["gd.gov.office"]', 'cc = ["gz.gov.office"]'), "utf-8")
    gxt = network.homes["gd-gxt"]
    result = gwx("send", folder / "letter.toml", "--home", gxt, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "无可用路由" in result.stderr and "gz.gov.office" in result.stderr
    assert outbox_states(gxt) == {}
    with open_store(NodeConfig.load(gxt)) as store:
        assert store.queue() == ()
