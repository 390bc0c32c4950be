"""Benchmark: the rollback of a 64-block reorg touching ~10,000 entities.

    python bench/rollback.py [--runs N] [--entities N] [--depth N] [--url URL]

The chain (``indexer.testing.ScriptedChain``, chain id 1, served in-process by
``open_rpc_server``) has ``--history-blocks`` (200) blocks of older history,
then ``--depth`` (64) blocks ending at the head that hold ``--entities / 2``
ERC20 Transfers between fresh holders: every transfer touches two Account
entities no other transfer in those blocks touches, so the last ``--depth``
blocks touch ``--entities`` distinct accounts (plus the 2 Token rows).  The
older history touches three quarters of the same accounts first, so the
rollback has to do all four things a rollback does:

* ``i % 4 == 0``: minted v earlier, sends v in the window -> balance 0, the row
  is deleted; the rollback re-inserts it (and deletes the created receiver);
* ``i % 4 == 1``: minted 2v earlier, sends v -> updated; restored to the old value;
* ``i % 4 == 2``: the receiver was minted earlier -> updated; the sender is new;
* ``i % 4 == 3``: both are new -> both rows deleted by the rollback.

The rollback scenario uses the reorg tests' handler,
``bench/projects/token_holders/handlers.py`` (``tests/_chains.py`` runs the
same file): Account per (token, holder), deleted at balance 0; Token with a
live ``ctx.find`` holder count.  Its oracle is ``oracle.py`` beside it.

Each repetition (``--runs``, each on fresh schemas and a freshly built chain):

1. ``hist``: the chain indexed with ``max_reorg_depth: 100`` and ``end_block``
   = head, so the last 100 blocks (all the transfers of the window and some of
   the older history) are indexed with history on (the *first run*).  Then
   ``chain.reorg(depth, <a few transfers>)``, one more block, ``end_block`` =
   the new head, and a second run: it finds its stored tip gone on start,
   rolls back to the block below the fork, and indexes the new branch.  The
   rollback's seconds and restored rows come from ``RunSummary.rollbacks``
   (drain + rollback transaction + memory apply, on Trio's clock); the whole
   second run is timed too.  The restored rows must equal the distinct
   entities of the replaced blocks, and the tables must equal an independent
   computation over the final canonical chain.
2. ``nohist``: the same chain indexed with ``max_reorg_depth: 0`` (no headers,
   no checkpoint rows, no before-images): the baseline for the cost of history.
3. ``hist-example`` / ``nohist-example``: 1 and 2's first run with the
   example's handler (``bench/projects/erc20``: two get/set per event, no
   ``ctx.find``).  The tests' handler rebuilds a sorted list of the token's
   holders on every event (thousands here), which dominates its first run;
   with the light handler the framework's own cost of history shows.

The order of the four rotates between repetitions.  Then ``--breakdown``
(3) extra repetitions index the chain with history as in 1 and call the
framework's own ``execute_rollback`` directly, on a connection whose cursor
times every statement (and the fetch of its rows), then apply the result to
a cold ``Store`` (as in the restart case, where memory holds nothing yet):
where the rollback's time goes.  Those rolled-back tables are compared with
the computation over the chain up to the fork.

Everything runs in this process (indexer, RPC server and the oracle share one
Trio loop and one core; PostgreSQL has the other).  Output: a Markdown table
on stdout and ``bench/results/rollback.json`` (every run, medians, machine).
Exit status 1 if a run failed or produced wrong tables.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import shutil
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import psycopg
import trio
from _machine import machine_info, src_hash
from projects.token_holders.oracle import fold
from psycopg import sql

from indexer import RunOptions, RunSummary, load_config, load_handlers, run_project
from indexer.persist import Session, connect, execute_rollback, read_state, start_embedded
from indexer.store import Store
from indexer.testing import LogSpec, ScriptedChain, open_rpc_server

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from indexer.store import EntitySpec

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DEFAULT_WORK_DIR = BENCH / ".work"
DEFAULT_RESULTS = BENCH / "results" / "rollback.json"

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TOKENS = ("0x" + "a1" * 20, "0x" + "b2" * 20)
MINTER = "0x" + "ee" * 20
HOLDER_BASE = 0x1000_0000
WINDOW = 100  # max_reorg_depth of the runs with history
BRANCH_TRANSFERS = 32  # transfers on the replacing branch

# Per entity table (TABLE_NAMES[handler] order): id -> (balance or holders, transfers or last_block).
Tables = tuple[dict[str, tuple[int, int]], ...]
EXAMPLE_HANDLERS = BENCH / "projects" / "erc20" / "handlers.py"
# The reorg tests' handler (tests/_chains.py runs the same file) and its oracle.
TOKEN_HOLDERS = BENCH / "projects" / "token_holders" / "handlers.py"
TABLE_NAMES = {"tests": ("account", "token"), "example": ("account",)}


# --------------------------------------------------------------------------
# The chain
# --------------------------------------------------------------------------


def _topic(address: str) -> str:
    return "0x" + address[2:].rjust(64, "0")


def _transfer(token: str, sender: str, receiver: str, value: int) -> LogSpec:
    return LogSpec(token, (TRANSFER, _topic(sender), _topic(receiver)), "0x" + f"{value:064x}")


def _holder(n: int) -> str:
    return "0x" + f"{HOLDER_BASE + n:040x}"


@dataclass(frozen=True)
class Shape:
    entities: int
    depth: int
    history_blocks: int

    @property
    def pairs(self) -> int:
        return self.entities // 2

    @property
    def head(self) -> int:
        return self.history_blocks + self.depth

    @property
    def fork(self) -> int:
        """The first replaced block; the rollback keeps ``fork - 1``."""
        return self.history_blocks + 1


def build_chain(shape: Shape) -> ScriptedChain:
    """History in blocks 1..history_blocks, the touched entities in the last ``depth`` blocks."""
    logs: dict[int, list[LogSpec]] = {}
    for i in range(shape.pairs):
        token = TOKENS[i % 2]
        sender, receiver = _holder(2 * i), _holder(2 * i + 1)
        value = 1_000 + i
        kind = i % 4
        if kind != 3:
            minted = (sender, value) if kind == 0 else (sender, 2 * value) if kind == 1 else None
            to, amount = minted if minted is not None else (receiver, 5 * value)
            old = 1 + i % shape.history_blocks
            logs.setdefault(old, []).append(_transfer(token, MINTER, to, amount))
        block = shape.fork + i % shape.depth
        logs.setdefault(block, []).append(_transfer(token, sender, receiver, value))
    return ScriptedChain(1, head=shape.head, logs=logs)


def branch_logs(shape: Shape) -> dict[int, list[LogSpec]]:
    """A few transfers on the replacing branch, among accounts the old branch touched."""
    logs: dict[int, list[LogSpec]] = {}
    for i in range(min(BRANCH_TRANSFERS, shape.pairs)):
        block = shape.fork + (2 * i) % shape.depth
        token = TOKENS[i % 2]
        logs.setdefault(block, []).append(
            _transfer(token, _holder(2 * i + 1), _holder(2 * i), 7 + i)
        )
    return logs


def touched(chain: ScriptedChain, first: int, last: int) -> int:
    """Distinct entity rows (accounts and tokens) the logs of ``first..last`` change."""
    ids: set[str] = set()
    for lg in chain.logs(first, last, topic0s=[TRANSFER]):
        token = lg["address"]
        ids.add(token)
        for topic in lg["topics"][1:3]:
            ids.add(f"{token}-0x{topic[-40:]}")
    return len(ids)


# --------------------------------------------------------------------------
# The oracle (projects/token_holders/oracle.py) and reading the tables back
# --------------------------------------------------------------------------


def expected(chain: ScriptedChain, last: int | None = None, handler: str = "tests") -> Tables:
    """The tables computed straight from the chain's canonical logs.

    ``tests``: (accounts, tokens) as the token-holders handler keeps them;
    ``example``: (accounts,) as examples/erc20's handler keeps them (no deletes).
    """
    last = chain.head if last is None else last
    balances, tokens = fold(chain.logs(1, last, topic0s=[TRANSFER]), deletes=handler == "tests")
    return (balances, tokens) if handler == "tests" else (balances,)


def tables(url: str, schema: str, handler: str = "tests") -> Tables:
    queries = {
        "account": "SELECT id, balance, transfers FROM {}.account",
        "token": "SELECT id, holders, last_block FROM {}.token",
    }
    with psycopg.connect(url) as conn:
        return tuple(
            {
                r[0]: (int(r[1]), int(r[2]))
                for r in conn.execute(
                    sql.SQL(queries[name]).format(sql.Identifier(schema))
                ).fetchall()
            }
            for name in TABLE_NAMES[handler]
        )


def compare(got: Tables, want: Tables) -> str | None:
    """None if equal, else a short description of the first differences."""
    problems = []
    if len(got) != len(want):
        return f"{len(got)} tables vs {len(want)} expected"
    for name, g, w in zip(("account", "token"), got, want, strict=False):
        if g == w:
            continue
        missing = sorted(w.keys() - g.keys())[:3]
        extra = sorted(g.keys() - w.keys())[:3]
        wrong = sorted(k for k in g.keys() & w.keys() if g[k] != w[k])[:3]
        problems.append(
            f"{name}: {len(g)} rows vs {len(w)} expected; missing {missing}, extra {extra}, "
            f"different {[(k, g[k], w[k]) for k in wrong]}"
        )
    return "; ".join(problems) or None


# --------------------------------------------------------------------------
# Projects and runs
# --------------------------------------------------------------------------


def write_project(
    work: Path, schema: str, rpc_url: str, end_block: int, depth: int, handler: str = "tests"
) -> Path:
    """A project following the scripted chain with the token-holders or the example's handler."""
    project = work / schema
    project.mkdir(parents=True, exist_ok=True)
    if handler == "tests":
        handlers, contract = json.dumps(str(TOKEN_HOLDERS)), "Token"
    else:
        handlers, contract = json.dumps(str(EXAMPLE_HANDLERS)), "ERC20"
    (project / "indexer.yaml").write_text(
        f"# Generated by bench/rollback.py.\n"
        f"name: bench-rollback\n"
        f"handlers: {handlers}\n"
        f"schema: {schema}\n"
        f"chains:\n"
        f"  - id: 1\n"
        f"    start_block: 1\n"
        f"    end_block: {end_block}\n"
        f"    max_reorg_depth: {depth}\n"
        f"    source: {{rpc: '{rpc_url}', poll_interval: 0.05}}\n"
        f"    contracts:\n"
        f"      - name: {contract}\n"
        f'        events: ["event Transfer(address indexed from, address indexed to, uint256 value)"]\n'
    )
    return project


