"""Effect output tables: one per cached effect, keyed by the input's hash.

``_indexer_effect_<name> (key text PRIMARY KEY, input jsonb, output jsonb)``.
Rows are written in the batch transaction of the batch that computed them
(``INSERT ... ON CONFLICT (key) DO UPDATE``: a recomputed, invalidated
output replaces the old one).  The statement reports which rows were new,
so the writer keeps each effect's row count equal to ``count(*)`` by
adding them only after COMMIT.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from psycopg import sql

from ._connection import load_errors
from ._schema import FRAMEWORK_PREFIX, table_ident

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import psycopg

    from ._connection import Session

__all__ = [
    "count_effect_rows",
    "create_effect_tables",
    "effect_table",
    "load_effect_outputs",
    "write_effect_outputs",
]


def effect_table(name: str) -> str:
    """Table of effect ``name`` (names are identifiers of at most 40 characters)."""
    return f"{FRAMEWORK_PREFIX}effect_{name}"


def create_effect_tables(conn: psycopg.Connection[Any], schema: str, names: Iterable[str]) -> None:
    # New effects get a table on the next start; no fingerprint change, no --reset.
    for name in names:
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, input jsonb NOT NULL,"
                " output jsonb NOT NULL)"
            ).format(table_ident(schema, effect_table(name)))
        )


def load_effect_outputs(session: Session, name: str, keys: Sequence[str]) -> dict[str, Any]:
    """Stored outputs (parsed JSON) for ``keys``; absent keys are missing from the result."""
    with load_errors():
        rows = session.conn.execute(
            sql.SQL("SELECT key, output::text FROM {} WHERE key = ANY(%b)").format(
                table_ident(session.schema, effect_table(name))
            ),
            (list(keys),),
        ).fetchall()
    return {k: json.loads(v) for k, v in rows}


def write_effect_outputs(
    cur: psycopg.Cursor[Any], schema: str, name: str, rows: Sequence[tuple[str, str, Any]]
) -> int:
    """Upsert (key, input JSON, output) rows; returns how many keys were new."""
    keys = [r[0] for r in rows]
    inputs = [r[1] for r in rows]
    outputs = [json.dumps(r[2], separators=(",", ":")) for r in rows]
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (key, input, output)"
            " SELECT k, i::jsonb, o::jsonb FROM unnest(%b::text[], %b::text[], %b::text[]) AS v(k, i, o)"
            " ON CONFLICT (key) DO UPDATE SET input = EXCLUDED.input, output = EXCLUDED.output"
            " RETURNING (xmax = 0)"
        ).format(table_ident(schema, effect_table(name))),
        (keys, inputs, outputs),
    )
    return sum(1 for (inserted,) in cur.fetchall() if inserted)


def count_effect_rows(session: Session, name: str) -> int:
    row = session.conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(table_ident(session.schema, effect_table(name)))
    ).fetchone()
    return int(row[0]) if row else 0
