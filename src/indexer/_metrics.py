"""Prometheus metrics of one run.

Each run gets its own ``CollectorRegistry`` (no process-global state, so
tests and several runs in one process do not collide).  The CLI serves it on
127.0.0.1 with ``--metrics-port``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Metrics:
    """The framework's metrics, registered in ``registry``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events = Counter(
            "indexer_events_processed", "Events passed to handlers.", ["chain"], registry=r
        )
        self.skipped = Counter(
            "indexer_logs_skipped",
            "Logs of wildcard contracts whose shape did not fit the event (e.g. ERC721 Transfer).",
            ["chain", "event"],
            registry=r,
        )
        self.handler_seconds = Counter(
            "indexer_handler_seconds", "Time spent in handlers.", registry=r
        )
        self.load_seconds = Counter(
            "indexer_load_seconds", "Time spent loading entities.", registry=r
        )
        self.loads = Counter(
            "indexer_load_queries", "Entity load queries.", ["entity", "kind"], registry=r
        )
        self.write_seconds = Histogram(
            "indexer_storage_write_seconds",
            "Duration of batch writes.",
            buckets=_WRITE_BUCKETS,
            registry=r,
        )
        self.write_rows = Counter("indexer_storage_write_rows", "Entity rows written.", registry=r)
        self.stalled_seconds = Counter(
            "indexer_processing_stalled_on_storage_write_seconds",
            "Time the processing loop waited for the writer (capacity rule).",
            registry=r,
        )
        self.entities = Gauge(
            "indexer_in_memory_entities", "Objects held by the in-memory store.", registry=r
        )
        self.processed_block = Gauge(
            "indexer_processed_block", "Last processed block.", ["chain"], registry=r
        )
        self.committed_block = Gauge(
            "indexer_committed_block", "Last committed block.", ["chain"], registry=r
        )
        self.rollbacks = Counter(
            "indexer_reorg_rollbacks", "Chain reorganisations rolled back.", ["chain"], registry=r
        )
        self.rollback_seconds = Histogram(
            "indexer_rollback_seconds",
            "Duration of reorg rollbacks (drain plus the rollback transaction).",
            buckets=_WRITE_BUCKETS,
            registry=r,
        )
        self.rpc_requests = Counter(
            "indexer_rpc_requests",
            "Requests to each JSON-RPC node of a chain with several `rpc` URLs, by outcome "
            "(ok, rate_limit, lagging, timeout, down); `node` is the redacted URL.",
            ["chain", "node", "outcome"],
            registry=r,
        )
        self.write_retries = Counter(
            "indexer_storage_write_retries",
            "Writes (and rollbacks) retried after a transient database error.",
            registry=r,
        )
        self.load_retries = Counter(
            "indexer_storage_load_retries",
            "Reads (entity, index and effect loads, start-up queries) retried after a transient database error.",
            registry=r,
        )
        self.stalled = Gauge(
            "indexer_stalled",
            "1 while the chain's committed block has not moved for --stall-seconds although it has blocks to index.",
            ["chain_id"],
            registry=r,
        )
        self.effect_rows = Gauge(
            "indexer_effect_cache_rows",
            "Rows in each effect's cache table (equals its count(*) after every commit).",
            ["effect"],
            registry=r,
        )
        self.effect_calls = Counter(
            "indexer_effect_calls", "Effect function calls (cache misses).", ["effect"], registry=r
        )
        self.effect_invalidations = Counter(
            "indexer_effect_cache_invalidations",
            "Cached effect outputs that no longer fit the declared return type (recomputed).",
            ["effect"],
            registry=r,
        )
