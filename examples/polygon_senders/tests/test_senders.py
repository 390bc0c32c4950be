"""Tests of the example: a handler test with a made-up transaction, and a run over the real files.

The handlers module (``senders.py``) is loaded as a run loads it
(``load_handlers``).  ``INDEXER_TEST_DATABASE_URL`` selects a PostgreSQL
server; otherwise an embedded one is started once per session.  Run them
with ``pytest examples/polygon_senders/tests``.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg import sql

from indexer import RunOptions, load_config, load_handlers, run_project
from indexer.testing import HandlerHarness, read_entities, start_embedded

if TYPE_CHECKING:
    from collections.abc import Iterator

PROJECT = Path(__file__).resolve().parent.parent  # holds indexer.yaml
SOURCE = PROJECT / "data" / "source"
TOKEN = "0x" + "a0" * 20
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b1" * 20
ROUTER = "0x" + "c1" * 20
_schemas = itertools.count()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("INDEXER_TEST_DATABASE_URL")
    return url or start_embedded(tmp_path_factory.mktemp("pg") / "pgdata")


@pytest.fixture
def schema(database_url: str) -> Iterator[str]:
    name = f"senders_test_{os.getpid()}_{next(_schemas)}"
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


async def test_the_sender_is_the_transactions_from_not_the_transfers() -> None:
    h = HandlerHarness(PROJECT)
    module = h.handlers.module
    # ALICE sends her own tokens; then ROUTER moves BOB's (an approved spender).
    own = {"from": ALICE, "gas_used": 51_000}
    await h.send(
        h.event(
            "ERC20",
            "Transfer",
            {"from": ALICE, "to": BOB, "value": 5},
            address=TOKEN,
            block_number=10,
            transaction=own,
        ),
        h.event(
            "ERC20",
            "Transfer",
            {"from": BOB, "to": ALICE, "value": 2},
            address=TOKEN,
            block_number=11,
            transaction={"from": ROUTER, "gas_used": 120_000},
        ),
    )
    first = h.get(module.Transfer, "10-0")
    assert first is not None
    assert (first.from_, first.sender, first.gas_used) == (ALICE, ALICE, 51_000)
    second = h.get(module.Transfer, "11-0")
    assert second is not None
    assert (second.from_, second.sender) == (BOB, ROUTER)
    router = h.get(module.Sender, ROUTER)
    assert router is not None
    assert (router.transfers, router.on_behalf) == (1, 1)


def _csv(kind: str) -> list[dict[str, str]]:
    with gzip.open(SOURCE / f"polygon_52395713_52395714_{kind}.ethereumetl.csv.gz", "rt") as f:
        return list(csv.DictReader(f))


async def test_a_run_over_the_files_records_each_transfers_sender(
    database_url: str, schema: str
) -> None:
    config = dataclasses.replace(load_config(PROJECT), schema=schema)
    handlers = load_handlers(config)
    options = RunOptions(database_url=database_url, handle_signals=False)
    await run_project(config, handlers, options)
    module: Any = handlers.module
    transfers = read_entities(database_url, schema, module.Transfer)
    # The reference: the ethereum-etl CSVs the parquet files were made from.
    txs = {t["hash"]: t for t in _csv("transactions")}
    receipts = {r["transaction_hash"]: r for r in _csv("receipts")}
    assert len(transfers) > 100
    for t in transfers.values():
        assert t.sender == txs[t.transaction_hash]["from_address"]
        assert t.gas_used == int(receipts[t.transaction_hash]["gas_used"])
    assert any(t.sender != t.from_ for t in transfers.values())  # routers and spenders
    # The block handler ran at 52395714, after its Transfers were counted.
    blocks = read_entities(database_url, schema, module.BlockSummary)
    second = blocks["52395714"]
    in_second = sum(t.block_number == 52395714 for t in transfers.values())
    assert (second.hash, second.parent_hash, second.timestamp, second.transfers) == (
        txs[next(h for h, t in txs.items() if t["block_number"] == "52395714")]["block_hash"],
        next(t["block_hash"] for t in txs.values() if t["block_number"] == "52395713"),
        1705416595,
        in_second,
    )
    assert blocks["52395713"].hash == ""  # before the handler's start: counted, not summarised
