"""Selected transaction and block fields, and block handlers, in whole runs against a scripted node.

The reference is the node itself: every value a handler stored is compared
with what the scripted node answers *now* (after the reorgs) for the
canonical log's transaction, receipt and block, converted here
independently of ``indexer._fields``.  Block handlers are checked against a
plain model: one run per canonical block of each interval, after the
block's log handlers, in declaration order.
"""

from __future__ import annotations

import random
import textwrap
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import trio
import trio.testing

from indexer import HandlerError, RunOptions, load_handlers
from indexer.config import load_config
from indexer.testing import LogSpec, RpcServer, ScriptedChain, read_entities, run_scripted

from ._chains import HOLDERS, TOKENS, TRANSFER, random_logs, replace_logs
from ._projects import raised

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

TX_KEYS = [
    "from", "to", "value", "gas", "gas_price", "max_fee_per_gas", "max_priority_fee_per_gas",
    "input", "nonce", "transaction_index", "type", "status", "gas_used", "effective_gas_price",
]  # fmt: skip
RECEIPT_KEYS = {"status", "gas_used", "effective_gas_price"}
RPC_KEY = {
    "from": "from", "to": "to", "value": "value", "gas": "gas", "gas_price": "gasPrice",
    "max_fee_per_gas": "maxFeePerGas", "max_priority_fee_per_gas": "maxPriorityFeePerGas",
    "input": "input", "nonce": "nonce", "transaction_index": "transactionIndex", "type": "type",
    "status": "status", "gas_used": "gasUsed", "effective_gas_price": "effectiveGasPrice",
    "miner": "miner", "base_fee_per_gas": "baseFeePerGas", "gas_limit": "gasLimit",
}  # fmt: skip
HEX_KEYS = {"from", "to", "input", "miner"}

HANDLERS = """
from indexer import Block, Context, Entity, Event, on, on_block

TX_KEYS = {tx_keys!r}


class Record(Entity):
    id: str
    block: int
    tx: str
    block_fields: str


class Snapshot(Entity):
    id: str
    hash: str
    parent_hash: str
    timestamp: int
    miner: str
    transfers: int
    order: str
    runs: int = 0


class Count(Entity):
    id: str
    transfers: int = 0


def attr(key):
    return "from_" if key == "from" else key


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    tx = event.transaction
    values = [(k, getattr(tx, attr(k))) for k in TX_KEYS]
    b = event.block
    block = [b.number, b.hash, b.timestamp, b.miner, b.base_fee_per_gas, b.gas_used, b.gas_limit]
    ctx.set(Record(f"{{event.block_number}}-{{event.log_index}}", event.block_number, repr(values), repr(block)))
    count = await ctx.get(Count, "all") or Count("all")
    ctx.set(count.replace(transfers=count.transfers + 1))


@on_block(chain=1, every={every_a}, start={start_a})
async def snapshot_a(block: Block, ctx: Context) -> None:
    count = await ctx.get(Count, "all") or Count("all")
    old = await ctx.get(Snapshot, str(block.number))
    runs = 1 if old is None else old.runs + 1
    ctx.set(Snapshot(str(block.number), block.hash, block.parent_hash, block.timestamp, block.miner,
                     count.transfers, "a", runs))


@on_block(chain=1, every={every_b})
async def snapshot_b(block: Block, ctx: Context) -> None:
    old = await ctx.get(Snapshot, str(block.number))
    if old is None:
        count = await ctx.get(Count, "all") or Count("all")
        ctx.set(Snapshot(str(block.number), block.hash, block.parent_hash, block.timestamp,
                         block.miner, count.transfers, "b", 1))
    else:
        ctx.set(old.replace(order=old.order + "b"))
"""


