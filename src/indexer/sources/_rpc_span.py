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

from ._rpc import RpcError, RpcRangeError, RpcTimeoutError, RpcUnavailableError

__all__ = ["SpanSizer", "plan_range", "too_large", "window_start"]

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


def window_start(head: int, max_reorg_depth: int) -> int:
    """First block fetched with headers (and processed with history).

    A reorg of depth ``max_reorg_depth`` replaces the blocks above
    ``head - max_reorg_depth``; that block itself is the common block such a
    rollback keeps, so its hash must be stored too: the window starts there,
    one block before the first replaceable one.
    """
    if max_reorg_depth == 0:
        return head + 1
    return max(0, head - max_reorg_depth)


def plan_range(
    first: int, span: int, stop: int, window: int, ahead: int = 1
) -> tuple[int, int, bool] | None:
    """(first, last, within the window) of the range asked for ``ahead - 1`` ranges after the
    one from ``first``; None past ``stop`` (the head read, or ``end_block``).

    A range is at most ``span`` blocks, and one that reaches into the window
    stops before it: the far part first, since it needs no headers.
    """
    found = None
    for _ in range(ahead):
        if first > stop:
            return None
        last = min(first + span - 1, stop)
        if first < window <= last:
            last = window - 1
        found = (first, last, first >= window)
        first = last + 1
    return found


def too_large(exc: RpcError) -> bool:
    """Whether the node refused an ``eth_getLogs`` as too expensive: then the span shrinks."""
    # A node-side query timeout (e.g. -32000 "query timeout exceeded") is the
    # node saying the range is too expensive, like a range error.  (Not when
    # retries ran out: their causes may say "timed out" too.)
    return isinstance(exc, (RpcRangeError, RpcTimeoutError)) or (
        not isinstance(exc, RpcUnavailableError)
        and any(w in str(exc).lower() for w in ("query timeout", "timed out", "execution timeout"))
    )
