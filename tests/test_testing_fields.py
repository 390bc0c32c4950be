"""The testing kit's blocks, transactions and receipts, and events built with them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from indexer.testing import LogSpec, RpcServer, ScriptedChain, make_event

TOKEN = "0x" + "11" * 20
OTHER = "0x" + "22" * 20
TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SIG = "event Transfer(address indexed from, address indexed to, uint256 value)"


def _chain() -> ScriptedChain:
    logs = {
        3: [LogSpec(TOKEN, (TRANSFER,)), LogSpec(OTHER, (TRANSFER,), "0x01")],
        5: [LogSpec(TOKEN, (TRANSFER,), "0x02")],
    }
    return ScriptedChain(1, head=8, logs=logs)


async def _call(server: RpcServer, method: str, *params: Any) -> Any:
    async with httpx.AsyncClient(transport=server.transport()) as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        reply = (await client.post("http://node/", json=body)).json()
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply["result"]


async def test_full_blocks_hold_one_transaction_per_log() -> None:
    server = RpcServer(_chain())
    logs = server.chain.logs(3, 3)
    block = await _call(server, "eth_getBlockByNumber", "0x3", True)
    assert [tx["hash"] for tx in block["transactions"]] == [lg["transactionHash"] for lg in logs]
    assert [tx["to"] for tx in block["transactions"]] == [TOKEN, OTHER]
    assert [tx["transactionIndex"] for tx in block["transactions"]] == ["0x0", "0x1"]
    assert all(tx["blockHash"] == block["hash"] for tx in block["transactions"])
    assert int(block["gasUsed"], 16) > 0
    empty = await _call(server, "eth_getBlockByNumber", "0x4", True)
    assert empty["transactions"] == []
    assert empty["gasUsed"] == "0x0"
    # The same answer twice: everything derives from the block.
    assert await _call(server, "eth_getBlockByNumber", "0x3", True) == block


async def test_receipts_by_block_and_by_hash_agree_with_the_transactions() -> None:
    server = RpcServer(_chain())
    block = await _call(server, "eth_getBlockByNumber", "0x3", True)
    receipts = await _call(server, "eth_getBlockReceipts", "0x3")
    assert [r["transactionHash"] for r in receipts] == [t["hash"] for t in block["transactions"]]
    for tx, receipt in zip(block["transactions"], receipts, strict=True):
        assert await _call(server, "eth_getTransactionReceipt", tx["hash"]) == receipt
        assert await _call(server, "eth_getTransactionByHash", tx["hash"]) == tx
        assert receipt["blockHash"] == block["hash"]
        assert receipt["from"] == tx["from"]
        assert len(receipt["logs"]) == 1
    assert int(receipts[1]["cumulativeGasUsed"], 16) == sum(int(r["gasUsed"], 16) for r in receipts)
    assert sum(int(r["gasUsed"], 16) for r in receipts) == int(block["gasUsed"], 16)
    assert await _call(server, "eth_getBlockReceipts", "0x4") == []
    assert await _call(server, "eth_getBlockReceipts", "0x9") is None


async def test_a_reorg_changes_transactions_and_forgets_the_old_ones() -> None:
    chain = _chain()
    server = RpcServer(chain)
    before = await _call(server, "eth_getBlockByNumber", "0x5", True)
    old = before["transactions"][0]
    chain.reorg(4, {5: [LogSpec(TOKEN, (TRANSFER,), "0x02")]})
    after = await _call(server, "eth_getBlockByNumber", "0x5", True)
    new = after["transactions"][0]
    assert after["hash"] != before["hash"]
    assert new["hash"] != old["hash"]
    assert (new["from"], new["value"]) != (old["from"], old["value"])
    assert await _call(server, "eth_getTransactionReceipt", old["hash"]) is None
    assert await _call(server, "eth_getTransactionByHash", old["hash"]) is None
    assert (await _call(server, "eth_getTransactionReceipt", new["hash"]))["blockHash"] == after[
        "hash"
    ]


async def test_an_unsupported_method_is_method_not_found() -> None:
    server = RpcServer(_chain())
    server.unsupported("eth_getBlockReceipts")
    with pytest.raises(RuntimeError, match="-32601"):
        await _call(server, "eth_getBlockReceipts", "0x3")
    assert await _call(server, "eth_getBlockByNumber", "0x3", False) is not None


def test_make_event_with_transaction_and_block_fields() -> None:
    event = make_event(
        SIG,
        {"from": OTHER, "to": TOKEN, "value": 5},
        contract="ERC20",
        address=TOKEN,
        block_number=7,
        block_hash="0x" + "ab" * 32,
        block_timestamp=1_000,
        transaction={"from": OTHER, "gas_used": 21_000},
        block={"base_fee_per_gas": 7},
    )
    assert event.transaction.from_ == OTHER
    assert event.transaction.gas_used == 21_000
    assert (event.block.number, event.block.hash, event.block.timestamp) == (
        7,
        "0x" + "ab" * 32,
        1_000,
    )
    assert event.block.base_fee_per_gas == 7
    with pytest.raises(
        AttributeError, match=r"add `value` to field_selection\.transaction of chain 1"
    ):
        _ = event.transaction.value
    with pytest.raises(ValueError, match="'gasUsed' is not a transaction field"):
        make_event(
            SIG,
            {"from": OTHER, "to": TOKEN, "value": 5},
            contract="ERC20",
            address=TOKEN,
            block_number=7,
            transaction={"gasUsed": 1},
        )


HARNESS_HANDLERS = """
from indexer import Block, Context, Entity, Event, on, on_block


