"""The writer task: commits processed batches in the background.

The processing loop hands over :class:`Batch` descriptors through a memory
channel.  The writer takes one, coalesces every other batch already waiting
(one transaction for all of them), snapshots the store *synchronously* (so
the snapshot is consistent even while handlers run between awaits), writes
it in a worker thread, and only after COMMIT advances the committed
frontier.  A failed write raises out of :meth:`Writer.serve`, which cancels
the nursery that owns both tasks; the transaction was rolled back, so the
database still holds the previous committed checkpoint.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .._errors import DatabaseError
from .._metrics import Metrics
from ._effects import count_effect_rows
from ._retry import RetryPolicy, is_transient
from ._rollback import Rollback, execute_rollback
from ._schema import read_state
from ._write import ChainProgress, CheckpointRow, Write, committed_checkpoint, execute_write

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..store import Store
    from ._connection import Session

__all__ = ["DEFAULT_MIN_INTERVAL", "Batch", "Writer", "open_batch_channel"]

log = logging.getLogger("indexer.persist")
T = TypeVar("T")

# Half a second between write starts: long enough that hot entities are
# written once per window rather than once per batch (measured in
# docs/design.md), short enough that the committed frontier trails
# processing by about a second.
DEFAULT_MIN_INTERVAL = 0.5


@dataclass(slots=True)
class Batch:
    """Processed work not yet committed: checkpoints (first..upto] and chain progress."""

    upto: int
    chains: dict[int, ChainProgress]
    checkpoints: list[CheckpointRow] = field(default_factory=list)
    events: int = 0
    # Within some chain's reorg window: write history (see Write.history).
    history: bool = False
    # chain id -> highest final block (see Write.prune); newest wins.
    prune: dict[int, int] = field(default_factory=dict)
    raw: list[tuple[Any, ...]] = field(default_factory=list)

    def merge(self, later: Batch) -> Batch:
        assert later.upto >= self.upto
        chains = dict(self.chains)
        chains.update(later.chains)
        # A merged write with history anywhere writes history for all of it:
        # extra before-images are harmless, a missing one is not.
        return Batch(
            later.upto,
            chains,
            self.checkpoints + later.checkpoints,
            self.events + later.events,
            self.history or later.history,
            {**self.prune, **later.prune},
            self.raw + later.raw if later.raw else self.raw,
        )


class Writer:
    """Background writer of one store to one database session.

    Args:
        store: the store whose changes it persists.
        session: a connection opened for writing (see ``connect(writer=True)``).
        metrics: where to record write durations and sizes.
        fault: test hook passed to :func:`execute_write`.
        pre_write: test hook awaited in the Trio task after the snapshot and
            before the transaction (tests make writes slow with it, under
            Trio's mock clock).
        min_interval: least time between the starts of two writes while
            batches keep arriving; see :meth:`serve`.
        reconnect: opens a fresh writer session; with it, transient
            database errors are retried under ``retry`` (see ``_retry.py``).
        retry: how long and how fast to retry.
    """

    def __init__(
        self,
        store: Store,
        session: Session,
        *,
        metrics: Metrics | None = None,
        fault: Callable[[str], None] | None = None,
        pre_write: Callable[[Write], Awaitable[None]] | None = None,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        reconnect: Callable[[], Session] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.reconnect = reconnect
        self.retry = retry or RetryPolicy()
        self.retries = 0
        self.raw_written = 0
        # effect name -> rows in its table (== count(*) after every commit).
        self.effect_rows: dict[str, int] = {}
        self.store = store
        self.session = session
        self.metrics = metrics or Metrics()
        self.fault = fault
        self.pre_write = pre_write
        self.min_interval = min_interval
        self._last_start = -math.inf
        self._hurry: trio.CancelScope | None = None
        self._hurried = False
        self.writes = 0
        self.in_flight: Batch | None = None
        self.committed_blocks: dict[int, int] = {}
        self._limiter = trio.CapacityLimiter(1)
        self._commit_event = trio.Event()
        self.write_seconds = 0.0

    @property
    def committed(self) -> int:
        return self.store.committed

    async def wait_commit(self) -> None:
        """Wait until the next write commits."""
        await self._commit_event.wait()

    def hurry(self) -> None:
        """Start the next write now instead of waiting to coalesce more batches.

        The processing loop calls this before it waits for a commit (capacity
        rule, synchronous mode), so it never waits on the coalescing window.
        """
        self._hurried = True
        if self._hurry is not None:
            self._hurry.cancel()

    async def serve(
        self,
        receive: trio.MemoryReceiveChannel[Batch],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Write batches from ``receive`` until the channel is closed and drained."""
        task_status.started()
        with receive:  # no checkpoint on close (see runtime/_feed.py)
            async for first in receive:
                batch = await self._coalesce(first, receive)
                await self.write(batch)

    async def _coalesce(self, batch: Batch, receive: trio.MemoryReceiveChannel[Batch]) -> Batch:
        """Merge batches that arrive within ``min_interval`` of the previous write's start.

        Hot entities change in almost every batch; one write per interval
        instead of one per batch writes each of them once per interval.  The
        window closes early when the channel closes (final flush) or the loop
        calls :meth:`hurry`.
        """
        with trio.move_on_at(self._last_start + self.min_interval) as scope:
            self._hurry = scope
            if self._hurried:
                scope.cancel()
            try:
                while True:
                    batch = batch.merge(await receive.receive())
            except trio.EndOfChannel:
                pass
        self._hurry = None
        self._hurried = False
        while True:  # and whatever else is already queued
            try:
                batch = batch.merge(receive.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return batch

    async def write(self, batch: Batch) -> None:
        """Persist ``batch`` (and everything processed before it) in one transaction."""
        store = self.store
        if batch.upto < store.committed:
            raise AssertionError(
                f"batch up to {batch.upto} is older than committed {store.committed}"
            )
        write = Write(
            batch.upto,
            store.snapshot(batch.upto, history=batch.history),
            batch.chains,
            batch.checkpoints,
            history=batch.history,
            prune=batch.prune,
            raw=batch.raw,
            effects=store.effect_snapshot(batch.upto),
        )
        self.in_flight = batch
        self._last_start = trio.current_time()
        started = time.perf_counter()
        try:
            if self.pre_write is not None:
                await self.pre_write(write)
            landed = await self._persist(
                f"the write of {write.describe()}",
                lambda session: _write_and_confirm(session, write, self.fault),
                done=lambda session: committed_checkpoint(session) == write.upto,
            )
            if write.effects:
                if landed is None:
                    # Committed, but the answer (and which rows were new)
                    # was lost: count again.
                    names = list(write.effects)
                    counts = await self._persist(
                        "counting effect rows",
                        lambda session: _count_effects(session, names),
                        done=lambda _session: False,
                    )
                    assert counts is not None
                    self.effect_rows.update(counts)
                else:
                    for name, new in write.effects_inserted.items():
                        self.effect_rows[name] = self.effect_rows.get(name, 0) + new
                for name in write.effects:
                    self.metrics.effect_rows.labels(name).set(self.effect_rows[name])
        finally:
            self.in_flight = None
        elapsed = time.perf_counter() - started
        store.mark_committed(batch.upto)
        self.raw_written += len(batch.raw)
        self.writes += 1
        self.write_seconds += elapsed
        m = self.metrics
        m.write_seconds.observe(elapsed)
        m.write_rows.inc(write.rows)
        for chain_id, progress in batch.chains.items():
            self.committed_blocks[chain_id] = progress.block
            m.committed_block.labels(str(chain_id)).set(progress.block)
        event, self._commit_event = self._commit_event, trio.Event()
        event.set()

    async def rollback(self, chain_blocks: dict[int, int]) -> Rollback:
        """Undo every committed change above ``chain_blocks`` (chain -> last block kept).

        Only between writes, with everything processed committed (the
        caller drains first): the rollback is one transaction of its own,
        so no batch can carry it or repeat it.  Memory follows the database
        only after COMMIT; a failure leaves both as they were.
        """
        store = self.store
        assert self.in_flight is None, "rollback during a write"
        assert store.committed == store.processed, "rollback before the writer drained"
        specs = [t.spec for t in store.tables.values()]
        before = store.committed
        outcome = await self._persist(
            "the reorg rollback",
            lambda session: execute_rollback(
                session, specs, chain_blocks, committed=before, fault=self.fault
            ),
            done=lambda session: committed_checkpoint(session) != before,
        )
        if outcome is None:
            # The rollback committed but its answer was lost with the
            # connection.  Memory holds only committed data now, so it can
            # be dropped and reloaded from the database on demand.
            store.forget()
            state = await self._persist(
                "reading the state after a rollback",
                lambda session: read_state(session.conn, session.schema),
                done=lambda _session: False,
            )
            assert state is not None
            checkpoint, progress = state
            store.reset_frontiers(checkpoint)
            for chain_id, (block, _events) in progress.items():
                self.committed_blocks[chain_id] = block
            return Rollback(checkpoint, {}, progress)
        result = outcome
        by_table = {t.spec.table: t.spec.cls for t in store.tables.values()}
        store.rollback(
            result.checkpoint, {by_table[name]: rows for name, rows in result.restored.items()}
        )
        for chain_id, (block, _events) in result.progress.items():
            self.committed_blocks[chain_id] = block
        return result

    async def _persist(
        self,
        what: str,
        fn: Callable[[Session], T],
        *,
        done: Callable[[Session], bool],
    ) -> T | None:
        """Run ``fn`` in the worker thread; retry transient failures on a fresh connection.

        Before each retry ``done`` is asked whether the failed attempt did
        commit after all (connection lost during COMMIT); then the result is
        ``None`` instead of ``fn``'s.  Past the retry time, a DatabaseError.
        """
        started = trio.current_time()
        attempt = 0
        while True:
            try:
                if attempt and await trio.to_thread.run_sync(
                    done, self.session, limiter=self._limiter
                ):
                    return None
                return await trio.to_thread.run_sync(fn, self.session, limiter=self._limiter)
            except Exception as exc:
                if self.reconnect is None or not is_transient(exc):
                    raise
                attempt += 1
                elapsed = trio.current_time() - started
                if elapsed >= self.retry.seconds:
                    raise DatabaseError(
                        f"{what} failed {attempt} times over {elapsed:.1f}s with transient database errors; "
                        f"giving up (the limit is {self.retry.seconds:g}s). Last error: "
                        f"{type(exc).__name__}: {str(exc).strip()}. Nothing of it was committed; "
                        f"`indexer run` resumes from the last committed checkpoint."
                    ) from exc
                self.retries += 1
                self.metrics.write_retries.inc()
                delay = self.retry.delay(attempt)
                log.warning(
                    "%s failed (%s: %s); retry %d in %.2fs on a new connection",
                    what,
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                    attempt,
                    delay,
                )
                await trio.sleep(delay)
                await self._reconnect()

    async def _reconnect(self) -> None:
        assert self.reconnect is not None
        old, reconnect = self.session, self.reconnect
        await trio.to_thread.run_sync(_close_quietly, old, limiter=self._limiter)
        try:
            self.session = await trio.to_thread.run_sync(reconnect, limiter=self._limiter)
        except Exception as exc:
            # Still down (refused, or dropped while setting the connection
            # up): keep the closed session; the next attempt fails fast with
            # a transient error and comes back here, within the retry time.
            if not (isinstance(exc, DatabaseError) or is_transient(exc)):
                raise
            log.debug("reconnecting failed: %s", exc)


def _count_effects(session: Session, names: list[str]) -> dict[str, int]:
    return {name: count_effect_rows(session, name) for name in names}


def _write_and_confirm(session: Session, write: Write, fault: Callable[[str], None] | None) -> bool:
    execute_write(session, write, fault=fault)
    return True


def _close_quietly(session: Session) -> None:
    try:
        session.close()
    except Exception:
        log.debug("closing a broken connection failed", exc_info=True)


def open_batch_channel() -> tuple[trio.MemorySendChannel[Batch], trio.MemoryReceiveChannel[Batch]]:
    """The loop -> writer channel.

    One slot: the loop hands over with ``send_nowait`` and keeps merging into
    its own pending batch while the slot is taken, so it never blocks on the
    database; back-pressure comes from the capacity rule instead.
    """
    return trio.open_memory_channel[Batch](1)
