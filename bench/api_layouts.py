"""Where the API runs while indexing: the layouts of ``run --serve`` side by side.

    python bench/api_layouts.py [--rounds N] [--url URL] [--work-dir DIR] [--smoke]
                                [--layouts in-process,workers,workers-low]

Each round runs ``bench/api.py --skip-closed --runs 1`` (one pair: the 1M-event run
alone, then with the API under 200 requests/s of by-id and page queries) once per
layout, in the same order every round, so every layout meets the machine's drifts
of speed about equally:

* ``in-process``: ``run --serve`` (the API on the indexing process's event loop);
* ``workers``: ``run --serve --workers 1`` (the API in a process of its own);
* ``workers-low``: the same with ``--api-priority low`` (that process under
  ``SCHED_IDLE``: only on CPU time the indexing leaves idle).

The slowdown of each pair is ``1 - loaded/alone`` events/s; the table gives each
layout's median (min–max) over the rounds, with what the load saw (answered/s,
dropped requests, latency).  Output: ``bench/results/api_layouts.{json,md}``, every
pair's own ``api.json`` kept under ``<work-dir>/api/layouts/``.  Exit status 1 if a
round failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import workloads
from _machine import machine_info
from _paths import RESULTS
from _stats import dig, spread

HERE = Path(__file__).resolve().parent

LAYOUTS: dict[str, list[str]] = {
    "in-process": [],
    "workers": ["--serve-workers", "1"],
    "workers-low": ["--serve-workers", "1", "--api-priority", "low"],
}


def _pair(layout: str, round_no: int, args: argparse.Namespace) -> dict[str, Any]:
    out = args.work_dir / "api" / "layouts" / f"{layout}-{round_no}"
    cmd = [
        sys.executable,
        str(HERE / "api.py"),
        "--skip-closed",
        "--runs",
        "1",
        "--work-dir",
        str(args.work_dir),
        "--results-dir",
        str(out),
        *LAYOUTS[layout],
    ]
    if args.url:
        cmd += ["--url", args.url]
    if args.schema:
        cmd += ["--schema", args.schema]
    if args.smoke:
        cmd += ["--smoke"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    record: dict[str, Any] = {"layout": layout, "round": round_no, "returncode": done.returncode}
    try:
        with open(out / "api.json") as f:
            record["summary"] = json.load(f)["indexing_summary"]
    except (OSError, KeyError, ValueError) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}; stderr: {done.stderr[-500:]}"
    return record


def _one(record: dict[str, Any], *path: str) -> float | None:
    value = dig(record, "summary", *path, "median")
    return float(value) if value is not None else None


def summarize(pairs: list[dict[str, Any]], layouts: list[str]) -> dict[str, Any]:
    """Per layout: the spread of each pair's figures."""
    out: dict[str, Any] = {}
    for layout in layouts:
        mine = [p for p in pairs if p["layout"] == layout and "summary" in p]

        def col(*path: str, of: list[dict[str, Any]] = mine) -> dict[str, Any] | None:
            return spread([v for p in of if (v := _one(p, *path)) is not None])

        out[layout] = {
            "pairs": len(mine),
            "slowdown": col("slowdown"),
            "alone_events_per_second": col("alone_events_per_second"),
            "requests_per_second": col("requests_per_second"),
            "dropped": sum(int(dig(p, "summary", "dropped") or 0) for p in mine),
            "errors": sum(int(dig(p, "summary", "errors") or 0) for p in mine),
            "by_id_p50_ms": col("kinds", "by_id", "p50_ms"),
            "by_id_p99_ms": col("kinds", "by_id", "p99_ms"),
            "page_p50_ms": col("kinds", "page", "p50_ms"),
            "page_p99_ms": col("kinds", "page", "p99_ms"),
        }
    return out


def _s(v: dict[str, Any] | None, fmt: str, scale: float = 1.0) -> str:
    if v is None:
        return "–"
    lo, mid, hi = (fmt.format(v[k] * scale) for k in ("min", "median", "max"))
    return f"{mid} ({lo}–{hi})"


def _p50_p99(s: dict[str, Any], kind: str) -> str:
    got = [(s[f"{kind}_{q}_ms"] or {}).get("median") for q in ("p50", "p99")]
    return " / ".join("–" if v is None else f"{v:,.1f}" for v in got)


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "# Where the API runs while indexing",
        "",
        f"Command: `{results['command']}`; started {results['started']}.",
        "",
        f"Machine: {machine.get('cpu_model', '?')}, {machine.get('nproc', '?')} CPUs; "
        f"{machine.get('postgres', '?')}; git {str(machine.get('git_commit', '?'))[:12]}.",
        "",
        "Each round: one pair per layout (`bench/api.py --skip-closed --runs 1`: the 1M-event "
        "erc20-balances run alone, then with `run --serve` under 200 requests/s of by-id and "
        "page queries). Slowdown = 1 − loaded/alone events/s within the pair; median (min–max) "
        "over the rounds. Latency in ms from the time each request was due, median of the pairs.",
        "",
        "| layout | pairs | slowdown | events/s alone | answered/s | dropped "
        "| by-id p50 / p99 ms | page p50 / p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for layout, s in results["summary"].items():
        lines.append(
            f"| `{layout}` | {s['pairs']} | {_s(s['slowdown'], '{:.1f}%', 100)} "
            f"| {_s(s['alone_events_per_second'], '{:,.0f}')} "
            f"| {_s(s['requests_per_second'], '{:,.0f}')} | {s['dropped']:,} "
            f"| {_p50_p99(s, 'by_id')} | {_p50_p99(s, 'page')} |"
        )
    failed = [p for p in results["pairs"] if "error" in p or p["returncode"] != 0]
    if failed:
        lines += ["", "Failed pairs:", ""]
        lines += [
            f"* {p['layout']} round {p['round']}: {p.get('error', 'exit ' + str(p['returncode']))}"
            for p in failed
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="pairs per layout (default 7)")
    p.add_argument("--url", default=None, help="PostgreSQL URL (default: bench/api.py's)")
    p.add_argument("--work-dir", type=Path, default=workloads.DEFAULT_WORK_DIR)
    p.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated, in order")
    p.add_argument("--schema", default=None, help="the data's schema (default: bench/api.py's)")
    p.add_argument("--smoke", action="store_true", help="bench/api.py --smoke pairs (tiny)")
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    layouts = args.layouts.split(",")
    if unknown := [x for x in layouts if x not in LAYOUTS]:
        p.error(f"--layouts: unknown {unknown}; known: {', '.join(LAYOUTS)}")
    results: dict[str, Any] = {
        "command": "python bench/api_layouts.py " + " ".join(argv or sys.argv[1:]),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(args.url),
        "pairs": [],
    }
    for round_no in range(1, args.rounds + 1):
        for layout in layouts:
            record = _pair(layout, round_no, args)
            results["pairs"].append(record)
            slow = _one(record, "slowdown")
            print(
                f"round {round_no} {layout}: "
                + (f"slowdown {slow:.1%}" if slow is not None else record.get("error", "?")),
                flush=True,
            )
    results["summary"] = summarize(results["pairs"], layouts)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "api_layouts.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.results_dir / "api_layouts.md").write_text(markdown(results))
    print(markdown(results))
    return 1 if any("error" in r or r["returncode"] != 0 for r in results["pairs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
