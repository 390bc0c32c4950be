"""The reorg window on and off over JSON-RPC: one run, its last blocks inside the window or not.

    python bench/reorg_window.py [--runs N] [--events N] [--url URL]

Issue 13 asks that a run whose last 200 blocks are inside the reorg window not fall off a
cliff.  Inside the window the fetcher asks for every block's header before its logs,
checks the hash chain, and the processing loop seals each block (a checkpoint and, for
changed entities, history rows, so that any of those blocks can be rolled back).  This
runs ``bench/ponder.py``'s "ours" over the same node and data (the node's head lies 100
blocks above the last data block) with three windows:

* ``max_reorg_depth: 0``: no window, every block final;
* ``200`` (the default): the last 100 data blocks inside the window;
* ``300``: the last 200 data blocks inside it (the issue's case).

Every run's table is compared with the oracle.  Output: ``bench/results/reorg_window.json``
and ``.md`` (``--smoke``: 5,000 events, one repetition, in ``bench/results/smoke/``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import workloads
from _machine import machine_info, src_hash
from _paths import RESULTS, ROOT, WORK
from _ponder.oracle import oracle
from _ponder.project import write_our_project
from _ponder.runs import Bench, ours_run
from ponder import start_node

DEPTHS = (0, 200, 300)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--smoke", action="store_true", help="5,000 events, 1 run: checks it works")
    p.add_argument("--runs", type=int, default=None, help="repetitions (default 3; smoke 1)")
    p.add_argument("--events", type=int, default=None, help="default 280,000; smoke 5,000")
    p.add_argument("--max-logs", type=int, default=10_000, help="the node's eth_getLogs limit")
    p.add_argument("--url", default=None, help="PostgreSQL URL (default: embedded)")
    p.add_argument("--work-dir", type=Path, default=WORK)
    p.add_argument("--results-dir", type=Path, default=None)
    args = p.parse_args(argv)
    events = args.events or (5_000 if args.smoke else 280_000)
    runs = args.runs or (1 if args.smoke else 3)
    results_dir = args.results_dir or (RESULTS / "smoke" if args.smoke else RESULTS)
    work = args.work_dir.resolve() / "reorg-window"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    url = args.url
    if not url:
        from indexer.persist import start_embedded

        url = start_embedded(args.work_dir.resolve() / "pgdata")
    wf = workloads.generate("erc20-balances", events, args.work_dir.resolve())
    want_events, want = oracle(wf.path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "bench")])
    env.pop("INDEXER_TEST_DATABASE_URL", None)
    node_proc, node = start_node(wf.path, args.max_logs, env, work / "logs" / "node.err")
    records: list[dict[str, Any]] = []
    try:
        schema = "bench_reorg_window"
        projects = {
            depth: write_our_project(
                work / f"project-{depth}",
                schema=schema,
                rpc_url=node["url"],
                tokens=node["tokens"],
                first=node["first_block"],
                last=node["last_block"],
                max_reorg_depth=depth,
            )
            for depth in DEPTHS
        }
        bench = Bench(
            url=url,
            node_url=node["url"],
            node=node,
            ponder={},
            ponder_project=work,
            our_project=projects[DEPTHS[0]],
            our_schema=schema,
            work=work,
            events=want_events,
            oracle=want,
            env=env,
        )
        machine = machine_info(url)
        for rep in range(1, runs + 1):
            # Rotate the order between repetitions: a slow spell hits each setting.
            shift = (rep - 1) % len(DEPTHS)
            for depth in DEPTHS[shift:] + DEPTHS[:shift]:
                bench.our_project = projects[depth]
                record = ours_run(bench, rep)
                record["max_reorg_depth"] = depth
                records.append(record)
                bench.log(
                    f"repetition {rep}: depth {depth}: {record.get('wall_seconds')} s, "
                    f"correct={record.get('correct')}"
                )
    finally:
        node_proc.terminate()
        node_proc.wait()
    summary = _summary(records, want_events, node)
    results = {
        "benchmark": "reorg-window",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/reorg_window.py " + " ".join(argv or sys.argv[1:]),
        "params": {"events": want_events, "runs": runs, "node_head": node["head"],
                   "first_block": node["first_block"], "last_block": node["last_block"]},
        "src_hash": src_hash(),
        "machine": machine,
        "summary": summary,
        "runs": records,
        "errors": bench.errors,
    }  # fmt: skip
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "reorg_window.json").write_text(json.dumps(results, indent=2) + "\n")
    (results_dir / "reorg_window.md").write_text(_markdown(results))
    print(_markdown(results))
    return 1 if bench.errors else 0


def _summary(records: list[dict[str, Any]], events: int, node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    by_rep: dict[int, dict[int, float]] = {}
    for r in records:
        if r.get("correct") and r.get("wall_seconds"):
            by_rep.setdefault(r["rep"], {})[r["max_reorg_depth"]] = r["wall_seconds"]
    for depth in DEPTHS:
        walls = [t[depth] for t in by_rep.values() if depth in t]
        inside = max(0, node["last_block"] - (node["head"] - depth) + 1) if depth else 0
        ratios = [t[depth] / t[0] for t in by_rep.values() if depth in t and 0 in t]
        out[str(depth)] = {
            "blocks_inside_window": inside,
            "wall_seconds": _spread(walls),
            "events_per_second": _spread([events / w for w in walls]),
            "time_vs_no_window": _spread(ratios),
        }
    return out


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}  # fmt: skip


def _markdown(results: dict[str, Any]) -> str:
    params, summary = results["params"], results["summary"]
    lines = [
        "# The reorg window on and off over JSON-RPC",
        "",
        f"`{results['command'].strip()}`, {results['date']}. {params['events']:,} ERC20 Transfers, "
        f"blocks {params['first_block']:,}–{params['last_block']:,}, node head "
        f"{params['node_head']:,}; medians of {params['runs']} repetition(s) (min–max); the ratio "
        "is taken within each repetition.",
        "",
        "| max_reorg_depth | data blocks inside the window | whole process, s | events/s | time / no window |",
        "|---:|---:|---:|---:|---:|",
    ]
    for depth in DEPTHS:
        s = summary[str(depth)]
        lines.append(
            f"| {depth} | {s['blocks_inside_window']} | {_fmt(s['wall_seconds'], 2)} | "
            f"{_fmt(s['events_per_second'], 0)} | {_fmt(s['time_vs_no_window'], 2, '×')} |"
        )
    if results["errors"]:
        lines += ["", "Errors:", *[f"* {e}" for e in results["errors"]]]
    return "\n".join(lines) + "\n"


def _fmt(s: dict[str, float] | None, digits: int, unit: str = "") -> str:
    if not s:
        return "–"
    if s["n"] == 1:
        return f"{s['median']:,.{digits}f}{unit}"
    return f"{s['median']:,.{digits}f}{unit} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"[reorg-window] {time.perf_counter() - started:.0f} s", file=sys.stderr)
    sys.exit(code)
