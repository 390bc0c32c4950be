"""``Walk``: the blocks of one range in order, with their checkpoints, seals and block handlers.

The processor runs log handlers; whenever the block changes it asks the
walk to close the block it was in and to open the next one.  In between,
the walk visits the blocks that have no logs but still need a checkpoint:
within the reorg window every block (so its hash is stored), and the blocks
at which block handlers run, which get a checkpoint of their own so that a
rollback to below them undoes what the handlers wrote.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ..persist import CheckpointRow
from ._failures import handler_failure

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from ..handlers import Block, BlockHandler
    from ..sources import BlockRange
    from ..store import Store
    from ._context import StoreContext

__all__ = ["Walk"]


class Walk:
    """Where processing of a range is: the current block, its checkpoint id, the rows so far."""

    def __init__(
        self,
        rng: BlockRange,
        store: Store,
        ctx: StoreContext,
        handlers: tuple[BlockHandler, ...],
        *,
        seal_every_block: bool,
    ) -> None:
        self.chain_id = rng.chain_id
        self.store, self.ctx = store, ctx
        self.handlers = handlers
        self.seal_every_block = seal_every_block
        self.hashes = rng.hashes
        self.blocks: Mapping[int, Block] = rng.blocks or {}
        self.cp = store.processed
        self.block = -1
        self.block_hash: str | None = None
        self.checkpoints: list[CheckpointRow] = []
        # Within the reorg window every block gets a checkpoint, events or
        # not, so that its hash is stored; elsewhere only blocks with events
        # (and those where block handlers run).
        self._empty: Iterator[int] = (
            iter(range(rng.first, rng.last + 1)) if self.hashes is not None else iter(())
        )
        self._next_empty = next(self._empty, None)
        self._due: Iterator[int] = iter(sorted(self.blocks))
        self._next_due = next(self._due, None)

    async def enter(self, number: int, block_hash: str | None, events: int) -> None:
        """Close the current block (it had ``events`` logs) and open ``number``, which has logs."""
        await self._close(events)
        await self._visit_until(number)
        if self._next_empty == number:
            self._next_empty = next(self._empty, None)
        self._open(number, block_hash)

    async def finish(self, last: int, events: int) -> None:
        """Close the current block and visit the rest of the range, through ``last``."""
        await self._close(events)
        await self._visit_until(last + 1)
        self.store.processed = self.cp

    def _open(self, number: int, block_hash: str | None) -> None:
        if self.seal_every_block:
            self.store.seal()
        self.cp += 1
        self.block, self.block_hash = number, block_hash
        self.ctx._cp, self.ctx._block = self.cp, number
        self.store.processed = self.cp

    async def _close(self, events: int) -> None:
        if self.block < 0:
            return
        if self.block == self._next_due:
            await self._run_handlers(self.block)
        if self.seal_every_block:
            self.checkpoints.append(
                CheckpointRow(self.cp, self.chain_id, self.block, self.block_hash, events)
            )
        self.block = -1

    async def _visit_until(self, number: int) -> None:
        """Visit the blocks below ``number`` that need a checkpoint though they have no logs."""
        while True:
            due, empty = self._next_due, self._next_empty
            candidates = [n for n in (due, empty) if n is not None and n < number]
            if not candidates:
                return
            n = min(candidates)
            if n == empty:
                self._next_empty = next(self._empty, None)
            if n != due:
                # A block of the window without logs: its hash is all it holds.
                assert self.hashes is not None
                self.cp += 1
                self.checkpoints.append(CheckpointRow(self.cp, self.chain_id, n, self.hashes[n], 0))
                continue
            self._open(n, self.blocks[n].hash)
            await self._close(0)

    async def _run_handlers(self, number: int) -> None:
        block = self.blocks[number]
        self._next_due = next(self._due, None)
        self.ctx._log = -1  # a registration by a block handler is recorded at log -1
        for handler in self.handlers:
            if not handler.runs_at(number):
                continue
            try:
                await handler.fn(block, self.ctx)
            except Exception as exc:
                failure = handler_failure(
                    exc,
                    functools.partial(_where, handler, number),
                    f"chain {self.chain_id} block {number} (block handler)",
                )
                if failure is None:
                    raise
                raise failure from exc


def _where(handler: BlockHandler, number: int, what: str) -> str:
    code = getattr(handler.fn, "__code__", None)
    origin = f" ({code.co_filename}:{code.co_firstlineno})" if code else ""
    name = getattr(handler.fn, "__qualname__", handler.fn)
    return (
        f"block handler {name}{origin} failed at chain {handler.chain_id} block {number}: {what}. "
        f"Nothing of this batch was committed; fix the handler and run again to resume from the "
        f"last committed block."
    )
