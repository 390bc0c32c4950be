"""``BlockSchedule``: the blocks a chain's block handlers run at."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BlockSchedule"]


@dataclass(frozen=True, slots=True)
class BlockSchedule:
    """Blocks ``start, start + every, ...`` up to ``end`` (None: no end), one triple per handler.

    Sources fetch (or read) a :class:`~indexer.Block` for each block due in
    a range they send; the processing loop runs the handlers due there.
    """

    intervals: tuple[tuple[int, int, int | None], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.intervals)

    def is_due(self, number: int, interval: tuple[int, int, int | None]) -> bool:
        """Whether ``number`` is one of the blocks of ``interval``."""
        start, every, end = interval
        return start <= number and (end is None or number <= end) and (number - start) % every == 0

    def due(self, first: int, last: int) -> list[int]:
        """The blocks of ``first..last`` (inclusive) at which some handler runs, in order."""
        found: set[int] = set()
        for start, every, end in self.intervals:
            top = last if end is None else min(last, end)
            lo = max(first, start)
            if lo > top:
                continue
            # The first block of the interval at or above `lo`.
            lo += (start - lo) % every
            found.update(range(lo, top + 1, every))
        return sorted(found)
