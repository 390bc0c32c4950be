"""The writes run back to back in either variant, with or without the processing task."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import trio
import trio_asyncio  # type: ignore[import-untyped, unused-ignore]
from _pg import drop_schema

from _write_path.processing import Processing
from _write_path.write import (
    Statements,
    aio_close,
    aio_connect,
    setup_schema,
    write_async,
    write_sync,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from _write_path.batches import Row

THREAD, AIO = "thread", "trio-asyncio"
VARIANTS = (THREAD, AIO)


@dataclass
class RunResult:
    variant: str
    processing: bool
    write_seconds: list[float] = field(default_factory=list)
    total_seconds: float = 0.0
    chunks: int = 0

    @property
    def seconds_per_write(self) -> float:
        return self.total_seconds / len(self.write_seconds)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.total_seconds


async def _drive(
    write: Callable[[Sequence[Row], int], Awaitable[None]],
    batches: Sequence[Sequence[Row]],
    result: RunResult,
    iterations: int | None,
) -> None:
    """Run the writes back to back, with the processing task alongside if asked."""
    proc = Processing(iterations or 1)
    async with trio.open_nursery() as nursery:
        if iterations is not None:
            nursery.start_soon(proc.run)
            await trio.sleep(0.02)  # let it get going
        c0, t0 = proc.chunks, time.perf_counter()
        for upto, batch in enumerate(batches, start=1):
            start = time.perf_counter()
            await write(batch, upto)
            result.write_seconds.append(time.perf_counter() - start)
        result.total_seconds = time.perf_counter() - t0
        result.chunks = proc.chunks - c0
        proc.stop = True


async def run_thread(
    url: str, schema: str, batches: Sequence[Sequence[Row]], iterations: int | None
) -> RunResult:
    st = Statements.for_schema(schema)
    limiter = trio.CapacityLimiter(1)

    def connect() -> psycopg.Connection[Any]:
        conn = psycopg.connect(url, autocommit=True, application_name="bench-write-path")
        conn.execute("SET synchronous_commit = off")
        conn.execute(st.create_stage)
        return conn

    conn = await trio.to_thread.run_sync(connect, limiter=limiter)
    result = RunResult(THREAD, iterations is not None)
    try:

        async def write(rows: Sequence[Row], upto: int) -> None:
            await trio.to_thread.run_sync(write_sync, conn, st, rows, upto, limiter=limiter)

        await _drive(write, batches, result, iterations)
    finally:
        await trio.to_thread.run_sync(conn.close, limiter=limiter)
    return result


async def run_aio(
    url: str, schema: str, batches: Sequence[Sequence[Row]], iterations: int | None
) -> RunResult:
    st = Statements.for_schema(schema)
    result = RunResult(AIO, iterations is not None)
    async with trio_asyncio.open_loop():
        conn: psycopg.AsyncConnection[Any] = await trio_asyncio.aio_as_trio(aio_connect)(
            url, st.create_stage
        )
        try:
            aio_write = trio_asyncio.aio_as_trio(write_async)

            async def write(rows: Sequence[Row], upto: int) -> None:
                await aio_write(conn, st, rows, upto)

            await _drive(write, batches, result, iterations)
        finally:
            await trio_asyncio.aio_as_trio(aio_close)(conn)
    return result


def run_variant(
    variant: str, url: str, batches: Sequence[Sequence[Row]], iterations: int | None
) -> RunResult:
    schema = f"bench_write_path_{variant.replace('-', '_')}"
    setup_schema(url, schema)
    try:
        runner = run_thread if variant == THREAD else run_aio
        return trio.run(runner, url, schema, batches, iterations)
    finally:
        drop_schema(url, schema, checkpoint=False)
