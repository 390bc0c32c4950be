"""Benchmark: the write path on a sync connection in a Trio worker thread vs. psycopg's
async API run inside Trio through trio-asyncio.

Each write is what the framework's writer does (``persist/_write.py``): one
transaction = COPY the rows into a session-lifetime TEMP staging table
(``ON COMMIT DELETE ROWS``), ``INSERT INTO account SELECT ... ON CONFLICT (id)
DO UPDATE`` and an UPDATE of a one-row progress table.  The connection uses
``synchronous_commit = off``, as the framework's writer connection does.

Variants:

* ``thread``: sync ``psycopg.connect(autocommit=True)``; every write is
  ``await trio.to_thread.run_sync(write, limiter=CapacityLimiter(1))``
  (what ``persist/_writer.py`` does).
* ``trio-asyncio``: ``psycopg.AsyncConnection`` inside
  ``async with trio_asyncio.open_loop()``; every write is one asyncio
  coroutine (the whole transaction) called through ``trio_asyncio.aio_as_trio``.

While the writes run back to back, a concurrent Trio task simulates the
processing loop: pure-Python dict updates in ~1 ms chunks with
``await trio.lowlevel.checkpoint()`` between them.  The number of chunks it
completes per second of writing is the *overlap* figure: how much
processing each variant lets through while a write is in flight.

Each repetition runs both variants (order alternating between repetitions),
each on a fresh schema and a fresh connection, with the same pre-generated
rows; B/A ratios are taken pair by pair, within a repetition.  Each
repetition also measures the processing rate with no write running
(baseline) and, unless ``--no-idle``, the write latency with no processing
task running.

Run: ``python bench/write_path.py --url postgresql://... [--rows N] [--writes N] [--repeat N]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# trio-asyncio must be imported before psycopg: it monkeypatches
# asyncio.get_running_loop(), and psycopg.waiting binds that name at import
# time ("from asyncio import get_running_loop"); imported the other way round,
# AsyncConnection.connect() fails with "RuntimeError: no running event loop".
import trio_asyncio  # type: ignore[import-untyped, unused-ignore]

# isort: split
import psycopg
import trio
from psycopg import sql

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

Row = tuple[str, str, str, int]

TABLE = "account"
STAGE = "bench_stage_account"
PROGRESS = "progress"
COLUMNS = ("id", "token", "holder", "balance")
RESULTS = Path(__file__).resolve().parent / "results" / "write_path.json"
THREAD, AIO = "thread", "trio-asyncio"
VARIANTS = (THREAD, AIO)
CHUNK_SECONDS = 0.001
BASELINE_SECONDS = 1.0


# --------------------------------------------------------------------------- data


def make_batches(rows: int, writes: int, seed: int = 20240611) -> list[list[Row]]:
    """``writes`` batches of ``rows`` accounts each, deterministic from ``seed``.

    The first batch is all new ids; every later one is half updates of ids
    written before (distinct within the batch, as ON CONFLICT DO UPDATE
    requires) and half new ids.
    """
    rng = random.Random(seed)
    tokens = [f"0x{rng.getrandbits(160):040x}" for _ in range(64)]
    known: list[tuple[str, str, str]] = []
    batches: list[list[Row]] = []
    for i in range(writes):
        updates = 0 if i == 0 else min(rows // 2, len(known))
        batch: list[Row] = [
            (ident, token, holder, rng.getrandbits(200))
            for ident, token, holder in rng.sample(known, updates)
        ]
        fresh: list[tuple[str, str, str]] = []
        for _ in range(rows - updates):
            token = rng.choice(tokens)
            holder = f"0x{rng.getrandbits(160):040x}"
            fresh.append((f"{token}-{holder}", token, holder))
        batch.extend((ident, token, holder, rng.getrandbits(200)) for ident, token, holder in fresh)
        known.extend(fresh)
        batches.append(batch)
    return batches


# --------------------------------------------------------------------------- SQL


def setup_schema(url: str, schema: str) -> None:
    """(Re)create ``schema`` with the account and progress tables."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id text PRIMARY KEY, token text NOT NULL,"
                " holder text NOT NULL, balance numeric(78,0) NOT NULL)"
            ).format(sql.Identifier(schema, TABLE))
        )
        conn.execute(
            sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, checkpoint bigint NOT NULL)").format(
                sql.Identifier(schema, PROGRESS)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (1, 0)").format(sql.Identifier(schema, PROGRESS))
        )


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@dataclass(frozen=True)
class Statements:
    create_stage: sql.Composed
    copy: sql.Composed
    upsert: sql.Composed
    progress: sql.Composed

    @classmethod
    def for_schema(cls, schema: str) -> Statements:
        table = sql.Identifier(schema, TABLE)
        stage = sql.Identifier(STAGE)
        cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        sets = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in COLUMNS[1:]
        )
        return cls(
            create_stage=sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
            ).format(stage, table),
            copy=sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols),
            upsert=sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT (id) DO UPDATE SET {}"
            ).format(table, cols, cols, stage, sets),
            progress=sql.SQL("UPDATE {} SET checkpoint = %s WHERE id = 1").format(
                sql.Identifier(schema, PROGRESS)
            ),
        )


