"""Hypothesis state machine: whole runs of the indexer against a chain that reorganises.

The machine scripts a chain (new blocks, reorgs within ``max_reorg_depth``,
reorgs deeper than it), and runs the indexer to the head between any two
steps (every run is a restart), sometimes with a write or a rollback failing
part way.  The reference model is the chain itself: after every run that
succeeds, the tables equal a from-scratch computation over the final
canonical chain (``expected``), and progress is the head.

* A failing write or rollback fails the run, and the next run still ends
  exact: nothing half-written survives.
* A reorg deeper than the window, once the indexer holds the replaced
  blocks, must stop the run with ReorgTooDeepError and leave the database
  as it was; never continue silently on a forked state.  A ``--reset`` run
  then rebuilds from scratch.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from indexer import ReorgTooDeepError
from indexer.testing import ScriptedChain, open_rpc_server

from ._chains import (
    expected,
    make_rpc_project,
    progress,
    random_logs,
    run,
    set_end_block,
    tables,
)

DEPTH = 4
WRITE_STEPS = ("begin", "entities", "progress", "commit")


class _Fault(Exception):
    pass


class ReorgMachine(RuleBasedStateMachine):
    url: str
    schema_name: str

    @initialize(seed=st.integers(0, 2**16), head=st.integers(3, 12))
    def setup(self, seed: int, head: int) -> None:
        self.rng = random.Random(seed)
        self.chain = ScriptedChain(1, head=head, logs=random_logs(self.rng, range(1, head + 1)))
        self.tmp = Path(tempfile.mkdtemp(prefix="reorg-machine-"))
        # Placeholder URL: every run serves the chain on a fresh port.
        self.project = make_rpc_project(
            self.tmp, self.schema_name, "http://127.0.0.1:1/", end_block=head, max_reorg_depth=DEPTH
        )
        self.synced = -1  # the head the last successful run reached
        self.reset_next = True  # the first run starts from an empty schema
        self.deep_pending = False

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

        before = tables(self.url, self.schema_name) if not self.reset_next else None
        set_end_block(self.project, self.chain.head)
        error = trio.run(self._run, fault, self.reset_next)
        if error is None:
            assert not fired
            self.reset_next = False
            self.synced = self.chain.head
            self.deep_pending = False
            assert progress(self.url, self.schema_name) == self.chain.head
            assert tables(self.url, self.schema_name) == expected(self.chain)
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

    async def _run(self, fault: Any, reset: bool) -> BaseException | None:
        async with open_rpc_server(self.chain) as server:
            self._point_at(server.url)
            try:
                await run(self.project, self.url, fault=fault, reset=reset)
            except BaseException as exc:
                while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                    exc = exc.exceptions[0]
                if isinstance(exc, (ReorgTooDeepError, _Fault)):
                    return exc
                raise
        return None

    def _point_at(self, url: str) -> None:
        path = self.project / "indexer.yaml"
        text = path.read_text()
        start = text.index("rpc: '") + len("rpc: '")
        end = text.index("'", start)
        path.write_text(text[:start] + url + text[end:])


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
    )
    case().runTest()


def test_reorg_machine_scripted(database_url: str, schema: str) -> None:
    """One fixed walk through the rules, each outcome checked (the machine's own plumbing)."""

    class Machine(ReorgMachine):
        url = database_url
        schema_name = schema

    m = Machine()
    m.setup(seed=7, head=10)
    m.sync(None)
    assert m.synced == 10
    m.reorg(depth=3, grow=1)  # head 11
    m.sync(("rollback", 0))  # the rollback fails: the run fails, nothing half-done
    m.sync(None)
    m.advance(4)
    m.sync(None)
    m.deep_reorg(extra=2)
    before = tables(database_url, schema)
    m.sync(None)
    assert m.reset_next  # ReorgTooDeepError, database untouched
    assert tables(database_url, schema) == before
    m.sync(None)  # the reset run rebuilds from the canonical chain
    assert m.synced == m.chain.head
    m.teardown()
