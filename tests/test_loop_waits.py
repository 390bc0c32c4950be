"""What the processing loop does while it waits: on a quiet chain, for room, for a growing head.

Whole runs against a scripted chain and a real PostgreSQL, under a mock
clock that moves only when the run is idle (``_gate.run_driven``), so the
moments below happen at the same virtual time in every run:

* a chain goes quiet with batches still pending in the loop: they are
  committed once due, not only when the next block arrives;
* the loop is over its memory target while a write is held in flight: it
  stops processing until that write commits;
* the chain grows while writes are held, so batches with different final
  blocks merge: history and checkpoint rows of blocks that became final are
  pruned by the write that carries the newest final block.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from indexer import RunOptions, RunStatus, load_config, load_handlers, run_project
from indexer.testing import RpcServer

from ._chains import (
    assert_same,
    expected,
    framework_rows,
    make_rpc_project,
    random_logs,
    scripted_chain,
    tables,
)
from ._gate import Gate, Hold, PacedTransport, run_driven

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from indexer import RunSummary
    from indexer.persist import Changeset
    from indexer.testing import ScriptedChain

_schemas = itertools.count()


@contextlib.contextmanager
def _project(end_block: int, depth: int) -> Iterator[tuple[Path, str]]:
    tmp = Path(tempfile.mkdtemp(prefix="loop-waits-"))
    schema = f"loop_waits_{next(_schemas)}"
    try:
        yield (
            make_rpc_project(
                tmp,
                schema,
                "http://scripted.invalid/",
                end_block=end_block,
                max_reorg_depth=depth,
                poll_interval=1.0,
            ),
            schema,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(
    project: Path,
    chain: ScriptedChain,
    url: str,
    beside: Callable[[], object] | None = None,
    **options: object,
) -> RunSummary:
    """Run ``project`` to its end under the driven clock; ``beside`` runs in the same nursery."""
    transport = PacedTransport(RpcServer(chain).transport())
    run_options = RunOptions(
        # No watchdog: its periodic check would hide a hang from drive_clock.
        stall_seconds=math.inf,
        database_url=url,
        reset=True,
        handle_signals=False,
        chunk_logs=1,
        rpc_tuning={"initial_span": 1, "max_span": 1, "client_options": {"transport": transport}},
        **options,  # type: ignore[arg-type]
    )
    config = load_config(project)
    handlers = load_handlers(config)

    async def main() -> RunSummary:
        async with trio.open_nursery() as nursery:
            if beside is not None:
                nursery.start_soon(beside)  # type: ignore[arg-type]
            return await run_project(config, handlers, run_options)

    return run_driven(main)


def test_a_quiet_chain_commits_the_batches_pending_in_the_loop(database_url: str) -> None:
    chain, rng = scripted_chain(7, head=6)
    reports: list[tuple[float, int, int]] = []

    def report(status: RunStatus) -> None:
        (c,) = status.chains
        reports.append((trio.current_time(), c.processed_block, c.committed_block))

    async def grow_later() -> None:
        # Nothing new for 30 s, then the blocks the run ends at.
        await trio.sleep(30)
        chain.advance(2, random_logs(rng, range(7, 9)))

    with _project(end_block=8, depth=0) as (project, schema):
        _run(project, chain, database_url, grow_later, reporter=report, report_interval=1.0)
        quiet = [(p, c) for t, p, c in reports if 5 <= t <= 29]
        assert quiet, reports
        # Everything processed before the chain went quiet was committed within
        # seconds, not only when block 7 arrived.
        assert all(p == c == 6 for p, c in quiet), reports
        assert_same("tables", tables(database_url, schema), expected(chain))


def test_the_loop_waits_for_a_write_in_flight_when_over_its_target(database_url: str) -> None:
    chain, _rng = scripted_chain(11, head=12)
    # The first batch goes to an idle writer, which holds it until the loop
    # has processed 6 more blocks or can go no further without the writer.
    # Over a target of 2 entities, with nothing left pending, the loop must
    # wait for that write: when it commits, nothing past its block was
    # processed.
    gate = Gate([Hold(6)])
    at_release: list[tuple[int, int]] = []

    async def hold(write: Changeset) -> None:
        await gate(write)
        at_release.append((write.chains[1].block, gate.processed()))

    with _project(end_block=12, depth=0) as (project, schema):
        _run(
            project,
            chain,
            database_url,
            pre_write=hold,
            metrics=gate.metrics,
            target=2,
            write_interval=0.0,
        )
        written_block, processed = at_release[0]
        assert processed == written_block, at_release
        assert_same("tables", tables(database_url, schema), expected(chain))


def test_merged_batches_prune_up_to_the_newest_final_block(database_url: str) -> None:
    chain, _rng = scripted_chain(5, head=8)
    depth = 3
    added = 12
    # Every write is held until 3 more blocks are processed: the batches that
    # merge meanwhile were fetched at different heads.
    gate = Gate([Hold(3)] * 20)

    async def grow() -> None:
        for block in range(9, 9 + added):
            await trio.sleep(1)
            chain.advance(1, random_logs(random.Random(block), range(block, block + 1)))

    with _project(end_block=8 + added, depth=depth) as (project, schema):
        _run(
            project,
            chain,
            database_url,
            grow,
            pre_write=gate,
            metrics=gate.metrics,
            write_interval=0.0,
        )
        # The last write carried final block head - depth; no checkpoint row
        # (and no history) below the last checkpoint at or before it survives.
        final = chain.head - depth
        blocks = [
            b
            for (b,) in framework_rows(
                database_url, schema, "SELECT block_number FROM {}._indexer_checkpoints"
            )
        ]
        assert blocks, "no checkpoint rows"
        assert min(blocks) == max(b for b in blocks if b <= final), (sorted(blocks), final)
        ((oldest_history,),) = framework_rows(
            database_url, schema, "SELECT min(_checkpoint) FROM {}._indexer_h_account"
        )
        ((oldest_checkpoint,),) = framework_rows(
            database_url, schema, "SELECT min(id) FROM {}._indexer_checkpoints"
        )
        assert oldest_history is None or oldest_history >= oldest_checkpoint
        assert_same("tables", tables(database_url, schema), expected(chain))