def write_sync(
    conn: psycopg.Connection[Any], st: Statements, rows: Sequence[Row], upto: int
) -> None:
    """One write, blocking (variant A runs this in a worker thread)."""
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(st.copy) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)
        cur.execute(st.upsert)
        cur.execute(st.progress, (upto,))


async def write_async(
    conn: psycopg.AsyncConnection[Any], st: Statements, rows: Sequence[Row], upto: int
) -> None:
    """One write, as an asyncio coroutine (variant B runs it through aio_as_trio)."""
    async with conn.transaction(), conn.cursor() as cur:
        async with cur.copy(st.copy) as copy:
            write_row = copy.write_row
            for row in rows:
                await write_row(row)
        await cur.execute(st.upsert)
        await cur.execute(st.progress, (upto,))


async def _aio_connect(url: str, create_stage: sql.Composed) -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(
        url, autocommit=True, application_name="bench-write-path"
    )
    await conn.execute("SET synchronous_commit = off")
    await conn.execute(create_stage)
    return conn


async def _aio_close(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.close()


# --------------------------------------------------------------------------- processing


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


# --------------------------------------------------------------------------- runs


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
        conn: psycopg.AsyncConnection[Any] = await trio_asyncio.aio_as_trio(_aio_connect)(
            url, st.create_stage
        )
        try:
            aio_write = trio_asyncio.aio_as_trio(write_async)

            async def write(rows: Sequence[Row], upto: int) -> None:
                await aio_write(conn, st, rows, upto)

            await _drive(write, batches, result, iterations)
        finally:
            await trio_asyncio.aio_as_trio(_aio_close)(conn)
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
        drop_schema(url, schema)


# --------------------------------------------------------------------------- report


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(
    rows: int, reps: list[dict[str, RunResult]], baselines: list[float]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in VARIANTS:
        loaded = [r[v] for r in reps]
        entry: dict[str, Any] = {
            "seconds_per_write": _stats([r.seconds_per_write for r in loaded]),
            "rows_per_second": _stats([rows / r.seconds_per_write for r in loaded]),
            "chunks_per_second": _stats([r.chunks_per_second for r in loaded]),
            "overlap_fraction": _stats(
                [r.chunks_per_second / b for r, b in zip(loaded, baselines, strict=True)]
            ),
        }
        idle_key = f"{v}/idle"
        if all(idle_key in r for r in reps):
            entry["idle_seconds_per_write"] = _stats([r[idle_key].seconds_per_write for r in reps])
        out[v] = entry
    ratio: dict[str, Any] = {
        "seconds_per_write": _stats(
            [r[AIO].seconds_per_write / r[THREAD].seconds_per_write for r in reps]
        ),
        "rows_per_second": _stats(
            [r[THREAD].seconds_per_write / r[AIO].seconds_per_write for r in reps]
        ),
        "chunks_per_second": _stats(
            [r[AIO].chunks_per_second / max(r[THREAD].chunks_per_second, 1e-9) for r in reps]
        ),
    }
    if all(f"{v}/idle" in r for r in reps for v in VARIANTS):
        ratio["idle_seconds_per_write"] = _stats(
            [
                r[f"{AIO}/idle"].seconds_per_write / r[f"{THREAD}/idle"].seconds_per_write
                for r in reps
            ]
        )
    out["B/A"] = ratio
    out["baseline_chunks_per_second"] = _stats(baselines)
    return out


def _fmt(s: dict[str, float], spec: str, scale: float = 1.0) -> str:
    return f"{s['median'] * scale:{spec}} ({s['min'] * scale:{spec}}–{s['max'] * scale:{spec}})"


def markdown(summary: dict[str, Any], rows: int, writes: int, repeat: int) -> str:
    idle = "idle_seconds_per_write" in summary[THREAD]
    head = [
        "variant",
        "ms/write, median (min–max)",
        "rows/s, median",
        "processing chunks/s during writes, median (min–max)",
        "% of baseline processing",
    ]
    if idle:
        head.append("ms/write without processing, median (min–max)")
    lines = [
        f"{rows} rows/write, {writes} writes/run, {repeat} runs/variant; "
        f"baseline processing {summary['baseline_chunks_per_second']['median']:.0f} chunks/s "
        f"(~1 ms chunks, no write running)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for v, label in ((THREAD, "A: thread"), (AIO, "B: trio-asyncio")):
        s = summary[v]
        cells = [
            label,
            _fmt(s["seconds_per_write"], ".1f", 1000),
            f"{s['rows_per_second']['median']:,.0f}",
            _fmt(s["chunks_per_second"], ".0f"),
            f"{s['overlap_fraction']['median'] * 100:.0f} %",
        ]
        if idle:
            cells.append(_fmt(s["idle_seconds_per_write"], ".1f", 1000))
        lines.append("| " + " | ".join(cells) + " |")
    r = summary["B/A"]
    cells = [
        "B/A (pairwise)",
        _fmt(r["seconds_per_write"], ".2f"),
        _fmt(r["rows_per_second"], ".2f"),
        _fmt(r["chunks_per_second"], ".2f"),
        "",
    ]
    if idle:
        cells.append(_fmt(r["idle_seconds_per_write"], ".2f"))
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_info(url: str) -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version()").fetchone()
    return {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "mem_total_gib": round(mem_kb / 2**20, 1),
        "server_version": row[0] if row else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "psycopg": psycopg.__version__,
        "libpq": psycopg.pq.version(),
        "psycopg_impl": psycopg.pq.__impl__,
        "trio": trio.__version__,
        "trio_asyncio": str(trio_asyncio.__version__),
        "gil_switch_interval": sys.getswitchinterval(),
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="PostgreSQL URL")
    parser.add_argument("--rows", type=int, default=20000, help="rows per write")
    parser.add_argument("--writes", type=int, default=30, help="writes per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per variant")
    parser.add_argument(
        "--no-idle", action="store_true", help="skip the runs without the processing task"
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval() value in seconds (default: leave CPython's 0.005)",
    )
    parser.add_argument(
        "--json", type=Path, default=RESULTS, help="results file (merged by config)"
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)

    machine = machine_info(args.url)
    batches = make_batches(args.rows, args.writes)
    iterations = calibrate()
    print(
        f"{args.rows} rows x {args.writes} writes x {args.repeat} repeats; "
        f"chunk = {iterations} dict updates (~{CHUNK_SECONDS * 1000:.0f} ms); "
        f"GIL switch interval {sys.getswitchinterval() * 1000:g} ms",
        flush=True,
    )

    # Warm-up (discarded): imports, adapter caches, first connection.
    for v in VARIANTS:
        run_variant(v, args.url, batches[:3], iterations)

    reps: list[dict[str, RunResult]] = []
    baselines: list[float] = []
    for rep in range(args.repeat):
        order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
        results: dict[str, RunResult] = {}
        baselines.append(trio.run(baseline_rate, iterations))
        for v in order:
            results[v] = run_variant(v, args.url, batches, iterations)
        if not args.no_idle:
            for v in order:
                results[f"{v}/idle"] = run_variant(v, args.url, batches, None)
        reps.append(results)
        print(
            f"rep {rep + 1}: baseline {baselines[-1]:.0f} chunks/s; "
            + "; ".join(
                f"{k}: {r.seconds_per_write * 1000:.1f} ms/write"
                + (f", {r.chunks_per_second:.0f} chunks/s" if r.processing else "")
                for k, r in results.items()
            ),
            flush=True,
        )

    summary = summarize(args.rows, reps, baselines)
    table = markdown(summary, args.rows, args.writes, args.repeat)
    print()
    print(table)

    key = f"rows={args.rows},writes={args.writes},repeat={args.repeat}"
    if args.no_idle:
        key += ",no-idle"
    if args.switch_interval is not None:
        key += f",switch-interval={args.switch_interval:g}"
    data: dict[str, Any] = {}
    if args.json.exists():
        try:
            data = json.loads(args.json.read_text())
        except (OSError, ValueError):
            data = {}
    data.setdefault("runs", {})[key] = {
        "args": {
            "rows": args.rows,
            "writes": args.writes,
            "repeat": args.repeat,
            "no_idle": args.no_idle,
            "switch_interval": args.switch_interval,
        },
        "machine": machine,
        "chunk_iterations": iterations,
        "summary": summary,
        "markdown": table,
        "repetitions": [
            {
                "baseline_chunks_per_second": b,
                "runs": {
                    k: {**asdict(r), "seconds_per_write": r.seconds_per_write}
                    for k, r in rep.items()
                },
            }
            for b, rep in zip(baselines, reps, strict=True)
        ],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    print(f"\nJSON: {args.json}")


if __name__ == "__main__":
    main()
