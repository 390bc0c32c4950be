"""Hypothesis state machine: the store + the write path against a plain model.

The machine plays the runtime: it processes checkpoints (sets, deletes,
gets and finds through the store, loading misses from PostgreSQL like the
processor, one raw event per change), moves to the next block within a
batch, ends batches, seals as the processor does (at every batch end, and
at every block in "window" mode), hands batches over (``mark_handed``, in
"handing" mode, as the runtime does far from the head: writes then end only
at the last hand-over or the last batch end, and no history is kept, since
the store replaces the values between), starts writes (a snapshot) and finishes
them later (so handlers keep changing entities while a write is "in
flight"), makes writes fail, evicts under tiny targets, rolls back and
restarts.  The model is a list of full states, one per checkpoint, plus
what the database must hold.  It never asks the store or the database what
they should hold: every expected value comes from the model alone.

Invariants:
* ``get``/``find`` answer the model's state at the processed checkpoint;
  after every step, memory holds only the model's values and ``find``
  answers, an id it calls certainly absent is absent, one with an unwritten
  change is held, and one never present since an empty start is known
  absent (no query);
* a write carries exactly the ids changed in its range, each as of its
  checkpoint, and history rows one per (id, checkpoint) still held when
  sealed (a change superseded before the next seal leaves no row);
* the database (entities, raw events, history keys, checkpoint rows,
  progress) equals the model at the committed checkpoint after every
  commit, rollback and restart, so a rollback restores the model's state.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, settings
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
    table_has_rows,
)
from indexer.store import MISSING, Store, entity_spec

if TYPE_CHECKING:
    from collections.abc import Callable


class Item(Entity):
    id: str
    group: Annotated[str, Index]
    n: int = 0


SPEC = entity_spec(Item)
IDS = st.sampled_from(["a", "b", "c", "d"])
# "e" is never set: a miss on it must be answered "absent" without a query
# while the table is complete or keeps the filter of evicted ids.
READ_IDS = ["a", "b", "c", "d", "e"]
GROUPS = ["x", "y"]
State = dict[str, tuple[str, int]]
_EMPTY = """DELETE FROM {s}.item; DELETE FROM {s}._indexer_h_item; DELETE FROM {s}._indexer_chains;
DELETE FROM {s}._indexer_raw_events; DELETE FROM {s}._indexer_checkpoints;
UPDATE {s}._indexer_state SET checkpoint = 0"""


class _Fail(Exception):
    pass


def _failing_at(fail_at: str | None) -> Callable[[str], None]:
    """A fault hook for execute_write/execute_rollback that fails at step ``fail_at``."""

    def fault(step: str) -> None:
        if step == fail_at:
            raise _Fail(step)

    return fault


def _raw_row(cp: int, index: int, id: str) -> tuple[Any, ...]:
    """The raw event of the ``index``-th change at checkpoint ``cp`` (block == checkpoint)."""
    tx, params = f"0x{cp:x}{index:02x}", json.dumps({"id": id})
    return (1, cp, index, tx, None, None, "0xitem", [], id, "Item.Change", params, cp)


def _as_model(value: Any) -> tuple[str, int] | None:
    """An entity as the model holds it (None: absent)."""
    return None if value is None else (value.group, value.n)


class StoreMachine(RuleBasedStateMachine):
    url: str
    schema_name: str
    shared: Session | None = None  # the connection every example of a test uses

    @initialize(
        capacity=st.sampled_from([1, 2, 4, 1000]),
        window=st.booleans(),
        faults=st.booleans(),
        handing=st.booleans(),
    )
    def setup(
        self, capacity: int, window: bool = False, faults: bool = True, handing: bool = False
    ) -> None:
        self.target = capacity
        self.faults = faults  # without them, more runs reach evictions from a complete table
        self.window = window  # seal every checkpoint, as the processor does near the head
        # Far from the head the runtime marks each hand-over (never with the window).
        self.handing = handing and not window
        cls = type(self)
        if cls.shared is None:  # the schema is created once per test (DDL took most of the time)
            cls.shared = connect(self.url, self.schema_name, writer=True)
            create_schema(cls.shared.conn, self.schema_name, [SPEC], {1: 0})
        self.session = cls.shared
        with self.session.conn.transaction():
            self.session.conn.execute(sql.SQL(_EMPTY).format(s=sql.Identifier(self.schema_name)))
        # states[cp] = full model state after checkpoint cp (cp 0 = empty)
        self.states: list[State] = [{}]
        self.committed = 0  # what the database holds, as the model knows it
        self.raw: dict[int, list[str]] = {}  # cp -> the id of each change (its raw event)
        self.history_db: set[tuple[str, int]] = set()  # history keys the database holds
        self.checkpoints_db: set[int] = set()  # checkpoint rows the database holds
        self.no_history_upto = 0  # last write that kept no history
        self.changes: set[tuple[str, int]] = set()  # every kept (id, checkpoint) change
        self._new_store()

    def _new_store(self) -> None:
        """A (re)start from the database, which holds the model's committed state."""
        committed = self.committed
        self.store = Store([SPEC], target=self.target)
        self.store.reset_frontiers(committed)
        self.table = self.store.table(Item)
        self._forget_above(committed)
        self.batch_end = committed
        self.boundaries: list[int] = []
        # Sealing: a new store keeps every superseded change until its first seal.
        self.sealed_at: int | None = None
        self.seal_points = {committed}
        # Handing: the runtime marks its start as a hand-over; kept superseded
        # changes per id (the store's chain), the last hand-over, and the one
        # whose write has not started yet.
        self.chains: dict[str, list[int]] = {}
        self.handed_at = committed
        self.handed_pending: int | None = None
        if self.handing:
            self.store.mark_handed()
        self.last_change: dict[str, int] = {}  # id -> checkpoint of its unwritten change
        self.in_flight: Changeset | None = None
        self.in_flight_history: set[tuple[str, int]] = set()
        self.processed = committed
        self.cp = committed + 1  # the checkpoint being processed
        self.states.append(dict(self.states[committed]))
        # As the runtime does: a table empty at start is complete.
        self.table.complete = self.started_empty = not table_has_rows(self.session, SPEC)
        assert self.started_empty == (not self.states[committed]), "the database is not the model's"
        # Ids present in some model state since this start (after an empty
        # start, every other id is certainly absent from the database).
        self.seen: set[str] = set()
        self.finding = False  # find has been used (the store keeps the index)

    def _forget_above(self, cp: int) -> None:
        """The model without anything above checkpoint ``cp`` (rolled back, or never written)."""
        del self.states[cp + 1 :]
        self.raw = {c: ids for c, ids in self.raw.items() if c <= cp}
        self.changes = {(i, c) for i, c in self.changes if c <= cp}
        self.history_db = {(i, c) for i, c in self.history_db if c <= cp}
        self.checkpoints_db = {c for c in self.checkpoints_db if c <= cp}

    @property
    def model(self) -> State:
        return self.states[self.cp]

    # -- what the processor does -------------------------------------------

    def _get(self, id: str) -> Item | None:
        """ctx.get: memory, else a load; the answer must be the model's."""
        value = self.table.get(id)
        if value is MISSING:
            assert id not in self.last_change, f"{id!r}: memory lost an unwritten change"
            self.table.load([id], load_by_ids(self.session, SPEC, [id]))
            value = self.table.get(id)
        assert _as_model(value) == self.model.get(id), (id, value, self.model.get(id))
        return value

    def _find(self, group: str) -> None:
        found = self.table.find_cached("group", group)
        if found is None:
            rows = load_by_field(self.session, SPEC, "group", group)
            found = self.table.load_find("group", group, rows)
        self.finding = True
        self._check_found(group, found)

    def _check_found(self, group: str, found: list[Item]) -> None:
        want = sorted((i, v) for i, v in self.model.items() if v[0] == group)
        assert sorted((e.id, (e.group, e.n)) for e in found) == want, (group, found)

    def _seal(self) -> None:
        self.store.seal()
        self.sealed_at = self.processed
        self.seal_points.add(self.processed)

    def _changed(self, id: str) -> None:
        """Expected history: a change superseded after the last seal leaves no row.

        While handing, the newest kept change replaces the one before it unless
        that one is the value at the last hand-over (a write can still end
        there, or at the last batch end, and nowhere else).
        """
        prev, sealed = self.last_change.get(id), self.sealed_at
        if prev is not None and prev != self.cp:
            if sealed is not None and sealed < prev:
                self.changes.discard((id, prev))
            else:
                chain = self.chains.setdefault(id, [])
                handed = self.handed_at
                if self.handing and chain and (chain[-1] > handed or prev <= handed):
                    self.changes.discard((id, chain[-1]))
                    chain[-1] = prev
                else:
                    chain.append(prev)
        self.last_change[id] = self.cp
        self.changes.add((id, self.cp))

    # One rule for every change and one for every read keeps the rule count
    # low, so that hypothesis reaches interleavings (change after a batch
    # ended, write started, more changes, write finishes) in few examples.
    @rule(
        id=IDS,
        group=st.one_of(st.none(), st.sampled_from(GROUPS)),
        n=st.integers(-5, 5),
        end=st.integers(0, 2),
    )
    def change(self, id: str, group: str | None, n: int, end: int = 1) -> None:
        """Set (add n to the count) or, with group None, delete; end=0 ends the batch after.
        The new value comes from the model; the handler's read goes through the store."""
        if group is None:
            self.table.set(id, None, self.cp)
            self.model.pop(id, None)
        else:
            self._get(id)
            old = self.model.get(id)
            new_n = (old[1] if old is not None else 0) + n
            self.table.set(id, Item(id=id, group=group, n=new_n), self.cp)
            self.model[id] = (group, new_n)
            self.seen.add(id)
        self.raw.setdefault(self.cp, []).append(id)
        self._changed(id)
        self.processed = self.store.processed = self.cp
        if end == 0:
            self.end_batch()

    @rule(
        key=st.one_of(
            st.sampled_from(READ_IDS).map(lambda i: ("get", i)),
            st.sampled_from(GROUPS).map(lambda g: ("find", g)),
        )
    )
    def read(self, key: tuple[str, str]) -> None:
        kind, value = key
        if kind == "get":
            self._get(value)
        else:
            self._find(value)

    @rule()
    def next_block(self) -> None:
        """The next checkpoint of the same batch: no write may end here."""
        if self.processed == self.cp:
            if self.window:
                self._seal()
            self.states.append(dict(self.model))
            self.cp += 1

    @rule()
    def end_batch(self) -> None:
        if self.processed == self.cp:
            self.batch_end = self.cp
            self.boundaries.append(self.cp)
            self._seal()
            self.states.append(dict(self.model))
            self.cp += 1
        elif self.batch_end < self.processed == self.cp - 1:
            # After next_block, before any change at the new checkpoint.
            self.batch_end = self.processed
            self.boundaries.append(self.batch_end)
            self._seal()

    @precondition(
        lambda self: (
            self.handing
            and self.in_flight is None
            and self.handed_pending is None
            and self.processed == self.batch_end > self.committed
        )
    )
    @rule()
    def hand_over(self) -> None:
        """The runtime hands its pending batch to the writer at a batch end."""
        self.store.mark_handed()
        self.handed_at = self.handed_pending = self.processed

    # -- what the writer does ----------------------------------------------

    def _events(self, upto: int) -> int:
        return sum(len(ids) for c, ids in self.raw.items() if c <= upto)

    @precondition(lambda self: self.in_flight is None and self.batch_end > self.committed)
    @rule(history=st.booleans(), pick=st.integers(0, 3), slow=st.booleans())
    def start_write(self, history: bool, pick: int = 99, slow: bool = True) -> None:
        """Snapshot up to one of the ended batches (the writer coalesces a
        varying number of them); later batches stay in memory only.  A slow
        write stays in flight until finish_write, a fast one commits at once."""
        ended = [b for b in self.boundaries if b > self.committed]
        upto = ended[min(pick, len(ended) - 1)]
        if self.handing:
            # The write of the batch handed over, or (a run stopped inside a
            # range) of everything up to the last batch end; never history.
            upto = self.handed_pending if self.handed_pending is not None else ended[-1]
            self.handed_pending, history = None, False
        tables = self.store.snapshot(upto, history=history)
        # Exactly the ids changed in (committed, upto], each as of upto.
        (t,) = tables
        got = {e[0]: _as_model(e) for e in t.upserts} | {i: None for i in t.deletes}
        assert len(got) == len(t), "an id written twice"
        changed = {i for i, c in self.changes if self.committed < c <= upto}
        assert got == {i: self.states[upto].get(i) for i in changed}
        span = range(self.committed + 1, upto + 1)
        self.in_flight = Changeset(
            upto,
            tables,
            {1: ChainProgress(1, 0, upto, self._events(upto))},
            [CheckpointRow(c, 1, c, None, len(self.raw.get(c, ()))) for c in span],
            history=history,
            raw=[_raw_row(c, k, id) for c in span for k, id in enumerate(self.raw.get(c, ()))],
        )
        self.in_flight_history = set()
        if history:
            rows = [(id, cp) for id, cp, _v in t.history]
            assert len(rows) == len(set(rows)), "history row written twice"
            # Exactly one history row per kept change in the range: none lost
            # (the prior art truncated history of entities changed again).
            want = {(i, c) for i, c in self.changes if self.committed < c <= upto}
            assert set(rows) == want
            for id, cp, v in t.history:
                assert _as_model(v) == self.states[cp].get(id), (id, cp, v)
            self.in_flight_history = want
        if not slow:
            self.finish_write(None)

    def _committed(self, write: Changeset) -> None:
        """The model after ``write`` committed."""
        if write.history:
            assert not self.in_flight_history & self.history_db, "history row written twice"
            self.history_db |= self.in_flight_history
            self.checkpoints_db.update(range(self.committed + 1, write.upto + 1))
        else:
            self.no_history_upto = write.upto
        self.committed = write.upto
        self.last_change = {i: c for i, c in self.last_change.items() if c > write.upto}
        chains = {i: [c for c in chain if c > write.upto] for i, chain in self.chains.items()}
        self.chains = {i: chain for i, chain in chains.items() if chain}

    @precondition(lambda self: self.in_flight is not None)
    @rule(fail_at=st.sampled_from([None] * 6 + ["entities", "progress", "commit", "committed"]))
    def finish_write(self, fail_at: str | None) -> None:
        write = self.in_flight
        assert write is not None
        fail_at = fail_at if self.faults else None
        try:
            commit_changeset(self.session, write, fault=_failing_at(fail_at))
        except _Fail:
            # The runtime stops on a failed write; the next run resumes from
            # what the database holds: the write if it failed after COMMIT.
            if fail_at == "committed":
                self._committed(write)
            self.restart(0)
            return
        self.in_flight = None
        self._committed(write)
        self.store.mark_committed(write.upto)
        self.check_database()

    # -- reorg rollback ----------------------------------------------------

    @precondition(lambda self: not self.handing)  # rollbacks happen in the window only
    @rule(back=st.integers(0, 6), fail_at=st.sampled_from([None] * 4 + ["rollback", "commit"]))
    def rollback(self, back: int, fail_at: str | None) -> None:
        """Drain as the runtime does, then roll back to a checkpoint whose later
        writes all kept history (the reorg window).  Block == checkpoint here,
        so "keep block t" means "restore checkpoint t"."""
        if self.in_flight is not None:
            self.finish_write(None)
        self.end_batch()
        if self.batch_end > self.committed:
            self.start_write(history=True)
            self.finish_write(None)
        committed = self.committed
        if committed <= self.no_history_upto:
            return
        # Only a sealed checkpoint can be restored exactly (the processor
        # seals every block a rollback can target).
        low, high = self.no_history_upto, max(self.no_history_upto, committed - back)
        target = max(p for p in self.seal_points | {low} if low <= p <= high)
        fault = _failing_at(fail_at if self.faults else None)
        try:
            result = execute_rollback(
                self.session, [SPEC], {1: target}, committed=committed, fault=fault
            )
        except _Fail:
            self.check_database()  # all or nothing: still the state before it
            self.restart(0)
            return
        assert result.checkpoint == target
        assert result.progress == {1: (target, self._events(target))}
        self.store.rollback(target, {Item: result.restored[SPEC.table]})
        self._forget_above(target)
        self.states.append(dict(self.states[target]))
        self.committed = self.processed = self.batch_end = target
        self.cp = target + 1
        self.boundaries = [b for b in self.boundaries if b <= target]
        self.seal_points = {p for p in self.seal_points if p <= target}
        self.last_change = {}
        # Restored ids are held in memory again, present ones may be evicted later.
        self.seen |= self.states[target].keys()
        self.check_database()
        # Memory follows without a reload: every read answers the restored state.
        for id in READ_IDS:
            self._get(id)
        for group in GROUPS:
            self._find(group)

    @rule()
    def evict(self) -> None:
        self.store.evict_committed()
        # Back at half the target, unless only unwritten changes are left.
        dirty_only = all(id in self.last_change for id in self.table.values)
        assert self.store.size() <= self.target // 2 or dirty_only, self.table.values

    @rule(roll=st.integers(0, 5))
    def restart(self, roll: int = 0) -> None:
        """A crash and restart (only one draw in six: restarts discard progress)."""
        if roll:
            return
        self._new_store()
        self.check_database()

    def check_database(self) -> None:
        def rows(query: str) -> list[tuple[Any, ...]]:
            q = sql.SQL(query).format(s=sql.Identifier(self.schema_name))
            return self.session.conn.execute(q).fetchall()

        assert {r[0]: (r[1], r[2]) for r in rows('SELECT id, "group", n FROM {s}.item')} == (
            self.states[self.committed]
        )
        raw = [(c, k, id, c) for c in sorted(self.raw) for k, id in enumerate(self.raw[c])]
        assert rows(
            "SELECT block_number, log_index, data, checkpoint FROM {s}._indexer_raw_events"
            " ORDER BY 1, 2"
        ) == [r for r in raw if r[3] <= self.committed]
        assert set(rows("SELECT id, _checkpoint FROM {s}._indexer_h_item")) == self.history_db
        assert {c for (c,) in rows("SELECT id FROM {s}._indexer_checkpoints")} == (
            self.checkpoints_db
        )
        committed, chains = read_state(self.session.conn, self.schema_name)
        assert committed == self.committed
        assert chains.get(1, (0, 0)) == (self.committed, self._events(self.committed))

    # -- after every step: memory against the model, without side effects ---

    @invariant()
    def memory_matches_model(self) -> None:
        if not hasattr(self, "store"):
            return
        assert self.store.committed == self.committed
        assert self.store.processed == self.processed
        assert self.committed <= self.batch_end <= self.processed <= self.cp
        held = self.table.values
        for id in READ_IDS:
            if id in held:
                assert _as_model(held[id]) == self.model.get(id), (id, held[id])
                continue
            assert id not in self.last_change, f"{id!r}: an unwritten change was evicted"
            if self.table.known_absent(id):
                assert id not in self.states[self.committed], f"{id!r} is stored, not absent"
            else:
                assert not (self.started_empty and id not in self.seen), (
                    f"{id!r} was never stored, yet memory does not know it is absent"
                )
        if self.finding:
            for group in GROUPS:
                found = self.table.find_cached("group", group)
                if found is not None:
                    self._check_found(group, found)


@pytest.mark.slow
def test_store_machine(database_url: str, schema: str) -> None:
    class Machine(StoreMachine):
        url = database_url
        schema_name = schema

    run: Any = Machine.TestCase
    run.settings = settings(
        max_examples=500,
        stateful_step_count=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        # No "explain" phase: on a failure it re-ran the machine for minutes.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    )
    try:
        run().runTest()
    finally:
        if Machine.shared is not None:
            Machine.shared.close()


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
    query = sql.SQL('SELECT "group", n FROM {}.item').format(sql.Identifier(schema))
    with psycopg.connect(database_url) as conn:
        assert conn.execute(query).fetchall() == [("x", 3)]  # the state at the write's checkpoint
    m.read(("get", "a"))  # memory holds the newer value
    assert m._get("a") == Item(id="a", group="y", n=4)
    assert Machine.shared is not None
    Machine.shared.close()
