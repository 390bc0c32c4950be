"""What the API is told at start-up: where to listen, its defaults and its request limits.

Kept apart from the server and the app so that the command line can build
its parser and an :class:`ApiOptions` without importing Hypercorn,
Starlette and graphql-core: ``indexer run`` without ``--serve`` (and the
child processes it spawns, which import the CLI again) never loads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_POOL_SIZE",
    "DEFAULT_PORT",
    "DEFAULT_READ_RETRY_SECONDS",
    "DEFAULT_STATEMENT_TIMEOUT",
    "ApiLimits",
    "ApiOptions",
]

DEFAULT_PORT = 42069
DEFAULT_STATEMENT_TIMEOUT = 10.0
DEFAULT_POOL_SIZE = 8
# A request waits this long for the database to come back before a 503:
# long enough for a restart or a failover, short enough for a client.
DEFAULT_READ_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class ApiLimits:
    """Bounds on what one request may ask for (docs/api.md)."""

    max_body_bytes: int = 100_000
    max_depth: int = 10
    max_aliases: int = 30
    sql_row_cap: int = 10_000


@dataclass(frozen=True)
class ApiOptions:
    """Where and how to serve (the ``--host``/``--port``/``--cors-origin`` flags)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    cors_origins: tuple[str, ...] = ()
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT
    pool_size: int = DEFAULT_POOL_SIZE
    # How long a GraphQL or SQL request retries a lost connection before a 503.
    read_retry_seconds: float = DEFAULT_READ_RETRY_SECONDS
    limits: ApiLimits = field(default_factory=ApiLimits)
