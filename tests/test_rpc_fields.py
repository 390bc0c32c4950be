"""``FieldFetcher``: answers of another fork are refused even when they hold the same transactions.

On a real chain a reorg re-includes a transaction (same hash) in a block
with another hash; only the block hash then tells the answers apart.
"""

from __future__ import annotations

from typing import Any

from indexer._fields import FieldSelection
from indexer.abi import parse_event_signature
from indexer.sources import BlockSchedule, DecodeRoute
from indexer.sources._rpc_fields import FieldFetcher

from .test_field_selection import RECEIPT_JSON, TX_JSON

SPEC = parse_event_signature(
    "event Transfer(address indexed from, address indexed to, uint256 value)"
)
CANONICAL = "0x" + "aa" * 32
ORPHAN = "0x" + "bb" * 32
TX = "0x" + "11" * 32
LOG = {"blockNumber": "0x5", "blockHash": CANONICAL, "transactionHash": TX, "logIndex": "0x0"}


class FakeNode:
    """Answers as a node that moved to another fork after serving the logs."""

    def __init__(self, block_hash: str, *, by_block: bool = True) -> None:
        self.block_hash = block_hash
        self.by_block = by_block
        self.calls: list[str] = []

    def _block(self, number: int, full: bool) -> dict[str, Any]:
        tx = {**TX_JSON, "hash": TX, "blockHash": self.block_hash}
        return {
            "number": hex(number),
            "hash": self.block_hash,
            "parentHash": "0x" + "cc" * 32,
            "timestamp": "0x10",
            "miner": "0x" + "dd" * 20,
            "transactions": [tx if full else TX],
        }

    async def get_blocks(self, numbers: list[int], *, full: bool = False) -> list[Any]:
        self.calls.append(f"blocks full={full}")
        return [self._block(n, full) for n in numbers]

    async def get_block_receipts(self, numbers: list[int]) -> list[Any]:
        self.calls.append("block receipts")
        receipt = {**RECEIPT_JSON, "transactionHash": TX, "blockHash": self.block_hash}
        return [[receipt] for _ in numbers]


def fetcher(selection: FieldSelection, schedule: BlockSchedule | None = None) -> FieldFetcher:
    route = DecodeRoute("Token", SPEC, None, selection)
    return FieldFetcher(1, [route], frozenset(), schedule or BlockSchedule())


async def test_a_body_of_another_fork_with_the_same_transaction_is_refused() -> None:
    f = fetcher(FieldSelection(frozenset({"from"})))
    assert await f.fetch(FakeNode(ORPHAN), 5, 5, [LOG], None) is None  # type: ignore[arg-type]
    fetched = await f.fetch(FakeNode(CANONICAL), 5, 5, [LOG], None)  # type: ignore[arg-type]
    assert fetched is not None
    assert fetched.attach is not None
    tx, block = fetched.attach(0, (5, 0, TX))
    assert tx is not None
    assert tx.from_ == str(TX_JSON["from"]).lower()
    assert block is None


async def test_receipts_of_another_fork_are_refused() -> None:
    f = fetcher(FieldSelection(frozenset({"status"})))
    node = FakeNode(ORPHAN)
    assert await f.fetch(node, 5, 5, [LOG], None) is None  # type: ignore[arg-type]
    assert node.calls == ["block receipts"]  # no bodies: nothing of the body is selected


async def test_block_fields_in_the_window_come_from_the_checked_headers() -> None:
    f = fetcher(FieldSelection(block=frozenset({"miner"})))
    node = FakeNode(ORPHAN)
    header = {**node._block(5, False), "hash": CANONICAL}
    fetched = await f.fetch(node, 5, 5, [LOG], {5: header})  # type: ignore[arg-type]
    assert fetched is not None
    assert node.calls == []
    assert fetched.attach is not None
    _tx, block = fetched.attach(0, (5, 0, TX))
    assert block is not None
    assert (block.hash, block.miner) == (CANONICAL, "0x" + "dd" * 20)


async def test_handler_blocks_far_from_the_head_are_fetched_as_headers() -> None:
    f = fetcher(FieldSelection(), BlockSchedule(((0, 4, None),)))
    node = FakeNode(CANONICAL)
    fetched = await f.fetch(node, 1, 9, [], None)  # type: ignore[arg-type]
    assert fetched is not None
    assert fetched.attach is None
    assert sorted(fetched.blocks) == [4, 8]
    assert node.calls == ["blocks full=False"]


def test_schedule_due_blocks() -> None:
    schedule = BlockSchedule(((3, 5, 20), (10, 4, None)))
    assert schedule.due(0, 30) == [3, 8, 10, 13, 14, 18, 22, 26, 30]
    assert schedule.due(21, 21) == []
    assert BlockSchedule().due(0, 100) == []
