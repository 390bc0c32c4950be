"""The field-selection benchmark's log handler: a balance per holder, two get/set per Transfer.

It reads no transaction or block field on purpose: every variant of
``bench/fields.py`` runs this same handler, so what differs between them is
only what the framework fetches and builds for the selection.
"""

from __future__ import annotations

from indexer import Context, Entity, Event, on


class Holder(Entity):
    id: str
    balance: int = 0
    transfers: int = 0


@on("ERC20", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    value = event.params["value"]
    for holder, delta in ((event.params["from"], -value), (event.params["to"], value)):
        old = await ctx.get(Holder, holder)
        if old is None:
            ctx.set(Holder(id=holder, balance=delta, transfers=1))
        else:
            ctx.set(old.replace(balance=old.balance + delta, transfers=old.transfers + 1))
