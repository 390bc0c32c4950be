"""Per-(token, holder) balances, deleted at zero, and a per-token holder count.

The reorg tests (``tests/_chains.py``) and the rollback benchmark
(``bench/rollback.py``) both run this handler: balances that hit zero are
deleted, so a rollback must restore deleted rows and remove created ones,
not only update values, and ``ctx.find`` keeps an index live through it.
``oracle.py`` computes the same tables straight from the logs.
"""

from __future__ import annotations

from typing import Annotated

from indexer import Context, Entity, Event, Index, on


class Account(Entity):
    id: str
    token: Annotated[str, Index]
    balance: int = 0
    transfers: int = 0


class Token(Entity):
    id: str
    holders: int = 0
    last_block: int = 0


@on("Token", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    value = event.params["value"]
    for holder, delta in ((event.params["from"], -value), (event.params["to"], value)):
        key = f"{event.address}-{holder}"
        old = await ctx.get(Account, key)
        balance = (old.balance if old else 0) + delta
        if balance == 0:
            ctx.delete(Account, key)
        elif old is None:
            ctx.set(Account(id=key, token=event.address, balance=balance, transfers=1))
        else:
            ctx.set(old.replace(balance=balance, transfers=old.transfers + 1))
    holders = await ctx.find(Account, token=event.address)
    ctx.set(Token(id=event.address, holders=len(holders), last_block=event.block_number))
