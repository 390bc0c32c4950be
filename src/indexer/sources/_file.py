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
``indexer.abi``): the decoder checks topics and data against the event.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from .._errors import ConfigError, SourceError
from ._filter import normalise_hex
from ._jsonl import last_line, quantity, read_jsonl, topic0s_jsonl
from ._parquet import last_block_parquet, read_parquet, topic0s_parquet
from ._read_stats import FileReadStats

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from ._filter import LogFilter
    from ._log import RawLog

__all__ = ["chunk_at_blocks", "last_block_in_file", "read_log_file", "topic0s_in_file"]


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
        logs = read_parquet(path, log_filter, start_block, end_block, counters)
    else:
        logs = read_jsonl(path, kind == "jsonl.gz", log_filter, start_block, end_block, counters)
    return chunk_at_blocks(logs, chunk_logs, counters)


def chunk_at_blocks(
    logs: Iterable[RawLog], chunk_logs: int, stats: FileReadStats
) -> Iterator[list[RawLog]]:
    """Group ``logs`` (in chain order) into lists of about ``chunk_logs``.

    A list is cut only between blocks, never inside one: a batch always
    holds whole blocks, so each checkpoint is complete when it is written.
    """
    buf: list[RawLog] = []
    buf_block = -1
    for log in logs:
        bn = log[0]
        if bn != buf_block:
            if len(buf) >= chunk_logs:
                stats.logs_yielded += len(buf)
                yield buf
                buf = []
            buf_block = bn
        buf.append(log)
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
        return last_block_parquet(path)
    last = last_line(path, kind == "jsonl.gz")
    if last is None:
        return None
    try:
        obj = orjson.loads(last)
    except orjson.JSONDecodeError as exc:
        raise SourceError(f"log file {path}, last line: not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or "blockNumber" not in obj:
        raise SourceError(f"log file {path}, last line: missing field 'blockNumber'")
    try:
        return quantity(obj["blockNumber"])
    except (TypeError, ValueError):
        raise SourceError(
            f"log file {path}, last line: field 'blockNumber' is not a hex quantity or integer: "
            f"{obj['blockNumber']!r}"
        ) from None


# --------------------------------------------------------------------------
# The topic0s of a file
# --------------------------------------------------------------------------


def topic0s_in_file(path: Path) -> set[str]:
    """Every well-formed first topic in a log file (lowercase ``0x`` hex).

    Reads the whole file (every line is parsed): for tests and tools that
    want "every log with a topic", not for indexing.
    """
    path = Path(path)
    kind = _kind(path)
    found = topic0s_parquet(path) if kind == "parquet" else topic0s_jsonl(path, kind == "jsonl.gz")
    out: set[str] = set()
    for value in found:
        text = "0x" + value.hex() if isinstance(value, bytes) else value
        if isinstance(text, str):
            text = text if text[:2] in ("0x", "0X") else "0x" + text  # cryo text may lack 0x
            # A malformed topic would make LogFilter raise; the reader never selects it anyway.
            with contextlib.suppress(ConfigError):
                out.add(normalise_hex(text, 64, "topic0"))
    return out
