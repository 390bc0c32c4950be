"""Progress output: a live ``rich`` display on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from ..runtime import RunStatus

__all__ = ["LineReporter", "LiveReporter"]

log = logging.getLogger("indexer")


def _eta(status: RunStatus, processed: int, target: int | None, start: int) -> str:
    if target is None or processed >= target:
        return "-"
    done = processed - start + 1
    if done <= 0 or status.elapsed <= 0:
        return "?"
    rate = done / status.elapsed  # blocks per second so far
    left = (target - processed) / rate if rate else float("inf")
    if left == float("inf"):
        return "?"
    return f"{int(left // 60)}m{int(left % 60):02d}s"


class LiveReporter:
    """Renders a table per update inside a ``rich.live.Live``."""

    def __init__(self, console: Console | None = None) -> None:
        # rich is imported here, on a terminal only: runs without one
        # (services, benchmarks, spawned children) skip its ~40 ms of imports.
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(stderr=True)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveReporter:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def __call__(self, status: RunStatus) -> None:
        from rich.table import Table

        table = Table(
            title=f"indexing — {status.events:,} events, {status.events_per_second:,.0f} events/s"
        )
        for col in ("chain", "block", "target", "%", "committed", "events", "ETA"):
            table.add_column(col, justify="right")
        for c in status.chains:
            span = (c.target_block - c.start_block + 1) if c.target_block is not None else None
            pct = f"{100 * (c.processed_block - c.start_block + 1) / span:.1f}" if span else "-"
            table.add_row(
                str(c.chain_id),
                f"{c.processed_block:,}",
                f"{c.target_block:,}" if c.target_block is not None else "head",
                pct,
                f"{c.committed_block:,}",
                f"{c.events:,}",
                _eta(status, c.processed_block, c.target_block, c.start_block),
            )
        table.caption = (
            f"in memory {status.in_memory:,} / target {status.target:,} · writer lag {status.writer_lag} checkpoints"
            f" · stalled on writer {status.stalled_seconds:.1f}s{stall_text(status)}"
        )
        self.live.update(table)


class LineReporter:
    """Plain periodic log lines, for logs and pipes."""

    def __call__(self, status: RunStatus) -> None:
        chains = "; ".join(
            f"chain {c.chain_id} block {c.processed_block:,}/{c.target_block if c.target_block is not None else 'head'}"
            f" (committed {c.committed_block:,})"
            for c in status.chains
        )
        log.info(
            "%s | %s events, %.0f events/s | in memory %s/%s | writer lag %d%s",
            chains,
            f"{status.events:,}",
            status.events_per_second,
            f"{status.in_memory:,}",
            f"{status.target:,}",
            status.writer_lag,
            stall_text(status),
        )


def stall_text(status: RunStatus) -> str:
    """`` | STALLED chain 1 (420 s, waiting on ...)`` for each stalled chain, or nothing."""
    return "".join(
        f" | STALLED chain {s.chain_id} ({s.seconds:.0f} s, waiting on {s.waiting_on})"
        for s in status.stalls
    )
