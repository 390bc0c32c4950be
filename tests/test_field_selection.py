"""``field_selection``: the config keys, their errors, and the Transaction and Block objects."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexer import Block, Event, Transaction
from indexer._fields import (
    BLOCK_FIELDS,
    TRANSACTION_FIELDS,
    FieldSelection,
    block_from_rpc,
    transaction_from_rpc,
)
from indexer.config import load_config

from .test_config import base_config, contract, load_error, make_project

if TYPE_CHECKING:
    from pathlib import Path

RPC = {"rpc": "http://localhost:8545"}


def rpc_config(**chain: Any) -> dict[str, Any]:
    config = base_config()
    config["chains"][0]["source"] = dict(RPC)
    config["chains"][0].update(chain)
    return config


# ----------------------------------------------------------------------------- config


def test_chain_and_contract_selections_merge_per_contract(tmp_path: Path) -> None:
    config = rpc_config(field_selection={"transaction": ["from", "gas_used"], "block": ["miner"]})
    config["chains"][0]["contracts"].append(
        {
            "name": "Other",
            "addresses": ["0x" + "c" * 40],
            "events": [
                "event Approval(address indexed owner, address indexed spender, uint256 value)"
            ],
            "field_selection": {"transaction": ["value"], "block": ["base_fee_per_gas"]},
        }
    )
    chain = load_config(make_project(tmp_path, config), environ={}).chains[0]
    assert chain.field_selection == FieldSelection(
        frozenset({"from", "gas_used"}), frozenset({"miner"})
    )
    erc20, other = chain.contracts
    assert erc20.field_selection == chain.field_selection
    assert other.field_selection == FieldSelection(
        frozenset({"from", "gas_used", "value"}), frozenset({"miner", "base_fee_per_gas"})
    )
    assert chain.fetched_fields == other.field_selection
    assert chain.fetched_fields.receipts
    assert chain.fetched_fields.transaction_body


def test_no_selection_is_empty_and_from_underscore_is_accepted(tmp_path: Path) -> None:
    chain = load_config(make_project(tmp_path, rpc_config()), environ={}).chains[0]
    assert not chain.fetched_fields
    config = rpc_config(field_selection={"transaction": ["from_"]})
    chain = load_config(make_project(tmp_path, config), environ={}).chains[0]
    assert chain.field_selection.transaction == {"from"}
    assert not chain.field_selection.receipts


def test_unknown_transaction_field_lists_the_valid_ones(tmp_path: Path) -> None:
    message = load_error(
        tmp_path, rpc_config(field_selection={"transaction": ["from", "gasprice"]})
    )
    assert (
        "indexer.yaml: chains[0].field_selection.transaction[1]: unknown field 'gasprice'"
        in message
    )
    assert "Did you mean 'gas_price'?" in message
    assert ", ".join(TRANSACTION_FIELDS) in message


def test_unknown_block_field_on_a_contract(tmp_path: Path) -> None:
    config = rpc_config()
    contract(config)["field_selection"] = {"block": ["coinbase"]}
    message = load_error(tmp_path, config)
    assert "chains[0].contracts[0].field_selection.block[0]: unknown field 'coinbase'" in message
    assert ", ".join(BLOCK_FIELDS) in message


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (
            {"transactions": ["from"]},
            "field_selection.transactions: unknown key. Did you mean 'transaction'?",
        ),
        ({"transaction": "from"}, "field_selection.transaction: must be a list of field names"),
        (
            {"transaction": ["from", "from"]},
            "field_selection.transaction[1]: 'from' is listed twice",
        ),
        ({"block": [12]}, "field_selection.block[0]: must be a string"),
        (["from"], "field_selection: must be a mapping"),
    ],
)
def test_malformed_selections(tmp_path: Path, selection: Any, expected: str) -> None:
    assert expected in load_error(tmp_path, rpc_config(field_selection=selection))


def test_file_source_without_transactions_cannot_select_transaction_fields(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["field_selection"] = {"transaction": ["from"]}
    message = load_error(tmp_path, config)
    assert "chains[0].field_selection.transaction: `from` needs transactions" in message
    assert "add `transactions: <cryo transactions .parquet>`" in message


def test_file_source_without_blocks_cannot_select_block_fields(tmp_path: Path) -> None:
    config = base_config()
    contract(config)["field_selection"] = {"block": ["miner"]}
    message = load_error(tmp_path, config)
    assert "chains[0].contracts[0].field_selection.block: `miner` needs blocks" in message


def _cryo(path: Path, columns: dict[str, list[Any]]) -> None:
    pq.write_table(pa.table(columns), path)


def test_file_source_checks_the_columns_of_its_parquet_files(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    _cryo(
        project / "data" / "transactions.parquet",
        {"block_number": [1], "transaction_hash": [b"\x01" * 32], "from_address": [b"\x02" * 20]},
    )
    block: dict[str, list[Any]] = {
        "block_number": [1],
        "block_hash": [b"\x03" * 32],
        "timestamp": [7],
    }
    _cryo(project / "data" / "blocks.parquet", {**block, "parent_hash": [b"\x04" * 32]})
    config = base_config()
    config["chains"][0]["source"].update(
        blocks="data/blocks.parquet", transactions="data/transactions.parquet"
    )
    config["chains"][0]["field_selection"] = {"transaction": ["from"], "block": ["timestamp"]}
    chain = load_config(make_project(tmp_path, config), environ={}).chains[0]
    assert chain.source.transactions == project / "data" / "transactions.parquet"
    assert chain.source.blocks == project / "data" / "blocks.parquet"
    config["chains"][0]["field_selection"] = {"transaction": ["from", "status"]}
    message = load_error(tmp_path, config)
    assert "field_selection.transaction: `status` needs the column 'success'" in message
    config["chains"][0]["field_selection"] = {"block": ["miner"]}
    assert "`miner` needs the column 'author'" in load_error(tmp_path, config)
    # Every Block has a parent hash: a blocks file needs the column.
    _cryo(project / "data" / "blocks.parquet", block)
    config["chains"][0]["field_selection"] = {}
    message = load_error(tmp_path, config)
    assert "chains[0].source.blocks: " in message
    assert "lacks the column(s) parent_hash," in message


def test_blocks_key_is_for_file_sources_only(tmp_path: Path) -> None:
    config = rpc_config()
    config["chains"][0]["source"]["blocks"] = "data/blocks.parquet"
    assert "chains[0].source.blocks: only applies to a `file` source" in load_error(
        tmp_path, config
    )


def test_blocks_file_must_exist(tmp_path: Path) -> None:
    config = base_config()
    config["chains"][0]["source"]["blocks"] = "data/nope.parquet"
    assert "chains[0].source.blocks:" in load_error(tmp_path, config)


# ----------------------------------------------------------------------------- objects

TX_JSON = {
    "from": "0xAAaa000000000000000000000000000000000001",
    "to": None,
    "value": "0x10",
    "gas": "0x5208",
    "gasPrice": "0x3b9aca00",
    "input": "0xABCD",
    "nonce": "0x7",
    "transactionIndex": "0x2",
    "type": "0x0",
}
RECEIPT_JSON = {"status": "0x1", "gasUsed": "0x5000", "effectiveGasPrice": "0x3b9aca00"}
HEADER_JSON = {
    "number": "0x2a",
    "hash": "0x" + "AB" * 32,
    "parentHash": "0x" + "cd" * 32,
    "timestamp": "0x64",
    "miner": "0x" + "EF" * 20,
    "baseFeePerGas": None,
}


def test_transaction_from_rpc_converts_and_keeps_only_the_selection() -> None:
    keys = ["from", "to", "value", "input", "status", "gas_used"]
    tx = transaction_from_rpc("event.transaction@of chain 1", keys, TX_JSON, RECEIPT_JSON)
    assert (tx.from_, tx.to, tx.value, tx.input, tx.status, tx.gas_used) == (
        "0xaaaa000000000000000000000000000000000001",
        None,
        16,
        "0xabcd",
        1,
        0x5000,
    )
    with pytest.raises(
        AttributeError,
        match=r"event\.transaction\.gas_price was not selected: "
        r"add `gas_price` to field_selection\.transaction of chain 1 in indexer\.yaml",
    ):
        _ = tx.gas_price
    with pytest.raises(AttributeError, match="immutable"):
        tx.value = 3
    assert pickle.loads(pickle.dumps(tx)) == tx
    assert "from_='0xaaaa" in repr(tx)
    assert isinstance(tx, Transaction)
    assert type(tx).__module__ == "indexer"


def test_transaction_missing_a_required_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="from is missing"):
        transaction_from_rpc("x@y", ["from"], {}, None)
    with pytest.raises(ValueError, match="no receipt"):
        transaction_from_rpc("x@y", ["status"], TX_JSON, None)


def test_block_from_rpc_always_has_number_hash_parent_and_timestamp() -> None:
    block = block_from_rpc("block@of chain 1", ["miner", "base_fee_per_gas"], HEADER_JSON)
    assert (block.number, block.hash, block.parent_hash, block.timestamp) == (
        42,
        "0x" + "ab" * 32,
        "0x" + "cd" * 32,
        100,
    )
    assert block.miner == "0x" + "ef" * 20
    assert block.base_fee_per_gas is None
    with pytest.raises(AttributeError, match=r"block\.gas_limit was not selected: add `gas_limit`"):
        _ = block.gas_limit
    assert isinstance(block, Block)


def test_event_without_a_selection_names_the_key_to_add() -> None:
    event = Event(
        {}, "ERC20", "Transfer", "0x" + "a" * 40, 5, 10, 0, "0x" + "1" * 64, "0x" + "2" * 64, 99
    )
    with pytest.raises(
        AttributeError,
        match=r"event\.transaction\.from_ was not selected: add `from` to field_selection\.transaction "
        r"of chain 5 \(or of its contract ERC20\) in indexer\.yaml",
    ):
        _ = event.transaction.from_
    assert (event.block.number, event.block.hash, event.block.timestamp) == (
        10,
        "0x" + "2" * 64,
        99,
    )
    with pytest.raises(AttributeError, match=r"event\.block\.miner was not selected"):
        _ = event.block.miner
    # Built as the processing loop builds it (no keyword constructor).
    fields = (*event[:10], None, None)
    assert tuple.__new__(Event, fields).block.number == 10


# ----------------------------------------------------------------------------- @on_block


def _handlers_error(tmp_path: Path, config: dict[str, Any], body: str) -> str:
    from indexer import ConfigError, load_handlers

    project = make_project(tmp_path, config)
    (project / "handlers.py").write_text("from indexer import on_block\n\n" + body)
    with pytest.raises(ConfigError) as info:
        load_handlers(load_config(project, environ={}))
    return str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "@on_block(chain=2)\nasync def f(block, ctx): ...\n",
            "block handler f (@on_block(chain=2)): indexer.yaml has no chain 2 (chains: 1)",
        ),
        (
            "@on_block(chain=1, start=5)\nasync def f(block, ctx): ...\n",
            "start 5 is before the chain's start_block 100",
        ),
        (
            "@on_block(chain=1, every=0)\nasync def f(block, ctx): ...\n",
            "@on_block: every must be an integer >= 1, got 0",
        ),
        (
            "@on_block(chain=1, start=200, end=150)\nasync def f(block, ctx): ...\n",
            "@on_block: end 150 is before start 200",
        ),
        ("@on_block(chain=1)\ndef f(block, ctx): ...\n", "which is not `async def`"),
    ],
)
def test_bad_block_handlers(tmp_path: Path, body: str, expected: str) -> None:
    assert expected in _handlers_error(tmp_path, rpc_config(), body)


def test_block_handlers_need_an_rpc_source(tmp_path: Path) -> None:
    message = _handlers_error(
        tmp_path, base_config(), "@on_block(chain=1)\nasync def f(b, c): ...\n"
    )
    assert "block handler f (@on_block(chain=1)): chain 1's source is a file" in message


def test_block_handler_defaults_are_the_chains_range(tmp_path: Path) -> None:
    from indexer import load_handlers

    config = rpc_config(end_block=500)
    project = make_project(tmp_path, config)
    (project / "handlers.py").write_text(
        "from indexer import on_block\n\n"
        "@on_block(chain=1, every=100)\nasync def a(block, ctx): ...\n\n"
        "@on_block(chain=1, every=7, start=150, end=None)\nasync def b(block, ctx): ...\n"
    )
    handlers = load_handlers(load_config(project, environ={}))
    a, b = handlers.block_handlers[1]
    assert (a.fn.__name__, a.interval) == ("a", (100, 100, 500))
    assert (b.fn.__name__, b.interval) == ("b", (150, 7, 500))
    assert handlers.handlers == {}  # block handlers alone are a valid handlers module
    assert [n for n in range(100, 501) if b.runs_at(n)][:3] == [150, 157, 164]


def test_block_handler_defaults_follow_the_config_the_run_is_given(tmp_path: Path) -> None:
    """Handlers loaded with one config and run with another take the run's chain range."""
    from indexer import load_handlers
    from indexer.runtime import build_routes

    project = make_project(tmp_path, rpc_config(end_block=500))
    (project / "handlers.py").write_text(
        "from indexer import on_block\n\n"
        "@on_block(chain=1, every=100)\nasync def a(block, ctx): ...\n\n"
        "@on_block(chain=1, every=7, start=150, end=300)\nasync def b(block, ctx): ...\n"
    )
    handlers = load_handlers(load_config(project, environ={}))
    (project / "indexer.yaml").write_text(
        (project / "indexer.yaml").read_text().replace("end_block: 500", "end_block: 900")
    )
    (chain,) = load_config(project, environ={}).chains
    assert chain.end_block == 900
    routes = build_routes(chain, handlers.handlers, handlers.block_handlers[1])
    a, b = routes.block_handlers
    assert a.interval == (100, 100, 900)  # the defaults follow the run's chain
    assert b.interval == (150, 7, 300)  # what @on_block says stays
    assert routes.schedule.due(800, 900) == [800, 900]  # loaded with end 500: none