def set_end_block(project: Path, end_block: int) -> None:
    path = project / "indexer.yaml"
    text = "\n".join(
        f"    end_block: {end_block}" if ln.strip().startswith("end_block:") else ln
        for ln in path.read_text().splitlines()
    )
    path.write_text(text + "\n")


async def run(project: Path, url: str) -> tuple[RunSummary, float]:
    """One ``run_project`` as the CLI would start it (default options); (summary, wall seconds)."""
    config = load_config(project)
    handlers = load_handlers(config)
    started = time.perf_counter()
    summary = await run_project(
        config, handlers, RunOptions(database_url=url, handle_signals=False)
    )
    return summary, time.perf_counter() - started


def run_fields(summary: RunSummary, wall: float) -> dict[str, Any]:
    return {
        "wall_seconds": wall,
        "events": summary.events,
        "committed_block": summary.chains.get(1, (None, None))[0],
        "writes": summary.writes,
        "write_seconds": summary.write_seconds,
        "handler_seconds": summary.handler_seconds,
        "load_seconds": summary.load_seconds,
        "stalled_seconds": summary.stalled_seconds,
    }


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        # Flush the dirty buffers now rather than during the next run.
        with contextlib.suppress(psycopg.Error):
            conn.execute("CHECKPOINT")


def history_rows(url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        out = {}
        for table in ("_indexer_h_account", "_indexer_h_token", "_indexer_checkpoints"):
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            ).fetchone()
            out[table] = int(row[0]) if row else 0
    return out


