"""From checked JSON-RPC answers to what an RPC source sends: raw logs, decoded ranges.

The fetcher (``_rpc_source.py``) decides *what* to ask the node and whether
the answers agree with what it processed; this module checks a window
range's answers against each other (``window_consistent``) and reshapes
answers already accepted: ``eth_getLogs`` objects into :class:`RawLog`
values, and a long range into :class:`BlockRange` batches of whole blocks.
The log worker's child runs the same functions (``_rpc_child.py``).
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

__all__ = ["Part", "build_ranges", "decode_parts", "raw_logs", "window_consistent"]

_new = tuple.__new__
_POSITION = operator.itemgetter(0, 1)  # a RawLog's (block number, log index)


def window_consistent(
    first: int,
    last: int,
    headers: Mapping[int, Mapping[str, Any]],
    logs: Sequence[Mapping[str, Any]],
) -> bool:
    """Whether the headers of ``first..last`` chain by ``parentHash`` and each log's
    ``blockHash`` is its block's: otherwise the answers are of two forks."""
    return all(
        headers[n]["parentHash"] == headers[n - 1]["hash"] for n in range(first + 1, last + 1)
    ) and all(lg.get("blockHash") == headers[int(lg["blockNumber"], 16)]["hash"] for lg in logs)


def raw_logs(
    where: str, logs: Sequence[Mapping[str, Any]], headers: Mapping[int, Mapping[str, Any]]
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


# One batch of a range, decoded: (first block, last block, logs, skip counts by route).
Part = tuple[int, int, "list[DecodedLog]", dict[int, int]]


def decode_parts(
    decoder: LogDecoder,
    first: int,
    last: int,
    logs: list[RawLog],
    chunk_logs: int,
    attach: Callable[[int, Sequence[Any]], tuple[Any, Any]] | None = None,
) -> list[Part]:
    """Cut a long range into parts of about ``chunk_logs`` logs in whole blocks, decoded.

    Pure given the decoder's routes: the JSON-RPC decode process runs it too
    (``_rpc_worker.py``), and must cut and decode exactly as here.
    """
    out: list[Part] = []
    start, begin = first, 0
    n = len(logs)
    while n - begin > chunk_logs:
        i = begin + chunk_logs
        cut = logs[i - 1].block_number
        while i < n and logs[i].block_number == cut:
            i += 1
        if i >= n:
            break
        out.append((start, cut, decoder.decode(logs[begin:i], attach), decoder.take_skipped()))
        start, begin = cut + 1, i
    out.append((start, last, decoder.decode(logs[begin:], attach), decoder.take_skipped()))
    return out


def build_ranges(
    chain_id: int,
    parts: Sequence[Part],
    final: int,
    hashes: dict[int, str] | None = None,
    *,
    head: int | None = None,
    blocks: dict[int, Block] | None = None,
    fetched: Mapping[str, frozenset[str] | None] | None = None,
    refetch: Callable[[str, Sequence[str], int, int], Awaitable[list[DecodedLog]]] | None = None,
) -> list[BlockRange]:
    """The :class:`BlockRange` of each part, with its share of ``hashes`` and ``blocks``."""
    out = []
    for lo, hi, items, skipped in parts:
        sub = None if hashes is None else {b: hashes[b] for b in range(lo, hi + 1)}
        due = None if not blocks else {b: v for b, v in blocks.items() if lo <= b <= hi}
        out.append(
            BlockRange(chain_id, lo, hi, items, skipped, sub, final, head, due, fetched, refetch)
        )
    return out
