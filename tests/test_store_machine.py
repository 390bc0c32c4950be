"""Hypothesis state machine: the store + the write path against a plain model.

The machine plays the runtime: it processes checkpoints (sets, deletes,
gets and finds through the store, loading misses from PostgreSQL the way
the processor does), moves to the next block (checkpoint) within a batch,
ends batches, seals as the processor does (at every batch end, and at every
block in "window" mode; see Store.seal), starts writes (a snapshot) and finishes
them later (so handlers keep changing entities while a write is "in
flight"), makes writes fail, evicts under a tiny capacity target, and
restarts from the database.  The model is a list of full states, one per
checkpoint.

Invariants:
* ``get``/``find`` answer what the model holds at the processed checkpoint;
* the database equals the model at the committed checkpoint after every
  commit and every restart;
* every write carries exactly the changes of its range (no change lost or
  written twice: the database after each commit equals the model there,
  and history rows are one per (id, checkpoint) still held when sealed:
  a change superseded before the next seal leaves no row);
* a rollback to any sealed checkpoint restores the model's state there.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from psycopg import sql

from indexer import Entity, Index
from indexer.persist import (
    ChainProgress,
    Changeset,
    CheckpointRow,
    Session,
    commit_changeset,
    connect,
    create_schema,
    execute_rollback,
    load_by_field,
    load_by_ids,
    read_state,
)
from indexer.store import MISSING, Store, entity_spec


class Item(Entity):
    id: str
    group: Annotated[str, Index]
    n: int = 0


SPEC = entity_spec(Item)
IDS = st.sampled_from(["a", "b", "c", "d"])
GROUPS = st.sampled_from(["x", "y"])
State = dict[str, tuple[str, int]]


class _Fail(Exception):
    pass


class StoreMachine(RuleBasedStateMachine):
    url: str
    schema_name: str

    @initialize(capacity=st.sampled_from([2, 4, 1000]), window=st.booleans(), faults=st.booleans())
    def setup(self, capacity: int, window: bool = False, faults: bool = True) -> None:
        self.target = capacity
        # Without faults a run goes on long enough for evictions from a
        # complete table and the reads that then rely on the filter of
        # evicted ids (a failure restarts into an incomplete table).
        self.faults = faults
        # Window mode seals every checkpoint, as the processor does near the head.
        self.window = window
        self.session: Session = connect(self.url, self.schema_name, writer=True)
        with self.session.conn.transaction():
            self.session.conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema_name))
            )
        create_schema(self.session.conn, self.schema_name, [SPEC], {1: 0})
        # states[cp] = full model state after checkpoint cp (cp 0 = empty)
        self.states: list[State] = [{}]
        self.batch_end = 0  # last checkpoint of the last ended batch
        self.in_flight: Changeset | None = None
        self.history_seen: set[tuple[str, int]] = set()
        self.no_history_upto = 0  # last write that kept no history
        self.changes: set[tuple[str, int]] = set()  # every (id, checkpoint) changed
        self._new_store(committed=0)
        # An empty table starts complete, as in a run: misses are answered
        # "absent" without a query, and after evictions through the filter
        # of evicted ids.
        self.table.complete = True

    def teardown(self) -> None:
        if hasattr(self, "session"):
            self.session.close()

    def _new_store(self, committed: int) -> None:
        self.store = Store([SPEC], target=self.target)
        self.store.reset_frontiers(committed)
        self.table = self.store.table(Item)
        del self.states[committed + 1 :]
        self.batch_end = committed
        self.boundaries: list[int] = []
        # Sealing: a new store keeps every superseded change until its first seal.
        self.sealed_at: int | None = None
        self.seal_points = {committed}
        self.last_change: dict[str, int] = {}  # id -> checkpoint of its uncommitted change
        self.in_flight = None
        self.cp = committed + 1  # the checkpoint being processed
        self.states.append(dict(self.states[committed]))

    @property
    def model(self) -> State:
        return self.states[self.cp]

    # -- what the processor does -------------------------------------------

    def _get(self, id: str) -> Item | None:
        value = self.table.get(id)
        if value is MISSING:
            self.table.load([id], load_by_ids(self.session, SPEC, [id]))
            value = self.table.get(id)
        assert value is not MISSING
        return value

    def _advance(self) -> None:
        self.store.processed = self.cp

    def _seal(self) -> None:
        self.store.seal()
        self.sealed_at = self.store.processed
        self.seal_points.add(self.store.processed)

    def _changed(self, id: str) -> None:
        """Expected history: a change superseded after the last seal leaves no row."""
        prev = self.last_change.get(id)
        if (
            prev is not None
            and prev != self.cp
            and self.sealed_at is not None
            and prev > self.sealed_at
        ):
            self.changes.discard((id, prev))
        self.last_change[id] = self.cp
        self.changes.add((id, self.cp))

    # One rule for every change and one for every read keeps the rule count
    # low, so that hypothesis reaches interleavings (change after a batch
    # ended, write started, more changes, write finishes) in few examples.
    @rule(id=IDS, group=st.one_of(st.none(), GROUPS), n=st.integers(-5, 5), end=st.integers(0, 2))
    def change(self, id: str, group: str | None, n: int, end: int = 1) -> None:
        """Set (add n to the stored count) or, with group None, delete; end=0 ends the batch after."""
        if group is None:
            self.table.set(id, None, self.cp)
            self.model.pop(id, None)
        else:
            old = self._get(id)
            new_n = (old.n if old is not None else 0) + n
            self.table.set(id, Item(id=id, group=group, n=new_n), self.cp)
            self.model[id] = (group, new_n)
        self._changed(id)
        self._advance()
        if end == 0:
            self.end_batch()

    @rule(key=st.one_of(IDS.map(lambda i: ("get", i)), GROUPS.map(lambda g: ("find", g))))
    def read(self, key: tuple[str, str]) -> None:
        kind, value = key
        if kind == "get":
            got = self._get(value)
            assert (None if got is None else (got.group, got.n)) == self.model.get(value)
        else:
            found = self.table.find_cached("group", value)
            if found is None:
                found = self.table.load_find(
                    "group", value, load_by_field(self.session, SPEC, "group", value)
                )
            want = sorted((i, v) for i, v in self.model.items() if v[0] == value)
            assert sorted((e.id, (e.group, e.n)) for e in found) == want

    @rule()
    def next_block(self) -> None:
        """The next checkpoint of the same batch: no write may end here."""
        if self.store.processed == self.cp:
            if self.window:
                self._seal()
            self.states.append(dict(self.model))
            self.cp += 1

    @rule()
    def end_batch(self) -> None:
        if self.store.processed == self.cp:
            self.batch_end = self.cp
            self.boundaries.append(self.cp)
            self._seal()
            self.states.append(dict(self.model))
            self.cp += 1
        elif self.batch_end < self.store.processed == self.cp - 1:
            # After next_block, before any change at the new checkpoint.
            self.batch_end = self.store.processed
            self.boundaries.append(self.batch_end)
            self._seal()

    # -- what the writer does ----------------------------------------------

    @precondition(lambda self: self.in_flight is None and self.batch_end > self.store.committed)
    @rule(history=st.booleans(), pick=st.integers(0, 3))
    def start_write(self, history: bool, pick: int = 99) -> None:
        """Snapshot up to one of the ended batches (the writer coalesces a
        varying number of them); later batches stay in memory only."""
        ended = [b for b in self.boundaries if b > self.store.committed]
        upto = ended[min(pick, len(ended) - 1)]
        tables = self.store.snapshot(upto, history=history)
        checkpoints = [
            CheckpointRow(c, 1, c, None, 1) for c in range(self.store.committed + 1, upto + 1)
        ]
        self.in_flight = Changeset(
            upto, tables, {1: ChainProgress(1, 0, upto, upto)}, checkpoints, history=history
        )
        if history:
            rows = [(id, cp) for t in tables for id, cp, _v in t.history]
            assert len(rows) == len(set(rows)), "history row written twice"
            assert not set(rows) & self.history_seen, "history row written twice"
            # Exactly one history row per change in the range: none lost
            # (the prior art truncated history of entities changed again).
            want = {(i, c) for i, c in self.changes if self.store.committed < c <= upto}
            assert set(rows) == want
            self.history_seen.update(rows)

    @precondition(lambda self: self.in_flight is not None)
    @rule(fail_at=st.sampled_from([None] * 6 + ["entities", "progress", "commit"]))
    def finish_write(self, fail_at: str | None) -> None:
        write = self.in_flight
        assert write is not None
        fail_at = fail_at if self.faults else None

        def fault(step: str) -> None:
            if step == fail_at:
                raise _Fail(step)

        try:
            commit_changeset(self.session, write, fault=fault)
        except _Fail:
            # The runtime stops on a failed write; the next run resumes from
            # what the database holds.
            self.restart(0)
            return
        self.in_flight = None
        if not write.history:
            self.no_history_upto = write.upto
        self.store.mark_committed(write.upto)
        self.last_change = {i: c for i, c in self.last_change.items() if c > write.upto}
        self.check_database()

    # -- reorg rollback ----------------------------------------------------

    @rule(back=st.integers(0, 6), fail_at=st.sampled_from([None] * 4 + ["rollback", "commit"]))
    def rollback(self, back: int, fail_at: str | None) -> None:
        """Drain as the runtime does, then roll back to a checkpoint whose later
        writes all kept history (the reorg window).

        Checkpoint rows are written with block number == checkpoint, so
        "keep block t" means "restore checkpoint t".
        """
        if self.in_flight is not None:
            self.finish_write(None)
        self.end_batch()
        if self.batch_end > self.store.committed:
            self.start_write(history=True)
            self.finish_write(None)
        committed = self.store.committed
        if committed <= self.no_history_upto:
            return
        # Only a sealed checkpoint can be restored exactly (the processor
        # seals every block a rollback can target).
        fail_at = fail_at if self.faults else None
        target = max(
            p
            for p in self.seal_points | {self.no_history_upto}
            if self.no_history_upto <= p <= max(self.no_history_upto, committed - back)
        )

        def fault(step: str) -> None:
            if step == fail_at:
                raise _Fail(step)

        try:
            result = execute_rollback(
                self.session, [SPEC], {1: target}, committed=committed, fault=fault
            )
        except _Fail:
            self.check_database()  # all or nothing: still the state before it
            self.restart(0)
            return
        assert result.checkpoint == target
        assert result.progress[1][0] == target
        self.store.rollback(target, {Item: result.restored[SPEC.table]})
        del self.states[target + 1 :]
        self.states.append(dict(self.states[target]))
        self.cp = target + 1
        self.batch_end = target
        self.boundaries = [b for b in self.boundaries if b <= target]
        self.seal_points = {p for p in self.seal_points if p <= target}
        self.last_change = {}
        self.history_seen = {(i, c) for i, c in self.history_seen if c <= target}
        self.changes = {(i, c) for i, c in self.changes if c <= target}
        self.check_database()
        # Memory follows without a reload: every read answers the restored state.
        for id in ("a", "b", "c", "d"):
            got = self._get(id)
            assert (None if got is None else (got.group, got.n)) == self.model.get(id)

    @rule()
    def evict(self) -> None:
        self.store.evict_committed()
        assert all(id in self.table.values for id in self.table.cps), "evicted an unwritten change"

    @rule(roll=st.integers(0, 5))
    def restart(self, roll: int = 0) -> None:
        """A crash and restart (only one draw in six: restarts discard progress)."""
        if roll:
            return
        committed, chains = read_state(self.session.conn, self.schema_name)
        assert committed == (chains[1][0] if chains else 0)
        self.history_seen = {(i, c) for i, c in self.history_seen if c <= committed}
        self.changes = {(i, c) for i, c in self.changes if c <= committed}
        self._new_store(committed)
        self.table.complete = False
        self.check_database()

    def check_database(self) -> None:
        rows = self.session.conn.execute(
            sql.SQL("SELECT id, {}, n FROM {}.item").format(
                sql.Identifier("group"), sql.Identifier(self.schema_name)
            )
        ).fetchall()
        want = self.states[self.store.committed]
        assert {r[0]: (r[1], r[2]) for r in rows} == want

    @invariant()
    def frontiers(self) -> None:
        if hasattr(self, "store"):
            assert self.store.committed <= self.batch_end <= self.store.processed <= self.cp


@pytest.mark.slow
def test_store_machine(database_url: str, schema: str) -> None:
    class Machine(StoreMachine):
        url = database_url
        schema_name = schema

    run: Any = Machine.TestCase
    run.settings = settings(
        max_examples=300,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    run().runTest()


def test_model_sanity(database_url: str, schema: str) -> None:
    """The machine's own plumbing: one scripted run where each rule is checked by hand."""

    class Machine(StoreMachine):
        url = database_url
        schema_name = schema

    m = Machine()
    m.setup(capacity=1000)
    m.change("a", "x", 3)
    m.end_batch()
    m.start_write(history=True)
    m.change("a", "y", 1)  # changes while the write is in flight
    m.finish_write(None)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            sql.SQL("SELECT {}, n FROM {}.item").format(
                sql.Identifier("group"), sql.Identifier(schema)
            )
        ).fetchone()
    assert row == ("x", 3)  # the in-flight write took the state at its checkpoint
    m.read(("get", "a"))  # memory holds the newer value
    assert m._get("a") == Item(id="a", group="y", n=4)
    m.teardown()
