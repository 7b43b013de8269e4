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
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support.nodes import (
    LETTER,
    NODES,
    Network,
    gwx,
    inbox_ids,
    log_entries,
    logs,
    make_directory,
    make_pki,
    node_trust,
    outbox_states,
    wait_for,
)

from gwexchange.archive.head_store import PeerHeads, TreeHeadStore
from gwexchange.archive.log_verify import verify_log
from gwexchange.cli.local_network import Daemons, LocalPki, free_ports
from gwexchange.network.directory_xml import read_unverified_directory
from gwexchange.routing.context import open_store
from gwexchange.routing.control import _signal_daemon, running_daemon
from gwexchange.routing.home import NodeConfig
from gwexchange.routing.mime import envelope_message_id


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    """Root, CRL, node and department keys, and the authority's directory signing key, valid now."""
    return make_pki(tmp_path_factory.mktemp("node-pki") / "ca")


@pytest.fixture
def network(pki: LocalPki, tmp_path: Path) -> Network:
    """A signed directory with fresh ports, and a node home per node (made with ``gwx node init``)."""
    ports = free_ports(NODES)
    signed = pki.publish(make_directory(pki, ports), tmp_path / "directory.signed.xml")
    homes = {}
    for node, code in NODES.items():
        home = tmp_path / node
        gwx(
            "node", "init", home, "--node-id", node, "--listen", f"127.0.0.1:{ports[node]}",
            "--directory", signed, "--root", pki.root_path, "--crl", pki.crl_path,
            "--node-keys", pki.keys(node), "--department", f"{code}={pki.keys(code)}",
            "--tick", "0.2", "--retry-base", "0.5", "--retry-cap", "1",
        )  # fmt: skip
        homes[node] = home
    return Network(tmp_path, homes)


@pytest.fixture
def daemons(network: Network) -> Iterator[Daemons]:
    d = network.daemons()
    try:
        yield d
    finally:
        d.close()


def test_a_letter_goes_through_the_hub_and_is_signed_for(network: Network, daemons: Daemons) -> None:
    gxt, hub, czt = (network.homes[n] for n in NODES)
    for node in NODES:
        daemons.start(node)
    message_id = gwx("send", LETTER, "--home", gxt, "--department", "gd.gov.gxt").stdout.strip()
    wanted = {(message_id, "gd.gov.czt"): "送达", (message_id, "gd.gov.office"): "送达"}
    wait_for(lambda: outbox_states(gxt) == wanted, f"送达 in {wanted}", log=daemons.log_path("gd-gxt"))

    inbox = json.loads(gwx("inbox", "--home", czt, "--json").stdout)
    assert [(r["message_id"], r["sender_department"], r["state"]) for r in inbox] == [(message_id, "gd.gov.gxt", "new")]
    assert inbox[0]["title"] == "广东省工业和信息化厅关于商请提供政务数据共享目录的函"
    assert inbox_ids(hub, "gd.gov.office") == [message_id]
    gwx("sign-for", message_id, "--home", czt)
    wait_for(
        lambda: outbox_states(gxt)[(message_id, "gd.gov.czt")] == "签收",
        "签收 at the sender",
        log=daemons.log_path("gd-gxt"),
    )
    rows = json.loads(gwx("outbox", "--home", gxt, "--json").stdout)
    assert {(r["recipient"], r["state"]) for r in rows} == {("gd.gov.czt", "签收"), ("gd.gov.office", "送达")}

    # the recipient's clerk reads it whole and exports it: the signed XML and both attachments, byte for byte
    shown = gwx("show", message_id, "--home", czt).stdout
    assert "广东省工业和信息化厅关于商请提供政务数据共享目录的函" in shown and "已签收" in shown
    out = network.folder / "export"
    exported = gwx("export", message_id, "--home", czt, "-o", out).stdout
    assert "share-catalogue.csv" in exported
    for name in ("share-catalogue.csv", "contacts.txt"):
        assert (out / name).read_bytes() == (LETTER.parent / "attachments" / name).read_bytes()
    config = NodeConfig.load(czt)
    verified = gwx(
        "verify", out / f"{message_id}.signed.xml", "--root", config.root, "--crl", config.crls[0], check=False
    )
    assert verified.returncode == 0, verified.stderr
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir()), "exports are the clerk's alone"
    again = gwx("export", message_id, "--home", czt, "-o", out, check=False)
    assert again.returncode == 1 and ".signed.xml" in again.stderr and again.stderr.count("\n") == 1
    # the sender sees each recipient's state and route
    sent = json.loads(gwx("show", message_id, "--home", gxt, "--json").stdout)["sent"]
    assert {r["recipient"]: r["route"] for r in sent["recipients"]} == {
        "gd.gov.czt": ["gd-gxt", "gd-hub", "gd-czt"],
        "gd.gov.office": ["gd-gxt", "gd-hub"],
    }
    missing = gwx("show", "0" * 8 + "-0000-4000-8000-" + "0" * 12, "--home", gxt, check=False)
    assert missing.returncode == 1 and "not in" in missing.stderr
    table = gwx("outbox", "--home", gxt).stdout
    assert "签收" in table and "送达" in table and message_id in table

    status = json.loads(gwx("node", "status", hub, "--json").stdout)
    assert status["running"]["pid"] == daemons.procs["gd-hub"].pid
    # the node's home holds decrypted documents: no other local user may read any of it
    for node_home in (hub, czt, gxt):
        loose = [p for p in node_home.rglob("*") if stat.S_IMODE(p.lstat().st_mode) & 0o077]
        assert not loose, [(str(p), oct(p.lstat().st_mode)) for p in loose]
    assert {p["node"] for p in status["peers"]} == {"gd-gxt", "gd-czt"}
    assert status["inbox"] == {"gd.gov.office": {"new": 1}}
    assert set(status["queue"]) == {"sent"}, status
    assert status["directory_serial"] == 1 and status["log"]["size"] >= 2
    assert status["log"]["peer_head_alarms"] == [] and status["log"]["peer_heads"]  # heads held, none contradicting
    # a tree head on demand, signed by the running daemon (it holds the log), over everything logged
    signed = gwx("node", "sign-head", hub).stdout
    latest = list(TreeHeadStore(hub / "log" / "heads"))[-1]
    assert f"{latest.size} 条" in signed and latest.root_hash.hex() in signed
    assert latest.size == json.loads(gwx("node", "status", hub, "--json").stdout)["log"]["size"]

    # a clean stop: SIGTERM ends each daemon with 0 and removes run.json
    for node in NODES:
        assert daemons.stop(node) == 0, logs(daemons)
        assert not (network.homes[node] / "run.json").exists()

    check_logs(network, message_id)


