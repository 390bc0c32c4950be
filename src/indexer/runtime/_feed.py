"""Feeding block ranges from a chain's source (file or JSON-RPC) into the processing loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..sources import (
    BlockRange,
    BlockSchedule,
    ChildOptions,
    LogDecoder,
    Reorg,
    RpcSourceOptions,
    feed_rpc,
    open_file_reader,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    import trio

    from ..config import ChainConfig
    from ..sources import DecodeRoute

__all__ = ["feed_chain"]


async def feed_chain(
    chain: ChainConfig,
    first_block: int,
    routes: Sequence[DecodeRoute],
    send: trio.MemorySendChannel[BlockRange | Reorg],
    chunk_logs: int,
    keep_raw: bool,
    stored_hashes: dict[int, str] | None = None,
    rpc_tuning: dict[str, Any] | None = None,
    on_rpc_request: Callable[[str, str], None] | None = None,
    schedule: BlockSchedule | None = None,
    children: tuple[Sequence[tuple[tuple[str, str], ...]], Callable[[str], Collection[str]]]
    | None = None,
) -> None:
    """Send ``chain``'s block ranges from ``first_block`` to its end, in order, decoded.

    An ``rpc`` source follows the chain (see ``sources/_rpc_source.py``) and
    may end with a :class:`Reorg` instead; ``stored_hashes`` are the hashes
    of processed blocks near the head it checks against; with several URLs,
    ``on_rpc_request(node, outcome)`` is told of every request to a node.

    A file is read, parsed and decoded in a child process (see
    ``sources/_process.py``), one chunk at a time, joined there to the cryo
    transactions and blocks files its selection and block handlers need; the channel's small buffer
    keeps reading at most a couple of chunks ahead of processing, so memory
    does not grow with the file.

    ``children``, for a chain with factories: each route's registrations
    and the registered addresses of a child contract (live), which the
    JSON-RPC fetcher asks for by address (see ``sources/_rpc_children.py``).
    A file delivers every log of the children's events; the processing loop
    keeps the registered children's.
    """
    # `with`, not `async with`: aclose() would checkpoint while an error
    # propagates, where a cancellation could replace (and lose) the error.
    if chain.source.rpc is not None:
        options = RpcSourceOptions(
            url=chain.source.rpc,
            urls=chain.source.rpc_urls,
            on_request=on_rpc_request,
            chain_id=chain.id,
            poll_interval=chain.source.poll_interval,
            max_reorg_depth=chain.max_reorg_depth,
            end_block=chain.end_block,
            chunk_logs=chunk_logs,
            block_schedule=schedule or BlockSchedule(),
            block_fields=chain.field_selection.block,
            children=None
            if children is None
            else ChildOptions(*children, limit=chain.source.child_address_limit),
            **(rpc_tuning or {}),
        )
        decoder = LogDecoder(chain.id, routes, keep_raw=keep_raw)
        await feed_rpc(options, decoder, first_block, stored_hashes or {}, send)
        return
    with send:
        path = chain.source.file
        assert path is not None
        end = chain.end_block
        if end is not None and first_block > end:
            return
        done_through = first_block - 1
        async with open_file_reader(
            path,
            chain_id=chain.id,
            routes=routes,
            keep_raw=keep_raw,
            start_block=first_block,
            end_block=end,
            chunk_logs=chunk_logs,
            blocks=chain.source.blocks,
            transactions=chain.source.transactions,
            block_keys=chain.field_selection.block,
            schedule=schedule,
        ) as chunks:
            async for last, decoded, skipped, blocks in chunks:
                await send.send(
                    BlockRange(chain.id, done_through + 1, last, decoded, skipped, blocks=blocks)
                )
                done_through = last
        if end is not None and done_through < end:
            # Trailing blocks without matching logs still count as processed.
            # (Without end_block the run ends at the file's last matching log.)
            await send.send(BlockRange(chain.id, done_through + 1, end, []))
