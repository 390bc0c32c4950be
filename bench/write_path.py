"""Benchmark: the write path on a sync connection in a Trio worker thread vs. psycopg's
async API run inside Trio through trio-asyncio.

Each write is what the framework's writer does (``persist/_write.py``): one
transaction = COPY the rows into a session-lifetime TEMP staging table
(``ON COMMIT DELETE ROWS``), ``INSERT INTO account SELECT ... ON CONFLICT (id)
DO UPDATE`` and an UPDATE of a one-row progress table.  The connection uses
``synchronous_commit = off``, as the framework's writer connection does.

Variants:

* ``thread``: sync ``psycopg.connect(autocommit=True)``; every write is
  ``await trio.to_thread.run_sync(write, limiter=CapacityLimiter(1))``
  (what ``persist/_writer.py`` does).
* ``trio-asyncio``: ``psycopg.AsyncConnection`` inside
  ``async with trio_asyncio.open_loop()``; every write is one asyncio
  coroutine (the whole transaction) called through ``trio_asyncio.aio_as_trio``.

While the writes run back to back, a concurrent Trio task simulates the
processing loop: pure-Python dict updates in ~1 ms chunks with
``await trio.lowlevel.checkpoint()`` between them.  The number of chunks it
completes per second of writing is the *overlap* figure: how much
processing each variant lets through while a write is in flight.

Each repetition runs both variants (order alternating between repetitions),
each on a fresh schema and a fresh connection, with the same pre-generated
rows; B/A ratios are taken pair by pair, within a repetition.  Each
repetition also measures the processing rate with no write running
(baseline) and, unless ``--no-idle``, the write latency with no processing
task running.

Run: ``python bench/write_path.py --url postgresql://... [--rows N] [--writes N] [--repeat N]``
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

# trio-asyncio must come before psycopg (see _write_path/__init__.py), and so
# before _write_path's siblings.
import trio_asyncio  # type: ignore[import-untyped, unused-ignore]  # noqa: F401

# isort: split
import trio
from _paths import RESULTS as RESULTS_DIR
from _write_path.batches import make_batches
from _write_path.machine import machine_info
from _write_path.processing import CHUNK_SECONDS, baseline_rate, calibrate
from _write_path.report import markdown, summarize
from _write_path.runs import VARIANTS, run_variant

if TYPE_CHECKING:
    from _write_path.runs import RunResult

RESULTS = RESULTS_DIR / "write_path.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="PostgreSQL URL")
    parser.add_argument("--rows", type=int, default=20000, help="rows per write")
    parser.add_argument("--writes", type=int, default=30, help="writes per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant")
    parser.add_argument(
        "--no-idle", action="store_true", help="skip the runs without the processing task"
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval() value in seconds (default: leave CPython's 0.005)",
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS, help="results file (merged by config)"
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)

    machine = machine_info(args.url)
    batches = make_batches(args.rows, args.writes)
    iterations = calibrate()
    print(
        f"{args.rows} rows x {args.writes} writes x {args.repeat} repeats; "
        f"chunk = {iterations} dict updates (~{CHUNK_SECONDS * 1000:.0f} ms); "
        f"GIL switch interval {sys.getswitchinterval() * 1000:g} ms",
        flush=True,
    )

    # Warm-up (discarded): imports, adapter caches, first connection.
    for v in VARIANTS:
        run_variant(v, args.url, batches[:3], iterations)

    reps: list[dict[str, RunResult]] = []
    baselines: list[float] = []
    for rep in range(args.repeat):
        order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
        results: dict[str, RunResult] = {}
        baselines.append(trio.run(baseline_rate, iterations))
        for v in order:
            results[v] = run_variant(v, args.url, batches, iterations)
        if not args.no_idle:
            for v in order:
                results[f"{v}/idle"] = run_variant(v, args.url, batches, None)
        reps.append(results)
        print(
            f"rep {rep + 1}: baseline {baselines[-1]:.0f} chunks/s; "
            + "; ".join(
                f"{k}: {r.seconds_per_write * 1000:.1f} ms/write"
                + (f", {r.chunks_per_second:.0f} chunks/s" if r.processing else "")
                for k, r in results.items()
            ),
            flush=True,
        )

    summary = summarize(args.rows, reps, baselines)
    table = markdown(summary, args.rows, args.writes, args.repeat)
    print()
    print(table)

    key = f"rows={args.rows},writes={args.writes},repeat={args.repeat}"
    if args.no_idle:
        key += ",no-idle"
    if args.switch_interval is not None:
        key += f",switch-interval={args.switch_interval:g}"
    data: dict[str, Any] = {}
    if args.json.exists():
        try:
            data = json.loads(args.json.read_text())
        except (OSError, ValueError):
            data = {}
    data.setdefault("runs", {})[key] = {
        "args": {
            "rows": args.rows,
            "writes": args.writes,
            "repeat": args.repeat,
            "no_idle": args.no_idle,
            "switch_interval": args.switch_interval,
        },
        "machine": machine,
        "chunk_iterations": iterations,
        "summary": summary,
        "markdown": table,
        "repetitions": [
            {
                "baseline_chunks_per_second": b,
                "runs": {
                    k: {**asdict(r), "seconds_per_write": r.seconds_per_write}
                    for k, r in rep.items()
                },
            }
            for b, rep in zip(baselines, reps, strict=True)
        ],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
