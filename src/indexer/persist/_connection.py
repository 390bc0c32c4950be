"""Connections: opening them, type adaptation, and the loads the processing loop makes.

psycopg's ``AsyncConnection`` runs only on asyncio, so the framework drives
synchronous connections from Trio worker threads (one thread at a time per
connection).  docs/design.md has the measurements behind that choice.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.adapt import Buffer, Loader

from .._errors import DatabaseError
from .._redact import redact_url
from ._retry import is_transient
from ._schema import table_ident

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ..store import EntitySpec

__all__ = [
    "Session",
    "connect",
    "entity_columns",
    "load_all",
    "load_by_field",
    "load_by_ids",
    "load_errors",
    "numeric_as_int",
    "table_has_rows",
]

log = logging.getLogger("indexer.persist")


class _NumericIntLoader(Loader):
    """numeric(78,0) -> int, without going through Decimal."""

    def load(self, data: Buffer) -> int:
        return int(bytes(data))


@dataclass
class Session:
    """A connection bound to a project schema, plus per-connection state."""

    conn: psycopg.Connection[Any]
    schema: str
    staged: set[str] = field(default_factory=set)

    def close(self) -> None:
        self.conn.close()


def numeric_as_int(conn: psycopg.Connection[Any]) -> None:
    """Load numeric columns as int (entity ints are numeric(78,0)), not Decimal."""
    conn.adapters.register_loader("numeric", _NumericIntLoader)


def connect(
    url: str, schema: str, *, application_name: str = "indexer", writer: bool = False
) -> Session:
    """Open an autocommit connection (transactions are explicit) for ``schema``.

    The writer's connection uses ``synchronous_commit = off``: a PostgreSQL
    crash may lose the last few commits, but each commit carries its own
    progress row, so the database still holds a consistent prefix and the
    indexer re-processes the lost tail from the source.  Nothing is lost that
    cannot be recomputed, and commits stop waiting on the WAL flush.
    """
    try:
        # The writer's connection is told apart in pg_stat_activity.
        name = f"{application_name}-writer" if writer else application_name
        conn = psycopg.connect(url, autocommit=True, application_name=name)
    except psycopg.Error as exc:
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {redact_url(url)}: {str(exc).strip()}. "
            f"Check the `database` key in indexer.yaml or INDEXER_DATABASE_URL."
        ) from None
    numeric_as_int(conn)
    if writer:
        conn.execute("SET synchronous_commit = off")
    return Session(conn, schema)


@contextmanager
def load_errors() -> Iterator[None]:
    """Raise a load's permanent psycopg error as :class:`~indexer.DatabaseError`.

    Database errors are classified here, in persist: transient ones pass
    through unchanged for :class:`RetryingSession` to retry on a fresh
    connection (it raises ``DatabaseError`` when its time is up); the
    runtime sees only ``DatabaseError`` and adds which event the load was for.
    """
    try:
        yield
    except psycopg.Error as exc:
        if is_transient(exc):
            raise
        raise DatabaseError(f"{type(exc).__name__}: {str(exc).strip()}") from exc


def entity_columns(spec: EntitySpec) -> sql.Composable:
    """The columns of ``spec``'s table in field order (the order entity tuples have)."""
    return sql.SQL(", ").join(sql.Identifier(f.name) for f in spec.fields)


def load_by_ids(session: Session, spec: EntitySpec, ids: Sequence[str]) -> list[Any]:
    """Rows of ``spec``'s table whose id is in ``ids`` (one query)."""
    # %b: the id array goes in binary format; psycopg's text-format array
    # quoting took 74 ms for 10,000 ids against 14 ms in binary (measured on
    # this machine), and loads and rollbacks send arrays that large.
    # A join with unnest() rather than `id = ANY(...)`: with a few thousand
    # ids the planner turned ANY into a parallel sequential scan (91 ms for
    # 5,000 ids of a 506k-row table, against 21 ms of index lookups).
    query = sql.SQL("SELECT {} FROM unnest(%b::text[]) AS _k(id) JOIN {} AS t ON t.id = _k.id")
    new = tuple.__new__
    cls = spec.cls
    with load_errors():
        cur = session.conn.execute(
            query.format(
                sql.SQL(", ").join(sql.Identifier("t", f.name) for f in spec.fields),
                table_ident(session.schema, spec.table),
            ),
            (list(ids),),
        )
        return [new(cls, row) for row in cur]


def load_all(session: Session, spec: EntitySpec) -> dict[str, Any]:
    """Every row of ``spec``'s table, as entities by id (in id order)."""
    cls, new, id_pos = spec.cls, tuple.__new__, spec.field("id").position
    with load_errors():
        cur = session.conn.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY id").format(
                entity_columns(spec), table_ident(session.schema, spec.table)
            )
        )
        return {row[id_pos]: new(cls, row) for row in cur}


def load_by_field(session: Session, spec: EntitySpec, field_name: str, value: Any) -> list[Any]:
    """Rows of ``spec``'s table with ``field_name = value`` (``IS NULL`` for None, as in memory)."""
    table, column = table_ident(session.schema, spec.table), sql.Identifier(field_name)
    columns = entity_columns(spec)
    new = tuple.__new__
    cls = spec.cls
    with load_errors():
        if value is None:
            query = sql.SQL("SELECT {} FROM {} WHERE {} IS NULL").format(columns, table, column)
            cur = session.conn.execute(query)
        else:
            query = sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(columns, table, column)
            cur = session.conn.execute(query, (value,))
        return [new(cls, row) for row in cur]


def table_has_rows(session: Session, spec: EntitySpec) -> bool:
    """Whether ``spec``'s table holds any row (a table empty at start is complete in memory)."""
    row = session.conn.execute(
        sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table_ident(session.schema, spec.table))
    ).fetchone()
    return bool(row and row[0])
