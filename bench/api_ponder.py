"""The HTTP API side by side: our GraphQL and Ponder's, on the same rows, same queries.

    python bench/api_ponder.py [--events N] [--runs N] [--seconds S] [--clients N ...] [--url URL]

Issue 14 asks, if Ponder can serve the same rows in the side-by-side mode, to compare its
GraphQL on the same queries.  This indexes the side-by-side workload (``bench/ponder.py``'s
node, projects and oracle) once with each indexer, checks both tables against the oracle,
then serves them: ``indexer serve`` for ours, and for Ponder the ``ponder start``
process itself with its ``graphql()`` middleware mounted (it keeps serving after indexing).
``bench/_api/loadgen.py`` then sends the API benchmark's two queries, by id and a filtered
page ordered by balance with ``totalCount``, to each server in turn (the order rotates
between repetitions), closed loop at each client count.  Both schemas have Ponder's shape,
so the bytes sent are the same.  Output: ``bench/results/api_ponder.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import workloads
from _api import data
from _api.procs import port_of, run_closed, start_server
from _api.queries import kinds
from _machine import machine_info, src_hash
from _paths import RESULTS, WORK
from _ponder.api import GRAPHQL_API, PonderServer, side_by_side_md
from _ponder.oracle import oracle, table_digest
from _ponder.project import write_our_project, write_ponder_project
from _ponder.runs import database_url, recreate_database
from ponder import install_ponder, start_node

SCHEMA = "bench_api_ponder_ours"
PONDER_SCHEMA = "api"


def log(message: str) -> None:
    print(f"[api-ponder] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--events", type=int, default=280_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    p.add_argument("--ids", type=int, default=5_000, help="distinct ids asked for by id")
    p.add_argument("--url", default=None, help="PostgreSQL (a role that may create databases)")
    p.add_argument("--work-dir", type=Path, default=WORK)
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    work = args.work_dir.resolve() / "api-ponder"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    url = args.url
    if not url:
        from indexer.persist import start_embedded

        url = start_embedded(args.work_dir.resolve() / "pgdata")
    ponder = install_ponder()
    wf = workloads.generate("erc20-balances", args.events, args.work_dir.resolve())
    _events, want = oracle(wf.path)
    env = dict(os.environ)
    bench_dir = Path(__file__).resolve().parent
    env["PYTHONPATH"] = os.pathsep.join([str(bench_dir.parent / "src"), str(bench_dir)])
    env.pop("INDEXER_TEST_DATABASE_URL", None)
    errors: list[str] = []
    node_proc, node = start_node(wf.path, 10_000, env, work / "logs" / "node.err")
    database = f"bench_api_ponder_{os.getpid()}"
    servers: list[Any] = []
    try:
        ponder_dir = write_ponder_project(
            work / "ponder-project", Path(ponder["node_modules"]), tokens=node["tokens"],
            first=node["first_block"], last=node["last_block"],
            block_range=node["block_range"], max_logs=10_000,
        )  # fmt: skip
        (ponder_dir / "src" / "api" / "index.ts").write_text(GRAPHQL_API)
        our_dir = write_our_project(
            work / "our-project", schema=SCHEMA, rpc_url=node["url"], tokens=node["tokens"],
            first=node["first_block"], last=node["last_block"],
        )  # fmt: skip
        log(f"indexing {node['events']:,} events with ours")
        subprocess.run(
            [sys.executable, "-m", "indexer", "run", str(our_dir), "--no-progress", "--reset"],
            env=dict(env, INDEXER_DATABASE_URL=url), check=True, capture_output=True,
        )  # fmt: skip
        log("indexing with Ponder (left running: it serves the API)")
        recreate_database(url, database)
        pport = free_port()
        ponder_env = dict(
            env, DATABASE_URL=database_url(url, database), PONDER_RPC_URL_1=node["url"],
            PONDER_TELEMETRY_DISABLED="true", NODE_ENV="production",
        )  # fmt: skip
        cmd = [ponder["ponder"], "--log-format", "json", "--log-level", "info", "start"]
        cmd += ["--schema", PONDER_SCHEMA, "--port", str(pport)]
        pserver = PonderServer(cmd, ponder_dir, ponder_env, work / "logs" / "ponder")
        servers.append(pserver)
        pserver.wait_indexed(timeout=3600)
        digests = {
            "ours": table_digest(url, SCHEMA),
            "ponder": table_digest(database_url(url, database), PONDER_SCHEMA),
        }
        errors += [f"{k}'s table is not the oracle's" for k, d in digests.items() if d != want]
        ours, base = start_server(
            our_dir, dict(env, INDEXER_DATABASE_URL=url), work / "logs" / "serve"
        )
        servers.append(ours)
        ids, tokens = data.sample(url, SCHEMA, "account", args.ids, seed=1)
        targets = {"ours": (port_of(base), ours.proc.pid), "ponder": (pport, pserver.proc.pid)}
        log(f"{len(ids):,} ids, {len(tokens):,} tokens; ours {base}, Ponder port {pport}")
        plan = [
            {"name": f"{kind} x{c}", "kind": kind, "clients": c,
             "warmup": args.warmup, "seconds": args.seconds}
            for kind in ("by_id", "page") for c in args.clients
        ]  # fmt: skip
        runs: list[dict[str, Any]] = []
        for rep in range(1, args.runs + 1):
            order = ["ours", "ponder"] if rep % 2 else ["ponder", "ours"]
            for who in order:
                port, pid = targets[who]
                spec = {
                    "mode": "closed", "host": "127.0.0.1", "port": port, "server_pid": pid,
                    "verify_every": 16, "scenarios": plan,
                    "kinds": kinds("account", ids, tokens, allow_null=False),
                }  # fmt: skip
                for r in run_closed(spec, work / "closed", env)["scenarios"]:
                    r.update(rep=rep, server=who)
                    runs.append(r)
                    lat = r["latency_ms"] or {}
                    log(
                        f"rep {rep} {who} {r['name']}: {r['requests_per_second'] or 0:,.0f}/s, "
                        f"p99 {lat.get('p99', 0):.1f} ms, {r['errors']} errors"
                    )
                    if r["errors"]:
                        errors.append(
                            f"{who} {r['name']} rep {rep}: " + " | ".join(r["error_samples"])
                        )
    finally:
        for server in reversed(servers):
            server.stop()
        node_proc.terminate()
        node_proc.wait()
        recreate_database(url, database, drop_only=True)
    rows = summarize(runs)
    machine = machine_info(url)
    results = {
        "benchmark": "api-ponder-side-by-side",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/api_ponder.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "params": {"events": node["events"], "table_digest": digests["ours"], "ids": len(ids),
                   "tokens": len(tokens), "ponder_version": ponder["ponder_version"]},
        "src_hash": src_hash(), "machine": machine, "summary": rows, "runs": runs,
        "errors": errors,
    }  # fmt: skip
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "api_ponder.json").write_text(json.dumps(results, indent=1) + "\n")
    md = (
        f"# API side by side: ours and Ponder {ponder['ponder_version']}\n\n"
        f"Command: `{results['command']}`; {time.strftime('%Y-%m-%d')}; load average at end "
        f"{os.getloadavg()[0]:.2f}. Medians over {args.runs} repetitions; the ratio is taken "
        "within each repetition (both servers asked back to back), then its median.\n\n"
        + side_by_side_md(rows)
    )
    (args.results_dir / "api_ponder.md").write_text(md)
    print(md)
    return 1 if errors else 0


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (query, clients): each server's medians, and the median of the per-pair ratios."""
    out = []
    keys = sorted({(r["kind"], r["clients"]) for r in runs}, key=lambda k: (k[0] != "by_id", k[1]))
    for kind, clients in keys:
        mine = {s: [r for r in runs if (r["kind"], r["clients"], r["server"]) == (kind, clients, s)]
                for s in ("ours", "ponder")}  # fmt: skip
        by_rep = {s: {r["rep"]: r for r in mine[s]} for s in mine}
        ratios = [by_rep["ours"][k]["requests_per_second"] / by_rep["ponder"][k]["requests_per_second"]
                  for k in by_rep["ours"] if k in by_rep["ponder"]
                  and by_rep["ponder"][k]["requests_per_second"]]  # fmt: skip

        def med(s: str, f: Any, mine: dict[str, list[dict[str, Any]]] = mine) -> float:
            return statistics.median(f(r) or 0.0 for r in mine[s]) if mine[s] else 0.0

        out.append({
            "query": "by id" if kind == "by_id" else "filtered page + totalCount",
            "clients": clients,
            "ours_rps": med("ours", lambda r: r["requests_per_second"]),
            "ponder_rps": med("ponder", lambda r: r["requests_per_second"]),
            "ratio": statistics.median(ratios) if ratios else 0.0,
            "ours_p50": med("ours", lambda r: (r["latency_ms"] or {}).get("p50")),
            "ours_p99": med("ours", lambda r: (r["latency_ms"] or {}).get("p99")),
            "ponder_p50": med("ponder", lambda r: (r["latency_ms"] or {}).get("p50")),
            "ponder_p99": med("ponder", lambda r: (r["latency_ms"] or {}).get("p99")),
            "ours_errors": sum(r["errors"] for r in mine["ours"]),
            "ponder_errors": sum(r["errors"] for r in mine["ponder"]),
        })  # fmt: skip
    return out


if __name__ == "__main__":
    sys.exit(main())
