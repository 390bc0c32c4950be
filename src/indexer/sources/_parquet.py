"""Reading cryo parquet exports: see ``_file.py`` for the approach."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from .._errors import SourceError
from ._log import RawLog

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from ._filter import LogFilter
    from ._read_stats import FileReadStats

__all__ = ["last_block_parquet", "read_parquet", "topic0s_parquet"]

# Rows per Arrow record batch.
_BATCH_ROWS = 65_536

# --------------------------------------------------------------------------
# Parquet (cryo)
# --------------------------------------------------------------------------

_PQ_REQUIRED = (
    "block_number",
    "log_index",
    "transaction_hash",
    "address",
    "topic0",
    "topic1",
    "topic2",
    "topic3",
    "data",
)
_PQ_OPTIONAL = ("transaction_index", "block_hash", "block_timestamp")
# Integer columns; every other column holds hex data (binary or text).
_PQ_QUANTITIES = frozenset({"block_number", "log_index", "transaction_index", "block_timestamp"})


def _hex_column(values: list[Any], binary: bool) -> list[Any]:
    """Arrow column values (bytes or hex text) -> lowercase 0x hex strings (None stays None)."""
    if binary:
        return ["0x" + v.hex() if v is not None else None for v in values]
    return [
        None if v is None else ("0x" + v[2:] if v[:2] in ("0x", "0X") else "0x" + v).lower()
        for v in values
    ]


def _parquet_file(path: Path) -> Any:
    """The file as a pyarrow ``ParquetFile`` (metadata read, no row yet), or SourceError."""
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise SourceError(f"log file {path}: cannot read as parquet: {exc}") from None


# (block_number, log_index, row number in the file, log)
_Row = tuple[int, int, int, RawLog]


def _first_row_where(table: Any, mask: Any) -> int | None:
    """The file row number of the first row of ``table`` where ``mask`` holds, or None."""
    import pyarrow.compute as pc

    hits = pc.indices_nonzero(pc.fill_null(mask, False))
    if len(hits) == 0:
        return None
    return int(table.column("__row")[hits[0].as_py()].as_py())


def _parquet_rows(
    path: Path, table: Any, binary: dict[str, bool], log_filter: LogFilter
) -> list[_Row]:
    """Turn a filtered, sorted Arrow table into (block, log index, row, RawLog) tuples."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # Nulls are checked with Arrow kernels up front, so the per-row loop need not.
    for name in ("block_number", "log_index", "transaction_hash", "address", "data"):
        if table.column(name).null_count:
            row = _first_row_where(table, pc.is_null(table.column(name)))
            raise SourceError(f"log file {path}, row {row}: column {name} is null")
    for before, after in (("topic1", "topic2"), ("topic2", "topic3"), ("topic1", "topic3")):
        gap = pc.and_(pc.is_null(table.column(before)), pc.is_valid(table.column(after)))
        row = _first_row_where(table, gap)
        if row is not None:
            raise SourceError(
                f"log file {path}, row {row}: {before} is null but {after} is not; "
                "topics must be filled from topic0 on"
            )

    n = table.num_rows
    names = table.column_names
    cols: dict[str, list[Any]] = {}
    for name in ("transaction_hash", "address", "topic0", "topic1", "topic2", "topic3", "data"):
        cols[name] = _hex_column(table.column(name).to_pylist(), binary[name])
    cols["block_hash"] = (
        _hex_column(table.column("block_hash").to_pylist(), binary["block_hash"])
        if "block_hash" in names
        else [None] * n
    )
    if "block_timestamp" in names:
        ts_col = table.column("block_timestamp")
        if pa.types.is_timestamp(ts_col.type):
            # Seconds since the epoch, whatever the unit and time zone.
            seconds = pa.timestamp("s", tz=ts_col.type.tz)
            ts_col = pc.cast(pc.cast(ts_col, seconds, safe=False), pa.int64())
        cols["block_timestamp"] = ts_col.to_pylist()
    else:
        cols["block_timestamp"] = [None] * n
    cols["transaction_index"] = (
        table.column("transaction_index").to_pylist()
        if "transaction_index" in names
        else [None] * n
    )

    # All-wildcard filters (the common case) need no per-row address check.
    restricted = any(log_filter.addresses(t) is not None for t in log_filter.topics)
    matches = log_filter.matches
    rows: list[_Row] = []
    append = rows.append
    for bn, li, row, tx_hash, address, t0, t1, t2, t3, data, block_hash, ts, ti in zip(
        table.column("block_number").to_pylist(),
        table.column("log_index").to_pylist(),
        table.column("__row").to_pylist(),
        cols["transaction_hash"],
        cols["address"],
        cols["topic0"],
        cols["topic1"],
        cols["topic2"],
        cols["topic3"],
        cols["data"],
        cols["block_hash"],
        cols["block_timestamp"],
        cols["transaction_index"],
        strict=True,
    ):
        if restricted and not matches(address, t0):
            continue
        topics = (
            (t0,)
            if t1 is None
            else (t0, t1)
            if t2 is None
            else (t0, t1, t2)
            if t3 is None
            else (t0, t1, t2, t3)
        )
        append((bn, li, row, RawLog(bn, li, tx_hash, address, topics, data, block_hash, ts, ti)))
    return rows


