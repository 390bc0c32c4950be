"""`raw_events: true`: every processed log stored with the batch, and rolled back with reorgs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from indexer.testing import open_rpc_server

from ._chains import (
    TRANSFER,
    expected,
    framework_rows,
    make_rpc_project,
    raw_rows,
    replace_logs,
    run,
    scripted_chain,
    set_end_block,
    tables,
)

if TYPE_CHECKING:
    from pathlib import Path


def stored(url: str, schema: str) -> list[tuple[object, ...]]:
    return framework_rows(
        url,
        schema,
        "SELECT block_number, log_index, transaction_hash, block_hash, address, topics, data, event,"
        " params FROM {}._indexer_raw_events ORDER BY block_number, log_index",
    )


async def test_raw_events_follow_the_canonical_chain_through_a_reorg(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    chain, rng = scripted_chain(21, head=30)
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(
            tmp_path, schema, server.url, end_block=30, max_reorg_depth=10, raw_events=True
        )
        await run(project, database_url)
        assert stored(database_url, schema) == raw_rows(chain)
        chain.reorg(5, replace_logs(rng, chain, 5))
        chain.advance(2)
        set_end_block(project, 32)
        summary = await run(project, database_url)
    assert [(c, b) for c, b, _r, _s in summary.rollbacks] == [(1, 25)]
    # Rows of the replaced blocks are gone with the rollback, none duplicated.
    assert stored(database_url, schema) == raw_rows(chain)
    assert tables(database_url, schema) == expected(chain)


async def test_raw_events_off_stores_nothing(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    chain, _rng = scripted_chain(22, head=10)
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=10)
        await run(project, database_url)
    assert stored(database_url, schema) == []


async def test_raw_events_keep_large_integers_exact(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    from indexer.testing import LogSpec, ScriptedChain

    big = 2**256 - 1
    log = LogSpec(
        "0x" + "a1" * 20,
        (TRANSFER, "0x" + "00" * 12 + "11" * 20, "0x" + "00" * 12 + "22" * 20),
        "0x" + f"{big:064x}",
    )
    chain = ScriptedChain(1, head=3, logs={2: [log]})
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=3, raw_events=True)
        await run(project, database_url)
    ((params,),) = framework_rows(
        database_url, schema, "SELECT params::text FROM {}._indexer_raw_events"
    )
    assert json.loads(str(params))["value"] == big
