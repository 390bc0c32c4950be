"""Hypothesis state machine: whole runs of the indexer against a chain that reorganises.

The machine scripts a chain (new blocks, reorgs within ``max_reorg_depth``,
reorgs deeper than it), and runs the indexer to the head between any two
steps (every run is a restart), sometimes with a write or a rollback failing
part way.  The reference model is the chain itself: after every run that
succeeds, the tables equal a from-scratch computation over the final
canonical chain (``expected``), progress is the head, and every batch's
raw events and checkpoint rows are there exactly once.

* A failing write or rollback fails the run, and the next run still ends
  exact: nothing half-written survives.
* A reorg deeper than the window, once the indexer holds the replaced
  blocks, must stop the run with ReorgTooDeepError and leave the database
  as it was; never continue silently on a forked state.  A ``--reset`` run
  then rebuilds from scratch.
* Two block handlers (every 2nd block from 1, every 3rd from 2) run
  through all of it; the model (``expected_block_runs``) says exactly
  which canonical blocks each ran on, once each, after the block's log
  handlers and in declaration order.
* The hand-off between the processing loop and the writer is drawn as
  data (``Handoff``): the first run, and any run after ``plan_handoff``,
  processes one block per batch, holds chosen writes (``Gate``) so batches
  pile up in the loop and in the writer's coalescing, lets the loop run dry
  before chosen blocks, waits for commits or for room, and may reorganise
  the chain as a chosen write starts, so that a rollback drains pending
  batches first.  A lost or overwritten batch fails the run it happens in,
  and the failure shrinks to steps that print the schedule.

Runs answer from the chain in-process, with database calls inline, under a
mock clock that moves only when every task waits (``_gate.run_driven``):
the interleaving a schedule makes replays exactly.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from indexer import ReorgTooDeepError, RunOptions, load_config, load_handlers, run_project
from indexer.testing import RpcServer, ScriptedChain

from ._chains import (
    TOKENS,
    TRANSFER,
    assert_same,
    expected,
    framework_rows,
    make_rpc_project,
    progress,
    random_logs,
    raw_rows,
    stored_checkpoints,
    stored_raw,
    tables,
)
from ._gate import FAST_FAILURE, Gate, Hold, PacedTransport, run_driven

if TYPE_CHECKING:
    from collections.abc import Callable

DEPTH = 4
# The capacity target of "tight" hand-offs: a few blocks' accounts.
TIGHT = 12
WRITE_STEPS = ("begin", "entities", "progress", "commit")
# (handler, every, start) of the block handlers below.
INTERVALS = (("a", 2, 1), ("b", 3, 2))
BLOCK_HANDLERS = """

from indexer import Block, on_block


class BlockRun(Entity):  # one per block handler run that stands
    id: str  # "<handler>:<block>"
    hash: str
    parent_hash: str
    seen: str  # each token's last_block, as the handler found it


class Ran(Entity):  # one row: every run of both handlers, in order
    id: str
    runs: str  # "a:1 b:2 a:3 ..."
    # Both handlers rewrite it, often at adjacent blocks: a rollback between
    # two runs must bring back the earlier value.  (And one row rather than
    # a read of BlockRun per run: each miss costs a database round trip.)


async def record(name: str, block: Block, ctx: Context) -> None:
    ran = await ctx.get(Ran, "all") or Ran("all", "")
    ctx.set(ran.replace(runs=f"{ran.runs} {name}:{block.number}".lstrip()))
    seen = []
    for token in TOKENS:
        found = await ctx.get(Token, token)
        seen.append(str(found.last_block if found else 0))
    ctx.set(BlockRun(f"{name}:{block.number}", block.hash, block.parent_hash, ",".join(seen)))


@on_block(chain=1, every=2)
async def every_second(block: Block, ctx: Context) -> None:
    await record("a", block, ctx)


@on_block(chain=1, every=3, start=2)
async def every_third(block: Block, ctx: Context) -> None:
    await record("b", block, ctx)