class Bench:
    def __init__(self, args: argparse.Namespace, url: str) -> None:
        self.args = args
        self.url = url
        self.shape = Shape(args.entities, args.depth, args.history_blocks)
        self.work: Path = args.work_dir / "rollback"
        self.tag = f"rb{os.getpid()}"
        self.errors: list[str] = []
        self.started = time.perf_counter()

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.started:7.1f}s] {msg}", flush=True)

    def fail(self, record: dict[str, Any], why: str) -> None:
        record["ok"] = False
        record["error"] = why
        self.errors.append(f"{record['kind']} rep {record['rep']}: {why}")
        self.log(f"  FAILED: {why}")

    # -- one variant ---------------------------------------------------------

    async def first_only(self, rep: int, kind: str) -> dict[str, Any]:
        """Index the chain once: ``nohist`` (tests' handler, max_reorg_depth 0), or the
        example's handler with (``hist-example``) or without (``nohist-example``) history."""
        handler = "example" if kind.endswith("-example") else "tests"
        depth = WINDOW if kind.startswith("hist") else 0
        shape, schema = self.shape, f"{self.tag}_{rep}_{kind.replace('-', '_')}"
        record: dict[str, Any] = {"kind": kind, "rep": rep, "schema": schema, "ok": True}
        record["loadavg_before"] = os.getloadavg()[0]
        chain = build_chain(shape)
        try:
            async with open_rpc_server(chain) as server:
                project = write_project(self.work, schema, server.url, shape.head, depth, handler)
                summary, wall = await run(project, self.url)
            record["first"] = run_fields(summary, wall)
            got, want = tables(self.url, schema, handler), expected(chain, handler=handler)
            if (why := compare(got, want)) is not None:
                self.fail(record, f"tables differ: {why}")
        except Exception as exc:
            self.fail(record, f"{type(exc).__name__}: {exc}")
            record["traceback"] = traceback.format_exc()
        finally:
            drop_schema(self.url, schema)
        first = record.get("first", {})
        self.log(
            f"  rep {rep} {kind}: first run {first.get('wall_seconds', 0):.3f}s "
            f"(handlers {first.get('handler_seconds', 0):.3f}s, "
            f"writer {first.get('write_seconds', 0):.3f}s)" + ("" if record["ok"] else " FAILED")
        )
        return record

    async def hist(self, rep: int) -> dict[str, Any]:
        shape, schema = self.shape, f"{self.tag}_{rep}_hist"
        record: dict[str, Any] = {"kind": "hist", "rep": rep, "schema": schema, "ok": True}
        record["loadavg_before"] = os.getloadavg()[0]
        chain = build_chain(shape)
        try:
            async with open_rpc_server(chain) as server:
                project = write_project(self.work, schema, server.url, shape.head, WINDOW)
                summary, wall = await run(project, self.url)
                record["first"] = run_fields(summary, wall)
                record["history_rows"] = history_rows(self.url, schema)
                if (why := compare(tables(self.url, schema), expected(chain))) is not None:
                    self.fail(record, f"tables after the first run differ: {why}")
                    return record
                want_rows = touched(chain, shape.fork, shape.head)
                chain.reorg(shape.depth, branch_logs(shape))
                chain.advance(1, {chain.head + 1: [_transfer(TOKENS[0], MINTER, _holder(0), 3)]})
                set_end_block(project, chain.head)
                summary, wall = await run(project, self.url)
            record["second"] = run_fields(summary, wall)
            rollbacks = [
                {"chain_id": c, "block_kept": b, "rows": r, "seconds": s}
                for c, b, r, s in summary.rollbacks
            ]
            record["rollbacks"] = rollbacks
            if [(r["chain_id"], r["block_kept"]) for r in rollbacks] != [(1, shape.fork - 1)]:
                self.fail(record, f"expected one rollback to block {shape.fork - 1}: {rollbacks}")
            else:
                record["rollback_seconds"] = rollbacks[0]["seconds"]
                record["rows_restored"] = rollbacks[0]["rows"]
                record["rows_expected"] = want_rows
                if rollbacks[0]["rows"] != want_rows:
                    self.fail(record, f"restored {rollbacks[0]['rows']} rows, expected {want_rows}")
            if (why := compare(tables(self.url, schema), expected(chain))) is not None:
                self.fail(record, f"tables after the rollback run differ: {why}")
        except Exception as exc:
            self.fail(record, f"{type(exc).__name__}: {exc}")
            record["traceback"] = traceback.format_exc()
        finally:
            drop_schema(self.url, schema)
        first, second = record.get("first", {}), record.get("second", {})
        self.log(
            f"  rep {rep} hist: first run {first.get('wall_seconds', 0):.3f}s "
            f"(handlers {first.get('handler_seconds', 0):.3f}s, "
            f"writer {first.get('write_seconds', 0):.3f}s); rollback "
            f"{record.get('rollback_seconds', 0):.3f}s, {record.get('rows_restored', 0):,} rows; "
            f"second run {second.get('wall_seconds', 0):.3f}s" + ("" if record["ok"] else " FAILED")
        )
        return record

    async def breakdown(self, rep: int) -> dict[str, Any]:
        """Index with history, then time the pieces of the framework's execute_rollback."""
        shape, schema = self.shape, f"{self.tag}_{rep}_breakdown"
        record: dict[str, Any] = {"kind": "breakdown", "rep": rep, "schema": schema, "ok": True}
        record["loadavg_before"] = os.getloadavg()[0]
        chain = build_chain(shape)
        try:
            async with open_rpc_server(chain) as server:
                project = write_project(self.work, schema, server.url, shape.head, WINDOW)
                summary, wall = await run(project, self.url)
            record["first"] = run_fields(summary, wall)
            handlers = load_handlers(load_config(project))
            record.update(
                await trio.to_thread.run_sync(
                    timed_rollback, self.url, schema, handlers.entities, shape.fork - 1
                )
            )
            want = expected(chain, shape.fork - 1)
            if (why := compare(tables(self.url, schema), want)) is not None:
                self.fail(record, f"tables after the direct rollback differ: {why}")
        except Exception as exc:
            self.fail(record, f"{type(exc).__name__}: {exc}")
            record["traceback"] = traceback.format_exc()
        finally:
            drop_schema(self.url, schema)
        self.log(
            f"  breakdown {rep}: rollback transaction {record.get('transaction_seconds', 0):.3f}s, "
            f"memory apply {record.get('memory_apply_seconds', 0):.3f}s"
            + ("" if record["ok"] else " FAILED")
        )
        return record


