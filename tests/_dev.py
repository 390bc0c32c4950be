"""``indexer dev`` as a real process, for tests/test_dev*.py.

The project comes from ``indexer init`` on the shared mainnet log file (51
blocks: one run takes about a second).  The waits are generous "within N
seconds" polls of the database and the output: they only fail when a reload
does not happen at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from ._projects import FIRST_BLOCK, LAST_BLOCK, LOGS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

SIGNATURES = (
    "event Transfer(address indexed from, address indexed to, uint256 value)\n"
    "event Approval(address indexed owner, address indexed spender, uint256 value)\n"
)
TRANSFERS = 7430
WAIT = 60.0  # seconds; a reload takes about two


class Dev:
    """``indexer dev`` in a child process, its output collected line by line."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "indexer", "dev", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def __enter__(self) -> Dev:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, what: str, check: Callable[[], bool]) -> None:
        """Until ``check()``, polling; fail the test if dev exits or it takes over WAIT s."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if check():
                return
            assert self.proc.poll() is None, f"dev exited while waiting for {what}:\n{self.output}"
            time.sleep(0.2)
        pytest.fail(f"not within {WAIT:.0f}s: {what}\n{self.output}")

    def text_after(self, mark: int) -> str:
        return "\n".join(self.lines[mark:])

    def api_base(self) -> str:
        """The URL of the API dev serves (from its ``dev: serving ... on URL`` line)."""
        self.wait_for("the API", lambda: any(x.startswith("dev: serving") for x in self.lines))
        serving = next(line for line in self.lines if line.startswith("dev: serving"))
        return serving.split(" on ", 1)[1].split(" ", 1)[0]


def count_rows(url: str, schema: str, where: str) -> int:
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE " + where).format(
                    sql.Identifier(schema, "erc20_transfer")
                )
            ).fetchone()
    except psycopg.Error:
        return -1  # between a reset and the next commit
    assert row is not None
    return int(row[0])


def init_project(tmp_path: Path, database_url: str) -> Iterator[Path]:
    """A fresh ``indexer init`` project (ERC20 on the log file); its schema dropped after."""
    abi = tmp_path / "erc20.txt"
    abi.write_text(SIGNATURES)
    path = tmp_path / f"dev_{os.getpid()}"
    made = subprocess.run(
        [
            *(sys.executable, "-m", "indexer", "init", str(path), "--abi", str(abi)),
            *("--contract", "ERC20", "--file", str(LOGS)),
            *("--start-block", str(FIRST_BLOCK), "--end-block", str(LAST_BLOCK)),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    yield path
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(path.name)))
