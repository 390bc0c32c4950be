"""Where a rollback's time goes: the framework's ``execute_rollback`` on a timing connection.

The connection's cursor times every statement (and the fetch of its rows); the
result is then applied to a cold ``Store``, as in the restart case where memory
holds nothing yet.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from indexer.persist import Session, connect, execute_rollback, read_state
from indexer.store import Store

if TYPE_CHECKING:
    from collections.abc import Sequence

    import psycopg
    from psycopg import sql

    from indexer.store import EntitySpec


class _TimedCursor:
    """Wraps a psycopg cursor; records (statement label, seconds) for execute and fetch."""

    def __init__(self, cur: psycopg.Cursor[Any], timings: list[tuple[str, float]]) -> None:
        self._cur = cur
        self._timings = timings
        self._label = "?"

    def __enter__(self) -> _TimedCursor:
        self._cur.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cur.__exit__(None, None, None)

    def execute(self, query: sql.Composed | sql.SQL, params: Any = None) -> _TimedCursor:
        self._label = _label(query.as_string(self._cur.connection))
        started = time.perf_counter()
        self._cur.execute(query, params)
        self._timings.append((self._label, time.perf_counter() - started))
        return self

    def fetchone(self) -> Any:
        started = time.perf_counter()
        row = self._cur.fetchone()
        self._timings.append((self._label + " (fetch rows)", time.perf_counter() - started))
        return row

    def fetchall(self) -> list[Any]:
        started = time.perf_counter()
        rows = self._cur.fetchall()
        self._timings.append((self._label + " (fetch rows)", time.perf_counter() - started))
        return rows


class _TimedConnection:
    def __init__(self, conn: psycopg.Connection[Any], timings: list[tuple[str, float]]) -> None:
        self._conn = conn
        self._timings = timings

    def transaction(self) -> Any:
        return self._conn.transaction()

    def cursor(self) -> _TimedCursor:
        return _TimedCursor(self._conn.cursor(), self._timings)


def _label(text: str) -> str:
    """A statement of execute_rollback, named by what it does."""
    table = "account" if '"account"' in text else "token" if '"token"' in text else ""
    if '"_indexer_h_account"' in text:
        table = "account"
    elif '"_indexer_h_token"' in text:
        table = "token"
    if text.startswith("SELECT min(id)"):
        return "find the target checkpoint"
    if text.startswith("SELECT DISTINCT ON"):
        return f"{table}: SELECT before-images"
    if text.startswith("INSERT INTO"):
        return f"{table}: INSERT restored rows (re-runs the SELECT)"
    if text.startswith("DELETE FROM") and "_checkpoint >" in text:
        return f"{table}: DELETE history above the target"
    if text.startswith("DELETE FROM") and "ANY" in text:
        return f"{table}: DELETE current rows (id = ANY(<ids>), ids sent as text[])"
    return "checkpoints and progress"


def timed_rollback(
    url: str, schema: str, specs: Sequence[EntitySpec], block: int
) -> dict[str, Any]:
    """Run ``execute_rollback`` to ``block`` on a timing connection, then apply it to a cold Store."""
    timings: list[tuple[str, float]] = []
    marks: dict[str, float] = {}

    def fault(name: str) -> None:
        marks[name] = time.perf_counter()

    session = connect(url, schema, writer=True)  # as the writer's: synchronous_commit off
    try:
        committed, _progress = read_state(session.conn, schema)
        timed = Session(
            cast("psycopg.Connection[Any]", _TimedConnection(session.conn, timings)), schema
        )
        started = time.perf_counter()
        result = execute_rollback(timed, specs, {1: block}, committed=committed, fault=fault)
        ended = time.perf_counter()
    finally:
        session.close()
    store = Store(specs, target=1_000_000)
    store.reset_frontiers(committed)
    by_table = {t.spec.table: t.spec.cls for t in store.tables.values()}
    applied = time.perf_counter()
    store.rollback(
        result.checkpoint, {by_table[name]: rows for name, rows in result.restored.items()}
    )
    memory = time.perf_counter() - applied
    pieces: dict[str, float] = {}
    for label, seconds in timings:
        pieces[label] = pieces.get(label, 0.0) + seconds
    statements = sum(pieces.values())
    commit = ended - marks["commit"]
    total = ended - started
    return {
        "rows_restored": result.rows,
        "transaction_seconds": total,
        "statements_seconds": statements,
        "commit_seconds": commit,
        # Building the restored entities from the fetched rows, BEGIN, the hooks.
        "python_seconds": total - statements - commit,
        "memory_apply_seconds": memory,
        "pieces": pieces,
    }
