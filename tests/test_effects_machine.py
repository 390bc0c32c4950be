"""Hypothesis state machine: effect outputs under eviction, slow and failing writes, restarts.

The machine plays the runtime around one cached effect.  Handlers call it
through the real ``EffectCalls`` (memory, then the database, then the
function), one call at a time or as a preload pass's prefetch.  Ended
batches go to the real ``Writer`` (``Writer.write``, with
``commit_changeset`` inside), which runs in a Trio run of its own thread,
so a write stays in flight -- snapshot taken, transaction not begun --
while more calls and evictions happen, until a rule finishes it (a slow
write) or the capacity rule waits for it.  Writes fail at a step:
permanently (the run stops, the next one starts from the database) or
transiently (the writer retries on a new connection, once after the answer
to COMMIT was lost).  The store runs at targets of 1 to 4 objects.  A
restart may come with a new version of the function whose return type the
stored outputs no longer fit, so they are recomputed and written again.

The model knows, per input, the version of its committed output and the
checkpoint of its unwritten one.  Invariants, after every step:
* a call answers the current version's output and runs the function only
  for an input with neither an unwritten output nor a stored one that
  fits: an unwritten output is never evicted (nor recomputed), a stored one
  is loaded instead of recomputed;
* every unwritten output is in memory, and a write carries exactly the
  unwritten outputs up to its checkpoint;
* the effect table holds exactly the committed outputs, each once;
* the row count the writer keeps and reports (``Writer.statistics().effect_rows``)
  equals ``count(*)`` of the table: while a write is in flight, after
  failures and retries, and after recomputed outputs replace stored ones.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import pytest
import trio
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from psycopg import sql

from indexer import Metrics, effect
from indexer.persist import (
    ChainProgress,
    Changeset,
    RetryingSession,
    RetryPolicy,
    Session,
    connect,
    count_effect_rows,
    create_effect_tables,
    create_schema,
    effect_table,
    read_state,
)
from indexer.runtime import Batch, Writer
from indexer.runtime._effect_calls import EffectCalls
from indexer.store import Store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from indexer import Effect

T = TypeVar("T")
NAME = "label"
INPUTS = st.integers(0, 2)
# Version 0 of the function returns an int, version 1 a str: after a change
# of version every stored output is invalid and is recomputed.
OUTPUT: tuple[Callable[[int], Any], ...] = (lambda n: n * 10, lambda n: f"n{n}")
# How a write ends: "ok", or failing at a step.  Permanently before COMMIT
# (the run stops with nothing written) or after it (the run stops, the write
# landed); transiently before the effect rows (retried from scratch), after
# them (the retry writes them again) or after COMMIT (its answer lost: the
# writer asks the database whether it landed, and counts the rows again).
PLANS = [
    *["ok"] * 4,
    *[f"permanent:{step}" for step in ("commit", "committed")],
    *[f"transient:{step}" for step in ("entities", "progress", "commit", "committed")],
]
# After a handler's call the batch goes on (None) or ends, handing the
# writer a write that ends as planned: one rule reaches a failing write.
END = st.sampled_from([None] * 6 + PLANS)


class _Fail(Exception):
    pass


def _versions(calls: list[int]) -> tuple[Effect[int, Any], Effect[int, Any]]:
    """Two versions of one effect; every call of either is appended to ``calls``."""

    async def label_v0(n: int) -> int:
        calls.append(n)
        return int(OUTPUT[0](n))

    async def label_v1(n: int) -> str:
        calls.append(n)
        return str(OUTPUT[1](n))

    return effect(name=NAME)(label_v0), effect(name=NAME)(label_v1)


class _TrioThread:
    """A Trio run in a thread of its own.

    Rules call into it, and a write task can stay suspended in it across
    rules: that is a slow write.  Nothing in it waits on time (the writer's
    retries back off by zero seconds), so it needs no mock clock, whose
    autojump would keep the idle loop spinning between calls.
    """

    def __init__(self) -> None:
        ready = threading.Event()
        self.error: BaseException | None = None

        async def main() -> None:
            self.token = trio.lowlevel.current_trio_token()
            self.stop = trio.Event()
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                ready.set()
                await self.stop.wait()
                nursery.cancel_scope.cancel()

        def thread() -> None:
            try:
                trio.run(main)
            except BaseException as exc:  # re-raised by close()
                self.error = exc
                ready.set()

        self.thread = threading.Thread(target=thread, daemon=True)
        self.thread.start()
        ready.wait()

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args, trio_token=self.token)

    def close(self) -> None:
        if self.error is None:
            trio.from_thread.run_sync(self.stop.set, trio_token=self.token)
        self.thread.join()
        if self.error is not None:
            raise self.error


@dataclass
class _Flight:
    """A write started by the machine: suspended after its snapshot until released."""

    upto: int
    carried: dict[int, int]  # input -> version of each unwritten output it must carry
    plan: str  # "ok", or "permanent:<step>" / "transient:<step>": fail there once
    write: Changeset | None = None
    error: Exception | None = None
    finished: bool = False
    reached: trio.Event = field(default_factory=trio.Event)
    release: trio.Event = field(default_factory=trio.Event)
    done: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class EffectsMachine(RuleBasedStateMachine):
    url: str
    schema_name: str
    # The connections every example of a test uses (opening them was most of a restart).
    shared: Session | None = None
    shared_writer: Session | None = None

    writer: Writer
    effects: EffectCalls

    @initialize(capacity=st.integers(1, 4))
    def setup(self, capacity: int) -> None:
        self.target = capacity
        self.loader = self._empty_database()
        self.loop = _TrioThread()
        self.calls: list[int] = []
        self.versions = _versions(self.calls)
        self.version = 0
        self.stored: dict[int, int] = {}  # input -> version of its committed output
        self.committed = 0
        self.flight: _Flight | None = None
        self.metrics = Metrics()  # one per example: building it was a tenth of a restart
        self._start_run()

    def _empty_database(self) -> Session:
        cls = type(self)
        if cls.shared is None:
            cls.shared = connect(self.url, self.schema_name)
            create_schema(cls.shared.conn, self.schema_name, [], {1: 0})
            create_effect_tables(cls.shared.conn, self.schema_name, [NAME])
        empty = "DELETE FROM {s}.{e}; DELETE FROM {s}._indexer_chains;" + (
            " UPDATE {s}._indexer_state SET checkpoint = 0"
        )
        ident = sql.Identifier
        with cls.shared.conn.transaction():
            cls.shared.conn.execute(
                sql.SQL(empty).format(s=ident(self.schema_name), e=ident(effect_table(NAME)))
            )
        return cls.shared

    def teardown(self) -> None:
        if not hasattr(self, "loop"):
            return
        if self.flight is not None:
            self.loop.run(self._cancel, self.flight)
        if hasattr(self, "writer"):
            type(self).shared_writer = self.writer.db.session
        self.loop.close()

    @classmethod
    def close_shared(cls) -> None:
        for session in (cls.shared, cls.shared_writer):
            if session is not None:
                session.close()

    # -- the run around the store --------------------------------------------

    def _start_run(self) -> None:
        """Start as runtime._run does: frontiers and effect row counts from the database."""
        # The previous run's writer connection (possibly a reconnected one).
        session = self.writer.db.session if hasattr(self, "writer") else self.shared_writer
        self.session = session or connect(self.url, self.schema_name, writer=True)
        committed, _chains = read_state(self.loader.conn, self.schema_name)
        assert committed == self.committed, "the database is not the model's"
        self.store = Store([], target=self.target, effects=[(NAME, True)])
        self.store.reset_frontiers(committed)
        self.cache = self.store.effects[NAME]
        url, schema = self.url, self.schema_name
        self.writer = Writer(
            self.store,
            RetryingSession(
                self.session,
                reconnect=lambda: connect(url, schema, writer=True),
                retry=RetryPolicy(base=0.0, cap=0.0),
            ),
            effect_rows={NAME: count_effect_rows(self.loader, NAME)},
            metrics=self.metrics,
            fault=self._fault,
            pre_write=self._pre_write,
        )
        self.effects = EffectCalls(self.store, RetryingSession(self.loader), self.metrics)
        self.pending: dict[int, int] = {}  # input -> checkpoint of its unwritten output
        self.processed = committed
        self.cp = committed + 1
        self.ended: list[int] = []  # ends of the batches not written yet

    @property
    def eff(self) -> Effect[int, Any]:
        return self.versions[self.version]

    def _needs_call(self, n: int) -> bool:
        return n not in self.pending and self.stored.get(n) != self.version

    def _advance(self) -> None:
        self.processed = self.store.processed = self.cp

    # -- what the processor does -------------------------------------------

    # Few rules, each doing a whole step of the runtime, so that the
    # interleavings that matter (a write in flight while calls and evictions
    # go on; a new version, then a write) take few steps to reach.
    @rule(ns=st.lists(INPUTS, max_size=3), end=END)
    def call(self, ns: list[int], end: str | None = None) -> None:
        """A handler's effect calls: one through ctx.effect (EffectCalls.get), or
        several as a preload pass collects them (EffectCalls.prefetch).  Then the
        batch may end, handing the writer a write that ends as ``end`` says."""
        want = sorted({n for n in ns if self._needs_call(n)})
        before = len(self.calls)
        if len(ns) == 1:
            got = self.loop.run(self.effects.get, self.eff, ns[0], self.cp)
            assert got == OUTPUT[self.version](ns[0])
        elif ns:
            wanted = {self.eff.key(n)[0]: (self.eff.key(n)[1], n) for n in ns}
            self.loop.run(self.effects.prefetch, {self.eff: wanted}, self.cp)
        assert sorted(self.calls[before:]) == want, f"ran {self.calls[before:]}, not {want}"
        for n in want:
            self.pending[n] = self.cp
        self._advance()
        if end is not None:
            self.end_batch(end)

    def end_batch(self, plan: str = "ok") -> None:
        """The batch goes to the writer (``plan``: how its write ends, if it starts one)."""
        self._advance()
        self.ended.append(self.cp)
        self.cp += 1
        self.effects.new_batch()
        self._hand_over(plan)

    @rule(plan=st.sampled_from(PLANS))
    def evict(self, plan: str = "ok") -> None:
        """The capacity rule between batches: drop written outputs past half the
        target; still over it with a write in flight, wait for that write (the
        writer then takes the batches that waited, ending as ``plan`` says)."""
        self.store.evict_committed()
        while self.store.over_target() and self.flight is not None:
            self.finish_write(plan)
            self.store.evict_committed()
        # Back at half the target, unless only unwritten outputs are left.
        keys = {self.eff.key(n)[0] for n in self.pending}
        assert self.store.size() <= self.target // 2 or set(self.cache.values) <= keys

    # -- what the writer does ----------------------------------------------

    def _fault(self, step: str) -> None:
        """Writer's fault hook (in its worker thread): fail the planned step once."""
        flight = self.flight
        if flight is None or flight.plan.partition(":")[2] != step:
            return
        kind = flight.plan.partition(":")[0]
        flight.plan = "ok"
        if kind == "permanent":
            raise _Fail(step)
        raise psycopg.OperationalError(f"simulated: connection lost at {step}")

    async def _pre_write(self, write: Changeset) -> None:
        assert self.flight is not None
        self.flight.write = write
        self.flight.reached.set()
        await self.flight.release.wait()

    async def _start(self, flight: _Flight, batch: Batch) -> None:
        async def go() -> None:
            with flight.scope:
                try:
                    await self.writer.write(batch)
                    flight.finished = True
                except Exception as exc:
                    flight.error = exc
            flight.reached.set()
            flight.done.set()

        self.loop.nursery.start_soon(go)
        await flight.reached.wait()

    async def _finish(self, flight: _Flight) -> None:
        flight.release.set()
        await flight.done.wait()

    async def _cancel(self, flight: _Flight) -> None:
        flight.scope.cancel()
        await flight.done.wait()

    def _hand_over(self, plan: str) -> None:
        """An idle writer takes every batch waiting (it coalesces them) and snapshots
        them; the transaction then waits for finish_write (a slow write)."""
        if self.flight is not None or not self.ended:
            return
        upto = self.ended[-1]
        carried = {n: self.version for n, c in self.pending.items() if c <= upto}
        flight = self.flight = _Flight(upto, carried, plan)
        self.loop.run(self._start, flight, Batch(upto, {1: ChainProgress(1, 0, upto, 0)}))
        assert flight.write is not None, flight.error
        want = sorted((*self.eff.key(n), OUTPUT[v](n)) for n, v in carried.items())
        assert sorted(flight.write.effects.get(NAME, [])) == want
        self.ended = []

    @precondition(lambda self: self.flight is not None)
    @rule(plan=st.sampled_from(PLANS))
    def finish_write(self, plan: str = "ok") -> None:
        """The write in flight ends; the writer takes the batches that waited (``plan``)."""
        flight = self.flight
        assert flight is not None
        kind, _, step = flight.plan.partition(":")
        fails = kind == "permanent"
        self.loop.run(self._finish, flight)
        self.flight = None
        if fails:
            assert isinstance(flight.error, _Fail), flight.error
            if step == "committed":
                self._committed(flight)
            # The run stops; the next one starts from the database.
            self._start_run()
            return
        assert flight.error is None, flight.error
        assert flight.finished
        self._committed(flight)
        self._hand_over(plan)

    def _committed(self, flight: _Flight) -> None:
        self.committed = flight.upto
        self.stored.update(flight.carried)
        for n in flight.carried:
            del self.pending[n]

    @rule(new_version=st.booleans())
    def restart(self, new_version: bool) -> None:
        """A crash (while a write waits: nothing of it is committed) and a restart,
        maybe with a new version of the function (stored outputs no longer fit)."""
        if self.flight is not None:
            self.loop.run(self._cancel, self.flight)
            assert not self.flight.finished
            assert self.flight.error is None
            self.flight = None
        if new_version:
            self.version = 1 - self.version
        self._start_run()

    # -- after every step ----------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        if not hasattr(self, "store"):
            return
        assert (self.store.committed, self.store.processed) == (self.committed, self.processed)
        for n, cp in self.pending.items():
            key = self.eff.key(n)[0]
            assert key in self.cache.values, f"the unwritten output for {n} was evicted"
            assert self.cache.values[key] == OUTPUT[self.version](n)
            assert self.cache.pending.get(key, ("", None))[1] == cp, (n, self.cache.pending)
        assert len(self.cache.pending) == len(self.pending)
        rows = self.loader.conn.execute(
            sql.SQL("SELECT key, input, output FROM {}.{}").format(
                sql.Identifier(self.schema_name), sql.Identifier(effect_table(NAME))
            )
        ).fetchall()
        want = {self.eff.key(n)[0]: (n, OUTPUT[v](n)) for n, v in self.stored.items()}
        assert len(rows) == len(want)
        assert {k: (i, o) for k, i, o in rows} == want
        # len(rows) is count(*): one query per step instead of two.
        assert self.writer.statistics().effect_rows[NAME] == len(rows), (
            self.writer.statistics().effect_rows,
            len(rows),
        )