"""


def expected_block_runs(chain: ScriptedChain) -> tuple[str, dict[str, tuple[str, str, str]]]:
    """The model: each handler once per canonical block of its interval.

    (Ran's runs, BlockRun rows): in block order, a before b in a block
    (declaration order); each sees its block's Transfers (log handlers
    run first).
    """
    last = dict.fromkeys(TOKENS, 0)
    order: list[str] = []
    runs = {}
    for n in range(1, chain.head + 1):
        for lg in chain.logs(n, n, topic0s=[TRANSFER]):
            last[lg["address"]] = n
        block = chain.block(n)
        for name, every, start in INTERVALS:
            if n >= start and (n - start) % every == 0:
                order.append(f"{name}:{n}")
                seen = ",".join(str(last[t]) for t in TOKENS)
                runs[f"{name}:{n}"] = (block.hash, block.parent_hash, seen)
    return " ".join(order), runs


class _Fault(Exception):
    pass


@dataclass(frozen=True)
class Handoff:
    """How a run hands batches over.

    One block per batch, from an empty schema if ``rebuild`` (``--reset``: the
    whole chain again); ``holds`` as for ``Gate``; the loop runs dry before
    the run's ``dry``-th blocks (1: its second); ``interval`` is the writer's
    coalescing window; ``mode`` "sync" waits for every commit, "tight" for
    room (capacity target ``TIGHT``), so the feed runs ahead.

    ``reorg_at``: as the run's write ``reorg_at`` starts (or, if the run has
    fewer, as the feed polls the head a second time), the chain's last
    ``replaced`` blocks are replaced by ``replaced + 1`` new ones (logs from
    ``seed``).  The run goes on to the new head, so its feed sees the reorg
    while that write, and whatever the loop holds, is uncommitted: the
    rollback drains them first.
    """

    holds: tuple[Hold | None, ...]
    dry: frozenset[int] = frozenset()
    reorg_at: int | None = None
    replaced: int = 1
    interval: float = 0.0
    mode: str = "background"
    rebuild: bool = False
    seed: int = 0


HANDOFFS = st.builds(
    Handoff,
    holds=st.lists(
        st.one_of(st.none(), st.builds(Hold, st.none() | st.integers(1, 3))),
        min_size=1,
        max_size=5,
    ).map(tuple),
    dry=st.frozensets(st.integers(1, 6), max_size=2),
    reorg_at=st.none() | st.integers(0, 3),
    replaced=st.integers(1, DEPTH),
    interval=st.sampled_from([0.0, 0.5]),
    mode=st.sampled_from(["background", "background", "sync", "tight"]),
    rebuild=st.booleans(),
    seed=st.integers(0, 2**16),
)


class ReorgMachine(RuleBasedStateMachine):
    url: str
    schema_name: str

    @initialize(seed=st.integers(0, 2**16), head=st.integers(3, 12), first=HANDOFFS)
    def setup(self, seed: int, head: int, first: Handoff) -> None:
        """A chain, and a first run from scratch under the hand-off schedule ``first``."""
        self.rng = random.Random(seed)
        self.chain = ScriptedChain(1, head=head, logs=random_logs(self.rng, range(1, head + 1)))
        self.tmp = Path(tempfile.mkdtemp(prefix="reorg-machine-"))
        # Never dialled: runs answer in-process (see _options).  Loaded
        # once; each run gets the head as its end block.
        # No end block in the file: the block handlers' `end` defaults to
        # it when they are loaded (once, here), and every run sets its own.
        project = make_rpc_project(
            self.tmp,
            self.schema_name,
            "http://scripted.invalid/",
            end_block=None,
            max_reorg_depth=DEPTH,
            raw_events=True,
        )
        handlers = project / "handlers.py"
        handlers.write_text(handlers.read_text() + f"\n\nTOKENS = {TOKENS!r}\n" + BLOCK_HANDLERS)
        self.config = load_config(project)
        self.handlers = load_handlers(self.config)
        self.synced = -1  # the head the last successful run reached
        self.reset_next = True  # the first run starts from an empty schema
        self.deep_pending = False
        self.rollbacks: list[int] = []  # blocks kept by the last run's rollbacks
        # A lost batch fails this very run: the counterexample is one step.
        self.handoff: Handoff | None = first
        self.sync(None)

    def teardown(self) -> None:
        if hasattr(self, "tmp"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the chain ---------------------------------------------------------

    @rule(blocks=st.integers(1, 4))
    def advance(self, blocks: int) -> None:
        first = self.chain.head + 1
        self.chain.advance(blocks, random_logs(self.rng, range(first, first + blocks)))

    @rule(depth=st.integers(1, DEPTH), grow=st.integers(0, 2))
    def reorg(self, depth: int, grow: int) -> None:
        depth = min(depth, self.chain.head - 1)
        if depth < 1:
            return
        first = self.chain.head - depth + 1
        length = depth + grow
        self.chain.reorg(depth, random_logs(self.rng, range(first, first + length)), length=length)

    @precondition(lambda self: self.synced == self.chain.head and self.chain.head > DEPTH + 3)
    @rule(extra=st.integers(2, 3))
    def deep_reorg(self, extra: int) -> None:
        """Replace every block whose hash the indexer kept, and one more below."""
        depth = min(DEPTH + extra, self.chain.head - 1)
        first = self.chain.head - depth + 1
        self.chain.reorg(
            depth, random_logs(self.rng, range(first, first + depth + 1)), length=depth + 1
        )
        self.deep_pending = True

    # -- the indexer -------------------------------------------------------

    @rule(plan=HANDOFFS)
    def plan_handoff(self, plan: Handoff) -> None:
        """The next run hands over as ``plan`` says."""
        self.handoff = plan

    @rule(
        fail=st.one_of(
            st.none(),
            st.none(),
            st.tuples(st.sampled_from([*WRITE_STEPS, "rollback"]), st.integers(0, 3)),
        )
    )
    def sync(self, fail: tuple[str, int] | None) -> None:
        """Run the indexer to the head; ``fail=(step, k)`` fails the k-th such step."""
        fired: list[str] = []
        seen: dict[str, int] = {}

        def fault(step: str) -> None:
            seen[step] = seen.get(step, 0) + 1
            if fail is not None and step == fail[0] and seen[step] == fail[1] + 1:
                fired.append(step)
                raise _Fault(step)

        if self.handoff is not None and self.handoff.rebuild:
            self.reset_next = True
        before = tables(self.url, self.schema_name) if self.deep_pending else None
        # A mid-run reorg adds a block: the run ends there, so it sees the reorg.
        grows = self.handoff is not None and self.handoff.reorg_at is not None
        end = self.chain.head + 1 if grows else self.chain.head
        config = self.config
        chain = dataclasses.replace(config.chains[0], end_block=end)
        config = dataclasses.replace(config, chains=(chain,))
        options = self._options(fault, self.handoff)
        self.handoff = None
        error = run_driven(lambda: self._run(config, options))
        if error is None:
            assert not fired
            self.reset_next = False
            self.synced = self.chain.head
            self.deep_pending = False
            self._check_database()
            return
        if isinstance(error, ReorgTooDeepError):
            assert self.deep_pending, f"reorg within max_reorg_depth reported as too deep: {error}"
            assert "max_reorg_depth=4" in str(error)
            # Nothing was rolled back or written on top of the forked state.
            assert tables(self.url, self.schema_name) == before
            self.reset_next = True  # what the message tells the user to do
            return
        assert isinstance(error, _Fault), f"unexpected error: {error!r}"
        assert fired

    def _check_database(self) -> None:
        """The database after a successful run: the final chain's, every batch there once.

        Tables and progress are the head's; block handler runs the
        model's (``expected_block_runs``).  Raw events: the canonical
        chain's (a lost batch leaves a hole, a repeated one a duplicate).
        Checkpoints: one per block of the last window (older ones were
        pruned), in block order; the state row and the window's raw events
        name them.  Short messages: see ``assert_same``.
        """
        url, schema, chain, head = self.url, self.schema_name, self.chain, self.chain.head
        assert_same("progress", progress(url, schema), head)
        accounts, tokens = tables(url, schema)
        want_accounts, want_tokens = expected(chain)
        assert_same("accounts", accounts, want_accounts)
        assert_same("tokens", tokens, want_tokens)
        want_order, want_runs = expected_block_runs(chain)
        ran = framework_rows(url, schema, "SELECT runs FROM {}.ran")
        assert_same("block handler runs, in order", ran, [(want_order,)])
        runs = framework_rows(url, schema, "SELECT id, hash, parent_hash, seen FROM {}.block_run")
        assert_same("block handler runs", {r[0]: r[1:] for r in runs}, want_runs)
        raw = stored_raw(url, schema)
        assert_same("raw events", [row[:-1] for row in raw], raw_rows(chain))
        rows = stored_checkpoints(url, schema)
        assert_same(
            "checkpoint rows",
            [row[1:] for row in rows],
            [
                (1, b, chain.block(b).hash, len(chain.block(b).logs))
                for b in range(max(1, head - DEPTH), head + 1)
            ],
        )
        ids = {block: cp for cp, _chain, block, _hash, _events in rows}
        assert_same(
            "raw event checkpoints",
            [row[-1] for row in raw if row[0] in ids],
            [ids[row[0]] for row in raw if row[0] in ids],
        )
        state = framework_rows(url, schema, "SELECT checkpoint FROM {}._indexer_state")
        assert_same("state checkpoint", state, [(ids[head],)])

    def _options(self, fault: Any, handoff: Handoff | None) -> RunOptions:
        """The next run's options: the fault hook, and the hand-off's schedule if any."""
        transport = PacedTransport(RpcServer(self.chain).transport())
        client = {"transport": transport, "backoff_base": 0.01, "backoff_cap": 0.05}
        options = RunOptions(
            # No watchdog: its periodic check would hide a hang from drive_clock.
            stall_seconds=math.inf,
            database_url=self.url,
            reset=self.reset_next,
            handle_signals=False,
            write_interval=0.0,
            fault=fault,
            rpc_tuning={"client_options": client},
        )
        if handoff is None:
            return options
        done = None if self.reset_next else progress(self.url, self.schema_name)
        first = 1 if done is None else done + 1
        transport.dry = {first + offset for offset in handoff.dry}
        gate = Gate(handoff.holds)
        if handoff.reorg_at is not None:
            fire = self._reorg_once(handoff)
            polls: list[int] = []

            def on_write(k: int) -> None:
                if k == handoff.reorg_at:
                    fire()

            def on_request(methods: set[str], _blocks: set[int]) -> None:
                if "eth_blockNumber" in methods:
                    polls.append(1)
                    if len(polls) == 2:
                        fire()

            gate.on_write, transport.on_request = on_write, on_request
        return dataclasses.replace(
            options,
            pre_write=gate,
            metrics=gate.metrics,
            chunk_logs=1,
            write_interval=handoff.interval,
            sync_writes=handoff.mode == "sync",
            target=TIGHT if handoff.mode == "tight" else options.target,
            rpc_tuning={"client_options": client, "initial_span": 1, "max_span": 1},
        )

    def _reorg_once(self, handoff: Handoff) -> Callable[[], None]:
        """The handoff's mid-run reorg, to fire once (the head grows by one block)."""
        depth = min(handoff.replaced, self.chain.head - 1)
        top = self.chain.head - depth + 1
        logs = random_logs(random.Random(handoff.seed), range(top, top + depth + 1))
        fired: list[bool] = []

        def fire() -> None:
            if not fired:
                fired.append(True)
                self.chain.reorg(depth, logs, length=depth + 1)

        return fire

    async def _run(self, config: Any, options: RunOptions) -> BaseException | None:
        self.rollbacks = []
        try:
            summary = await run_project(config, self.handlers, options)
            self.rollbacks = [block for _chain, block, _rows, _seconds in summary.rollbacks]
        except BaseException as exc:
            while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]
            if isinstance(exc, (ReorgTooDeepError, _Fault)):
                return exc
            raise
        return None


