"""Whole runs of a project (the example's handlers on real mainnet logs) against PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import trio
import trio.testing
from psycopg import sql

from indexer import (
    DecodeError,
    HandlerError,
    RunOptions,
    RunSummary,
    SchemaMismatchError,
    SourceError,
    load_config,
    load_handlers,
    run_project,
)
from indexer.persist import read_state

from ._projects import (
    FIRST_BLOCK,
    LAST_BLOCK,
    expected_balances,
    leaf,
    make_project,
    raised,
    table_rows,
)

if TYPE_CHECKING:
    from pathlib import Path

    from indexer.persist import Changeset


async def run(project: Path, url: str, **options: Any) -> RunSummary:
    config = load_config(project)
    handlers = load_handlers(config)
    opts = RunOptions(database_url=url, handle_signals=False, **options)
    return await run_project(config, handlers, opts)


def committed_block(url: str, schema: str) -> int:
    with psycopg.connect(url) as conn:
        _cp, chains = read_state(conn, schema)
    return chains[1][0] if chains else FIRST_BLOCK - 1


async def test_example_matches_independent_computation(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)
    summary = await run(project, database_url, chunk_logs=500)
    want = expected_balances()
    assert summary.events == sum(n for _b, n in want.values()) // 2 == 7430
    assert summary.skipped == {(1, "ERC20.Transfer"): 370}
    assert summary.chains == {1: (LAST_BLOCK, 7430)}
    assert table_rows(database_url, schema) == want
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT id, block_number, events FROM {}._indexer_checkpoints ORDER BY id"
            ).format(sql.Identifier(schema))
        ).fetchall()
    # A file cannot reorganise: no checkpoint rows (nor history) are kept
    # for it.  The rows of chains near their head are checked in test_reorg.py.
    assert rows == []


async def test_second_run_resumes_and_does_nothing(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)
    await run(project, database_url)
    again = await run(project, database_url)
    assert again.events == 0
    assert again.chains == {1: (LAST_BLOCK, 7430)}
    assert table_rows(database_url, schema) == expected_balances()


async def test_partial_run_then_extend_end_block(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    middle = FIRST_BLOCK + 20
    project = make_project(tmp_path, schema, end_block=middle)
    await run(project, database_url, chunk_logs=300)
    assert table_rows(database_url, schema) == expected_balances(middle)
    (project / "indexer.yaml").write_text(
        (project / "indexer.yaml").read_text().replace(str(middle), str(LAST_BLOCK))
    )
    await run(project, database_url, chunk_logs=300)
    assert table_rows(database_url, schema) == expected_balances()


async def test_write_failure_keeps_last_commit_and_resume_matches(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)
    commits = 0

    def fault(step: str) -> None:
        nonlocal commits
        if step == "commit":
            commits += 1
            if commits == 4:
                raise RuntimeError("connection lost (simulated)")

    with pytest.RaisesGroup(
        pytest.RaisesExc(RuntimeError, match="simulated"), flatten_subgroups=True
    ):
        await run(project, database_url, chunk_logs=300, sync_writes=True, fault=fault)
    block = committed_block(database_url, schema)
    assert FIRST_BLOCK < block < LAST_BLOCK
    # The database holds exactly the state at its committed block.
    assert table_rows(database_url, schema) == expected_balances(block)
    await run(project, database_url, chunk_logs=300)
    assert table_rows(database_url, schema) == expected_balances()


async def test_capacity_waits_for_slow_writer_and_bounds_memory(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)

    async def slow(write: Changeset) -> None:
        await trio.sleep(2)

    target = 600
    # The watchdog off: under the autojump clock every wait on the writer's
    # thread jumps to its next check, and its loop then spins against that
    # thread for the GIL (66 s instead of 12 s).
    summary = await run(
        project,
        database_url,
        target=target,
        chunk_logs=100,
        pre_write=slow,
        stall_seconds=float("inf"),
    )
    assert summary.stalled_seconds > 0  # the loop did wait for the writer...
    assert summary.peak_in_memory <= target + 2 * 100  # ...so memory stayed near the target
    assert table_rows(database_url, schema) == expected_balances()


async def test_no_deadlock_when_a_batch_alone_exceeds_the_target(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)
    with trio.fail_after(120):
        summary = await run(project, database_url, target=1, chunk_logs=5000)
    assert summary.events == 7430
    assert table_rows(database_url, schema) == expected_balances()


async def test_sync_writes_give_the_same_tables(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)
    summary = await run(project, database_url, sync_writes=True, chunk_logs=1000)
    assert summary.writes >= 7
    assert table_rows(database_url, schema) == expected_balances()


FAILING = """
from typing import Annotated
from indexer import Context, Entity, Event, Index, on

