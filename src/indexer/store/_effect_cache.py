"""One effect's outputs in memory: cached, and not yet written.

Like an entity table but simpler: an output depends only on its input, so
there is no history and nothing to roll back.  ``pending`` holds outputs
computed since the last commit (with the checkpoint of the batch that
made them, so a write takes exactly its own); everything else is a cache
that can be dropped at any time.
"""

from __future__ import annotations

from typing import Any

from ._table import MISSING

__all__ = ["EffectCache"]


class EffectCache:
    """Outputs of one effect by input key.  Synchronous and I/O free."""

    __slots__ = ("evictions", "name", "pending", "persist", "values")

    def __init__(self, name: str, *, persist: bool) -> None:
        self.name = name
        self.persist = persist
        # key -> output, in recency order (eviction walks from the front).
        self.values: dict[str, Any] = {}
        # key -> (input JSON, checkpoint) of outputs not written yet.
        self.pending: dict[str, tuple[str, int]] = {}
        self.evictions = 0

    def get(self, key: str) -> Any:
        """The output for ``key``, or ``MISSING``."""
        value = self.values.pop(key, MISSING)
        if value is not MISSING:
            self.values[key] = value
        return value

    def put(self, key: str, input_json: str, output: Any, cp: int) -> None:
        """A freshly computed output (written with checkpoint ``cp`` if persisted)."""
        self.values.pop(key, None)
        self.values[key] = output
        if self.persist and key not in self.pending:
            self.pending[key] = (input_json, cp)

    def load(self, key: str, output: Any) -> None:
        """An output read from the database (memory wins)."""
        if key not in self.values:
            self.values[key] = output

    @property
    def size(self) -> int:
        return len(self.values)

    def evict(self, count: int) -> int:
        """Drop up to ``count`` written (or never-persisted) outputs, oldest first."""
        victims = [k for k in self.values if k not in self.pending][: max(0, count)]
        for k in victims:
            del self.values[k]
        self.evictions += len(victims)
        return len(victims)

    def clear_unpersisted(self) -> None:
        """Forget outputs of a non-cached effect (they only live for one batch)."""
        if not self.persist:
            self.values.clear()

    def snapshot(self, upto: int) -> list[tuple[str, str, Any]]:
        """(key, input JSON, output) of pending outputs made at or before ``upto``."""
        values = self.values
        return [(k, inp, values[k]) for k, (inp, cp) in self.pending.items() if cp <= upto]

    def mark_committed(self, upto: int) -> None:
        done = [k for k, (_inp, cp) in self.pending.items() if cp <= upto]
        for k in done:
            del self.pending[k]

    def forget(self) -> None:
        assert not self.pending, "forget with unwritten outputs"
        self.values.clear()
