"""Reading eth_getLogs JSON lines (plain or gzip'd): see ``_file.py`` for the approach."""

from __future__ import annotations

import os
import re
import zlib
from typing import TYPE_CHECKING, Any

import orjson

from .._errors import SourceError
from ._log import RawLog

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from ._filter import LogFilter
    from ._read_stats import FileReadStats

__all__ = ["blocks_of_lines", "last_line", "quantity", "read_jsonl", "topic0s_jsonl"]

# Decompressed bytes handled per step: big enough that per-block Python
# overhead vanishes, small enough that memory stays flat.
_READ_SIZE = 1 << 20
_UPPER_HEX = (b"A", b"B", b"C", b"D", b"E", b"F")

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


def blocks_of_lines(path: Path, gz: bool) -> Iterator[bytes]:
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


def quantity(value: object) -> int:
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
        return quantity(obj["blockNumber"])
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
                if quantity(value) < 0:
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
# A block in which at least this share of the lines held a wanted topic0
# makes the next block "dense": split into lines and parsed whole (see
# read_jsonl).  0 splits every block, above 1 none.
_DENSE_SHARE = 0.5
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


def _line_count(block: bytes) -> int:
    """Lines in ``block`` (the last one may lack its newline)."""
    return block.count(b"\n") + (not block.endswith(b"\n"))


def _holds_needle(line: bytes, needles: list[bytes]) -> bool:
    """True if the (lowercase) ``line`` contains a wanted topic0: the search would parse it."""
    return any(needle in line for needle in needles)


def _line_number(block: bytes, spans: list[tuple[int, int]] | None, i: int) -> int:
    """1-based line number in ``block`` of the ``i``-th line parsed (``spans`` None: split)."""
    if spans is None:
        return i + 1
    return block.count(b"\n", 0, spans[i][0]) + 1


def _add_lines(block: bytes, start: int, stop: int, spans: list[tuple[int, int]]) -> None:
    """Append the non-blank lines of ``block[start:stop]`` to ``spans``."""
    while start < stop:
        end = block.find(b"\n", start, stop)
        if end < 0:
            end = stop
        if block[start:end].strip():
            spans.append((start, end))
        start = end + 1


def read_jsonl(
    path: Path,
    gz: bool,
    log_filter: LogFilter,
    start_block: int,
    end_block: int | None,
    stats: FileReadStats,
) -> Iterator[RawLog]:
    topics = sorted(log_filter.topics)
    needles = [t[2:].encode("ascii") for t in topics]
    wanted = frozenset(needles)
    use_find = len(needles) <= _MAX_FIND_NEEDLES
    matches = log_filter.matches
    loads = orjson.loads
    new = tuple.__new__
    json_error = orjson.JSONDecodeError
    stop_after = end_block if end_block is not None else -1

    lines_before = 0  # lines in all earlier blocks: line numbers for errors
    prev_block = -1
    prev_index = -1
    # Whether the last block was mostly wanted lines (see _DENSE_SHARE).
    dense = _DENSE_SHARE <= 0

    if not needles:
        return  # nothing can match: do not even open the file
    for block in blocks_of_lines(path, gz):
        # The file is in chain order, so a block whose last line is still
        # before start_block holds nothing we want: skip it unparsed.
        last_in_block = _last_block_of(block)
        if last_in_block is not None and last_in_block < start_block:
            n_lines = _line_count(block)
            stats.lines_read += n_lines
            lines_before += n_lines
            continue

        # eth_getLogs output is lowercase; only a block with an uppercase hex
        # digit needs a lowercased copy to search in (offsets are unchanged).
        upper = any(c in block for c in _UPPER_HEX)
        lines: list[bytes]
        spans: list[tuple[int, int]] | None
        if dense and not upper:
            # Most lines are wanted: splitting in C beats finding each line's
            # needle and slicing it out (on the 1M-log benchmark file, 95 %
            # wanted: a fifth fewer instructions a log; docs/performance.md).
            # Every line is parsed then, so one without a needle is skipped
            # when it fails, as the search would never have looked at it.
            lines, spans = block.split(b"\n"), None
            # The split counts the lines: counting them again costs as much.
            n_lines = len(lines) - (not lines[-1])
        else:
            n_lines = _line_count(block)
            haystack = block.lower() if upper else block
            if use_find:
                spans = _spans_by_find(block, haystack, needles)
            else:
                spans = _spans_by_regex(block, haystack, wanted)
            lines = [block[start:end] for start, end in spans]
        stats.lines_read += n_lines

        past_end = False
        parsed = matched = 0
        for i, line in enumerate(lines):
            if spans is None and not line:
                continue
            parsed += 1
            try:
                obj = loads(line)
            except json_error as exc:
                if spans is None and not _holds_needle(line, needles):
                    parsed -= 1
                    continue
                lineno = lines_before + _line_number(block, spans, i)
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
                matched += 1
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
                    lineno = lines_before + _line_number(block, spans, i)
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
                    ts = quantity(ts)
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
                if spans is None and not _holds_needle(line, needles):
                    continue
                lineno = lines_before + _line_number(block, spans, i)
                raise _diagnose(obj, f"log file {path}, line {lineno}", exc) from None
            # tuple.__new__ skips the NamedTuple's Python-level constructor
            # (a third of a microsecond a log).
            yield new(
                RawLog, (bn, li, tx_hash, address, tuple(topics_list), data, block_hash, ts, ti)
            )
        stats.lines_parsed += parsed
        dense = matched >= _DENSE_SHARE * n_lines
        lines_before += n_lines
        if past_end or (0 <= stop_after < (last_in_block if last_in_block is not None else -1)):
            break  # everything after this block is past end_block


def last_line(path: Path, gz: bool) -> bytes | None:
    """The last non-blank line of the file (None if it has none)."""
    if not gz:
        return _last_line_plain(path)
    last: bytes | None = None
    for block in blocks_of_lines(path, True):
        stripped = block.rstrip()
        if stripped:
            last = stripped[stripped.rfind(b"\n") + 1 :]
    return last


def _last_line_plain(path: Path) -> bytes | None:
    """The last non-blank line of a plain (not gzip'd) file, reading backwards in blocks."""
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


def topic0s_jsonl(path: Path, gz: bool) -> set[str]:
    """Every string first topic in the file, as written (every line is parsed)."""
    found: set[str] = set()
    for block in blocks_of_lines(path, gz):
        for line in filter(bytes.strip, block.splitlines()):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise SourceError(f"log file {path}: not valid JSON: {exc}") from None
            topics = obj.get("topics") if isinstance(obj, dict) else None
            if isinstance(topics, list) and topics and isinstance(topics[0], str):
                found.add(topics[0])
    return found
