"""Reorg rollback: restore the database to a checkpoint in one transaction.

History rows are *before-images* (see ``_schema._create_history_table``):
the row as it was before the change at ``_checkpoint``.  Restoring the
state at checkpoint ``t`` therefore needs, per id changed above ``t``, only
its earliest history row above ``t``: present -> that row, absent -> no
row.  Then every history row and checkpoint above ``t`` is deleted and each
chain's progress moves back to the block before its first undone checkpoint.

Everything happens in one transaction: a crash or a shutdown during a
rollback leaves the database either fully before or fully after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

from ._children import undo_children
from ._notify import notify
from ._schema import FRAMEWORK_PREFIX, RAW_EVENTS, history_table, table_ident

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..store import Entity, EntitySpec
    from ._connection import Session

__all__ = ["Rollback", "execute_rollback", "rollback_checkpoint"]


@dataclass(slots=True)
class Rollback:
    """What a committed rollback changed, for the in-memory store to apply."""

    checkpoint: int
    # entity table -> (id, restored value or None for "absent")
    restored: dict[str, list[tuple[str, Entity | None]]]
    # chain id -> (progress block, events processed) after the rollback
    progress: dict[int, tuple[int, int]]

    @property
    def rows(self) -> int:
        return sum(len(v) for v in self.restored.values())


def rollback_checkpoint(cur: Any, schema: str, chain_id: int, block: int, committed: int) -> int:
    """The checkpoint to restore so that ``chain_id`` holds nothing above ``block``.

    That is one before the first checkpoint of the chain above ``block``;
    with none (nothing of that chain above it was stored), ``committed``.
    Everything later, of every chain, is undone with it: checkpoints of
    all chains interleave, and entities may be shared between chains.
    """
    row = cur.execute(
        sql.SQL("SELECT min(id) FROM {} WHERE chain_id = %s AND block_number > %s").format(
            table_ident(schema, FRAMEWORK_PREFIX + "checkpoints")
        ),
        (chain_id, block),
    ).fetchone()
    if row is None or row[0] is None:
        return committed
    return min(committed, int(row[0]) - 1)


def execute_rollback(
    session: Session,
    specs: Sequence[EntitySpec],
    chain_blocks: dict[int, int],
    *,
    committed: int,
    fault: Callable[[str], None] | None = None,
) -> Rollback:
    """Undo everything above the given blocks (blocking, one transaction).

    Args:
        chain_blocks: chain id -> last block to keep, for the chains whose
            reorg caused this rollback.  The target checkpoint is the
            lowest that keeps nothing above those blocks; every chain's
            checkpoints above it are undone, and the reorganised chains'
            progress goes back at least to their block even if no
            checkpoint of theirs is undone.
        committed: the committed checkpoint (the target when nothing needs
            undoing).
        fault: test hook called with "rollback" and "commit" before those
            steps, and "rolled back" after COMMIT; raising from it fails the
            rollback there.
    """
    step = fault or (lambda _name: None)
    conn, schema = session.conn, session.schema
    restored: dict[str, list[tuple[str, Entity | None]]] = {}
    with conn.transaction(), conn.cursor() as cur:
        step("rollback")
        checkpoint = min(
            (rollback_checkpoint(cur, schema, c, b, committed) for c, b in chain_blocks.items()),
            default=committed,
        )
        for spec in specs:
            restored[spec.table] = _restore_table(cur, schema, spec, checkpoint)
        checkpoints = table_ident(schema, FRAMEWORK_PREFIX + "checkpoints")
        chains = table_ident(schema, FRAMEWORK_PREFIX + "chains")
        undone = cur.execute(
            sql.SQL(
                "SELECT chain_id, min(block_number), sum(events) FROM {} WHERE id > %s GROUP BY chain_id"
            ).format(checkpoints),
            (checkpoint,),
        ).fetchall()
        for chain_id, first_block, events in undone:
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET progress_block = LEAST(progress_block, %s),"
                    " events_processed = events_processed - %s WHERE chain_id = %s"
                ).format(chains),
                (int(first_block) - 1, int(events), int(chain_id)),
            )
        for chain_id, block in chain_blocks.items():
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET progress_block = LEAST(progress_block, %s) WHERE chain_id = %s"
                ).format(chains),
                (block, chain_id),
            )
        cur.execute(sql.SQL("DELETE FROM {} WHERE id > %s").format(checkpoints), (checkpoint,))
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE checkpoint > %s").format(table_ident(schema, RAW_EVENTS)),
            (checkpoint,),
        )
        undo_children(cur, schema, checkpoint)
        cur.execute(
            sql.SQL("UPDATE {} SET checkpoint = %s WHERE id = 1").format(
                table_ident(schema, FRAMEWORK_PREFIX + "state")
            ),
            (checkpoint,),
        )
        progress = {
            int(c): (int(b), int(e))
            for c, b, e in cur.execute(
                sql.SQL("SELECT chain_id, progress_block, events_processed FROM {}").format(chains)
            ).fetchall()
        }
        moved = {int(c) for c, _b, _e in undone} | set(chain_blocks)
        notify(cur, schema, "reorg", {c: progress[c][0] for c in sorted(moved) if c in progress})
        step("commit")
    step("rolled back")
    return Rollback(checkpoint, restored, progress)


def _restore_table(
    cur: Any, schema: str, spec: EntitySpec, checkpoint: int
) -> list[tuple[str, Entity | None]]:
    hist = table_ident(schema, history_table(spec))
    table = table_ident(schema, spec.table)
    cols = sql.SQL(", ").join(sql.Identifier(f.name) for f in spec.fields)
    # The earliest before-image above the target is the state at the target.
    earliest = sql.SQL(
        "SELECT DISTINCT ON (id) _present, {} FROM {} WHERE _checkpoint > %s ORDER BY id, _checkpoint"
    ).format(cols, hist)
    rows = cur.execute(earliest, (checkpoint,)).fetchall()
    if not rows:
        return []
    ids = [r[1] for r in rows]
    cur.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%b)").format(table), (ids,))
    cur.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM ({}) AS e WHERE e._present").format(
            table, cols, cols, earliest
        ),
        (checkpoint,),
    )
    cur.execute(sql.SQL("DELETE FROM {} WHERE _checkpoint > %s").format(hist), (checkpoint,))
    new, cls = tuple.__new__, spec.cls
    return [(r[1], new(cls, r[1:]) if r[0] else None) for r in rows]
