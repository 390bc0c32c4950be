"""The API's read pool: one snapshot per request, read-only, bounded, with a timeout."""

from __future__ import annotations

import os
import threading
from typing import Any

import psycopg
import pytest
import trio
from psycopg import sql

from indexer.api import Reader


def terminate(database_url: str, application_name: str) -> int:
    """Kill every server process of this application name; how many there were."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(killed)


@pytest.fixture
def table(database_url: str, schema: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {}.t (id int PRIMARY KEY)").format(sql.Identifier(schema))
        )
        conn.execute(sql.SQL("INSERT INTO {}.t VALUES (1), (2)").format(sql.Identifier(schema)))
    return "t"


async def test_a_request_reads_one_snapshot(database_url: str, schema: str, table: str) -> None:
    """A commit between two statements of one request is invisible to the second."""
    reader = Reader(database_url, schema)

    def two_counts(conn: psycopg.Connection[Any]) -> tuple[int, int]:
        (before,) = conn.execute("SELECT count(*) FROM t").fetchone() or (0,)
        with psycopg.connect(database_url, autocommit=True) as writer:
            writer.execute(sql.SQL("INSERT INTO {}.t VALUES (3)").format(sql.Identifier(schema)))
        (after,) = conn.execute("SELECT count(*) FROM t").fetchone() or (0,)
        return int(before), int(after)

    assert await reader.read(two_counts) == (2, 2)
    # The next request sees the commit.
    assert await reader.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()) == (3,)
    await reader.aclose()


@pytest.mark.parametrize("single", [False, True])
async def test_requests_cannot_write_or_outlast_the_timeout(
    database_url: str, schema: str, table: str, single: bool
) -> None:
    """Also a single-statement read (no BEGIN): the session itself is read-only and bounded."""
    reader = Reader(database_url, schema, size=1, statement_timeout=0.2)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        await reader.read(lambda c: c.execute("DELETE FROM t"), single=single)
    with pytest.raises(psycopg.errors.QueryCanceled):
        await reader.read(lambda c: c.execute("SELECT pg_sleep(5)"), single=single)
    # The same pooled connection goes on serving, still read-only and bounded,
    # in both modes one after the other.
    for mode in (single, not single):
        count = await reader.read(
            lambda c: c.execute("SELECT count(*) FROM t").fetchone(), single=mode
        )
        assert count == (2,)
    with pytest.raises(psycopg.errors.QueryCanceled):
        await reader.read(lambda c: c.execute("SELECT pg_sleep(5)"), single=single)
    await reader.aclose()


async def test_a_single_statement_read_sends_no_begin(
    database_url: str, schema: str, table: str
) -> None:
    """A by-id request's read is its one statement, not BEGIN, the statement and COMMIT."""
    reader = Reader(database_url, schema, size=1)

    def own_transaction(conn: psycopg.Connection[Any]) -> bool:
        # now() is when the transaction began: after a BEGIN, a round trip
        # before this statement's start; without one, the statement's start.
        row = conn.execute("SELECT now() = statement_timestamp()").fetchone()
        return bool(row and row[0])

    assert await reader.read(own_transaction, single=True)
    assert not await reader.read(own_transaction)
    assert await reader.read(own_transaction, single=True)
    await reader.aclose()


async def test_at_most_size_requests_read_at_once(
    database_url: str, schema: str, table: str
) -> None:
    reader = Reader(database_url, schema, size=2)
    lock = threading.Lock()
    running = peak = 0

    def slow(conn: psycopg.Connection[Any]) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        conn.execute("SELECT pg_sleep(0.05)")
        with lock:
            running -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(reader.read, slow)
    assert peak == 2
    await reader.aclose()


async def test_a_request_survives_its_connections_being_killed(
    database_url: str, schema: str, table: str
) -> None:
    name = f"indexer-api-test-{os.getpid()}"
    reader = Reader(database_url, schema, size=3, application_name=name)

    async def count() -> Any:
        return await reader.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone())

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(count)  # three pooled connections
    assert terminate(database_url, name) == 3
    # Every pooled connection is dead; the request still gets its answer.
    assert await count() == (2,)
    # Without retries (the health probes' reads), a lost connection is an error at once.
    terminate(database_url, name)
    with pytest.raises(psycopg.OperationalError):
        await reader.read(lambda c: c.execute("SELECT 1"), retry=False)
    await reader.aclose()
