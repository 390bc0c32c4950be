"""The suite's state and its single measured runs: a framework run, a floor run, the tables check.

A :class:`Suite` holds the results (written to ``results.json`` after every run), the
environment every child process gets (the database, the in-memory target, the source
snapshot on ``PYTHONPATH``) and the floor's checksums each run's tables are compared with.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _machine import machine_info, src_hash
from _paths import BENCH

from _suite.cli_summary import parse_summary
from _suite.process import Proc, memory_fields, run_process
from _suite.projects import checksum, write_project
from _suite.snapshot import snapshot_src

if TYPE_CHECKING:
    import argparse

    import workloads

TARGET_ENV = "INDEXER_TARGET_IN_MEMORY_ENTITIES"
DATABASE_ENV = "INDEXER_DATABASE_URL"


def dumps(results: dict[str, Any]) -> str:
    """``results`` as indented JSON, with each short list of numbers (an RSS sample) on one line."""
    text = json.dumps(results, indent=1)
    return _NUMBER_LIST.sub(lambda m: _one_line(m.group(0)), text) + "\n"


def _one_line(numbers: str) -> str:
    return "[" + ", ".join(x.strip() for x in numbers[1:-1].split(",")) + "]"


_NUMBER_LIST = re.compile(r"\[\s*-?[\d.e+-]+(?:,\s*-?[\d.e+-]+){1,3}\s*\]")


@dataclass
class Sizes:
    """How much the suite runs: events per workload, repetitions, the memory runs."""

    events: int
    runs: int
    memory: list[tuple[int, int]]  # (events, target)


class Suite:
    """One suite: its results, its children's environment, the floor's reference checksums."""

    def __init__(self, args: argparse.Namespace, url: str, sizes: Sizes) -> None:
        self.args = args
        self.url = url
        self.sizes = sizes
        self.work_dir: Path = args.work_dir
        self.results_dir: Path = args.results_dir
        self.tag = f"b{os.getpid()}"
        self.started = time.perf_counter()
        self.errors: list[str] = []
        self.references: dict[str, dict[str, list[Any]]] = {}
        self.src_hashes: set[str] = set()
        self.snapshot: Path | None = None
        snapshot_note = "none: every run imports src/ as it is at that moment"
        if not args.no_snapshot:
            self.snapshot, code = snapshot_src(self.work_dir)
            self.src_hashes.add(code)
            imported = subprocess.run(
                [sys.executable, "-c", "import indexer; print(indexer.__file__)"],
                env=self.env(),
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            if not Path(imported).resolve().is_relative_to(self.snapshot.resolve()):
                raise SystemExit(
                    f"the framework imports from {imported}, not the snapshot {self.snapshot}"
                )
            snapshot_note = f"{self.snapshot} (hash {code}), taken at the start of the suite"
        self.results: dict[str, Any] = {
            "suite": {
                "command": "python bench/run.py " + shlex.join(sys.argv[1:]),
                "smoke": args.smoke,
                "runs": sizes.runs,
                "events": sizes.events,
                "memory_plan": sizes.memory,
                "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "database": "--url" if args.url else f"embedded ({self.work_dir / 'pgdata'})",
                "framework_source": snapshot_note,
            },
            "machine": machine_info(url),
            "workloads": {},
            "memory": [],
            "rollback": {"seconds": None, "note": "not run (--skip-rollback)"},
            "errors": self.errors,
        }

    # -- helpers -------------------------------------------------------------

    def log(self, msg: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:7.1f}s] {msg}", flush=True)

    def save(self) -> None:
        self.results["suite"]["wall_seconds"] = time.perf_counter() - self.started
        self.results["suite"]["src_hashes"] = sorted(self.src_hashes)
        self.results["suite"]["src_changed_during_suite"] = len(self.src_hashes) > 1
        self.results_dir.mkdir(parents=True, exist_ok=True)
        path = self.results_dir / "results.json"
        tmp = path.with_name("results.json.tmp")
        tmp.write_text(dumps(self.results))
        tmp.replace(path)

    def env(self, target: int | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env[DATABASE_ENV] = self.url
        env.pop(TARGET_ENV, None)
        if target is not None:
            env[TARGET_ENV] = str(target)
        env.pop("INDEXER_TEST_DATABASE_URL", None)
        if self.snapshot is not None:
            # Before the editable install's src/ (a .pth entry): the suite's copy wins.
            env["PYTHONPATH"] = os.pathsep.join(
                [str(self.snapshot), *filter(None, [os.environ.get("PYTHONPATH")])]
            )
        return env

    def fail(self, record: dict[str, Any], why: str) -> None:
        record["ok"] = False
        record["error"] = why
        cmd = record.get("command", "")
        tail = (record.get("stderr_tail") or "").strip().splitlines()[-5:]
        self.errors.append(
            f"{record.get('workload')} {record.get('kind')} (rep {record.get('rep')}): {why}; "
            f"command: `{cmd}`" + (f"; stderr: {' | '.join(tail)}" if tail else "")
        )
        self.log(f"  FAILED: {why}")

    # -- runs ----------------------------------------------------------------

    def framework(
        self,
        wf: workloads.WorkloadFile,
        kind: str,
        rep: int,
        schema: str,
        *,
        sync: bool = False,
        reset: bool = True,
        target: int | None = None,
        kill_after: float | None = None,
    ) -> tuple[dict[str, Any], Proc]:
        project = write_project(self.work_dir, wf, schema)
        cmd = [sys.executable, "-m", "indexer", "run", str(project), "--no-progress"]
        if reset:
            cmd.append("--reset")
        if sync:
            cmd.append("--sync-writes")
        code = src_hash(self.snapshot) if self.snapshot is not None else src_hash()
        self.src_hashes.add(code)
        env_note = f"{DATABASE_ENV}=<url> " + (f"{TARGET_ENV}={target} " if target else "")
        record: dict[str, Any] = {
            "workload": wf.workload,
            "kind": kind,
            "rep": rep,
            "schema": schema,
            "target": target,
            "expected_events": wf.events,
            "command": env_note + shlex.join(["indexer", *cmd[3:]]),
            "src_hash": code,
            "loadavg_before": os.getloadavg()[0],
        }
        proc = run_process(
            cmd,
            self.env(target),
            self.work_dir / "logs" / f"{schema}-{kind}",
            kill_after=kill_after,
        )
        record.update(
            returncode=proc.returncode,
            wall_seconds=proc.wall_seconds,
            **memory_fields(proc),
            cpu_seconds=proc.cpu_seconds,
            killed_after_seconds=proc.killed_after,
        )
        record.update(parse_summary(proc.stdout))
        record["stderr_tail"] = "\n".join(proc.stderr.strip().splitlines()[-20:])
        record["ok"] = True
        if kill_after is not None:
            return record, proc
        if proc.returncode != 0:
            self.fail(record, f"exit status {proc.returncode}")
        elif "events" not in record or "chain_events_total" not in record:
            self.fail(record, "no summary line in the output")
        elif record["chain_events_total"] != wf.events:
            self.fail(
                record,
                f"wrong event count: committed {record['chain_events_total']:,} events in total, expected {wf.events:,}",
            )
        elif kind == "resume" and record["events"] != 0:
            self.fail(record, f"resume of a finished run processed {record['events']:,} events")
        elif kind in ("background", "sync") and record["events"] != wf.events:
            self.fail(record, f"processed {record['events']:,} events, expected {wf.events:,}")
        return record, proc

    def floor(self, wf: workloads.WorkloadFile, rep: int, schema: str) -> dict[str, Any]:
        cmd = [
            sys.executable,
            str(BENCH / "floor.py"),
            wf.workload,
            wf.path,
            "--url",
            self.url,
            "--schema",
            schema,
        ]
        record: dict[str, Any] = {
            "workload": wf.workload,
            "kind": "floor",
            "rep": rep,
            "schema": schema,
            "expected_events": wf.events,
            "loadavg_before": os.getloadavg()[0],
            "command": shlex.join(
                [
                    "python",
                    "bench/floor.py",
                    wf.workload,
                    wf.path,
                    "--url",
                    "<url>",
                    "--schema",
                    schema,
                ]
            ),
        }
        proc = run_process(cmd, self.env(), self.work_dir / "logs" / f"{schema}-floor")
        record.update(
            returncode=proc.returncode,
            wall_seconds=proc.wall_seconds,
            **memory_fields(proc),
            cpu_seconds=proc.cpu_seconds,
            stderr_tail="\n".join(proc.stderr.strip().splitlines()[-20:]),
            ok=True,
        )
        if proc.returncode != 0:
            self.fail(record, f"exit status {proc.returncode}")
            return record
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        record.update(data)
        record["events_per_second"] = data["events"] / data["seconds"]
        if data["events"] != wf.events:
            self.fail(record, f"floor counted {data['events']:,} events, expected {wf.events:,}")
        return record

    def check_tables(self, record: dict[str, Any], project: str) -> None:
        """Checksum the run's tables and compare them with the floor's (the first floor run is the reference)."""
        if not record.get("ok") or record.get("kind") == "resume":
            return
        sums = checksum(self.url, record["schema"], project)
        record["checksums"] = sums
        ref = self.references.get(record["workload"])
        if record["kind"] == "floor" and ref is None and sums is not None:
            self.references[record["workload"]] = ref = sums
        if ref is not None and sums is not None:
            record["tables_match"] = sums == ref
            if sums != ref:
                self.fail(record, f"tables differ from the floor's: {sums} vs {ref}")
