"""The simulated processing loop: pure-Python chunks of ~1 ms with a Trio checkpoint between."""

from __future__ import annotations

import statistics
import time

import trio

CHUNK_SECONDS = 0.001
BASELINE_SECONDS = 1.0


def work_chunk(d: dict[int, int], n: int) -> None:
    """Pure-Python, GIL-holding work: ``n`` dict updates."""
    get = d.get
    for i in range(n):
        k = i & 4095
        d[k] = get(k, 0) + i


def calibrate() -> int:
    """Iterations of :func:`work_chunk` that take about CHUNK_SECONDS here."""
    d: dict[int, int] = {}
    n = 1000
    while True:
        start = time.perf_counter()
        work_chunk(d, n)
        if time.perf_counter() - start > 0.02:
            break
        n *= 2
    samples = []
    for _ in range(15):
        start = time.perf_counter()
        work_chunk(d, n)
        samples.append(time.perf_counter() - start)
    # The median, not the minimum: on a shared machine the minimum is a rare
    # undisturbed run and would make the typical chunk longer than intended.
    return max(1, round(n * CHUNK_SECONDS / statistics.median(samples)))


class Processing:
    """The simulated processing loop: chunks of work with a checkpoint between them."""

    def __init__(self, iterations: int) -> None:
        self.iterations = iterations
        self.chunks = 0
        self.stop = False

    async def run(self) -> None:
        d: dict[int, int] = {}
        while not self.stop:
            work_chunk(d, self.iterations)
            self.chunks += 1
            await trio.lowlevel.checkpoint()


async def baseline_rate(iterations: int, seconds: float = BASELINE_SECONDS) -> float:
    """Chunks per second the processing task completes with no write running."""
    proc = Processing(iterations)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(proc.run)
        await trio.sleep(0.05)
        c0, t0 = proc.chunks, time.perf_counter()
        await trio.sleep(seconds)
        c1, t1 = proc.chunks, time.perf_counter()
        proc.stop = True
    return (c1 - c0) / (t1 - t0)
