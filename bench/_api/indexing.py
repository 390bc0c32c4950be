"""The indexing slowdown: the same run alone and with the API serving a paced load, pair by pair.

Each repetition runs the suite's erc20-balances project twice (the order alternates):

* ``alone``: ``indexer run <project> --no-progress --reset``;
* ``loaded``: ``indexer run <project> --no-progress --reset --serve --port 0`` while the
  load generator (started beforehand, so its start-up is not in the run) sends an
  open-loop mix of by-id lookups and filtered pages of the ``account`` table being
  written, at ``rate`` requests/s.  The load starts as soon as the table exists (the
  schema is dropped before each run) and stops when the run prints its summary; the
  process keeps serving after indexing, so it is then stopped with SIGINT.

Events/s are the framework's own (its summary line).  The ids and tokens asked for are
sampled from the first ``alone`` run's table (the first repetition starts alone), so
during a run an id may not exist yet: a null answer is then accepted.  Both runs' tables
are checksummed and must be equal.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import workloads
from _pg import drop_schema
from _suite.cli_summary import parse_summary
from _suite.projects import checksum, write_project

from _api.data import sample
from _api.procs import Child, OpenLoop, indexer_cmd, port_of
from _api.queries import kinds

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

WORKLOAD = "erc20-balances"
TABLE = "account"


@dataclass
class IndexingPlan:
    url: str
    env: dict[str, str]
    work_dir: Path
    events: int
    runs: int
    rate: float
    connections: int
    verify_every: int
    # Smoke runs index in a blink: keep the load on at least this long to exercise it.
    min_load_seconds: float
    # `run --serve --workers N`: the API in N processes of its own (None: in the run's).
    serve_workers: int | None
    # `run --serve --workers N --api-priority P` ("normal": no flag).
    api_priority: str
    tag: str
    log: Callable[[str], None]
    errors: list[str] = field(default_factory=list)
    # "graphql": the by-id and page mix; "health": GET /health (no query).
    load: str = "graphql"
    # Smoke runs: the load goes on past the run's end until this many answers
    # are in (a low-priority API on a machine busy with other tests may get no
    # CPU until the run is idle), at most a minute.
    min_answers: int = 0


def load_spec(plan: IndexingPlan, sampled: tuple[list[str], list[str]]) -> dict[str, Any]:
    """The load generator's open-loop spec: ``plan.load`` at ``plan.rate`` over these ids/tokens."""
    return {
        "mode": "open",
        "host": "127.0.0.1",
        "port": None,
        "verify_every": plan.verify_every,
        "kinds": {
            **kinds(TABLE, *sampled, allow_null=True),
            "health": {"check": "health", "field": "status", "variables": [{}]},
        },
        "open": {
            "rate": plan.rate,
            "connections": plan.connections,
            "mix": ["health"] if plan.load == "health" else ["by_id", "page"],
            "max_backlog": max(100, int(2 * plan.rate)),
            "min_answers": plan.min_answers,
        },
    }


def wait_for_table(url: str, schema: str, child: Child, timeout: float = 60.0) -> None:
    name = f"{schema}.{TABLE}"
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + timeout
        while conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,):
            if child.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"table {name} did not appear; stderr: {child.stderr_tail()}")
            time.sleep(0.01)


def _check(record: dict[str, Any], expected: int) -> str | None:
    if record["returncode"] != 0:
        return f"exit status {record['returncode']}"
    if record.get("events") != expected:
        return f"processed {record.get('events')} events, expected {expected:,}"
    return None


