"""The file log source: eth_getLogs JSON lines (plain or gzip'd) and cryo parquet.

``read_log_file`` is the floor of the whole pipeline: every log in the file
passes through it, and most are thrown away.  So it avoids all work it can
for the logs a chain does not want.

* JSON lines: the file is read (and gunzipped with zlib) in blocks of about
  1 MiB of whole lines.  Lines are selected in the raw bytes before any JSON
  parsing.  With up to 8 wanted topic0s, each one is looked for with
  ``bytes.find``.  With more, one regex pass reads every line's first topic
  and looks it up in a set.  Only the selected lines are parsed with
  orjson.  A line without a wanted topic0 can never match, so it costs
  almost nothing.  Searching is case-insensitive: a block holding any
  uppercase A-F is searched in a lowercased copy, where offsets stay the
  same.  The last line of each block is parsed too, to skip whole blocks
  before ``start_block`` and to stop after ``end_block``.
* Parquet: the filter runs as Arrow kernels on the ``topic0`` and
  ``block_number`` columns, one record batch at a time.  Row groups whose
  statistics put them outside the block range are not read at all.  Only
  the matching rows are turned into Python objects.

Validation follows the same economy.  A line that holds a wanted topic0 is
parsed.  Bad JSON, or a missing or wrongly typed ``topics`` or ``address``,
raises :class:`~indexer.SourceError` with the file, line and field.  Once
the line passes the filter, the other fields are checked the same way.
Lines without a wanted topic0 are never parsed, so they are never checked.

Chain order.  Logs must come in chain order: block number non-decreasing,
log index increasing within a block.  For JSON lines this is checked on the
logs the filter selects.  A parquet writer
such as Polars does not keep row order, and the cryo file in the shared test
data is shuffled, so rows *within one row group* may come in any order and
are sorted here.  Across row groups, blocks must be non-decreasing: a row
group may continue the block where the previous one ended.  Disorder raises
:class:`~indexer.SourceError` naming the file and the line or row (0-based,
as pyarrow and polars count rows).

Hex text is lowercased, but not validated character by character (see
``indexer._abi``): the decoder checks topics and data against the event.
"""

from __future__ import annotations

import itertools
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import ConfigError, SourceError
from ._log import RawLog

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["FileReadStats", "LogFilter", "last_block_in_file", "read_log_file"]

# Decompressed bytes handled per step: big enough that per-block Python
# overhead vanishes, small enough that memory stays flat.
_READ_SIZE = 1 << 20
# Parquet rows per Arrow record batch.
_BATCH_ROWS = 65_536
_HEX_DIGITS = frozenset("0123456789abcdef")
_UPPER_HEX = (b"A", b"B", b"C", b"D", b"E", b"F")


def _check_hex(value: object, digits: int, what: str) -> str:
    """Normalise ``value`` to lowercase ``0x`` + ``digits`` hex digits, or raise ConfigError."""
    if isinstance(value, str):
        text = value.lower()
        if len(text) == 2 + digits and text.startswith("0x") and _HEX_DIGITS.issuperset(text[2:]):
            return text
    raise ConfigError(f"{what} {value!r} is not 0x followed by {digits} hex digits")


class LogFilter:
    """Which logs a chain wants: topic0 -> allowed addresses (None = any address / wildcard).

    Topics and addresses are normalised to lowercase.  A malformed one raises
    :class:`~indexer.ConfigError`.
    """

    __slots__ = ("_wanted",)

    def __init__(self, wanted: Mapping[str, frozenset[str] | None]) -> None:
        normalised: dict[str, frozenset[str] | None] = {}
        for topic0, addresses in wanted.items():
            key = _check_hex(topic0, 64, "topic0")
            if addresses is None:
                normalised[key] = None
            else:
                normalised[key] = frozenset(_check_hex(a, 40, "address") for a in addresses)
        self._wanted = normalised

    @property
    def topics(self) -> frozenset[str]:
        """The wanted topic0 values (lowercase ``0x`` hex)."""
        return frozenset(self._wanted)

    def addresses(self, topic0: str) -> frozenset[str] | None:
        """The addresses allowed for ``topic0`` (None = any); KeyError if it is not wanted."""
        return self._wanted[topic0]

    def matches(self, address: str, topic0: str) -> bool:
        """True if a log from ``address`` with first topic ``topic0`` is wanted (lowercase hex)."""
        try:
            allowed = self._wanted[topic0]
        except KeyError:
            return False
        return allowed is None or address in allowed

    def __repr__(self) -> str:
        parts = [
            f"{t[:10]}…: {'any' if a is None else len(a)} address{'es' if a is None or len(a) != 1 else ''}"
            for t, a in self._wanted.items()
        ]
        return f"LogFilter({', '.join(parts)})"


