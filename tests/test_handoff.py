"""The loop -> writer hand-off: no batch lost, none written twice, in any interleaving.

Whole runs of a project (token balances, raw events on, one cached effect
per block) against a scripted chain and a real PostgreSQL, under Trio's mock
clock.  A :class:`~tests._gate.Gate` holds chosen writes while the loop keeps
processing, so batches pile up and merge in the loop's pending batch; the
feed lets the loop run dry before chosen blocks, so the pending batch is
handed over while the writer is busy and coalesced with what waits in the
channel; a coalescing window merges what arrives during it; modes wait for
commits (``sync_writes``) or for room (a small capacity target).
Hypothesis draws the schedule, which replays exactly (see ``_gate.py``).

After each run, from the database only: every checkpoint row, raw event,
effect output and history row (one per changed entity and block) is there
exactly once, the tables and the chain's progress are the last block's.
The reference is a plain fold over the scripted chain's logs.
"""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

from indexer import RunOptions, load_config, load_handlers, run_project
from indexer.testing import RpcServer

from ._chains import (
    HANDLERS,
    TRANSFER,
    assert_same,
    expected,
    fold,
    framework_rows,
    make_rpc_project,
    raw_rows,
    scripted_chain,
    stored_checkpoints,
    stored_raw,
    tables,
)
from ._gate import FAST_FAILURE, Gate, Hold, PacedTransport, run_driven

if TYPE_CHECKING:
    from indexer.testing import ScriptedChain

# A cached effect per block with events: its outputs are rows written with
# the batch of that block.
EFFECT = """
from indexer import effect


@effect
async def stamp(block: int) -> str:
    return f"block-{block}"


@on("Token", "Transfer")
async def stamped(event: Event, ctx: Context) -> None:
    await ctx.effect(stamp, event.block_number)
"""

_schemas = itertools.count()
# The capacity target of "tight" mode: the raw rows a held write keeps back soon exceed it.
TIGHT = 24


@dataclass(frozen=True)
class Plan:
    """One run: the chain, how far from its head processing starts, and the hand-off schedule.

    ``holds[k]`` holds the k-th write (see ``Hold``); the loop runs dry
    before each block in ``dry``; ``span`` blocks per fetch, each range cut
    after one log; ``interval`` is the writer's coalescing window;
    ``mode`` "sync" waits for every commit, "tight" for room (``TIGHT``).
    """

    seed: int
    head: int
    depth: int
    holds: tuple[Hold | None, ...]
    dry: frozenset[int] = frozenset()
    span: int = 1
    interval: float = 0.0
    mode: str = "background"


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    head = draw(st.integers(4, 16))
    return Plan(
        seed=draw(st.integers(0, 2**16)),
        head=head,
        depth=draw(st.sampled_from([2, 6, 64])),
        holds=tuple(
            draw(
                st.lists(
                    st.one_of(st.none(), st.builds(Hold, st.none() | st.integers(1, 4))),
                    max_size=8,
                )
            )
        ),
        dry=frozenset(draw(st.sets(st.integers(2, head), max_size=4))),
        span=draw(st.sampled_from([1, 3])),
        interval=draw(st.sampled_from([0.0, 0.5])),
        mode=draw(st.sampled_from(["background", "background", "sync", "tight"])),
    )


def run_plan(plan: Plan, url: str) -> tuple[str, PacedTransport]:
    """Run ``plan`` from an empty schema of its own; returns (schema, transport)."""
    chain, _rng = scripted_chain(plan.seed, head=plan.head)
    schema = f"handoff_{next(_schemas)}"
    tmp = Path(tempfile.mkdtemp(prefix="handoff-"))
    try:
        project = make_rpc_project(
            tmp,
            schema,
            "http://scripted.invalid/",
            end_block=plan.head,
            max_reorg_depth=plan.depth,
            raw_events=True,
        )
        (project / "handlers.py").write_text(HANDLERS + EFFECT)
        gate = Gate(plan.holds)
        transport = PacedTransport(RpcServer(chain).transport(), plan.dry)
        options = RunOptions(
            # No watchdog: its periodic check would hide a hang from drive_clock.
            stall_seconds=math.inf,
            database_url=url,
            reset=True,
            handle_signals=False,
            pre_write=gate,
            metrics=gate.metrics,
            write_interval=plan.interval,
            sync_writes=plan.mode == "sync",
            target=TIGHT if plan.mode == "tight" else 100_000,
            chunk_logs=1,
            rpc_tuning={
                "initial_span": plan.span,
                "max_span": plan.span,
                "client_options": {"transport": transport},
            },
        )
        config = load_config(project)
        handlers = load_handlers(config)
        run_driven(lambda: run_project(config, handlers, options))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return schema, transport


# -- the reference: a plain computation over the chain --------------------


def checkpoint_ids(chain: ScriptedChain, window: int) -> dict[int, int]:
    """Block -> checkpoint: one per block with events, and one per block from ``window`` on."""
    ids: dict[int, int] = {}
    for block in range(1, chain.head + 1):
        if block >= window or chain.block(block).logs:
            ids[block] = len(ids) + 1
    return ids