def one_run(
    plan: IndexingPlan,
    wf: workloads.WorkloadFile,
    variant: str,
    rep: int,
    sampled: tuple[list[str], list[str]] | None,
) -> dict[str, Any]:
    schema = f"{plan.tag}_{rep}_{variant}"
    drop_schema(plan.url, schema, checkpoint=True)
    project = write_project(plan.work_dir, wf, schema)
    args = ["run", str(project), "--no-progress", "--reset"]
    record: dict[str, Any] = {
        "variant": variant,
        "rep": rep,
        "schema": schema,
        "load_asked": plan.load,
    }
    logs = plan.work_dir / "logs" / f"{schema}"
    gen: OpenLoop | None = None
    if variant == "loaded":
        assert sampled is not None
        spec = load_spec(plan, sampled)
        gen = OpenLoop(spec, plan.work_dir / "api" / "load", plan.env, f"{schema}-load")
        args += ["--serve", "--port", "0"]
        if plan.serve_workers is not None:
            args += ["--workers", str(plan.serve_workers)]
        if plan.api_priority != "normal":
            args += ["--api-priority", plan.api_priority]
    record["command"] = "indexer " + " ".join(a if a != str(project) else "<project>" for a in args)
    record["loadavg_before"] = os.getloadavg()[0]
    child = Child(indexer_cmd(*args), plan.env, logs)
    try:
        if gen is not None:
            base = child.wait_for(r"serving the API on (http://[^ ,]+)", timeout=120).group(1)
            wait_for_table(plan.url, schema, child)
            gen.go(port_of(base), child.proc.pid)
            child.wait_for(r"^(done|stopped): [\d,]+ events", timeout=3600)
            assert gen.started is not None
            left = plan.min_load_seconds - (time.perf_counter() - gen.started)
            if left > 0:
                time.sleep(left)
            record["load"] = gen.stop()
            gen = None
            record["returncode"] = child.stop()
        else:
            record["returncode"] = child.wait(timeout=3600)
    except RuntimeError as exc:
        record["returncode"] = child.stop()
        record["error"] = str(exc)
    finally:
        if gen is not None:
            gen.child.stop()
    record["cpu_seconds"] = child.cpu_seconds
    record.update(parse_summary(child.stdout))
    why = record.get("error") or _check(record, wf.events)
    load = record.get("load")
    if why is None and load is not None and (load.get("errors") or not load.get("requests")):
        why = f"load during indexing: {load.get('errors')} errors, {load.get('requests')} answers"
    record["ok"] = why is None
    if why is not None:
        record["error"] = why
        plan.errors.append(f"indexing {variant} (rep {rep}): {why}; stderr: {child.stderr_tail()}")
    else:
        record["checksums"] = checksum(plan.url, schema, "erc20")
    return record


def run_indexing(plan: IndexingPlan) -> dict[str, Any]:
    """All repetitions of the pair; the records and the workload file's description."""
    wf = workloads.generate(WORKLOAD, plan.events, plan.work_dir)
    plan.log(f"indexing: {WORKLOAD}, {wf.events:,} events ({wf.path})")
    records: list[dict[str, Any]] = []
    sampled: tuple[list[str], list[str]] | None = None
    for rep in range(1, plan.runs + 1):
        order = ("alone", "loaded") if rep % 2 == 1 else ("loaded", "alone")
        for variant in order:
            record = one_run(plan, wf, variant, rep, sampled)
            records.append(record)
            if variant == "alone" and sampled is None and record["ok"]:
                sampled = sample(plan.url, record["schema"], TABLE, 5_000, seed=rep)
            drop_schema(plan.url, record["schema"])
            load = record.get("load") or {}
            plan.log(
                f"  rep {rep} {variant}: {record.get('events_per_second') or 0:,.0f} events/s"
                + (
                    f", {load.get('requests_per_second') or 0:,.0f} requests/s answered"
                    if load
                    else ""
                )
                + ("" if record["ok"] else f"  FAILED: {record['error']}")
            )
            if sampled is None:
                plan.errors.append("indexing: no ids sampled (the first alone run failed)")
                return {"file": wf.to_json(), "runs": records}
    sums = {str(r["checksums"]) for r in records if r.get("checksums") is not None}
    if len(sums) > 1:
        plan.errors.append(f"indexing: the runs' tables differ: {sorted(sums)}")
    return {"file": wf.to_json(), "runs": records, "tables_equal": len(sums) == 1}
