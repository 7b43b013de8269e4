"""Running the campaign: units of work (one kill point, or a whole class), in this process or in workers.

A daemon's start costs a second or two of CPU and the crashes class starts one per kill, while most other waits
are latency (ticks, fsync, expiry): the units run ``jobs`` at once, each in a worker process
(``python -m campaign --worker …``) that writes its ``ClassResult`` as JSON, so the two cores stay busy. A worker
dies with its parent (``PR_SET_PDEATHSIG``), and its daemons with it. Every unit reports the CPU it used (its own
and its children's: the daemons it started).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from campaign import abuse, crashes, disks, hostile, load, network_faults
from campaign.network import CampaignError, CampaignPki
from campaign.report import CaseResult, ClassResult
from gwexchange.cli.local_network import die_with_parent
from gwexchange.errors import GwxError

CLASSES = ("crashes", "disks", "network", "abuse", "load", "hostile")
REPO = Path(__file__).resolve().parent.parent
WORKER_TIMEOUT = {
    "crashes": 1800.0,
    "disks": 900.0,
    "network": 1200.0,
    "abuse": 1200.0,
    "load": 6 * 3600.0,
    "hostile": 900.0,
}


@dataclass(frozen=True)
class Settings:
    repeat: int = 20
    seed: int = 1
    target: str = "both"
    profile: load.LoadProfile = field(default_factory=load.LoadProfile.ci)


@dataclass(frozen=True, slots=True)
class Unit:
    cls: str
    point: str | None = None  # a kill point (or crash scenario) of the crashes class

    @property
    def name(self) -> str:
        return self.cls if self.point is None else f"{self.cls}-{self.point}"


def units(classes: Sequence[str], points: Sequence[str]) -> list[Unit]:
    """The work, longest first (so the short units fill the gaps at the end)."""
    out: list[Unit] = []
    for cls in ("load", "network", "abuse", "crashes", "disks", "hostile"):
        if cls not in classes:
            continue
        if cls == "crashes":
            out += [Unit(cls, p) for p in points]
        else:
            out.append(Unit(cls))
    return out


def _cpu_seconds() -> tuple[float, float]:
    """CPU of this process, and of its children that ended (the daemons it started)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def run_unit(unit: Unit, settings: Settings, workdir: Path) -> ClassResult:
    """One unit in this process."""
    cpu = _cpu_seconds()
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if unit.cls == "crashes":
            point = unit.point or crashes.POINTS[0]
            result = crashes.run([point], settings.repeat, workdir=workdir, seed=settings.seed, target=settings.target)
        elif unit.cls == "disks":
            result = disks.run(workdir=workdir, pki=CampaignPki(workdir / "pki"))
        elif unit.cls == "network":
            result = network_faults.run(workdir=workdir, pki=CampaignPki(workdir / "pki"))
        elif unit.cls == "abuse":
            result = abuse.run(workdir=workdir, pki=CampaignPki(workdir / "pki"))
        elif unit.cls == "load":
            result = load.run(settings.profile, workdir=workdir, pki=CampaignPki(workdir / "pki"), seed=settings.seed)
        elif unit.cls == "hostile":
            result = hostile.run()
        else:
            raise CampaignError(f"no class {unit.cls!r}")
    except (CampaignError, GwxError, OSError) as e:
        result = ClassResult(unit.cls, [CaseResult(unit.cls, f"{unit.name}/harness", False, 0.0, f"harness: {e}")])
    result.seconds = time.monotonic() - t0
    me, children = _cpu_seconds()
    result.figures["cpu_seconds"] = round(me + children - cpu[0] - cpu[1], 1)
    result.figures["cpu_seconds_campaign"] = round(me - cpu[0], 1)
    return result


