"""``indexer run --serve`` and ``indexer serve`` as a user runs them: real processes, real ports."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .._projects import EXAMPLE, expected_balances, make_project

TOP = (
    '{ accounts(orderBy: "balance", orderDirection: "desc", limit: 5,'
    ' where: { holder_not: "0x0000000000000000000000000000000000000000" })'
    " { totalCount items { id balance } } }"
)


class Process:
    """A CLI process whose output lines are collected by a thread as they come."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "indexer", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # A fatal signal makes each process print every thread's stack
            # (forked workers inherit it): see stop().
            env={**os.environ, "PYTHONFAULTHANDLER": "1", **env},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines))

    def stop(self, timeout: float = 60) -> int:
        """SIGINT, then the exit code; on a hang, fail with every process's stacks."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Workers first: the parent may be the one waiting for them.
            tree = _descendants(self.proc.pid)
            for pid in [*tree, self.proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGABRT)
                    os.kill(pid, signal.SIGCONT)  # a stopped process acts on nothing else
                # One at a time, so that their stacks do not interleave.
                deadline = time.monotonic() + 10
                while not _gone(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._reader.join(timeout=10)
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            raise AssertionError(
                f"no exit {timeout:.0f} s after SIGINT; processes {[self.proc.pid, *tree]} "
                "were aborted, their stacks and output follow:\n" + "\n".join(self.lines)
            ) from None
        self.close()
        return code

    def close(self) -> None:
        """After the process ended: every line read, the pipe closed."""
        self._reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def _top_five() -> list[tuple[str, int]]:
    zero = "0x0000000000000000000000000000000000000000"
    rows = [(k, b) for k, (b, _n) in expected_balances().items() if not k.endswith(zero)]
    rows.sort(key=lambda kv: (kv[1], kv[0]), reverse=True)
    return rows[:5]


def test_run_serve_answers_while_and_after_indexing(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)
    p = Process(
        "run", str(project), "--serve", "--port", "0", env={"INDEXER_DATABASE_URL": database_url}
    )
    try:
        base = p.wait_for(r"serving the API on (http://127\.0\.0\.1:\d+)").group(1)
        p.wait_for(r"indexing finished; still serving")
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/ready").json() == {"ready": True}
            body = client.post("/graphql", json={"query": TOP}).json()
            page = body["data"]["accounts"]
            got = [(i["id"], int(i["balance"])) for i in page["items"]]
            assert got == _top_five()
            holders = {k for k in expected_balances() if not k.endswith("0" * 40)}
            assert page["totalCount"] == len(holders)
    finally:
        code = p.stop()
    assert code == 0, "\n".join(p.lines)
    assert any(line.startswith("done:") for line in p.lines)


def test_a_ctrl_c_while_the_report_runs_stops_run_serve(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """Between the run's end and the wait for Ctrl+C (the summary, the project's report) a
    SIGINT is only noted; `run --serve` used to wait on for another one."""
    example = (EXAMPLE / "handlers.py").read_text()
    report = example.index("def report(")
    handlers = (
        example[:report]
        + "def report(query: Any) -> str:\n"
        + "    import os, signal\n\n"
        + "    os.kill(os.getpid(), signal.SIGINT)  # as a Ctrl+C while the report runs\n"
        + "    return 'reported'\n"
    )
    project = make_project(tmp_path, schema, handlers=handlers)
    p = Process(
        "run", str(project), "--serve", "--port", "0", env={"INDEXER_DATABASE_URL": database_url}
    )
    try:
        code: int | None = p.proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        code = None  # still serving: stopped below with a second SIGINT
    if code is None:
        p.stop()
    else:
        p.close()
    assert code == 0, "\n".join(p.lines)
    assert any(line.startswith("done:") for line in p.lines)
    assert "reported" in p.lines


def test_two_serve_processes_on_one_database(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)
    env = {"INDEXER_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "run", str(project), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    servers = [Process("serve", str(project), "--port", "0", env=env) for _ in range(2)]
    try:
        bases = [s.wait_for(r"serving \S+ on (http://127\.0\.0\.1:\d+)").group(1) for s in servers]
        assert bases[0] != bases[1]
        answers = []
        for base in bases:
            with httpx.Client(base_url=base, timeout=30) as client:
                assert client.get("/ready").status_code == 200
                answers.append(client.post("/graphql", json={"query": TOP}).json())
        assert answers[0] == answers[1]
        assert [(i["id"], int(i["balance"])) for i in answers[0]["data"]["accounts"]["items"]] == (
            _top_five()
        )
    finally:
        codes = [s.stop() for s in servers]
    assert codes == [0, 0]


def _children(pid: int) -> list[int]:
    """Every child of ``pid``, whichever of its threads started it."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            found += [int(p) for p in (task / "children").read_text().split()]
    return sorted(found)


def _cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def _workers(pid: int) -> list[int]:
    """The forked API workers of ``pid``: its children running its own command line.

    Not every child: a run also has its file reader and multiprocessing's
    resource tracker (spawned, so with command lines of their own).
    """
    own = _cmdline(pid)
    return [c for c in _children(pid) if _cmdline(c) == own]


def _described(pids: list[int]) -> str:
    """Each process's pid, state and command line, for a failure message."""
    lines = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            cmd, state = "(gone)", "-"
        lines.append(f"{pid} {state} {cmd[:300]}")
    return "\n".join(lines)


def _descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, ... (those still there), deepest last."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for child in _children(pid):
            found += [child, *_descendants(child)]
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # ended, not yet reaped by its (new) parent


@pytest.mark.skipif(sys.platform != "linux", reason="--workers above 1 is Linux-only")
def test_serve_workers_share_one_port(tmp_path: Path, database_url: str, schema: str) -> None:
    """`--workers 2`: two processes answer on one port; a stop ends both, and so does a SIGKILL."""
    project = make_project(tmp_path, schema)
    env = {"INDEXER_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "run", str(project), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    for how in (signal.SIGINT, signal.SIGKILL):
        server = Process("serve", str(project), "--port", "0", "--workers", "2", env=env)
        try:
            line = server.wait_for(r"serving \S+ on (http://127\.0\.0\.1:\d+) .*2 worker processes")
            (worker,) = _workers(server.proc.pid)
            # With the parent stopped, only the worker can accept: new
            # connections are still answered, from the same port.
            os.kill(server.proc.pid, signal.SIGSTOP)
            try:
                for _ in range(3):
                    with httpx.Client(base_url=line.group(1), timeout=30) as client:
                        body = client.post("/graphql", json={"query": TOP}).json()
                        assert [
                            (i["id"], int(i["balance"])) for i in body["data"]["accounts"]["items"]
                        ] == _top_five()
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            if how == signal.SIGINT:
                assert server.stop() == 0, "\n".join(server.lines)
            else:
                server.proc.kill()
                server.proc.wait(timeout=60)
                server.stop()  # reaped already: closes its output
        finally:
            if server.proc.poll() is None:
                server.stop()
        # The worker never outlives the parent: stopped with it, or by its pipe's end.
        deadline = time.monotonic() + 60
        while not _gone(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(worker)


def test_serve_workers_must_be_positive(tmp_path: Path, schema: str) -> None:
    project = make_project(tmp_path, schema)
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "serve", str(project), "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--workers: must be a whole number of at least 1, got '0'" in done.stderr
