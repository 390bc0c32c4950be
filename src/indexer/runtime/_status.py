"""What a run reports: its status while it runs, and its summary at the end."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ._options import ChainStatus, RunStatus, RunSummary

if TYPE_CHECKING:
    import collections
    from collections.abc import Sequence

    from ..config import ProjectConfig
    from ..store import Store
    from ._processor import Processor
    from ._watchdog import Watchdog
    from ._writer import Writer

__all__ = ["run_status", "run_summary"]


def run_status(
    config: ProjectConfig,
    processor: Processor,
    writer: Writer,
    store: Store,
    watchdog: Watchdog,
    *,
    started: float,
    stalled: float,
    samples: collections.deque[tuple[float, int]],
) -> RunStatus:
    """The run's status now; ``samples`` (time, events) is the rate's window, updated here."""
    now = time.perf_counter()
    events = processor.events_total
    # Rate over the last ~10 s of samples: events arrive a batch at a
    # time, so a short window would flicker between 0 and bursts.
    samples.append((now, events))
    while len(samples) > 2 and now - samples[1][0] > 10:
        samples.popleft()
    t0, e0 = samples[0]
    rate = (events - e0) / (now - t0) if now > t0 else 0.0
    chains = []
    committed = writer.statistics().committed_blocks
    for c in config.chains:
        block, total = processor.progress.get(c.id, (c.start_block - 1, 0))
        chains.append(
            ChainStatus(
                c.id,
                c.start_block,
                c.end_block,
                block,
                committed.get(c.id, c.start_block - 1),
                total,
                processor.heads.get(c.id),
            )
        )
    return RunStatus(
        elapsed=now - started,
        chains=tuple(chains),
        events=events,
        events_per_second=rate,
        in_memory=store.size(),
        target=store.target,
        writer_lag=store.processed - store.committed,
        stalled_seconds=stalled,
        stalls=tuple(watchdog.stalls.values()),
    )


def run_summary(
    processor: Processor,
    writer: Writer,
    store: Store,
    *,
    started: float,
    stalled: float,
    stopped: bool,
    url: str,
    peak_in_memory: int,
    rollbacks: Sequence[tuple[int, int, int, float]],
) -> RunSummary:
    """The summary ``run_project`` returns."""
    p, w = processor, writer.statistics()
    return RunSummary(
        events=p.events_total,
        seconds=time.perf_counter() - started,
        chains={c: (w.committed_blocks.get(c, -1), e) for c, (_b, e) in p.progress.items()},
        skipped=dict(p.skipped),
        writes=w.writes,
        write_seconds=w.write_seconds,
        stalled_seconds=stalled,
        handler_seconds=p.handler_seconds,
        load_seconds=p.load_seconds,
        stopped=stopped,
        database_url=url,
        peak_in_memory=peak_in_memory,
        evictions=store.statistics().get("evictions", 0),
        rollbacks=list(rollbacks),
    )
