"""Which logs a chain wants (``LogFilter``), read statistics, and shared constants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from ._log import RawLog

__all__ = ["FileReadStats", "LogFilter", "chunk_at_blocks"]

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
