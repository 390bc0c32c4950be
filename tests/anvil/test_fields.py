"""Every selected transaction and block field, and a block handler, against anvil's own answers.

``indexer run`` follows anvil with every transaction key and every block
key selected; its log handler stores each Transfer's fields in an entity,
and a block handler every ``EVERY`` blocks stores the block's fields.  The
oracle is the node: for each canonical Transfer, the stored values must
equal ``eth_getTransactionByHash``, ``eth_getTransactionReceipt`` and
``eth_getBlockByNumber``, converted here independently of
``indexer._fields``; the block handler's rows must be exactly one per
canonical block at the interval, run once each.  Transactions are of
three types (legacy, EIP-2930, EIP-1559), so the fields that are None on
some types are None on the right ones.

Checked before and after each of two reorgs (``anvil_reorg`` at the same
height, and a revert to an older block with a longer branch on top): nothing
of the orphaned blocks (hash, transaction) remains.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from indexer import load_config, load_handlers
from indexer.store import entity_spec
from indexer.testing import read_entities

from ._indexer import IndexerCli, wait_caught_up
from ._node import artifact, revert, snapshot, token_state

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import ModuleType

    from ._indexer import Followed
    from ._node import Anvil, Traffic

pytestmark = pytest.mark.anvil

EVERY, START = 3, 2
# Selectable key -> (JSON-RPC key, kind): "hex" lower-cased, "int" a quantity.
TX_KEYS = {
    "from": ("from", "hex"), "to": ("to", "hex"), "value": ("value", "int"),
    "gas": ("gas", "int"), "gas_price": ("gasPrice", "int"),
    "max_fee_per_gas": ("maxFeePerGas", "int"),
    "max_priority_fee_per_gas": ("maxPriorityFeePerGas", "int"),
    "input": ("input", "hex"), "nonce": ("nonce", "int"),
    "transaction_index": ("transactionIndex", "int"), "type": ("type", "int"),
}  # fmt: skip
RECEIPT_KEYS = {
    "status": ("status", "int"), "gas_used": ("gasUsed", "int"),
    "effective_gas_price": ("effectiveGasPrice", "int"),
}  # fmt: skip
BLOCK_KEYS = {
    "timestamp": ("timestamp", "int"), "parent_hash": ("parentHash", "hex"),
    "miner": ("miner", "hex"), "gas_used": ("gasUsed", "int"), "gas_limit": ("gasLimit", "int"),
    "base_fee_per_gas": ("baseFeePerGas", "int"), "difficulty": ("difficulty", "int"),
    "size": ("size", "int"), "extra_data": ("extraData", "hex"),
    "state_root": ("stateRoot", "hex"), "transactions_root": ("transactionsRoot", "hex"),
    "receipts_root": ("receiptsRoot", "hex"), "logs_bloom": ("logsBloom", "hex"),
    "blob_gas_used": ("blobGasUsed", "int"), "excess_blob_gas": ("excessBlobGas", "int"),
}  # fmt: skip
ALL_TX = {**TX_KEYS, **RECEIPT_KEYS}


def _column(prefix: str, key: str, kind: str) -> str:
    return f"    {prefix}_{key}: {'int' if kind == 'int' else 'str'} | None\n"


HANDLERS = (
    "from indexer import Block, Context, Entity, Event, on, on_block\n\n"
    f"TX = {list(ALL_TX)!r}\nBLOCK = {list(BLOCK_KEYS)!r}\n\n\n"
    "class Transfer(Entity):  # one per canonical Transfer log\n"
    "    id: str  # '<tx hash>-<log index>'\n"
    "    block_number: int\n    block_hash: str\n"
    + "".join(_column("tx", k, kind) for k, (_r, kind) in ALL_TX.items())
    + "".join(_column("block", k, kind) for k, (_r, kind) in BLOCK_KEYS.items())
    + "\n\nclass Snapshot(Entity):  # one per block handler run\n"
    "    id: str  # the block number\n    hash: str\n    transfers: int\n    runs: int\n"
    + "".join(_column("block", k, kind) for k, (_r, kind) in BLOCK_KEYS.items())
    + """

