"""The oracle: the workload file folded straight into balances, and the digest runs are checked by.

The fold is ``bench/floor.py``'s (the example's handler over a dict, ERC721-shaped
Transfers skipped), from the workload file, not from the node: a node that served
wrong logs would fail every run, the floor's included.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import psycopg
from floor import fold_erc20
from psycopg import sql

if TYPE_CHECKING:
    from collections.abc import Iterable


def digest(rows: Iterable[tuple[str, int, int]]) -> dict[str, Any]:
    """Rows and a SHA-256 over ``id,balance,transfers`` in id order: equal tables, equal digests."""
    lines = sorted(f"{key},{int(balance)},{int(transfers)}" for key, balance, transfers in rows)
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
        h.update(b"\n")
    return {"rows": len(lines), "sha256": h.hexdigest()}


def oracle(workload_path: str) -> tuple[int, dict[str, Any]]:
    """(events, digest) of the workload file's fold."""
    events, _skipped, tables = fold_erc20(workload_path)
    return events, digest((row[0], row[3], row[4]) for row in tables["account"])


def table_digest(url: str, schema: str, table: str = "account") -> dict[str, Any] | None:
    """The digest of ``schema.table`` (None if there is no such table)."""
    query = sql.SQL("SELECT id, balance, transfers FROM {}").format(sql.Identifier(schema, table))
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            rows = conn.execute(query).fetchall()
        except psycopg.errors.UndefinedTable:
            return None
    return digest(rows)
