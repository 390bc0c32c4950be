"""Summaries, the Markdown table and the plots of a benchmark suite run (``bench/run.py``).

``bench/run.py`` calls this at the end of a suite.  To redraw from a saved file:
``python bench/report.py [bench/results/results.json] [--img-dir docs/img]``.
The plots need matplotlib (``pip install -e '.[bench]'``); without it they are skipped.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "bench" / "results" / "results.json"
MIB = 1024.0  # ru_maxrss and VmRSS are in KiB

KINDS = ("background", "sync", "floor")


def dumps(results: dict[str, Any]) -> str:
    """``results`` as indented JSON, with each short list of numbers (an RSS sample) on one line."""
    text = json.dumps(results, indent=1)
    return _NUMBER_LIST.sub(lambda m: _one_line(m.group(0)), text) + "\n"


def _one_line(numbers: str) -> str:
    return "[" + ", ".join(x.strip() for x in numbers[1:-1].split(",")) + "]"


_NUMBER_LIST = re.compile(r"\[\s*-?[\d.e+-]+(?:,\s*-?[\d.e+-]+){1,3}\s*\]")


# --------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, Any] | None:
    """Median, min, max and n of ``values`` (None when empty)."""
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


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


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------


def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def _s(sp: dict[str, Any] | None, digits: int = 0, spread_too: bool = True) -> str:
    if sp is None:
        return "–"
    text = _n(sp["median"], digits)
    if spread_too and sp["n"] > 1:
        text += f" ({_n(sp['min'], digits)}–{_n(sp['max'], digits)})"
    return text


def _get(d: dict[str, Any], *path: str) -> Any:
    cur: Any = d
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def markdown(results: dict[str, Any]) -> str:
    suite = results["suite"]
    machine = results["machine"]
    lines: list[str] = []
    add = lines.append
    add("# Benchmark results")
    add("")
    add(
        f"Command: `{suite['command']}`"
        + (" (smoke mode: tiny sizes, not a measurement)" if suite.get("smoke") else "")
    )
    add("")
    add(
        f"Machine: {machine.get('cpu_model', '?')}, {machine.get('nproc', '?')} CPUs, "
        f"{_n(machine.get('ram_gib'), 1)} GiB RAM; Python {machine.get('python', '?')}; "
        f"{machine.get('postgres', '?')}; git {str(machine.get('git_commit', '?'))[:12]}"
        + (" (uncommitted changes in src/)" if machine.get("git_dirty_src") else "")
        + f"; {suite.get('started', '')}, suite wall time {_n(suite.get('wall_seconds'), 0)} s."
    )
    if suite.get("framework_source"):
        add("")
        add(f"Framework code: {suite['framework_source']}.")
    if suite.get("src_changed_during_suite"):
        add("")
        add(
            "**Warning:** the source tree under `src/` changed while the suite ran; "
            "runs may have measured different code (each run records `src_hash`)."
        )
    add("")
    runs = suite.get("runs")
    add(
        f"Throughput is events per second end to end (file source → handlers → committed in "
        f"PostgreSQL), from the framework's own summary line; median of {runs} repetitions "
        "(min–max). Ratios are taken within each repetition, then the median of the ratios. "
        "The floor is `bench/floor.py` (read + decode + fold in a dict + one COPY), timed in-process. "
        "Stalled = time the processing loop waited on the writer. Peak RSS: VmRSS summed over the "
        "process tree (the framework reads files in a child process), sampled every 0.1 s."
    )
    add("")
    add(
        "| workload | events | background events/s | sync writes events/s | floor events/s "
        "| background / floor | background / sync | stalled s (background / sync) "
        "| peak RSS MiB (background / sync / floor) |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, wl in results["workloads"].items():
        s = wl.get("summary") or {}
        add(
            f"| {name} | {_n(_get(wl, 'file', 'events'))} "
            f"| {_s(_get(s, 'background', 'events_per_second'))} "
            f"| {_s(_get(s, 'sync', 'events_per_second'))} "
            f"| {_s(_get(s, 'floor', 'events_per_second'))} "
            f"| {_s(_get(s, 'ratios', 'background_over_floor'), 2)} "
            f"| {_s(_get(s, 'ratios', 'background_over_sync'), 2)} "
            f"| {_s(_get(s, 'background', 'stalled_seconds'), 2, False)} / {_s(_get(s, 'sync', 'stalled_seconds'), 2, False)} "
            f"| {_s(_get(s, 'background', 'maxrss_mib'), 0, False)} / {_s(_get(s, 'sync', 'maxrss_mib'), 0, False)} / {_s(_get(s, 'floor', 'maxrss_mib'), 0, False)} |"
        )
    add("")
    add("Whole processes (seconds, median), restart and resume:")
    add("")
    add(
        "| workload | background process s | sync process s | floor process s "
        "| resume with nothing to do, process s | killed at ~40 %: rerun process s | rerun events (events/s) | tables equal the floor's |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, wl in results["workloads"].items():
        s = wl.get("summary") or {}
        kr = s.get("kill_rerun")
        match = s.get("tables_match")
        add(
            f"| {name} | {_s(_get(s, 'background', 'wall_seconds'), 1, False)} "
            f"| {_s(_get(s, 'sync', 'wall_seconds'), 1, False)} "
            f"| {_s(_get(s, 'floor', 'wall_seconds'), 1, False)} "
            f"| {_s(s.get('resume_noop_wall_seconds'), 2)} "
            f"| {_n(kr['wall_seconds'], 1) if kr else '–'} "
            f"| {(_n(kr['events']) + ' (' + _n(kr['events_per_second']) + ')') if kr else '–'} "
            f"| {'–' if match is None else ('yes' if match else '**NO**')} |"
        )
    mem = results.get("memory") or []
    if mem:
        add("")
        add(
            "Memory: erc20-unique, background writes, one run each; "
            "`INDEXER_TARGET_IN_MEMORY_ENTITIES` = target."
        )
        add("")
        add(
            "| events | target | peak RSS MiB (process tree) | largest process MiB (VmHWM) "
            "| events/s | stalled s | loads s | writes | process s |"
        )
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in mem:
            add(
                f"| {_n(r.get('expected_events'))} | {_n(r.get('target'))} | {_n(r.get('maxrss_mib'))} "
                f"| {_n(r.get('maxrss_largest_process_mib'))} "
                f"| {_n(r.get('events_per_second'))} | {_n(r.get('stalled_seconds'), 2)} "
                f"| {_n(r.get('load_seconds'), 1)} | {_n(r.get('writes'))} "
                f"| {_n(r.get('wall_seconds'), 1)}{'' if r.get('ok') else ' **failed**'} |"
            )
    rb = results.get("rollback") or {}
    add("")
    if rb.get("seconds") is not None:
        add(
            f"Rollback of a 64-block reorg ({_n(rb.get('rows_restored'))} rows restored), "
            f"`bench/rollback.py`: {_n(rb['seconds'], 3)} s median of {_n(rb.get('runs'))} "
            f"({_n(rb.get('min'), 3)}–{_n(rb.get('max'), 3)}); the whole second run "
            f"(start, detect, roll back, index the new blocks, flush): "
            f"{_n(rb.get('second_run_seconds'), 3)} s."
        )
    else:
        add(f"Rollback of a 64-block reorg: not measured ({rb.get('note') or 'failed'}).")
    errors = results.get("errors") or []
    if errors:
        add("")
        add("Errors:")
        add("")
        for e in errors:
            add(f"- {e}")
    add("")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------


def plot(results: dict[str, Any], img_dir: Path) -> list[Path]:
    """Draw ``rss_over_time.png`` and ``throughput.png`` into ``img_dir``; [] without matplotlib."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
        import matplotlib.ticker  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("matplotlib is not installed: no plots (pip install -e '.[bench]')", file=sys.stderr)
        return []
    img_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    machine = results["machine"]
    where = f"{machine.get('nproc', '?')} CPUs, {machine.get('cpu_model', '?')}"

    mem = [r for r in results.get("memory") or [] if r.get("rss_samples")]
    if mem:
        fig, ax = plt.subplots(figsize=(9, 5))
        for r in mem:
            xs = [sample[0] for sample in r["rss_samples"]]
            ys = [sample[1] / MIB for sample in r["rss_samples"]]
            label = f"target {r['target']:,}, {r['expected_events']:,} events"
            style = "--" if r["expected_events"] != mem[0]["expected_events"] else "-"
            ax.plot(xs, ys, style, label=label, linewidth=1.2)
        ax.set_xlabel("seconds since start of the process")
        ax.set_ylabel("RSS, summed over the process tree (MiB)")
        ax.set_title(f"indexer run, erc20-unique: RSS over time per in-memory target\n({where})")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = img_dir / "rss_over_time.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    names = [n for n, wl in results["workloads"].items() if wl.get("summary")]
    if names:
        fig, ax = plt.subplots(figsize=(9, 5))
        width = 0.26
        colors = {"background": "#1f77b4", "sync": "#ff7f0e", "floor": "#7f7f7f"}
        labels = {
            "background": "framework, background writes",
            "sync": "framework, --sync-writes",
            "floor": "floor (plain script)",
        }
        for i, kind in enumerate(KINDS):
            meds, lo, hi, xs = [], [], [], []
            for j, name in enumerate(names):
                sp = _get(results["workloads"][name], "summary", kind, "events_per_second")
                if sp is None:
                    continue
                xs.append(j + (i - 1) * width)
                meds.append(sp["median"])
                lo.append(sp["median"] - sp["min"])
                hi.append(sp["max"] - sp["median"])
            if xs:
                ax.bar(
                    xs,
                    meds,
                    width,
                    yerr=[lo, hi],
                    capsize=3,
                    label=labels[kind],
                    color=colors[kind],
                )
                for x, m, up in zip(xs, meds, hi, strict=True):
                    ax.annotate(
                        f"{m / 1000:.0f}k",
                        (x, m + up),
                        ha="center",
                        va="bottom",
                        fontsize=8,
                        xytext=(0, 3),
                        textcoords="offset points",
                    )
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel("events/s (median; bars = min–max)")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.set_title(f"End-to-end throughput beside the floor\n({where})")
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = img_dir / "throughput.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("results", type=Path, nargs="?", default=DEFAULT_RESULTS)
    p.add_argument("--img-dir", type=Path, default=None, help="draw the PNGs here")
    args = p.parse_args(argv)
    results = json.loads(args.results.read_text())
    for wl in results["workloads"].values():
        wl["summary"] = summarize_workload(wl["runs"])
    md = markdown(results)
    args.results.with_name("results.md").write_text(md)
    print(md)
    if args.img_dir is not None:
        for path in plot(results, args.img_dir):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
