"""The command line, run as a real process: output, exit codes, signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from indexer.persist import read_state
from indexer.testing import start_embedded

from ._projects import EXAMPLE, FIRST_BLOCK, LAST_BLOCK, expected_balances, make_project, table_rows

if TYPE_CHECKING:
    from pathlib import Path


def indexer(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "indexer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_example_runs_on_embedded_postgres_and_resumes(tmp_path: Path) -> None:
    project = tmp_path / "erc20"
    shutil.copytree(
        EXAMPLE, project, ignore=shutil.ignore_patterns(".indexer", "__pycache__", "tests")
    )
    env = {"INDEXER_DATABASE_URL": ""}
    first = indexer("run", str(project), env=env)
    assert first.returncode == 0, first.stderr
    assert "done: 7,430 events" in first.stdout
    assert "skipped 370 logs" in first.stdout
    assert "largest balances" in first.stdout  # the example's report hook ran
    second = indexer("run", str(project), env=env)
    assert second.returncode == 0, second.stderr
    assert "done: 0 events" in second.stdout
    url = start_embedded(project / ".indexer" / "pgdata")
    assert table_rows(url, "erc20_balances") == expected_balances()


def test_bad_config_is_one_clear_paragraph_and_exit_1(tmp_path: Path) -> None:
    project = make_project(tmp_path, "unused")
    text = (project / "indexer.yaml").read_text().replace("start_block:", "start_blok:")
    (project / "indexer.yaml").write_text(text)
    out = indexer("run", str(project))
    assert out.returncode == 1
    assert "chains[0]" in out.stderr
    assert "start_blok" in out.stderr
    assert "indexer.yaml" in out.stderr
    assert "Traceback" not in out.stderr


def test_database_down_is_a_clear_error(tmp_path: Path) -> None:
    project = make_project(tmp_path, "unused")
    out = indexer(
        "run", str(project), env={"INDEXER_DATABASE_URL": "postgresql://me:secret@127.0.0.1:1/db"}
    )
    assert out.returncode == 1
    assert "cannot connect to PostgreSQL" in out.stderr
    assert "secret" not in out.stderr
    assert "Traceback" not in out.stderr


SLOW = (
    (EXAMPLE / "handlers.py")
    .read_text()
    .replace(
        '    value = event.params["value"]\n',
        '    await trio.sleep(0.002)\n    value = event.params["value"]\n',
    )
    .replace("from indexer import", "import trio\nfrom indexer import")
)


def _committed(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        _cp, chains = read_state(conn, schema)
    return chains[1][0] if chains else FIRST_BLOCK - 1


def _interrupt(
    project: Path, url: str, sig: signal.Signals, times: int = 1
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INDEXER_DATABASE_URL": url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "indexer", "run", str(project), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(4)
    for i in range(times):
        if i:
            time.sleep(0.1)  # the OS merges a signal sent while one is pending
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _resume(project: Path, url: str) -> subprocess.CompletedProcess[str]:
    """Run the interrupted project to its end, without the sleep that made it interruptible.

    The handlers compute the same either way; the slow ones would only spend
    ~15 s sleeping through the rest of the blocks.
    """
    shutil.copy(EXAMPLE / "handlers.py", project / "handlers.py")
    return indexer("run", str(project), env={"INDEXER_DATABASE_URL": url})


def test_sigterm_flushes_and_exits_0_then_resume_matches(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema, handlers=SLOW)
    stopped = _interrupt(project, database_url, signal.SIGTERM)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped:" in stopped.stdout
    block = _committed(database_url, schema)
    assert FIRST_BLOCK <= block < LAST_BLOCK
    # Everything processed was flushed: the committed block is the processed one.
    assert f"committed through block {block:,}" in stopped.stdout
    assert table_rows(database_url, schema) == expected_balances(block)
    done = _resume(project, database_url)
    assert done.returncode == 0, done.stderr
    assert table_rows(database_url, schema) == expected_balances()


def test_second_sigterm_exits_1_keeping_a_consistent_prefix(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema, handlers=SLOW)
    stopped = _interrupt(project, database_url, signal.SIGTERM, times=2)
    assert stopped.returncode == 1, stopped.stderr
    assert "stopped by a second signal" in stopped.stderr
    block = _committed(database_url, schema)
    assert table_rows(database_url, schema) == expected_balances(block)
    done = _resume(project, database_url)
    assert done.returncode == 0, done.stderr
    assert table_rows(database_url, schema) == expected_balances()


def test_kill_9_then_resume_matches(tmp_path: Path, database_url: str, schema: str) -> None:
    project = make_project(tmp_path, schema, handlers=SLOW)
    killed = _interrupt(project, database_url, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    block = _committed(database_url, schema)
    assert table_rows(database_url, schema) == expected_balances(block)
    done = _resume(project, database_url)
    assert done.returncode == 0, done.stderr
    assert table_rows(database_url, schema) == expected_balances()
    with psycopg.connect(database_url) as conn:
        n = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.account").format(sql.Identifier(schema))
        ).fetchone()
    assert n is not None
    assert n[0] == len(expected_balances())