# --------------------------------------------------------------------------
# The breakdown: the real execute_rollback on a timing connection
# --------------------------------------------------------------------------


class _TimedCursor:
    """Wraps a psycopg cursor; records (statement label, seconds) for execute and fetch."""

    def __init__(self, cur: psycopg.Cursor[Any], timings: list[tuple[str, float]]) -> None:
        self._cur = cur
        self._timings = timings
        self._label = "?"

    def __enter__(self) -> _TimedCursor:
        self._cur.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cur.__exit__(None, None, None)

    def execute(self, query: sql.Composed | sql.SQL, params: Any = None) -> _TimedCursor:
        self._label = _label(query.as_string(self._cur.connection))
        started = time.perf_counter()
        self._cur.execute(query, params)
        self._timings.append((self._label, time.perf_counter() - started))
        return self

    def fetchone(self) -> Any:
        started = time.perf_counter()
        row = self._cur.fetchone()
        self._timings.append((self._label + " (fetch rows)", time.perf_counter() - started))
        return row

    def fetchall(self) -> list[Any]:
        started = time.perf_counter()
        rows = self._cur.fetchall()
        self._timings.append((self._label + " (fetch rows)", time.perf_counter() - started))
        return rows


class _TimedConnection:
    def __init__(self, conn: psycopg.Connection[Any], timings: list[tuple[str, float]]) -> None:
        self._conn = conn
        self._timings = timings

    def transaction(self) -> Any:
        return self._conn.transaction()

    def cursor(self) -> _TimedCursor:
        return _TimedCursor(self._conn.cursor(), self._timings)


