"""``indexer dev``, as a real process editing real files.

The project comes from ``indexer init`` on the shared mainnet log file (51
blocks: one run takes about a second).  The waits are generous "within N
seconds" polls of the database and the output: they only fail when a reload
does not happen at all.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest
from psycopg import sql

from indexer.cli._dev import watch_filter
from indexer.testing import open_rpc_server

from ._dev import TRANSFERS, WAIT, Dev, count_rows, init_project

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Iterator[Path]:
    yield from init_project(tmp_path, database_url)


def test_dev_reloads_on_edits_survives_broken_ones_and_keeps_serving(
    project: Path, database_url: str
) -> None:
    schema = project.name
    handlers = project / "handlers.py"
    original = handlers.read_text()
    marker = "transaction_hash=event.transaction_hash,"
    assert original.count(marker) == 2
    with Dev(
        str(project), "--serve", "--port", "0", env={"INDEXER_DATABASE_URL": database_url}
    ) as dev:
        dev.wait_for("the first run", lambda: count_rows(database_url, schema, "true") == TRANSFERS)
        base = dev.api_base()
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200

        # 1. An edit: the Transfer handler stores another transaction_hash.
        handlers.write_text(original.replace(marker, 'transaction_hash="edited",', 1))
        dev.wait_for(
            "the edited handler's results",
            lambda: count_rows(database_url, schema, "transaction_hash = 'edited'") == TRANSFERS,
        )
        assert httpx.get(f"{base}/health", timeout=10).status_code == 200  # same server

        # 2. A syntax error: shown with file and line; dev mode waits.
        mark = len(dev.lines)
        handlers.write_text(original + "\ndef broken(:\n")
        dev.wait_for("the syntax error", lambda: "SyntaxError" in dev.text_after(mark))
        dev.wait_for("waiting", lambda: "waiting for a change" in dev.text_after(mark))
        shown = dev.text_after(mark)
        assert "handlers.py" in shown
        assert "line " in shown

        # 3. A handler that raises: the error paragraph names the handler's file and line.
        mark = len(dev.lines)
        raising = original.replace("    p = event.params\n", "    p = event.params\n    1 / 0\n", 1)
        handlers.write_text(raising)
        dev.wait_for("the handler error", lambda: "ZeroDivisionError" in dev.text_after(mark))
        dev.wait_for("waiting", lambda: "waiting for a change" in dev.text_after(mark))
        assert "handlers.py" in dev.text_after(mark)
        assert dev.proc.poll() is None

        # 4. The fix: new results again, and the API answered throughout.
        handlers.write_text(original.replace(marker, 'transaction_hash="fixed",', 1))
        dev.wait_for(
            "the fixed handler's results",
            lambda: count_rows(database_url, schema, "transaction_hash = 'fixed'") == TRANSFERS,
        )
        response = httpx.get(f"{base}/status", timeout=10)
        assert response.status_code == 200, response.text

        # Ctrl+C: the run (if any) flushes, dev mode exits 0.
        dev.proc.send_signal(signal.SIGINT)
        assert dev.proc.wait(timeout=WAIT) == 0, dev.output


def test_the_watch_filter_takes_code_and_config_only(tmp_path: Path) -> None:
    accept = watch_filter(tmp_path)
    yes = ["handlers.py", "helpers/math.py", "indexer.yaml", "abis/Token.json"]
    no = [
        "indexer_types.py",  # generated: dev writes it itself
        "tests/test_handlers.py",
        ".indexer/pgdata/postgresql.conf",
        "__pycache__/handlers.cpython-311.pyc",
        "README.md",
        ".handlers.py.swp",
    ]
    assert [p for p in yes if not accept(None, str(tmp_path / p))] == []
    assert [p for p in no if accept(None, str(tmp_path / p))] == []


def test_a_reset_keeping_caches_keeps_only_the_effect_tables(
    database_url: str, schema: str
) -> None:
    from indexer.persist import drop_schema

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for table in ("account", "_indexer_state", "_indexer_effect_price", "_indexerXeffect_x"):
            conn.execute(sql.SQL("CREATE TABLE {} (k text)").format(sql.Identifier(schema, table)))
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES ('cached')").format(
                sql.Identifier(schema, "_indexer_effect_price")
            )
        )
        drop_schema(conn, schema, keep_caches=True)
        left = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
        assert left == [("_indexer_effect_price",)]
        rows = conn.execute(
            sql.SQL("SELECT k FROM {}").format(sql.Identifier(schema, "_indexer_effect_price"))
        ).fetchall()
        assert rows == [("cached",)]


async def test_a_run_reset_keeping_caches_calls_no_cached_effect_again(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    from ._chains import TOKENS, scripted_chain
    from .test_effects import cache_rows, handlers_source, project_with, run_counting

    chain, _rng = scripted_chain(31, head=40)
    async with open_rpc_server(chain) as server:
        project = project_with(tmp_path, schema, server.url, 20, handlers_source())
        calls, _ = await run_counting(project, database_url)
        assert calls["label"] == len(TOKENS)
        # What each dev reload does: --reset --keep-caches.
        calls, _ = await run_counting(project, database_url, reset=True, keep_caches=True)
        assert calls["label"] == 0  # every output came from the kept cache
        assert cache_rows(database_url, schema) == len(TOKENS)
        # A plain --reset drops the cache with the rest.
        calls, _ = await run_counting(project, database_url, reset=True)
        assert calls["label"] == len(TOKENS)
