"""The scripted chain model: blocks, hashes, logs and reorgs, with no I/O and no Trio.

Only blocks that hold logs are stored: a chain made from a mainnet log
file has a head above 18 million, and every other block is derived on demand.

A block's hash is keccak over the chain id, the number, the block's
*generation* (how many reorgs the chain had seen when the block was made)
and a digest of its logs.  So a replacement block never gets the hash of
a block it replaced, even with the same logs.  The parent hash is left out,
else each hash would depend on every block below it; generations never
decrease with height, so a reorg still changes every hash above the fork.
The last 8 bytes of a hash hold the block number, so a hash is looked up
without an index.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypedDict

from eth_hash.auto import keccak

from ._chain_data import transaction_hash

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Sequence
    from os import PathLike
    from typing import Unpack

    from ..sources import LogFilter

__all__ = ["ZERO_HASH", "Block", "LogSpec", "ScriptedChain"]

ZERO_HASH = "0x" + "00" * 32
"""The parent hash of block 0."""

_HEX_DIGITS = frozenset("0123456789abcdef")


def _hex(value: object, digits: int | None, what: str) -> str:
    """``value`` as lowercase ``0x`` hex of ``digits`` digits (None: any even count), or raise."""
    text = value.lower() if isinstance(value, str) else ""
    size_ok = len(text) == digits + 2 if digits is not None else len(text) % 2 == 0
    if text.startswith("0x") and size_ok and _HEX_DIGITS.issuperset(text[2:]):
        return text
    size = f"{digits} hex digits" if digits is not None else "an even number of hex digits"
    raise ValueError(f"{what} {value!r} is not 0x followed by {size}")


@dataclass(frozen=True, slots=True)
class LogSpec:
    """One log as a test author writes it.

    Hex is lowercased; a malformed field raises ``ValueError``.

    Attributes:
        address: The emitting contract, ``0x`` + 40 hex digits.
        topics: Up to four topics, each ``0x`` + 64 hex digits.
        data: The non-indexed data, ``0x`` + an even number of hex digits.
    """

    address: str
    topics: tuple[str, ...]
    data: str = "0x"

    def __post_init__(self) -> None:
        if isinstance(self.topics, str):
            raise TypeError("topics must be a sequence of hex strings, not one string")
        topics = tuple(_hex(t, 64, "topic") for t in self.topics)
        if len(topics) > 4:
            raise ValueError(f"a log has at most 4 topics, got {len(topics)}")
        # The dataclass is frozen; normalising here keeps equality and hashing on lowercase hex.
        object.__setattr__(self, "address", _hex(self.address, 40, "address"))
        object.__setattr__(self, "topics", topics)
        object.__setattr__(self, "data", _hex(self.data, None, "data"))


@dataclass(frozen=True, slots=True)
class Block:
    """One canonical block of a :class:`ScriptedChain`, as it is now.

    Attributes:
        number: The block number.
        hash: ``0x`` + 64 hex digits.
        parent_hash: The hash of block ``number - 1`` (:data:`ZERO_HASH` for block 0).
        timestamp: ``genesis_timestamp + number * block_time``.
        logs: The block's logs, in log index order.
    """

    number: int
    hash: str
    parent_hash: str
    timestamp: int
    logs: tuple[LogSpec, ...]


class _ChainOptions(TypedDict, total=False):
    genesis_timestamp: int
    block_time: int
    max_logs_per_query: int | None
    max_block_range: int | None


def _digest(logs: tuple[LogSpec, ...]) -> bytes:
    text = ";".join(f"{log.address}|{','.join(log.topics)}|{log.data}" for log in logs)
    return bytes(keccak(text.encode("ascii")))


class ScriptedChain:
    """A deterministic EVM chain whose blocks, logs and reorgs a test scripts.

    Blocks ``0..head`` exist; blocks without scripted logs are empty.  See
    the module docstring for how hashes are made.

    Args:
        chain_id: The chain id ``eth_chainId`` reports.
        head: The number of the last block.
        logs: Logs per block number (each in ``0..head``).
        genesis_timestamp: The timestamp of block 0.
        block_time: Seconds between blocks.
        max_logs_per_query: The most logs one ``eth_getLogs`` may return
            (None: no limit).
        max_block_range: The most blocks one ``eth_getLogs`` may span
            (None: no limit).

    Raises:
        ValueError: A negative head or option, or logs outside ``0..head``.
    """

    def __init__(
        self,
        chain_id: int,
        *,
        head: int = 0,
        logs: Mapping[int, Sequence[LogSpec]] | None = None,
        genesis_timestamp: int = 1_700_000_000,
        block_time: int = 12,
        max_logs_per_query: int | None = 10_000,
        max_block_range: int | None = None,
    ) -> None:
        if chain_id < 1:
            raise ValueError(f"chain_id must be positive, got {chain_id}")
        if head < 0 or block_time < 0 or genesis_timestamp < 0:
            raise ValueError("head, block_time and genesis_timestamp must not be negative")
        if min(max_logs_per_query or 1, max_block_range or 1) < 1:
            raise ValueError("max_logs_per_query and max_block_range must be None or at least 1")
        self.chain_id = chain_id
        self.genesis_timestamp = genesis_timestamp
        self.block_time = block_time
        self.max_logs_per_query = max_logs_per_query
        self.max_block_range = max_block_range
        self._head = head
        self._reorgs = 0
        # Generation of each block: _gen_values[i] from height _gen_starts[i] on.
        self._gen_starts = [0]
        self._gen_values = [0]
        self._logs: dict[int, tuple[tuple[LogSpec, ...], bytes]] = {}  # number -> (logs, digest)
        self._log_blocks: list[int] = []  # sorted keys of _logs
        self._store(self._check_logs(logs, 0, head))

    @property
    def head(self) -> int:
        """The number of the last block."""
        return self._head

    # -- scripting -------------------------------------------------------

    def advance(self, count: int = 1, logs: Mapping[int, Sequence[LogSpec]] | None = None) -> None:
        """Append blocks ``head+1 .. head+count``.

        Args:
            count: How many blocks to add.
            logs: Logs of the new blocks, keyed by absolute block number.

        Raises:
            ValueError: A negative count, or logs outside the new blocks.
        """
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        new = self._check_logs(logs, self._head + 1, self._head + count)
        if count and self._gen_values[-1] != self._reorgs:
            self._gen_starts.append(self._head + 1)
            self._gen_values.append(self._reorgs)
        self._head += count
        self._store(new)

    def reorg(
        self,
        depth: int,
        logs: Mapping[int, Sequence[LogSpec]] | None = None,
        *,
        length: int | None = None,
    ) -> None:
        """Replace the last ``depth`` blocks with a new branch.

        Blocks ``head-depth+1 .. head`` are dropped and the new branch's
        ``length`` blocks take their place from the same height, each with
        a hash no block at its height had before.  With ``length`` other
        than ``depth`` the head moves; ``length=0`` just drops the blocks.

        Args:
            depth: How many blocks to replace, ``1..head`` (block 0 stays).
            logs: Logs of the new branch, keyed by absolute block number.
            length: Blocks in the new branch (default ``depth``).

        Raises:
            ValueError: A depth outside ``1..head``, a negative length, or
                logs outside the new branch.
        """
        if not 1 <= depth <= self._head:
            raise ValueError(f"reorg depth must be in 1..{self._head} (the head), got {depth}")
        length = depth if length is None else length
        if length < 0:
            raise ValueError(f"length must not be negative, got {length}")
        fork = self._head - depth + 1
        new = self._check_logs(logs, fork, fork + length - 1)
        index = bisect.bisect_left(self._log_blocks, fork)
        for number in self._log_blocks[index:]:
            del self._logs[number]
        del self._log_blocks[index:]
        index = bisect.bisect_left(self._gen_starts, fork)
        del self._gen_starts[index:], self._gen_values[index:]
        self._reorgs += 1
        self._gen_starts.append(fork)
        self._gen_values.append(self._reorgs)
        self._head = fork + length - 1
        self._store(new)

    def _check_logs(
        self, logs: Mapping[int, Sequence[LogSpec]] | None, first: int, last: int
    ) -> dict[int, tuple[LogSpec, ...]]:
        """Validate ``logs`` for blocks ``first..last`` before anything changes."""
        checked: dict[int, tuple[LogSpec, ...]] = {}
        for number, block_logs in (logs or {}).items():
            if not isinstance(number, int) or not first <= number <= last:
                span = f"{first}..{last}" if first <= last else "none"
                raise ValueError(f"logs for block {number!r}, outside the new blocks ({span})")
            items = tuple(block_logs)
            if not all(isinstance(log, LogSpec) for log in items):
                raise TypeError(f"block {number}: logs must be LogSpec instances, got {items!r}")
            if items:
                checked[number] = items
        return checked

    def _store(self, logs: dict[int, tuple[LogSpec, ...]]) -> None:
        # Callers only store above every block that already has logs, so appending keeps order.
        for number in sorted(logs):
            self._logs[number] = (logs[number], _digest(logs[number]))
            self._log_blocks.append(number)

    # -- reading ---------------------------------------------------------

    def _hash(self, number: int) -> str:
        if number < 0:
            return ZERO_HASH
        generation = self._gen_values[bisect.bisect_right(self._gen_starts, number) - 1]
        fields = (self.chain_id, number, generation)
        digest = self._logs[number][1] if number in self._logs else b""
        payload = b"".join(f.to_bytes(32, "big") for f in fields) + digest
        return "0x" + bytes(keccak(payload))[:24].hex() + number.to_bytes(8, "big").hex()

    def block(self, number: int) -> Block:
        """The canonical block ``number``.

        Raises:
            KeyError: ``number`` is negative or above the head.
        """
        if not 0 <= number <= self._head:
            raise KeyError(number)
        return Block(
            number=number,
            hash=self._hash(number),
            parent_hash=self._hash(number - 1),
            timestamp=self.genesis_timestamp + number * self.block_time,
            logs=self._logs[number][0] if number in self._logs else (),
        )

    def block_by_hash(self, block_hash: str) -> Block | None:
        """The canonical block with this hash, or None (unknown, or reorged away)."""
        try:
            text = _hex(block_hash, 64, "hash")
        except ValueError:
            return None
        number = int(text[-16:], 16)
        if number > self._head or self._hash(number) != text:
            return None
        return self.block(number)

    def logs(
        self,
        from_block: int,
        to_block: int,
        *,
        addresses: Collection[str] | None = None,
        topic0s: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The canonical logs of blocks ``from_block..to_block`` as JSON-RPC objects, in order.

        Each log is its own transaction: ``transactionIndex`` equals
        ``logIndex`` (the position in the block), and the transaction hash
        derives from the block hash and that position (``_chain_data.py``:
        the transactions and receipts the node serves).

        Args:
            from_block: The first block.
            to_block: The last block (inclusive).
            addresses: Keep only logs from these addresses (None: any).
            topic0s: Keep only logs whose first topic is one of these (None: any).
        """
        want_address = None if addresses is None else {a.lower() for a in addresses}
        want_topic0 = None if topic0s is None else {t.lower() for t in topic0s}
        out: list[dict[str, Any]] = []
        lo = bisect.bisect_left(self._log_blocks, from_block)
        hi = bisect.bisect_right(self._log_blocks, to_block)
        for number in self._log_blocks[lo:hi]:
            block_hash = self._hash(number)
            timestamp = hex(self.genesis_timestamp + number * self.block_time)
            for position, log in enumerate(self._logs[number][0]):
                if want_address is not None and log.address not in want_address:
                    continue
                if want_topic0 is not None and (not log.topics or log.topics[0] not in want_topic0):
                    continue
                tx_hash = transaction_hash(block_hash, number, position)
                out.append(
                    {
                        "address": log.address,
                        "topics": list(log.topics),
                        "data": log.data,
                        "blockNumber": hex(number),
                        "blockHash": block_hash,
                        "blockTimestamp": timestamp,
                        "transactionHash": tx_hash,
                        "transactionIndex": hex(position),
                        "logIndex": hex(position),
                        "removed": False,
                    }
                )
        return out

    # -- building from recorded logs ---------------------------------------

    @classmethod
    def from_logs(
        cls,
        chain_id: int,
        logs: Iterable[Any],
        *,
        head: int | None = None,
        **options: Unpack[_ChainOptions],
    ) -> ScriptedChain:
        """A chain holding recorded logs at their original block numbers.

        Only the block number, address, topics and data are kept: hashes,
        timestamps and log indexes are the chain's own.  Logs keep their
        input order within a block.

        Args:
            chain_id: The chain id.
            logs: Objects with attributes ``block_number``, ``address``,
                ``topics`` and ``data`` (such as ``RawLog``), or mappings
                with those keys (``blockNumber`` as a hex quantity also works).
            head: The head block (default: the last log's block, or 0).
            **options: Keyword options as for :class:`ScriptedChain`.

        Raises:
            ValueError: A malformed log, or a head below the last log's block.
        """
        by_block: dict[int, list[LogSpec]] = {}
        for item in logs:
            get: Callable[..., Any] = (
                item.get if isinstance(item, Mapping) else partial(getattr, item)
            )
            number = get("block_number", None)
            if number is None:  # a JSON-RPC log object
                number = int(get("blockNumber"), 16)
            spec = LogSpec(get("address"), tuple(get("topics")), get("data"))
            by_block.setdefault(number, []).append(spec)
        last = max(by_block, default=0)
        return cls(chain_id, head=last if head is None else head, logs=by_block, **options)

    @classmethod
    def from_file(
        cls,
        chain_id: int,
        path: str | PathLike[str],
        *,
        log_filter: LogFilter | None = None,
        start_block: int = 0,
        end_block: int | None = None,
        head: int | None = None,
        **options: Unpack[_ChainOptions],
    ) -> ScriptedChain:
        """A chain holding the logs of a ``.jsonl``, ``.jsonl.gz`` or ``.parquet`` log file.

        The file is read with the framework's own reader, so it must be in
        chain order.  Logs without topics are left out, as that reader
        leaves them out.

        Args:
            chain_id: The chain id.
            path: The log file.
            log_filter: Keep only the logs it wants (default: every log
                with a topic; the file is then read once more to find them).
            start_block: Leave out logs before this block.
            end_block: Leave out logs after this block (None: to the end).
            head: The head block (default: the last log's block).
            **options: Keyword options as for :class:`ScriptedChain`.

        Raises:
            indexer.SourceError: The file is missing, unsupported or malformed.
        """
        from pathlib import Path

        from ..sources import LogFilter, read_log_file, topic0s_in_file

        file = Path(path)
        if log_filter is None:
            log_filter = LogFilter(dict.fromkeys(topic0s_in_file(file), None))
        chunks = read_log_file(
            file, log_filter=log_filter, start_block=start_block, end_block=end_block
        )
        return cls.from_logs(chain_id, itertools.chain.from_iterable(chunks), head=head, **options)
