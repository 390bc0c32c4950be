"""The write-path benchmark's summary (B/A ratios pair by pair) and its Markdown table."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from _write_path.runs import AIO, THREAD, VARIANTS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from _write_path.runs import RunResult


def _med_min_max(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(
    rows: int, reps: list[dict[str, RunResult]], baselines: list[float]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in VARIANTS:
        loaded = [r[v] for r in reps]
        entry: dict[str, Any] = {
            "seconds_per_write": _med_min_max([r.seconds_per_write for r in loaded]),
            "rows_per_second": _med_min_max([rows / r.seconds_per_write for r in loaded]),
            "chunks_per_second": _med_min_max([r.chunks_per_second for r in loaded]),
            "overlap_fraction": _med_min_max(
                [r.chunks_per_second / b for r, b in zip(loaded, baselines, strict=True)]
            ),
        }
        idle_key = f"{v}/idle"
        if all(idle_key in r for r in reps):
            entry["idle_seconds_per_write"] = _med_min_max(
                [r[idle_key].seconds_per_write for r in reps]
            )
        out[v] = entry
    ratio: dict[str, Any] = {
        "seconds_per_write": _med_min_max(
            [r[AIO].seconds_per_write / r[THREAD].seconds_per_write for r in reps]
        ),
        "rows_per_second": _med_min_max(
            [r[THREAD].seconds_per_write / r[AIO].seconds_per_write for r in reps]
        ),
        "chunks_per_second": _med_min_max(
            [r[AIO].chunks_per_second / max(r[THREAD].chunks_per_second, 1e-9) for r in reps]
        ),
    }
    if all(f"{v}/idle" in r for r in reps for v in VARIANTS):
        ratio["idle_seconds_per_write"] = _med_min_max(
            [
                r[f"{AIO}/idle"].seconds_per_write / r[f"{THREAD}/idle"].seconds_per_write
                for r in reps
            ]
        )
    out["B/A"] = ratio
    out["baseline_chunks_per_second"] = _med_min_max(baselines)
    return out


def _fmt(s: dict[str, float], spec: str, scale: float = 1.0) -> str:
    return f"{s['median'] * scale:{spec}} ({s['min'] * scale:{spec}}–{s['max'] * scale:{spec}})"


def markdown(summary: dict[str, Any], rows: int, writes: int, repeat: int) -> str:
    idle = "idle_seconds_per_write" in summary[THREAD]
    head = [
        "variant",
        "ms/write, median (min–max)",
        "rows/s, median",
        "processing chunks/s during writes, median (min–max)",
        "% of baseline processing",
    ]
    if idle:
        head.append("ms/write without processing, median (min–max)")
    lines = [
        f"{rows} rows/write, {writes} writes/run, {repeat} runs/variant; "
        f"baseline processing {summary['baseline_chunks_per_second']['median']:.0f} chunks/s "
        f"(~1 ms chunks, no write running)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for v, label in ((THREAD, "A: thread"), (AIO, "B: trio-asyncio")):
        s = summary[v]
        cells = [
            label,
            _fmt(s["seconds_per_write"], ".1f", 1000),
            f"{s['rows_per_second']['median']:,.0f}",
            _fmt(s["chunks_per_second"], ".0f"),
            f"{s['overlap_fraction']['median'] * 100:.0f} %",
        ]
        if idle:
            cells.append(_fmt(s["idle_seconds_per_write"], ".1f", 1000))
        lines.append("| " + " | ".join(cells) + " |")
    r = summary["B/A"]
    cells = [
        "B/A (pairwise)",
        _fmt(r["seconds_per_write"], ".2f"),
        _fmt(r["rows_per_second"], ".2f"),
        _fmt(r["chunks_per_second"], ".2f"),
        "",
    ]
    if idle:
        cells.append(_fmt(r["idle_seconds_per_write"], ".2f"))
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
