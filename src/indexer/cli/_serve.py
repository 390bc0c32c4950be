"""``indexer serve`` and ``indexer run --serve``: the HTTP API beside (or without) indexing.

``serve`` holds no state: it reads the project's database, so several may
run side by side, also against a read replica.  ``run --serve`` starts the
same server in the nursery that runs the project; when indexing ends it
keeps serving until a stop signal (a finished index is still worth reading).
"""

from __future__ import annotations

import argparse
import logging
import signal
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .. import api
from ..api import DEFAULT_PORT, ApiOptions
from ._workers import serve_in_workers

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from ..config import ProjectConfig
    from ..runtime import HandlerSet, RunOptions, RunStatus, RunSummary

__all__ = [
    "StallView",
    "add_serve_flags",
    "add_workers_flag",
    "api_options",
    "index_then_serve_on",
    "positive_int",
    "run_and_serve",
    "serve_project",
    "serve_until_stopped",
    "wait_for_stop",
]

log = logging.getLogger("indexer")


def add_serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host", default="127.0.0.1", help="address to serve the API on (default 127.0.0.1)"
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"API port (default {DEFAULT_PORT})"
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser requests from ORIGIN (repeatable; `*` for any)",
    )
    p.add_argument(
        "--statement-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="cancel any API query running longer than S seconds (default 10)",
    )


def add_workers_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="serve from N processes sharing the port (default 1; Linux)",
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return n


def serve_project(
    config: ProjectConfig,
    handlers: HandlerSet,
    url: str,
    options: ApiOptions,
    workers: int,
    stop_early: Callable[[], bool],
) -> None:
    """``indexer serve [--workers N]``: until SIGINT or SIGTERM."""
    if workers == 1:
        trio.run(serve_until_stopped, config, handlers, url, options, stop_early)
        return

    async def serve(listener: socket.socket, announce: bool) -> None:
        await serve_until_stopped(
            config,
            handlers,
            url,
            options,
            stop_early,
            listener=listener,
            announce=f"; {workers} worker processes" if announce else None,
        )

    serve_in_workers(workers, options.host, options.port, serve)


def api_options(args: argparse.Namespace) -> ApiOptions:
    return ApiOptions(
        host=args.host,
        port=args.port,
        cors_origins=tuple(args.cors_origin),
        statement_timeout=args.statement_timeout,
    )


def _targets(config: ProjectConfig) -> list[api.ChainTarget]:
    return [
        api.ChainTarget(c.id, c.start_block, c.end_block, c.source.rpc is not None)
        for c in config.chains
    ]


async def wait_for_stop(already: Callable[[], bool]) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        if already():
            return
        async for _ in signals:
            return


async def serve_until_stopped(
    config: ProjectConfig,
    handlers: HandlerSet,
    url: str,
    options: ApiOptions,
    stop_early: Callable[[], bool],
    listener: socket.socket | None = None,
    announce: str | None = "",
    health: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """``indexer serve``: the API alone, until SIGINT or SIGTERM.

    ``listener``: serve this socket (``--workers``) rather than bind one.
    ``health``: adds to ``/health`` (a worker of ``run --serve --workers``).
    ``announce``: appended to the "serving ..." line; None prints no line
    (a worker process: its parent prints it).
    """
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(
                api.serve_api,
                url,
                config.schema,
                handlers.entities,
                _targets(config),
                options,
                listener=listener,
                health=health,
            )
        )
        if announce is not None:
            print(
                f"serving {config.name} on {', '.join(binds)} (GraphQL at /graphql{announce})",
                flush=True,
            )
        await wait_for_stop(stop_early)
        nursery.cancel_scope.cancel()


class StallView:
    """The run's latest stalled chains, as ``/health`` reports them (``run --serve``)."""

    def __init__(self, report: Callable[[RunStatus], None] | None) -> None:
        self._report = report
        self._latest: RunStatus | None = None

    def remember(self, status: RunStatus) -> None:
        """A reporter: keep ``status``, then pass it on to the run's own reporter."""
        self._latest = status
        if self._report is not None:
            self._report(status)

    def health(self) -> dict[str, Any]:
        stalls = self._latest.stalls if self._latest is not None else ()
        if not stalls:
            return {}
        return {
            "status": "stalled",
            "stalled": [
                {
                    "chain_id": s.chain_id,
                    "committed_block": s.block,
                    "seconds": round(s.seconds, 1),
                    "waiting_on": s.waiting_on,
                }
                for s in stalls
            ],
        }


async def run_and_serve(
    config: ProjectConfig,
    handlers: HandlerSet,
    url: str,
    run_options: RunOptions,
    options: ApiOptions,
    finished: Callable[[RunSummary], None],
) -> RunSummary:
    """``indexer run --serve``: index with the API up; after a full run, serve on until stopped."""
    stalls = StallView(run_options.reporter)
    run_options.reporter = stalls.remember
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(
                api.serve_api,
                url,
                config.schema,
                handlers.entities,
                _targets(config),
                options,
                health=stalls.health,
            )
        )
        print(f"serving the API on {', '.join(binds)} (GraphQL at /graphql)", flush=True)
        summary = await index_then_serve_on(config, handlers, run_options, finished)
        nursery.cancel_scope.cancel()
    return summary


async def index_then_serve_on(
    config: ProjectConfig,
    handlers: HandlerSet,
    run_options: RunOptions,
    finished: Callable[[RunSummary], None],
) -> RunSummary:
    """Run the project; after a complete run, wait for SIGINT/SIGTERM while the API serves on."""
    from ..runtime import run_project

    summary = await run_project(config, handlers, run_options)
    finished(summary)
    if not summary.stopped:
        print("indexing finished; still serving (Ctrl+C to stop)", flush=True)
        # A stop asked for since the run let go of the signals (during the
        # summary or the project's report, say) was only noted: honour it.
        stop_early = run_options.stop_early
        await wait_for_stop(stop_early if stop_early is not None else lambda: False)
    return summary
