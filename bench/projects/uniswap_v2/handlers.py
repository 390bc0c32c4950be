"""UniswapV2 pairs: reserves from ``Sync``, a swap counter and one ``Swap`` row per ``Swap``."""

from __future__ import annotations

from indexer import Context, Entity, Event, on


class Pair(Entity):
    id: str  # the pair's address
    reserve0: int = 0
    reserve1: int = 0
    swaps: int = 0
    syncs: int = 0


class Swap(Entity):
    id: str  # "<tx hash>-<log index>"
    pair: str
    sender: str
    to: str
    amount0_in: int
    amount1_in: int
    amount0_out: int
    amount1_out: int
    block_number: int


@on("UniswapV2Pair", "Sync")
async def sync(event: Event, ctx: Context) -> None:
    p = event.params
    old = await ctx.get(Pair, event.address)
    if old is None:
        ctx.set(Pair(id=event.address, reserve0=p["reserve0"], reserve1=p["reserve1"], syncs=1))
    else:
        ctx.set(old.replace(reserve0=p["reserve0"], reserve1=p["reserve1"], syncs=old.syncs + 1))


@on("UniswapV2Pair", "Swap")
async def swap(event: Event, ctx: Context) -> None:
    p = event.params
    old = await ctx.get(Pair, event.address)
    if old is None:
        ctx.set(Pair(id=event.address, swaps=1))
    else:
        ctx.set(old.replace(swaps=old.swaps + 1))
    ctx.set(
        Swap(
            id=f"{event.transaction_hash}-{event.log_index}",
            pair=event.address,
            sender=p["sender"],
            to=p["to"],
            amount0_in=p["amount0In"],
            amount1_in=p["amount1In"],
            amount0_out=p["amount0Out"],
            amount1_out=p["amount1Out"],
            block_number=event.block_number,
        )
    )
