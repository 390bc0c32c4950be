"""Benchmark: the rollback of a 64-block reorg touching ~10,000 entities.

    python bench/rollback.py [--runs N] [--entities N] [--depth N] [--url URL]

The chain (``indexer.testing.ScriptedChain``, chain id 1, served in-process by
``open_rpc_server``) has ``--history-blocks`` (200) blocks of older history,
then ``--depth`` (64) blocks ending at the head that hold ``--entities / 2``
ERC20 Transfers between fresh holders: every transfer touches two Account
entities no other transfer in those blocks touches, so the last ``--depth``
blocks touch ``--entities`` distinct accounts (plus the 2 Token rows).  The
older history touches three quarters of the same accounts first, so the
rollback has to do all four things a rollback does:

* ``i % 4 == 0``: minted v earlier, sends v in the window -> balance 0, the row
  is deleted; the rollback re-inserts it (and deletes the created receiver);
* ``i % 4 == 1``: minted 2v earlier, sends v -> updated; restored to the old value;
* ``i % 4 == 2``: the receiver was minted earlier -> updated; the sender is new;
* ``i % 4 == 3``: both are new -> both rows deleted by the rollback.

The rollback scenario uses the reorg tests' handler,
``bench/projects/token_holders/handlers.py`` (``tests/_chains.py`` runs the
same file): Account per (token, holder), deleted at balance 0; Token with a
live ``ctx.find`` holder count.  Its oracle is ``oracle.py`` beside it.

Each repetition (``--runs``, each on fresh schemas and a freshly built chain):

1. ``hist``: the chain indexed with ``max_reorg_depth: 100`` and ``end_block``
   = head, so the last 100 blocks (all the transfers of the window and some of
   the older history) are indexed with history on (the *first run*).  Then
   ``chain.reorg(depth, <a few transfers>)``, one more block, ``end_block`` =
   the new head, and a second run: it finds its stored tip gone on start,
   rolls back to the block below the fork, and indexes the new branch.  The
   rollback's seconds and restored rows come from ``RunSummary.rollbacks``
   (drain + rollback transaction + memory apply, on Trio's clock); the whole
   second run is timed too.  The restored rows must equal the distinct
   entities of the replaced blocks, and the tables must equal an independent
   computation over the final canonical chain.
2. ``nohist``: the same chain indexed with ``max_reorg_depth: 0`` (no headers,
   no checkpoint rows, no before-images): the baseline for the cost of history.
3. ``hist-example`` / ``nohist-example``: 1 and 2's first run with the
   example's handler (``bench/projects/erc20``: two get/set per event, no
   ``ctx.find``).  The tests' handler rebuilds a sorted list of the token's
   holders on every event (thousands here), which dominates its first run;
   with the light handler the framework's own cost of history shows.

The order of the four rotates between repetitions.  Then ``--breakdown``
(3) extra repetitions index the chain with history as in 1 and call the
framework's own ``execute_rollback`` directly, on a connection whose cursor
times every statement (and the fetch of its rows), then apply the result to
a cold ``Store`` (as in the restart case, where memory holds nothing yet):
where the rollback's time goes.  Those rolled-back tables are compared with
the computation over the chain up to the fork.

Everything runs in this process (indexer, RPC server and the oracle share one
Trio loop and one core; PostgreSQL has the other).  Output: a Markdown table
on stdout and ``bench/results/rollback.json`` (every run, medians, machine).
Exit status 1 if a run failed or produced wrong tables.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from _machine import machine_info, src_hash
from _paths import RESULTS, WORK
from _rollback.chain import BRANCH_TRANSFERS
from _rollback.project import WINDOW
from _rollback.report import markdown, summarize
from _rollback.runs import Bench

from indexer.persist import start_embedded

if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_WORK_DIR = WORK
DEFAULT_RESULTS = RESULTS / "rollback.json"


FIRST_RUN_KINDS = ("nohist", "hist", "nohist-example", "hist-example")


def _orders(runs: int) -> Iterator[tuple[int, str]]:
    """Every repetition runs every kind once; the order rotates between repetitions."""
    n = len(FIRST_RUN_KINDS)
    for rep in range(1, runs + 1):
        shift = (rep - 1) % n
        for kind in FIRST_RUN_KINDS[shift:] + FIRST_RUN_KINDS[:shift]:
            yield rep, kind


async def bench_main(bench: Bench) -> list[dict[str, Any]]:
    jobs = list(_orders(bench.args.runs))
    jobs += [(rep, "breakdown") for rep in range(1, bench.args.breakdown + 1)]
    records = []
    for rep, kind in jobs:
        if kind == "hist":
            records.append(await bench.hist(rep))
        elif kind == "breakdown":
            records.append(await bench.breakdown(rep))
        else:
            records.append(await bench.first_only(rep, kind))
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=5, help="repetitions (default 5)")
    p.add_argument(
        "--entities",
        type=int,
        default=10_000,
        help="distinct accounts the reorganised blocks touch (default 10,000)",
    )
    p.add_argument("--depth", type=int, default=64, help="reorg depth in blocks (default 64)")
    p.add_argument(
        "--history-blocks",
        type=int,
        default=200,
        help="blocks of older history below the reorganised ones (default 200)",
    )
    p.add_argument(
        "--breakdown",
        type=int,
        default=3,
        metavar="N",
        help="extra runs timing the pieces of the rollback transaction (default 3; 0: none)",
    )
    p.add_argument(
        "--url", default=None, help="PostgreSQL URL (default: an embedded server in the work dir)"
    )
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the JSON file to write")
    p.add_argument("-v", "--verbose", action="store_true", help="show the framework's warnings")
    args = p.parse_args(argv)
    if not 1 <= args.depth < WINDOW:
        p.error(f"--depth must be in 1..{WINDOW - 1} (the runs use max_reorg_depth {WINDOW})")
    if args.entities < 8 or args.history_blocks < 1 or args.runs < 1:
        p.error("--entities must be at least 8, --history-blocks and --runs at least 1")
    logging.basicConfig(
        level=logging.WARNING if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    args.work_dir = args.work_dir.resolve()
    url = args.url or start_embedded(args.work_dir / "pgdata")
    bench = Bench(args, url)
    shutil.rmtree(bench.work, ignore_errors=True)
    code_before = src_hash()
    machine = machine_info(url)
    shape = bench.shape
    bench.log(
        f"{machine.get('postgres')}; chain: head {shape.head}, {shape.pairs:,} transfers in blocks "
        f"{shape.fork}..{shape.head} (reorg depth {shape.depth}), older history in 1..{shape.fork - 1}"
    )
    records = trio.run(bench_main, bench)
    code_after = src_hash()
    with contextlib.suppress(OSError):
        machine["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results: dict[str, Any] = {
        "benchmark": "rollback",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/rollback.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "params": {
            "runs": args.runs,
            "entities": args.entities,
            "depth": args.depth,
            "history_blocks": args.history_blocks,
            "max_reorg_depth": WINDOW,
            "transfers_in_reorged_blocks": shape.pairs,
            "branch_transfers": min(BRANCH_TRANSFERS, shape.pairs),
            "breakdown_runs": args.breakdown,
        },
        # The framework is imported once, at the start: the code measured is src_hash's
        # (src/ is edited concurrently; a different hash at the end is noted, not fatal).
        "src_hash": code_before,
        "src_hash_at_end": code_after,
        "machine": machine,
        "summary": summarize(records),
        "runs": records,
        "errors": bench.errors,
        "wall_seconds": time.perf_counter() - bench.started,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.results.with_name(args.results.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(args.results)
    print()
    print(markdown(results))
    bench.log(f"wrote {args.results}")
    for err in bench.errors:
        print(f"ERROR: {err}", file=sys.stderr)
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
