"""Finding where a chain forked: the tip check when caught up, and the walk back over stored hashes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._errors import ReorgTooDeepError
from ._log import Reorg
from ._rpc_pool import RpcPool

if TYPE_CHECKING:
    from ._rpc import RpcClient
    from ._rpc_options import RpcSourceOptions

__all__ = ["check_tip", "find_fork"]

log = logging.getLogger("indexer.sources.rpc")


async def check_tip(
    client: RpcClient | RpcPool, hashes: dict[int, str], last: int, o: RpcSourceOptions
) -> Reorg | None:
    """Is ``last``, the last block sent, still canonical?  A :class:`Reorg` if not."""
    known = hashes.get(last)
    if known is None:
        return None
    if isinstance(client, RpcPool):
        header, gone = await client.get_tip(last)
    else:
        # One node's word is all there is: a missing tip is a shorter chain.
        (header,), gone = await client.get_blocks([last]), True
    if header is not None and header["hash"] == known:
        return None
    if header is None and not gone:
        # The node that served it may be down while the rest lag: wait
        # (the pool decides; see RpcPool.get_tip).
        return None
    return await find_fork(client, hashes, last, o)


async def find_fork(
    client: RpcClient | RpcPool, hashes: dict[int, str], detected_at: int, o: RpcSourceOptions
) -> Reorg:
    """The newest stored block the node still has, or ReorgTooDeepError."""
    numbers = sorted((n for n in hashes if n <= detected_at), reverse=True)
    headers = await client.get_blocks(numbers) if numbers else []
    for n, h in zip(numbers, headers, strict=True):
        if h is not None and h["hash"] == hashes[n]:
            log.warning(
                "%s: reorg detected at block %d; blocks above %d are rolled back",
                o.where,
                detected_at,
                n,
            )
            return Reorg(o.chain_id, n, detected_at)
    lowest = numbers[-1] if numbers else detected_at
    raise ReorgTooDeepError(
        f"{o.where} reorganised deeper than max_reorg_depth={o.max_reorg_depth}: none of the "
        f"stored blocks {lowest}..{detected_at} is on the node's canonical chain any more (detected at block "
        f"{detected_at}). The database still holds the state up to the last committed block, which is on "
        f"a fork now; raise max_reorg_depth and re-index with `indexer run --reset`, or check that the node "
        f"is synced (a node that fell behind can look like a deep reorg)."
    )