@pytest.mark.slow
def test_effects_machine(database_url: str, schema: str) -> None:
    class Machine(EffectsMachine):
        url = database_url
        schema_name = schema

    run: Any = Machine.TestCase
    run.settings = settings(
        max_examples=500,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        # No "explain" phase: on a failure it re-ran the machine for minutes.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    )
    try:
        run().runTest()
    finally:
        Machine.close_shared()


def test_effects_machine_sanity(database_url: str, schema: str) -> None:
    """The machine's plumbing, rule by rule: a slow write with calls and evictions meanwhile."""

    class Machine(EffectsMachine):
        url = database_url
        schema_name = schema

    m = Machine()
    try:
        m.setup(capacity=4)
        m.call([1])
        m.call([2])
        m.call([3], end="ok")  # the writer starts: the write carries 1, 2 and 3, and waits
        m.evict("ok")  # past half the target, but every output is unwritten: none goes
        assert sorted(m.pending) == [1, 2, 3]
        m.call([0, 1])  # 0 runs, 1 comes from memory
        m.matches_model()
        m.finish_write("ok")
        m.matches_model()
        assert m.writer.statistics().effect_rows[NAME] == 3
        m.evict("ok")  # 2 and 3 are written and the least recently used: they go
        assert list(m.cache.values) == [m.eff.key(1)[0], m.eff.key(0)[0]]
        m.call([2])  # loaded, not run again
        assert m.calls == [1, 2, 3, 0]
        m.restart(new_version=True)
        m.call([2], end="transient:commit")  # the stored int no longer fits: run again
        m.finish_write("ok")  # ... and replace it, after a retry
        m.matches_model()
        assert m.stored == {1: 0, 2: 1, 3: 0}
        assert m.writer.statistics().effect_rows[NAME] == 3
    finally:
        m.teardown()
        Machine.close_shared()
