"""``python -m campaign [--ci|--full] [--only CLASS] [--repeat N] [--point P] [--json]``: run the campaign, print
the table; exit status 0 only if every case passed.

``--ci`` (the default): every kill point × 20 kills, the disk, network and abuse cases, 300 documents of load, the
hostile corpus. ``--full``: the same with 10,000 documents of load. ``--only`` (repeatable) picks classes;
``--point`` (repeatable) and ``--target`` narrow the crashes — the reproducer of a crash finding is
``python -m campaign --only crashes --point P --repeat N``. The work folder (node homes, daemon logs under
``*/logs/``) is removed when everything passed, kept otherwise (or with ``--keep``).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from campaign import crashes, load
from campaign.report import render, to_json
from campaign.runner import CLASSES, Settings, run_unit, run_units, units
from gwexchange.routing.faults import CRASH_POINTS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m campaign", description=__doc__.splitlines()[0] if __doc__ else None)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--ci", action="store_true", help="the CI portion (default): 300 documents of load")
    mode.add_argument("--full", action="store_true", help="everything, with 10,000 documents of load")
    p.add_argument("--only", action="append", choices=CLASSES, help="run only this class (repeatable)")
    p.add_argument("--repeat", type=int, default=20, help="kills per kill point (default 20)")
    p.add_argument(
        "--point", action="append", choices=crashes.POINTS, help="only this kill point or crash scenario (repeatable)"
    )
    p.add_argument("--target", choices=tuple(crashes.TARGETS), default="both", help="whom to kill (default both)")
    p.add_argument("--jobs", type=int, default=3, help="units run at once, each in a worker (default 3; 1: here)")
    p.add_argument("--documents", type=int, help="documents of load (default 300, --full 10000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.add_argument("--json-out", type=Path, help="also write the JSON results to this file")
    p.add_argument("--workdir", type=Path, help="work folder (default: a new one under the temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the work folder even if everything passed")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds: every network kills its daemons on the way out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    only = tuple(args.only or CLASSES)
    points = tuple(args.point or crashes.POINTS)
    profile = load.LoadProfile.full() if args.full else load.LoadProfile.ci()
    if args.documents is not None and args.documents != profile.documents:
        profile = load.LoadProfile.of(args.documents)
    settings = Settings(repeat=args.repeat, seed=args.seed, target=args.target, profile=profile)
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="gwx-campaign-"))
    workdir.mkdir(parents=True, exist_ok=True)
    todo = units(only, points)

    if args.worker:  # one unit, here, for a parent running several at once
        if len(todo) != 1:
            raise SystemExit("--worker runs one unit: one class (and, for crashes, one --point)")
        result = run_unit(todo[0], settings, workdir)
        if args.json_out:
            args.json_out.write_text(to_json([result]), encoding="utf-8")
        return 0 if result.ok else 1

    started = time.monotonic()
    results = run_units(todo, settings, workdir, jobs=args.jobs)
    for result in results:
        if result.name == "crashes":
            crashes.cycle_note(result)
    ok = bool(results) and all(r.ok for r in results)
    mode = "full" if args.full else "ci"
    elapsed = time.monotonic() - started
    if (not ok or args.keep) and results:
        results[-1].notes.append(f"work folder kept: {workdir} (daemon logs in */logs/)")
    cpu = sum(float(r.figures.get("cpu_seconds", 0.0)) for r in results)
    meta = {
        "mode": mode,
        "seconds": round(elapsed, 1),
        "cpu_seconds": round(cpu, 1),
        "jobs": args.jobs,
        "repeat": args.repeat,
        "load_documents": profile.documents,
    }
    if args.json_out:
        args.json_out.write_text(to_json(results, **meta), encoding="utf-8")
    if args.json:
        print(to_json(results, **meta))
    else:
        kill_points = sum(p in CRASH_POINTS for p in points) if "crashes" in only else 0
        title = (
            f"gwexchange resilience campaign ({mode}): {kill_points} kill points × {args.repeat} kills, "
            f"{profile.documents if 'load' in only else 0} documents of load, {args.jobs} units at once — "
            f"{elapsed / 60:.1f} min wall, {cpu / 60:.1f} min CPU"
        )
        print(render(results, title=title))
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
