"""How an RPC source reaches its chain's nodes: its options, and the client they make."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._redact import redact_url
from ._rpc import open_rpc_client
from ._rpc_pool import open_rpc_pool
from ._schedule import BlockSchedule

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from ._rpc import RpcClient
    from ._rpc_children import ChildOptions
    from ._rpc_pool import RpcPool

__all__ = ["RpcSourceOptions", "open_source_client"]

_POOL_ONLY_OPTIONS = frozenset({"transports", "head_grace"})
# Client options that stand for a node only this process can reach.
_TEST_TRANSPORTS = frozenset({"transport", "transports"})


@dataclass
class RpcSourceOptions:
    """How one chain is fetched (from indexer.yaml, plus knobs for tests).

    ``urls``: every node of the chain (``url`` is the first); with more than
    one, requests go through an :class:`RpcPool`, and ``client_options`` may
    hold ``transports`` (URL -> httpx transport) besides ``transport``, and
    ``head_grace``.  ``on_request(node, outcome)`` is told of each pool
    request, for metrics.
    """

    url: str
    chain_id: int
    poll_interval: float
    max_reorg_depth: int
    end_block: int | None
    initial_span: int = 2_000
    max_span: int = 50_000
    chunk_logs: int = 2_000
    timeout: float = 30.0
    client_options: dict[str, Any] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    on_request: Callable[[str, str], None] | None = None
    # Told every head the node reports (the runtime's stall watchdog).
    on_head: Callable[[int], None] | None = None
    # When block handlers run, and the chain's own block keys their blocks carry.
    block_schedule: BlockSchedule = field(default_factory=BlockSchedule)
    block_fields: frozenset[str] = frozenset()
    # Factory children: how they are fetched (None: the chain has none).
    children: ChildOptions | None = None
    # Fetch and decode the ranges behind the reorg window in a child process
    # (``_rpc_worker.py``) once a far range had at least this many logs, where
    # it can be used (one node, no test transport); None: never.
    log_worker_min_logs: int | None = 2_000

    @property
    def all_urls(self) -> tuple[str, ...]:
        return self.urls or (self.url,)

    @property
    def where(self) -> str:
        """The chain and its nodes' redacted URLs, for messages."""
        return f"chain {self.chain_id} ({', '.join(map(redact_url, self.all_urls))})"

    @property
    def log_worker_usable(self) -> bool:
        """One node that a child process can reach (no test transport), and not switched off."""
        return self.log_worker_min_logs is not None and not (
            len(self.all_urls) > 1 or _TEST_TRANSPORTS & self.client_options.keys()
        )


def open_source_client(
    options: RpcSourceOptions,
) -> AbstractAsyncContextManager[RpcClient | RpcPool]:
    """The chain's client: one node's, or a pool's with several URLs."""
    urls = options.all_urls
    if len(urls) > 1:
        return open_rpc_pool(
            urls,
            timeout=options.timeout,
            chain_id=options.chain_id,
            on_request=options.on_request,
            **options.client_options,
        )
    single = {k: v for k, v in options.client_options.items() if k not in _POOL_ONLY_OPTIONS}
    return open_rpc_client(urls[0], timeout=options.timeout, chain_id=options.chain_id, **single)
