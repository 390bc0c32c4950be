"""Serving the API on Trio with Hypercorn: ``serve_api``, started with ``nursery.start``.

Hypercorn has a native Trio worker, so the server runs in the caller's
nursery: beside the indexing loop for ``indexer run --serve``, alone for
``indexer serve``.  Requests share the event loop with indexing but never
its state (they read the database through their own pool, in worker
threads), and an exception in a request is answered by Hypercorn/Starlette
as a 500 for that request only; it never reaches the nursery.
"""

from __future__ import annotations

import logging
import os
import socket
from functools import partial
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from .._errors import ConfigError
from ._app import build_app
from ._events import EventHub
from ._reader import Reader
from ._transport import install as _lean_connections
from ._view import ApiView

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..store import EntitySpec
    from ._options import ApiOptions
    from ._status import ChainTarget

__all__ = ["KEEP_ALIVE_SECONDS", "open_listener", "serve_api", "serve_view"]

KEEP_ALIVE_SECONDS = 75.0  # above the common load balancers' idle timeouts (60 s)

_server_log = logging.getLogger("indexer.api.server")
_server_log.setLevel(logging.WARNING)


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_bind(host: str, port: int) -> None:
    """Fail early and cleanly if the address cannot be bound.

    Hypercorn leaks its socket when ``bind`` fails; trying first with a
    socket of our own (closed at once) keeps that path out of reach.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"--host/--port: cannot listen on {_bind(host, port)}: {exc.strerror or exc}"
        ) from None


def open_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, for several processes to accept on.

    ``indexer serve --workers N`` opens it once, before the worker processes
    fork, and each serves it (:func:`serve_api`'s ``listener``): the kernel
    hands each new connection to one of them, and the port is in use, to
    anyone else, exactly as with one server.

    Raises:
        ConfigError: the address cannot be bound (in use, not local, ...).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it (Linux): answers go out at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(Config.backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"--host/--port: cannot listen on {_bind(host, port)}: {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)
    return sock


async def serve_api(
    url: str,
    schema: str,
    specs: Sequence[EntitySpec],
    targets: Sequence[ChainTarget],
    options: ApiOptions,
    *,
    health: Callable[[], dict[str, Any]] | None = None,
    listener: socket.socket | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API for ``schema`` until cancelled; ``started`` gets the bound URLs.

    ``health`` adds the indexing process's own view to ``/health`` (``run --serve``).
    ``listener`` (from :func:`open_listener`) is served instead of binding
    ``options.host``/``options.port``; it stays open for the caller.

    Raises:
        ConfigError: the address cannot be bound (in use, not local, ...), or
            an entity cannot be given a GraphQL schema.
    """
    view = ApiView(options.limits, specs, targets)
    await serve_view(
        url, schema, view, options, health=health, listener=listener, task_status=task_status
    )


async def serve_view(
    url: str,
    schema: str,
    view: ApiView,
    options: ApiOptions,
    *,
    health: Callable[[], dict[str, Any]] | None = None,
    listener: socket.socket | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """:func:`serve_api` for a view the caller keeps, and may replace while it serves.

    ``indexer dev --serve`` calls :meth:`ApiView.replace` after each reload:
    the listener stays up, so no connection is ever refused.  ``view.limits``
    is used, not ``options.limits``.

    Raises:
        ConfigError: the address cannot be bound (in use, not local, ...).
    """
    reader = Reader(
        url,
        schema,
        size=options.pool_size,
        statement_timeout=options.statement_timeout,
        retry_seconds=options.read_retry_seconds,
    )
    hub = EventHub(url, schema)
    app = build_app(
        reader,
        view,
        hub=hub,
        cors_origins=options.cors_origins,
        health=health,
    )
    config = Config()
    if listener is None:
        config.bind = [_bind(options.host, options.port)]
    else:
        # Hypercorn closes the socket it is given: a duplicate of ours.
        config.bind = [f"fd://{os.dup(listener.fileno())}"]
    config.accesslog = None
    # Hypercorn's own start-up line repeats what the CLI prints on stdout.
    config.errorlog = _server_log
    config.graceful_timeout = 1.0
    # Hypercorn closes a keep-alive connection idle for 5 s by default.  A load
    # balancer in front keeps its connections to the backend open longer (AWS's
    # ALB for 60 s), and one that reuses a connection the server has just
    # closed answers its client with a 502: the backend must outwait it.  A
    # worker starved of CPU (`--api-priority low` on a busy machine) also used
    # to find the timer due before the request it had not yet read, and closed
    # the connection under it.
    config.keep_alive_timeout = KEEP_ALIVE_SECONDS
    # Cheaper writes and idle timers, and no socket kept after its client
    # closed it (75 s with the keep-alive above): see _transport.py.
    _lean_connections()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.serve)
            if listener is None:
                _check_bind(options.host, options.port)
            binds = await nursery.start(partial(serve, app, config))  # type: ignore[arg-type]
            task_status.started(binds)
    finally:
        with trio.CancelScope(shield=True):
            await reader.aclose()
