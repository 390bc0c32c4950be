"""ERC20 balances: one Account per (token, holder), updated by every Transfer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from indexer import Context, Entity, Event, Index, on

if TYPE_CHECKING:
    from collections.abc import Callable


class Account(Entity):
    id: str  # "<token>-<holder>"
    token: Annotated[str, Index]
    holder: str
    balance: int = 0
    transfers: int = 0


@on("ERC20", "Transfer")
async def transfer(event: Event, ctx: Context) -> None:
    value = event.params["value"]
    for holder, delta in ((event.params["from"], -value), (event.params["to"], value)):
        key = f"{event.address}-{holder}"
        old = await ctx.get(Account, key)
        if old is None:
            ctx.set(Account(id=key, token=event.address, holder=holder, balance=delta, transfers=1))
        else:
            ctx.set(old.replace(balance=old.balance + delta, transfers=old.transfers + 1))


def report(query: Callable[..., list[tuple[Any, ...]]]) -> str:
    """Printed by `indexer run` after a complete run."""
    ((accounts, tokens),) = query("SELECT count(*), count(DISTINCT token) FROM account")
    top = query(
        "SELECT token, holder, balance FROM account WHERE holder <> %s ORDER BY balance DESC LIMIT 5",
        "0x0000000000000000000000000000000000000000",
    )
    lines = [f"{accounts:,} accounts over {tokens:,} tokens; largest balances (raw units):"]
    lines += [f"  {token} {holder} {balance:,}" for token, holder, balance in top]
    return "\n".join(lines)
