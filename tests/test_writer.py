"""The hand-off and the writer task under Trio's mock clock, against a real PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import psycopg
import pytest
import trio
import trio.testing
from psycopg import sql

from indexer import Entity, Index
from indexer.persist import (
    ChainProgress,
    Changeset,
    CheckpointRow,
    RetryingSession,
    Session,
    connect,
    create_schema,
    read_state,
)
from indexer.runtime import Batch, Handoff, Writer, open_batch_channel
from indexer.store import Store, entity_spec

if TYPE_CHECKING:
    from collections.abc import Iterator


class Counter(Entity):
    id: str
    kind: Annotated[str, Index]
    n: int = 0


SPEC = entity_spec(Counter)


@pytest.fixture
def session(database_url: str, schema: str) -> Iterator[Session]:
    s = connect(database_url, schema, writer=True)
    create_schema(s.conn, schema, [SPEC], {1: 0})
    yield s
    s.close()


def rows(url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        got = conn.execute(
            sql.SQL("SELECT id, n FROM {}.counter").format(sql.Identifier(schema))
        ).fetchall()
    return dict(got)


class Loop:
    """A stand-in processing loop: one checkpoint per 'block', one batch per call."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.table = store.table(Counter)

    def batch(self, *changes: tuple[str, int], history: bool = False) -> Batch:
        cp = self.store.processed + 1
        for id, n in changes:
            self.table.set(id, Counter(id=id, kind="k", n=n), cp)
        self.store.processed = cp
        return Batch(
            cp,
            {1: ChainProgress(1, 0, cp, cp)},
            [CheckpointRow(cp, 1, cp, None, len(changes))],
            history=history,
        )


async def test_slow_write_overlaps_processing_and_batches_merge_in_the_loop(
    autojump_clock: trio.testing.MockClock, session: Session, database_url: str, schema: str
) -> None:
    store = Store([SPEC], target=1000)
    loop = Loop(store)
    written: list[tuple[int, float]] = []

    async def slow(write: Changeset) -> None:
        await trio.sleep(10)
        written.append((write.upto, trio.current_time()))

    writer = Writer(store, RetryingSession(session), pre_write=slow)
    send, receive = open_batch_channel()
    handoff = Handoff(send, store, min_interval=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.serve, receive)
        await trio.testing.wait_all_tasks_blocked()
        handoff.offer(loop.batch(("a", 1)))
        assert handoff.pending is None  # the idle writer took it: write 1 started...
        await trio.testing.wait_all_tasks_blocked()
        # ...and processing goes on without waiting for it: the loop merges.
        handoff.offer(loop.batch(("a", 2), ("b", 1)))
        handoff.offer(loop.batch(("b", 2)))
        assert handoff.pending is not None
        assert handoff.pending.upto == 3
        assert [c.id for c in handoff.pending.checkpoints] == [2, 3]
        assert trio.current_time() == 0  # nothing above waited
        assert store.committed == 0
        await handoff.close()
    # Two transactions: batch 1, then batches 2 and 3 merged.
    assert [u for u, _ in written] == [1, 3]
    assert [t for _, t in written] == [10, 20]
    assert writer.statistics().writes == 2
    assert store.committed == 3
    assert rows(database_url, schema) == {"a": 2, "b": 2}
    checkpoint, chains = read_state(session.conn, schema)
    assert checkpoint == 3
    assert chains == {1: (3, 3)}


@pytest.mark.parametrize(
    ("history", "due", "writes"),
    [
        # At the head (history on): one write per half second.
        (True, 1.0, [(1, 0), (6, pytest.approx(0.5)), (10, pytest.approx(1.0))]),
        # Catching up (final blocks only): CATCH_UP_FACTOR times further apart;
        # what is left goes with the final flush.
        (False, 2.0, [(1, 0), (10, pytest.approx(1.0))]),
        # Catching up near the memory target: as at the head.
        (None, 1.0, [(1, 0), (6, pytest.approx(0.5)), (10, pytest.approx(1.0))]),
    ],
    ids=["at-the-head", "catching-up", "catching-up-near-the-target"],
)
async def test_hand_overs_wait_out_the_interval_while_batches_keep_coming(
    autojump_clock: trio.testing.MockClock,
    session: Session,
    database_url: str,
    schema: str,
    history: bool | None,
    due: float,
    writes: list[tuple[int, float]],
) -> None:
    store = Store([SPEC], target=1000)
    loop = Loop(store)
    written: list[tuple[int, float]] = []

    async def record(write: Changeset) -> None:
        written.append((write.upto, trio.current_time()))

    writer = Writer(store, RetryingSession(session), pre_write=record)
    send, receive = open_batch_channel()
    # history None: final blocks, with the store past half its target.
    handoff = Handoff(send, store, min_interval=0.5, roomy=lambda: history is not None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.serve, receive)
        await trio.testing.wait_all_tasks_blocked()
        for i in range(10):  # a batch every 0.1 s, the writer idle throughout
            handoff.offer(loop.batch(("a", i), history=bool(history)))
            if handoff.pending is None:  # handed over: let the write finish
                await writer.wait_commit()
            await trio.sleep(0.1)
        assert handoff.due == pytest.approx(due)
        await handoff.close()
    # Each write has everything processed since the last.
    assert written == writes
    assert rows(database_url, schema) == {"a": 9}