class Count(Entity):
    id: str
    transfers: int = 0


def attr(key):
    return "from_" if key == "from" else key


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    tx, block = event.transaction, event.block
    ctx.set(Transfer(
        id=f"{event.transaction_hash}-{event.log_index}",
        block_number=event.block_number,
        block_hash=event.block_hash,
        **{f"tx_{k}": getattr(tx, attr(k)) for k in TX},
        **{f"block_{k}": getattr(block, k) for k in BLOCK},
    ))
    count = await ctx.get(Count, "all") or Count(id="all")
    ctx.set(count.replace(transfers=count.transfers + 1))


@on_block(chain=CHAIN, every=EVERY, start=START)
async def snapshot(block: Block, ctx: Context) -> None:
    count = await ctx.get(Count, "all") or Count(id="all")
    old = await ctx.get(Snapshot, str(block.number))
    ctx.set(Snapshot(
        id=str(block.number),
        hash=block.hash,
        transfers=count.transfers,
        runs=1 if old is None else old.runs + 1,
        **{f"block_{k}": getattr(block, k) for k in BLOCK},
    ))
"""
)


def write_fields_project(directory: Path, schema: str, chain: Followed) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    source = HANDLERS.replace("CHAIN", str(chain.chain_id))
    source = source.replace("EVERY", str(EVERY)).replace("START", str(START))
    (directory / "handlers.py").write_text(source)
    (directory / "TestToken.abi.json").write_text(json.dumps(artifact()["abi"], indent=1))
    (directory / "indexer.yaml").write_text(
        f"name: anvil-fields\nhandlers: handlers.py\nschema: {schema}\nchains:\n"
        f"  - id: {chain.chain_id}\n    start_block: 0\n    max_reorg_depth: 6\n"
        f"    source: {{rpc: '{chain.node.url}', poll_interval: 0.05}}\n"
        f"    field_selection:\n      block: [{', '.join(BLOCK_KEYS)}]\n"
        f"    contracts:\n      - name: Token\n        addresses: ['{chain.token}']\n"
        f"        abi: TestToken.abi.json\n        events: [Transfer]\n"
        f"        field_selection:\n          transaction: [{', '.join(ALL_TX)}]\n"
    )
    return directory


def mine(traffic: Traffic, blocks: int, per_block: int = 6) -> None:
    """Blocks of Transfers whose transactions are legacy, EIP-2930 and EIP-1559 in turn."""
    node = traffic.node
    for _ in range(blocks):
        first = node.head() + 1
        state = token_state(node, traffic.token, first - 1)
        spendable = {s: state.balances.get(s, 0) for s in traffic.senders}
        txs = traffic.plan(spendable, traffic.rng.randint(1, per_block))
        for i, tx in enumerate(txs):
            price = hex(int(node.rpc("eth_gasPrice"), 16) * 2)
            if i % 3 == 0:
                tx = {**tx, "gasPrice": price}
            elif i % 3 == 1:
                tx = {**tx, "gasPrice": price, "accessList": []}
            node.send(tx)
        node.mine()
        traffic.check_logs(first, first, len(txs))


def _convert(raw: Any, kind: str) -> Any:
    if raw is None:
        return None
    return str(raw).lower() if kind == "hex" else int(raw, 16)


def expected(node: Anvil, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Transfer rows, Snapshot rows) by id, from the node's own answers."""
    head = node.head()
    logs = node.transfer_logs(token, 0, head)
    hashes = sorted({lg["transactionHash"] for lg in logs})
    txs = node.batch([("eth_getTransactionByHash", [h]) for h in hashes])
    receipts = node.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    blocks = node.batch([("eth_getBlockByNumber", [hex(n), False]) for n in range(head + 1)])
    by_tx = {h: (t, r) for h, t, r in zip(hashes, txs, receipts, strict=True)}

    def block_values(block: dict[str, Any]) -> dict[str, Any]:
        return {f"block_{k}": _convert(block.get(r), kind) for k, (r, kind) in BLOCK_KEYS.items()}

    transfers: dict[str, Any] = {}
    for lg in logs:
        tx, receipt = by_tx[lg["transactionHash"]]
        number = int(lg["blockNumber"], 16)
        block = blocks[number]
        assert tx["blockHash"] == receipt["blockHash"] == block["hash"] == lg["blockHash"]
        transfers[f"{lg['transactionHash']}-{int(lg['logIndex'], 16)}"] = {
            "block_number": number,
            "block_hash": block["hash"],
            **{f"tx_{k}": _convert(tx.get(r), kind) for k, (r, kind) in TX_KEYS.items()},
            **{f"tx_{k}": _convert(receipt.get(r), kind) for k, (r, kind) in RECEIPT_KEYS.items()},
            **block_values(block),
        }
    snapshots: dict[str, Any] = {}
    for n in range(START, head + 1, EVERY):
        so_far = sum(1 for lg in logs if int(lg["blockNumber"], 16) <= n)
        snapshots[str(n)] = {
            "hash": blocks[n]["hash"],
            "transfers": so_far,
            "runs": 1,
            **block_values(blocks[n]),
        }
    return transfers, snapshots


