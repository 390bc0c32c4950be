"""The database side of a handlers module's ``report(query)`` hook."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from ._connection import numeric_as_int
from ._retry import DEFAULT_RETRY_SECONDS, RetryPolicy, is_transient

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["open_report_query"]


@contextmanager
def open_report_query(
    database_url: str, schema: str, *, retry_seconds: float = DEFAULT_RETRY_SECONDS
) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """A ``query(sql_text, *params) -> rows`` function on ``schema``, for ``report``.

    It runs on a connection of its own (autocommit, ``search_path`` set to
    the project's schema, numeric columns as ``int``), closed on exit.  A
    query that fails with a transient error (the connection lost, the
    server restarting) runs again on a new connection, for up to
    ``retry_seconds``: report queries read, so repeating one is safe.
    """
    policy = RetryPolicy(seconds=retry_seconds)

    def connect() -> psycopg.Connection[Any]:
        conn = psycopg.connect(database_url, autocommit=True)
        numeric_as_int(conn)
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return conn

    held = [connect()]

    def query(text: str, *params: Any) -> list[tuple[Any, ...]]:
        started, attempt = time.monotonic(), 0
        while True:
            try:
                if held[0].closed:
                    held[0] = connect()
                return held[0].execute(text, params or None).fetchall()
            except psycopg.Error as exc:
                attempt += 1
                if not is_transient(exc) or time.monotonic() - started >= policy.seconds:
                    raise
                held[0].close()
                time.sleep(policy.delay(attempt))

    try:
        yield query
    finally:
        held[0].close()
