"""The figures of ``indexer run``'s summary lines, parsed from its standard output."""

from __future__ import annotations

import re
from typing import Any

_DONE = re.compile(r"^(done|stopped): ([\d,]+) events in ([\d.]+)s", re.M)
_CHAIN = re.compile(r"chain (\d+): committed through block ([\d,]+), ([\d,]+) events in total")
_SKIPPED = re.compile(r"chain (\d+): skipped ([\d,]+) logs")
_WRITES = re.compile(
    r"writes: (\d+) \(([\d.]+)s in the writer, loop stalled ([\d.]+)s\); "
    r"handlers ([\d.]+)s; loads ([\d.]+)s"
)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def parse_summary(stdout: str) -> dict[str, Any]:
    """The figures of ``indexer run``'s summary; keys are absent when a line is missing."""
    out: dict[str, Any] = {}
    if m := _DONE.search(stdout):
        out["stopped"] = m.group(1) == "stopped"
        out["events"] = _int(m.group(2))
        out["seconds"] = float(m.group(3))
        out["events_per_second"] = out["events"] / out["seconds"] if out["seconds"] > 0 else None
    if m := _CHAIN.search(stdout):
        out["committed_block"] = _int(m.group(2))
        out["chain_events_total"] = _int(m.group(3))
    out["skipped"] = sum(_int(m.group(2)) for m in _SKIPPED.finditer(stdout))
    if m := _WRITES.search(stdout):
        out["writes"] = int(m.group(1))
        out["write_seconds"] = float(m.group(2))
        out["stalled_seconds"] = float(m.group(3))
        out["handler_seconds"] = float(m.group(4))
        out["load_seconds"] = float(m.group(5))
    return out
