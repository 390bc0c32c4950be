"""From checked JSON-RPC answers to what an RPC source sends: raw logs, decoded ranges.

The fetcher (``_rpc_source.py``) decides *what* to ask the node and whether
the answers agree with each other; this module only reshapes answers it
already accepted: ``eth_getLogs`` objects into :class:`RawLog` values, and a
long range into :class:`BlockRange` batches of whole blocks.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

from .._errors import SourceError
from ._log import BlockRange, RawLog

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from .._fields import Block
    from ._decode import LogDecoder
    from ._log import DecodedLog

__all__ = ["raw_logs", "split_range"]

_new = tuple.__new__
_POSITION = operator.itemgetter(0, 1)  # a RawLog's (block number, log index)


def raw_logs(
    where: str, logs: Sequence[dict[str, Any]], headers: dict[int, dict[str, Any]]
) -> list[RawLog]:
    """The logs that are not ``removed``, in chain order; timestamps from ``headers`` if absent.

    ``where`` names the chain and its nodes in the error about a malformed log.
    """
    out: list[RawLog] = []
    append, lower = out.append, str.lower
    for lg in logs:
        if lg.get("removed"):
            continue
        try:
            number = int(lg["blockNumber"], 16)
            ts = lg.get("blockTimestamp")
            if ts is None:
                ts = headers[number]["timestamp"]
            # tuple.__new__ skips RawLog's Python-level constructor (a quarter
            # of this loop's time); the fields are in RawLog order.
            append(
                _new(
                    RawLog,
                    (
                        number,
                        int(lg["logIndex"], 16),
                        lower(lg["transactionHash"]),
                        lower(lg["address"]),
                        tuple(map(lower, lg["topics"])),
                        lower(lg["data"]),
                        lower(lg["blockHash"]),
                        int(ts, 16),
                        None,
                    ),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(
                f"{where}: eth_getLogs returned a malformed log ({type(exc).__name__}: {exc}): "
                f"{str(lg)[:300]}"
            ) from None
    out.sort(key=_POSITION)
    return out


def split_range(
    decoder: LogDecoder,
    first: int,
    last: int,
    logs: list[RawLog],
    chunk_logs: int,
    final: int,
    hashes: dict[int, str] | None = None,
    *,
    head: int | None = None,
    attach: Callable[[int, Sequence[Any]], tuple[Any, Any]] | None = None,
    blocks: dict[int, Block] | None = None,
    fetched: Mapping[str, frozenset[str] | None] | None = None,
    refetch: Callable[[str, Sequence[str], int, int], Awaitable[list[DecodedLog]]] | None = None,
) -> list[BlockRange]:
    """Cut a long range into batches of about ``chunk_logs`` whole blocks, decoded."""
    out: list[BlockRange] = []
    start, begin = first, 0
    n = len(logs)

    def part(lo: int, hi: int, chunk: list[RawLog]) -> BlockRange:
        sub = None if hashes is None else {b: hashes[b] for b in range(lo, hi + 1)}
        items = decoder.decode(chunk, attach)
        due = None if not blocks else {b: v for b, v in blocks.items() if lo <= b <= hi}
        return BlockRange(
            decoder.chain_id,
            lo,
            hi,
            items,
            decoder.take_skipped(),
            sub,
            final,
            head,
            due,
            fetched,
            refetch,
        )

    while n - begin > chunk_logs:
        i = begin + chunk_logs
        cut = logs[i - 1].block_number
        while i < n and logs[i].block_number == cut:
            i += 1
        if i >= n:
            break
        out.append(part(start, cut, logs[begin:i]))
        start, begin = cut + 1, i
    out.append(part(start, last, logs[begin:]))
    return out