def make_project(tmp: Path, *, every_a: int = 3, start_a: int = 2, every_b: int = 2) -> Path:
    project = tmp / "fields"
    project.mkdir(exist_ok=True)
    (project / "handlers.py").write_text(
        HANDLERS.format(tx_keys=TX_KEYS, every_a=every_a, start_a=start_a, every_b=every_b)
    )
    (project / "indexer.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: fields
            handlers: handlers.py
            chains:
              - id: 1
                start_block: 1
                max_reorg_depth: 8
                source: {{rpc: "http://scripted.invalid/"}}
                field_selection:
                  block: [miner]
                contracts:
                  - name: Token
                    events: ["event Transfer(address indexed from, address indexed to, uint256 value)"]
                    field_selection:
                      transaction: [{", ".join(TX_KEYS)}]
                      block: [base_fee_per_gas, gas_used, gas_limit]
            """
        )
    )
    return project


async def _rpc(server: RpcServer, method: str, *params: Any) -> Any:
    async with httpx.AsyncClient(transport=server.transport()) as client:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        return (await client.post("http://node/", json=body)).json()["result"]


def _value(key: str, raw: Any) -> Any:
    if raw is None:
        return None
    return raw.lower() if key in HEX_KEYS else int(raw, 16)


async def expected_records(server: RpcServer) -> dict[str, tuple[int, str, str]]:
    """What each canonical Transfer's record must hold, from the node's own answers."""
    out = {}
    for lg in server.chain.logs(1, server.chain.head, topic0s=[TRANSFER]):
        number = int(lg["blockNumber"], 16)
        tx = await _rpc(server, "eth_getTransactionByHash", lg["transactionHash"])
        receipt = await _rpc(server, "eth_getTransactionReceipt", lg["transactionHash"])
        block = await _rpc(server, "eth_getBlockByNumber", hex(number), False)
        assert tx["blockHash"] == receipt["blockHash"] == block["hash"] == lg["blockHash"]
        values = [
            (k, _value(k, (receipt if k in RECEIPT_KEYS else tx)[RPC_KEY[k]])) for k in TX_KEYS
        ]
        fields = [
            number,
            block["hash"],
            int(block["timestamp"], 16),
            block["miner"],
            int(block["baseFeePerGas"], 16),
            int(block["gasUsed"], 16),
            int(block["gasLimit"], 16),
        ]
        out[f"{number}-{int(lg['logIndex'], 16)}"] = (number, repr(values), repr(fields))
    return out


def expected_snapshots(
    chain: ScriptedChain, *, every_a: int = 3, start_a: int = 2, every_b: int = 2
) -> dict[str, tuple[Any, ...]]:
    """The model: each handler once per canonical block at its interval, a before b."""
    out = {}
    transfers = 0
    for n in range(1, chain.head + 1):
        transfers += len(chain.logs(n, n, topic0s=[TRANSFER]))
        order = ("a" if n >= start_a and (n - start_a) % every_a == 0 else "") + (
            "b" if (n - 1) % every_b == 0 else ""
        )
        if order:
            block = chain.block(n)
            # The miner is derived from the hash (testing/_chain_data.py); read it from a header.
            out[str(n)] = (block.hash, block.parent_hash, block.timestamp, transfers, order, 1)
    return out


def stored(
    url: str, schema: str, module: ModuleType
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    records = {
        r.id: (r.block, r.tx, r.block_fields)
        for r in read_entities(url, schema, module.Record).values()
    }
    snapshots = {
        s.id: (s.hash, s.parent_hash, s.timestamp, s.transfers, s.order, s.runs)
        for s in read_entities(url, schema, module.Snapshot).values()
    }
    miners = {s.id: s.miner for s in read_entities(url, schema, module.Snapshot).values()}
    return records, snapshots, miners


async def check(
    server: RpcServer, url: str, schema: str, module: ModuleType, **intervals: int
) -> None:
    records, snapshots, miners = stored(url, schema, module)
    want_records = await expected_records(server)
    want_snapshots = expected_snapshots(server.chain, **intervals)
    assert want_records  # the scripted chains have Transfers and handler blocks
    assert want_snapshots
    assert records == want_records
    assert snapshots == want_snapshots
    for number, miner in miners.items():
        header = await _rpc(server, "eth_getBlockByNumber", hex(int(number)), False)
        assert miner == header["miner"]


def chain_of(seed: int, head: int) -> tuple[ScriptedChain, random.Random]:
    rng = random.Random(seed)
    logs = random_logs(rng, range(1, head + 1))
    # Every few blocks, two Transfers in one block from two tokens.
    return ScriptedChain(1, head=head, logs=logs), rng


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


@pytest.fixture
def module(project: Path) -> ModuleType:
    return load_handlers(load_config(project)).module


async def test_fields_and_block_handlers_across_reorgs_and_restarts(
    project: Path, module: ModuleType, database_url: str, schema: str
) -> None:
    chain, rng = chain_of(21, head=30)
    server = RpcServer(chain)
    await run_scripted(project, server, database_url=database_url, schema=schema, handlers=module)
    await check(server, database_url, schema, module)
    # A reorg below the tip, then more blocks: rolled back and redone exactly once.
    chain.reorg(5, replace_logs(rng, chain, 5))
    chain.advance(4, random_logs(rng, range(31, 35)))
    second = await run_scripted(
        project, server, database_url=database_url, schema=schema, handlers=module
    )
    assert [(c, b) for c, b, _r, _s in second.rollbacks] == [(1, 25)]
    await check(server, database_url, schema, module)
    # A restart with nothing new runs no block handler again.
    await run_scripted(project, server, database_url=database_url, schema=schema, handlers=module)
    await check(server, database_url, schema, module)


async def test_receipts_per_transaction_when_the_node_lacks_block_receipts(
    project: Path, module: ModuleType, database_url: str, schema: str
) -> None:
    chain, _rng = chain_of(22, head=25)
    server = RpcServer(chain)
    server.unsupported("eth_getBlockReceipts")
    await run_scripted(project, server, database_url=database_url, schema=schema, handlers=module)
    await check(server, database_url, schema, module)
    assert server.calls["eth_getTransactionReceipt"] > 0


async def test_far_ranges_fetch_only_blocks_with_logs_and_handler_blocks(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """Far from the head (no window headers): bodies of log blocks, headers of handler blocks."""
    project = make_project(tmp_path, every_a=50, start_a=1, every_b=1000)
    module = load_handlers(load_config(project)).module
    logs = {10: [LogSpec(TOKENS[0], (TRANSFER, "0x" + HOLDERS[0][2:].rjust(64, "0"),
                                     "0x" + HOLDERS[1][2:].rjust(64, "0")), f"0x{5:064x}")]}  # fmt: skip
    chain = ScriptedChain(1, head=400, logs=logs)
    server = RpcServer(chain)
    await run_scripted(
        project,
        server,
        database_url=database_url,
        schema=schema,
        handlers=module,
        max_reorg_depth=2,
    )
    await check(server, database_url, schema, module, every_a=50, start_a=1, every_b=1000)
    # Block 10's body and receipts; headers for blocks 1, 51, ..., 351 and the range checks.
    assert server.calls["eth_getBlockReceipts"] == 1
    assert server.calls["eth_getBlockByNumber"] < 60


async def test_a_reorg_between_logs_and_bodies_never_mixes_forks(
    autojump_clock: trio.testing.MockClock,
    project: Path,
    module: ModuleType,
    database_url: str,
    schema: str,
) -> None:
    """The chain reorganises while ranges are fetched: every stored value is of the canonical fork."""
    chain, rng = chain_of(23, head=12)
    server = RpcServer(chain)
    server.latency("eth_getBlockReceipts", 5.0)

    def new_logs(number: int) -> list[LogSpec]:
        return random_logs(rng, [number])[number]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: run_scripted(
                project,
                server,
                database_url=database_url,
                schema=schema,
                handlers=module,
                end_block=40,
                poll_interval=2.0,
                options=RunOptions(write_interval=0.0),
            )
        )
        # A reorg every few blocks, some landing while receipts are in flight.
        await server.produce_blocks(
            interval=3.0, until=40, logs=new_logs, reorgs={16: 2, 21: 3, 27: 1, 33: 4}
        )
    await check(server, database_url, schema, module)


async def test_a_failing_block_handler_names_the_block(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    project = make_project(tmp_path)
    text = (project / "handlers.py").read_text()
    text += (
        "\n\n@on_block(chain=1, every=7)\nasync def boom(block, ctx):\n    raise ValueError('no')\n"
    )
    (project / "handlers.py").write_text(text)
    module = load_handlers(load_config(project)).module
    chain, _rng = chain_of(24, head=10)
    with raised(HandlerError, match=r"block handler boom .* failed at chain 1 block 1: ValueError"):
        await run_scripted(
            project, chain, database_url=database_url, schema=schema, handlers=module
        )
