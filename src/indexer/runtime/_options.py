"""What a run is given and what it reports: options, progress snapshots, the summary.

Kept apart from the loop in ``_run.py`` so that the CLI, the testing kit and
displays can depend on these plain records without the machinery.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .._metrics import Metrics
from ..persist import DEFAULT_RETRY_SECONDS, start_embedded
from ._handoff import DEFAULT_MIN_INTERVAL
from ._watchdog import DEFAULT_STALL_SECONDS, Stall

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..config import ProjectConfig
    from ..persist import Changeset

__all__ = [
    "DEFAULT_TARGET",
    "TARGET_ENV",
    "ChainStatus",
    "RunOptions",
    "RunStatus",
    "RunSummary",
    "resolve_database",
    "target_from_env",
]

TARGET_ENV = "INDEXER_TARGET_IN_MEMORY_ENTITIES"
DEFAULT_TARGET = 100_000


def target_from_env(environ: dict[str, str] | None = None) -> int:
    raw = (environ if environ is not None else os.environ).get(TARGET_ENV)
    if raw is None or raw == "":
        return DEFAULT_TARGET
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(
            f"{TARGET_ENV}={raw!r}: expected a positive integer (objects held in memory)."
        )
    return value


@dataclass
class RunOptions:
    """How to run a project (everything the CLI flags control)."""

    reset: bool = False
    #: With ``reset``: keep the effect caches (``indexer dev``'s reloads).
    keep_caches: bool = False
    target: int = DEFAULT_TARGET
    database_url: str | None = None
    # Await every write before processing the next batch (benchmark baseline).
    sync_writes: bool = False
    reporter: Callable[[RunStatus], None] | None = None
    report_interval: float = 1.0
    handle_signals: bool = True
    fault: Callable[[str], None] | None = None
    # Test hook: awaited by the writer before each transaction.
    pre_write: Callable[[Changeset], Awaitable[None]] | None = None
    write_interval: float = DEFAULT_MIN_INTERVAL
    chunk_logs: int = 2000
    metrics: Metrics = field(default_factory=Metrics)
    # Overrides of RpcSourceOptions fields (spans, timeouts, client retry
    # settings) for tests and benchmarks.
    rpc_tuning: dict[str, Any] = field(default_factory=dict)
    # Asked when the signal watcher starts: True if a stop was requested
    # before it could listen (the CLI notes signals from its first moment).
    stop_early: Callable[[], bool] | None = None
    # How long the writer keeps retrying transient database errors.
    db_retry_seconds: float = DEFAULT_RETRY_SECONDS
    # A chain whose committed block stands still this long while it has
    # blocks to index is reported as stalled (see _watchdog.py); inf: off.
    stall_seconds: float = DEFAULT_STALL_SECONDS


@dataclass(frozen=True)
class ChainStatus:
    chain_id: int
    start_block: int
    target_block: int | None
    processed_block: int
    committed_block: int
    events: int
    # The newest head the chain's source reported (None for files).
    head_block: int | None = None


@dataclass(frozen=True)
class RunStatus:
    """A progress snapshot for displays."""

    elapsed: float
    chains: tuple[ChainStatus, ...]
    events: int
    events_per_second: float
    in_memory: int
    target: int
    writer_lag: int  # processed checkpoints not yet committed
    stalled_seconds: float
    # Chains the watchdog finds stalled now (committed block not moving).
    stalls: tuple[Stall, ...] = ()


@dataclass
class RunSummary:
    """What a finished run did."""

    events: int
    seconds: float
    chains: dict[int, tuple[int, int]]  # chain -> (committed block, events processed in total)
    skipped: dict[tuple[int, str], int]
    writes: int
    write_seconds: float
    stalled_seconds: float
    handler_seconds: float
    load_seconds: float
    stopped: bool
    database_url: str
    # Largest store size seen between batches (after the capacity rule ran).
    peak_in_memory: int = 0
    # Committed entries dropped by the capacity rule.
    evictions: int = 0
    # Reorgs rolled back: (chain id, block kept, entity rows restored, seconds).
    rollbacks: list[tuple[int, int, int, float]] = field(default_factory=list)


def resolve_database(config: ProjectConfig, override: str | None) -> str:
    """The database URL to use: CLI/env override, indexer.yaml, or the embedded server."""
    url = override or config.database
    if url:
        return url
    return start_embedded(config.project_dir / ".indexer" / "pgdata")
