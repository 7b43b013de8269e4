"""Results of the campaign: one ``CaseResult`` per case, one ``ClassResult`` per class, one table for all.

The table (``render``) has a row per class: cases tried, passed and failed, and the figures — documents sent
and acknowledged, daemons killed, documents lost, duplicates found, time (the sum of its units' wall times: units
run several at once) and CPU (the class's processes and their daemons) — then, under it, every failed case with
what it found, and each class's notes. ``to_json`` gives the same as one JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CaseResult:
    """One case: ``passed`` only if every check of it held."""

    cls: str
    name: str
    passed: bool
    seconds: float
    detail: str = ""
    documents: int = 0
    kills: int = 0
    lost: int = 0
    duplicated: int = 0
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseResult:
        return cls(**dict(data))


@dataclass
class ClassResult:
    """A class of the campaign as run: its cases, its wall time, and notes (how it ran, what was not run)."""

    name: str
    cases: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def tried(self) -> int:
        return len(self.cases)

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.cases)

    @property
    def failed(self) -> int:
        return self.tried - self.passed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def total(self, name: str) -> int:
        value: int = sum(getattr(c, name) for c in self.cases)
        return value

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.name,
            "tried": self.tried,
            "passed": self.passed,
            "failed": self.failed,
            "documents": self.total("documents"),
            "kills": self.total("kills"),
            "lost": self.total("lost"),
            "duplicated": self.total("duplicated"),
            "seconds": round(self.seconds, 1),
            "figures": self.figures,
            "notes": self.notes,
            "cases": [c.to_json() for c in self.cases],
        }


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def render(results: Sequence[ClassResult], *, title: str = "", failures: int = 40) -> str:
    """The table, the failed cases under it, and the notes."""
    head = ("class", "tried", "passed", "failed", "documents", "kills", "lost", "duplicated", "time", "cpu")
    rows = [
        (
            r.name,
            str(r.tried),
            str(r.passed),
            str(r.failed),
            str(r.total("documents")),
            str(r.total("kills")),
            str(r.total("lost")),
            str(r.total("duplicated")),
            _minutes(r.seconds),
            _minutes(float(r.figures.get("cpu_seconds", 0.0))),
        )
        for r in results
    ]
    total = (
        "total",
        str(sum(r.tried for r in results)),
        str(sum(r.passed for r in results)),
        str(sum(r.failed for r in results)),
        str(sum(r.total("documents") for r in results)),
        str(sum(r.total("kills") for r in results)),
        str(sum(r.total("lost") for r in results)),
        str(sum(r.total("duplicated") for r in results)),
        _minutes(sum(r.seconds for r in results)),
        _minutes(sum(float(r.figures.get("cpu_seconds", 0.0)) for r in results)),
    )
    widths = [max(len(row[i]) for row in (head, *rows, total)) for i in range(len(head))]

    def line(row: Iterable[str]) -> str:
        cells = list(row)
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(line(head))
    out = [title] if title else []
    out += [line(head), rule, *(line(r) for r in rows), rule, line(total)]
    failed = [c for r in results for c in r.cases if not c.passed]
    if failed:
        out += ["", f"FAILED ({len(failed)}):"]
        for c in failed[:failures]:
            detail = c.detail.strip().replace("\n", "\n      ")
            out.append(f"  {c.cls}/{c.name} ({c.seconds:.1f} s): {detail}")
        if len(failed) > failures:
            out.append(f"  … and {len(failed) - failures} more (see --json)")
    notes = [(r.name, n) for r in results for n in r.notes]
    if notes:
        out += ["", "notes:"]
        out += [f"  {name}: {note}" for name, note in notes]
    out.append("")
    out.append("RESULT: " + ("PASS" if not failed and results else "FAIL"))
    return "\n".join(out)


def to_json(results: Sequence[ClassResult], **meta: Any) -> str:
    data = {
        **meta,
        "ok": all(r.ok for r in results) and bool(results),
        "classes": [r.to_json() for r in results],
    }
    return json.dumps(data, ensure_ascii=False, indent=2)
