"""Ponder's GraphQL next to ours, on the same rows: the pieces of ``bench/api_ponder.py``.

Ponder serves its tables over GraphQL from the ``ponder start`` process itself once an
API file mounts its ``graphql()`` middleware; that process keeps serving after it has
indexed its ``endBlock``, so it is left running while the load generator asks it.  Both
schemas have Ponder's shape (``account(id:)``, ``accounts(where:, orderBy:, ...)`` with
``totalCount``, ``items`` and ``pageInfo``), so one query text serves both servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# Ponder 0.16's GraphQL middleware over the project's schema (its documented use).
GRAPHQL_API = """\
import { db } from "ponder:api";
import schema from "ponder:schema";
import { Hono } from "hono";
import { graphql } from "ponder";

const app = new Hono();
app.use("/graphql", graphql({ db, schema }));

export default app;
"""

_DONE = "Completed indexing across all chains"


class PonderServer:
    """``ponder start`` left running after it indexed everything: its API answers."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self._out = open(log.with_suffix(".out"), "w")  # noqa: SIM115 - closed in stop()
        self._err = open(log.with_suffix(".err"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=self._err, text=True,
            start_new_session=True,
        )  # fmt: skip
        self._done = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:  # drained to the end: a full pipe would block Ponder
            self._out.write(line)
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(line).get("msg") == _DONE:
                    self._out.flush()
                    self._done.set()

    def wait_indexed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._done.wait(1.0):
            if self.proc.poll() is not None:
                raise RuntimeError(f"ponder start exited with status {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ponder start did not log {_DONE!r} in {timeout:.0f} s")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._out.close()
        self._err.close()


def side_by_side_md(rows: list[dict[str, object]]) -> str:
    """The report's table: per query and client count, both servers and the ratio."""
    out = [
        "| query | clients | ours requests/s | Ponder requests/s | ours / Ponder | ours p50 / p99 ms "
        "| Ponder p50 / p99 ms | errors (ours / Ponder) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    out.extend(
        f"| {r['query']} | {r['clients']} | {r['ours_rps']:,.0f} | {r['ponder_rps']:,.0f} "
        f"| {r['ratio']:.2f} | {r['ours_p50']:.1f} / {r['ours_p99']:.1f} "
        f"| {r['ponder_p50']:.1f} / {r['ponder_p99']:.1f} | {r['ours_errors']} / {r['ponder_errors']} |"
        for r in rows
    )
    return "\n".join(out) + "\n"