@dataclass(slots=True)
class FileReadStats:
    """Counters one ``read_log_file`` call updates as it goes (pass one in to see them).

    ``lines_read`` counts JSON lines or parquet rows looked at, including
    those of skipped blocks.  ``lines_parsed`` counts those turned into
    Python objects (passed the cheap pre-filter).  ``logs_yielded`` counts
    logs delivered.  ``removed_skipped`` counts ``"removed": true`` logs
    dropped.
    """

    lines_read: int = 0
    lines_parsed: int = 0
    logs_yielded: int = 0
    removed_skipped: int = 0

    @property
    def lines_skipped(self) -> int:
        """Lines or rows read but not delivered (filtered out, out of range, removed)."""
        return self.lines_read - self.logs_yielded


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl.gz", ".ndjson.gz")):
        return "jsonl.gz"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    raise SourceError(
        f"log file {path}: unsupported file type; expected a name ending in "
        ".jsonl, .jsonl.gz or .parquet"
    )


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"log file {path} does not exist")
    if not path.is_file():
        raise SourceError(f"log file {path} is not a regular file")


def read_log_file(
    path: Path,
    *,
    log_filter: LogFilter,
    start_block: int,
    end_block: int | None,
    chunk_logs: int = 5000,
    stats: FileReadStats | None = None,
) -> Iterator[list[RawLog]]:
    """Yield the wanted logs of ``path`` in blocks ``start_block..end_block``, in chunks.

    Each chunk is a non-empty list of :class:`RawLog` in ``(block_number,
    log_index)`` order.  A chunk ends on a block boundary, so a block's logs
    are never split between two chunks.  A chunk holds about ``chunk_logs``
    logs: more when one block alone has more.  ``end_block=None`` reads to
    the end of the file.

    The format comes from the suffix: ``.jsonl``, ``.jsonl.gz`` (eth_getLogs
    objects, one per line) or ``.parquet`` (cryo columns).  A missing or
    unsupported file raises :class:`~indexer.SourceError` right away.
    Malformed or out-of-order content raises it when the reader reaches that
    content, naming the file and the line or row.  This is a plain
    synchronous generator: the runtime calls ``next()`` on it from a worker
    thread.
    """
    path = Path(path)
    kind = _kind(path)
    _check_exists(path)
    if chunk_logs < 1:
        raise ValueError(f"chunk_logs must be at least 1, got {chunk_logs}")
    counters = stats if stats is not None else FileReadStats()
    if kind == "parquet":
        return _read_parquet(path, log_filter, start_block, end_block, chunk_logs, counters)
    return _read_jsonl(
        path, kind == "jsonl.gz", log_filter, start_block, end_block, chunk_logs, counters
    )


# --------------------------------------------------------------------------
# JSON lines
# --------------------------------------------------------------------------