@pytest.mark.slow
def test_reorg_machine(database_url: str, schema: str) -> None:
    class Machine(ReorgMachine):
        url = database_url
        schema_name = schema

    case: Any = Machine.TestCase
    case.settings = settings(
        max_examples=100,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        **FAST_FAILURE,
    )
    case().runTest()


def test_reorg_machine_scripted(database_url: str, schema: str) -> None:
    """One fixed walk through the rules, each outcome checked (the machine's own plumbing)."""

    class Machine(ReorgMachine):
        url = database_url
        schema_name = schema

    m = Machine()
    # The first run holds its first write until nothing else can move, lets
    # the loop run dry before block 3 and holds the next write for 2 blocks.
    m.setup(seed=7, head=10, first=Handoff(holds=(Hold(), Hold(2)), dry=frozenset({2})))
    assert m.synced == 10
    m.reorg(depth=3, grow=1)  # head 11
    m.sync(("rollback", 0))  # the rollback fails: the run fails, nothing half-done
    m.sync(None)
    m.advance(4)
    m.sync(None)
    # The chain reorganises as the run's second write starts (held until
    # nothing else can move): blocks 16..18 become 16..19 while processed
    # batches are uncommitted; the rollback drains them first.
    m.advance(3)
    m.plan_handoff(Handoff(holds=(None, Hold()), reorg_at=1, replaced=3))
    m.sync(None)
    assert m.rollbacks == [15]
    assert m.synced == m.chain.head == 19
    m.deep_reorg(extra=2)
    before = tables(database_url, schema)
    m.sync(None)
    assert m.reset_next  # ReorgTooDeepError, database untouched
    assert tables(database_url, schema) == before
    m.sync(None)  # the reset run rebuilds from the canonical chain
    assert m.synced == m.chain.head
    m.teardown()
