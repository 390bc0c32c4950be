"""The tables ``handlers.py`` should produce, folded straight from eth_getLogs-shaped logs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

HANDLERS = Path(__file__).resolve().with_name("handlers.py")

Balances = dict[str, tuple[int, int]]  # "<token>-<holder>" -> (balance, transfers)
Tokens = dict[str, tuple[int, int]]  # token -> (holders, last block)


def fold(logs: Iterable[Mapping[str, Any]], *, deletes: bool = True) -> tuple[Balances, Tokens]:
    """(accounts, tokens) after ``logs`` (Transfers, in chain order).

    ``deletes=False`` keeps zero balances, as the example's ERC20 handler does
    (its tokens table does not exist; the holder counts are still computed).
    """
    accounts: dict[str, tuple[str, int, int]] = {}
    tokens: Tokens = {}
    holders: dict[str, int] = {}
    for lg in logs:
        token = lg["address"]
        value = int(lg["data"], 16)
        sender, receiver = ("0x" + t[-40:] for t in lg["topics"][1:3])
        for holder, delta in ((sender, -value), (receiver, value)):
            key = f"{token}-{holder}"
            old = accounts.get(key)
            balance = (old[1] if old else 0) + delta
            if balance == 0 and deletes:
                if accounts.pop(key, None) is not None:
                    holders[token] -= 1
            else:
                if old is None:
                    holders[token] = holders.get(token, 0) + 1
                accounts[key] = (token, balance, (old[2] + 1) if old else 1)
        tokens[token] = (holders.get(token, 0), int(lg["blockNumber"], 16))
    return {k: (b, n) for k, (_t, b, n) in accounts.items()}, tokens
