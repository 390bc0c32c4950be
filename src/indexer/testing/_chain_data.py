"""What a scripted block holds besides its logs: header fields, transactions, receipts.

Every value derives from the block's hash, so it is the same on every call
and changes when a reorg replaces the block.  Each log is its own
transaction (see :meth:`ScriptedChain.logs`): transaction ``i`` of a block
emitted log ``i``, from a sender derived from its hash, to the log's
address.  The transaction hash ends with its position (4 bytes) and its
block number (8 bytes), so a hash is looked up without an index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eth_hash.auto import keccak

if TYPE_CHECKING:
    from ._chain import Block

__all__ = [
    "block_json",
    "locate_transaction",
    "receipt_json",
    "transaction_hash",
    "transaction_json",
]

_GAS_LIMIT = 30_000_000
_EMPTY_ROOT = "0x56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421"


def _word(seed: str, label: str) -> int:
    """A deterministic 256-bit number from a hash and a label."""
    return int.from_bytes(keccak(bytes.fromhex(seed[2:]) + label.encode()), "big")


def transaction_hash(block_hash: str, number: int, position: int) -> str:
    """The hash of transaction ``position`` of block ``number`` (with hash ``block_hash``)."""
    digest = bytes(keccak(bytes.fromhex(block_hash[2:]) + position.to_bytes(4, "big")))
    return (
        "0x"
        + digest[:20].hex()
        + position.to_bytes(4, "big").hex()
        + number.to_bytes(8, "big").hex()
    )


def locate_transaction(tx_hash: str) -> tuple[int, int]:
    """The (block number, position) a :func:`transaction_hash` encodes."""
    return int(tx_hash[-16:], 16), int(tx_hash[-24:-16], 16)


def _base_fee(block: Block) -> int:
    return 1_000_000_000 + _word(block.hash, "base_fee") % 50_000_000_000


def transaction_json(block: Block, position: int) -> dict[str, Any]:
    """Transaction ``position`` of ``block`` as ``eth_getTransactionByHash`` answers it."""
    tx_hash = transaction_hash(block.hash, block.number, position)
    base_fee = _base_fee(block)
    tip = 1 + _word(tx_hash, "tip") % 3_000_000_000
    sender = "0x" + bytes(keccak(bytes.fromhex(tx_hash[2:]) + b"from"))[:20].hex()
    data = bytes(keccak(bytes.fromhex(tx_hash[2:]) + b"input"))[: 4 + position % 5 * 4]
    return {
        "hash": tx_hash,
        "blockHash": block.hash,
        "blockNumber": hex(block.number),
        "transactionIndex": hex(position),
        "from": sender,
        "to": block.logs[position].address,
        "value": hex(_word(tx_hash, "value") % 10**21),
        "gas": hex(100_000 + position * 1_000),
        "gasPrice": hex(base_fee + tip),
        "maxFeePerGas": hex(2 * base_fee + tip),
        "maxPriorityFeePerGas": hex(tip),
        "input": "0x" + data.hex(),
        "nonce": hex(_word(tx_hash, "nonce") % 1_000),
        "type": "0x2",
        "chainId": "0x1",
        "v": "0x0",
        "r": "0x" + bytes(keccak(bytes.fromhex(tx_hash[2:]) + b"r")).hex(),
        "s": "0x" + bytes(keccak(bytes.fromhex(tx_hash[2:]) + b"s")).hex(),
    }


def _gas_used(tx_hash: str, position: int) -> int:
    return 21_000 + _word(tx_hash, "gas_used") % (79_000 + position * 1_000)


def receipt_json(block: Block, position: int, logs: list[dict[str, Any]]) -> dict[str, Any]:
    """The receipt of transaction ``position`` of ``block``; ``logs`` are the block's log objects."""
    tx = transaction_json(block, position)
    tx_hash = tx["hash"]
    cumulative = sum(
        _gas_used(transaction_hash(block.hash, block.number, i), i) for i in range(position + 1)
    )
    return {
        "transactionHash": tx_hash,
        "transactionIndex": hex(position),
        "blockHash": block.hash,
        "blockNumber": hex(block.number),
        "from": tx["from"],
        "to": tx["to"],
        "contractAddress": None,
        "cumulativeGasUsed": hex(cumulative),
        "gasUsed": hex(_gas_used(tx_hash, position)),
        "effectiveGasPrice": tx["gasPrice"],
        # One transaction in seven failed (its log then would not exist on a
        # real chain; the scripted chain keeps it, for a status of 0 to read).
        "status": "0x0" if _word(tx_hash, "status") % 7 == 0 else "0x1",
        "type": tx["type"],
        "logs": [lg for lg in logs if lg["transactionIndex"] == hex(position)],
        "logsBloom": "0x" + "00" * 256,
    }


def block_json(block: Block, full: bool) -> dict[str, Any]:
    """``block`` as ``eth_getBlockByNumber`` answers it (``full``: transaction objects)."""
    count = len(block.logs)
    gas_used = sum(
        _gas_used(transaction_hash(block.hash, block.number, i), i) for i in range(count)
    )
    transactions: list[Any] = [
        transaction_json(block, i) if full else transaction_hash(block.hash, block.number, i)
        for i in range(count)
    ]
    return {
        "number": hex(block.number),
        "hash": block.hash,
        "parentHash": block.parent_hash,
        "timestamp": hex(block.timestamp),
        "miner": "0x" + bytes(keccak(bytes.fromhex(block.hash[2:]) + b"miner"))[:20].hex(),
        "gasUsed": hex(gas_used),
        "gasLimit": hex(_GAS_LIMIT),
        "baseFeePerGas": hex(_base_fee(block)),
        "difficulty": "0x0",
        "size": hex(600 + 150 * count),
        "extraData": "0x" + block.number.to_bytes(8, "big").hex(),
        "stateRoot": "0x" + bytes(keccak(bytes.fromhex(block.hash[2:]) + b"state")).hex(),
        "transactionsRoot": _EMPTY_ROOT
        if not count
        else "0x" + bytes(keccak(bytes.fromhex(block.hash[2:]) + b"txs")).hex(),
        "receiptsRoot": _EMPTY_ROOT
        if not count
        else "0x" + bytes(keccak(bytes.fromhex(block.hash[2:]) + b"receipts")).hex(),
        "logsBloom": "0x" + "00" * 256,
        "transactions": transactions,
    }
