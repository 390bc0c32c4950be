"""Side by side over JSON-RPC: this project, Ponder (cold and warm) and the RPC floor.

    python bench/ponder.py [--smoke] [--runs N] [--events N] [--url URL]

One local JSON-RPC node (``bench/_ponder/node.py``, its own process) serves the ERC20
Transfers of the erc20-balances workload (``bench/workloads.py``: the real mainnet
sample replayed, ERC721-shaped Transfers left out) on ``indexer.testing``'s scripted
chain.  Both indexers list the token addresses explicitly and run the same handler
(per-(token, holder) balances, two upserts per transfer).  Each repetition runs, in an
order that rotates between repetitions:

* ``ponder-cold`` then ``ponder-warm``: ``ponder start`` (``tools/install_ponder.sh``'s
  pinned version) into a fresh database, then again into the same database with
  another ``--schema``: its RPC cache (the ``ponder_sync`` schema) is then full, so it
  re-indexes without fetching;
* ``ours``: ``indexer run <project> --no-progress --reset`` over the node;
* ``floor-1``, ``floor-4``: ``_ponder/rpc_floor.py``, ``eth_getLogs`` in ranges + parse +
  fold in a dict, no database, 1 and 4 requests in flight.

Every figure is whole-process wall time, timed from here (Ponder's to its "Completed
indexing across all chains" line: it keeps serving afterwards).  Every run's table (or
fold) is compared with the oracle, the workload file folded directly.  Output:
``bench/results/ponder.json`` (every run, the node calls, the machine), ``ponder.md``
and ``docs/img/ponder.png``.  ``--smoke``: 5,000 events, one repetition, output in
``bench/results/smoke/``, no image.  Exit status 1 if any run failed or was wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import workloads
from _machine import machine_info, src_hash
from _paths import RESULTS, ROOT, WORK
from _ponder.oracle import oracle
from _ponder.project import write_our_project, write_ponder_project
from _ponder.report import markdown, plot, summarize
from _ponder.runs import Bench, floor_run, ours_run, ponder_run, recreate_database

UNITS = ("ponder", "ours", "floor-1", "floor-4")


def install_ponder() -> dict[str, str]:
    out = subprocess.run(
        [str(ROOT / "tools" / "install_ponder.sh")], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def start_node(
    path: str, max_logs: int, env: dict[str, str], log: Path
) -> tuple[Any, dict[str, Any]]:
    """The node process and its ready line (it builds the chain first: seconds per 100k logs)."""
    cmd = [sys.executable, "-m", "_ponder.node", path, "--max-logs", str(max_logs)]
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise RuntimeError(f"the node exited ({proc.returncode}); see {log}")
    return proc, json.loads(line)


def run_repetition(bench: Bench, rep: int, database: str) -> list[dict[str, Any]]:
    shift = (rep - 1) % len(UNITS)
    records: list[dict[str, Any]] = []
    for unit in UNITS[shift:] + UNITS[:shift]:
        bench.log(f"repetition {rep}: {unit}")
        before = len(records)
        if unit == "ponder":
            recreate_database(bench.url, database)
            records.append(ponder_run(bench, rep, "ponder-cold", database, "cold"))
            records.append(ponder_run(bench, rep, "ponder-warm", database, "warm"))
            recreate_database(bench.url, database, drop_only=True)
        elif unit == "ours":
            records.append(ours_run(bench, rep))
        else:
            records.append(floor_run(bench, rep, int(unit.split("-")[1])))
        for r in records[before:]:
            bench.log(f"  {r['kind']}: {r.get('wall_seconds')} s, correct={r.get('correct')}")
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--smoke", action="store_true", help="5,000 events, 1 run: checks it works")
    p.add_argument("--runs", type=int, default=None, help="repetitions (default 3; smoke 1)")
    p.add_argument("--events", type=int, default=None, help="default 280,000; smoke 5,000")
    p.add_argument("--max-logs", type=int, default=10_000, help="the node's eth_getLogs limit")
    p.add_argument(
        "--url", default=None, help="PostgreSQL URL of a role that may create databases "
        "(default: an embedded server in the work dir)",
    )  # fmt: skip
    p.add_argument("--work-dir", type=Path, default=WORK)
    p.add_argument("--results-dir", type=Path, default=None)
    p.add_argument("--img-dir", type=Path, default=None)
    args = p.parse_args(argv)
    events = args.events or (5_000 if args.smoke else 280_000)
    runs = args.runs or (1 if args.smoke else 3)
    results_dir = args.results_dir or (RESULTS / "smoke" if args.smoke else RESULTS)
    img_dir = args.img_dir or (None if args.smoke else ROOT / "docs" / "img")
    work = args.work_dir.resolve() / "ponder"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    url = args.url
    if not url:
        from indexer.persist import start_embedded

        url = start_embedded(args.work_dir.resolve() / "pgdata")

    started = time.perf_counter()
    ponder = install_ponder()
    wf = workloads.generate("erc20-balances", events, args.work_dir.resolve())
    want_events, want = oracle(wf.path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "bench")])
    env.pop("INDEXER_TEST_DATABASE_URL", None)
    node_proc, node = start_node(wf.path, args.max_logs, env, work / "logs" / "node.err")
    try:
        our_schema = "bench_ponder_ours"
        bench = Bench(
            url=url,
            node_url=node["url"],
            node=node,
            ponder=ponder,
            ponder_project=write_ponder_project(
                work / "ponder-project",
                Path(ponder["node_modules"]),
                tokens=node["tokens"],
                first=node["first_block"],
                last=node["last_block"],
                block_range=node["block_range"],
                max_logs=args.max_logs,
            ),
            our_project=write_our_project(
                work / "our-project",
                schema=our_schema,
                rpc_url=node["url"],
                tokens=node["tokens"],
                first=node["first_block"],
                last=node["last_block"],
            ),
            our_schema=our_schema,
            work=work,
            events=want_events,
            oracle=want,
            env=env,
        )
        if node["events"] != want_events:
            bench.errors.append(
                f"the node serves {node['events']} events, the oracle {want_events}"
            )
        machine = machine_info(url)
        bench.log(
            f"{want_events:,} events, {len(node['tokens'])} tokens, blocks "
            f"{node['first_block']}..{node['last_block']}, node at {node['url']}, ponder "
            f"{ponder['ponder_version']}; {machine.get('postgres')}"
        )
        records: list[dict[str, Any]] = []
        for rep in range(1, runs + 1):
            records += run_repetition(bench, rep, f"bench_ponder_{os.getpid()}")
    finally:
        node_proc.terminate()
        node_proc.wait()
    with contextlib.suppress(OSError):
        machine["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results: dict[str, Any] = {
        "benchmark": "ponder-side-by-side",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/ponder.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "params": {
            "events": want_events,
            "runs": runs,
            "tokens": len(node["tokens"]),
            "first_block": node["first_block"],
            "last_block": node["last_block"],
            "node_head": node["head"],
            "max_logs_per_query": args.max_logs,
            "block_range": node["block_range"],
            "workload": wf.to_json(),
            "ponder_version": ponder["ponder_version"],
            "node_version": ponder["node_version"],
        },
        "src_hash": src_hash(),
        "machine": machine,
        "oracle": want,
        "summary": summarize(records, want_events),
        "runs": records,
        "errors": bench.errors,
        "wall_seconds": time.perf_counter() - started,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "ponder.json").write_text(json.dumps(results, indent=1) + "\n")
    md = markdown(results)
    (results_dir / "ponder.md").write_text(md)
    print(md)
    if img_dir is not None and (path := plot(results, img_dir / "ponder.png")):
        bench.log(f"wrote {path}")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
