"""A workload's summary: medians per kind of run, and ratios taken within each repetition."""

from __future__ import annotations

from typing import Any

from _stats import spread

KINDS = ("background", "sync", "floor")


def _ok(runs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in runs if r["kind"] == kind and r.get("ok")]


def _values(runs: list[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in runs if r.get(key) is not None]


def summarize_workload(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per kind of run, and ratios taken pair by pair within each repetition."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        ok = _ok(runs, kind)
        out[kind] = {
            key: spread(_values(ok, key))
            for key in (
                "events_per_second",
                "seconds",
                "wall_seconds",
                "stalled_seconds",
                "write_seconds",
                "writes",
                "handler_seconds",
                "maxrss_mib",
                "cpu_seconds",
            )
        }
        out[kind]["runs"] = len(ok)
    by_rep: dict[int, dict[str, dict[str, Any]]] = {}
    for r in runs:
        if r["kind"] in KINDS and r.get("ok"):
            by_rep.setdefault(r["rep"], {})[r["kind"]] = r
    ratios: dict[str, list[float]] = {
        "background_over_floor": [],
        "sync_over_floor": [],
        "background_over_sync": [],
        "floor_process_over_background_process": [],
    }
    for rep in sorted(by_rep):
        kinds = by_rep[rep]
        bg, sy, fl = kinds.get("background"), kinds.get("sync"), kinds.get("floor")
        if bg and fl:
            ratios["background_over_floor"].append(
                bg["events_per_second"] / fl["events_per_second"]
            )
            ratios["floor_process_over_background_process"].append(
                fl["wall_seconds"] / bg["wall_seconds"]
            )
        if sy and fl:
            ratios["sync_over_floor"].append(sy["events_per_second"] / fl["events_per_second"])
        if bg and sy:
            ratios["background_over_sync"].append(bg["events_per_second"] / sy["events_per_second"])
    out["ratios"] = {k: spread(v) for k, v in ratios.items()}
    out["ratios_per_repetition"] = ratios
    resumes = [r for r in runs if r["kind"] == "resume" and r.get("ok")]
    out["resume_noop_wall_seconds"] = spread(_values(resumes, "wall_seconds"))
    out["resume_noop_seconds"] = spread(_values(resumes, "seconds"))
    reruns = [r for r in runs if r["kind"] == "kill-rerun" and r.get("ok")]
    out["kill_rerun"] = (
        {
            "wall_seconds": reruns[0]["wall_seconds"],
            "seconds": reruns[0]["seconds"],
            "events": reruns[0]["events"],
            "events_per_second": reruns[0]["events_per_second"],
            "killed_after_seconds": reruns[0].get("killed_after_seconds"),
        }
        if reruns
        else None
    )
    checked = [r for r in runs if r.get("tables_match") is not None]
    out["tables_match"] = all(r["tables_match"] for r in checked) if checked else None
    out["failed_runs"] = sum(1 for r in runs if not r.get("ok"))
    return out
