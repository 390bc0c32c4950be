"""One entity type's in-memory state: cached rows, unwritten changes, indices.

State per id, in three dicts so the hot path is one or two dict operations:

* ``values``: the processed value of every id the table holds in memory,
  ``None`` meaning "absent" (deleted, or known not to exist in the database).
  Insertion order is recency order: every reference moves the id to the end,
  so eviction walks from the front (least recently referenced first).
* ``cps``: for ids with a change not yet cleaned up after commit, the
  checkpoint of their latest change.  Invariant: every entry is greater than
  the store's committed checkpoint (cleanup after each commit keeps it so).
* ``prev``: superseded changes that are not committed yet, oldest first, one
  per (id, checkpoint).  A write that snapshots up to checkpoint ``c`` while
  handlers already changed the id at ``c' > c`` takes the value from here,
  and the reorg history rows come from here too.

A superseded change is kept only if a snapshot can still be taken between it
and its successor, i.e. if it is at or below ``sealed`` (see
:meth:`Store.seal`).  Far from the chain head the runtime seals once per
block range, so a hot id changed in every block of a range keeps one value
per range instead of one per block: that bookkeeping was a tenth of the
processing loop's time.  Within the reorg window it seals every block, so
history stays exact for every block a rollback can target.

Far from the head, of the values kept per range only two can still be
written: the one at ``handed`` (the checkpoint of the last batch handed to
the writer, whose snapshot may not be taken yet) and the one at the end of
the last range (a run stopped by an error inside a range writes up to
there).  So the newest kept change replaces the one before it unless that
one is the value at ``handed`` (:meth:`Store.mark_handed`): a hot id holds
at most two values between two writes instead of one per range.
Over JSON-RPC, with ranges of ~60 blocks and a hand-over every 2 s, those
queues had made the store look full (half its target), so hand-overs came
every 0.5 s and the run wrote twice as often (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from ._id_filter import IdFilter

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from ._entity import Entity, EntitySpec

__all__ = ["MISSING", "EntityTable", "TableChanges"]

E = TypeVar("E", bound="Entity")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
"""Returned by lookups for an id the table knows nothing about."""

_EVERY: Final = 1 << 62  # `sealed` when nobody seals: keep every superseded change


@dataclass(slots=True)
class TableChanges:
    """What one write must persist for one table: the state at the write's checkpoint."""

    spec: EntitySpec
    upserts: list[Entity] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    # (id, checkpoint, value or None) for every change in the write's range,
    # filled only when the snapshot asks for history.
    history: list[tuple[str, int, Entity | None]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.upserts) + len(self.deletes)


