"""``indexer run --serve --workers N``: the API in processes of its own, beside the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from indexer.cli._run_workers import HealthBoard

from .._projects import expected_balances, make_project
from .test_cli_serve import TOP, Process, _children, _described, _gone, _top_five, _workers

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="--workers needs Linux")


def _run_with_two_workers(tmp_path: Path, database_url: str, schema: str, *flags: str) -> Process:
    """``indexer run <project> --serve --port 0 --workers 2 FLAGS`` on a new project."""
    project = make_project(tmp_path, schema)
    return Process(
        "run",
        str(project),
        "--serve",
        "--port",
        "0",
        "--workers",
        "2",
        *flags,
        env={"INDEXER_DATABASE_URL": database_url},
    )


def test_run_serve_workers_answer_while_the_indexing_process_does_not(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    p = _run_with_two_workers(tmp_path, database_url, schema)
    try:
        base = p.wait_for(
            r"serving the API on (http://127\.0\.0\.1:\d+) \(GraphQL at /graphql; 2 worker"
        ).group(1)
        p.wait_for(r"indexing finished; still serving")
        workers = _workers(p.proc.pid)
        assert len(workers) == 2, _described(_children(p.proc.pid))
        # Without --api-priority the workers keep the run's scheduling policy.
        assert {_policies(w) for w in workers} == {_policies(p.proc.pid)}
        # The indexing process stopped: the workers still answer, on its port.
        os.kill(p.proc.pid, signal.SIGSTOP)
        try:
            for _ in range(4):
                with httpx.Client(base_url=base, timeout=30) as client:
                    assert client.get("/ready").json() == {"ready": True}
                    assert client.get("/health").json() == {"status": "ok"}
                    page = client.post("/graphql", json={"query": TOP}).json()["data"]["accounts"]
                    got = [(i["id"], int(i["balance"])) for i in page["items"]]
                    assert got == _top_five()
                    holders = {k for k in expected_balances() if not k.endswith("0" * 40)}
                    assert page["totalCount"] == len(holders)
        finally:
            os.kill(p.proc.pid, signal.SIGCONT)
    finally:
        code = p.stop()
    assert code == 0, "\n".join(p.lines)
    assert any(line.startswith("done:") for line in p.lines)
    deadline = time.monotonic() + 60
    while not all(_gone(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(w) for w in workers)


def _policies(pid: int) -> frozenset[int]:
    """The scheduling policy of each thread of ``pid``."""
    return frozenset(os.sched_getscheduler(int(t)) for t in os.listdir(f"/proc/{pid}/task"))


def test_low_priority_workers_answer_on_idle_cpu_only(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """`--api-priority low`: every thread of the workers runs under SCHED_IDLE; indexing does not."""
    p = _run_with_two_workers(tmp_path, database_url, schema, "--api-priority", "low")
    try:
        base = p.wait_for(
            r"serving the API on (http://127\.0\.0\.1:\d+) \(GraphQL at /graphql; "
            r"2 worker processes, low priority\)"
        ).group(1)
        p.wait_for(r"indexing finished; still serving")
        # Queries on several connections: each worker has its reader's threads by now.
        for _ in range(8):
            with httpx.Client(base_url=base, timeout=30) as client:
                page = client.post("/graphql", json={"query": TOP}).json()["data"]["accounts"]
                assert [(i["id"], int(i["balance"])) for i in page["items"]] == _top_five()
                assert client.get("/health").json() == {"status": "ok"}
        workers = _workers(p.proc.pid)
        assert len(workers) == 2, _described(_children(p.proc.pid))
        for w in workers:
            assert len(os.listdir(f"/proc/{w}/task")) > 1  # the reader's threads are counted
            assert _policies(w) == {os.SCHED_IDLE}
        assert _policies(p.proc.pid) == {os.sched_getscheduler(0)}  # the run's own: as started
    finally:
        code = p.stop()
    assert code == 0, "\n".join(p.lines)
    assert any(line.startswith("done:") for line in p.lines)


def test_low_priority_without_workers_is_refused(tmp_path: Path, schema: str) -> None:
    project = make_project(tmp_path, schema)
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "run", str(project), "--serve", "--api-priority", "low"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--api-priority low: needs --serve --workers N" in done.stderr


def test_workers_without_serve_are_refused(tmp_path: Path, schema: str) -> None:
    project = make_project(tmp_path, schema)
    done = subprocess.run(
        [sys.executable, "-m", "indexer", "run", str(project), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--workers: the API's worker processes need --serve" in done.stderr


def test_the_health_board_is_read_whole_across_a_fork() -> None:
    """What the indexing process publishes, a forked worker reads; never half of a value."""
    board = HealthBoard()
    values = [
        {},
        {"status": "stalled", "stalled": [{"chain_id": 1, "committed_block": 7}]},
        {
            "status": "stalled",
            "stalled": [{"chain_id": c, "waiting_on": "x" * 300} for c in range(40)],
        },
    ]
    board.publish(values[1])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        answer = b"bad"
        try:
            os.close(read)
            ok = board.read() == values[1]
            os.write(write, b"1")  # first read done: the parent starts writing
            # Reads while the parent keeps publishing: each one of the values, whole.
            seen = 0
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                ok = ok and board.read() in values
                seen += 1
            if ok and seen > 100:
                answer = b"ok"
        finally:
            # Never back into pytest: this process is a copy of it.
            os.write(write, answer)
            os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    stop = threading.Event()

    def publish() -> None:
        i = 0
        while not stop.is_set():
            board.publish(values[i % 3])
            i += 1

    writer = threading.Thread(target=publish)
    writer.start()
    try:
        answer = os.read(read, 16)
    finally:
        stop.set()
        writer.join()
        os.close(read)
        os.waitpid(pid, 0)
    assert answer == b"ok"
    # Too large a value keeps its status and says it was cut.
    board.publish({"status": "stalled", "stalled": ["x" * 100_000]})
    assert board.read() == {"status": "stalled", "truncated": True}
