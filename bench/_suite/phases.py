"""The suite's phases: each workload's repetitions and kill-and-resume, the memory runs, the rollback.

Each phase appends its records to the suite's results and saves them as it goes.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import TYPE_CHECKING, Any

import workloads
from _paths import BENCH
from _pg import drop_schema
from floor import project_of

from _suite.process import run_process
from _suite.summary import summarize_workload

if TYPE_CHECKING:
    from _suite.suite import Suite

KILL_FRACTION = 0.4


def run_workload(suite: Suite, name: str) -> None:
    """Generate the workload's file; run floor, background (+ resume) and sync each repetition."""
    wf = workloads.generate(name, suite.sizes.events, suite.work_dir)
    suite.log(f"{name}: {wf.events:,} events, {wf.lines:,} lines ({wf.path})")
    entry: dict[str, Any] = {"file": wf.to_json(), "runs": [], "summary": None}
    suite.results["workloads"][name] = entry
    runs: list[dict[str, Any]] = entry["runs"]
    project = project_of(name)
    short = name.replace("-", "_")
    # The floor first in the first repetition: its tables are the reference.
    orders = [
        ("floor", "background", "sync"),
        ("background", "sync", "floor"),
        ("sync", "floor", "background"),
    ]
    for rep in range(1, suite.sizes.runs + 1):
        for kind in orders[(rep - 1) % len(orders)]:
            schema = f"{suite.tag}_{short}_{kind}_{rep}"
            if kind == "floor":
                record = suite.floor(wf, rep, schema)
                runs.append(record)
                suite.check_tables(record, project)
            else:
                record, _ = suite.framework(wf, kind, rep, schema, sync=kind == "sync")
                runs.append(record)
                suite.check_tables(record, project)
                if kind == "background" and record["ok"]:
                    resume, _ = suite.framework(wf, "resume", rep, schema, reset=False)
                    runs.append(resume)
                    suite.log(f"  rep {rep} resume: {resume.get('wall_seconds', 0):.2f}s process")
            drop_schema(suite.url, schema)
            suite.log(
                f"  rep {rep} {kind}: {record.get('events_per_second') or 0:,.0f} events/s, "
                f"{record.get('wall_seconds', 0):.1f}s process, "
                f"{record.get('maxrss_mib', 0):.0f} MiB"
                + (
                    f", stalled {record['stalled_seconds']:.2f}s"
                    if "stalled_seconds" in record
                    else ""
                )
                + ("" if record.get("ok") else " FAILED")
            )
            suite.save()
    _kill_and_resume(suite, wf, runs, project, short)
    entry["summary"] = summarize_workload(runs)
    suite.save()


def _kill_and_resume(
    suite: Suite, wf: workloads.WorkloadFile, runs: list[dict[str, Any]], project: str, short: str
) -> None:
    walls = [r["wall_seconds"] for r in runs if r["kind"] == "background" and r.get("ok")]
    if not walls:
        return
    expected = sorted(walls)[len(walls) // 2]
    schema = f"{suite.tag}_{short}_kill"
    killed, proc = suite.framework(wf, "killed", 0, schema, kill_after=KILL_FRACTION * expected)
    killed["expected_wall_seconds"] = expected
    if proc.killed_after is None:
        killed["note"] = "finished before the kill"
    runs.append(killed)
    rerun, _ = suite.framework(wf, "kill-rerun", 0, schema, reset=False)
    rerun["killed_after_seconds"] = proc.killed_after
    if rerun.get("ok"):
        rerun["events_replayed_after_kill"] = rerun.get("events")
    runs.append(rerun)
    suite.check_tables(rerun, project)
    drop_schema(suite.url, schema)
    suite.log(
        f"  kill after {proc.killed_after or 0:.1f}s, rerun: {rerun.get('wall_seconds', 0):.1f}s process, "
        f"{rerun.get('events', 0):,} events ({rerun.get('events_per_second') or 0:,.0f} events/s)"
        + ("" if rerun.get("ok") else " FAILED")
    )
    suite.save()


def run_rollback(suite: Suite) -> None:
    """bench/rollback.py in a child process, against the same server, from the same code."""
    out = suite.args.results_dir / "rollback.json"
    cmd = [sys.executable, str(BENCH / "rollback.py"), "--runs", str(suite.sizes.runs)]
    cmd += ["--url", suite.url, "--results", str(out)]
    if suite.args.smoke:
        cmd += [
            "--entities",
            "200",
            "--depth",
            "8",
            "--history-blocks",
            "20",
            "--breakdown",
            "0",
        ]
    shown = "python " + shlex.join(cmd[1:]).replace(suite.url, "<url>")
    suite.log(f"rollback: {shown}")
    proc = run_process(cmd, suite.env(), suite.work_dir / "logs" / "rollback")
    record: dict[str, Any] = {"seconds": None, "command": shown}
    if proc.returncode != 0 or not out.exists():
        suite.fail(record, f"bench/rollback.py exited with {proc.returncode}")
        suite.results["rollback"] = record
        return
    summary = json.loads(out.read_text())["summary"]
    seconds = summary["rollback_seconds"]
    record.update(
        seconds=seconds["median"],
        min=seconds["min"],
        max=seconds["max"],
        runs=seconds["n"],
        rows_restored=summary["rows_restored"]["median"],
        second_run_seconds=summary["second_run_seconds"]["median"],
        file=str(out),
    )
    suite.results["rollback"] = record
    suite.log(f"  rollback: {seconds['median']:.3f} s median, {record['rows_restored']:,.0f} rows")


def run_memory(suite: Suite) -> None:
    """erc20-unique with background writes at each (events, in-memory target) of the plan."""
    mem: list[dict[str, Any]] = suite.results["memory"]
    for events, target in suite.sizes.memory:
        wf = workloads.generate("erc20-unique", events, suite.work_dir)
        suite.log(f"memory: erc20-unique {wf.events:,} events, target {target:,}")
        schema = f"{suite.tag}_mem_{events}_{target}"
        record, proc = suite.framework(wf, "memory", 0, schema, target=target)
        record["rss_samples"] = proc.rss_samples
        record["file"] = wf.to_json()
        if events == suite.sizes.events and "erc20-unique" in suite.references:
            suite.check_tables(record, "erc20")
        drop_schema(suite.url, schema)
        mem.append(record)
        suite.log(
            f"  {record.get('events_per_second') or 0:,.0f} events/s, peak RSS {record['maxrss_mib']:.0f} MiB"
            + ("" if record.get("ok") else " FAILED")
        )
        suite.save()