class Account(Entity):
    id: str
    token: Annotated[str, Index]
    holder: str
    balance: int = 0
    transfers: int = 0

@on("ERC20", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    if event.block_number == BAD_BLOCK and event.log_index == BAD_LOG:
        raise ValueError("boom")
    value = event.params["value"]
    for holder, delta in ((event.params["from"], -value), (event.params["to"], value)):
        key = f"{event.address}-{holder}"
        old = await ctx.get(Account, key)
        if old is None:
            ctx.set(Account(id=key, token=event.address, holder=holder, balance=delta, transfers=1))
        else:
            ctx.set(old.replace(balance=old.balance + delta, transfers=old.transfers + 1))
"""


async def test_every_write_holds_each_changed_account_as_of_its_own_block(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """Far from the head the store keeps, of a hot account, only the values a write can
    still end at (the last hand-over's, the last range's end): so each write, not only
    the final tables, must carry every account changed since the write before it, as of
    its own block.  A write that missed one would leave the database wrong until the next
    write, and a run resumed after a crash in between would build on that.  Small ranges,
    read ahead of the loop, and a hand-over whenever the writer is idle make the loop run
    several ranges between a hand-over and the writer's snapshot of it."""
    by_block: dict[int, dict[str, tuple[int, int]]] = {}
    for block in range(FIRST_BLOCK - 1, LAST_BLOCK + 1):
        by_block[block] = expected_balances(block) if block >= FIRST_BLOCK else {}
    writes: list[tuple[int, dict[str, tuple[int, int]]]] = []

    async def pre_write(write: Changeset) -> None:
        rows = {}
        for t in write.tables:
            names = [f.name for f in t.spec.fields]
            for entity in t.upserts:
                row = dict(zip(names, entity, strict=True))
                rows[row["id"]] = (row["balance"], row["transfers"])
        writes.append((write.chains[1].block, rows))

    project = make_project(tmp_path, schema)
    await run(project, database_url, chunk_logs=5, write_interval=0.0, pre_write=pre_write)
    assert len(writes) > 10
    before = FIRST_BLOCK - 1
    for block, rows in writes:
        was, now = by_block[before], by_block[block]
        assert rows == {k: v for k, v in now.items() if was.get(k) != v}, block
        before = block
    assert before == LAST_BLOCK


async def test_handler_error_names_the_event_and_commits_nothing_of_its_batch(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    bad_block, bad_log = 18426290, 100
    # Find a real Transfer at or after (bad_block, bad_log) to fail on.
    import gzip
    import json

    from ._projects import LOGS, TRANSFER

    with gzip.open(LOGS, "rt") as f:
        for line in f:
            log = json.loads(line)
            b, i = int(log["blockNumber"], 16), int(log["logIndex"], 16)
            if (
                (b, i) >= (bad_block, bad_log)
                and log["topics"][:1] == [TRANSFER]
                and len(log["topics"]) == 3
            ):
                bad_block, bad_log, tx = b, i, log["transactionHash"]
                break
    source = FAILING.replace("BAD_BLOCK", str(bad_block)).replace("BAD_LOG", str(bad_log))
    project = make_project(tmp_path, schema, handlers=source)
    with raised(HandlerError) as info:
        await run(project, database_url, chunk_logs=200)
    message = (
        str(info.value.exceptions[0])
        if isinstance(info.value, BaseExceptionGroup)
        else str(info.value)
    )
    for part in (
        f"block {bad_block}",
        f"log index {bad_log}",
        tx,
        "transfer",
        "handlers.py",
        "ValueError: boom",
    ):
        assert part in message
    block = committed_block(database_url, schema)
    assert block < bad_block
    assert table_rows(database_url, schema) == expected_balances(block)
    (project / "handlers.py").write_text(source.replace("raise ValueError", "pass  #"))
    await run(project, database_url, chunk_logs=200)
    assert table_rows(database_url, schema) == expected_balances()


FINDING = """
from typing import Annotated
from indexer import Context, Entity, Event, Index, on

class Account(Entity):
    id: str
    token: Annotated[str, Index]
    holder: str
    balance: int = 0
    transfers: int = 0

class Token(Entity):
    id: str
    holders: int
    nonzero: int

@on("ERC20", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    value = event.params["value"]
    for holder, delta in ((event.params["from"], -value), (event.params["to"], value)):
        key = f"{event.address}-{holder}"
        old = await ctx.get(Account, key)
        if old is None:
            ctx.set(Account(id=key, token=event.address, holder=holder, balance=delta, transfers=1))
        else:
            ctx.set(old.replace(balance=old.balance + delta, transfers=old.transfers + 1))
    accounts = await ctx.find(Account, token=event.address)
    ctx.set(Token(id=event.address, holders=len(accounts), nonzero=sum(1 for a in accounts if a.balance)))
"""


@pytest.mark.parametrize("target", [100_000, 150])
async def test_find_sees_database_plus_memory(
    tmp_path: Path, database_url: str, schema: str, target: int
) -> None:
    project = make_project(tmp_path, schema, handlers=FINDING)
    summary = await run(project, database_url, target=target, chunk_logs=150)
    # The small target really drops committed entities (and complete indices),
    # so later finds must merge reloaded rows with memory.
    assert (summary.evictions > 0) == (target < 1000)
    balances = expected_balances()
    tokens: dict[str, tuple[int, int]] = {}
    for key, (balance, _n) in balances.items():
        token = key.split("-")[0]
        holders, nonzero = tokens.get(token, (0, 0))
        tokens[token] = (holders + 1, nonzero + (1 if balance else 0))
    got = table_rows(database_url, schema, "SELECT id, holders, nonzero FROM {}.token")
    assert got == tokens


async def test_explicit_address_contract_rejects_a_log_that_does_not_fit(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    # 0xb367...dad3 emits ERC721 Transfers (4 topics, no data); listed explicitly
    # as an ERC20 it is bad input, not something to skip.
    project = make_project(tmp_path, schema)
    config = (project / "indexer.yaml").read_text()
    config = config.replace(
        "      - name: ERC20\n",
        '      - name: ERC20\n        addresses: ["0xb367b1a74c409fc148fb21753b130b65b794dad3"]\n',
    )
    (project / "indexer.yaml").write_text(config)
    with raised(DecodeError) as info:
        await run(project, database_url)
    error = leaf(info.value)
    assert "block 18426253 log 75" in str(error)
    assert "ERC20.Transfer(address,address,uint256)" in str(error)
    assert committed_block(database_url, schema) < FIRST_BLOCK


async def test_reset_starts_over_and_schema_changes_are_refused(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path, schema)
    await run(project, database_url)
    again = await run(project, database_url, reset=True)
    assert again.events == 7430
    assert table_rows(database_url, schema) == expected_balances()
    handlers = (
        (project / "handlers.py")
        .read_text()
        .replace(
            "    transfers: int = 0\n", "    transfers: int = 0\n    note: str | None = None\n"
        )
    )
    (project / "handlers.py").write_text(handlers)
    with pytest.raises(SchemaMismatchError, match="--reset"):
        await run(project, database_url)
    assert table_rows(database_url, schema) == expected_balances()  # untouched


async def test_metrics_count_what_happened(tmp_path: Path, database_url: str, schema: str) -> None:
    from prometheus_client import generate_latest

    from indexer import Metrics

    project = make_project(tmp_path, schema)
    metrics = Metrics()
    summary = await run(project, database_url, metrics=metrics, chunk_logs=1000)
    text = generate_latest(metrics.registry).decode()
    assert 'indexer_events_processed_total{chain="1"} 7430.0' in text
    assert 'indexer_logs_skipped_total{chain="1",event="ERC20.Transfer"} 370.0' in text
    assert 'indexer_committed_block{chain="1"} 1.8426303e+07' in text
    assert 'indexer_processed_block{chain="1"} 1.8426303e+07' in text
    assert f"indexer_storage_write_seconds_count {float(summary.writes)}" in text
    for name in (
        "indexer_handler_seconds_total",
        "indexer_load_seconds_total",
        "indexer_in_memory_entities",
        "indexer_processing_stalled_on_storage_write_seconds_total",
    ):
        assert name in text


async def test_malformed_source_line_is_reported_and_nothing_after_it_stored(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    import gzip

    from ._projects import LOGS, TRANSFER

    with gzip.open(LOGS, "rt") as f:
        lines = f.read().splitlines()
    # A Transfer line well inside the file (other lines are filtered unparsed).
    broken_at = next(i for i in range(12000, len(lines)) if TRANSFER in lines[i])
    lines[broken_at] = lines[broken_at][:-20]  # truncated JSON
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    project = make_project(tmp_path, schema)
    config = (project / "indexer.yaml").read_text().replace(str(LOGS), str(bad))
    (project / "indexer.yaml").write_text(config)
    with raised(SourceError) as info:
        await run(project, database_url, chunk_logs=200)
    error = leaf(info.value)
    assert f"line {broken_at + 1}" in str(error)
    assert str(bad) in str(error)
    block = committed_block(database_url, schema)
    assert table_rows(database_url, schema) == expected_balances(block)
