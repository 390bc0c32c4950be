"""Scheduling a run's hand-off: held writes, a feed that lets the loop run dry, replays.

Batches pile up in the processing loop only while the writer cannot take
them, and the loop hands its pending batch over only when no range is
ready.  A test that wants those moments, in every order, makes them:

* :class:`Gate` is the run's ``pre_write`` hook (awaited by the writer after
  it took its batches, before the transaction).  Its schedule says, write
  by write, how long to hold: until ``blocks`` more blocks are processed,
  or until nothing can go on without the writer, whichever comes first.
* :class:`PacedTransport` wraps the chain's in-process transport: before
  fetching the logs of a block in ``dry`` it waits until the run settles,
  so the loop has run out of ranges there.
* :func:`run_driven` runs the database calls inline (:func:`inline_threads`:
  how long a write takes is then what its hold says, not how fast
  PostgreSQL answered) under a ``MockClock`` that :func:`drive_clock`
  moves only once the gate and the feed had their turn; a run in which
  nothing can ever wake is reported as a deadlock instead of hanging.

With Trio's scheduling made deterministic by hypothesis, a schedule replays
the same interleaving, so a failure shrinks instead of turning "flaky".
This module and the ``pre_write`` hook are the only places the tests touch
the hand-off's machinery; what the tests assert is read from the database.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import trio
import trio.testing
from hypothesis import Phase

from indexer import Metrics

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

    from indexer.persist import Changeset

__all__ = [
    "FAST_FAILURE",
    "Gate",
    "Hold",
    "PacedTransport",
    "drive_clock",
    "inline_threads",
    "run_driven",
    "settle",
]

T = TypeVar("T")

# Hypothesis settings for whole runs: a failure is shrunk once (one bug at a
# time) and not "explained" (that phase re-runs the shrunk example with each
# choice varied: hundreds of runs, five minutes for the reorg machine here;
# the printed steps already show the schedule).
FAST_FAILURE: dict[str, Any] = {
    "report_multiple_bugs": False,
    "phases": [phase for phase in Phase if phase is not Phase.explain],
}

# Real seconds the clock driver waits for the run to stay idle: longer than
# the gate's and the feed's zero, so that they are woken first.
_DRIVER_CUSHION = 0.0005


@dataclass(frozen=True)
class Hold:
    """Hold one write until ``blocks`` more blocks are processed (None: as long as possible)."""

    blocks: int | None = None

    def __repr__(self) -> str:
        return "Hold()" if self.blocks is None else f"Hold({self.blocks})"


async def settle() -> None:
    """Return once every other task is blocked and no worker thread is running.

    A task waiting for a thread (a database call) goes on by itself, so it
    does not count as blocked; what is still blocked after that waits for
    the caller (or for a timer: see :func:`drive_clock`).
    """
    while True:
        await trio.testing.wait_all_threads_completed()
        await trio.testing.wait_all_tasks_blocked()
        if trio.testing.active_thread_count() == 0:
            return


async def drive_clock(clock: trio.testing.MockClock) -> None:
    """Jump ``clock`` to the next deadline whenever the run is idle (run it beside the run).

    Raises RuntimeError if every task is blocked with no thread running and
    no deadline: nothing could ever wake them (a hang, reported as one).
    """
    while True:
        await trio.testing.wait_all_tasks_blocked(_DRIVER_CUSHION)
        if trio.testing.active_thread_count():
            await trio.testing.wait_all_threads_completed()
            continue
        delay = trio.lowlevel.current_statistics().seconds_to_next_deadline
        if math.isinf(delay):
            raise RuntimeError("deadlock: every task is blocked and nothing can wake one")
        clock.jump(max(delay, 0.0))


class _Watch(trio.abc.Instrument):
    """Sets ``event`` after the first task step at which ``ready()`` holds."""

    def __init__(self, ready: Callable[[], bool], event: trio.Event) -> None:
        self.ready = ready
        self.event = event

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if not self.event.is_set() and self.ready():
            self.event.set()


@dataclass
class Gate:
    """A ``pre_write`` hook that holds the k-th write as ``schedule[k]`` says (None: not held).

    Writes past the end of the schedule are not held.  ``on_write(k)`` runs
    as write k starts, before any hold.  Pass ``metrics`` to the run too: the
    processed block is read from it.
    """

    schedule: Sequence[Hold | None]
    chain_id: int = 1
    on_write: Callable[[int], None] | None = None
    metrics: Metrics = field(default_factory=Metrics)
    writes: int = 0

    def processed(self) -> int:
        value = self.metrics.registry.get_sample_value(
            "indexer_processed_block", {"chain": str(self.chain_id)}
        )
        return -1 if value is None else int(value)

    async def __call__(self, write: Changeset) -> None:
        k, self.writes = self.writes, self.writes + 1
        if self.on_write is not None:
            self.on_write(k)
        hold = self.schedule[k] if k < len(self.schedule) else None
        if hold is None:
            return
        async with trio.open_nursery() as nursery:

            async def until_settled() -> None:
                await settle()
                nursery.cancel_scope.cancel()

            nursery.start_soon(until_settled)
            if hold.blocks is None:
                return
            target = self.processed() + hold.blocks
            reached = trio.Event()
            watch = _Watch(lambda: self.processed() >= target, reached)
            trio.lowlevel.add_instrument(watch)
            try:
                await reached.wait()
            finally:
                trio.lowlevel.remove_instrument(watch)
            nursery.cancel_scope.cancel()


class PacedTransport(httpx.AsyncBaseTransport):
    """``inner``, with the logs of a block in ``dry`` fetched only once the run settles.

    ``on_request(methods, blocks)`` runs before each request is answered,
    with the methods it calls and the blocks it asks for (headers or logs),
    e.g. to reorganise the chain mid-run.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        dry: Iterable[int] = (),
        on_request: Callable[[set[str], set[int]], None] | None = None,
    ) -> None:
        self.inner = inner
        self.dry = set(dry)
        self.on_request = on_request

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        calls = json.loads(await request.aread())
        logs: set[int] = set()
        headers: set[int] = set()
        methods: set[str] = set()
        for call in calls if isinstance(calls, list) else [calls]:
            method, params = call.get("method"), call.get("params") or []
            methods.add(str(method))
            if method == "eth_getLogs":
                first, last = (int(params[0][k], 16) for k in ("fromBlock", "toBlock"))
                logs.update(range(first, last + 1))
            elif method == "eth_getBlockByNumber" and str(params[0]).startswith("0x"):
                headers.add(int(params[0], 16))
        due = self.dry & logs
        if due:
            self.dry -= due
            await settle()
        if self.on_request is not None:
            self.on_request(methods, logs | headers)
        return await self.inner.handle_async_request(request)


