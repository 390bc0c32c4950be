"""Reading cryo ``blocks`` and ``transactions`` parquet files a block range at a time.

The reader process asks, chunk by chunk, for the rows of the blocks its
logs are in.  Chunks advance through the chain, so a file is read the same
way: row groups whose ``block_number`` range (from the statistics, or from
reading that one column once) misses the asked range are never read; a row
group that overlaps is read once, with only the columns the selection
needs, and dropped once the chunks have passed its last block.  Memory is
then about one row group of the selected columns, however large the file.
(A file whose row groups overlap each other's block ranges keeps more of
them at once; cryo writes them in block order.)

Hashes and addresses may be binary (cryo's default) or hex text (cryo
``--hex``); integers may be any Arrow integer, a bool (``success``), a
timestamp, or, for U256 values, cryo's ``_binary`` (big-endian bytes) and
``_string`` (decimal) forms.  Floats are refused: they are not exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import SourceError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["CryoTable", "python_values"]


class CryoTable:
    """One cryo parquet file, read by block range: only ``columns``, a row group at a time.

    Args:
        path: The file.
        what: Its dataset, for messages ("blocks", "transactions").
        columns: The columns to read; ``block_number`` is always among them.
    """

    def __init__(self, path: Path, what: str, columns: Sequence[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path, self.what = path, what
        self.columns = list(dict.fromkeys(["block_number", *columns]))
        try:
            self._file = pq.ParquetFile(path)
            index = self._file.schema_arrow.names.index("block_number")
            # (lowest block, highest block, row group) of each non-empty row group
            self._groups: list[tuple[int, int, int]] = []
            for group in range(self._file.metadata.num_row_groups):
                meta = self._file.metadata.row_group(group)
                if meta.num_rows == 0:
                    continue
                stats = meta.column(index).statistics
                if stats is not None and stats.has_min_max:
                    low, high = int(stats.min), int(stats.max)
                else:
                    numbers = self._file.read_row_group(group, columns=["block_number"]).column(0)
                    low, high = _min_max(numbers)
                self._groups.append((low, high, group))
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise SourceError(f"{what} file {path}: cannot read as parquet: {exc}") from None
        self._loaded: dict[int, Any] = {}

    def last_block(self) -> int | None:
        """The highest block number in the file, or None if it has no rows."""
        return max((high for _, high, _ in self._groups), default=None)

    def rows(self, low: int, high: int, key: str, wanted: Sequence[Any]) -> Any:
        """The rows of blocks ``low..high`` whose ``key`` column is one of ``wanted`` (an Arrow table).

        ``wanted`` holds block numbers (ints) or hashes (lowercase ``0x``
        hex), whichever ``key`` is.  Row groups that end below ``low`` are
        dropped from memory: the next call asks for higher blocks.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        pieces = []
        for first, last, group in self._groups:
            if last < low:
                self._loaded.pop(group, None)
                continue
            if first > high:
                continue
            table = self._loaded.get(group)
            if table is None:
                try:
                    table = self._file.read_row_group(group, columns=self.columns)
                except (OSError, ValueError, pa.ArrowException) as exc:
                    raise SourceError(
                        f"{self.what} file {self.path}: cannot read row group {group}: {exc}"
                    ) from None
                self._loaded[group] = table
            numbers = table.column("block_number")
            mask = pc.and_(pc.greater_equal(numbers, low), pc.less_equal(numbers, high))
            column = table.column(key)
            mask = pc.and_(
                mask, pc.is_in(_comparable(column), value_set=_value_set(column, wanted))
            )
            pieces.append(table.filter(pc.fill_null(mask, False)))
        if not pieces:
            return self._file.schema_arrow.empty_table().select(self.columns)
        return pa.concat_tables(pieces)


def _min_max(numbers: Any) -> tuple[int, int]:
    import pyarrow.compute as pc

    found = pc.min_max(numbers).as_py()
    if found["min"] is None:
        return 0, -1  # only nulls: overlaps no range
    return int(found["min"]), int(found["max"])


def _is_binary(typ: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
        or pa.types.is_fixed_size_binary(typ)
    )


def _comparable(column: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.utf8_lower(column)  # hex text may be any case
    return column


def _value_set(column: Any, wanted: Sequence[Any]) -> Any:
    import pyarrow as pa

    typ = column.type
    if _is_binary(typ):
        return pa.array([bytes.fromhex(h[2:]) for h in wanted], type=pa.large_binary()).cast(typ)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        # Hex text: with and without the 0x, as writers differ.
        return pa.array([*wanted, *(h[2:] for h in wanted)], type=pa.large_string()).cast(typ)
    return pa.array(wanted, type=pa.int64()).cast(typ)


def python_values(table: Any, column: str, kind: str, path: Path) -> list[Any]:
    """A column as Python values of ``kind``: "hex"/"hex?" (lowercase 0x text) or "int"/"int?".

    Raises:
        SourceError: the column's type cannot give that kind exactly.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    data = table.column(column)
    typ = data.type
    if kind.startswith("hex"):
        if _is_binary(typ):
            return ["0x" + v.hex() if v is not None else None for v in data.to_pylist()]
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            return [
                None if v is None else ("0x" + v[2:] if v[:2] in ("0x", "0X") else "0x" + v).lower()
                for v in data.to_pylist()
            ]
    elif pa.types.is_integer(typ):
        return list(data.to_pylist())
    elif pa.types.is_boolean(typ):
        return [None if v is None else int(v) for v in data.to_pylist()]
    elif pa.types.is_timestamp(typ):
        seconds = pa.timestamp("s", tz=typ.tz)
        return list(pc.cast(pc.cast(data, seconds, safe=False), pa.int64()).to_pylist())
    elif _is_binary(typ):
        return [None if v is None else int.from_bytes(v, "big") for v in data.to_pylist()]
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return [None if v is None else _int_text(v, column, path) for v in data.to_pylist()]
    elif pa.types.is_decimal(typ):
        return [None if v is None else int(v) for v in data.to_pylist()]
    raise SourceError(
        f"{path}: column {column} is of type {typ}, which cannot hold "
        f"{'hex data' if kind.startswith('hex') else 'exact integers'}."
    )


def _int_text(text: str, column: str, path: Path) -> int:
    try:
        return int(text, 16) if text[:2] in ("0x", "0X") else int(text)
    except ValueError:
        raise SourceError(f"{path}: column {column} holds {text!r}, not an integer.") from None