def _label(text: str) -> str:
    """A statement of execute_rollback, named by what it does."""
    table = "account" if '"account"' in text else "token" if '"token"' in text else ""
    if '"_indexer_h_account"' in text:
        table = "account"
    elif '"_indexer_h_token"' in text:
        table = "token"
    if text.startswith("SELECT min(id)"):
        return "find the target checkpoint"
    if text.startswith("SELECT DISTINCT ON"):
        return f"{table}: SELECT before-images"
    if text.startswith("INSERT INTO"):
        return f"{table}: INSERT restored rows (re-runs the SELECT)"
    if text.startswith("DELETE FROM") and "_checkpoint >" in text:
        return f"{table}: DELETE history above the target"
    if text.startswith("DELETE FROM") and "ANY" in text:
        return f"{table}: DELETE current rows (id = ANY(<ids>), ids sent as text[])"
    return "checkpoints and progress"


def timed_rollback(
    url: str, schema: str, specs: Sequence[EntitySpec], block: int
) -> dict[str, Any]:
    """Run ``execute_rollback`` to ``block`` on a timing connection, then apply it to a cold Store."""
    timings: list[tuple[str, float]] = []
    marks: dict[str, float] = {}

    def fault(name: str) -> None:
        marks[name] = time.perf_counter()

    session = connect(url, schema, writer=True)  # as the writer's: synchronous_commit off
    try:
        committed, _progress = read_state(session.conn, schema)
        timed = Session(
            cast("psycopg.Connection[Any]", _TimedConnection(session.conn, timings)), schema
        )
        started = time.perf_counter()
        result = execute_rollback(timed, specs, {1: block}, committed=committed, fault=fault)
        ended = time.perf_counter()
    finally:
        session.close()
    store = Store(specs, target=1_000_000)
    store.reset_frontiers(committed)
    by_table = {t.spec.table: t.spec.cls for t in store.tables.values()}
    applied = time.perf_counter()
    store.rollback(
        result.checkpoint, {by_table[name]: rows for name, rows in result.restored.items()}
    )
    memory = time.perf_counter() - applied
    pieces: dict[str, float] = {}
    for label, seconds in timings:
        pieces[label] = pieces.get(label, 0.0) + seconds
    statements = sum(pieces.values())
    commit = ended - marks["commit"]
    total = ended - started
    return {
        "rows_restored": result.rows,
        "transaction_seconds": total,
        "statements_seconds": statements,
        "commit_seconds": commit,
        # Building the restored entities from the fetched rows, BEGIN, the hooks.
        "python_seconds": total - statements - commit,
        "memory_apply_seconds": memory,
        "pieces": pieces,
    }


