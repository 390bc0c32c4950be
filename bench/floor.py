"""The floor: a plain script doing a workload's work with nothing but a dict and one COPY.

For a workload file it reads every line (zlib + ``orjson``, the fastest straightforward
way), decodes the static parameters straight from the hex text (``int(x, 16)``, address
slicing, with the same shape checks the framework's decoder makes: topic count, data
length, zero padding, ``uint112`` range), folds the events into dicts exactly as the
benchmark project's handlers do, then COPYs the final rows once into fresh tables of the
same shape as the framework's (same columns, types, primary key and indexes) in the same
PostgreSQL, and commits.  No checkpoints, no progress rows, no intermediate writes.

The time printed is the whole of that, in-process (``perf_counter``, from before connecting
to after COMMIT); ``bench/run.py`` also times the whole process.

Run: ``python bench/floor.py WORKLOAD FILE --url URL --schema SCHEMA`` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from collections.abc import Iterator

TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SYNC = "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
SWAP = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"
_PAD = "0x" + "0" * 24
_U112 = 1 << 112
_NUM = "numeric(78,0) NOT NULL"

# table -> (columns with types, indexed columns): the framework's DDL for the projects'
# entities (``persist/_schema.py``: int -> numeric(78,0), str -> text, id = primary key).
TABLES: dict[str, dict[str, tuple[list[tuple[str, str]], list[str]]]] = {
    "erc20": {
        "account": (
            [
                ("id", "text PRIMARY KEY"),
                ("token", "text NOT NULL"),
                ("holder", "text NOT NULL"),
                ("balance", _NUM),
                ("transfers", _NUM),
            ],
            ["token"],
        ),
    },
    "uniswap": {
        "pair": (
            [
                ("id", "text PRIMARY KEY"),
                ("reserve0", _NUM),
                ("reserve1", _NUM),
                ("swaps", _NUM),
                ("syncs", _NUM),
            ],
            [],
        ),
        "swap": (
            [
                ("id", "text PRIMARY KEY"),
                ("pair", "text NOT NULL"),
                ("sender", "text NOT NULL"),
                ("to", "text NOT NULL"),
                ("amount0_in", _NUM),
                ("amount1_in", _NUM),
                ("amount0_out", _NUM),
                ("amount1_out", _NUM),
                ("block_number", _NUM),
            ],
            [],
        ),
    },
}


def project_of(workload: str) -> str:
    return "uniswap" if workload.startswith("uniswap") else "erc20"


def read_logs(path: str) -> Iterator[dict[str, Any]]:
    """Every line of a ``.jsonl.gz`` file, parsed."""
    loads = orjson.loads
    with open(path, "rb") as f:
        inflate = zlib.decompressobj(31)
        carry = b""
        while chunk := f.read(1 << 20):
            block = carry + inflate.decompress(chunk)
            cut = block.rfind(b"\n") + 1
            carry = block[cut:]
            for line in block[:cut].splitlines():
                yield loads(line)
        carry += inflate.flush()
        for line in carry.splitlines():
            yield loads(line)


def fold_erc20(path: str) -> tuple[int, int, dict[str, list[Any]]]:
    """The example's ``transfer`` handler over a dict: (events, skipped, tables)."""
    accounts: dict[str, list[Any]] = {}
    get = accounts.get
    events = skipped = 0
    for log in read_logs(path):
        topics = log["topics"]
        data = log["data"]
        if (
            len(topics) != 3
            or topics[0] != TRANSFER
            or len(data) != 66
            or topics[1][:26] != _PAD
            or topics[2][:26] != _PAD
        ):
            skipped += 1
            continue
        events += 1
        token = log["address"]
        value = int(data, 16)
        for holder, delta in (("0x" + topics[1][26:], -value), ("0x" + topics[2][26:], value)):
            key = f"{token}-{holder}"
            row = get(key)
            if row is None:
                accounts[key] = [key, token, holder, delta, 1]
            else:
                row[3] += delta
                row[4] += 1
    return events, skipped, {"account": list(accounts.values())}


def fold_uniswap(path: str) -> tuple[int, int, dict[str, list[Any]]]:
    """``bench/projects/uniswap_v2/handlers.py`` over dicts: (events, skipped, tables)."""
    pairs: dict[str, list[Any]] = {}
    swaps: list[list[Any]] = []
    get = pairs.get
    events = skipped = 0
    for log in read_logs(path):
        topics = log["topics"]
        data = log["data"]
        address = log["address"]
        t0 = topics[0] if topics else ""
        if t0 == SYNC and len(topics) == 1 and len(data) == 130:
            r0 = int(data[2:66], 16)
            r1 = int(data[66:130], 16)
            if r0 >= _U112 or r1 >= _U112:
                skipped += 1
                continue
            events += 1
            row = get(address)
            if row is None:
                pairs[address] = [address, r0, r1, 0, 1]
            else:
                row[1] = r0
                row[2] = r1
                row[4] += 1
        elif (
            t0 == SWAP
            and len(topics) == 3
            and len(data) == 258
            and topics[1][:26] == _PAD
            and topics[2][:26] == _PAD
        ):
            events += 1
            row = get(address)
            if row is None:
                pairs[address] = [address, 0, 0, 1, 0]
            else:
                row[3] += 1
            swaps.append(
                [
                    f"{log['transactionHash']}-{int(log['logIndex'], 16)}",
                    address,
                    "0x" + topics[1][26:],
                    "0x" + topics[2][26:],
                    int(data[2:66], 16),
                    int(data[66:130], 16),
                    int(data[130:194], 16),
                    int(data[194:258], 16),
                    int(log["blockNumber"], 16),
                ]
            )
        else:
            skipped += 1
    return events, skipped, {"pair": list(pairs.values()), "swap": swaps}


def create_tables(conn: psycopg.Connection[Any], schema: str, project: str) -> None:
    """Drop and create ``schema`` with the project's tables (the framework's shape)."""
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    for table, (columns, indexed) in TABLES[project].items():
        ident = sql.Identifier(schema, table)
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(typ)) for name, typ in columns
        )
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, cols))
        for name in indexed:
            conn.execute(
                sql.SQL("CREATE INDEX {} ON {} ({})").format(
                    sql.Identifier(f"{table}_{name}_idx"), ident, sql.Identifier(name)
                )
            )


def run(workload: str, path: str, url: str, schema: str) -> dict[str, Any]:
    started = time.perf_counter()
    project = project_of(workload)
    with psycopg.connect(url) as conn:
        connected = time.perf_counter()
        fold = fold_uniswap if project == "uniswap" else fold_erc20
        events, skipped, rows = fold(path)
        folded = time.perf_counter()
        with conn.transaction():
            create_tables(conn, schema, project)
            with conn.cursor() as cur:
                for table, table_rows in rows.items():
                    columns = [name for name, _ in TABLES[project][table][0]]
                    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
                        sql.Identifier(schema, table),
                        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
                    )
                    with cur.copy(copy_sql) as copy:
                        for row in table_rows:
                            copy.write_row(row)
        done = time.perf_counter()
    return {
        "workload": workload,
        "events": events,
        "skipped": skipped,
        "rows": {table: len(r) for table, r in rows.items()},
        "seconds": done - started,
        "connect_seconds": connected - started,
        "fold_seconds": folded - connected,
        "copy_seconds": done - folded,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("workload")
    p.add_argument("file")
    p.add_argument("--url", required=True)
    p.add_argument("--schema", required=True)
    args = p.parse_args(argv)
    print(json.dumps(run(args.workload, args.file, args.url, args.schema)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
