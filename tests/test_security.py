"""Identifiers from user code reach SQL only quoted; metrics stay local; secrets stay out of output."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from indexer import SourceError

from ._chains import make_rpc_project, run
from ._projects import EXAMPLE, leaf, make_project, raised

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

HOSTILE_TABLE = 'x"; DROP SCHEMA public CASCADE; --'

HOSTILE_HANDLERS = f"""
from typing import Annotated
from indexer import Context, Entity, Event, Index, on


class Hostile(Entity):
    __table__ = {HOSTILE_TABLE!r}
    id: str
    select: int = 0
    order: Annotated[str, Index] = ""
    user: str = ""
    group: str = ""


@on("ERC20", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    old = await ctx.get(Hostile, event.address)
    same = await ctx.find(Hostile, order=event.address)
    ctx.set(Hostile(id=event.address, select=(old.select if old else 0) + 1, order=event.address,
                    user="'; DELETE FROM pg_catalog.pg_class; --", group=str(len(same))))
"""


async def test_hostile_identifiers_are_quoted_everywhere(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.canary (id int)")
    project = make_project(tmp_path, schema, handlers=HOSTILE_HANDLERS)
    from indexer import RunOptions, load_config, load_handlers, run_project

    from ._projects import LAST_BLOCK

    config = load_config(project)
    await run_project(
        config,
        load_handlers(config),
        RunOptions(database_url=database_url, handle_signals=False, target=50),
    )
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT count(*), sum({}) FROM {}.{}").format(
                sql.Identifier("select"), sql.Identifier(schema), sql.Identifier(HOSTILE_TABLE)
            )
        ).fetchone()
        assert rows is not None
        assert rows[0] > 100
        assert rows[1] == 7430  # one increment per ERC20 Transfer
        (user,) = conn.execute(
            sql.SQL("SELECT DISTINCT {} FROM {}.{}").format(
                sql.Identifier("user"), sql.Identifier(schema), sql.Identifier(HOSTILE_TABLE)
            )
        ).fetchone() or ("",)
        assert user == "'; DELETE FROM pg_catalog.pg_class; --"
        assert conn.execute("SELECT to_regclass('public.canary')").fetchone() == ("canary",)
        (progress,) = conn.execute(
            sql.SQL("SELECT progress_block FROM {}._indexer_chains").format(sql.Identifier(schema))
        ).fetchone() or (0,)
    assert progress == LAST_BLOCK


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (Linux /proc/net/tcp)."""
    found = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(path):
            continue
        with open(path) as f:
            next(f)
            for line in f:
                local, state = line.split()[1], line.split()[3]
                addr, port_hex = local.split(":")
                if int(port_hex, 16) == port and state == "0A":  # LISTEN
                    found.add(addr)
    return found


def test_metrics_server_binds_loopback_by_default(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    slow = (
        (EXAMPLE / "handlers.py")
        .read_text()
        .replace(
            '    value = event.params["value"]\n',
            '    await trio.sleep(0.002)\n    value = event.params["value"]\n',
        )
        .replace("from indexer import", "import trio\nfrom indexer import")
    )
    project = make_project(tmp_path, schema, handlers=slow)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "INDEXER_DATABASE_URL": database_url}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "indexer",
            "run",
            str(project),
            "--no-progress",
            "--metrics-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        body = ""
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.1)
        assert "indexer_events_processed_total" in body
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    assert proc.returncode == 0


async def test_rpc_secrets_never_reach_errors_or_logs(
    tmp_path: Path, database_url: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = "abcdef0123456789abcdef0123456789"
    url = f"http://user:hunter2@127.0.0.1:1/v2/{key}"
    project = make_rpc_project(tmp_path, schema, url, end_block=10)
    caplog.set_level(logging.DEBUG)
    with raised(SourceError) as info:
        await run(
            project,
            database_url,
            rpc_tuning={"client_options": {"max_attempts": 2, "backoff_base": 0.01}},
        )
    message = str(leaf(info.value))
    assert "127.0.0.1:1" in message
    for secret in ("hunter2", key):
        assert secret not in message
        assert secret not in caplog.text
