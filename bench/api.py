"""The HTTP API benchmark: a bounded load generator on loopback against ``indexer serve``.

    python bench/api.py [--smoke] [--rows N] [--runs N] [--seconds S] [--url URL]
                        [--workers N] [--work-dir DIR] [--skip-indexing]

1. Data: a generated project whose ``Holding`` entity table (the framework's own DDL)
   is filled server-side with ``--rows`` rows over ``--tokens`` tokens (Zipf-skewed
   holder counts, balances up to 10^24; see ``_api/data.py``), then VACUUM ANALYZE.
   Cached: the same sizes reuse the table.
2. Server: ``indexer serve <project> --port 0 --workers N`` (default 2, one per core
   of the benchmark machine) as its own process tree; its CPU is the tree's.
3. Closed loop (``_api/loadgen.py``, another process): for each query, by-id lookups
   of random existing ids and filtered, ordered pages with ``totalCount`` of random
   tokens, at 1, 16 and 64 concurrent clients (one keep-alive connection each):
   requests/s, p50, p90, p99, max, for ``--seconds`` after a warm-up; ``--runs``
   repetitions in rotating order.  Answers are checked (see loadgen.py).
4. Indexing (unless ``--skip-indexing``): the suite's erc20-balances run alone and with
   ``--serve`` under an open-loop load of ``--rate`` requests/s, pair by pair
   (``_api/indexing.py``): events/s of each and the slowdown.

Every framework process imports a copy of ``src/indexer`` taken at the start (as
``bench/run.py`` does).  PostgreSQL: ``--url``, or an embedded server in
``<work-dir>/pgdata``.  Output: ``bench/results/api.json`` and ``api.md``; ``--smoke``
(tiny sizes, one repetition, under a minute) writes to ``bench/results/smoke/`` and
drops its data afterwards.  Exit status 1 on any error or wrong answer.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import workloads
from _api import data, toggle
from _api.indexing import IndexingPlan, run_indexing
from _api.procs import port_of, run_closed, start_server
from _api.queries import kinds
from _api.report import markdown, summarize_indexing, summarize_scenarios, targets
from _api.toggle import run_toggle
from _machine import machine_info, src_hash
from _paths import RESULTS
from _pg import drop_schema
from _suite.snapshot import snapshot_src
from _suite.suite import dumps

LOGS = workloads.SOURCE  # the file the data project's (never indexed) chain names


class Bench:
    """The results, saved after every phase, and the log."""

    def __init__(self, args: argparse.Namespace, url: str) -> None:
        self.args, self.url = args, url
        self.started = time.perf_counter()
        self.errors: list[str] = []
        self.snapshot, code = snapshot_src(args.work_dir)
        self.env = dict(os.environ)
        for name in ("INDEXER_TEST_DATABASE_URL", "INDEXER_TARGET_IN_MEMORY_ENTITIES"):
            self.env.pop(name, None)
        self.env["INDEXER_DATABASE_URL"] = url
        self.env["PYTHONUNBUFFERED"] = "1"  # the CLI's lines arrive as they are printed
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(self.snapshot), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        self.results: dict[str, Any] = {
            "command": "python bench/api.py " + shlex.join(sys.argv[1:]),
            "smoke": args.smoke,
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "database": "--url" if args.url else f"embedded ({args.work_dir / 'pgdata'})",
            "framework_source": f"{self.snapshot} (hash {code})",
            "settings": {
                k: getattr(args, k)
                for k in (
                    "rows",
                    "tokens",
                    "runs",
                    "seconds",
                    "warmup",
                    "clients",
                    "workers",
                    "rate",
                    "events",
                    "serve_workers",
                    "api_priority",
                    "load",
                )
            },
            "machine": machine_info(url),
            "errors": self.errors,
        }

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.started:7.1f}s] {msg}", flush=True)

    def save(self, name: str = "api") -> None:
        self.results["wall_seconds"] = time.perf_counter() - self.started
        self.results["src_hash_at_end"] = src_hash(self.snapshot)
        self.args.results_dir.mkdir(parents=True, exist_ok=True)
        path = self.args.results_dir / f"{name}.json"
        path.with_suffix(".json.tmp").write_text(dumps(self.results))
        path.with_suffix(".json.tmp").replace(path)


def _plan(bench: Bench, url: str, tag: str) -> IndexingPlan:
    args = bench.args
    return IndexingPlan(
        url=url,
        env=bench.env,
        work_dir=args.work_dir,
        events=args.events,
        runs=args.runs,
        rate=args.rate,
        connections=16,
        verify_every=args.verify_every,
        # Smoke runs index in a blink: keep the load on long enough to exercise it.
        min_load_seconds=1.0 if args.smoke else 0.0,
        min_answers=1 if args.smoke else 0,
        serve_workers=args.serve_workers,
        api_priority=args.api_priority,
        load=args.load,
        tag=f"{tag}{os.getpid()}",
        log=bench.log,
        errors=bench.errors,
    )


def _toggle(bench: Bench, url: str) -> int:
    args = bench.args
    plan = _plan(bench, url, "bt")  # the layouts come from toggle.LAYOUTS, not the flags
    bench.log(f"toggle: {args.toggle:g} s windows, {args.runs} runs per layout")
    # Requests queued at a switch drain within ~0.3 s (p99 of the low-priority layout).
    settle = min(0.3, args.toggle / 4)
    bench.results["toggle"] = run_toggle(plan, toggle.LAYOUTS, args.toggle, settle)
    bench.results["toggle_summary"] = toggle.summarize(bench.results["toggle"])
    name = "api_toggle" + ("_health" if args.load == "health" else "")
    bench.save(name)
    md = toggle.markdown(bench.results)
    (args.results_dir / f"{name}.md").write_text(md)
    print(md)
    return 1 if bench.errors else 0


def _closed_loop(bench: Bench, project: Path) -> None:
    args = bench.args
    ids, tokens = data.sample(bench.url, args.schema, data.TABLE, args.ids, seed=1)
    server, base = start_server(
        project, bench.env, args.work_dir / "logs" / "api-serve", workers=args.workers
    )
    bench.log(f"server {base} (pid {server.proc.pid}); {len(ids):,} ids, {len(tokens):,} tokens")
    plan = [
        {
            "name": f"{kind} x{c}",
            "kind": kind,
            "clients": c,
            "warmup": args.warmup,
            "seconds": args.seconds,
        }
        for kind in ("by_id", "page")
        for c in args.clients
    ]
    runs: list[dict[str, Any]] = []
    bench.results["scenarios"] = runs
    try:
        for rep in range(1, args.runs + 1):
            shift = (rep - 1) % len(plan)  # rotate the order between repetitions
            spec = {
                "mode": "closed",
                "host": "127.0.0.1",
                "port": port_of(base),
                "server_pid": server.proc.pid,
                "server_tree": True,  # the workers' CPU too
                "verify_every": args.verify_every,
                "kinds": kinds(data.TABLE, ids, tokens, allow_null=False),
                "scenarios": plan[shift:] + plan[:shift],
            }
            for r in run_closed(spec, args.work_dir / "api" / "closed", bench.env)["scenarios"]:
                r["rep"] = rep
                runs.append(r)
                lat = r["latency_ms"] or {}
                bench.log(
                    f"  rep {rep} {r['name']}: {r['requests_per_second'] or 0:,.0f} requests/s, "
                    f"p50 {lat.get('p50', 0):.1f} ms, p99 {lat.get('p99', 0):.1f} ms, "
                    f"{r['errors']} errors"
                )
                if r["errors"] or not r["requests"]:
                    bench.errors.append(
                        f"{r['name']} (rep {rep}): {r['errors']} errors, {r['requests']} answers; "
                        + " | ".join(r["error_samples"])
                    )
            bench.save()
    finally:
        code = server.stop()
        if code != 0:
            bench.errors.append(f"indexer serve exited with status {code}: {server.stderr_tail()}")
    bench.results["scenario_summary"] = summarize_scenarios(runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 1 run, under a minute")
    p.add_argument("--rows", type=int, default=None, help="holding rows (default 1,000,000)")
    p.add_argument("--tokens", type=int, default=None, help="distinct tokens (default 2,000)")
    p.add_argument("--runs", type=int, default=None, help="repetitions (default 3; smoke 1)")
    p.add_argument(
        "--seconds", type=float, default=None, help="measured seconds per scenario (default 10)"
    )
    p.add_argument(
        "--warmup", type=float, default=None, help="warm-up seconds per scenario (default 2)"
    )
    p.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument(
        "--workers", type=int, default=2, help="`indexer serve --workers N` (default 2: the cores)"
    )
    p.add_argument(
        "--rate", type=float, default=200.0, help="requests/s while indexing (default 200)"
    )
    p.add_argument(
        "--events", type=int, default=None, help="events of the indexing run (default 1,000,000)"
    )
    p.add_argument(
        "--url", default=None, help="PostgreSQL URL (default: embedded, in the work dir)"
    )
    p.add_argument("--schema", default=None, help="the data's schema (default bench_api)")
    p.add_argument("--work-dir", type=Path, default=workloads.DEFAULT_WORK_DIR)
    p.add_argument("--results-dir", type=Path, default=None)
    p.add_argument("--skip-indexing", action="store_true", help="skip the indexing slowdown runs")
    p.add_argument(
        "--skip-closed", action="store_true", help="skip the closed-loop runs (indexing only)"
    )
    p.add_argument(
        "--serve-workers",
        type=int,
        default=None,
        metavar="N",
        help="index with `run --serve --workers N` (default: the API in the run's process)",
    )
    p.add_argument(
        "--api-priority",
        choices=["normal", "low"],
        default="normal",
        help="with --serve-workers: `run --api-priority` (low: the API only on idle CPU)",
    )
    p.add_argument(
        "--load",
        choices=["graphql", "health"],
        default="graphql",
        help="what the paced load asks while indexing: the by-id and page mix (default), or "
        "GET /health (the HTTP server alone, no query: how much of the slowdown is the server)",
    )
    p.add_argument(
        "--toggle",
        type=float,
        default=None,
        metavar="W",
        help="measure the indexing slowdown within runs, the load on in every other W-second "
        "window, for each place the API can run, instead of by pairs (writes "
        "api_toggle.{json,md}; with the closed loop, api.md judges the target by it)",
    )
    args = p.parse_args(argv)
    if args.api_priority != "normal" and args.serve_workers is None:
        p.error("--api-priority needs --serve-workers (as `run --api-priority` needs --workers)")
    smoke = args.smoke
    args.rows = args.rows or (5_000 if smoke else 1_000_000)
    args.tokens = args.tokens or (50 if smoke else 2_000)
    args.runs = args.runs or (1 if smoke else 3)
    args.seconds = args.seconds or (1.0 if smoke else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if smoke else 2.0)
    args.events = args.events or (20_000 if smoke else 1_000_000)
    args.ids = 500 if smoke else 20_000
    args.verify_every = 1 if smoke else 16
    args.schema = args.schema or (f"bench_api_smoke_{os.getpid()}" if smoke else "bench_api")
    args.work_dir = args.work_dir.resolve()
    if args.results_dir is None:
        args.results_dir = RESULTS / ("smoke" if smoke else "")

    url = args.url
    if not url:
        from indexer.persist import start_embedded

        url = start_embedded(args.work_dir / "pgdata")
    bench = Bench(args, url)
    bench.log(
        f"PostgreSQL: {bench.results['machine'].get('postgres')}; results in {args.results_dir}"
    )
    project = data.write_project(args.work_dir, args.schema, LOGS)
    try:
        built = data.build(url, project, args.schema, args.rows, args.tokens)
        bench.results["data"] = {**built, **data.describe(url, args.schema)}
        bench.log(
            f"data: {bench.results['data']['rows']:,} rows in {args.schema}"
            + (" (reused)" if built["reused"] else f", built in {built['total_seconds']:.1f}s")
        )
        if not args.skip_closed:
            _closed_loop(bench, project)
        if args.toggle is not None:
            code = _toggle(bench, url)
            if args.skip_closed:
                return code  # api.{json,md} keep the last full run
        elif not args.skip_indexing:
            bench.results["indexing"] = run_indexing(_plan(bench, url, "ba"))
            bench.results["indexing_summary"] = summarize_indexing(
                bench.results["indexing"]["runs"]
            )
    finally:
        if smoke:
            drop_schema(url, args.schema, checkpoint=False)
    bench.results["targets"] = targets(
        bench.results.get("scenario_summary") or [],
        bench.results.get("indexing_summary"),
        bench.results.get("toggle_summary") if args.load == "graphql" else None,
        args.rate,
    )
    with contextlib.suppress(OSError):
        bench.results["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    bench.save()
    md = markdown(bench.results)
    if "toggle" in bench.results:
        md += "\n#" + toggle.markdown(bench.results)  # its table, one heading level down
    (args.results_dir / "api.md").write_text(md)
    print(md)
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