async def _inline(fn: Callable[..., T], *args: Any, **_options: Any) -> T:
    # As in trio.to_thread: a checkpoint before the call starts (the
    # limiter) and one before the caller sees the result (a worker's result
    # comes back through the run loop, never within the same batch of
    # task steps).
    await trio.lowlevel.checkpoint()
    result = fn(*args)
    await trio.lowlevel.checkpoint()
    return result


@contextlib.contextmanager
def inline_threads() -> Iterator[None]:
    """Run ``trio.to_thread.run_sync`` calls in the Trio thread, between two checkpoints.

    In a worker thread a database call lets the other tasks run for as long
    as PostgreSQL takes to answer, which no schedule controls (and so
    neither does a replay).  Inline, what runs meanwhile is what the test
    holds: a write lasts as long as its ``Gate`` hold.
    """
    original = trio.to_thread.run_sync
    trio.to_thread.run_sync = _inline  # type: ignore[assignment]
    try:
        yield
    finally:
        trio.to_thread.run_sync = original


def run_driven(fn: Callable[[], Awaitable[T]]) -> T:
    """``trio.run(fn)`` under a ``MockClock`` that :func:`drive_clock` advances, threads inline."""
    clock = trio.testing.MockClock()

    async def main() -> T:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drive_clock, clock)
            result = await fn()
            nursery.cancel_scope.cancel()
        return result

    with inline_threads():
        return trio.run(main, clock=clock)
