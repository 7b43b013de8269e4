"""Hostile inputs: the corpus of ``tests/attacks``, run by its own runner, reported as a class of the campaign.

The hook: ``tests/attacks/runner.py`` with ``run_corpus() -> list[CaseResult]`` (each with ``name``, ``cls``,
``passed``, ``seconds``, ``peak_bytes``, ``detail``). It is loaded from its file (it is not a package). When the
file or the function is missing the class is not run and the report says so; when the runner itself raises, that
is one failed case.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from campaign.report import CaseResult, ClassResult

CLASS = "hostile"
RUNNER = Path(__file__).resolve().parent.parent / "tests" / "attacks" / "runner.py"
MODULE = "gwx_attacks_runner"


def load_runner(path: Path = RUNNER) -> ModuleType | None:
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(MODULE, path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(MODULE, None)
        raise
    return module


def run() -> ClassResult:
    result = ClassResult(CLASS)
    t0 = time.monotonic()
    try:
        runner = load_runner()
        run_corpus = getattr(runner, "run_corpus", None) if runner is not None else None
        if run_corpus is None:
            result.notes.append(f"hook: {RUNNER} with run_corpus() not found — the hostile corpus was not run")
            return result
        outcomes: list[Any] = run_corpus()
    except Exception as e:
        result.cases.append(
            CaseResult(
                CLASS,
                "runner",
                False,
                time.monotonic() - t0,
                f"run_corpus raised {e!r}\n{traceback.format_exc(limit=3)}",
            )
        )
        result.seconds = time.monotonic() - t0
        return result
    for r in outcomes:
        result.cases.append(
            CaseResult(
                CLASS,
                f"{r.cls}/{r.name}",
                bool(r.passed),
                float(r.seconds),
                "" if r.passed else str(r.detail),
                figures={"peak_bytes": int(r.peak_bytes)},
            )
        )
    result.seconds = time.monotonic() - t0
    if result.cases:
        slowest = max(result.cases, key=lambda c: c.seconds)
        biggest = max(result.cases, key=lambda c: int(c.figures["peak_bytes"]))
        result.figures = {
            "max_seconds": round(slowest.seconds, 3),
            "max_seconds_case": slowest.name,
            "max_peak_bytes": biggest.figures["peak_bytes"],
            "max_peak_case": biggest.name,
            "attack_classes": len({c.name.split("/")[0] for c in result.cases}),
        }
        peak = int(biggest.figures["peak_bytes"]) / 2**20
        result.notes.append(
            f"{len(result.cases)} cases in {result.figures['attack_classes']} attack classes; slowest "
            f"{slowest.seconds:.2f} s ({slowest.name}); most memory {peak:.1f} MiB ({biggest.name}) — Python "
            "allocations (tracemalloc)"
        )
    return result
