"""The benchmark suite: one command, JSON and a Markdown table out.

    python bench/run.py [--smoke] [--runs N] [--events N] [--url URL]
                        [--only WORKLOAD ...] [--skip-memory]

For each workload (``bench/workloads.py``: erc20-balances, erc20-unique, uniswap-v2) it
generates the log file (cached by parameters), then runs, in each of ``--runs``
repetitions and in an order that rotates between repetitions:

* ``background``: ``indexer run <project> --no-progress --reset`` (writes in the background),
  followed by ``resume``: the same command without ``--reset`` on the finished schema (it
  has nothing to do: it measures startup + resume);
* ``sync``: the same with ``--sync-writes`` (the loop awaits each write);
* ``floor``: ``bench/floor.py`` (read, decode, fold in a dict, one COPY).

Every run is a separate process, timed here (wall time, peak RSS and CPU time from
``os.wait4``); the framework's own figures (events, seconds, writes, stall time) come from
its summary lines.  After each run the resulting tables are checksummed and compared
with the floor's, then dropped.  Then one kill-and-resume per workload: a ``--reset`` run
is SIGKILLed after ~40 % of the median background process time, and the rerun is timed.

Memory runs (unless ``--skip-memory``): erc20-unique at
``INDEXER_TARGET_IN_MEMORY_ENTITIES`` = 10k / 100k / 1M on 1M events, and 5M events at
100k, with VmRSS sampled every 0.1 s from ``/proc/<pid>/status``.

Rollback (unless ``--skip-rollback``): ``bench/rollback.py`` runs as a child process with
the same repetitions and PostgreSQL (a 64-block reorg touching 10,002 rows; see
bench/README.md), writing ``<results-dir>/rollback.json``; its summary goes into
``results.json`` and the table.

Every framework run uses the same PostgreSQL: ``--url``, or one embedded server started
here for the whole suite (in ``<work-dir>/pgdata``), passed as ``INDEXER_DATABASE_URL``.

Output: ``bench/results/results.json`` (every raw run, summaries, machine),
``bench/results/results.md``, and ``docs/img/rss_over_time.png`` and
``docs/img/throughput.png`` (needs matplotlib).  ``--smoke``: tiny sizes, one repetition,
output in ``bench/results/smoke/``, no images under docs/.  Exit status 1 if any run
failed, processed a wrong number of events, or produced tables different from the floor's.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import workloads
from _paths import RESULTS, ROOT
from _suite.markdown import markdown
from _suite.phases import run_memory, run_rollback, run_workload
from _suite.plots import plot
from _suite.suite import Sizes, Suite


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--smoke", action="store_true", help="tiny sizes, 1 run: checks that the suite works"
    )
    p.add_argument("--runs", type=int, default=None, help="repetitions (default 3; smoke 1)")
    p.add_argument(
        "--events",
        type=int,
        default=None,
        help="events per workload (default 1,000,000; smoke 2,000)",
    )
    p.add_argument(
        "--url", default=None, help="PostgreSQL URL (default: an embedded server in the work dir)"
    )
    p.add_argument(
        "--only", nargs="+", choices=workloads.WORKLOADS, default=None, metavar="WORKLOAD"
    )
    p.add_argument("--skip-memory", action="store_true", help="skip the memory runs")
    p.add_argument("--skip-rollback", action="store_true", help="skip the reorg rollback benchmark")
    p.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run the framework from src/ as it is, not from a copy taken at the start",
    )
    p.add_argument("--work-dir", type=Path, default=workloads.DEFAULT_WORK_DIR)
    p.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="default bench/results (smoke: bench/results/smoke)",
    )
    p.add_argument(
        "--img-dir",
        type=Path,
        default=None,
        help="where the PNGs go (default docs/img; smoke: none)",
    )
    args = p.parse_args(argv)

    if args.smoke:
        sizes = Sizes(
            events=args.events or 2_000,
            runs=args.runs or 1,
            memory=[(20_000, 1_000), (20_000, 10_000), (20_000, 100_000), (40_000, 10_000)],
        )
    else:
        events = args.events or 1_000_000
        sizes = Sizes(
            events=events,
            runs=args.runs or 3,
            memory=[
                (events, 10_000),
                (events, 100_000),
                (events, 1_000_000),
                (5 * events, 100_000),
            ],
        )
    if args.results_dir is None:
        args.results_dir = RESULTS / ("smoke" if args.smoke else "")
    img_dir = (
        args.img_dir
        if args.img_dir is not None
        else (None if args.smoke else ROOT / "docs" / "img")
    )
    args.work_dir = args.work_dir.resolve()

    url = args.url
    if not url:
        from indexer.persist import start_embedded

        url = start_embedded(args.work_dir / "pgdata")
    suite = Suite(args, url, sizes)
    suite.log(
        f"PostgreSQL: {suite.results['machine'].get('postgres')}; results in {args.results_dir}"
    )
    for name in args.only or workloads.WORKLOADS:
        run_workload(suite, name)
    if not args.skip_memory:
        run_memory(suite)
    if not args.skip_rollback:
        run_rollback(suite)
    results = suite.results
    with contextlib.suppress(OSError):
        results["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    suite.save()
    md = markdown(results)
    (args.results_dir / "results.md").write_text(md)
    print(md)
    if img_dir is not None:
        for path in plot(results, img_dir):
            suite.log(f"wrote {path}")
    suite.save()
    return 1 if suite.errors else 0


if __name__ == "__main__":
    sys.exit(main())
