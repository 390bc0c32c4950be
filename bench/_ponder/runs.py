"""One measured run of each kind: Ponder cold and warm, ours over RPC, the RPC floor.

Every run is a child process timed from the outside (whole-process wall time).  Ponder
does not exit when it has indexed its ``endBlock`` (it goes on serving its API), so its
time is taken from its start to its JSON log line "Completed indexing across all
chains", after which it is stopped.  After each run the node's ``bench_calls`` says what
the run asked for, and the run's table (or the floor's fold) is compared with the oracle.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from _pg import drop_schema
from _suite.cli_summary import parse_summary
from _suite.process import run_process, tree_rss_kib
from psycopg import sql

from _ponder.oracle import table_digest

if TYPE_CHECKING:
    from pathlib import Path

_DONE = "Completed indexing across all chains"


@dataclass
class Bench:
    """What every run needs: the databases, the node, the projects, the oracle."""

    url: str  # PostgreSQL, a role that may create databases
    node_url: str
    node: dict[str, Any]  # the node's ready line (tokens, blocks, block range, ...)
    ponder: dict[str, str]  # tools/install_ponder.sh's key=value lines
    ponder_project: Path
    our_project: Path
    our_schema: str
    work: Path
    events: int
    oracle: dict[str, Any]
    env: dict[str, str]  # the children's environment (PYTHONPATH etc.)
    timeout: float = 3600.0
    errors: list[str] = field(default_factory=list)

    def log(self, message: str) -> None:
        print(f"[ponder-bench] {message}", file=sys.stderr, flush=True)

    def node_calls(self) -> dict[str, Any]:
        """What the node was asked since the last call (and start counting afresh)."""
        body = b'{"jsonrpc":"2.0","id":1,"method":"bench_calls"}'
        request = urllib.request.Request(
            self.node_url, data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())["result"]
        methods = result["methods"]
        methods["bench_calls"] -= 1
        if not methods["bench_calls"]:
            del methods["bench_calls"]
        return result

    def check(self, record: dict[str, Any], got: dict[str, Any] | None, events: int | None) -> None:
        """Record whether the run's rows and event count are the oracle's."""
        record["digest"] = got
        record["events"] = events
        record["correct"] = got == self.oracle and events == self.events
        if not record["correct"]:
            message = (
                f"{record['kind']} (repetition {record['rep']}): events {events} (want "
                f"{self.events}), table {got} (want {self.oracle})"
            )
            record["error"] = message
            self.errors.append(message)
            self.log(f"WRONG: {message}")


def database_url(url: str, database: str) -> str:
    """``url`` with another database name (the path of a URL, or ``dbname=`` of a DSN)."""
    if "://" in url:
        parts = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + database))
    return psycopg.conninfo.make_conninfo(url, dbname=database)


def recreate_database(url: str, database: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _peak_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        got = tree_rss_kib(pid)
        if got is None:
            return
        peak[0] = max(peak[0], got[0])
        stop.wait(0.1)


def ponder_run(bench: Bench, rep: int, kind: str, database: str, schema: str) -> dict[str, Any]:
    """``ponder start`` into ``database``/``schema``, timed to its "Completed indexing" line."""
    log_base = bench.work / "logs" / f"{kind}-{rep}"
    log_base.parent.mkdir(parents=True, exist_ok=True)
    env = dict(bench.env)
    env.update(
        DATABASE_URL=database_url(bench.url, database),
        PONDER_RPC_URL_1=bench.node_url,
        PONDER_TELEMETRY_DISABLED="true",
        NODE_ENV="production",
    )
    cmd = [bench.ponder["ponder"], "--log-format", "json", "--log-level", "info", "start"]
    cmd += ["--schema", schema, "--port", str(_free_port())]
    record: dict[str, Any] = {"kind": kind, "rep": rep, "database": database, "schema": schema}
    fetch_ms = backfill_ms = None
    indexed = 0
    done_at = None
    stop, peak = threading.Event(), [0]
    with (
        open(log_base.with_suffix(".out"), "w") as out,
        open(log_base.with_suffix(".err"), "wb") as err,
    ):
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=bench.ponder_project, env=env, stdout=subprocess.PIPE, stderr=err,
            text=True, start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=_peak_rss, args=(proc.pid, stop, peak), daemon=True).start()
        watchdog = threading.Timer(bench.timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        watchdog.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            msg = entry.get("msg")
            if msg == "Indexed block range":
                indexed += int(entry.get("event_count", 0))
            elif msg == "Finished fetching backfill JSON-RPC data":
                fetch_ms = entry.get("duration")
            elif msg == "Completed backfill indexing across all chains":
                backfill_ms = entry.get("duration")
            elif msg == _DONE:
                done_at = time.perf_counter() - started
                break
            elif entry.get("level", 0) >= 50:
                record.setdefault("ponder_errors", []).append(msg)
        watchdog.cancel()
        stop.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    record.update(
        wall_seconds=done_at,
        completed=done_at is not None,
        fetch_seconds=fetch_ms / 1000 if fetch_ms is not None else None,
        backfill_seconds=backfill_ms / 1000 if backfill_ms is not None else None,
        peak_rss_mib=peak[0] / 1024,
        command="(cd <project> && DATABASE_URL=... ponder " + " ".join(cmd[1:]) + ")",
    )
    record["node_calls"] = bench.node_calls()
    if done_at is None:
        record["error"] = f"{kind} (repetition {rep}): no {_DONE!r} line; see {log_base}.out/.err"
        bench.errors.append(record["error"])
        bench.log(record["error"])
        return record
    bench.check(record, table_digest(database_url(bench.url, database), schema), indexed)
    return record


def ours_run(bench: Bench, rep: int) -> dict[str, Any]:
    """``indexer run <project> --no-progress --reset`` over the node."""
    env = dict(bench.env, INDEXER_DATABASE_URL=bench.url)
    cmd = [
        sys.executable,
        "-m",
        "indexer",
        "run",
        str(bench.our_project),
        "--no-progress",
        "--reset",
    ]
    proc = run_process(cmd, env, bench.work / "logs" / f"ours-{rep}", timeout=bench.timeout)
    summary = parse_summary(proc.stdout)
    record: dict[str, Any] = {
        "kind": "ours",
        "rep": rep,
        "wall_seconds": proc.wall_seconds if proc.returncode == 0 else None,
        "returncode": proc.returncode,
        "cpu_seconds": proc.cpu_seconds,
        "peak_rss_mib": (proc.peak_tree_kib or proc.maxrss_kib) / 1024,
        "summary": summary,
        "command": "indexer " + " ".join(cmd[3:]),
    }
    record["node_calls"] = bench.node_calls()
    if proc.returncode != 0:
        record["error"] = f"ours (repetition {rep}) exited {proc.returncode}: {proc.stderr[-2000:]}"
        bench.errors.append(record["error"])
        return record
    bench.check(record, table_digest(bench.url, bench.our_schema), summary.get("events"))
    drop_schema(bench.url, bench.our_schema)
    return record


def floor_run(bench: Bench, rep: int, inflight: int) -> dict[str, Any]:
    """``_ponder/rpc_floor.py`` with ``inflight`` requests in flight."""
    # Written every time: the work dir outlives a run, and another run's list (another
    # --events) would make the floor fetch fewer logs (the oracle check caught that once).
    addresses = bench.work / "tokens.json"
    addresses.write_text(json.dumps(bench.node["tokens"]))
    cmd = [sys.executable, "-m", "_ponder.rpc_floor", bench.node_url]
    cmd += ["--first", str(bench.node["first_block"]), "--last", str(bench.node["last_block"])]
    cmd += ["--range", str(bench.node["block_range"]), "--inflight", str(inflight)]
    cmd += ["--addresses", str(addresses)]
    kind = f"floor-{inflight}"
    proc = run_process(cmd, bench.env, bench.work / "logs" / f"{kind}-{rep}", timeout=bench.timeout)
    record: dict[str, Any] = {
        "kind": kind,
        "rep": rep,
        "wall_seconds": proc.wall_seconds if proc.returncode == 0 else None,
        "returncode": proc.returncode,
        "cpu_seconds": proc.cpu_seconds,
        "command": "python -m _ponder.rpc_floor " + " ".join(cmd[4:]),
    }
    record["node_calls"] = bench.node_calls()
    if proc.returncode != 0:
        record["error"] = (
            f"{kind} (repetition {rep}) exited {proc.returncode}: {proc.stderr[-2000:]}"
        )
        bench.errors.append(record["error"])
        return record
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    record["inprocess_seconds"] = out["seconds"]
    record["requests"] = out["requests"]
    bench.check(record, out["digest"], out["events"])
    return record