class EntityTable(Generic[E]):
    """In-memory state of one entity type.  Synchronous and I/O free."""

    __slots__ = (
        "_active",
        "_index",
        "_index_complete",
        "_indexed",
        "_prev_count",
        "complete",
        "cps",
        "evictions",
        "gone",
        "handed",
        "id_pos",
        "prev",
        "sealed",
        "spec",
        "values",
    )

    def __init__(self, spec: EntitySpec) -> None:
        self.spec = spec
        self.values: dict[str, E | None] = {}
        self.cps: dict[str, int] = {}
        self.prev: dict[str, list[tuple[int, E | None]]] = {}
        self._prev_count = 0
        # Highest checkpoint a snapshot may still be taken at (see the module
        # docstring); until the runtime says otherwise, every one.
        self.sealed = _EVERY
        # Checkpoint of the last hand-over (see the module docstring); None
        # (until the runtime says otherwise): no kept change is replaced.
        self.handed: int | None = None
        # True while every row the database holds for this table is also in
        # `values`: then a miss means "absent" without asking the database.
        self.complete = False
        # Ids evicted from a table that was complete (see _id_filter.py):
        # while set, an id it has not seen is absent from the database too.
        self.gone: IdFilter | None = None
        self.evictions = 0
        self.id_pos = spec.field("id").position
        self._indexed: tuple[tuple[str, int], ...] = tuple(
            (f.name, f.position) for f in spec.indexed
        )
        # Index fields that ctx.find has used.  Only those are maintained:
        # most handlers never call find, and keeping a reverse map of every
        # entity would cost them on every set.
        self._active: tuple[tuple[str, int], ...] = ()
        # field -> value -> ids of in-memory entities with that value
        # (active fields only).
        self._index: dict[str, dict[Any, set[str]]] = {name: {} for name, _ in self._indexed}
        # field -> values whose id set above is known to equal the database's
        # answer overlaid with memory.  Evicting any member drops the mark.
        self._index_complete: dict[str, set[Any]] = {name: set() for name, _ in self._indexed}

    # -- reads ---------------------------------------------------------------

    def get(self, id: str) -> E | Any | None:
        """Value of ``id``, ``None`` if absent, or ``MISSING`` if unknown."""
        values = self.values
        value = values.pop(id, MISSING)
        if value is MISSING:
            return None if self.known_absent(id) else MISSING
        values[id] = value  # move to the recent end
        return value

    def known_absent(self, id: str) -> bool:
        """True if ``id``, not held in memory, is certainly not in the database either."""
        if self.complete:
            return True
        gone = self.gone
        return gone is not None and id not in gone

    def _activate(self, field: str) -> None:
        pos = self.spec.field(field).position
        by_value = self._index[field]
        for id, entity in self.values.items():
            if entity is not None:
                by_value.setdefault(entity[pos], set()).add(id)
        self._active = (*self._active, (field, pos))

    def find_cached(self, field: str, value: Any) -> list[E] | None:
        """Entities with ``field == value`` if memory knows the full answer, else None."""
        if value not in self._index_complete[field]:
            if not any(name == field for name, _ in self._active):
                self._activate(field)
            return None
        ids = self._index[field].get(value, ())
        values = self.values
        return [e for i in sorted(ids) if (e := values[i]) is not None]

    # -- writes --------------------------------------------------------------

    def keep_every_change(self) -> None:
        """Never replace a kept change (see the module docstring): history needs each."""
        self.handed = None

    def set(self, id: str, entity: E | None, cp: int) -> None:
        """Record the processed value of ``id`` at checkpoint ``cp`` (None deletes)."""
        values, cps = self.values, self.cps
        # No move to the recent end: handlers set what they just got, and
        # `get` has moved it already.
        old = values.get(id)
        old_cp = cps.get(id)
        if old_cp is not None and old_cp != cp and old_cp <= self.sealed:
            # The change at old_cp is not committed yet (see the invariant on
            # `cps`) and a snapshot may be taken after it: keep it, a write or
            # a history row may still need it.
            chain = self.prev.get(id)
            if chain is None:
                self.prev[id] = [(old_cp, old)]
                self._prev_count += 1
            elif (handed := self.handed) is not None and (
                chain[-1][0] > handed or old_cp <= handed
            ):
                # chain[-1] is neither the value at the hand-over (the newest
                # at or below it) nor the newest kept one: no write needs it.
                chain[-1] = (old_cp, old)
            else:
                chain.append((old_cp, old))
                self._prev_count += 1
        values[id] = entity
        cps[id] = cp
        active = self._active
        if active:
            if old is None or entity is None:
                self._reindex(id, old, entity)
            else:
                for _name, pos in active:
                    if old[pos] != entity[pos]:
                        self._reindex(id, old, entity)
                        break

    def _reindex(self, id: str, old: E | None, new: E | None) -> None:
        for name, pos in self._active:
            old_v = old[pos] if old is not None else MISSING
            new_v = new[pos] if new is not None else MISSING
            if old_v == new_v:
                continue
            by_value = self._index[name]
            if old_v is not MISSING:
                members = by_value.get(old_v)
                if members is not None:
                    members.discard(id)
                    if not members and old_v not in self._index_complete[name]:
                        del by_value[old_v]
            if new_v is not MISSING:
                by_value.setdefault(new_v, set()).add(id)

    def load(self, ids: Iterable[str], rows: Iterable[E]) -> None:
        """Merge rows read from the database for ``ids``; ids without a row are absent.

        Memory wins: an id already held (possibly with an unwritten change) is
        not overwritten by an older committed row.
        """
        values, id_pos = self.values, self.id_pos
        for row in rows:
            id = row[id_pos]
            if id not in values:
                values[id] = row
                if self._active:
                    self._reindex(id, None, row)
        for id in ids:
            if id not in values:
                values[id] = None

    def load_find(self, field: str, value: Any, rows: Iterable[E]) -> list[E]:
        """Merge the database's answer to ``field == value`` and mark it complete."""
        if not any(name == field for name, _ in self._active):
            self._activate(field)
        self.load((), rows)
        self._index_complete[field].add(value)
        result = self.find_cached(field, value)
        assert result is not None
        return result

    def restore(self, rows: Iterable[tuple[str, E | None]]) -> None:
        """Apply a committed rollback: each id now holds the given value (None: absent).

        Only with no uncommitted change (the runtime drains the writer
        first).  Ids are set whether or not memory held them, so cached
        values, the "complete" flag and every index keep matching the
        database: nothing stale survives, and nothing needs reloading.
        """
        assert not self.cps, "rollback with uncommitted changes"
        values = self.values
        for id, value in rows:
            old = values.pop(id, None)
            values[id] = value
            if self._active:
                self._reindex(id, old, value)

    def forget(self) -> None:
        """Drop every cached value and index (only with nothing uncommitted)."""
        assert not self.cps, "forget with uncommitted changes"
        self.values.clear()
        for by_value in self._index.values():
            by_value.clear()
        for complete in self._index_complete.values():
            complete.clear()
        self.complete = False
        self.gone = None

    # -- capacity ------------------------------------------------------------

    @property
    def size(self) -> int:
        """Objects held: cached values (including known-absent ids) plus superseded changes."""
        return len(self.values) + self._prev_count

    def evict(self, count: int) -> int:
        """Drop up to ``count`` committed ids, least recently referenced first."""
        if count <= 0:
            return 0
        cps = self.cps
        victims: list[str] = []
        for id in self.values:
            if id not in cps:
                victims.append(id)
                if len(victims) >= count:
                    break
        if not victims:
            return 0
        values = self.values
        gone = self.gone
        if gone is None and self.complete:
            # Complete until now: the database holds nothing but what memory
            # held, so noting what leaves memory keeps "absent" answerable.
            gone = self.gone = IdFilter()
        for id in victims:
            old = values.pop(id)
            if gone is not None and old is not None:
                gone.add(id)
            if self._active and old is not None:
                for name, pos in self._active:
                    # An index entry that lost a member no longer equals the
                    # database's answer: forget that it was complete.
                    v = old[pos]
                    self._index_complete[name].discard(v)
                    members = self._index[name].get(v)
                    if members is not None:
                        members.discard(id)
                        if not members:
                            del self._index[name][v]
        self.complete = False
        self.evictions += len(victims)
        return len(victims)

    # -- write path ----------------------------------------------------------

    def snapshot(self, upto: int, *, history: bool) -> TableChanges:
        """The changes a write up to checkpoint ``upto`` must persist.

        Only ids changed since the last commit are visited.  For each, the
        value at ``upto`` is the latest change if it is at or below ``upto``,
        else the newest superseded change at or below it.
        """
        out = TableChanges(self.spec)
        values, prev = self.values, self.prev
        for id, cp in self.cps.items():
            chain = prev.get(id)
            if cp <= upto:
                value = values[id]
            elif chain is None:
                continue
            else:
                for pcp, value in reversed(chain):  # noqa: B007 - value used below
                    if pcp <= upto:
                        break
                else:
                    continue
            if value is None:
                out.deletes.append(id)
            else:
                out.upserts.append(value)
            if history:
                if chain is not None:
                    out.history.extend((id, pcp, pv) for pcp, pv in chain if pcp <= upto)
                if cp <= upto:
                    out.history.append((id, cp, values[id]))
        return out

    def mark_committed(self, upto: int) -> None:
        """Forget change bookkeeping for everything at or below ``upto`` (now durable)."""
        cps, prev = self.cps, self.prev
        # Rebuilt rather than deleted from: usually most entries are done,
        # and one pass that copies the few kept ones beats a pass that lists
        # the many done ones plus a delete each (and leaves no dict at its
        # peak size behind).
        self.cps = {id: cp for id, cp in cps.items() if cp > upto}
        if prev:
            for id in list(prev):
                chain = prev[id]
                keep = [c for c in chain if c[0] > upto]
                self._prev_count -= len(chain) - len(keep)
                if keep:
                    prev[id] = keep
                else:
                    del prev[id]

    def dirty_ids(self) -> Iterator[str]:
        return iter(self.cps)

    def statistics(self) -> dict[str, int]:
        return {
            "cached": len(self.values),
            "dirty": len(self.cps),
            "superseded": self._prev_count,
            "evictions": self.evictions,
        }
