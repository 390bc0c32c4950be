"""Feeding block ranges from a chain's source into the processing loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ConfigError
from ..sources import BlockRange
from ..sources._file import LogFilter
from ..sources._log import BLOCK_NUMBER
from ..sources._process import open_file_reader

if TYPE_CHECKING:
    import trio

    from .._config import ChainConfig
    from ._processor import Route

__all__ = ["feed_chain", "log_filter"]


def log_filter(routes: dict[str, list[Route]]) -> LogFilter:
    """topic0 -> allowed addresses (None when any route of that topic0 is a wildcard)."""
    wanted: dict[str, frozenset[str] | None] = {}
    for topic0, rs in routes.items():
        addresses: frozenset[str] | None = frozenset()
        for r in rs:
            if r.addresses is None or addresses is None:
                addresses = None
            else:
                addresses = addresses | r.addresses
        wanted[topic0] = addresses
    return LogFilter(wanted)


async def feed_chain(
    chain: ChainConfig,
    first_block: int,
    routes: dict[str, list[Route]],
    send: trio.MemorySendChannel[BlockRange],
    chunk_logs: int,
) -> None:
    """Send ``chain``'s block ranges from ``first_block`` to its end, in order.

    The file is read and parsed in a child process (see
    ``sources/_process.py``), one chunk at a time; the channel's small buffer
    keeps reading at most a couple of chunks ahead of processing, so memory
    does not grow with the file.
    """
    # `with`, not `async with`: aclose() would checkpoint while an error
    # propagates, where a cancellation could replace (and lose) the error.
    with send:
        path = chain.source.file
        if path is None:
            raise ConfigError(f"chain {chain.id}: only file sources are supported by this version.")
        end = chain.end_block
        if end is not None and first_block > end:
            return
        done_through = first_block - 1
        async with open_file_reader(
            path,
            log_filter=log_filter(routes),
            start_block=first_block,
            end_block=end,
            chunk_logs=chunk_logs,
        ) as chunks:
            async for chunk in chunks:
                last = chunk[-1][BLOCK_NUMBER]
                await send.send(BlockRange(chain.id, done_through + 1, last, chunk))
                done_through = last
        if end is not None and done_through < end:
            # Trailing blocks without matching logs still count as processed.
            # (Without end_block the run ends at the file's last matching log.)
            await send.send(BlockRange(chain.id, done_through + 1, end, []))