def check_logs(network: Network, message_id: str) -> None:
    """After a clean stop: every node logged every envelope it took, and holds its neighbours' tree heads."""
    hub, czt = network.homes["gd-hub"], network.homes["gd-czt"]
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
    # and with no daemon running, the command signs itself
    before = len(list(TreeHeadStore(czt / "log" / "heads")))
    assert "已签名树头" in gwx("node", "sign-head", czt).stdout
    assert len(list(TreeHeadStore(czt / "log" / "heads"))) == before + 1


def test_the_hub_is_killed_and_restarted_and_the_letter_arrives_once(network: Network, daemons: Daemons) -> None:
    gxt, hub, czt = (network.homes[n] for n in NODES)
    daemons.start("gd-gxt")
    daemons.start("gd-hub")
    daemons.kill("gd-hub")  # SIGKILL: nothing stopped cleanly
    message_id = gwx("send", LETTER, "--home", gxt, "--department", "gd.gov.gxt").stdout.strip()

    def failed_once() -> bool:
        errors = json.loads(gwx("node", "status", gxt, "--json").stdout)["last_errors"]
        return any(e["message_id"] == message_id and e["next_hop"] == "gd-hub" for e in errors)

    wait_for(failed_once, "a failed attempt at the hub", log=daemons.log_path("gd-gxt"))
    assert outbox_states(gxt)[(message_id, "gd.gov.office")] == "queued"

    daemons.start("gd-hub")  # gd-czt is still down: the hub delivers its own copy and queues gd-czt's
    wait_for(
        lambda: outbox_states(gxt)[(message_id, "gd.gov.office")] == "送达",
        "送达 from the hub",
        log=daemons.log_path("gd-hub"),
    )
    assert outbox_states(gxt)[(message_id, "gd.gov.czt")] == "in transit"
    daemons.kill("gd-hub")  # with gd-czt's copy in its queue
    daemons.start("gd-czt")
    daemons.start("gd-hub")
    wait_for(
        lambda: outbox_states(gxt)[(message_id, "gd.gov.czt")] == "送达",
        "送达 from gd-czt after the hub restarted",
        log=daemons.log_path("gd-hub"),
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
    bad = gwx("send", LETTER, "--home", gxt, "--lifetime", "7 weeks", check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "--lifetime" in bad.stderr
    assert outbox_states(gxt) == {}
    with open_store(NodeConfig.load(gxt)) as store:
        assert store.queue() == ()


def test_a_joint_document_signed_in_turn_is_sent_with_signed(network: Network, daemons: Daemons, pki: LocalPki) -> None:
    """联合发文: gd.gov.czt (lead) signs with gwx doc sign, gd.gov.gxt's node adds its signature and sends it."""
    gxt, hub = network.homes["gd-gxt"], network.homes["gd-hub"]
    desk = network.folder / "desk"
    shutil.copytree(LETTER.parent, desk, ignore=shutil.ignore_patterns("*.gwx", "*.xml", "*.pdf"))
    text = (desk / "joint-notice.toml").read_text(encoding="utf-8")
    text = text.replace('to = ["gz.gov.office", "sz.gov.office"]', 'to = ["gd.gov.office"]')
    text += 'attachments = [{ file = "attachments/contacts.txt", title = "联系人及联系方式" }]\n'
    (desk / "joint.toml").write_text(text, encoding="utf-8")
    gwx("doc", "new", desk / "joint.toml", "-o", desk / "joint.xml")
    shutil.copy(desk / "attachments" / "contacts.txt", desk / "contacts.txt")  # beside the signed XML

    def send(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return gwx("send", *args, "--home", gxt, "--department", "gd.gov.gxt", check=False)

    early = send("--signed", desk / "joint.xml")  # the lead has not signed: gd.gov.gxt's turn has not come
    assert early.returncode == 1 and early.stderr.count("\n") == 1 and "缺少 gd.gov.czt" in early.stderr
    both = send(desk / "joint.toml", "--signed", desk / "joint.xml")
    assert both.returncode == 1 and both.stderr.count("\n") == 1 and "--signed" in both.stderr
    with open_store(NodeConfig.load(gxt)) as store:
        assert store.queue() == ()

    keys = pki.keys("gd.gov.czt")
    gwx(
        "doc", "sign", desk / "joint.xml", "-o", desk / "joint.czt.xml", "--key", keys / "signing.key",
        "--cert", keys / "signing.crt", "--unsafe-unencrypted-key",
    )  # fmt: skip
    sent = send("--signed", desk / "joint.czt.xml")
    assert sent.returncode == 0, sent.stderr
    message_id = sent.stdout.strip()
    daemons.start("gd-gxt", "gd-hub")
    wanted = {(message_id, "gd.gov.office"): "送达"}
    wait_for(lambda: outbox_states(gxt) == wanted, f"送达 in {wanted}", log=daemons.log_path("gd-gxt"))
    out = network.folder / "export"
    gwx("export", message_id, "--home", hub, "-o", out)
    assert (out / "contacts.txt").read_bytes() == (desk / "contacts.txt").read_bytes()
    config = NodeConfig.load(hub)
    report = gwx("verify", out / f"{message_id}.signed.xml", "--root", config.root, "--crl", config.crls[0], "--json")
    assert [s["department"] for s in json.loads(report.stdout)["signatures"]] == ["gd.gov.czt", "gd.gov.gxt"]


def test_a_newer_directory_travels_from_the_hub_to_its_peers_and_survives_restarts(
    network: Network, daemons: Daemons, pki: LocalPki
) -> None:
    gxt, hub, czt = (network.homes[n] for n in NODES)
    first = (network.folder / "directory.signed.xml").read_bytes()
    newer = replace(read_unverified_directory(first), serial=2)
    published = pki.publish(newer, network.folder / "directory-2.signed.xml")
    for node in NODES:
        daemons.start(node)
    taken = gwx("node", "update-directory", hub, published).stdout
    assert "第 2 版" in taken and "已切换" in taken
    again = gwx("node", "update-directory", hub, published, check=False)
    assert again.returncode == 1 and "already in force" in again.stderr
    older = gwx("node", "update-directory", hub, network.folder / "directory.signed.xml", check=False)
    assert older.returncode == 1 and "older" in older.stderr

    message_id = gwx("send", LETTER, "--home", gxt, "--department", "gd.gov.gxt").stdout.strip()
    wanted = {(message_id, "gd.gov.czt"): "送达", (message_id, "gd.gov.office"): "送达"}
    wait_for(lambda: outbox_states(gxt) == wanted, f"送达 in {wanted}", log=daemons.log_path("gd-gxt"))
    # the hub passed it on with the envelopes it sent: the relayed letter to gd-czt, the receipts to gd-gxt
    for home in (gxt, czt):
        wait_for(lambda home=home: (home / "directories" / "directory-2.xml").is_file(), f"directory 2 at {home.name}")
        assert (home / "directories" / "directory-2.xml").read_bytes() == published.read_bytes()
    daemons.stop("gd-gxt")
    daemons.start("gd-gxt")  # node.toml still names directory 1: the node keeps the newer one it holds
    assert json.loads(gwx("node", "status", gxt, "--json").stdout)["directory_serial"] == 2
    assert "directory-updated serial=2" in daemons.log_path("gd-czt").read_text()


def test_a_stale_run_file_names_no_daemon_and_is_never_signalled(network: Network) -> None:
    """After kill -9, run.json stays behind: its pid may be dead, or reused by any process since."""
    home = network.homes["gd-hub"]
    config = NodeConfig.load(home)
    dead = subprocess.Popen(["true"])  # a pid that is certainly gone once waited for
    dead.wait()
    started_now = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    for stale in (
        {"pid": dead.pid, "port": 1},
        {"pid": os.getpid(), "port": 1, "started": "1"},  # a live process, but not the one that wrote the file
        {"pid": os.getpid(), "port": 1},  # written by an older version: no start time to match
        {"pid": -1, "port": 1},
        ["not", "an", "object"],
    ):
        (home / "run.json").write_text(json.dumps(stale), encoding="utf-8")
        assert running_daemon(home) is None, stale
        assert not _signal_daemon(config, signal.SIGWINCH), stale
        assert json.loads(gwx("node", "status", home, "--json").stdout)["running"] is None
    current = {"pid": os.getpid(), "port": 1, "started": started_now}
    (home / "run.json").write_text(json.dumps(current), encoding="utf-8")
    assert running_daemon(home) == current
