"""Benchmark: the cost of transaction/block fields and of a block handler every block, over RPC.

    python bench/fields.py [--runs N] [--blocks N] [--per-block N] [--only VARIANT ...] [--url URL]

The same workload (``--blocks`` blocks of ``--per-block`` ERC20 Transfers,
indexed from block 1 to the head with ``max_reorg_depth: 0``, the handler
of ``bench/projects/fields/handlers.py``: two get/set per event) in
variants that differ only in what they ask of the node (``_fields/runs.py``):

* ``none``: nothing selected (logs, and nothing else: far from the head
  not even headers, as the JSON-RPC logs carry ``blockTimestamp``);
* ``tx``: the 11 transaction keys of the transaction itself: the blocks
  with logs fetched with their transactions;
* ``tx_receipts``: all 14 keys: the same, plus ``eth_getBlockReceipts``;
* ``block_fields``: two block keys: the headers of the blocks with logs;
* ``block_handler``: nothing selected, and ``@on_block`` every block
  (``projects/fields/with_block.py``): every header, a checkpoint per block.

The chain is ``indexer.testing``'s scripted JSON-RPC node, served over HTTP
by a child process (``--serve``); the indexer runs in this process.  The
order of the variants rotates between repetitions; each run uses a fresh
schema (dropped after) and its tables are checked against the chain.
Output: a Markdown table on stdout, ``bench/results/fields.json`` (every run,
medians, ratios to ``none`` within each repetition, the machine) and
``bench/results/fields.md``.  Exit status 1 if a run failed or was wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio
from _fields.report import markdown, summarize
from _fields.runs import BY_NAME, VARIANTS, Server, orders, run_variant
from _machine import machine_info, src_hash
from _paths import RESULTS, WORK
from _pg import drop_schema

from indexer.persist import start_embedded


async def _serve(blocks: int, per_block: int) -> None:
    """The ``--serve`` child: print the URL, serve until stdin closes."""
    from _fields.chain import build_chain

    from indexer.testing import open_rpc_server

    async with open_rpc_server(build_chain(blocks, per_block)) as server:
        print(server.url, flush=True)
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


async def _bench(args: argparse.Namespace, url: str, rpc: str) -> list[dict[str, Any]]:
    work = args.work_dir / "fields"
    tag = f"fs{os.getpid()}"
    records = []
    started = time.perf_counter()
    # Unrecorded: the first run in a process also pays for imports and warm caches.
    jobs = [(0, "none")] * args.warmup + list(orders(args.only, args.runs))
    for rep, name in jobs:
        schema = f"{tag}_{rep}_{name}"
        try:
            record = await run_variant(
                work, url, schema, rpc, args.blocks, args.per_block, BY_NAME[name]
            )
        except Exception as exc:
            record = {"variant": name, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            drop_schema(url, schema)
        record["rep"] = rep
        if rep:
            records.append(record)
        eps = record.get("events_per_second")
        print(
            f"[{time.perf_counter() - started:7.1f}s] rep {rep} {name}: "
            + (f"{eps:,.0f} events/s" if eps else "-")
            + (f" FAILED: {record['error']}" if record.get("error") else ""),
            flush=True,
        )
    return records


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--serve"]:
        trio.run(_serve, int(argv[1]), int(argv[2]))
        return 0
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=5, help="repetitions (default 5)")
    p.add_argument("--blocks", type=int, default=4_000, help="blocks (default 4,000)")
    p.add_argument("--per-block", type=int, default=10, help="Transfers per block (default 10)")
    p.add_argument(
        "--only", nargs="+", choices=[v.name for v in VARIANTS], default=[v.name for v in VARIANTS]
    )
    p.add_argument(
        "--url", default=None, help="PostgreSQL URL (default: an embedded server in the work dir)"
    )
    p.add_argument("--work-dir", type=Path, default=WORK)
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument("--warmup", type=int, default=1, help="unrecorded `none` runs first (default 1)")
    p.add_argument("--note", default="", help="a line added to the report (e.g. the load)")
    args = p.parse_args(argv)
    if args.blocks < 1 or args.per_block < 1 or args.runs < 1:
        p.error("--blocks, --per-block and --runs must be at least 1")
    if "none" not in args.only:
        args.only.insert(0, "none")  # the ratios' reference
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    args.work_dir = args.work_dir.resolve()
    url = args.url or start_embedded(args.work_dir / "pgdata")
    code_before = src_hash()
    machine = machine_info(url)
    started = time.perf_counter()
    server = Server(args.blocks, args.per_block)
    try:
        records = trio.run(_bench, args, url, server.url)
    finally:
        server.stop()
    with contextlib.suppress(OSError):
        machine["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results: dict[str, Any] = {
        "benchmark": "fields",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        # A URL may hold a password: the command shows where it was given, not what.
        "command": "python bench/fields.py "
        + " ".join("URL" if i and argv[i - 1] == "--url" else a for i, a in enumerate(argv)),
        "params": {"runs": args.runs, "blocks": args.blocks, "per_block": args.per_block},
        "src_hash": code_before,
        "src_hash_at_end": src_hash(),
        "machine": machine,
        "note": args.note,
        "summary": summarize(records),
        "runs": records,
        "wall_seconds": time.perf_counter() - started,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "fields.json").write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    (args.results_dir / "fields.md").write_text(table)
    print()
    print(table)
    errors = [r for r in records if r.get("error")]
    for r in errors:
        print(f"ERROR: rep {r['rep']} {r['variant']}: {r['error']}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
