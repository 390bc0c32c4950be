"""Everything processed gets committed once the chain goes quiet.

The processing loop hands batches to the writer over an unbuffered channel
(``runtime/_handoff.py``).  While the writer is busy with a write, the batch
stays pending in the loop, merged with the next ones.  A pending batch used
to be handed over only with the next range, so if no range came because the
chain was quiet, it was not committed: ``progress_block`` stayed behind the
blocks processed until the next block arrived or the run stopped.

Here a write is held up (with the ``pre_write`` hook) until two more blocks
are processed; then no block comes for a while.
This was a bug (found by these tests); the loop now hands a pending batch
over when no range comes before it is due (``_Runner._next_range``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from indexer import RunOptions, RunStatus, RunSummary, load_config, load_handlers, run_project

from ._indexer import write_project

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from indexer.persist import Changeset

    from ._indexer import Followed
    from ._node import Traffic

pytestmark = pytest.mark.anvil


class Watch:
    """The run's reporter: the latest status, and a wake-up on every report."""

    def __init__(self) -> None:
        self.processed = -1
        self.committed = -1
        self._changed = trio.Event()

    def __call__(self, status: RunStatus) -> None:
        (chain,) = status.chains
        self.processed, self.committed = chain.processed_block, chain.committed_block
        self._changed.set()
        self._changed = trio.Event()

    async def until(self, check: Callable[[], bool]) -> None:
        while not check():
            await self._changed.wait()


async def test_everything_processed_is_committed_when_the_chain_goes_quiet(
    token_chain: Callable[[int, int], tuple[Followed, Traffic]],
    tmp_path: Path,
    database_url: str,
    schema: str,
) -> None:
    chain, traffic = token_chain(31337, 41)
    start = chain.node.head()
    end = start + 4
    project = write_project(
        tmp_path / "project", schema, [chain], poll_interval=0.05, end_block=end
    )
    config = load_config(project)
    handlers = load_handlers(config)
    hold, writing, release = False, trio.Event(), trio.Event()

    async def pre_write(_write: Changeset) -> None:
        if hold:
            writing.set()
            with trio.move_on_after(20):
                await release.wait()

    watch = Watch()
    summaries: list[RunSummary] = []
    options = RunOptions(
        database_url=database_url,
        handle_signals=False,
        reporter=watch,
        report_interval=0.02,
        pre_write=pre_write,
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                summaries.append(await run_project(config, handlers, options))

            nursery.start_soon(run)
            await watch.until(lambda: watch.committed == start)
            hold = True
            # Block 1 is being written (held up by pre_write) while block 2
            # waits in the channel's slot, and block 3, which cannot be handed
            # over, stays pending.  Then the chain is quiet for a while.
            await trio.to_thread.run_sync(traffic.blocks, 1)
            await writing.wait()
            for block in (start + 2, start + 3):
                await trio.to_thread.run_sync(traffic.blocks, 1)
                await watch.until(lambda: watch.processed == block)  # noqa: B023
            hold = False
            release.set()
            # Block 1's write ends now and block 2's follows at once.
            with trio.move_on_after(4):
                await watch.until(lambda: watch.committed == start + 3)
            quiet = (watch.processed, watch.committed)
            await trio.to_thread.run_sync(traffic.blocks, 1)  # the end block: the run ends
    (summary,) = summaries
    assert summary.chains[chain.chain_id][0] == end
    assert quiet == (start + 3, start + 3)
