"""The stall watchdog: a chain whose committed block stops moving while its source is ahead.

Users of every indexer report runs that hang without a word (a node that
answers nothing, a load stuck behind a lock, a writer retrying for ever).
The watchdog turns that silence into a warning that says what the run is
waiting on, a Prometheus gauge (``indexer_stalled{chain_id}``) and a line in
the status, once per episode; a "resumed" line ends it.  It only observes:
it never cancels anything (the retry limits and timeouts do that).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from .._metrics import Metrics
    from ..persist import RetryingSession

__all__ = ["DEFAULT_STALL_SECONDS", "Stall", "Watchdog"]

log = logging.getLogger("indexer.runtime")

DEFAULT_STALL_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Stall:
    """A chain whose committed block has not moved for ``seconds``."""

    chain_id: int
    block: int
    seconds: float
    waiting_on: str


class Watchdog:
    """Checks each chain's committed block against the clock (Trio's: mock clocks work).

    Args:
        stall_seconds: how long a committed block may stand still while its
            chain has blocks to index before it counts as stalled.
        ends: chain id -> its ``end_block`` (None: followed for ever).
        heads: chain id -> the newest head its source reported (kept up to
            date by the processor; absent for files).
        committed: chain id -> committed block, now.
        doing: what the processing loop is waiting on, in words, now.
        sessions: the database sessions whose current call (and attempt)
            the warning names, with a word for each.
    """

    def __init__(
        self,
        stall_seconds: float,
        *,
        ends: Mapping[int, int | None],
        heads: Mapping[int, int],
        committed: Callable[[], Mapping[int, int]],
        doing: Callable[[], str],
        sessions: Sequence[tuple[str, RetryingSession]] = (),
        metrics: Metrics,
    ) -> None:
        self.stall_seconds = stall_seconds
        self._ends = ends
        self._heads = heads
        self._committed = committed
        self._doing = doing
        self._sessions = sessions
        self._metrics = metrics
        self._last: dict[int, tuple[int, float]] = {}  # chain -> (block, since)
        self.stalls: dict[int, Stall] = {}
        for chain in ends:
            metrics.stalled.labels(str(chain)).set(0)

    def behind(self, chain_id: int, committed: int) -> bool:
        """Whether the chain has blocks left to index."""
        head, end = self._heads.get(chain_id), self._ends[chain_id]
        if head is not None:
            return committed < (head if end is None else min(head, end))
        # A file chain: behind until its end (without one, until the run ends).
        return end is None or committed < end

    def waiting_on(self) -> str:
        parts = [self._doing()]
        for who, db in self._sessions:
            if db.current is not None:
                parts.append(f"{who}: {db.current} (attempt {db.attempt})")
        return "; ".join(parts)

    def check(self, now: float) -> None:
        """One look at every chain (the loop calls this; tests may too)."""
        committed = self._committed()
        for chain in self._ends:
            block = committed.get(chain, -1)
            last = self._last.get(chain)
            if last is None or last[0] != block:
                self._last[chain] = (block, now)
                if self.stalls.pop(chain, None) is not None:
                    self._metrics.stalled.labels(str(chain)).set(0)
                    log.warning("chain %d: committing again (block %d)", chain, block)
                continue
            since = last[1]
            if not self.behind(chain, block):
                # Caught up (or done): standing still is what it should do.
                self._last[chain] = (block, now)
                continue
            if now - since < self.stall_seconds:
                continue
            stall = Stall(chain, block, now - since, self.waiting_on())
            if chain not in self.stalls:
                self._metrics.stalled.labels(str(chain)).set(1)
                log.warning(
                    "chain %d: stalled: the committed block (%d) has not moved for %.0f s while "
                    "there are blocks to index; the run is waiting on %s",
                    chain,
                    block,
                    stall.seconds,
                    stall.waiting_on,
                )
            self.stalls[chain] = stall

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Check every few seconds until cancelled (never, if ``stall_seconds`` is infinite)."""
        task_status.started()
        if math.isinf(self.stall_seconds):
            # Off: no periodic deadline at all (tests that drive a mock clock
            # detect a hang as "no deadline left").
            return
        interval = max(0.01, min(5.0, self.stall_seconds / 4))
        while True:
            self.check(trio.current_time())
            await trio.sleep(interval)