def worker_command(unit: Unit, settings: Settings, folder: Path, out: Path) -> list[str]:
    command = [sys.executable, "-m", "campaign", "--worker", "--only", unit.cls]
    if unit.point is not None:
        command += ["--point", unit.point]
    command += ["--repeat", str(settings.repeat), "--seed", str(settings.seed), "--target", settings.target]
    command += ["--documents", str(settings.profile.documents), "--workdir", str(folder), "--json-out", str(out)]
    if settings.profile == load.LoadProfile.full():
        command.append("--full")
    return command


def merge(results: Sequence[ClassResult]) -> list[ClassResult]:
    """The results of the units, one ``ClassResult`` per class, in the order of ``CLASSES``."""
    merged: dict[str, ClassResult] = {}
    for r in results:
        m = merged.setdefault(r.name, ClassResult(r.name))
        m.cases += r.cases
        m.seconds += r.seconds
        for note in r.notes:
            if note not in m.notes:
                m.notes.append(note)
        for key, value in r.figures.items():
            if key.startswith("cpu_seconds") and isinstance(value, int | float) and key in m.figures:
                m.figures[key] = round(float(m.figures[key]) + float(value), 1)
            else:
                m.figures.setdefault(key, value)
    return [merged[c] for c in CLASSES if c in merged]


def run_units(
    todo: Sequence[Unit], settings: Settings, workdir: Path, *, jobs: int = 1, progress: bool = True
) -> list[ClassResult]:
    """Every unit, ``jobs`` at once in workers (or here, one after the other, with ``jobs`` = 1)."""
    results: list[ClassResult] = []

    def say(text: str) -> None:
        if progress:
            print(f"campaign: {text}", file=sys.stderr, flush=True)

    if jobs <= 1:
        for unit in todo:
            say(f"{unit.name} …")
            results.append(run_unit(unit, settings, workdir / unit.name))
            say(f"{unit.name}: {results[-1].tried} tried, {results[-1].failed} failed, {results[-1].seconds:.0f} s")
        return merge(results)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    queue = list(todo)
    running: dict[Unit, tuple[subprocess.Popen[bytes], Path, float]] = {}
    try:
        while queue or running:
            while queue and len(running) < jobs:
                unit = queue.pop(0)
                folder = workdir / unit.name
                folder.mkdir(parents=True, exist_ok=True)
                out = folder / "result.json"
                with (folder / "worker.log").open("wb") as log:
                    proc = subprocess.Popen(
                        worker_command(unit, settings, folder, out),
                        cwd=REPO,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        preexec_fn=die_with_parent,  # noqa: PLW1509 — one prctl call, nothing else
                    )
                running[unit] = (proc, out, time.monotonic())
                say(f"{unit.name} …")
            for unit, (proc, out, since) in list(running.items()):
                late = time.monotonic() - since > WORKER_TIMEOUT[unit.cls]
                if proc.poll() is None and not late:
                    continue
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=30)
                del running[unit]
                results.append(_collect(unit, proc, out, time.monotonic() - since))
                say(f"{unit.name}: {results[-1].tried} tried, {results[-1].failed} failed, {results[-1].seconds:.0f} s")
            time.sleep(0.2)
    finally:
        for proc, _, _ in running.values():
            proc.kill()
            proc.wait(timeout=30)
    return merge(results)


def _collect(unit: Unit, proc: subprocess.Popen[bytes], out: Path, seconds: float) -> ClassResult:
    try:
        data = json.loads(out.read_text(encoding="utf-8"))
        found = [c for c in data["classes"] if c["class"] == unit.cls]
        if not found:
            raise KeyError(unit.cls)
        c = found[0]
        return ClassResult(
            unit.cls,
            [CaseResult.from_json(k) for k in c["cases"]],
            float(c["seconds"]),
            list(c["notes"]),
            dict(c["figures"]),
        )
    except (OSError, ValueError, KeyError) as e:
        tail = (out.parent / "worker.log").read_text(errors="replace")[-3000:] if out.parent.is_dir() else ""
        detail = f"worker exited {proc.returncode} without results ({e})\n{tail}"
        return ClassResult(unit.cls, [CaseResult(unit.cls, f"{unit.name}/worker", False, seconds, detail)], seconds)
