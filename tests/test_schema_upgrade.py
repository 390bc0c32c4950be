"""Schemas made by earlier releases gain the columns added since, in place."""

from __future__ import annotations

import psycopg
from psycopg import sql

from indexer.persist import create_schema, read_chain_rows


def test_chains_table_without_head_block_gains_it(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        # The chains table as layout 2 first shipped it: no head_block.
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}._indexer_chains (chain_id bigint PRIMARY KEY, start_block bigint NOT NULL,"
                " progress_block bigint NOT NULL, events_processed bigint NOT NULL)"
            ).format(sql.Identifier(schema))
        )
        conn.execute(
            sql.SQL("INSERT INTO {}._indexer_chains VALUES (1, 5, 40, 12)").format(
                sql.Identifier(schema)
            )
        )
        create_schema(conn, schema, [], {1: 5})
        rows = read_chain_rows(conn, schema)
    assert rows is not None
    (row,) = rows.values()
    assert (row.chain_id, row.start_block, row.block, row.events, row.head_block) == (
        1,
        5,
        40,
        12,
        None,
    )


def test_no_chains_table_reads_as_none(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert read_chain_rows(conn, schema) is None


def test_checking_an_existing_schema_does_not_lock_out_readers(
    database_url: str, schema: str
) -> None:
    """A run's start-up must not block /status readers (nor they it) on a current schema."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_schema(conn, schema, [], {1: 5})
    with (
        psycopg.connect(database_url, autocommit=True) as starting,
        psycopg.connect(database_url, autocommit=True) as reader,
    ):
        reader.execute("SET lock_timeout = '1s'")
        # The start-up check with its transaction still open (held open here
        # by an outer one, as a slow network would hold it before COMMIT).
        with starting.transaction():
            create_schema(starting, schema, [], {1: 5})
            assert read_chain_rows(reader, schema) == {}  # LockNotAvailable if it locked the table
