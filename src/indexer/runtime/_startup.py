"""Start-up: make the schema ready and set the store from what the database holds.

Shared by a run and by ``indexer.testing``'s handler harness, so that both
start exactly alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

from ..persist import (
    count_effect_rows,
    create_effect_tables,
    create_schema,
    drop_schema,
    read_children,
    read_state,
    table_has_rows,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ..persist import RetryingSession, Session
    from ..store import Store

__all__ = ["StartState", "start_from_database"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StartState:
    """What the database holds when a run starts."""

    # chain id -> (last committed block, events processed so far)
    progress: Mapping[int, tuple[int, int]]
    # effect name -> rows in its cache table
    effect_rows: Mapping[str, int]


async def start_from_database(
    db: RetryingSession,
    store: Store,
    *,
    start_blocks: Mapping[int, int],
    cached_effects: Sequence[str] = (),
    reset: bool = False,
    keep_caches: bool = False,
) -> StartState:
    """Create (or, with ``reset``, recreate) the schema and set ``store`` from it.

    The store's frontiers move to the committed checkpoint, and each table
    that is empty in the database is marked complete: a miss in it means
    absent, with no query (a fresh run never waits on loads).  Each step is
    one statement or one transaction, safe to repeat, so each is retried
    alone after a transient error.
    """

    async def run(what: str, fn: Callable[[Session], T]) -> T:
        # No `done` check: a None result can only be fn's own.
        return cast("T", await db.run(what, fn))

    schema = db.session.schema
    if reset:
        await run(
            "dropping the schema (--reset)",
            lambda s: drop_schema(s.conn, schema, keep_caches=keep_caches),
        )
    specs = [t.spec for t in store.tables.values()]
    await run(
        "creating or checking the schema",
        lambda s: create_schema(s.conn, schema, specs, dict(start_blocks)),
    )
    if cached_effects:
        effects = list(cached_effects)
        await run(
            "creating the effect tables", lambda s: create_effect_tables(s.conn, schema, effects)
        )
    committed, progress = await run("reading the state", lambda s: read_state(s.conn, schema))
    store.reset_frontiers(committed)
    store.children.load(
        await run("reading the factory children", lambda s: read_children(s.conn, schema))
    )
    for table in store.tables.values():
        spec = table.spec
        table.complete = not await run(
            f"checking table {spec.table}", functools.partial(table_has_rows, spec=spec)
        )
    effect_rows = {
        name: await run(
            f"counting effect {name}'s rows", functools.partial(count_effect_rows, name=name)
        )
        for name in cached_effects
    }
    return StartState(progress, effect_rows)
