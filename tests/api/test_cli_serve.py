"""``indexer run --serve`` and ``indexer serve`` as a user runs them: real processes, real ports."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import httpx

from .._projects import expected_balances, make_project

if TYPE_CHECKING:
    from pathlib import Path

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
            env={**os.environ, **env},
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

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


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
