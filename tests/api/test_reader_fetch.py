"""Reader.fetch: one statement on the event loop's thread, read as the thread path reads it."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.rows import dict_row

from indexer.api import Reader

from .test_reader import terminate

_COLUMNS = "id text PRIMARY KEY, n numeric(78,0), s text, b boolean, f float8, raw bytea"

texts = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
)
ints = st.one_of(
    st.integers(-(2**15), 2**15),  # psycopg sends these as int2 ...
    st.integers(-(10**77), 10**77),  # ... and these as numeric: one text, several types
)
rows = st.lists(
    st.tuples(
        st.none() | ints,
        st.none() | texts | st.sampled_from(["100%", "%s", "$1", "it's", "%%"]),
        st.none() | st.booleans(),
        st.none() | st.floats(allow_nan=False),
        st.none() | st.binary(max_size=6),
    ),
    max_size=12,
)

# Statements with psycopg's placeholders and a literal percent sign (%%),
# each with a strategy for its parameters.
_QUERIES: list[tuple[str, st.SearchStrategy[tuple[Any, ...]]]] = [
    ("SELECT * FROM t WHERE n > %s::numeric ORDER BY id", st.tuples(ints)),
    ("SELECT * FROM t WHERE n > %s ORDER BY id", st.tuples(ints)),
    (
        "SELECT id, position('%%' in s) AS pct FROM t WHERE s = %s OR b = %s ORDER BY id",
        st.tuples(texts, st.booleans()),
    ),
    (
        "SELECT id, n + %s AS m FROM t WHERE s IS NOT NULL ORDER BY id LIMIT %s",
        st.tuples(ints, st.integers(0, 20)),
    ),
    (
        "SELECT count(*) AS c, sum(n) AS total, max(f) AS top FROM t WHERE raw <> %s",
        st.tuples(st.binary(max_size=4)),
    ),
    ("SELECT * FROM t WHERE id = %s::text", st.tuples(texts | st.just("r0"))),
]


@pytest.fixture
def table(database_url: str, schema: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {}.t (" + _COLUMNS + ")").format(sql.Identifier(schema)))
    return "t"


async def _thread_rows(reader: Reader, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    def read(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query.encode(), params).fetchall()

    return await reader.read(read, single=True)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=rows, pick=st.data())
def test_fetch_reads_what_the_thread_path_reads(
    database_url: str, schema: str, table: str, data: list[tuple[Any, ...]], pick: st.DataObject
) -> None:
    """Random rows and parameters: the same rows, types and values both ways, also on reuse."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {}.t").format(sql.Identifier(schema)))
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {}.t VALUES (%s, %s, %s, %s, %s, %s)").format(
                    sql.Identifier(schema)
                ),
                [(f"r{i}", *row) for i, row in enumerate(data)],
            )
    asks = [(q, pick.draw(params)) for q, params in _QUERIES for _ in range(2)]

    async def main() -> None:
        reader = Reader(database_url, schema, size=1)
        try:
            for query, params in asks:
                expected = await _thread_rows(reader, query, params)
                got = await reader.fetch(query.encode(), params)
                assert got == expected, (query, params)
                assert [[type(v) for v in r.values()] for r in got] == [
                    [type(v) for v in r.values()] for r in expected
                ]
        finally:
            await reader.aclose()

    trio.run(main)


async def _pid(reader: Reader) -> int:
    (row,) = await reader.fetch(b"SELECT pg_backend_pid() AS pid")
    return int(row["pid"])


