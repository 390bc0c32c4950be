"""Transient database errors: the writer retries on a fresh connection, exactly once in effect.

Runs follow a scripted chain inside its reorg window, so every write also
carries history and checkpoint rows: a write applied twice would violate
their primary keys, and one lost would break the tables' equality with the
independent computation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import psycopg
import pytest
import trio

from indexer import DatabaseError

from ._chains import (
    expected,
    framework_rows,
    make_rpc_project,
    progress,
    run,
    scripted_chain,
    tables,
)
from ._projects import leaf, raised

if TYPE_CHECKING:
    from pathlib import Path

    from indexer.persist import Changeset
    from indexer.testing import ScriptedChain

from indexer.testing import open_rpc_server


def transient(step: str) -> psycopg.OperationalError:
    return psycopg.OperationalError(
        f"simulated: server closed the connection unexpectedly ({step})"
    )


def assert_checkpoints_once(url: str, schema: str) -> None:
    rows = framework_rows(
        url, schema, "SELECT id, block_number FROM {}._indexer_checkpoints ORDER BY id"
    )
    ids = [i for i, _b in rows]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    blocks = [b for _i, b in rows]
    assert blocks == sorted(set(blocks))


@pytest.mark.parametrize("step", ["begin", "entities", "progress", "commit", "committed"])
async def test_transient_error_at_each_step_is_retried_exactly_once_in_effect(
    tmp_path: Path, database_url: str, schema: str, step: str
) -> None:
    """ "committed" fails after COMMIT: the retry must see the write landed and not repeat it."""
    chain, _rng = scripted_chain(11, head=40)
    failures = {"left": 2}

    def fault(name: str) -> None:
        if name == step and failures["left"]:
            failures["left"] -= 1
            raise transient(name)

    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=40, max_reorg_depth=50)
        await run(project, database_url, fault=fault, chunk_logs=10)
    assert failures["left"] == 0
    assert tables(database_url, schema) == expected(chain)
    assert progress(database_url, schema) == 40
    assert_checkpoints_once(database_url, schema)


@pytest.mark.parametrize("step", ["rollback", "commit", "rolled back"])
async def test_transient_error_during_a_rollback_is_retried(
    tmp_path: Path, database_url: str, schema: str, step: str
) -> None:
    chain, rng = scripted_chain(12, head=30)
    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=30, max_reorg_depth=10)
        await run(project, database_url)
        from ._chains import replace_logs, set_end_block

        chain.reorg(4, replace_logs(rng, chain, 4))
        chain.advance(3)
        set_end_block(project, 33)
        fired: list[str] = []
        seen: list[str] = []

        def fault(name: str) -> None:
            seen.append(name)
            if name == step and "rollback" in seen and not fired:
                fired.append(name)
                raise transient(name)

        summary = await run(project, database_url, fault=fault)
    assert fired == [step]
    assert [(c, b) for c, b, _r, _s in summary.rollbacks] == [(1, 26)]
    assert tables(database_url, schema) == expected(chain)
    assert_checkpoints_once(database_url, schema)


async def test_killed_writer_connection_is_replaced(
    tmp_path: Path, database_url: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A real fault: the writer's backend is terminated by the server before a write.

    Every backend named ``indexer-writer`` is terminated: on a server shared
    with other test sessions that may include theirs too, so the count is
    "at least ours", and the retries logged show that ours was among them.
    """
    caplog.set_level(logging.WARNING, "indexer.persist")
    chain, _rng = scripted_chain(13, head=40)
    killed: list[int] = []

    async def pre_write(write: Changeset) -> None:
        if len(killed) < 2:

            def terminate() -> int:
                with psycopg.connect(database_url, autocommit=True) as conn:
                    rows = conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'indexer-writer' AND pid <> pg_backend_pid()"
                    ).fetchall()
                return len(rows)

            killed.append(await trio.to_thread.run_sync(terminate))

    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=40, max_reorg_depth=50)
        await run(project, database_url, pre_write=pre_write, chunk_logs=10)
    assert len(killed) == 2
    assert min(killed) >= 1
    retried = [r for r in caplog.records if "AdminShutdown" in r.getMessage()]
    assert len(retried) == 2, [r.getMessage() for r in retried]
    assert tables(database_url, schema) == expected(chain)
    assert_checkpoints_once(database_url, schema)


async def test_past_the_retry_bound_the_run_fails_and_resume_is_exact(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    chain: ScriptedChain
    chain, _rng = scripted_chain(14, head=40)
    calls = {"n": 0}

    def fault(name: str) -> None:
        if name == "entities":
            calls["n"] += 1
            if calls["n"] > 2:  # the first writes pass, then the database "stays down"
                raise transient(name)

    async with open_rpc_server(chain) as server:
        project = make_rpc_project(tmp_path, schema, server.url, end_block=40, max_reorg_depth=50)
        with raised(DatabaseError) as info:
            await run(project, database_url, fault=fault, chunk_logs=10, db_retry_seconds=0.3)
        message = str(leaf(info.value))
        assert "giving up" in message
        assert "OperationalError" in message
        assert calls["n"] > 3  # it did retry before giving up
        partial = progress(database_url, schema)
        assert partial is not None
        assert partial < 40
        await run(project, database_url)
    assert tables(database_url, schema) == expected(chain)
    assert_checkpoints_once(database_url, schema)
