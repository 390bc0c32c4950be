"""Following a JSON-RPC chain: reorg detection, rollback, restarts, faults.

Every test runs the real runtime against the scripted chain server and real
PostgreSQL, and compares the tables with an independent computation over the
final canonical chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import trio

from indexer import ReorgTooDeepError, RunSummary, SourceError
from indexer.testing import ScriptedChain, open_rpc_server

from ._chains import (
    CommitWatch,
    expected,
    framework_rows,
    make_rpc_project,
    progress,
    replace_logs,
    run,
    scripted_chain,
    set_end_block,
    tables,
)
from ._projects import leaf, raised

if TYPE_CHECKING:
    from pathlib import Path


async def test_follows_the_head_through_reorgs(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """Reorgs of depth 1..8 while the indexer follows the head, each after it committed the tip."""
    chain, rng = scripted_chain(1, head=30)
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=70, max_reorg_depth=10)
        watch = CommitWatch()
        async with trio.open_nursery() as nursery:
            done: list[RunSummary] = []

            async def indexer() -> None:
                done.append(await run(project, database_url, reporter=watch, report_interval=0.01))

            nursery.start_soon(indexer)
            for depth in (1, 3, 8, 2, 5):
                await watch.wait_for(chain.head)
                chain.reorg(depth, replace_logs(rng, chain, depth))
                chain.advance(7, {n: [] for n in range(chain.head + 1, chain.head + 8)})
            await watch.wait_for(chain.head)
            chain.advance(70 - chain.head)
    (summary,) = done
    assert tables(database_url, schema) == expected(chain, 70)
    rollbacks = summary.rollbacks
    assert len(rollbacks) == 5
    # Each rollback kept exactly the blocks below the replaced ones.
    heads = [30, 37, 44, 51, 58]
    assert [b for _c, b, _rows, _s in rollbacks] == [
        h - d for h, d in zip(heads, (1, 3, 8, 2, 5), strict=True)
    ]
    # History and checkpoints are pruned to the window (10 blocks below 70)
    # plus the anchor checkpoint; every in-window block has one, in order.
    cps = framework_rows(
        database_url, schema, "SELECT id, block_number FROM {}._indexer_checkpoints ORDER BY id"
    )
    blocks = [b for _i, b in cps]
    assert blocks == list(range(blocks[0], 71))
    assert 55 <= blocks[0] <= 61
    assert [i for i, _b in cps] == list(range(cps[0][0], cps[0][0] + len(cps)))
    (oldest,) = framework_rows(
        database_url, schema, "SELECT min(_checkpoint) FROM {}._indexer_h_account"
    )
    assert oldest[0] is None or oldest[0] > cps[0][0]


async def test_reorg_while_stopped_is_rolled_back_on_restart(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    chain, rng = scripted_chain(2, head=40)
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=40, max_reorg_depth=12)
        first = await run(project, database_url)
        assert first.rollbacks == []
        assert tables(database_url, schema) == expected(chain)
        chain.reorg(6, replace_logs(rng, chain, 6))
        chain.advance(5)
        set_end_block(project, 45)
        second = await run(project, database_url)
    assert [(c, b) for c, b, _r, _s in second.rollbacks] == [(1, 34)]
    assert tables(database_url, schema) == expected(chain)


async def test_reorg_deeper_than_allowed_stops_and_keeps_the_database(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    chain, rng = scripted_chain(3, head=30)
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=30, max_reorg_depth=4)
        await run(project, database_url)
        before = tables(database_url, schema)
        chain.reorg(12, replace_logs(rng, chain, 12))
        chain.advance(2)
        set_end_block(project, 32)
        with raised(ReorgTooDeepError) as info:
            await run(project, database_url)
    message = str(leaf(info.value))
    assert "max_reorg_depth=4" in message
    assert "chain 1" in message
    assert tables(database_url, schema) == before
    assert progress(database_url, schema) == 30


@pytest.mark.parametrize("step", ["rollback", "commit"])
async def test_failure_mid_rollback_leaves_the_database_before_it(
    tmp_path: Path, database_url: str, schema: str, step: str
) -> None:
    chain, rng = scripted_chain(4, head=35)
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=35, max_reorg_depth=10)
        await run(project, database_url)
        old_chain_tables = tables(database_url, schema)
        chain.reorg(5, replace_logs(rng, chain, 5))
        set_end_block(project, 35)
        calls: list[str] = []

        def fault(name: str) -> None:
            calls.append(name)
            if name == step and "rollback" in calls:
                raise OSError("simulated failure")

        with raised(OSError):
            await run(project, database_url, fault=fault)
        assert tables(database_url, schema) == old_chain_tables
        assert progress(database_url, schema) == 35
        summary = await run(project, database_url)
    assert [(c, b) for c, b, _r, _s in summary.rollbacks] == [(1, 30)]
    assert tables(database_url, schema) == expected(chain)


async def test_transient_node_errors_and_small_result_limits(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """Retries hide 5xx/429/dropped connections; 'too many results' halves the range."""
    chain, _rng = scripted_chain(5, head=120, max_logs_per_query=20)
    async with open_rpc_server(chain) as server:
        for method, kind in (
            ("eth_getLogs", "http_503"),
            ("eth_blockNumber", "http_429"),
            ("eth_getBlockByNumber", "disconnect"),
            ("eth_chainId", "http_500"),
        ):
            server.fail(method, times=2, kind=kind)
        project = make_rpc_project(tmp_path, schema, server.url, end_block=120, max_reorg_depth=5)
        await run(project, database_url)
        assert server.calls["eth_getLogs"] > 120 * 1.5 // 20
    assert tables(database_url, schema) == expected(chain)


async def test_wrong_chain_id_fails_fast(tmp_path: Path, database_url: str, schema: str) -> None:
    chain = ScriptedChain(5, head=10)
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=10)
        with raised(SourceError) as info:
            await run(project, database_url)
        assert server.calls["eth_getLogs"] == 0
    message = str(leaf(info.value))
    assert "chain 5" in message
    assert "chain 1" in message


async def test_reorg_between_getlogs_and_headers_is_not_lost(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """Found by the simulation: a reorg right after eth_getLogs answered.

    The replaced blocks had no logs on the old fork and have some on the new
    one.  Headers fetched after the logs would have paired the new fork's
    hashes with the old fork's (empty) logs, and those events would have been
    lost for good.  Headers are fetched first, so the stored hashes are the
    old fork's and the next run's tip check rolls the blocks back.
    """
    import random

    from indexer.testing import ScriptedChain

    from ._chains import random_logs, transfer_log

    rng = random.Random(1)
    chain = ScriptedChain(1, head=20, logs=random_logs(rng, range(1, 16)))  # 16..20: no logs
    async with open_rpc_server(chain) as server:
        answer = server._methods["eth_getLogs"]
        fired: list[bool] = []

        def get_logs_then_reorg(params: Any) -> Any:
            result = answer(params)  # answered from the first fork...
            if not fired and int(params[0]["toBlock"], 16) >= 18:
                fired.append(True)  # ...and the chain reorganises right after
                chain.reorg(3, {n: [transfer_log(rng), transfer_log(rng)] for n in (18, 19, 20)})
            return result

        server._methods["eth_getLogs"] = get_logs_then_reorg
        project = make_rpc_project(tmp_path, schema, server.url, end_block=20, max_reorg_depth=10)
        await run(project, database_url)
        assert fired
        server._methods["eth_getLogs"] = answer
        again = await run(project, database_url)
    assert [(c, b) for c, b, _r, _s in again.rollbacks] == [(1, 17)]
    assert tables(database_url, schema) == expected(chain)
