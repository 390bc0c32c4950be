"""Who initiated each ERC20 transfer (its transaction's sender), and a summary of each block.

A token's ``Transfer`` says whose tokens moved (``from``), not who asked for
it: a DEX router, a relayer or an approved spender often moves tokens it
does not hold.  ``event.transaction.from_`` is the account that signed the
transaction (selected in indexer.yaml under ``field_selection``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from indexer import Block, Context, Entity, Event, Index, on, on_block

if TYPE_CHECKING:
    from collections.abc import Callable


class Transfer(Entity):
    id: str  # "<block_number>-<log_index>"
    token: Annotated[str, Index]
    from_: str
    to: str
    value: int
    sender: Annotated[str, Index]  # the transaction's `from`: who signed it
    gas_used: int  # by the whole transaction (from its receipt)
    transaction_hash: str
    block_number: int


class Sender(Entity):
    id: str  # the signing address
    transfers: int = 0  # transfers in transactions it signed
    on_behalf: int = 0  # of those, transfers of tokens it did not hold (from_ != sender)


class BlockSummary(Entity):
    id: str  # the block number
    hash: str = ""
    parent_hash: str = ""
    timestamp: int = 0
    transfers: int = 0  # counted by the log handler, before the block handler runs


@on("ERC20", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    p, tx = event.params, event.transaction
    ctx.set(
        Transfer(
            id=f"{event.block_number}-{event.log_index}",
            token=event.address,
            from_=p["from"],
            to=p["to"],
            value=p["value"],
            sender=tx.from_,
            gas_used=tx.gas_used,
            transaction_hash=event.transaction_hash,
            block_number=event.block_number,
        )
    )
    sender = await ctx.get(Sender, tx.from_) or Sender(id=tx.from_)
    ctx.set(
        sender.replace(
            transfers=sender.transfers + 1,
            on_behalf=sender.on_behalf + (p["from"] != tx.from_),
        )
    )
    block = await ctx.get(BlockSummary, str(event.block_number))
    block = block or BlockSummary(id=str(event.block_number))
    ctx.set(block.replace(transfers=block.transfers + 1))


# Every block from 52395714: the data has no parent hash for block 52395713
# (see data/README.md), and every Block has one.
@on_block(chain=137, start=52395714)
async def summary(block: Block, ctx: Context) -> None:
    old = await ctx.get(BlockSummary, str(block.number))
    old = old or BlockSummary(id=str(block.number))
    ctx.set(old.replace(hash=block.hash, parent_hash=block.parent_hash, timestamp=block.timestamp))


def report(query: Callable[..., list[tuple[Any, ...]]]) -> str:
    """Printed by `indexer run` after a complete run."""
    ((transfers, senders),) = query("SELECT count(*), count(DISTINCT sender) FROM transfer")
    top = query("SELECT id, transfers, on_behalf FROM sender ORDER BY transfers DESC, id LIMIT 3")
    blocks = query(
        "SELECT id, timestamp, transfers FROM block_summary WHERE hash <> '' ORDER BY id"
    )
    lines = [f"{transfers:,} transfers in transactions of {senders:,} senders; the busiest:"]
    lines += [f"  {s} signed {n:,} ({b:,} of tokens it did not hold)" for s, n, b in top]
    lines += [f"block {n} at {ts}: {t:,} transfers" for n, ts, t in blocks]
    return "\n".join(lines)
