"""The database side of a handlers module's ``report(query)`` hook."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from ._connection import numeric_as_int

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["open_report_query"]


@contextmanager
def open_report_query(
    database_url: str, schema: str
) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """A ``query(sql_text, *params) -> rows`` function on ``schema``, for ``report``.

    It runs on a connection of its own (autocommit, ``search_path`` set to
    the project's schema, numeric columns as ``int``), closed on exit.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        numeric_as_int(conn)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

        def query(text: str, *params: Any) -> list[tuple[Any, ...]]:
            return conn.execute(text, params or None).fetchall()

        yield query
