"""The in-memory entity store: all tables, the two frontiers and capacity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._children import Children
from ._effect_cache import EffectCache
from ._entity import Entity, EntitySpec, entity_spec
from ._table import EntityTable, TableChanges

if TYPE_CHECKING:
    from collections.abc import Iterable
from typing import Any, TypeVar, cast

__all__ = ["Store"]

E = TypeVar("E", bound=Entity)


class Store:
    """Entity tables plus the processed and committed frontiers.

    Checkpoints are positive integers that grow with processing; ``0`` means
    "before anything".  ``processed`` is the last checkpoint whose handlers
    ran; ``committed`` the last one durable in the database.  The store never
    does I/O: the runtime feeds it rows it loaded and asks it for snapshots
    to write.

    Args:
        specs: the entity types of the project.
        target: soft target on held objects (cached values + unwritten
            superseded changes); see :meth:`evict_committed`.
    """

    def __init__(
        self,
        specs: Iterable[EntitySpec],
        *,
        target: int,
        effects: Iterable[tuple[str, bool]] = (),
    ) -> None:
        self.tables: dict[type[Entity], EntityTable[Any]] = {s.cls: EntityTable(s) for s in specs}
        # effect name -> its outputs (effects given as (name, persisted)).
        self.effects: dict[str, EffectCache] = {
            name: EffectCache(name, persist=persist) for name, persist in effects
        }
        # Factory children: state, but never evicted (see Children).
        self.children = Children()
        self.target = max(1, target)
        self.processed = 0
        self.committed = 0
        self._every_change = False

    def table(self, cls: type[E]) -> EntityTable[E]:
        try:
            return cast("EntityTable[E]", self.tables[cls])
        except KeyError:
            spec = entity_spec(cls)  # raises TypeError for non-entities
            raise KeyError(
                f"{spec.cls.__name__} is not an entity of this project; define it in the handlers module"
            ) from None

    def reset_frontiers(self, checkpoint: int) -> None:
        """Start from a database that holds everything up to ``checkpoint``."""
        self.processed = self.committed = checkpoint

    def seal(self) -> None:
        """Promise that no snapshot will be taken above ``processed`` until the next seal.

        Changes made after this call at one checkpoint and superseded before
        the next call are then forgotten instead of kept for a snapshot that
        cannot happen.  Without any call, every superseded change is kept.
        """
        for t in self.tables.values():
            t.sealed = self.processed

    def mark_handed(self) -> None:
        """A write may be taken at ``processed`` (a batch was handed to the writer).

        Until the next such point the runtime writes only up to here or up
        to the end of the last block range, so of the changes an id keeps
        from now on only the one at this checkpoint and the newest stay
        (see ``_table.py``).  Not once :meth:`keep_every_change` was called.
        """
        if not self._every_change:
            for t in self.tables.values():
                t.handed = self.processed

    def keep_every_change(self) -> None:
        """Keep every sealed change from now on: history rows need each (the reorg window)."""
        self._every_change = True
        for t in self.tables.values():
            t.keep_every_change()

    # -- capacity ------------------------------------------------------------

    def size(self) -> int:
        return sum(t.size for t in self.tables.values()) + sum(
            e.size for e in self.effects.values()
        )

    def evict_committed(self) -> int:
        """Past half the target, drop committed entries until back at half.

        Only ids without unwritten changes are dropped, least recently
        referenced first within each table; tables give up entries in
        proportion to their size.  Returns how many were dropped.
        """
        size = self.size()
        half = self.target // 2
        if size <= half:
            return 0
        excess = size - half
        dropped = 0
        holders: list[EntityTable[Any] | EffectCache] = [
            *self.tables.values(),
            *self.effects.values(),
        ]
        for table in sorted(holders, key=lambda t: -t.size):
            share = excess * table.size // size + 1
            dropped += table.evict(min(share, excess - dropped))
            if dropped >= excess:
                break
        return dropped

    def over_target(self, *, extra: int = 0) -> bool:
        """Whether held objects, plus ``extra`` held elsewhere for this store, exceed the target."""
        return self.size() + extra > self.target

    # -- write path ----------------------------------------------------------

    def snapshot(self, upto: int, *, history: bool = False) -> list[TableChanges]:
        """Changes in (committed, upto] per table, as of checkpoint ``upto``."""
        assert self.committed <= upto <= self.processed, (self.committed, upto, self.processed)
        return [t.snapshot(upto, history=history) for t in self.tables.values()]

    def effect_snapshot(self, upto: int) -> dict[str, list[tuple[str, str, Any]]]:
        """Per persisted effect, outputs made in (committed, upto] and not written yet."""
        return {name: rows for name, e in self.effects.items() if (rows := e.snapshot(upto))}

    def mark_committed(self, upto: int) -> None:
        """The database now holds everything up to ``upto``."""
        assert upto >= self.committed
        for t in self.tables.values():
            t.mark_committed(upto)
        for e in self.effects.values():
            e.mark_committed(upto)
        self.committed = upto

    def rollback(
        self, checkpoint: int, restored: dict[type[Entity], list[tuple[str, Any]]]
    ) -> None:
        """Apply a committed rollback to ``checkpoint`` (see :meth:`EntityTable.restore`)."""
        assert self.committed == self.processed, "rollback with uncommitted changes"
        for cls, rows in restored.items():
            self.tables[cls].restore(rows)
        self.children.rollback(checkpoint)
        self.processed = self.committed = checkpoint

    def forget(self) -> None:
        """Drop all cached state; reads then load from the database again.

        Children are not a cache: the caller reloads them (``children.load``).
        """
        assert self.committed == self.processed, "forget with uncommitted changes"
        for t in self.tables.values():
            t.forget()
        for e in self.effects.values():
            e.forget()

    def statistics(self) -> dict[str, int]:
        stats = {
            "processed": self.processed,
            "committed": self.committed,
            "size": self.size(),
            "target": self.target,
        }
        for t in self.tables.values():
            for k, v in t.statistics().items():
                stats[k] = stats.get(k, 0) + v
        return stats