def rows(url: str, schema: str, entity: type[Any]) -> dict[str, dict[str, Any]]:
    """The entity's stored rows by id, as field -> value (without the id)."""
    fields = [f for f in entity_spec(entity).fields if f.name != "id"]
    return {
        key: {f.name: row[f.position] for f in fields}
        for key, row in read_entities(url, schema, entity).items()
    }


def check_fields(url: str, schema: str, module: ModuleType, chain: Followed) -> set[str]:
    """The stored rows equal the node's answers; the block hashes stored (for the orphan check)."""
    want_transfers, want_snapshots = expected(chain.node, chain.token)
    got_transfers = rows(url, schema, module.Transfer)
    got_snapshots = rows(url, schema, module.Snapshot)
    assert got_transfers.keys() == want_transfers.keys()
    for key, want in want_transfers.items():
        assert got_transfers[key] == want, key
    assert got_snapshots == want_snapshots
    return {r["block_hash"] for r in got_transfers.values()} | {
        r["hash"] for r in got_snapshots.values()
    }


def test_every_field_and_a_block_handler_match_anvil_across_reorgs(
    token_chain: Callable[[int, int], tuple[Followed, Traffic]],
    tmp_path: Path,
    database_url: str,
    schema: str,
) -> None:
    chain, traffic = token_chain(31337, 23)
    node = chain.node
    project = write_fields_project(tmp_path / "project", schema, chain)
    module = load_handlers(load_config(project)).module
    mine(traffic, 12)  # far from the head (bodies fetched) and in the window
    cli = IndexerCli(project, database_url, tmp_path, [node])
    cli.start()

    def settle() -> set[str]:
        wait_caught_up(database_url, schema, [chain], cli)
        return check_fields(database_url, schema, module, chain)

    try:
        stored = settle()
        mine(traffic, 4)
        stored = settle()
        # 1. anvil_reorg: the last 4 blocks replaced at the same height.
        orphaned = {node.block_hash(n) for n in range(node.head() - 3, node.head() + 1)}
        assert orphaned <= stored
        traffic.reorg(4)
        stored = settle()
        assert not orphaned & stored
        # 2. Back 5 blocks (after the indexer committed them), then 7 new ones.
        mark = snapshot(node)
        mine(traffic, 5)
        stored = settle()
        orphaned = {node.block_hash(n) for n in range(node.head() - 4, node.head() + 1)}
        assert orphaned <= stored
        revert(node, mark)
        mine(traffic, 7)
        stored = settle()
        assert not orphaned & stored
        assert cli.stop() == 0, cli.tail()
    finally:
        cli.kill()
    assert len(cli.rollbacks()) == 2, cli.rollbacks()
    assert "Traceback" not in cli.all_stderr()
    types = {row["tx_type"] for row in rows(database_url, schema, module.Transfer).values()}
    assert types == {0, 1, 2}
