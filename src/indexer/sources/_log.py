"""The raw log record every source produces."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from .._fields import Block

__all__ = [
    "ADDRESS",
    "BLOCK_HASH",
    "BLOCK_NUMBER",
    "BLOCK_TIMESTAMP",
    "DATA",
    "LOG_INDEX",
    "TOPICS",
    "TRANSACTION_HASH",
    "BlockRange",
    "DecodedLog",
    "RawLog",
    "Reorg",
]

# Field positions: the processing loop reads logs by position, so a plain
# tuple in this order (as the reader process sends) works as well as a RawLog.
BLOCK_NUMBER, LOG_INDEX, TRANSACTION_HASH, ADDRESS, TOPICS, DATA, BLOCK_HASH, BLOCK_TIMESTAMP = (
    range(8)
)

# A routed, decoded log, as a plain tuple so that ``marshal`` can carry it
# between processes: (route index, Event fields, (topics, data) or None).
# The Event fields are in :class:`~indexer.Event` order, ready for
# ``tuple.__new__(Event, fields)``; the raw part is kept for raw events only.
DecodedLog = tuple[int, tuple[Any, ...], tuple[tuple[str, ...], str] | None]

_NONE_SKIPPED: Mapping[int, int] = MappingProxyType({})


class RawLog(NamedTuple):
    """One EVM log as a source delivers it, before decoding.

    Hex fields are lowercase ``0x``-prefixed strings: decoding static ABI
    types straight from hex text is cheaper than converting to bytes first.
    A NamedTuple keeps a million of them small and fast to build.
    """

    block_number: int
    log_index: int
    transaction_hash: str
    address: str
    topics: tuple[str, ...]
    data: str
    block_hash: str | None = None
    block_timestamp: int | None = None
    transaction_index: int | None = None


class BlockRange(NamedTuple):
    """The decoded logs of blocks ``first..last`` (inclusive) of one chain, in chain order.

    Every source hands the loop this one shape: its logs already routed and
    decoded (see ``_decode.py``), whether a file reader's child process or
    the JSON-RPC fetcher did it.  ``last`` is the block through which the
    source vouches the range is complete, even when its last blocks have no
    logs: progress advances to it.
    """

    chain_id: int
    first: int
    last: int
    logs: list[DecodedLog]
    # Route index -> logs of a wildcard route that did not decode (skipped).
    skipped: Mapping[int, int] = _NONE_SKIPPED
    # Block number -> hash of *every* block first..last, given when the range
    # is within the chain's reorg window: each of those blocks then gets a
    # checkpoint (so its hash is stored for reorg detection, also across
    # restarts) and writes keep history.  None far from the head and for
    # sources that cannot reorganise (files).
    hashes: dict[int, str] | None = None
    # Highest block of the chain that can no longer be reorganised (head -
    # max_reorg_depth), for sources that can reorganise; None otherwise.
    final_block: int | None = None
    # The chain's head when the source read this range (None: not known).
    head_block: int | None = None
    # Block number -> Block, for each block of first..last at which block
    # handlers run (see BlockSchedule); the loop runs them after the
    # block's logs.  None: no block handlers.
    blocks: Mapping[int, Block] | None = None
    # A JSON-RPC range of a chain with factory children: per child contract,
    # the addresses its logs were fetched for (None: by topic, every address),
    # and how to fetch more, ``refetch(contract, addresses, first, last)``
    # (see sources/_rpc_children.py).  None for files: they hold every log.
    fetched: Mapping[str, frozenset[str] | None] | None = None
    refetch: Callable[[str, Sequence[str], int, int], Awaitable[list[DecodedLog]]] | None = None


class Reorg(NamedTuple):
    """A source's notice that its chain reorganised above ``block``.

    ``block`` is the highest block still on the canonical chain; everything
    the source sent above it is void.  The source stops after sending it and
    is restarted from the rolled-back progress.
    """

    chain_id: int
    block: int
    detected_at: int  # the block whose hash or parent hash did not match
