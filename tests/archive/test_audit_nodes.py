"""The audit of node homes that real daemons wrote: ``gwx node run`` × 3 (``support.nodes``), a letter sent, signed
for by one recipient and returned by the other; the hub exported while it runs. Every home, and the live export,
verifies — alone and against each other's tree heads — and the report names the letter and both answers.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.nodes import (
    LETTER,
    NODES,
    Network,
    env,
    gwx,
    init_homes,
    logs,
    make_directory,
    make_pki,
    outbox_states,
    wait_for,
)

from gwexchange.archive.audit import audit
from gwexchange.archive.audit_model import AuditOptions, AuditReport
from gwexchange.cli.local_network import Daemons, free_ports, gwx_command
from gwexchange.routing.home import NodeConfig
from gwexchange.routing.home_source import export_archive, open_source


@pytest.fixture
def network(tmp_path: Path) -> Network:
    pki = make_pki(tmp_path / "ca")
    ports = free_ports(NODES)
    signed = pki.publish(make_directory(pki, ports), tmp_path / "directory.signed.xml")
    return init_homes(pki, tmp_path, signed, ports)


@pytest.fixture
def daemons(network: Network) -> Iterator[Daemons]:
    d = network.daemons()
    try:
        yield d
    finally:
        d.close()


def run(*paths: Path, root: Path) -> AuditReport:
    with contextlib.ExitStack() as stack:
        return audit([stack.enter_context(open_source(p)) for p in paths], AuditOptions(root=root.read_bytes()))


def test_homes_written_by_daemons_verify_and_a_live_export_too(network: Network, daemons: Daemons) -> None:
    gxt, hub, czt = (network.homes[n] for n in NODES)
    daemons.start(*NODES)
    message_id = gwx("send", LETTER, "--home", gxt, "--department", "gd.gov.gxt").stdout.strip()
    wanted = {(message_id, "gd.gov.czt"): "送达", (message_id, "gd.gov.office"): "送达"}
    wait_for(lambda: outbox_states(gxt) == wanted, f"送达 in {wanted}", log=daemons.log_path("gd-gxt"))
    clerks = [  # the two recipients answer at once
        subprocess.Popen([*gwx_command(), "sign-for", message_id, "--home", str(czt)], env=env()),
        subprocess.Popen(
            [*gwx_command(), "return", message_id, "--home", str(hub), "--reason", "请按函的格式重新行文"], env=env()
        ),
    ]
    assert [clerk.wait(timeout=60) for clerk in clerks] == [0, 0]
    answered = {(message_id, "gd.gov.czt"): "签收", (message_id, "gd.gov.office"): "退回"}
    wait_for(lambda: outbox_states(gxt) == answered, f"answers in {answered}", log=daemons.log_path("gd-gxt"))

    live = export_archive(hub, network.folder / "hub-live.gwxa")  # while gd-hub runs
    assert live.node_id == "gd-hub" and live.log_size >= 3 and live.inbox == 1
    for proc in daemons.procs.values():  # stop them together: each signs its last head
        proc.send_signal(signal.SIGTERM)
    assert [proc.wait(timeout=30) for proc in daemons.procs.values()] == [0, 0, 0], logs(daemons)
    daemons.procs.clear()

    root = NodeConfig.load(gxt).root
    report = run(gxt, hub, czt, root=root)
    assert report.ok, "\n".join(report.summary())
    states = {d.message_id: dict(d.states) for n in report.nodes if n.node_id == "gd-gxt" for d in n.documents}
    assert states == {message_id: {"gd.gov.czt": "签收", "gd.gov.office": "退回"}}
    assert all(n.latest_head is not None and n.uncovered == 0 for n in report.nodes)
    # the export made while the hub ran stands beside the homes: its heads are the ones its peers hold
    mixed = run(gxt, network.folder / "hub-live.gwxa", czt, root=root)
    assert mixed.ok, "\n".join(mixed.summary())
