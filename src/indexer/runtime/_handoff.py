"""Handing batches from the processing loop to the writer: the one place they merge.

The loop and the writer task are connected by an *unbuffered* memory
channel: a send completes only when the writer is waiting for work, so a
batch is never parked behind a write in progress.  While the writer is
busy, or until ``min_interval`` has passed since the last hand-over, the
loop merges each new batch into its pending one and carries on
processing; the writer therefore always takes everything processed so
far, in one transaction.  Hot entities (WETH holders, routers) change in
almost every batch: one write per interval instead of one per batch
writes each of them once per interval (docs/design.md has the numbers).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio

from ._batch import Batch

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..store import Store

__all__ = ["DEFAULT_MIN_INTERVAL", "Handoff", "open_batch_channel"]

# Half a second between hand-overs: long enough that hot entities are
# written once per window rather than once per batch, short enough that the
# committed frontier trails processing by about a second.
DEFAULT_MIN_INTERVAL = 0.5
# Catching up (a batch of final blocks only: behind the reorg window, or from
# files) with memory to spare, hand-overs are this many times further apart:
# each hot entity is written a quarter as often, and on 280k transfers over
# JSON-RPC PostgreSQL used 0.5-1.2 s of CPU instead of 2.3-3.0 s
# (docs/performance.md), CPU the 2-core machine's other processes want.  At
# the head latency wins; near the memory target, so does writing often: held
# changes then made the capacity rule stall the loop (2-2.7 s of a 1M-event
# file run).
CATCH_UP_FACTOR = 4


def open_batch_channel() -> tuple[trio.MemorySendChannel[Batch], trio.MemoryReceiveChannel[Batch]]:
    """The loop -> writer channel: unbuffered, so a batch waits in the loop, where it merges."""
    return trio.open_memory_channel[Batch](0)


class Handoff:
    """The loop's side of the channel: its pending batch and when to hand it over.

    Args:
        send: the channel to the writer.
        min_interval: least time between two hand-overs while batches keep
            coming (forced hand-overs ignore it); ``CATCH_UP_FACTOR`` times
            that while the pending batch holds only final blocks and
            ``roomy()`` (memory to spare) holds.
        store: told of each hand-over before the loop processes on
            (``Store.mark_handed``): the writer snapshots the batch at its
            checkpoint when it next runs, possibly ranges later.
    """

    def __init__(
        self,
        send: trio.MemorySendChannel[Batch],
        store: Store,
        min_interval: float,
        roomy: Callable[[], bool] = lambda: True,
    ) -> None:
        self._send = send
        self._store = store
        self.min_interval = min_interval
        self._roomy = roomy
        self.pending: Batch | None = None
        # Highest checkpoint handed to the writer (committed or in flight).
        self.sent_upto = 0
        self._last = -math.inf

    def offer(self, batch: Batch) -> None:
        """Add ``batch``; hand everything over if the writer is idle and the interval is up."""
        self.pending = batch if self.pending is None else self.pending.merge(batch)
        if trio.current_time() < self.due:
            return
        try:
            self._send.send_nowait(self.pending)
        except (trio.WouldBlock, trio.BrokenResourceError):
            # Busy: keep merging.  Broken: the writer failed, and its error
            # is about to cancel the loop.
            return
        self._handed(self.pending)

    @property
    def due(self) -> float:
        """When an idle loop should hand its pending batch over (``inf`` with none)."""
        pending = self.pending
        if pending is None:
            return math.inf
        factor = 1 if pending.history or not self._roomy() else CATCH_UP_FACTOR
        return self._last + self.min_interval * factor

    async def flush(self) -> None:
        """Hand the pending batch over now, waiting for the writer to take it.

        If the writer has died, wait for its error: the writer's failure
        cancels this task's nursery, and raising BrokenResourceError here
        instead would add a second, misleading exception to the group the
        user sees.
        """
        if self.pending is not None and not await self._try_send(self.pending):
            await trio.sleep_forever()

    async def close(self) -> None:
        """The final flush: hand over what is pending, then close the channel.

        The caller shields it.  A dead writer is not waited for here: its
        error is already on its way out of the nursery.
        """
        if self.pending is not None:
            await self._try_send(self.pending)
        self._send.close()

    async def _try_send(self, batch: Batch) -> bool:
        try:
            await self._send.send(batch)
        except trio.BrokenResourceError:
            return False
        self._handed(batch)
        return True

    def _handed(self, batch: Batch) -> None:
        self.sent_upto, self.pending = batch.upto, None
        self._last = trio.current_time()
        self._store.mark_handed()
