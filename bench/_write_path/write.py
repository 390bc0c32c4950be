"""One write, as the framework's writer does it: COPY into a staging table, upsert, progress.

The same transaction twice: blocking on a sync connection (variant A, run in a
worker thread) and as an asyncio coroutine (variant B, run through trio-asyncio).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from collections.abc import Sequence

    from _write_path.batches import Row

TABLE = "account"
STAGE = "bench_stage_account"
PROGRESS = "progress"
COLUMNS = ("id", "token", "holder", "balance")


def setup_schema(url: str, schema: str) -> None:
    """(Re)create ``schema`` with the account and progress tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id text PRIMARY KEY, token text NOT NULL,"
                " holder text NOT NULL, balance numeric(78,0) NOT NULL)"
            ).format(sql.Identifier(schema, TABLE))
        )
        conn.execute(
            sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, checkpoint bigint NOT NULL)").format(
                sql.Identifier(schema, PROGRESS)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (1, 0)").format(sql.Identifier(schema, PROGRESS))
        )


@dataclass(frozen=True)
class Statements:
    create_stage: sql.Composed
    copy: sql.Composed
    upsert: sql.Composed
    progress: sql.Composed

    @classmethod
    def for_schema(cls, schema: str) -> Statements:
        table = sql.Identifier(schema, TABLE)
        stage = sql.Identifier(STAGE)
        cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        sets = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in COLUMNS[1:]
        )
        return cls(
            create_stage=sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
            ).format(stage, table),
            copy=sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols),
            upsert=sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT (id) DO UPDATE SET {}"
            ).format(table, cols, cols, stage, sets),
            progress=sql.SQL("UPDATE {} SET checkpoint = %s WHERE id = 1").format(
                sql.Identifier(schema, PROGRESS)
            ),
        )


def write_sync(
    conn: psycopg.Connection[Any], st: Statements, rows: Sequence[Row], upto: int
) -> None:
    """One write, blocking (variant A runs this in a worker thread)."""
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(st.copy) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)
        cur.execute(st.upsert)
        cur.execute(st.progress, (upto,))


async def write_async(
    conn: psycopg.AsyncConnection[Any], st: Statements, rows: Sequence[Row], upto: int
) -> None:
    """One write, as an asyncio coroutine (variant B runs it through aio_as_trio)."""
    async with conn.transaction(), conn.cursor() as cur:
        async with cur.copy(st.copy) as copy:
            write_row = copy.write_row
            for row in rows:
                await write_row(row)
        await cur.execute(st.upsert)
        await cur.execute(st.progress, (upto,))


async def aio_connect(url: str, create_stage: sql.Composed) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(
        url, autocommit=True, application_name="bench-write-path"
    )
    await conn.execute("SET synchronous_commit = off")
    await conn.execute(create_stage)
    return conn


async def aio_close(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.close()
