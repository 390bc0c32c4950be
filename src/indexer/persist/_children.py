"""The factory children table ``_indexer_children``: created, written, rolled back, read.

One row per registration (chain, child contract, address), with the block
and log that registered it and the checkpoint it belongs to.  Rows are
written in the transaction of the batch that found them (``commit_changeset``)
and deleted with the checkpoints a rollback undoes, so the table always
agrees with the committed state; a run reads it whole at start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql

from ._schema import FRAMEWORK_PREFIX, table_ident

if TYPE_CHECKING:
    from collections.abc import Sequence

    import psycopg

    from ..store import ChildRow

__all__ = [
    "CHILDREN",
    "create_children_table",
    "read_children",
    "undo_children",
    "write_children",
]

CHILDREN = FRAMEWORK_PREFIX + "children"
_COLUMNS = ("chain_id", "contract", "address", "block_number", "log_index", "checkpoint")


def create_children_table(conn: psycopg.Connection[Any], schema: str) -> None:
    """Create the table if absent (older schemas gain it in place: nothing else changes)."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (chain_id bigint NOT NULL, contract text NOT NULL,"
            " address text NOT NULL, block_number bigint NOT NULL, log_index int NOT NULL,"
            " checkpoint bigint NOT NULL, PRIMARY KEY (chain_id, contract, address))"
        ).format(table_ident(schema, CHILDREN))
    )


def write_children(cur: psycopg.Cursor[Any], schema: str, rows: Sequence[ChildRow]) -> None:
    """COPY new registrations (inside the write's transaction)."""
    with cur.copy(
        sql.SQL("COPY {} ({}) FROM STDIN").format(
            table_ident(schema, CHILDREN), sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
        )
    ) as copy:
        for row in rows:
            copy.write_row(row)


def undo_children(cur: psycopg.Cursor[Any], schema: str, checkpoint: int) -> None:
    """Delete the registrations above ``checkpoint`` (inside the rollback's transaction)."""
    cur.execute(
        sql.SQL("DELETE FROM {} WHERE checkpoint > %s").format(table_ident(schema, CHILDREN)),
        (checkpoint,),
    )


def read_children(conn: psycopg.Connection[Any], schema: str) -> list[ChildRow]:
    """Every committed registration."""
    rows = conn.execute(
        sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), table_ident(schema, CHILDREN)
        )
    ).fetchall()
    return [(int(c), str(n), str(a), int(b), int(i), int(cp)) for c, n, a, b, i, cp in rows]
