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
