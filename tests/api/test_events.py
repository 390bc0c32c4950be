"""The event hub: notifications of the project's schema fanned out, polling on a replica."""

from __future__ import annotations

import json

import psycopg
import trio
from psycopg import sql

from indexer.api import EventHub, LiveEvent
from indexer.persist import CHANNEL, create_schema


def _notify(url: str, payload: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


async def _next(receive: trio.MemoryReceiveChannel[LiveEvent]) -> LiveEvent:
    with trio.fail_after(10):
        return await receive.receive()


async def test_only_this_schemas_well_formed_events_reach_subscribers(
    database_url: str, schema: str
) -> None:
    hub = EventHub(database_url, schema)
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.serve)
        assert hub.mode == "listen"
        with hub.subscribe() as receive:
            for payload in (
                "not json",
                json.dumps({"schema": "other", "kind": "commit", "blocks": {"1": 5}}),
                json.dumps({"schema": schema, "kind": "commit"}),
                json.dumps({"schema": schema, "kind": "commit", "blocks": {"2": 9, "1": 7}}),
                json.dumps({"schema": schema, "kind": "reorg", "blocks": {"1": 4}}),
            ):
                await trio.to_thread.run_sync(_notify, database_url, payload)
            got = [await _next(receive) for _ in range(3)]
        assert got == [
            LiveEvent("commit", 1, 7),
            LiveEvent("commit", 2, 9),
            LiveEvent("reorg", 1, 4),
        ]
        assert hub.subscribers == 0
        nursery.cancel_scope.cancel()


async def test_a_subscriber_that_falls_behind_is_dropped(database_url: str, schema: str) -> None:
    hub = EventHub(database_url, schema)
    with hub.subscribe() as slow, hub.subscribe() as fast:
        for block in range(300):
            hub.publish(LiveEvent("commit", 1, block))
            if block < 299:
                assert (await fast.receive()).block == block
        # 256 buffered, then the slow one was dropped: its stream ends.
        assert hub.subscribers == 1
        blocks = [e.block async for e in slow]
        assert blocks == list(range(256))


async def test_polling_sees_commits_and_rollbacks(database_url: str, schema: str) -> None:
    """Where LISTEN is refused (a replica), progress changes are announced from the table."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_schema(conn, schema, [], {1: 0})
        chains = sql.SQL("{}._indexer_chains").format(sql.Identifier(schema))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 0, 10, 3, NULL)").format(chains))
    hub = EventHub(database_url, schema, listen=False)

    def set_progress(block: int) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("UPDATE {} SET progress_block = %s").format(chains), (block,))

    async with trio.open_nursery() as nursery:
        await nursery.start(hub.serve)
        assert hub.mode == "poll"
        with hub.subscribe() as receive:
            await trio.to_thread.run_sync(set_progress, 15)
            assert await _next(receive) == LiveEvent("commit", 1, 15)
            await trio.to_thread.run_sync(set_progress, 12)
            assert await _next(receive) == LiveEvent("reorg", 1, 12)
        nursery.cancel_scope.cancel()
