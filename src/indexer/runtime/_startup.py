"""Start-up: make the schema ready and set the store from what the database holds.

Shared by a run and by ``indexer.testing``'s handler harness, so that both
start exactly alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from ..persist import (
    count_effect_rows,
    create_effect_tables,
    create_schema,
    drop_schema,
    read_state,
    table_has_rows,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..persist import Session
    from ..store import Store

__all__ = ["StartState", "start_from_database"]


@dataclass(frozen=True, slots=True)
class StartState:
    """What the database holds when a run starts."""

    # chain id -> (last committed block, events processed so far)
    progress: Mapping[int, tuple[int, int]]
    # effect name -> rows in its cache table
    effect_rows: Mapping[str, int]


async def start_from_database(
    session: Session,
    store: Store,
    *,
    start_blocks: Mapping[int, int],
    cached_effects: Sequence[str] = (),
    reset: bool = False,
) -> StartState:
    """Create (or, with ``reset``, recreate) the schema and set ``store`` from it.

    The store's frontiers move to the committed checkpoint, and each table
    that is empty in the database is marked complete: a miss in it means
    absent, with no query (a fresh run never waits on loads).
    """
    run = trio.to_thread.run_sync
    schema = session.schema
    if reset:
        await run(drop_schema, session.conn, schema)
    specs = [t.spec for t in store.tables.values()]
    await run(create_schema, session.conn, schema, specs, dict(start_blocks))
    if cached_effects:
        await run(create_effect_tables, session.conn, schema, list(cached_effects))
    committed, progress = await run(read_state, session.conn, schema)
    store.reset_frontiers(committed)
    for table in store.tables.values():
        table.complete = not await run(table_has_rows, session, table.spec)
    effect_rows = {name: await run(count_effect_rows, session, name) for name in cached_effects}
    return StartState(progress, effect_rows)