def read_parquet(
    path: Path,
    log_filter: LogFilter,
    start_block: int,
    end_block: int | None,
    stats: FileReadStats,
) -> Iterator[RawLog]:
    import pyarrow as pa
    import pyarrow.compute as pc

    pf = _parquet_file(path)
    schema = pf.schema_arrow
    missing = [c for c in _PQ_REQUIRED if c not in schema.names]
    if missing:
        raise SourceError(
            f"log file {path}: parquet file lacks column(s) {', '.join(missing)}; "
            "expected cryo log columns " + ", ".join(_PQ_REQUIRED)
        )
    columns = list(_PQ_REQUIRED) + [c for c in _PQ_OPTIONAL if c in schema.names]
    binary: dict[str, bool] = {}
    for name in columns:
        if name not in _PQ_QUANTITIES:
            typ = schema.field(name).type
            binary[name] = (
                pa.types.is_binary(typ)
                or pa.types.is_large_binary(typ)
                or pa.types.is_fixed_size_binary(typ)
            )
    topic_type = schema.field("topic0").type
    wanted = sorted(log_filter.topics)
    if binary["topic0"]:
        value_set = pa.array([bytes.fromhex(t[2:]) for t in wanted], type=pa.large_binary())
    else:
        # Hex-text topics: match with and without the 0x, as writers differ.
        value_set = pa.array(wanted + [t[2:] for t in wanted], type=pa.large_string())
    value_set = value_set.cast(topic_type)
    block_number_index = schema.names.index("block_number")
    metadata = pf.metadata
    sort_keys = [("block_number", "ascending"), ("log_index", "ascending")]

    held: list[_Row] = []  # rows of the last block seen, not yet emitted
    row_base = 0
    prev_group_last = -1

    def emit(rows: list[_Row]) -> Iterator[RawLog]:
        for _, _, _, log in rows:
            yield log

    for group in range(metadata.num_row_groups):
        group_meta = metadata.row_group(group)
        group_rows = group_meta.num_rows
        col_stats = group_meta.column(block_number_index).statistics
        in_range = True
        if col_stats is not None and col_stats.has_min_max:
            in_range = not (
                col_stats.max < start_block or (end_block is not None and col_stats.min > end_block)
            )
        pieces: list[Any] = []
        if wanted and in_range:
            offset = row_base
            try:
                for batch in pf.iter_batches(
                    batch_size=_BATCH_ROWS, row_groups=[group], columns=columns
                ):
                    stats.lines_read += batch.num_rows
                    bn_col = batch.column("block_number")
                    topic0 = batch.column("topic0")
                    if not binary["topic0"]:
                        topic0 = pc.utf8_lower(topic0)  # hex text may be any case
                    mask = pc.is_in(topic0, value_set=value_set)
                    mask = pc.and_(mask, pc.greater_equal(bn_col, start_block))
                    if end_block is not None:
                        mask = pc.and_(mask, pc.less_equal(bn_col, end_block))
                    mask = pc.fill_null(mask, False)
                    if pc.any(mask).as_py():
                        numbers = pa.array(range(offset, offset + batch.num_rows), type=pa.int64())
                        pieces.append(batch.append_column("__row", numbers).filter(mask))
                    offset += batch.num_rows
            except (OSError, pa.ArrowException) as exc:
                raise SourceError(
                    f"log file {path}: cannot read row group {group}: {exc}"
                ) from None
        else:
            # Nothing wanted, or the whole row group is out of range: not even read.
            stats.lines_read += group_rows
        row_base += group_rows
        if not pieces:
            continue
        table = pa.Table.from_batches(pieces)
        stats.lines_parsed += table.num_rows
        # Row order inside a row group carries no meaning (see module docstring).
        table = table.take(pc.sort_indices(table, sort_keys=sort_keys))
        rows = _parquet_rows(path, table, binary, log_filter)
        if not rows:
            continue
        first_block = rows[0][0]
        if first_block < prev_group_last:
            raise SourceError(
                f"log file {path}, row {rows[0][2]}: row group {group} has block {first_block}, "
                f"but an earlier row group already reached block {prev_group_last}; row groups "
                "must be in block order"
            )
        if held and held[0][0] == first_block:
            rows = sorted(held + rows, key=lambda r: (r[0], r[1]))
        elif held:
            yield from emit(held)
        held = []
        for a, b in itertools.pairwise(rows):
            if a[0] == b[0] and a[1] == b[1]:
                raise SourceError(
                    f"log file {path}, rows {a[2]} and {b[2]}: both hold block {a[0]}, "
                    f"log index {a[1]}; each log must appear once"
                )
        prev_group_last = rows[-1][0]
        # The next row group may continue this group's last block: hold it back.
        cut = len(rows)
        while cut > 0 and rows[cut - 1][0] == prev_group_last:
            cut -= 1
        held = rows[cut:]
        yield from emit(rows[:cut])
    if held:
        yield from emit(held)


def last_block_parquet(path: Path) -> int | None:
    """The highest block number in the file (row-group statistics where there are some)."""
    import pyarrow.compute as pc

    pf = _parquet_file(path)
    if "block_number" not in pf.schema_arrow.names:
        raise SourceError(f"log file {path}: parquet file lacks column block_number")
    index = pf.schema_arrow.names.index("block_number")
    best: int | None = None
    for group in range(pf.metadata.num_row_groups):
        rg = pf.metadata.row_group(group)
        if rg.num_rows == 0:
            continue
        col_stats = rg.column(index).statistics
        if col_stats is not None and col_stats.has_min_max:
            high = int(col_stats.max)
        else:
            value = pc.max(pf.read_row_group(group, columns=["block_number"]).column(0)).as_py()
            if value is None:
                continue
            high = int(value)
        best = high if best is None else max(best, high)
    return best


def topic0s_parquet(path: Path) -> set[Any]:
    """Every distinct ``topic0`` value of the file (bytes or text, as stored)."""
    import pyarrow.compute as pc

    parquet = _parquet_file(path)
    if "topic0" not in parquet.schema_arrow.names:
        return set()  # the reader names the missing column
    column = parquet.read(columns=["topic0"]).column("topic0")
    return set(pc.unique(column).to_pylist())