def want_checkpoints(chain: ScriptedChain, window: int) -> list[tuple[Any, ...]]:
    """Rows of the window's blocks (those below it were pruned: final, no rollback reaches them)."""
    ids = checkpoint_ids(chain, window)
    return [
        (ids[b], 1, b, chain.block(b).hash, len(chain.block(b).logs))
        for b in range(max(window, 1), chain.head + 1)
    ]


def want_raw(chain: ScriptedChain, window: int) -> list[tuple[Any, ...]]:
    ids = checkpoint_ids(chain, window)
    return [(*row, ids[row[0]]) for row in raw_rows(chain)]


def want_history(
    chain: ScriptedChain, window: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Before-images (account, token) of every entity each block above ``window`` changes.

    One row per (checkpoint, id): the value at the end of the block before
    (absent: NULLs).  Rows at or below the window's first block are pruned.
    """
    ids = checkpoint_ids(chain, window)
    accounts: list[tuple[Any, ...]] = []
    tokens: list[tuple[Any, ...]] = []
    for block in range(window + 1, chain.head + 1):
        logs = chain.logs(block, block, topic0s=[TRANSFER])
        if not logs:
            continue
        balances, holders = fold(chain.logs(1, block - 1, topic0s=[TRANSFER]))
        cp = ids[block]
        changed: set[str] = set()
        for lg in logs:
            for topic in lg["topics"][1:3]:
                changed.add(f"{lg['address']}-0x{topic[-40:]}")
        for key in sorted(changed):
            before = balances.get(key)
            token = key.split("-")[0]
            accounts.append(
                (cp, True, key, token, *before) if before else (cp, False, key, None, None, None)
            )
        for token in sorted({lg["address"] for lg in logs}):
            value = holders.get(token)
            tokens.append((cp, True, token, *value) if value else (cp, False, token, None, None))
    return sorted(accounts), sorted(tokens)


# -- what the database holds ----------------------------------------------


def history_rows(url: str, schema: str, table: str, columns: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT _checkpoint, _present, id, {} FROM {}.{}").format(
                sql.SQL(columns), sql.Identifier(schema), sql.Identifier(table)
            )
        ).fetchall()
    # numeric(78,0) comes back as Decimal.
    return sorted(tuple(int(v) if isinstance(v, Decimal) else v for v in row) for row in rows)


def check_database(plan: Plan, url: str, schema: str) -> None:
    chain, _rng = scripted_chain(plan.seed, head=plan.head)
    window = max(0, chain.head - plan.depth)
    ids = checkpoint_ids(chain, window)
    # Progress and the committed checkpoint are the last block's.
    assert_same(
        "progress",
        framework_rows(
            url, schema, "SELECT chain_id, progress_block, events_processed FROM {}._indexer_chains"
        ),
        [(1, chain.head, len(chain.logs(1, chain.head, topic0s=[TRANSFER])))],
    )
    assert_same(
        "state checkpoint",
        framework_rows(url, schema, "SELECT checkpoint FROM {}._indexer_state"),
        [(max(ids.values(), default=0),)],
    )
    assert_same("checkpoint rows", stored_checkpoints(url, schema), want_checkpoints(chain, window))
    assert_same("raw events", stored_raw(url, schema), want_raw(chain, window))
    stamps = framework_rows(url, schema, "SELECT input, output FROM {}._indexer_effect_stamp")
    assert_same(
        "effect outputs",
        sorted(stamps),
        sorted((b, f"block-{b}") for b in ids if chain.block(b).logs),
    )
    accounts, tokens = tables(url, schema)
    want_accounts, want_tokens = expected(chain)
    assert_same("accounts", accounts, want_accounts)
    assert_same("tokens", tokens, want_tokens)
    want_h_accounts, want_h_tokens = want_history(chain, window)
    assert_same(
        "account history",
        history_rows(url, schema, "_indexer_h_account", "token, balance, transfers"),
        want_h_accounts,
    )
    assert_same(
        "token history",
        history_rows(url, schema, "_indexer_h_token", "holders, last_block"),
        want_h_tokens,
    )


def drop(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    **FAST_FAILURE,
)
# One of each: pile-up in the loop, then the final flush; dry points (the
# pending batch handed over from the idle loop); a coalescing window and
# holds for a few blocks across the far/window boundary; room waits; sync.
@example(Plan(seed=1, head=12, depth=64, holds=(Hold(),) * 4))
@example(Plan(seed=2, head=12, depth=64, holds=(Hold(), None, Hold()), dry=frozenset({4, 8, 9})))
@example(Plan(seed=3, head=12, depth=4, holds=(Hold(2), Hold(1), Hold()), span=3, interval=0.5))
@example(Plan(seed=7, head=14, depth=6, holds=(None, Hold(), None, Hold()), mode="tight"))
@example(Plan(seed=4, head=10, depth=64, holds=(Hold(), Hold()), dry=frozenset({5}), mode="sync"))
@given(plan=plans())
def test_every_batch_is_committed_exactly_once(database_url: str, plan: Plan) -> None:
    schema, transport = run_plan(plan, database_url)
    try:
        check_database(plan, database_url, schema)
        # Else the schedule did not apply (the client asks for logs another way).
        assert transport.dry == set()
    finally:
        drop(database_url, schema)
