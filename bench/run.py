"""The benchmark suite: one command, JSON and a Markdown table out.

    python bench/run.py [--smoke] [--runs N] [--events N] [--url URL]
                        [--only WORKLOAD ...] [--skip-memory]

For each workload (``bench/workloads.py``: erc20-balances, erc20-unique, uniswap-v2) it
generates the log file (cached by parameters), then runs, in each of ``--runs``
repetitions and in an order that rotates between repetitions:

* ``background``: ``indexer run <project> --no-progress --reset`` (writes in the background),
  followed by ``resume``: the same command without ``--reset`` on the finished schema (it
  has nothing to do: it measures startup + resume);
* ``sync``: the same with ``--sync-writes`` (the loop awaits each write);
* ``floor``: ``bench/floor.py`` (read, decode, fold in a dict, one COPY).

Every run is a separate process, timed here (wall time, peak RSS and CPU time from
``os.wait4``); the framework's own figures (events, seconds, writes, stall time) come from
its summary lines.  After each run the resulting tables are checksummed and compared
with the floor's, then dropped.  Then one kill-and-resume per workload: a ``--reset`` run
is SIGKILLed after ~40 % of the median background process time, and the rerun is timed.

Memory runs (unless ``--skip-memory``): erc20-unique at
``INDEXER_TARGET_IN_MEMORY_ENTITIES`` = 10k / 100k / 1M on 1M events, and 5M events at
100k, with VmRSS sampled every 0.1 s from ``/proc/<pid>/status``.

Rollback (unless ``--skip-rollback``): ``bench/rollback.py`` runs as a child process with
the same repetitions and PostgreSQL (a 64-block reorg touching 10,002 rows; see
bench/README.md), writing ``<results-dir>/rollback.json``; its summary goes into
``results.json`` and the table.

Every framework run uses the same PostgreSQL: ``--url``, or one embedded server started
here for the whole suite (in ``<work-dir>/pgdata``), passed as ``INDEXER_DATABASE_URL``.

Output: ``bench/results/results.json`` (every raw run, summaries, machine),
``bench/results/results.md``, and ``docs/img/rss_over_time.png`` and
``docs/img/throughput.png`` (needs matplotlib).  ``--smoke``: tiny sizes, one repetition,
output in ``bench/results/smoke/``, no images under docs/.  Exit status 1 if any run
failed, processed a wrong number of events, or produced tables different from the floor's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import report
import workloads
from _machine import machine_info, src_hash
from floor import TABLES, project_of
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PROJECTS = BENCH / "projects"
TARGET_ENV = "INDEXER_TARGET_IN_MEMORY_ENTITIES"
DATABASE_ENV = "INDEXER_DATABASE_URL"
SAMPLE_INTERVAL = 0.1
KILL_FRACTION = 0.4

ERC20_EVENT = "event Transfer(address indexed from, address indexed to, uint256 value)"
SYNC_EVENT = "event Sync(uint112 reserve0, uint112 reserve1)"
SWAP_EVENT = (
    "event Swap(address indexed sender, uint256 amount0In, uint256 amount1In, "
    "uint256 amount0Out, uint256 amount1Out, address indexed to)"
)


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


@dataclass
class Proc:
    """One finished child process, as the OS saw it."""

    cmd: list[str]
    returncode: int
    wall_seconds: float
    maxrss_kib: int
    cpu_seconds: float
    stdout: str
    stderr: str
    killed_after: float | None = None
    # (seconds since start, VmRSS summed over the process tree in KiB, processes)
    rss_samples: list[tuple[float, int, int]] = field(default_factory=list)
    # Largest VmHWM (a process's own peak RSS) seen in the tree, KiB.
    hwm_kib: int = 0

    @property
    def peak_tree_kib(self) -> int | None:
        return max((kib for _, kib, _ in self.rss_samples), default=None)


_VMRSS = re.compile(rb"VmRSS:\s+(\d+)\s+kB")
_VMHWM = re.compile(rb"VmHWM:\s+(\d+)\s+kB")


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (children of every thread, recursively)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/children", "rb") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
    return out


def tree_rss_kib(pid: int) -> tuple[int, int, int] | None:
    """(sum of VmRSS over ``pid``'s tree in KiB, processes counted, largest VmHWM in KiB).

    None once ``pid`` is gone.  VmHWM is each process's own peak so far, so
    sampling it misses no spike of a process still alive at the next sample.
    """
    total = count = hwm = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status", "rb") as f:
                text = f.read()
        except OSError:
            if p == pid:
                return None
            continue
        m = _VMRSS.search(text)
        if m:  # zombies have no VmRSS
            total += int(m.group(1))
            count += 1
        h = _VMHWM.search(text)
        if h:
            hwm = max(hwm, int(h.group(1)))
    return total, count, hwm


def _sample_rss(
    pid: int, t0: float, stop: threading.Event, out: list[tuple[float, int, int]], hwm: list[int]
) -> None:
    while not stop.is_set():
        got = tree_rss_kib(pid)
        if got is None:
            return
        if got[1]:
            out.append((round(time.perf_counter() - t0, 3), got[0], got[1]))
            hwm[0] = max(hwm[0], got[2])
        stop.wait(SAMPLE_INTERVAL)


def memory_fields(proc: Proc) -> dict[str, Any]:
    """Peak RSS: summed over the process tree (sampled), and the largest single process (VmHWM)."""
    tree = proc.peak_tree_kib
    return {
        # The framework reads files in a child process: the footprint is the tree's sum.
        "maxrss_mib": (tree if tree is not None else proc.maxrss_kib) / 1024,
        "maxrss_tree_sampled_mib": tree / 1024 if tree is not None else None,
        "maxrss_largest_process_mib": proc.hwm_kib / 1024 if proc.hwm_kib else None,
        # wait4's ru_maxrss, kept for reference only: Linux folds in the RSS the
        # process had before exec, i.e. this suite's own at fork time.
        "maxrss_wait4_mib": proc.maxrss_kib / 1024,
        "max_processes": max((n for _, _, n in proc.rss_samples), default=None),
    }


def run_process(
    cmd: list[str],
    env: dict[str, str],
    log_base: Path,
    *,
    kill_after: float | None = None,
    timeout: float = 7200.0,
) -> Proc:
    """Run ``cmd`` to its end (or SIGKILL it after ``kill_after`` s); time it and sample its RSS."""
    log_base.parent.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_base.with_suffix(".out"), log_base.with_suffix(".err")
    samples: list[tuple[float, int, int]] = []
    hwm = [0]
    stop = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        sampler = threading.Thread(
            target=_sample_rss, args=(proc.pid, t0, stop, samples, hwm), daemon=True
        )
        sampler.start()
        killed_at: float | None = None
        deadline = t0 + (kill_after if kill_after is not None else timeout)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            now = time.perf_counter()
            if killed_at is None and now >= deadline:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = now - t0
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Proc(
        cmd=cmd,
        returncode=proc.returncode,
        wall_seconds=wall,
        maxrss_kib=usage.ru_maxrss,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        killed_after=killed_at,
        rss_samples=samples,
        hwm_kib=hwm[0],
    )


# --------------------------------------------------------------------------
# The CLI's summary lines
# --------------------------------------------------------------------------

_DONE = re.compile(r"^(done|stopped): ([\d,]+) events in ([\d.]+)s", re.M)
_CHAIN = re.compile(r"chain (\d+): committed through block ([\d,]+), ([\d,]+) events in total")
_SKIPPED = re.compile(r"chain (\d+): skipped ([\d,]+) logs")
_WRITES = re.compile(
    r"writes: (\d+) \(([\d.]+)s in the writer, loop stalled ([\d.]+)s\); "
    r"handlers ([\d.]+)s; loads ([\d.]+)s"
)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def parse_summary(stdout: str) -> dict[str, Any]:
    """The figures of ``indexer run``'s summary; keys are absent when a line is missing."""
    out: dict[str, Any] = {}
    if m := _DONE.search(stdout):
        out["stopped"] = m.group(1) == "stopped"
        out["events"] = _int(m.group(2))
        out["seconds"] = float(m.group(3))
        out["events_per_second"] = out["events"] / out["seconds"] if out["seconds"] > 0 else None
    if m := _CHAIN.search(stdout):
        out["committed_block"] = _int(m.group(2))
        out["chain_events_total"] = _int(m.group(3))
    out["skipped"] = sum(_int(m.group(2)) for m in _SKIPPED.finditer(stdout))
    if m := _WRITES.search(stdout):
        out["writes"] = int(m.group(1))
        out["write_seconds"] = float(m.group(2))
        out["stalled_seconds"] = float(m.group(3))
        out["handler_seconds"] = float(m.group(4))
        out["load_seconds"] = float(m.group(5))
    return out


# --------------------------------------------------------------------------
# Projects and tables
# --------------------------------------------------------------------------


def write_project(work_dir: Path, wf: workloads.WorkloadFile, schema: str) -> Path:
    """A project directory whose indexer.yaml points at the workload file."""
    project = work_dir / "projects" / schema
    project.mkdir(parents=True, exist_ok=True)
    if project_of(wf.workload) == "uniswap":
        handlers = PROJECTS / "uniswap_v2" / "handlers.py"
        contract = "UniswapV2Pair"
        events = [SYNC_EVENT, SWAP_EVENT]
    else:
        handlers = PROJECTS / "erc20" / "handlers.py"
        contract = "ERC20"
        events = [ERC20_EVENT]
    event_lines = "".join(f"          - {json.dumps(e)}\n" for e in events)
    (project / "indexer.yaml").write_text(
        f"# Generated by bench/run.py for {wf.workload} ({wf.events:,} events).\n"
        f"name: bench-{project_of(wf.workload)}\n"
        f"handlers: {json.dumps(str(handlers))}\n"
        f"schema: {schema}\n"
        f"chains:\n"
        f"  - id: 1\n"
        f"    start_block: {workloads.FIRST_BLOCK}\n"
        f"    end_block: {wf.last_block}\n"
        f"    source:\n"
        f"      file: {json.dumps(wf.path)}\n"
        f"    contracts:\n"
        f"      - name: {contract}\n"
        f"        events:\n"
        f"{event_lines}"
    )
    return project


def checksum(url: str, schema: str, project: str) -> dict[str, list[Any]] | None:
    """(rows, md5 of every row's text in id order) per table of ``schema``; None if absent."""
    out: dict[str, list[Any]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES[project]:
            ident = sql.Identifier(schema, table)
            try:
                row = conn.execute(
                    sql.SQL(
                        "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {} t"
                    ).format(ident)
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                return None
            assert row is not None
            out[table] = [row[0], row[1]]
    return out


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        # Flush the dirty buffers now rather than during the next run.
        with contextlib.suppress(psycopg.Error):
            conn.execute("CHECKPOINT")


def snapshot_src(work_dir: Path) -> tuple[Path, str]:
    """Copy ``src/indexer`` into the work dir; every framework run of the suite imports the copy.

    So the whole suite measures one version of the code even while ``src/`` is being
    edited.  Returns the directory to put on ``PYTHONPATH`` and the copy's hash.
    """
    tmp = work_dir / "src-snapshots" / f"tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(
        ROOT / "src" / "indexer", tmp / "indexer", ignore=shutil.ignore_patterns("__pycache__")
    )
    code = src_hash(tmp)
    dest = tmp.with_name(code)
    if dest.exists():
        shutil.rmtree(tmp)
    else:
        tmp.rename(dest)
    return dest, code


# --------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------


@dataclass
class Sizes:
    events: int
    runs: int
    memory: list[tuple[int, int]]  # (events, target)


class Suite:
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
        tmp.write_text(report.dumps(self.results))
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

    def workload(self, name: str) -> None:
        wf = workloads.generate(name, self.sizes.events, self.work_dir)
        self.log(f"{name}: {wf.events:,} events, {wf.lines:,} lines ({wf.path})")
        entry: dict[str, Any] = {"file": wf.to_json(), "runs": [], "summary": None}
        self.results["workloads"][name] = entry
        runs: list[dict[str, Any]] = entry["runs"]
        project = project_of(name)
        short = name.replace("-", "_")
        # The floor first in the first repetition: its tables are the reference.
        orders = [
            ("floor", "background", "sync"),
            ("background", "sync", "floor"),
            ("sync", "floor", "background"),
        ]
        for rep in range(1, self.sizes.runs + 1):
            for kind in orders[(rep - 1) % len(orders)]:
                schema = f"{self.tag}_{short}_{kind}_{rep}"
                if kind == "floor":
                    record = self.floor(wf, rep, schema)
                    runs.append(record)
                    self.check_tables(record, project)
                else:
                    record, _ = self.framework(wf, kind, rep, schema, sync=kind == "sync")
                    runs.append(record)
                    self.check_tables(record, project)
                    if kind == "background" and record["ok"]:
                        resume, _ = self.framework(wf, "resume", rep, schema, reset=False)
                        runs.append(resume)
                        self.log(
                            f"  rep {rep} resume: {resume.get('wall_seconds', 0):.2f}s process"
                        )
                drop_schema(self.url, schema)
                self.log(
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
                self.save()
        self.kill_and_resume(wf, runs, project, short)
        entry["summary"] = report.summarize_workload(runs)
        self.save()

    def kill_and_resume(
        self, wf: workloads.WorkloadFile, runs: list[dict[str, Any]], project: str, short: str
    ) -> None:
        walls = [r["wall_seconds"] for r in runs if r["kind"] == "background" and r.get("ok")]
        if not walls:
            return
        expected = sorted(walls)[len(walls) // 2]
        schema = f"{self.tag}_{short}_kill"
        killed, proc = self.framework(wf, "killed", 0, schema, kill_after=KILL_FRACTION * expected)
        killed["expected_wall_seconds"] = expected
        if proc.killed_after is None:
            killed["note"] = "finished before the kill"
        runs.append(killed)
        rerun, _ = self.framework(wf, "kill-rerun", 0, schema, reset=False)
        rerun["killed_after_seconds"] = proc.killed_after
        if rerun.get("ok"):
            rerun["events_replayed_after_kill"] = rerun.get("events")
        runs.append(rerun)
        self.check_tables(rerun, project)
        drop_schema(self.url, schema)
        self.log(
            f"  kill after {proc.killed_after or 0:.1f}s, rerun: {rerun.get('wall_seconds', 0):.1f}s process, "
            f"{rerun.get('events', 0):,} events ({rerun.get('events_per_second') or 0:,.0f} events/s)"
            + ("" if rerun.get("ok") else " FAILED")
        )
        self.save()

    def rollback(self) -> None:
        """bench/rollback.py in a child process, against the same server, from the same code."""
        out = self.args.results_dir / "rollback.json"
        cmd = [sys.executable, str(BENCH / "rollback.py"), "--runs", str(self.sizes.runs)]
        cmd += ["--url", self.url, "--results", str(out)]
        if self.args.smoke:
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
        shown = "python " + shlex.join(cmd[1:]).replace(self.url, "<url>")
        self.log(f"rollback: {shown}")
        proc = run_process(cmd, self.env(), self.work_dir / "logs" / "rollback")
        record: dict[str, Any] = {"seconds": None, "command": shown}
        if proc.returncode != 0 or not out.exists():
            self.fail(record, f"bench/rollback.py exited with {proc.returncode}")
            self.results["rollback"] = record
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
        self.results["rollback"] = record
        self.log(
            f"  rollback: {seconds['median']:.3f} s median, {record['rows_restored']:,.0f} rows"
        )

    def memory(self) -> None:
        mem: list[dict[str, Any]] = self.results["memory"]
        for events, target in self.sizes.memory:
            wf = workloads.generate("erc20-unique", events, self.work_dir)
            self.log(f"memory: erc20-unique {wf.events:,} events, target {target:,}")
            schema = f"{self.tag}_mem_{events}_{target}"
            record, proc = self.framework(wf, "memory", 0, schema, target=target)
            record["rss_samples"] = proc.rss_samples
            record["file"] = wf.to_json()
            if events == self.sizes.events and "erc20-unique" in self.references:
                self.check_tables(record, "erc20")
            drop_schema(self.url, schema)
            mem.append(record)
            self.log(
                f"  {record.get('events_per_second') or 0:,.0f} events/s, peak RSS {record['maxrss_mib']:.0f} MiB"
                + ("" if record.get("ok") else " FAILED")
            )
            self.save()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--smoke", action="store_true", help="tiny sizes, 1 run: checks that the suite works"
    )
    p.add_argument("--runs", type=int, default=None, help="repetitions (default 3; smoke 1)")
    p.add_argument(
        "--events",
        type=int,
        default=None,
        help="events per workload (default 1,000,000; smoke 2,000)",
    )
    p.add_argument(
        "--url", default=None, help="PostgreSQL URL (default: an embedded server in the work dir)"
    )
    p.add_argument(
        "--only", nargs="+", choices=workloads.WORKLOADS, default=None, metavar="WORKLOAD"
    )
    p.add_argument("--skip-memory", action="store_true", help="skip the memory runs")
    p.add_argument("--skip-rollback", action="store_true", help="skip the reorg rollback benchmark")
    p.add_argument(
        "--no-snapshot",
        action="store_true",
        help="run the framework from src/ as it is, not from a copy taken at the start",
    )
    p.add_argument("--work-dir", type=Path, default=workloads.DEFAULT_WORK_DIR)
    p.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="default bench/results (smoke: bench/results/smoke)",
    )
    p.add_argument(
        "--img-dir",
        type=Path,
        default=None,
        help="where the PNGs go (default docs/img; smoke: none)",
    )
    args = p.parse_args(argv)

    if args.smoke:
        sizes = Sizes(
            events=args.events or 2_000,
            runs=args.runs or 1,
            memory=[(20_000, 1_000), (20_000, 10_000), (20_000, 100_000), (40_000, 10_000)],
        )
    else:
        events = args.events or 1_000_000
        sizes = Sizes(
            events=events,
            runs=args.runs or 3,
            memory=[
                (events, 10_000),
                (events, 100_000),
                (events, 1_000_000),
                (5 * events, 100_000),
            ],
        )
    if args.results_dir is None:
        args.results_dir = BENCH / "results" / ("smoke" if args.smoke else "")
    img_dir = (
        args.img_dir
        if args.img_dir is not None
        else (None if args.smoke else ROOT / "docs" / "img")
    )
    args.work_dir = args.work_dir.resolve()

    url = args.url
    if not url:
        from indexer.persist import start_embedded

        url = start_embedded(args.work_dir / "pgdata")
    suite = Suite(args, url, sizes)
    suite.log(
        f"PostgreSQL: {suite.results['machine'].get('postgres')}; results in {args.results_dir}"
    )
    for name in args.only or workloads.WORKLOADS:
        suite.workload(name)
    if not args.skip_memory:
        suite.memory()
    if not args.skip_rollback:
        suite.rollback()
    results = suite.results
    with contextlib.suppress(OSError):
        results["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    suite.save()
    md = report.markdown(results)
    (args.results_dir / "results.md").write_text(md)
    print(md)
    if img_dir is not None:
        for path in report.plot(results, img_dir):
            suite.log(f"wrote {path}")
    suite.save()
    return 1 if suite.errors else 0


if __name__ == "__main__":
    sys.exit(main())