# --------------------------------------------------------------------------
# Summary and output
# --------------------------------------------------------------------------


def stats(values: Sequence[float]) -> dict[str, Any] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": list(values),
    }


def _get(record: Mapping[str, Any], *path: str) -> Any:
    value: Any = record
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _values(records: Sequence[Mapping[str, Any]], kind: str, *path: str) -> list[float]:
    out = []
    for r in records:
        if r["kind"] == kind and r.get("ok"):
            v = _get(r, *path)
            if v is not None:
                out.append(float(v))
    return out


def _pair_ratios(records: Sequence[dict[str, Any]], a: str, b: str, *path: str) -> list[float]:
    """a/b of ``path`` pair by pair, within a repetition."""
    by_rep: dict[int, dict[str, float]] = {}
    for r in records:
        if r.get("ok") and r["kind"] in (a, b) and (v := _get(r, *path)) is not None:
            by_rep.setdefault(r["rep"], {})[r["kind"]] = float(v)
    return [p[a] / p[b] for p in by_rep.values() if len(p) == 2 and p[b] > 0]


def _history_cost(records: Sequence[dict[str, Any]], hist: str, nohist: str) -> dict[str, Any]:
    on = _values(records, hist, "first", "wall_seconds")
    off = _values(records, nohist, "first", "wall_seconds")
    return {
        "first_run_history_seconds": stats(on),
        "first_run_no_history_seconds": stats(off),
        "ratio_of_medians": statistics.median(on) / statistics.median(off) if on and off else None,
        "ratio_per_rep": stats(_pair_ratios(records, hist, nohist, "first", "wall_seconds")),
        "handler_seconds_history": stats(_values(records, hist, "first", "handler_seconds")),
        "handler_seconds_no_history": stats(_values(records, nohist, "first", "handler_seconds")),
        "writer_seconds_history": stats(_values(records, hist, "first", "write_seconds")),
        "writer_seconds_no_history": stats(_values(records, nohist, "first", "write_seconds")),
    }


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    breakdowns = [r for r in records if r["kind"] == "breakdown" and r.get("ok")]
    labels: list[str] = []
    for r in breakdowns:
        labels += [k for k in r["pieces"] if k not in labels]
    return {
        "rollback_seconds": stats(_values(records, "hist", "rollback_seconds")),
        "rows_restored": stats(_values(records, "hist", "rows_restored")),
        "second_run_seconds": stats(_values(records, "hist", "second", "wall_seconds")),
        "history_cost": {
            "tests_handler": _history_cost(records, "hist", "nohist"),
            "example_handler": _history_cost(records, "hist-example", "nohist-example"),
        },
        "breakdown": {
            "transaction_seconds": stats(_values(records, "breakdown", "transaction_seconds")),
            "statements_seconds": stats(_values(records, "breakdown", "statements_seconds")),
            "commit_seconds": stats(_values(records, "breakdown", "commit_seconds")),
            "python_seconds": stats(_values(records, "breakdown", "python_seconds")),
            "memory_apply_seconds": stats(_values(records, "breakdown", "memory_apply_seconds")),
            "pieces": {
                label: stats([r["pieces"][label] for r in breakdowns if label in r["pieces"]])
                for label in labels
            },
        }
        if breakdowns
        else None,
    }