class Seen(Entity):
    id: str
    transfers: int = 0
    blocks: str = ""


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    seen = await ctx.get(Seen, "all") or Seen(id="all")
    line = f"log@{event.block_number}:{event.transaction.from_[:8]};"
    ctx.set(seen.replace(transfers=seen.transfers + 1, blocks=seen.blocks + line))


@on_block(chain=1, every=2, start=10)
async def snapshot(block: Block, ctx: Context) -> None:
    seen = await ctx.get(Seen, "all") or Seen(id="all")
    line = f"block@{block.number}:{block.miner[:8]}:{seen.transfers};"
    ctx.set(seen.replace(blocks=seen.blocks + line))
"""


async def test_the_harness_runs_block_handlers_after_the_block_s_logs(tmp_path: Any) -> None:
    from indexer.testing import HandlerHarness, make_block

    project = tmp_path / "p"
    project.mkdir()
    (project / "handlers.py").write_text(HARNESS_HANDLERS)
    (project / "indexer.yaml").write_text(
        "name: harness-blocks\nhandlers: handlers.py\nchains:\n  - id: 1\n    start_block: 10\n"
        "    source: {rpc: 'http://127.0.0.1:1'}\n"
        "    field_selection: {transaction: [from], block: [miner]}\n"
        f"    contracts:\n      - name: Token\n        addresses: ['{TOKEN}']\n"
        f"        events: ['{SIG}']\n"
    )
    harness = HandlerHarness(project)
    module = harness.handlers

    def transfer(number: int) -> Any:
        return harness.event(
            "Token", "Transfer", {"from": OTHER, "to": TOKEN, "value": 1},
            block_number=number, transaction={"from": "0xabcdef" + "00" * 17},
        )  # fmt: skip

    miner = {"miner": "0x123456" + "00" * 17}
    # Block 12's handler runs after block 12's log; block 14 has no log.
    await harness.send(transfer(11), transfer(12), make_block(12, fields=miner))
    await harness.send(make_block(14, fields=miner), transfer(15))
    (seen,) = harness.all(module_entity(module)).values()
    assert seen.blocks == (
        "log@11:0xabcdef;log@12:0xabcdef;block@12:0x123456:2;block@14:0x123456:2;log@15:0xabcdef;"
    )
    with pytest.raises(ValueError, match="no block handler of chain 1 runs at block 17"):
        await harness.send(make_block(17, fields=miner))


def module_entity(handlers: Any) -> Any:
    """The harness's Seen class (the handlers module is loaded from the project)."""
    return next(spec.cls for spec in handlers.entities if spec.cls.__name__ == "Seen")
