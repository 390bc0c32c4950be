"""The rollback benchmark's summary (medians over the runs) and its Markdown table."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from _stats import dig, spread

from _rollback.project import WINDOW

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def stats(values: Sequence[float]) -> dict[str, Any] | None:
    """:func:`spread` of ``values``, and the values."""
    s = spread(values)
    return None if s is None else {**s, "values": list(values)}


def _values(records: Sequence[Mapping[str, Any]], kind: str, *path: str) -> list[float]:
    out = []
    for r in records:
        if r["kind"] == kind and r.get("ok"):
            v = dig(r, *path)
            if v is not None:
                out.append(float(v))
    return out


def _pair_ratios(records: Sequence[dict[str, Any]], a: str, b: str, *path: str) -> list[float]:
    """a/b of ``path`` pair by pair, within a repetition."""
    by_rep: dict[int, dict[str, float]] = {}
    for r in records:
        if r.get("ok") and r["kind"] in (a, b) and (v := dig(r, *path)) is not None:
            by_rep.setdefault(r["rep"], {})[r["kind"]] = float(v)
    return [p[a] / p[b] for p in by_rep.values() if len(p) == 2 and p[b] > 0]


def _history_cost(records: Sequence[dict[str, Any]], hist: str, nohist: str) -> dict[str, Any]:
    on = _values(records, hist, "first", "wall_seconds")
    off = _values(records, nohist, "first", "wall_seconds")
    return {
        "first_run_history_seconds": stats(on),
        "first_run_no_history_seconds": stats(off),
        "ratio_of_medians": statistics.median(on) / statistics.median(off) if on and off else None,
        "ratio_per_rep": stats(_pair_ratios(records, hist, nohist, "first", "wall_seconds")),
        "handler_seconds_history": stats(_values(records, hist, "first", "handler_seconds")),
        "handler_seconds_no_history": stats(_values(records, nohist, "first", "handler_seconds")),
        "writer_seconds_history": stats(_values(records, hist, "first", "write_seconds")),
        "writer_seconds_no_history": stats(_values(records, nohist, "first", "write_seconds")),
    }


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    breakdowns = [r for r in records if r["kind"] == "breakdown" and r.get("ok")]
    labels: list[str] = []
    for r in breakdowns:
        labels += [k for k in r["pieces"] if k not in labels]
    return {
        "rollback_seconds": stats(_values(records, "hist", "rollback_seconds")),
        "rows_restored": stats(_values(records, "hist", "rows_restored")),
        "second_run_seconds": stats(_values(records, "hist", "second", "wall_seconds")),
        "history_cost": {
            "tests_handler": _history_cost(records, "hist", "nohist"),
            "example_handler": _history_cost(records, "hist-example", "nohist-example"),
        },
        "breakdown": {
            "transaction_seconds": stats(_values(records, "breakdown", "transaction_seconds")),
            "statements_seconds": stats(_values(records, "breakdown", "statements_seconds")),
            "commit_seconds": stats(_values(records, "breakdown", "commit_seconds")),
            "python_seconds": stats(_values(records, "breakdown", "python_seconds")),
            "memory_apply_seconds": stats(_values(records, "breakdown", "memory_apply_seconds")),
            "pieces": {
                label: stats([r["pieces"][label] for r in breakdowns if label in r["pieces"]])
                for label in labels
            },
        }
        if breakdowns
        else None,
    }


def _fmt(s: Mapping[str, Any] | None, scale: float = 1.0, digits: int = 3) -> tuple[str, ...]:
    if not s:
        return ("n/a", "n/a", "n/a", "0")
    return (
        f"{s['median'] * scale:,.{digits}f}",
        f"{s['min'] * scale:,.{digits}f}",
        f"{s['max'] * scale:,.{digits}f}",
        str(s["n"]),
    )


def markdown(results: Mapping[str, Any]) -> str:
    p, s = results["params"], results["summary"]
    lines = [
        f"Rollback of a {p['depth']}-block reorg touching {p['entities']:,} accounts "
        f"({p['transfers_in_reorged_blocks']:,} transfers; {p['history_blocks']} blocks of older "
        f"history below; max_reorg_depth {WINDOW}); {p['runs']} runs, seconds.",
        "",
        "| measure | median | min | max | n |",
        "|---|---:|---:|---:|---:|",
    ]
    rows: list[tuple[str, Mapping[str, Any] | None, int]] = [
        (
            "**rollback** (RunSummary.rollbacks: drain + transaction + memory)",
            s["rollback_seconds"],
            3,
        ),
        ("entity rows restored", s["rows_restored"], 0),
        (
            f"second run (start, rollback, {p['depth'] + 1} new blocks, flush)",
            s["second_run_seconds"],
            3,
        ),
    ]
    for name, key in (("tests/_chains.py", "tests_handler"), ("example", "example_handler")):
        c = s["history_cost"][key]
        rows += [
            (f"first run, {name} handler, history on", c["first_run_history_seconds"], 3),
            (f"first run, {name} handler, max_reorg_depth 0", c["first_run_no_history_seconds"], 3),
            ("&nbsp;&nbsp;ratio on/off (per rep)", c["ratio_per_rep"], 2),
            ("&nbsp;&nbsp;handler seconds, history on", c["handler_seconds_history"], 3),
            ("&nbsp;&nbsp;handler seconds, depth 0", c["handler_seconds_no_history"], 3),
            (
                "&nbsp;&nbsp;writer seconds (wall, incl. GIL waits), history on",
                c["writer_seconds_history"],
                3,
            ),
            ("&nbsp;&nbsp;writer seconds, depth 0", c["writer_seconds_no_history"], 3),
        ]
    for name, st, digits in rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(st, digits=digits)) + " |")
    ratios = [
        f"{name} handler {c['ratio_of_medians']:.2f}"
        for name, c in (
            ("tests/_chains.py", s["history_cost"]["tests_handler"]),
            ("example", s["history_cost"]["example_handler"]),
        )
        if c["ratio_of_medians"] is not None
    ]
    if ratios:
        lines += [
            "",
            "First run, history on / off, ratio of the medians: " + "; ".join(ratios) + ".",
        ]
    b = s.get("breakdown")
    if b:
        lines += [
            "",
            f"Where the rollback's time goes: the framework's execute_rollback on a timing "
            f"connection, then applied to a cold Store ({b['transaction_seconds']['n']} separate "
            f"runs, ms):",
            "",
            "| piece | median | min | max | n |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, st in b["pieces"].items():
            lines.append(f"| {name} | " + " | ".join(_fmt(st, 1000, 1)) + " |")
        for name, key in (
            ("all statements", "statements_seconds"),
            ("COMMIT (synchronous_commit off)", "commit_seconds"),
            ("Python (rows -> entities, BEGIN)", "python_seconds"),
            ("**transaction total**", "transaction_seconds"),
            ("memory apply (cold Store)", "memory_apply_seconds"),
        ):
            lines.append(f"| {name} | " + " | ".join(_fmt(b[key], 1000, 1)) + " |")
    return "\n".join(lines) + "\n"
