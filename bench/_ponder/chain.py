"""The chain both indexers read: the workload's ERC20 Transfers on ``indexer.testing``'s scripted chain.

The ERC20-shaped Transfers of the erc20-balances workload file (``bench/workloads.py``:
the real mainnet sample replayed) are put on a :class:`indexer.testing.ScriptedChain` at
their block numbers, so hashes, parent hashes and timestamps are the scripted chain's, and
each log is its own transaction (the chain's convention).  The ERC721-shaped Transfers
are left out here, not skipped by the handlers: Ponder, given explicit addresses, would
have to decode them, and each side should see exactly the same events.

Everything a node answers is rendered once, here, as JSON bytes: a local node that spends
more time per log than the clients would measure the node, not the indexers.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from floor import read_logs
from workloads import TRANSFER, is_erc20_transfer

from indexer.testing import ScriptedChain

if TYPE_CHECKING:
    from collections.abc import Iterable

# The node's head lies this far above the last block with data: Ponder treats mainnet
# blocks as final 65 below the head, and the whole range should be final (no live sync).
HEAD_MARGIN = 100
ZERO_BLOOM = "0x" + "00" * 256
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass
class ChainData:
    """A scripted chain and its logs, rendered: what the node serves."""

    chain: ScriptedChain
    first_block: int
    last_block: int
    # Every log in chain order: block numbers, topic0s and rendered JSON objects.
    log_blocks: list[int] = field(default_factory=list)
    log_topic0: list[str] = field(default_factory=list)
    log_json: list[bytes] = field(default_factory=list)
    # address -> the positions of its logs in the lists above (ascending).
    by_address: dict[str, list[int]] = field(default_factory=dict)
    # address -> the block numbers of those logs (for bisecting a range).
    address_blocks: dict[str, list[int]] = field(default_factory=dict)
    # block number -> its transactions, rendered (blocks with logs only).
    transactions: dict[int, list[bytes]] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return len(self.log_json)

    def logs_in(self, first: int, last: int, addresses: Iterable[str] | None) -> list[int]:
        """Positions of the logs of blocks ``first..last`` from ``addresses`` (None: any), in order."""
        if addresses is None:
            lo = bisect.bisect_left(self.log_blocks, first)
            return list(range(lo, bisect.bisect_right(self.log_blocks, last, lo)))
        out: list[int] = []
        for address in addresses:
            blocks = self.address_blocks.get(address)
            if blocks:
                lo = bisect.bisect_left(blocks, first)
                out += self.by_address[address][lo : bisect.bisect_right(blocks, last, lo)]
        out.sort()
        return out

    def max_logs_in_window(self, blocks: int) -> int:
        """The most logs any ``blocks`` consecutive blocks hold."""
        most = lo = 0
        for hi, number in enumerate(self.log_blocks):
            while self.log_blocks[lo] <= number - blocks:
                lo += 1
            most = max(most, hi - lo + 1)
        return most

    def block_range_within(self, limit: int) -> int:
        """The largest block range whose every window holds at most ``limit`` logs (at least 1)."""
        lo, hi = 1, max(1, self.last_block - self.first_block + 1)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.max_logs_in_window(mid) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def block_json(self, number: int, full: bool) -> bytes | None:
        """``eth_getBlockByNumber``'s answer for ``number`` (None above the head), rendered."""
        if not 0 <= number <= self.chain.head:
            return None
        block = self.chain.block(number)
        txs = self.transactions.get(number, [])
        if full:
            rendered = b"[" + b",".join(txs) + b"]"
        else:
            hashes = [orjson.loads(tx)["hash"] for tx in txs]
            rendered = orjson.dumps(hashes)
        head = orjson.dumps(
            {
                "number": hex(number),
                "hash": block.hash,
                "parentHash": block.parent_hash,
                "timestamp": hex(block.timestamp),
                "logsBloom": ZERO_BLOOM,
                "miner": ZERO_ADDRESS,
                "gasLimit": "0x1c9c380",
                "gasUsed": "0x0",
                "baseFeePerGas": "0x7",
                "extraData": "0x",
                "nonce": "0x0000000000000000",
                "difficulty": "0x0",
                "totalDifficulty": "0x0",
                "size": "0x220",
                "sha3Uncles": "0x" + "00" * 32,
                "stateRoot": "0x" + "00" * 32,
                "transactionsRoot": "0x" + "00" * 32,
                "receiptsRoot": "0x" + "00" * 32,
                "mixHash": "0x" + "00" * 32,
                "uncles": [],
            }
        )
        return head[:-1] + b',"transactions":' + rendered + b"}"


def _transaction(log: dict[str, Any]) -> dict[str, Any]:
    """A legacy transaction that emitted ``log``: from its sender to the token, no input."""
    return {
        "hash": log["transactionHash"],
        "blockHash": log["blockHash"],
        "blockNumber": log["blockNumber"],
        "transactionIndex": log["transactionIndex"],
        "from": "0x" + log["topics"][1][26:],
        "to": log["address"],
        "input": "0x",
        "value": "0x0",
        "nonce": "0x0",
        "gas": "0x5208",
        "gasPrice": "0x7",
        "type": "0x0",
        "chainId": "0x1",
        "v": "0x25",
        "r": "0x1",
        "s": "0x1",
    }


def build(workload_path: str, *, max_logs_per_query: int) -> ChainData:
    """The chain of a workload file's ERC20 Transfers, with everything a node answers rendered."""
    source = [log for log in read_logs(workload_path) if is_erc20_transfer(log)]
    if not source:
        raise ValueError(f"{workload_path}: no ERC20 Transfers")
    first = int(source[0]["blockNumber"], 16)
    last = int(source[-1]["blockNumber"], 16)
    chain = ScriptedChain.from_logs(
        1, source, head=last + HEAD_MARGIN, max_logs_per_query=max_logs_per_query
    )
    del source
    data = ChainData(chain=chain, first_block=first, last_block=last)
    seen_tx: set[str] = set()
    # A slice of blocks at a time: the whole range's log dicts at once would take gigabytes.
    slices = ((lo, min(lo + 99, last)) for lo in range(first, last + 1, 100))
    for log in itertools.chain.from_iterable(chain.logs(lo, hi) for lo, hi in slices):
        number = int(log["blockNumber"], 16)
        address = log["address"]
        position = len(data.log_json)
        data.log_blocks.append(number)
        data.log_topic0.append(log["topics"][0])
        data.log_json.append(orjson.dumps(log))
        data.by_address.setdefault(address, []).append(position)
        data.address_blocks.setdefault(address, []).append(number)
        # The scripted chain gives each log a transaction of its own; should it ever share
        # one among logs, the block must still list it once.
        if log["transactionHash"] not in seen_tx:
            seen_tx.add(log["transactionHash"])
            data.transactions.setdefault(number, []).append(orjson.dumps(_transaction(log)))
    data.tokens = sorted(data.by_address)
    assert all(t == TRANSFER for t in data.log_topic0)
    return data
