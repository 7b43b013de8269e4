"""The resilience campaign (``campaign/``): its CI portion passes, its checker can fail, and it leaves nothing behind.

``test_the_ci_campaign_passes`` runs ``python -m campaign --ci`` — every kill point of ``gwexchange.routing.faults``
× 20 kills at the hub and the recipient, ENOSPC/EIO at receiving nodes, a hub cut off, expiry, clock skew, floods
and hostile MIME against a working hub, 300 documents of load with a hub SIGKILLed — as a child process and asserts
every case passed. The hostile class is left to ``tests/test_attacks.py``, which runs the same corpus. The other
tests show the checker is honest: it finds a document that was never delivered and a document filed twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from gwexchange.routing.store_tables import InboxEntry

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from campaign.network import CampaignPki, Network, check, finish, two_hubs  # noqa: E402
from campaign.report import CaseResult, ClassResult, render  # noqa: E402

CI_TIMEOUT = 40 * 60  # seconds; the CI portion takes a few minutes on two idle cores


def _leftovers(folder: Path) -> list[str]:
    """Command lines of processes still running with ``folder`` in them."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_the_ci_campaign_passes(tmp_path: Path) -> None:
    workdir = tmp_path / "campaign"
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k not in ("GWX_CRASH_AT", "GWX_IO_FAULT_FILE")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    classes = ("crashes", "disks", "network", "abuse", "load")
    command = [sys.executable, "-m", "campaign", "--ci", "--workdir", str(workdir), "--json-out", str(out)]
    for name in classes:
        command += ["--only", name]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=CI_TIMEOUT, check=False)
    assert out.is_file(), f"no results (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [c["class"] for c in data["classes"]] == list(classes)
    results = [
        ClassResult(c["class"], [CaseResult.from_json(k) for k in c["cases"]], c["seconds"], c["notes"])
        for c in data["classes"]
    ]
    table = render(results)
    assert all(r.tried > 0 for r in results), table
    assert [c.name for r in results for c in r.cases if not c.passed] == [], table
    assert proc.returncode == 0, table
    assert sum(c.kills for c in results[0].cases) >= 9 * 20, table  # every kill point × 20 at least
    assert sum(c.lost + c.duplicated for r in results for c in r.cases) == 0, table
    assert results[4].cases[0].documents == 300, table  # every send taken (a busy store is retried), none lost
    assert _leftovers(workdir) == []


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    pki = CampaignPki(tmp_path / "pki")
    with Network(tmp_path / "net", two_hubs(2), pki) as net:
        yield net
    assert _leftovers(tmp_path) == []


def test_the_checker_finds_a_document_that_never_arrived(network: Network) -> None:
    sent = network.send(1, "gd.leaf-1.d1", ["gd.leaf-2.d1"])  # queued at leaf-1, which never runs
    verdict = check(network, [sent])
    assert not verdict.ok
    assert len(verdict.lost) == 1 and sent.message_id in verdict.lost[0]
    assert any(sent.message_id in s and "leaf-1" in s for s in verdict.stuck)
    assert verdict.duplicated == []


def test_the_checker_finds_a_document_filed_twice(network: Network) -> None:
    sent = network.send(1, "gd.leaf-1.d1", ["gd.hub-a.d1"])
    network.start("leaf-1", "hub-a")
    verdict = finish(network, [sent], 60)  # delivered, signed for, 签收 back, queues drained, stopped, checked
    assert verdict.ok, verdict.problems()
    # The same document filed again under another message id: what a node that delivered twice would show.
    store = network.context("hub-a").store
    with Session(store.engine) as s, s.begin():
        entry = s.get(InboxEntry, ("gd.hub-a.d1", sent.message_id))
        assert entry is not None
        s.add(InboxEntry(**{**entry.model_dump(), "message_id": "00000000-0000-4000-8000-000000000000"}))
    verdict = check(network, [sent])
    assert any("filed 2 times" in d for d in verdict.duplicated), verdict
    assert any("00000000-0000-4000-8000-000000000000" in p for p in verdict.phantom), verdict