async def test_a_batch_handed_over_is_written_as_of_its_checkpoint_ranges_later(
    autojump_clock: trio.testing.MockClock, session: Session, database_url: str, schema: str
) -> None:
    """The writer snapshots a batch when it next runs, and the loop may seal and process
    several ranges before that.  Far from the head the store keeps, of a hot id, only
    the value at the last hand-over and the newest one kept: the hand-over must mark
    the store, or the value the writer is about to take is replaced."""
    store = Store([SPEC], target=1000)
    store.mark_handed()  # the run's start
    loop = Loop(store)
    written: list[tuple[int, dict[str, int]]] = []

    async def record(write: Changeset) -> None:
        written.append((write.upto, {e[0]: e[2] for t in write.tables for e in t.upserts}))

    writer = Writer(store, RetryingSession(session), pre_write=record)
    send, receive = open_batch_channel()
    handoff = Handoff(send, store, min_interval=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.serve, receive)
        await trio.testing.wait_all_tasks_blocked()
        for n in (1, 2, 3):  # three ranges, a seal each; no await: the writer waits its turn
            store.seal()
            handoff.offer(loop.batch(("a", n)))
        assert written == []
        await handoff.close()
    assert written == [(1, {"a": 1}), (3, {"a": 3})]
    assert rows(database_url, schema) == {"a": 3}


async def test_write_failure_cancels_the_scope_and_keeps_last_commit(
    autojump_clock: trio.testing.MockClock, session: Session, database_url: str, schema: str
) -> None:
    store = Store([SPEC], target=1000)
    loop = Loop(store)
    fail = False

    def fault(step: str) -> None:
        if fail and step == "commit":
            raise RuntimeError("disk on fire")

    writer = Writer(store, RetryingSession(session), fault=fault)
    send, receive = open_batch_channel()
    processing_cancelled = False
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="disk on fire")):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.serve, receive)
            await send.send(loop.batch(("a", 1)))
            while store.committed < 1:
                await writer.wait_commit()
            fail = True
            await send.send(loop.batch(("a", 5), ("b", 7)))
            try:
                await trio.sleep_forever()  # the processing loop, busy
            except trio.Cancelled:
                processing_cancelled = True
                raise
    assert processing_cancelled
    assert rows(database_url, schema) == {"a": 1}
    assert read_state(session.conn, schema)[0] == 1


async def test_closing_the_channel_flushes_everything(
    session: Session, database_url: str, schema: str
) -> None:
    store = Store([SPEC], target=1000)
    loop = Loop(store)
    writer = Writer(store, RetryingSession(session))
    send, receive = open_batch_channel()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.serve, receive)
        for i in range(20):
            batch = loop.batch((f"id{i % 3}", i))
            await send.send(batch)
        await send.aclose()
    assert store.committed == 20
    assert rows(database_url, schema) == {"id0": 18, "id1": 19, "id2": 17}


async def test_commit_waiters_wake_on_each_commit(
    autojump_clock: trio.testing.MockClock, session: Session
) -> None:
    store = Store([SPEC], target=1000)
    loop = Loop(store)

    async def slow(write: Changeset) -> None:
        await trio.sleep(5)

    writer = Writer(store, RetryingSession(session), pre_write=slow)
    send, receive = open_batch_channel()
    woke: list[tuple[float, int]] = []

    async def waiter() -> None:
        for _ in range(2):
            await writer.wait_commit()
            woke.append((trio.current_time(), store.committed))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.serve, receive)
        nursery.start_soon(waiter)
        await send.send(loop.batch(("a", 1)))
        await trio.testing.wait_all_tasks_blocked()
        await send.send(loop.batch(("a", 2)))
        await send.aclose()
    assert woke == [(5, 1), (10, 2)]


def test_a_merged_batch_carries_everything_of_both_and_the_newest_of_each_chain() -> None:
    first = Batch(
        2,
        {1: ChainProgress(1, 0, 10, 5), 2: ChainProgress(2, 0, 100, 1)},
        [CheckpointRow(1, 1, 9, "0x1", 2), CheckpointRow(2, 1, 10, "0x2", 3)],
        history=False,
        prune={1: 4, 2: 90},
        raw=[("raw", 1), ("raw", 2)],
        children=[(1, "Token", "0x" + "a1" * 20, 9, 0, 1)],
    )
    later = Batch(
        3,
        {1: ChainProgress(1, 0, 11, 6)},
        [CheckpointRow(3, 1, 11, "0x3", 1)],
        history=True,
        prune={1: 6},
        raw=[("raw", 3)],
        children=[(1, "Token", "0x" + "a2" * 20, 11, 3, 3)],
    )
    merged = first.merge(later)
    assert merged.upto == 3
    assert merged.chains == {1: ChainProgress(1, 0, 11, 6), 2: ChainProgress(2, 0, 100, 1)}
    assert [c.id for c in merged.checkpoints] == [1, 2, 3]
    assert merged.history  # history anywhere: history for all of it
    assert merged.prune == {1: 6, 2: 90}  # each chain's newest final block
    assert merged.raw == [("raw", 1), ("raw", 2), ("raw", 3)]
    assert [row[2] for row in merged.children] == ["0x" + "a1" * 20, "0x" + "a2" * 20]
