"""``python -m tools.mutate``: run the mutant list and report which test caught each one.

Exit status: 0 when every selected mutant was caught in every run; 1 when
any survived, timed out, was caught only in some runs (flaky) or could not
run; 2 when nothing could be measured (a stale mutant list, the copy not
imported, or the named tests failing on the unmutated tree).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

from . import _database, _report, _runner
from .mutants import MUTANTS, Mutant


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.mutate", description=__doc__.split("\n")[0])
    p.add_argument("--only", metavar="ID,ID", help="run only these mutants")
    p.add_argument("--fast", action="store_true", help="run only the subset CI runs")
    p.add_argument("--runs", type=int, default=1, metavar="N", help="repeat the list N times")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="mutants run at once")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="per mutant run")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write a JSON report")
    p.add_argument("--list", action="store_true", help="print the selected mutants and exit")
    args = p.parse_args(argv)
    if args.runs < 1 or args.jobs < 1:
        p.error("--runs and --jobs must be at least 1")
    return args


def _select(args: argparse.Namespace) -> list[Mutant]:
    chosen = [m for m in MUTANTS if m.fast or not args.fast]
    if args.only:
        wanted = [i.strip() for i in args.only.split(",") if i.strip()]
        unknown = set(wanted) - {m.id for m in MUTANTS}
        if unknown:
            sys.exit(f"unknown mutant ids: {', '.join(sorted(unknown))}")
        chosen = [m for m in chosen if m.id in wanted]
    return chosen


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    # The whole list is checked on every run, so that it stays true as the code moves.
    ids = [m.id for m in MUTANTS]
    stale = [f"{m.id}: {p}" for m in MUTANTS for p in _runner.problems(m)]
    stale += [f"{i}: duplicate id" for i in sorted({i for i in ids if ids.count(i) > 1})]
    if stale:
        _say("the mutant list does not match the code:\n  " + "\n  ".join(stale))
        return 2
    mutants = _select(args)
    if args.list:
        for m in mutants:
            _say(f"{m.id:34} {m.cls:13} {'fast ' if m.fast else ''}{m.why}")
        return 0
    started = time.monotonic()
    with _database.database() as (url, where):
        _say(f"database: {where}")
        problem = _runner.self_check(url)
        if problem:
            _say(f"self-check failed: {problem}")
            return 2
        _say("self-check: the process, a spawn child and a subprocess import the copy")
        named = list(dict.fromkeys(n for m in mutants for n in m.tests))
        found, problem = _runner.collect(named, url)
        if problem:
            _say(problem)
            return 2
        missing = {m.id: [n for n in m.tests if n not in found] for m in mutants}
        absent = [n for n in named if n not in found]
        if absent:
            _say("named tests that do not exist (yet), skipped:\n  " + "\n  ".join(absent))
        present = _runner.union(n for n in named if n in found)
        _say(f"baseline: {len(present)} test nodes on the unmutated tree ...")
        ok, tail, baseline_seconds = _runner.baseline(present, url, args.jobs)
        if not ok:
            _say(f"the named tests fail on the unmutated tree:\n{tail}")
            return 2
        _say(f"baseline passed in {baseline_seconds:.1f} s")
        results = _run_all(mutants, found, url, args)
    elapsed = time.monotonic() - started
    _say("\n" + _report.table(mutants, results) + "\n")
    _say(_report.summary(mutants, results, elapsed))
    if args.json:
        info = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "runs": args.runs,
            "jobs": args.jobs,
            "timeout": args.timeout,
            "baseline_seconds": round(baseline_seconds, 1),
            "total_seconds": round(elapsed, 1),
            "missing_tests": absent,
        }
        _report.write_json(args.json, mutants, results, missing, info)
    failing = [m for m in mutants if _report.verdict(results[m.id]) in _report.FAILING]
    return 1 if failing else 0


def _run_all(
    mutants: list[Mutant], found: set[str], url: str, args: argparse.Namespace
) -> dict[str, list[_runner.Outcome]]:
    results: dict[str, list[_runner.Outcome]] = {m.id: [] for m in mutants}
    total = len(mutants) * args.runs
    done = 0
    for run in range(1, args.runs + 1):
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {
                pool.submit(
                    _runner.run_mutant, m, [n for n in m.tests if n in found], url, args.timeout
                ): m
                for m in mutants
            }
            try:
                for future in as_completed(futures):
                    m, outcome = futures[future], future.result()
                    results[m.id].append(outcome)
                    done += 1
                    by = f" by {outcome.caught_by}" if outcome.caught_by else ""
                    _say(
                        f"[{done}/{total}] run {run}: {m.id}: {outcome.status}{by}"
                        f" ({outcome.seconds:.1f} s)"
                    )
                    if outcome.status == "error":
                        _say(outcome.detail)
            except BaseException:  # Ctrl-C: start nothing more, stop what runs
                pool.shutdown(wait=False, cancel_futures=True)
                _runner.kill_all()
                raise
    return results


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
