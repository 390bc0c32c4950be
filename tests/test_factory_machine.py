"""Hypothesis state machine: factory registrations and child logs through reorgs, restarts, faults.

The chain is scripted from ``_factory_chain.factory_logs``: a registry lists
and adopts tokens (drawn from a few candidates, so a token's Transfers fall
before, in and after the block that registers it, and twice-registered
tokens are common), tokens transfer, an ERC721 shares the Transfer topic0.
Rules add blocks, reorganise up to ``max_reorg_depth`` (orphaning
registrations), and run the indexer to the head (every run a restart),
sometimes failing a write or the rollback part way, sometimes one block per
batch with a write interval so batches merge.  After every run that
succeeds the holdings and the ``_indexer_children`` rows equal the plain
model (``_factory_chain.model``) replayed over the final canonical chain.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from indexer import RunOptions, load_config, load_handlers, run_project
from indexer.testing import RpcServer, ScriptedChain

from ._chains import assert_same
from ._factory_chain import factory_logs, make_factory_project, model, stored
from ._gate import FAST_FAILURE, run_driven

DEPTH = 4
LIMITS = (0, 2, 1_000)
STEPS = ("begin", "entities", "progress", "commit", "rollback")


class _Fault(Exception):
    pass


class FactoryMachine(RuleBasedStateMachine):
    url: str
    schema_name: str

    @initialize(seed=st.integers(0, 2**16), head=st.integers(2, 10))
    def setup(self, seed: int, head: int) -> None:
        self.rng = random.Random(seed)
        self.chain = ScriptedChain(1, head=head, logs=factory_logs(self.rng, range(1, head + 1)))
        self.tmp = Path(tempfile.mkdtemp(prefix="factory-machine-"))
        project = make_factory_project(
            self.tmp,
            self.schema_name,
            "{rpc: 'http://scripted.invalid/', poll_interval: 0.02}",
            end_block=None,
            max_reorg_depth=DEPTH,
        )
        self.config = load_config(project)
        self.handlers = load_handlers(self.config)
        self.reset = True
        self.sync(None, small=False)

    def teardown(self) -> None:
        if hasattr(self, "tmp"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(blocks=st.integers(1, 4))
    def advance(self, blocks: int) -> None:
        first = self.chain.head + 1
        self.chain.advance(blocks, factory_logs(self.rng, range(first, first + blocks)))

    @rule(depth=st.integers(1, DEPTH), grow=st.integers(0, 2))
    def reorg(self, depth: int, grow: int) -> None:
        depth = min(depth, self.chain.head - 1)
        if depth < 1:
            return
        first = self.chain.head - depth + 1
        length = depth + grow
        self.chain.reorg(depth, factory_logs(self.rng, range(first, first + length)), length=length)

    @rule(
        fail=st.none() | st.tuples(st.sampled_from(STEPS), st.integers(0, 3)),
        small=st.booleans(),
        limit=st.sampled_from(LIMITS),
    )
    def sync(self, fail: tuple[str, int] | None, small: bool, limit: int = 1_000) -> None:
        """Run to the head; ``fail=(step, k)`` fails the k-th such step; ``small``: a block a batch.

        ``limit`` is the source's ``child_address_limit``: 0 fetches children by
        topic, 2 switches from addresses to topic as children are registered.
        """
        fired: list[str] = []
        seen: dict[str, int] = {}

        def fault(step: str) -> None:
            seen[step] = seen.get(step, 0) + 1
            if fail is not None and step == fail[0] and seen[step] == fail[1] + 1:
                fired.append(step)
                raise _Fault(step)

        chain = self.config.chains[0]
        source = dataclasses.replace(chain.source, child_address_limit=limit)
        chain = dataclasses.replace(chain, end_block=self.chain.head, source=source)
        config = dataclasses.replace(self.config, chains=(chain,))
        client = {"transport": RpcServer(self.chain).transport(), "backoff_base": 0.01}
        tuning: dict[str, Any] = {"client_options": client}
        if small:
            tuning |= {"initial_span": 1, "max_span": 1}
        options = RunOptions(
            stall_seconds=math.inf,
            database_url=self.url,
            reset=self.reset,
            handle_signals=False,
            write_interval=0.5 if small else 0.0,
            chunk_logs=1 if small else 2000,
            fault=fault,
            rpc_tuning=tuning,
        )
        error = run_driven(lambda: self._run(config, options))
        if error is None:
            assert not fired
            self.reset = False
            holdings, children = stored(self.url, self.schema_name)
            want_holdings, want_children = model(self.chain)
            assert_same("children", children, want_children)
            assert_same("holdings", holdings, want_holdings)
            return
        assert isinstance(error, _Fault), f"unexpected error: {error!r}"
        assert fired

    async def _run(self, config: Any, options: RunOptions) -> BaseException | None:
        try:
            await run_project(config, self.handlers, options)
        except BaseException as exc:
            while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]
            if isinstance(exc, _Fault):
                return exc
            raise
        return None


@pytest.mark.slow
def test_factory_machine(database_url: str, schema: str) -> None:
    class Machine(FactoryMachine):
        url = database_url
        schema_name = schema

    case: Any = Machine.TestCase
    case.settings = settings(
        max_examples=60,
        stateful_step_count=10,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        **FAST_FAILURE,
    )
    case().runTest()


def test_factory_machine_scripted(database_url: str, schema: str) -> None:
    """One fixed walk: registrations orphaned by reorgs, a failed rollback, failed writes."""

    class Machine(FactoryMachine):
        url = database_url
        schema_name = schema

    m = Machine()
    m.setup(seed=11, head=8)
    m.advance(3)
    m.sync(("commit", 0), small=True, limit=2)
    m.sync(None, small=True, limit=2)
    m.reorg(depth=4, grow=1)
    m.sync(("rollback", 0), small=False, limit=0)
    m.sync(None, small=False, limit=0)
    m.reorg(depth=3, grow=0)
    m.advance(2)
    m.sync(None, small=True, limit=1_000)
    m.teardown()