def _raw_chunks(path: Path, gz: bool) -> Iterator[bytes]:
    """Yield the (decompressed) content of ``path`` in pieces of roughly ``_READ_SIZE``."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise SourceError(f"log file {path}: cannot open: {exc}") from None
    try:
        if not gz:
            while chunk := f.read(_READ_SIZE):
                yield chunk
            return
        # zlib directly is about a third faster than gzip.GzipFile; wbits=31
        # still checks the gzip header and each member's CRC and length.
        inflate = zlib.decompressobj(31)
        started = False  # has the current gzip member received any input?
        while compressed := f.read(_READ_SIZE // 8):
            while True:
                if not started:
                    # Zero bytes may pad a gzip file after its last member
                    # (gzip.GzipFile allows it too).
                    compressed = compressed.lstrip(b"\x00")
                    if not compressed:
                        break
                started = True
                # max_length bounds memory even for data that inflates 1000x.
                out = inflate.decompress(compressed, _READ_SIZE)
                if out:
                    yield out
                if inflate.eof:
                    # Another gzip member may follow (files joined with cat).
                    compressed = inflate.unused_data
                    inflate = zlib.decompressobj(31)
                    started = False
                    continue
                compressed = inflate.unconsumed_tail
                if not compressed and len(out) < _READ_SIZE:
                    break  # needs more input
        if started and not inflate.eof:
            raise SourceError(f"log file {path}: the gzip stream is truncated")
    except (OSError, zlib.error) as exc:
        raise SourceError(f"log file {path}: cannot read (corrupt or truncated?): {exc}") from None
    finally:
        f.close()


def _blocks(path: Path, gz: bool) -> Iterator[bytes]:
    """Yield the file as blocks of whole lines (the last one may lack its newline)."""
    carry = b""
    for chunk in _raw_chunks(path, gz):
        cut = chunk.rfind(b"\n")
        if cut < 0:
            carry += chunk
            continue
        # Copying the carry (less than one line) is cheap; the big chunk is sliced once.
        yield carry + chunk[: cut + 1]
        carry = chunk[cut + 1 :]
    if carry:
        yield carry


def _quantity(value: object) -> int:
    """A JSON-RPC quantity: hex string (``"0x1f"``), decimal string or JSON integer."""
    if type(value) is int:
        return value
    if type(value) is str:
        return int(value, 0)
    raise TypeError(f"expected a hex quantity or an integer, got {value!r}")


def _last_block_of(block: bytes) -> int | None:
    """blockNumber of the last non-empty line of ``block``, or None if it does not parse."""
    end = len(block)
    while end > 0 and block[end - 1 : end] in (b"\n", b"\r", b" "):
        end -= 1
    start = block.rfind(b"\n", 0, end) + 1
    try:
        obj = orjson.loads(block[start:end])
        return _quantity(obj["blockNumber"])
    except (ValueError, TypeError, KeyError):
        return None


_FIELD_CHECKS: tuple[tuple[str, bool], ...] = (
    # (field, required)
    ("address", True),
    ("topics", True),
    ("data", True),
    ("blockNumber", True),
    ("logIndex", True),
    ("transactionHash", True),
    ("transactionIndex", False),
    ("blockHash", False),
    ("blockTimestamp", False),
)


def _diagnose(obj: Any, where: str, exc: BaseException) -> SourceError:
    """Find the field that made fast extraction fail and describe it precisely."""
    if not isinstance(obj, dict):
        return SourceError(
            f"{where}: expected a JSON object (an eth_getLogs log), got {type(obj).__name__}"
        )
    for name, required in _FIELD_CHECKS:
        if name not in obj or obj[name] is None:
            if required:
                return SourceError(f"{where}: missing field {name!r}")
            continue
        value = obj[name]
        if name in ("blockNumber", "logIndex", "transactionIndex", "blockTimestamp"):
            try:
                if _quantity(value) < 0:
                    return SourceError(f"{where}: field {name!r} is negative: {value!r}")
            except (TypeError, ValueError):
                return SourceError(
                    f"{where}: field {name!r} is not a hex quantity or integer: {value!r}"
                )
        elif name == "topics":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                return SourceError(
                    f"{where}: field 'topics' must be a list of hex strings, got {value!r}"
                )
            if len(value) > 4:
                return SourceError(
                    f"{where}: field 'topics' has {len(value)} entries; a log has at most 4"
                )
        elif not isinstance(value, str):
            return SourceError(f"{where}: field {name!r} must be a hex string, got {value!r}")
    return SourceError(f"{where}: malformed log: {type(exc).__name__}: {exc}")


# Above this many wanted topic0s, one regex pass over a block beats one
# bytes.find pass per topic (measured: a find pass costs about a tenth of
# the regex pass on eth_getLogs lines).
_MAX_FIND_NEEDLES = 8
_TOPIC0_RE = re.compile(rb'"topics"\s*:\s*\[\s*"0x([0-9a-f]{64})"')


def _spans_by_find(block: bytes, haystack: bytes, needles: list[bytes]) -> list[tuple[int, int]]:
    """(start, end) of each line of ``block`` whose text contains one of ``needles``."""
    limit = len(block)
    spans: dict[int, int] = {}
    for needle in needles:
        pos = haystack.find(needle)
        while pos >= 0:
            start = block.rfind(b"\n", 0, pos) + 1
            end = block.find(b"\n", pos)
            if end < 0:
                end = limit
            spans[start] = end
            pos = haystack.find(needle, end)
    return sorted(spans.items()) if len(needles) > 1 else list(spans.items())


def _spans_by_regex(
    block: bytes, haystack: bytes, wanted: frozenset[bytes]
) -> list[tuple[int, int]]:
    """(start, end) of each line whose first topic is wanted, plus every line the regex misses.

    A line the pattern does not recognise (other spacing, no topics, broken
    JSON) is returned too: parsing decides, so no wanted log is lost to an
    unusual spelling.
    """
    limit = len(block)
    spans: list[tuple[int, int]] = []
    expect = 0  # start of the first line not yet accounted for
    for m in _TOPIC0_RE.finditer(haystack):
        pos = m.start()
        start = block.rfind(b"\n", 0, pos) + 1
        if start < expect:
            continue  # a second match inside one line: the line is handled
        if start > expect:
            _add_lines(block, expect, start, spans)
        end = block.find(b"\n", pos)
        if end < 0:
            end = limit
        if m.group(1) in wanted:
            spans.append((start, end))
        expect = end + 1
    if expect < limit:
        _add_lines(block, expect, limit, spans)
    return spans


def _add_lines(block: bytes, start: int, stop: int, spans: list[tuple[int, int]]) -> None:
    """Append the non-blank lines of ``block[start:stop]`` to ``spans``."""
    while start < stop:
        end = block.find(b"\n", start, stop)
        if end < 0:
            end = stop
        if block[start:end].strip():
            spans.append((start, end))
        start = end + 1


def _read_jsonl(
    path: Path,
    gz: bool,
    log_filter: LogFilter,
    start_block: int,
    end_block: int | None,
    chunk_logs: int,
    stats: FileReadStats,
) -> Iterator[list[RawLog]]:
    topics = sorted(log_filter.topics)
    needles = [t[2:].encode("ascii") for t in topics]
    wanted = frozenset(needles)
    use_find = len(needles) <= _MAX_FIND_NEEDLES
    matches = log_filter.matches
    loads = orjson.loads
    json_error = orjson.JSONDecodeError
    stop_after = end_block if end_block is not None else -1

    lines_before = 0  # lines in all earlier blocks: line numbers for errors
    prev_block = -1
    prev_index = -1
    buf: list[RawLog] = []
    buf_block = -1

    if not needles:
        return  # nothing can match: do not even open the file
    for block in _blocks(path, gz):
        n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        stats.lines_read += n_lines
        # The file is in chain order, so a block whose last line is still
        # before start_block holds nothing we want: skip it unparsed.
        last_in_block = _last_block_of(block)
        if last_in_block is not None and last_in_block < start_block:
            lines_before += n_lines
            continue

        # eth_getLogs output is lowercase; only a block with an uppercase hex
        # digit needs a lowercased copy to search in (offsets are unchanged).
        upper = any(c in block for c in _UPPER_HEX)
        haystack = block.lower() if upper else block
        if use_find:
            spans = _spans_by_find(block, haystack, needles)
        else:
            spans = _spans_by_regex(block, haystack, wanted)

        past_end = False
        parsed = 0
        for start, end in spans:
            parsed += 1
            try:
                obj = loads(block[start:end])
            except json_error as exc:
                lineno = lines_before + block.count(b"\n", 0, start) + 1
                raise SourceError(
                    f"log file {path}, line {lineno}: not valid JSON: {exc}"
                ) from None
            try:
                topics_list = obj["topics"]
                address = obj["address"]
                # Checked before filtering, so a malformed line is never silently dropped.
                if type(topics_list) is not list or type(address) is not str:
                    raise TypeError("topics or address")
                if not topics_list:
                    continue  # no topic0: no filter can want it
                t0 = topics_list[0]
                if type(t0) is not str:
                    raise TypeError("topic0")
                if upper:
                    t0 = t0.lower()
                    address = address.lower()
                if not matches(address, t0):
                    continue
                if obj.get("removed") is True:
                    stats.removed_skipped += 1
                    continue
                # Quantities: hex strings per JSON-RPC, JSON integers also accepted.
                # int(s, 0) reads "0x..." as hex (and a bare decimal string as decimal).
                bn = obj["blockNumber"]
                if type(bn) is str:
                    bn = int(bn, 0)
                elif type(bn) is not int:
                    raise TypeError("blockNumber")
                li = obj["logIndex"]
                if type(li) is str:
                    li = int(li, 0)
                elif type(li) is not int:
                    raise TypeError("logIndex")
                if bn < prev_block or (bn == prev_block and li <= prev_index):
                    lineno = lines_before + block.count(b"\n", 0, start) + 1
                    raise SourceError(
                        f"log file {path}, line {lineno}: log (block {bn}, log index {li}) "
                        f"comes after (block {prev_block}, log index {prev_index}); the file "
                        "must be sorted by block number, then log index"
                    )
                prev_block = bn
                prev_index = li
                if bn < start_block:
                    continue
                if bn > stop_after >= 0:
                    past_end = True
                    break
                data = obj["data"]
                tx_hash = obj["transactionHash"]
                ti = obj.get("transactionIndex")
                if type(ti) is str:
                    ti = int(ti, 0)
                elif ti is not None and type(ti) is not int:
                    raise TypeError("transactionIndex")
                block_hash = obj.get("blockHash")
                ts = obj.get("blockTimestamp")
                if ts is not None and type(ts) is not int:
                    ts = _quantity(ts)
                # One combined type check keeps the common path short; _diagnose
                # finds the culprit when it fails.
                if (
                    type(data) is not str
                    or type(tx_hash) is not str
                    or len(topics_list) > 4
                    or (block_hash is not None and type(block_hash) is not str)
                    or li < 0
                ):
                    raise TypeError("a field has the wrong type")
                for t in topics_list:
                    if type(t) is not str:
                        raise TypeError("a topic is not a string")
                if upper:
                    topics_list = [t.lower() for t in topics_list]
                    data = data.lower()
                    tx_hash = tx_hash.lower()
                    if block_hash is not None:
                        block_hash = block_hash.lower()
            except SourceError:
                raise
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                lineno = lines_before + block.count(b"\n", 0, start) + 1
                raise _diagnose(obj, f"log file {path}, line {lineno}", exc) from None
            if bn != buf_block:
                # Only cut between blocks, never inside one.
                if len(buf) >= chunk_logs:
                    stats.logs_yielded += len(buf)
                    yield buf
                    buf = []
                buf_block = bn
            buf.append(
                RawLog(bn, li, tx_hash, address, tuple(topics_list), data, block_hash, ts, ti)
            )
        stats.lines_parsed += parsed
        lines_before += n_lines
        if past_end or (0 <= stop_after < (last_in_block if last_in_block is not None else -1)):
            break  # everything after this block is past end_block

    if buf:
        stats.logs_yielded += len(buf)
        yield buf


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


def _hex_column(values: list[Any], binary: bool) -> list[Any]:
    """Arrow column values (bytes or hex text) -> lowercase 0x hex strings (None stays None)."""
    if binary:
        return ["0x" + v.hex() if v is not None else None for v in values]
    return [
        None if v is None else ("0x" + v[2:] if v[:2] in ("0x", "0X") else "0x" + v).lower()
        for v in values
    ]


def _open_parquet(path: Path) -> Any:
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


def _read_parquet(
    path: Path,
    log_filter: LogFilter,
    start_block: int,
    end_block: int | None,
    chunk_logs: int,
    stats: FileReadStats,
) -> Iterator[list[RawLog]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    pf = _open_parquet(path)
    schema = pf.schema_arrow
    missing = [c for c in _PQ_REQUIRED if c not in schema.names]
    if missing:
        raise SourceError(
            f"log file {path}: parquet file lacks column(s) {', '.join(missing)}; "
            "expected cryo log columns " + ", ".join(_PQ_REQUIRED)
        )
    columns = list(_PQ_REQUIRED) + [c for c in _PQ_OPTIONAL if c in schema.names]
    binary: dict[str, bool] = {}
    for name in (
        "transaction_hash",
        "address",
        "topic0",
        "topic1",
        "topic2",
        "topic3",
        "data",
        "block_hash",
    ):
        if name in schema.names:
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
    buf: list[RawLog] = []
    buf_block = -1
    row_base = 0
    prev_group_last = -1

    def emit(rows: list[_Row]) -> Iterator[list[RawLog]]:
        nonlocal buf, buf_block
        for bn, _, _, log in rows:
            if bn != buf_block:
                # Only cut between blocks, never inside one.
                if len(buf) >= chunk_logs:
                    stats.logs_yielded += len(buf)
                    yield buf
                    buf = []
                buf_block = bn
            buf.append(log)

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
    if buf:
        stats.logs_yielded += len(buf)
        yield buf


# --------------------------------------------------------------------------
# Last block
# --------------------------------------------------------------------------


def last_block_in_file(path: Path) -> int | None:
    """The highest block number in the log file, or None if it holds no logs.

    Parquet: from row-group statistics (reading the ``block_number`` column
    only where a row group has none).  Plain JSON lines: the last non-empty
    line, found by reading backwards from the end.  Gzip'd JSON lines:
    decompressed once, parsing only the last line.  The file must be in
    chain order, as ``read_log_file`` requires.
    """
    path = Path(path)
    kind = _kind(path)
    _check_exists(path)
    if kind == "parquet":
        return _last_block_parquet(path)
    last: bytes | None = None
    if kind == "jsonl":
        last = _last_line_plain(path)
    else:
        for block in _blocks(path, True):
            stripped = block.rstrip()
            if stripped:
                last = stripped[stripped.rfind(b"\n") + 1 :]
    if last is None:
        return None
    try:
        obj = orjson.loads(last)
    except orjson.JSONDecodeError as exc:
        raise SourceError(f"log file {path}, last line: not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or "blockNumber" not in obj:
        raise SourceError(f"log file {path}, last line: missing field 'blockNumber'")
    try:
        return _quantity(obj["blockNumber"])
    except (TypeError, ValueError):
        raise SourceError(
            f"log file {path}, last line: field 'blockNumber' is not a hex quantity or integer: "
            f"{obj['blockNumber']!r}"
        ) from None


def _last_line_plain(path: Path) -> bytes | None:
    """The last non-blank line of a plain file, reading backwards in blocks."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            tail = b""
            pos = end
            while pos > 0:
                step = min(_READ_SIZE, pos)
                pos -= step
                f.seek(pos)
                tail = f.read(step) + tail
                stripped = tail.rstrip()
                nl = stripped.rfind(b"\n")
                if nl >= 0:
                    return stripped[nl + 1 :]
            stripped = tail.rstrip()
            return stripped or None
    except OSError as exc:
        raise SourceError(f"log file {path}: cannot read: {exc}") from None


def _last_block_parquet(path: Path) -> int | None:
    import pyarrow.compute as pc

    pf = _open_parquet(path)
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