def _fmt(s: Mapping[str, Any] | None, scale: float = 1.0, digits: int = 3) -> tuple[str, ...]:
    if not s:
        return ("n/a", "n/a", "n/a", "0")
    return (
        f"{s['median'] * scale:,.{digits}f}",
        f"{s['min'] * scale:,.{digits}f}",
        f"{s['max'] * scale:,.{digits}f}",
        str(s["n"]),
    )


def markdown(results: Mapping[str, Any]) -> str:
    p, s = results["params"], results["summary"]
    lines = [
        f"Rollback of a {p['depth']}-block reorg touching {p['entities']:,} accounts "
        f"({p['transfers_in_reorged_blocks']:,} transfers; {p['history_blocks']} blocks of older "
        f"history below; max_reorg_depth {WINDOW}); {p['runs']} runs, seconds.",
        "",
        "| measure | median | min | max | n |",
        "|---|---:|---:|---:|---:|",
    ]
    rows: list[tuple[str, Mapping[str, Any] | None, int]] = [
        (
            "**rollback** (RunSummary.rollbacks: drain + transaction + memory)",
            s["rollback_seconds"],
            3,
        ),
        ("entity rows restored", s["rows_restored"], 0),
        (
            f"second run (start, rollback, {p['depth'] + 1} new blocks, flush)",
            s["second_run_seconds"],
            3,
        ),
    ]
    for name, key in (("tests/_chains.py", "tests_handler"), ("example", "example_handler")):
        c = s["history_cost"][key]
        rows += [
            (f"first run, {name} handler, history on", c["first_run_history_seconds"], 3),
            (f"first run, {name} handler, max_reorg_depth 0", c["first_run_no_history_seconds"], 3),
            ("&nbsp;&nbsp;ratio on/off (per rep)", c["ratio_per_rep"], 2),
            ("&nbsp;&nbsp;handler seconds, history on", c["handler_seconds_history"], 3),
            ("&nbsp;&nbsp;handler seconds, depth 0", c["handler_seconds_no_history"], 3),
            (
                "&nbsp;&nbsp;writer seconds (wall, incl. GIL waits), history on",
                c["writer_seconds_history"],
                3,
            ),
            ("&nbsp;&nbsp;writer seconds, depth 0", c["writer_seconds_no_history"], 3),
        ]
    for name, st, digits in rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(st, digits=digits)) + " |")
    ratios = [
        f"{name} handler {c['ratio_of_medians']:.2f}"
        for name, c in (
            ("tests/_chains.py", s["history_cost"]["tests_handler"]),
            ("example", s["history_cost"]["example_handler"]),
        )
        if c["ratio_of_medians"] is not None
    ]
    if ratios:
        lines += [
            "",
            "First run, history on / off, ratio of the medians: " + "; ".join(ratios) + ".",
        ]
    b = s.get("breakdown")
    if b:
        lines += [
            "",
            f"Where the rollback's time goes: the framework's execute_rollback on a timing "
            f"connection, then applied to a cold Store ({b['transaction_seconds']['n']} separate "
            f"runs, ms):",
            "",
            "| piece | median | min | max | n |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, st in b["pieces"].items():
            lines.append(f"| {name} | " + " | ".join(_fmt(st, 1000, 1)) + " |")
        for name, key in (
            ("all statements", "statements_seconds"),
            ("COMMIT (synchronous_commit off)", "commit_seconds"),
            ("Python (rows -> entities, BEGIN)", "python_seconds"),
            ("**transaction total**", "transaction_seconds"),
            ("memory apply (cold Store)", "memory_apply_seconds"),
        ):
            lines.append(f"| {name} | " + " | ".join(_fmt(b[key], 1000, 1)) + " |")
    return "\n".join(lines) + "\n"


FIRST_RUN_KINDS = ("nohist", "hist", "nohist-example", "hist-example")


def _orders(runs: int) -> Iterator[tuple[int, str]]:
    """Every repetition runs every kind once; the order rotates between repetitions."""
    n = len(FIRST_RUN_KINDS)
    for rep in range(1, runs + 1):
        shift = (rep - 1) % n
        for kind in FIRST_RUN_KINDS[shift:] + FIRST_RUN_KINDS[:shift]:
            yield rep, kind


async def bench_main(bench: Bench) -> list[dict[str, Any]]:
    jobs = list(_orders(bench.args.runs))
    jobs += [(rep, "breakdown") for rep in range(1, bench.args.breakdown + 1)]
    records = []
    for rep, kind in jobs:
        if kind == "hist":
            records.append(await bench.hist(rep))
        elif kind == "breakdown":
            records.append(await bench.breakdown(rep))
        else:
            records.append(await bench.first_only(rep, kind))
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=5, help="repetitions (default 5)")
    p.add_argument(
        "--entities",
        type=int,
        default=10_000,
        help="distinct accounts the reorganised blocks touch (default 10,000)",
    )
    p.add_argument("--depth", type=int, default=64, help="reorg depth in blocks (default 64)")
    p.add_argument(
        "--history-blocks",
        type=int,
        default=200,
        help="blocks of older history below the reorganised ones (default 200)",
    )
    p.add_argument(
        "--breakdown",
        type=int,
        default=3,
        metavar="N",
        help="extra runs timing the pieces of the rollback transaction (default 3; 0: none)",
    )
    p.add_argument(
        "--url", default=None, help="PostgreSQL URL (default: an embedded server in the work dir)"
    )
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="the JSON file to write")
    p.add_argument("-v", "--verbose", action="store_true", help="show the framework's warnings")
    args = p.parse_args(argv)
    if not 1 <= args.depth < WINDOW:
        p.error(f"--depth must be in 1..{WINDOW - 1} (the runs use max_reorg_depth {WINDOW})")
    if args.entities < 8 or args.history_blocks < 1 or args.runs < 1:
        p.error("--entities must be at least 8, --history-blocks and --runs at least 1")
    logging.basicConfig(
        level=logging.WARNING if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    args.work_dir = args.work_dir.resolve()
    url = args.url or start_embedded(args.work_dir / "pgdata")
    bench = Bench(args, url)
    shutil.rmtree(bench.work, ignore_errors=True)
    code_before = src_hash()
    machine = machine_info(url)
    shape = bench.shape
    bench.log(
        f"{machine.get('postgres')}; chain: head {shape.head}, {shape.pairs:,} transfers in blocks "
        f"{shape.fork}..{shape.head} (reorg depth {shape.depth}), older history in 1..{shape.fork - 1}"
    )
    records = trio.run(bench_main, bench)
    code_after = src_hash()
    with contextlib.suppress(OSError):
        machine["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results: dict[str, Any] = {
        "benchmark": "rollback",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "python bench/rollback.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "params": {
            "runs": args.runs,
            "entities": args.entities,
            "depth": args.depth,
            "history_blocks": args.history_blocks,
            "max_reorg_depth": WINDOW,
            "transfers_in_reorged_blocks": shape.pairs,
            "branch_transfers": min(BRANCH_TRANSFERS, shape.pairs),
            "breakdown_runs": args.breakdown,
        },
        # The framework is imported once, at the start: the code measured is src_hash's
        # (src/ is edited concurrently; a different hash at the end is noted, not fatal).
        "src_hash": code_before,
        "src_hash_at_end": code_after,
        "machine": machine,
        "summary": summarize(records),
        "runs": records,
        "errors": bench.errors,
        "wall_seconds": time.perf_counter() - bench.started,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.results.with_name(args.results.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(args.results)
    print()
    print(markdown(results))
    bench.log(f"wrote {args.results}")
    for err in bench.errors:
        print(f"ERROR: {err}", file=sys.stderr)
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
