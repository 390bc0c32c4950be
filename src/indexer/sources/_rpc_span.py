"""How many blocks one ``eth_getLogs`` asks for: halved when refused, grown back after successes.

Nodes refuse a range whose answer would be too large (a result limit, a
query timeout).  The fetcher then halves its span; after three full-size
successes it doubles it again, up to ``max_span``.  A span refused lately is
a ceiling: growth stops halfway to it for the next 32 ranges, instead of
oscillating in and out of it (on bench/ponder.py's node the span went
56 <-> 112 blocks, a quarter of the requests refusals), and is forgotten
after that, since a chain's density changes.
"""

from __future__ import annotations

__all__ = ["SpanSizer"]

# Ranges fetched after a "too large" before its span may be tried again.
_CEILING_RANGES = 32
# Full-size successes in a row before the span doubles.
_GROW_AFTER = 3


class SpanSizer:
    """The fetcher's current span (``span``), told of each refusal and each served range."""

    def __init__(self, initial: int, largest: int) -> None:
        self.span = initial
        self.largest = largest
        self._successes = 0
        # The largest span not refused as too large lately.
        self._ceiling, self._ceiling_left = largest, 0

    def refused(self, first: int, last: int) -> None:
        """The node refused blocks ``first..last`` as too large."""
        self.span = max(1, (last - first + 1) // 2)
        self._successes = 0
        self._ceiling, self._ceiling_left = last - first, _CEILING_RANGES

    def served(self, first: int, last: int) -> None:
        """The node answered blocks ``first..last``."""
        self._successes += 1
        self._ceiling_left -= 1
        if self._ceiling_left <= 0:
            self._ceiling = self.largest
        if self._successes >= _GROW_AFTER and last - first + 1 >= self.span:
            grown = min(self.largest, self.span * 2)
            if grown > self._ceiling:
                # Halfway to the span refused last, not back into it.
                grown = max(self.span, (self.span + self._ceiling + 1) // 2)
            self.span = grown
            self._successes = 0
