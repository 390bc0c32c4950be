"""A changeset and the transaction that commits it: one per write, COPY for the bulk.

Runs in a worker thread (the runtime's writer task drives it through a
``RetryingSession``).  Upserts go through a
session-lifetime TEMP staging table per entity type (``ON COMMIT DELETE
ROWS``, so it is created once per connection rather than once per write),
filled by COPY and merged with ``INSERT ... ON CONFLICT (id) DO UPDATE``;
deletes are one ``DELETE ... WHERE id = ANY(...)``.  Chain progress, the
checkpoint rows and the committed checkpoint are written in the same
transaction, so the database always holds a consistent prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from .._errors import WriteError
from ._children import write_children
from ._effects import write_effect_outputs
from ._notify import notify
from ._schema import (
    FRAMEWORK_PREFIX,
    RAW_EVENT_COLUMNS,
    RAW_EVENTS,
    history_table,
    table_ident,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..store import ChildRow, Entity, EntitySpec, TableChanges
    from ._connection import Session

__all__ = [
    "ChainProgress",
    "Changeset",
    "CheckpointRow",
    "commit_changeset",
    "committed_checkpoint",
]


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    id: int
    chain_id: int
    block_number: int
    block_hash: str | None
    events: int


@dataclass(frozen=True, slots=True)
class ChainProgress:
    chain_id: int
    start_block: int
    block: int
    events: int
    # The chain's head as the source last saw it (None: not known, e.g. a file).
    head: int | None = None


@dataclass(slots=True)
class Changeset:
    """Everything one write transaction persists: the state at checkpoint ``upto``.

    Built by the runtime from a snapshot of its store; persist never sees
    the store itself.
    """

    upto: int
    tables: list[TableChanges]
    chains: dict[int, ChainProgress]
    checkpoints: list[CheckpointRow] = field(default_factory=list)
    # Near the chain head: store before-images and the checkpoint rows so a
    # reorg can be rolled back (see _rollback.py).  Far behind, neither.
    history: bool = False
    # chain id -> highest block that can no longer be reorganised: history
    # and checkpoints that no rollback can need any more are deleted.
    prune: dict[int, int] = field(default_factory=dict)
    # `raw_events: true`: one row per processed log (see RAW_EVENT_COLUMNS).
    raw: list[tuple[Any, ...]] = field(default_factory=list)
    # effect name -> (key, input JSON, output) computed in this write's range.
    effects: dict[str, list[tuple[str, str, Any]]] = field(default_factory=dict)
    # Factory children registered in this write's range (see _children.py).
    children: list[ChildRow] = field(default_factory=list)
    # Filled by commit_changeset: effect name -> rows that were new (for counts).
    effects_inserted: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(len(t) for t in self.tables)

    def describe(self) -> str:
        if not self.checkpoints:
            through = ", ".join(
                f"chain {c} block {p.block}" for c, p in sorted(self.chains.items())
            )
            return f"checkpoint {self.upto}" + (f" (through {through})" if through else "")
        first, last = self.checkpoints[0], self.checkpoints[-1]
        return (
            f"checkpoints {first.id}..{last.id} (chain {first.chain_id} block {first.block_number}"
            f" .. chain {last.chain_id} block {last.block_number})"
        )


def _stage_name(spec: EntitySpec) -> str:
    # Temp tables live in pg_temp; a derived, fixed-prefix name keeps user
    # table names (already validated) from colliding with anything else.
    return f"{FRAMEWORK_PREFIX}stage_{spec.table}"[:63]


def _ensure_stage(session: Session, spec: EntitySpec) -> sql.Identifier:
    name = _stage_name(spec)
    if name not in session.staged:
        session.conn.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS").format(
                sql.Identifier(name), table_ident(session.schema, spec.table)
            )
        )
        session.staged.add(name)
    return sql.Identifier(name)


def _upsert(
    cur: psycopg.Cursor[Any], session: Session, t: TableChanges, stage: sql.Identifier
) -> None:
    spec = t.spec
    cols = sql.SQL(", ").join(sql.Identifier(f.name) for f in spec.fields)
    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)) as copy:
        write_row = copy.write_row
        for entity in t.upserts:
            write_row(entity)
    others = [f for f in spec.fields if f.name != "id"]
    action: sql.Composable
    if others:
        action = sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(f.name), sql.Identifier(f.name))
                for f in others
            )
        )
    else:
        action = sql.SQL("DO NOTHING")
    cur.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT (id) {}").format(
            table_ident(session.schema, spec.table), cols, cols, stage, action
        )
    )


def _failed_id(exc: psycopg.Error, t: TableChanges) -> str | None:
    """The id of the row a failed COPY names in its CONTEXT line, if any."""
    context = getattr(exc.diag, "context", None) or ""
    m = re.search(r"COPY \S+, line (\d+)", context)
    if m and 0 < int(m.group(1)) <= len(t.upserts):
        entity = t.upserts[int(m.group(1)) - 1]
        return str(entity[t.spec.field("id").position])
    return None


def commit_changeset(
    session: Session,
    write: Changeset,
    *,
    fault: Callable[[str], None] | None = None,
) -> None:
    """Persist ``write`` in one transaction (blocking).

    Args:
        fault: test hook called with a step name ("begin", "entities",
            "progress", "commit") before that step, and "committed" after
            COMMIT; raising from it fails the write there, exactly as a
            database error would.

    Raises:
        WriteError: for errors caused by the data (the message names the
            table, the id when known, and the checkpoint range).
        psycopg.OperationalError: connection-level failures, unchanged, so
            the caller can tell transient from permanent.
    """
    step = fault or (lambda _name: None)
    step("begin")
    conn, schema = session.conn, session.schema
    # Staging tables are created outside the write's transaction: created
    # inside it, a rolled-back write would take them along.
    stages = {t.spec.table: _ensure_stage(session, t.spec) for t in write.tables if t.upserts}
    with conn.transaction(), conn.cursor() as cur:
        for t in write.tables:
            if not len(t):
                continue
            step("entities")
            try:
                if write.history:
                    _write_history(cur, schema, t)
                if t.upserts:
                    _upsert(cur, session, t, stages[t.spec.table])
                if t.deletes:
                    cur.execute(
                        sql.SQL("DELETE FROM {} WHERE id = ANY(%b)").format(
                            table_ident(schema, t.spec.table)
                        ),
                        (t.deletes,),
                    )
            except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
                who = _failed_id(exc, t)
                where = f", entity id {who!r}" if who else ""
                raise WriteError(
                    f"writing table {t.spec.table!r} (entity {t.spec.cls.__name__}{where}) for {write.describe()} "
                    f"failed: {str(exc).strip()}. Nothing of this write was committed."
                ) from exc
        if write.raw:
            step("entities")
            with cur.copy(
                sql.SQL("COPY {} ({}) FROM STDIN").format(
                    table_ident(schema, RAW_EVENTS),
                    sql.SQL(", ").join(map(sql.Identifier, RAW_EVENT_COLUMNS)),
                )
            ) as copy:
                for row in write.raw:
                    copy.write_row(row)
        if write.children:
            step("entities")
            write_children(cur, schema, write.children)
        for name, rows in write.effects.items():
            step("entities")
            write.effects_inserted[name] = write_effect_outputs(cur, schema, name, rows)
        step("progress")
        if write.history and write.checkpoints:
            with cur.copy(
                sql.SQL(
                    "COPY {} (id, chain_id, block_number, block_hash, events) FROM STDIN"
                ).format(table_ident(schema, FRAMEWORK_PREFIX + "checkpoints"))
            ) as copy:
                for c in write.checkpoints:
                    copy.write_row((c.id, c.chain_id, c.block_number, c.block_hash, c.events))
        _write_progress(cur, schema, write.upto, list(write.chains.values()))
        if write.history and write.prune:
            _prune(cur, schema, write)
        step("commit")
    # After COMMIT: a failure reported from here (e.g. the connection dropped
    # while the server's COMMIT acknowledgement was on its way) leaves the
    # outcome unknown to the client; the writer's retry checks the state row.
    step("committed")


def _write_history(cur: psycopg.Cursor[Any], schema: str, t: TableChanges) -> None:
    """Before-images of every change in ``t.history`` (must run before the upserts).

    The first change of an id in this write gets the row the database holds
    now (or "absent"), read in SQL; each later change of the same id gets
    the value of the change before it, from memory.
    """
    spec = t.spec
    hist = table_ident(schema, history_table(spec))
    first_ids: list[str] = []
    first_cps: list[int] = []
    later: list[tuple[Any, ...]] = []
    nulls = (None,) * (len(spec.fields) - 1)
    last: dict[str, Entity | None] = {}
    for id, cp, value in t.history:
        if id in last:
            before = last[id]
            later.append((cp, True, *before) if before is not None else (cp, False, id, *nulls))
        else:
            first_ids.append(id)
            first_cps.append(cp)
        last[id] = value
    if not first_ids:
        return
    data = [f for f in spec.fields if f.name != "id"]
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (_checkpoint, _present, id{}) SELECT v.cp, t.id IS NOT NULL, v.id{}"
            " FROM unnest(%b::text[], %s::bigint[]) AS v(id, cp) LEFT JOIN {} AS t ON t.id = v.id"
        ).format(
            hist,
            sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(f.name)) for f in data),
            sql.SQL("").join(sql.SQL(", t.{}").format(sql.Identifier(f.name)) for f in data),
            table_ident(schema, spec.table),
        ),
        (first_ids, first_cps),
    )
    if later:
        cols = sql.SQL(", ").join(sql.Identifier(f.name) for f in spec.fields)
        with cur.copy(
            sql.SQL("COPY {} (_checkpoint, _present, {}) FROM STDIN").format(hist, cols)
        ) as copy:
            for row in later:
                copy.write_row(row)


def _prune(cur: psycopg.Cursor[Any], schema: str, write: Changeset) -> None:
    """Drop history and checkpoints that no rollback within the reorg window can need.

    The safe checkpoint is, over every chain that can reorganise, the last
    checkpoint at or below its final block; a rollback never targets a
    checkpoint below it, and restoring to a checkpoint only reads history
    rows above it.
    """
    checkpoints = table_ident(schema, FRAMEWORK_PREFIX + "checkpoints")
    safe: int | None = None
    for chain_id, final_block in write.prune.items():
        row = cur.execute(
            sql.SQL("SELECT max(id) FROM {} WHERE chain_id = %s AND block_number <= %s").format(
                checkpoints
            ),
            (chain_id, final_block),
        ).fetchone()
        if row is None or row[0] is None:
            return  # nothing of this chain is final yet: keep everything
        safe = int(row[0]) if safe is None else min(safe, int(row[0]))
    if safe is None:
        return
    for t in write.tables:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE _checkpoint <= %s").format(
                table_ident(schema, history_table(t.spec))
            ),
            (safe,),
        )
    cur.execute(sql.SQL("DELETE FROM {} WHERE id < %s").format(checkpoints), (safe,))


def _write_progress(
    cur: psycopg.Cursor[Any], schema: str, upto: int, chains: Sequence[ChainProgress]
) -> None:
    if chains:
        table = table_ident(schema, FRAMEWORK_PREFIX + "chains")
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} AS c (chain_id, start_block, progress_block, events_processed, head_block)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (chain_id) DO UPDATE SET"
                " progress_block = EXCLUDED.progress_block, events_processed = EXCLUDED.events_processed,"
                " head_block = COALESCE(EXCLUDED.head_block, c.head_block)"
            ).format(table),
            [(c.chain_id, c.start_block, c.block, c.events, c.head) for c in chains],
        )
        # Delivered to listeners (the HTTP API's /events) only if this
        # transaction commits, and in commit order.
        notify(cur, schema, "commit", {c.chain_id: c.block for c in chains})
    cur.execute(
        sql.SQL("UPDATE {} SET checkpoint = %s WHERE id = 1").format(
            table_ident(schema, FRAMEWORK_PREFIX + "state")
        ),
        (upto,),
    )


def committed_checkpoint(session: Session) -> int:
    """The checkpoint the database holds (``_indexer_state``)."""
    row = session.conn.execute(
        sql.SQL("SELECT checkpoint FROM {}").format(
            table_ident(session.schema, FRAMEWORK_PREFIX + "state")
        )
    ).fetchone()
    return int(row[0]) if row else 0
