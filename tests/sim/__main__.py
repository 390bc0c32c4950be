"""Run any number of simulation seeds: ``python -m tests.sim --seeds 200 [--first 1000]``.

From the repository root.  Starts its own embedded PostgreSQL unless
``--url`` (or ``INDEXER_TEST_DATABASE_URL``) names a server.  Prints one
line per seed and, at the end, ``N seeds, all matched`` or the failing seeds
with how to replay each.  Exit status 0 when every seed matched.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import trio

from ._harness import SimulationFailure, replay_command, simulate


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=20, help="how many seeds (default 20)")
    p.add_argument("--first", type=int, default=0, help="the first seed (default 0)")
    p.add_argument(
        "--url",
        default=os.environ.get("INDEXER_TEST_DATABASE_URL") or None,
        help="PostgreSQL to use (default: INDEXER_TEST_DATABASE_URL, else an embedded server)",
    )
    p.add_argument("--verbose", action="store_true", help="narrate each seed as it runs")
    p.add_argument(
        "--cli-debug",
        action="store_true",
        help="run `indexer run` with --debug, so a failing run's stderr has the traceback",
    )
    p.add_argument(
        "--at-once",
        type=int,
        default=4,
        help="seeds played at the same time (default 4; each mostly waits on real time)",
    )
    p.add_argument("--stop-on-failure", action="store_true", help="stop at the first failing seed")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep every seed's directory (project and run logs), not only failing ones",
    )
    return p


def _remove_unless(keep: list[bool], root: Path) -> None:
    if not keep[0]:
        shutil.rmtree(root, ignore_errors=True)


async def _play_all(
    args: argparse.Namespace, seeds: range, url: str, root: Path, failed: list[int]
) -> int:
    """Play ``seeds``, ``--at-once`` at a time; return how many were played to the end."""
    played = 0
    limiter = trio.CapacityLimiter(max(1, args.at_once))

    async def play(seed: int, cancel: trio.CancelScope) -> None:
        nonlocal played
        workdir = root / f"seed-{seed}"
        log = partial(print, f"[{seed}]") if args.verbose else None
        try:
            outcome = await simulate(seed, url, workdir, log=log, cli_debug=args.cli_debug)
        except SimulationFailure as exc:
            played += 1
            failed.append(seed)
            print(f"seed {seed}: FAILED\n{exc}", flush=True)
            if args.stop_on_failure:
                cancel.cancel()
            return
        finally:
            limiter.release_on_behalf_of(seed)
        played += 1
        print(outcome.summary(), flush=True)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    async with trio.open_nursery() as nursery:
        for seed in seeds:
            await limiter.acquire_on_behalf_of(seed)
            nursery.start_soon(play, seed, nursery.cancel_scope)
    failed.sort()
    return played


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="indexer-sim-"))
    keep_root = [True]
    # Registered before the embedded server's own exit hook, so it runs after
    # the server has stopped: then its data directory can go too.
    atexit.register(_remove_unless, keep_root, root)
    url = args.url
    if not url:
        from indexer.testing import start_embedded

        url = start_embedded(root / "pgdata")
    failed: list[int] = []
    started = time.monotonic()
    seeds = range(args.first, args.first + args.seeds)
    ran = trio.run(partial(_play_all, args, seeds, url, root, failed))
    took = time.monotonic() - started
    if failed:
        print(f"{ran} seeds in {took:.0f}s, {len(failed)} failed: {failed}")
        for seed in failed:
            print(f"  replay: {replay_command(seed)}")
        print(f"logs under {root}")
        return 1
    print(f"{ran} seeds, all matched ({took:.0f}s)")
    keep_root[0] = args.keep
    return 0


if __name__ == "__main__":
    sys.exit(main())
