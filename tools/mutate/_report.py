"""Verdicts over repeated runs, the table printed at the end, and the JSON report."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from ._runner import Outcome
    from .mutants import Mutant

# Verdicts that fail the command (everything but "caught").
FAILING = ("survived", "timeout", "flaky", "no-tests", "error")
_SHOWN = {"timeout": "survived (timeout)", "no-tests": "survived (no tests)"}


def verdict(outcomes: list[Outcome]) -> str:
    """caught in every run, flaky when caught in some only, else the first run's status."""
    caught = sum(o.status == "caught" for o in outcomes)
    if caught == len(outcomes):
        return "caught"
    return "flaky" if caught else outcomes[0].status


def table(mutants: list[Mutant], results: dict[str, list[Outcome]]) -> str:
    rows = [("mutant", "class", "result", "caught by", "seconds")]
    for m in mutants:
        outcomes = results[m.id]
        by = ", ".join(dict.fromkeys(o.caught_by for o in outcomes if o.caught_by)) or "-"
        seconds = " / ".join(f"{o.seconds:.1f}" for o in outcomes)
        v = verdict(outcomes)
        rows.append((m.id, m.cls, _SHOWN.get(v, v), by, seconds))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def summary(mutants: list[Mutant], results: dict[str, list[Outcome]], seconds: float) -> str:
    verdicts = {m.id: verdict(results[m.id]) for m in mutants}
    caught = sum(v == "caught" for v in verdicts.values())
    lines = [f"caught {caught} of {len(mutants)} mutants in {seconds:.0f} s"]
    per_class: dict[str, Counter[bool]] = {}
    for m in mutants:
        per_class.setdefault(m.cls, Counter())[verdicts[m.id] == "caught"] += 1
    lines.append(
        "by class: "
        + ", ".join(f"{c} {n[True]}/{n[True] + n[False]}" for c, n in per_class.items())
    )
    for status in FAILING:
        ids = [i for i, v in verdicts.items() if v == status]
        if ids:
            lines.append(f"{_SHOWN.get(status, status)}: {', '.join(ids)}")
    return "\n".join(lines)


def write_json(
    path: Path,
    mutants: list[Mutant],
    results: dict[str, list[Outcome]],
    missing: dict[str, list[str]],
    info: dict[str, Any],
) -> None:
    report = {
        **info,
        "mutants": [
            {
                "id": m.id,
                "class": m.cls,
                "file": f"src/indexer/{m.file}",
                "description": m.why,
                "tests": list(m.tests),
                "missing_tests": missing.get(m.id, []),
                "fast": m.fast,
                "verdict": verdict(results[m.id]),
                "runs": [
                    {
                        "status": o.status,
                        "caught_by": o.caught_by,
                        "seconds": round(o.seconds, 2),
                        "detail": o.detail,
                    }
                    for o in results[m.id]
                ],
            }
            for m in mutants
        ],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
