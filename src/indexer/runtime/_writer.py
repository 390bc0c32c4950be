"""The writer task: commits the loop's batches in the background.

The processing loop hands over :class:`Batch` descriptors through an
unbuffered channel (see ``_handoff.py``).  For each one the writer
snapshots the store *synchronously* (so the snapshot is consistent even
while handlers run between awaits) into a :class:`~indexer.persist.Changeset`,
commits it through persist's ``RetryingSession`` in a worker thread, and
only after COMMIT advances the store's committed frontier.  A failed write
raises out of :meth:`Writer.serve`, which cancels the nursery that owns both
tasks; the transaction was rolled back, so the database still holds the
previous committed checkpoint.

The runtime owns the store: the processor advances ``processed``, this task
advances ``committed`` after each COMMIT, and :meth:`Writer.rollback`
applies a committed rollback to memory.  Persist only ever sees changesets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

import trio

from .._metrics import Metrics
from ..persist import (
    Changeset,
    Rollback,
    commit_changeset,
    committed_checkpoint,
    count_effect_rows,
    execute_rollback,
    read_children,
    read_state,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from ..persist import RetryingSession, Session
    from ..store import Store
    from ._batch import Batch

__all__ = ["Writer", "WriterStatistics"]


@dataclass(frozen=True, slots=True)
class WriterStatistics:
    """What the writer has done so far (a snapshot; see :meth:`Writer.statistics`)."""

    writes: int
    write_seconds: float
    retries: int
    # Raw-event rows committed (they count towards the memory target until then).
    raw_written: int
    # chain id -> last committed block.
    committed_blocks: Mapping[int, int]
    # effect name -> rows in its table (== count(*) after every commit).
    effect_rows: Mapping[str, int]


class Writer:
    """Background writer of one store through one retrying database session.

    Args:
        store: the store whose changes it commits.
        db: the writer's session (opened with ``connect(writer=True)``).
        committed_blocks: chain id -> last committed block, as read at start.
        effect_rows: effect name -> rows in its table, as counted at start.
        metrics: where to record write durations and sizes.
        fault: test hook passed to :func:`~indexer.persist.commit_changeset`.
        pre_write: test hook awaited in the Trio task after the snapshot and
            before the transaction (tests hold writes with it).
    """

    def __init__(
        self,
        store: Store,
        db: RetryingSession,
        *,
        committed_blocks: Mapping[int, int] | None = None,
        effect_rows: Mapping[str, int] | None = None,
        metrics: Metrics | None = None,
        fault: Callable[[str], None] | None = None,
        pre_write: Callable[[Changeset], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.db = db
        self.metrics = metrics or Metrics()
        self.fault = fault
        self.pre_write = pre_write
        self._committed_blocks = dict(committed_blocks or {})
        self._effect_rows = dict(effect_rows or {})
        for name, rows in self._effect_rows.items():
            self.metrics.effect_rows.labels(name).set(rows)
        self._writes = 0
        self._write_seconds = 0.0
        self._raw_written = 0
        self._in_flight = False
        self._commit_event = trio.Event()

    def statistics(self) -> WriterStatistics:
        return WriterStatistics(
            writes=self._writes,
            write_seconds=self._write_seconds,
            retries=self.db.retries,
            raw_written=self._raw_written,
            committed_blocks=MappingProxyType(dict(self._committed_blocks)),
            effect_rows=MappingProxyType(dict(self._effect_rows)),
        )

    async def wait_commit(self) -> None:
        """Wait until the next write commits."""
        await self._commit_event.wait()

    async def serve(
        self,
        receive: trio.MemoryReceiveChannel[Batch],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Write batches from ``receive`` until the channel is closed."""
        task_status.started()
        with receive:  # no checkpoint on close (see runtime/_feed.py)
            async for batch in receive:
                await self.write(batch)

    async def write(self, batch: Batch) -> None:
        """Commit ``batch`` (and everything processed before it) in one transaction."""
        store = self.store
        if batch.upto < store.committed:
            raise AssertionError(
                f"batch up to {batch.upto} is older than committed {store.committed}"
            )
        changes = Changeset(
            batch.upto,
            store.snapshot(batch.upto, history=batch.history),
            batch.chains,
            batch.checkpoints,
            history=batch.history,
            prune=batch.prune,
            raw=batch.raw,
            effects=store.effect_snapshot(batch.upto),
            children=batch.children,
        )
        self._in_flight = True
        started = time.perf_counter()
        try:
            if self.pre_write is not None:
                await self.pre_write(changes)
            fault = self.fault
            landed = await self.db.run(
                f"the write of {changes.describe()}",
                lambda session: _commit(session, changes, fault),
                done=lambda session: committed_checkpoint(session) == changes.upto,
            )
            if changes.effects:
                await self._count_effects(changes, lost=landed is None)
        finally:
            self._in_flight = False
        elapsed = time.perf_counter() - started
        store.mark_committed(batch.upto)
        self._raw_written += len(batch.raw)
        self._writes += 1
        self._write_seconds += elapsed
        m = self.metrics
        m.write_seconds.observe(elapsed)
        m.write_rows.inc(changes.rows)
        for chain_id, progress in batch.chains.items():
            self._committed_blocks[chain_id] = progress.block
            m.committed_block.labels(str(chain_id)).set(progress.block)
        event, self._commit_event = self._commit_event, trio.Event()
        event.set()

    async def _count_effects(self, changes: Changeset, *, lost: bool) -> None:
        if lost:
            # Committed, but the answer (and which rows were new) was lost:
            # count again.
            names = list(changes.effects)
            counts = await self.db.run(
                "counting effect rows", lambda session: _count_effects(session, names)
            )
            assert counts is not None
            self._effect_rows.update(counts)
        else:
            for name, new in changes.effects_inserted.items():
                self._effect_rows[name] = self._effect_rows.get(name, 0) + new
        for name in changes.effects:
            self.metrics.effect_rows.labels(name).set(self._effect_rows[name])

    async def rollback(self, chain_blocks: dict[int, int]) -> Rollback:
        """Undo every committed change above ``chain_blocks`` (chain -> last block kept).

        Only between writes, with everything processed committed (the
        caller drains first): the rollback is one transaction of its own,
        so no batch can carry it or repeat it.  Memory follows the database
        only after COMMIT; a failure leaves both as they were.
        """
        store = self.store
        assert not self._in_flight, "rollback during a write"
        assert store.committed == store.processed, "rollback before the writer drained"
        specs = [t.spec for t in store.tables.values()]
        before = store.committed
        fault = self.fault
        outcome = await self.db.run(
            "the reorg rollback",
            lambda session: execute_rollback(
                session, specs, chain_blocks, committed=before, fault=fault
            ),
            done=lambda session: committed_checkpoint(session) != before,
        )
        if outcome is None:
            # The rollback committed but its answer was lost with the
            # connection.  Memory holds only committed data now, so it can
            # be dropped and reloaded from the database on demand.
            store.forget()
            state = await self.db.run(
                "reading the state after a rollback",
                lambda session: (
                    read_state(session.conn, session.schema),
                    read_children(session.conn, session.schema),
                ),
            )
            assert state is not None
            (checkpoint, progress), children = state
            store.children.load(children)
            store.reset_frontiers(checkpoint)
            outcome = Rollback(checkpoint, {}, progress)
        else:
            by_table = {t.spec.table: t.spec.cls for t in store.tables.values()}
            store.rollback(
                outcome.checkpoint,
                {by_table[name]: rows for name, rows in outcome.restored.items()},
            )
        for chain_id, (block, _events) in outcome.progress.items():
            self._committed_blocks[chain_id] = block
        return outcome


def _commit(session: Session, changes: Changeset, fault: Callable[[str], None] | None) -> bool:
    commit_changeset(session, changes, fault=fault)
    return True  # None from RetryingSession.run means "landed, answer lost"


def _count_effects(session: Session, names: list[str]) -> dict[str, int]:
    return {name: count_effect_rows(session, name) for name in names}
