"""What the benchmark's tables should hold (an independent fold over the chain) and what they hold."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from projects.token_holders.oracle import fold
from psycopg import sql

from _rollback.chain import TRANSFER

if TYPE_CHECKING:
    from indexer.testing import ScriptedChain

# Per entity table (TABLE_NAMES[handler] order): id -> (balance or holders, transfers or last_block).
Tables = tuple[dict[str, tuple[int, int]], ...]
TABLE_NAMES = {"tests": ("account", "token"), "example": ("account",)}


def expected(chain: ScriptedChain, last: int | None = None, handler: str = "tests") -> Tables:
    """The tables computed straight from the chain's canonical logs.

    ``tests``: (accounts, tokens) as the token-holders handler keeps them;
    ``example``: (accounts,) as examples/erc20's handler keeps them (no deletes).
    """
    last = chain.head if last is None else last
    balances, tokens = fold(chain.logs(1, last, topic0s=[TRANSFER]), deletes=handler == "tests")
    return (balances, tokens) if handler == "tests" else (balances,)


def tables(url: str, schema: str, handler: str = "tests") -> Tables:
    queries = {
        "account": "SELECT id, balance, transfers FROM {}.account",
        "token": "SELECT id, holders, last_block FROM {}.token",
    }
    with psycopg.connect(url) as conn:
        return tuple(
            {
                r[0]: (int(r[1]), int(r[2]))
                for r in conn.execute(
                    sql.SQL(queries[name]).format(sql.Identifier(schema))
                ).fetchall()
            }
            for name in TABLE_NAMES[handler]
        )


def compare(got: Tables, want: Tables) -> str | None:
    """None if equal, else a short description of the first differences."""
    problems = []
    if len(got) != len(want):
        return f"{len(got)} tables vs {len(want)} expected"
    for name, g, w in zip(("account", "token"), got, want, strict=False):
        if g == w:
            continue
        missing = sorted(w.keys() - g.keys())[:3]
        extra = sorted(g.keys() - w.keys())[:3]
        wrong = sorted(k for k in g.keys() & w.keys() if g[k] != w[k])[:3]
        problems.append(
            f"{name}: {len(g)} rows vs {len(w)} expected; missing {missing}, extra {extra}, "
            f"different {[(k, g[k], w[k]) for k in wrong]}"
        )
    return "; ".join(problems) or None


def history_rows(url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        out = {}
        for table in ("_indexer_h_account", "_indexer_h_token", "_indexer_checkpoints"):
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            ).fetchone()
            out[table] = int(row[0]) if row else 0
    return out
