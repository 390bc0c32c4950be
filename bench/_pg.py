"""PostgreSQL housekeeping the benchmarks share."""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import sql


def drop_schema(url: str, schema: str, *, checkpoint: bool = True) -> None:
    """Drop ``schema`` and everything in it; then CHECKPOINT unless ``checkpoint`` is false."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        if checkpoint:
            # Flush the dirty buffers now rather than during the next run.
            with contextlib.suppress(psycopg.Error):
                conn.execute("CHECKPOINT")
