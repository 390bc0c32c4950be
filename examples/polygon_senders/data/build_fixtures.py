"""Rebuild the cryo-format parquet files in this directory from the ethereum-etl CSVs in source/.

    python examples/polygon_senders/data/build_fixtures.py

The output is a pure function of the CSVs: same input, same bytes (no
timestamps in the files, fixed row groups).  Columns, types and names are
cryo's (paradigmxyz/cryo, crates/freeze/src/datasets/{logs,transactions,
blocks}.rs): binary hashes and addresses, unsigned integers, sorted by
block then index.  Only columns whose every value is in the CSVs exactly
are written; see README.md for what is left out, and why.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "source"
PREFIX = "polygon_52395713_52395714"
CHAIN_ID = 137


def _rows(kind: str) -> list[dict[str, str]]:
    with gzip.open(SOURCE / f"{PREFIX}_{kind}.ethereumetl.csv.gz", "rt", newline="") as f:
        return list(csv.DictReader(f))


def _bin(text: str) -> bytes:
    assert text.startswith("0x"), text
    return bytes.fromhex(text[2:])


def _opt_int(text: str) -> int | None:
    return None if text == "" else int(text)


def _write(name: str, columns: dict[str, tuple[pa.DataType, list[Any]]], group: int) -> None:
    table = pa.table({k: pa.array(v, type=t) for k, (t, v) in columns.items()})
    pq.write_table(
        table,
        HERE / f"{PREFIX}_{name}.cryo.parquet",
        row_group_size=group,
        compression="zstd",
        write_statistics=True,
    )


def logs() -> None:
    rows = sorted(_rows("logs"), key=lambda r: (int(r["block_number"]), int(r["log_index"])))
    topics = [r["topics"].split(",") if r["topics"] else [] for r in rows]
    columns: dict[str, tuple[pa.DataType, list[Any]]] = {
        "block_number": (pa.uint32(), [int(r["block_number"]) for r in rows]),
        "block_hash": (pa.binary(), [_bin(r["block_hash"]) for r in rows]),
        "transaction_index": (pa.uint32(), [int(r["transaction_index"]) for r in rows]),
        "log_index": (pa.uint32(), [int(r["log_index"]) for r in rows]),
        "transaction_hash": (pa.binary(), [_bin(r["transaction_hash"]) for r in rows]),
        "address": (pa.binary(), [_bin(r["address"]) for r in rows]),
    }
    for i in range(4):
        columns[f"topic{i}"] = (
            pa.binary(),
            [_bin(t[i]) if len(t) > i else None for t in topics],
        )
    data = [_bin(r["data"]) for r in rows]
    columns["data"] = (pa.binary(), data)
    columns["n_data_bytes"] = (pa.uint32(), [len(d) for d in data])
    columns["chain_id"] = (pa.uint64(), [CHAIN_ID] * len(rows))
    _write("logs", columns, 1024)


def transactions() -> None:
    rows = sorted(
        _rows("transactions"), key=lambda r: (int(r["block_number"]), int(r["transaction_index"]))
    )
    receipts = {r["transaction_hash"]: r for r in _rows("receipts")}
    assert len(receipts) == len(rows), "a receipt per transaction"
    inputs = [_bin(r["input"]) for r in rows]
    columns: dict[str, tuple[pa.DataType, list[Any]]] = {
        "block_number": (pa.uint32(), [int(r["block_number"]) for r in rows]),
        "transaction_index": (pa.uint64(), [int(r["transaction_index"]) for r in rows]),
        "transaction_hash": (pa.binary(), [_bin(r["hash"]) for r in rows]),
        "nonce": (pa.uint64(), [int(r["nonce"]) for r in rows]),
        "from_address": (pa.binary(), [_bin(r["from_address"]) for r in rows]),
        "to_address": (
            pa.binary(),
            [_bin(r["to_address"]) if r["to_address"] else None for r in rows],
        ),
        # `value` and `gas` (cryo's value_* and gas_limit) are left out: see README.md.
        "input": (pa.binary(), inputs),
        "gas_used": (pa.uint64(), [int(receipts[r["hash"]]["gas_used"]) for r in rows]),
        "gas_price": (pa.uint64(), [_opt_int(r["gas_price"]) for r in rows]),
        "transaction_type": (pa.uint32(), [int(r["transaction_type"]) for r in rows]),
        "max_priority_fee_per_gas": (
            pa.uint64(),
            [_opt_int(r["max_priority_fee_per_gas"]) for r in rows],
        ),
        "max_fee_per_gas": (pa.uint64(), [_opt_int(r["max_fee_per_gas"]) for r in rows]),
        "success": (pa.bool_(), [receipts[r["hash"]]["status"] == "1" for r in rows]),
        "n_input_bytes": (pa.uint32(), [len(i) for i in inputs]),
        "n_input_zero_bytes": (pa.uint32(), [i.count(0) for i in inputs]),
        "n_input_nonzero_bytes": (pa.uint32(), [len(i) - i.count(0) for i in inputs]),
        "block_hash": (pa.binary(), [_bin(r["block_hash"]) for r in rows]),
        "timestamp": (pa.uint32(), [int(r["block_timestamp"]) for r in rows]),
        "chain_id": (pa.uint64(), [CHAIN_ID] * len(rows)),
    }
    # Small row groups, so that readers meet more than one (cryo's are larger).
    _write("transactions", columns, 64)


def blocks() -> None:
    by_number: dict[int, tuple[str, int]] = {}
    for r in _rows("transactions"):
        n = int(r["block_number"])
        seen = by_number.setdefault(n, (r["block_hash"], int(r["block_timestamp"])))
        assert seen == (r["block_hash"], int(r["block_timestamp"])), "one hash, one time a block"
    numbers = sorted(by_number)
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), "consecutive blocks"
    # A block's parent is the block before it; the first block's parent is
    # in no CSV, so it is null (cryo never writes a null parent_hash).
    parents = [None] + [_bin(by_number[n - 1][0]) for n in numbers[1:]]
    columns: dict[str, tuple[pa.DataType, list[Any]]] = {
        "block_number": (pa.uint32(), numbers),
        "block_hash": (pa.binary(), [_bin(by_number[n][0]) for n in numbers]),
        "parent_hash": (pa.binary(), parents),
        "timestamp": (pa.uint32(), [by_number[n][1] for n in numbers]),
        "chain_id": (pa.uint64(), [CHAIN_ID] * len(numbers)),
    }
    _write("blocks", columns, 1)


if __name__ == "__main__":
    logs()
    transactions()
    blocks()
    for path in sorted(HERE.glob("*.parquet")):
        print(f"{path.name}: {pq.ParquetFile(path).metadata.num_rows} rows")