async def test_fetch_is_read_only_bounded_and_survives_errors(
    database_url: str, schema: str, table: str
) -> None:
    """Errors come back as psycopg raises them; the same connection goes on serving."""
    # A write refused as read-only is retried (after a failover it is
    # transient): not for long here.
    reader = Reader(database_url, schema, size=1, statement_timeout=0.2, retry_seconds=0.3)
    pid = await _pid(reader)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        await reader.fetch(b"DELETE FROM t")
    with pytest.raises(psycopg.errors.QueryCanceled):
        await reader.fetch(b"SELECT pg_sleep(5)")
    with pytest.raises(psycopg.errors.DivisionByZero) as caught:
        await reader.fetch(b"SELECT 1 / %s AS x", (0,))
    assert caught.value.sqlstate == "22012"
    with pytest.raises(psycopg.errors.UndefinedTable):
        await reader.fetch(b"SELECT * FROM no_such_table")
    assert await reader.fetch(b"SELECT %s::int + 1 AS x", (1,)) == [{"x": 2}]
    assert await _pid(reader) == pid
    # Outside any transaction: the session is idle, not idle in a transaction.
    with psycopg.connect(database_url, autocommit=True) as admin:
        state = admin.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert state.fetchone() == ("idle",)
    await reader.aclose()


async def test_a_statement_is_prepared_once_per_connection_and_parameter_types(
    database_url: str, schema: str, table: str
) -> None:
    reader = Reader(database_url, schema, size=1)
    query = b"SELECT count(*) AS c FROM t WHERE n > %s"
    for value in (1, 2, 10**40, 3):  # int2, int2, numeric, int2
        assert await reader.fetch(query, (value,)) == [{"c": 0}]
    listed = await reader.fetch(
        b"SELECT statement, parameter_types::text[] AS types FROM pg_prepared_statements"
        b" WHERE statement LIKE %s ORDER BY prepare_time",
        ("SELECT count(*) AS c FROM t WHERE n > $1",),
    )
    assert [r["types"] for r in listed] == [["smallint"], ["numeric"]]
    await reader.aclose()


async def test_a_table_recreated_with_another_row_type_still_reads(
    database_url: str, schema: str, table: str
) -> None:
    """As after indexer dev reloads a changed entity: no statement stays prepared for the old table."""
    reader = Reader(database_url, schema, size=1)
    query = "SELECT id, n FROM t WHERE id = %s::text"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {}.t (id, n) VALUES ('a', 7)").format(sql.Identifier(schema))
        )
    for _ in range(6):  # past psycopg's threshold for preparing on the thread path
        assert await reader.fetch(query.encode(), ("a",)) == [{"id": "a", "n": 7}]
        assert await _thread_rows(reader, query, ("a",)) == [{"id": "a", "n": 7}]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP TABLE {0}.t; CREATE TABLE {0}.t (id text PRIMARY KEY, n text)").format(
                sql.Identifier(schema)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {}.t VALUES ('a', 'seven')").format(sql.Identifier(schema))
        )
    for _ in range(2):
        assert await reader.fetch(query.encode(), ("a",)) == [{"id": "a", "n": "seven"}]
        assert await _thread_rows(reader, query, ("a",)) == [{"id": "a", "n": "seven"}]
    await reader.aclose()


async def test_a_cancelled_fetch_closes_its_connection(
    database_url: str, schema: str, table: str
) -> None:
    """Cancelled mid-statement, the connection is closed, not reused; the statement ends by its timeout."""
    reader = Reader(database_url, schema, size=1, statement_timeout=1.0)
    first = await _pid(reader)
    with trio.move_on_after(0.2) as scope:
        await reader.fetch(b"SELECT pg_sleep(5)")
    assert scope.cancelled_caught
    assert await _pid(reader) != first
    with psycopg.connect(database_url, autocommit=True) as admin:
        for _ in range(100):
            alive = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (first,)
            ).fetchone()
            if alive == (0,):
                break
            await trio.sleep(0.05)
        assert alive == (0,)
    await reader.aclose()


async def test_a_fetch_survives_its_connections_being_killed(
    database_url: str, schema: str, table: str
) -> None:
    name = f"indexer-api-lane-{os.getpid()}"
    reader = Reader(database_url, schema, size=3, application_name=name)

    async def count() -> Any:
        return await reader.fetch(b"SELECT count(*) AS c FROM t")

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(count)
    await reader.read(lambda c: c.execute("SELECT 1"))  # a thread-path connection too
    assert terminate(database_url, name) == 4  # three on the event loop, one a thread's
    assert await count() == [{"c": 0}]
    assert await reader.read(lambda c: c.execute("SELECT 1").fetchone()) == (1,)
    await reader.aclose()
