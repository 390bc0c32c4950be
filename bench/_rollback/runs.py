"""The benchmark's runs: the reorg and rollback, a first run only, the breakdown.

Each run builds a fresh chain and indexes it into a fresh schema, which it drops
after; its record holds its figures, or why it failed.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from typing import TYPE_CHECKING, Any

import trio
from _pg import drop_schema

from _rollback.breakdown import timed_rollback
from _rollback.chain import Shape, build_chain, reorg, touched
from _rollback.project import WINDOW, run, run_fields, set_end_block, write_project
from _rollback.tables import compare, expected, history_rows, tables
from indexer import load_config, load_handlers
from indexer.testing import open_rpc_server

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from pathlib import Path


class Bench:
    """The runs of one benchmark invocation, the errors they met, the log."""

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

    def _record(self, kind: str, rep: int) -> dict[str, Any]:
        """A run's record as it starts: kind, repetition, its own schema, the load average."""
        schema = f"{self.tag}_{rep}_{kind.replace('-', '_')}"
        return {
            "kind": kind,
            "rep": rep,
            "schema": schema,
            "ok": True,
            "loadavg_before": os.getloadavg()[0],
        }

    @contextlib.contextmanager
    def _attempt(self, record: dict[str, Any]) -> Iterator[None]:
        """Record an exception of the block as the run's failure; drop its schema after."""
        try:
            yield
        except Exception as exc:
            self.fail(record, f"{type(exc).__name__}: {exc}")
            record["traceback"] = traceback.format_exc()
        finally:
            drop_schema(self.url, record["schema"])

    async def _first_run(
        self, record: dict[str, Any], rpc_url: str, depth: int, handler: str = "tests"
    ) -> Path:
        """Index the chain at ``rpc_url`` to its head into the record's schema (``record["first"]``)."""
        project = write_project(
            self.work, record["schema"], rpc_url, self.shape.head, depth, handler
        )
        summary, wall = await run(project, self.url)
        record["first"] = run_fields(summary, wall)
        return project

    # -- one variant ---------------------------------------------------------

    async def first_only(self, rep: int, kind: str) -> dict[str, Any]:
        """Index the chain once: ``nohist`` (tests' handler, max_reorg_depth 0), or the
        example's handler with (``hist-example``) or without (``nohist-example``) history."""
        handler = "example" if kind.endswith("-example") else "tests"
        depth = WINDOW if kind.startswith("hist") else 0
        shape, record = self.shape, self._record(kind, rep)
        schema = record["schema"]
        chain = build_chain(shape)
        with self._attempt(record):
            async with open_rpc_server(chain) as server:
                await self._first_run(record, server.url, depth, handler)
            got, want = tables(self.url, schema, handler), expected(chain, handler=handler)
            if (why := compare(got, want)) is not None:
                self.fail(record, f"tables differ: {why}")
        self.log(f"  rep {rep} {kind}: {_first_run_text(record)}" + _failed(record))
        return record

    async def hist(self, rep: int) -> dict[str, Any]:
        """Index with history, reorganise the chain, and time the second run's rollback."""
        shape, record = self.shape, self._record("hist", rep)
        schema = record["schema"]
        chain = build_chain(shape)
        with self._attempt(record):
            async with open_rpc_server(chain) as server:
                project = await self._first_run(record, server.url, WINDOW)
                record["history_rows"] = history_rows(self.url, schema)
                if (why := compare(tables(self.url, schema), expected(chain))) is not None:
                    self.fail(record, f"tables after the first run differ: {why}")
                    return record
                want_rows = touched(chain, shape.fork, shape.head)
                reorg(chain, shape)
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
        second = record.get("second", {})
        self.log(
            f"  rep {rep} hist: {_first_run_text(record)}; rollback "
            f"{record.get('rollback_seconds', 0):.3f}s, {record.get('rows_restored', 0):,} rows; "
            f"second run {second.get('wall_seconds', 0):.3f}s" + _failed(record)
        )
        return record

    async def breakdown(self, rep: int) -> dict[str, Any]:
        """Index with history, then time the pieces of the framework's execute_rollback."""
        shape, record = self.shape, self._record("breakdown", rep)
        schema = record["schema"]
        chain = build_chain(shape)
        with self._attempt(record):
            async with open_rpc_server(chain) as server:
                project = await self._first_run(record, server.url, WINDOW)
            handlers = load_handlers(load_config(project))
            record.update(
                await trio.to_thread.run_sync(
                    timed_rollback, self.url, schema, handlers.entities, shape.fork - 1
                )
            )
            want = expected(chain, shape.fork - 1)
            if (why := compare(tables(self.url, schema), want)) is not None:
                self.fail(record, f"tables after the direct rollback differ: {why}")
        self.log(
            f"  breakdown {rep}: rollback transaction {record.get('transaction_seconds', 0):.3f}s, "
            f"memory apply {record.get('memory_apply_seconds', 0):.3f}s" + _failed(record)
        )
        return record


def _first_run_text(record: dict[str, Any]) -> str:
    first = record.get("first", {})
    return (
        f"first run {first.get('wall_seconds', 0):.3f}s "
        f"(handlers {first.get('handler_seconds', 0):.3f}s, "
        f"writer {first.get('write_seconds', 0):.3f}s)"
    )


def _failed(record: dict[str, Any]) -> str:
    return "" if record["ok"] else " FAILED"
