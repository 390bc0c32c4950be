"""``FileReadStats``: what one read of a log file looked at, parsed and delivered."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FileReadStats"]


@dataclass(slots=True)
class FileReadStats:
    """Counters one ``read_log_file`` call updates as it goes (pass one in to see them).

    ``lines_read`` counts JSON lines or parquet rows looked at, including
    those of skipped blocks.  ``lines_parsed`` counts those turned into
    Python objects: the lines that passed the cheap topic0 pre-filter, and
    every line of a block read whole (one after a block of mostly wanted
    lines; ``_jsonl.py``).  ``logs_yielded`` counts
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
