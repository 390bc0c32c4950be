"""``indexer run --serve --workers N``: the API in N processes of its own, beside the run.

By default ``run --serve`` answers requests on the indexing process's event
loop: one process, but every request's Python (HTTP, GraphQL, JSON) takes
the interpreter from the processing loop, and requests wait behind a range
of handlers.  With ``--workers N`` the port is bound and N processes are
forked before indexing starts (as ``indexer serve --workers`` does, see
``_workers.py``); they serve it and the indexing process serves nothing.

What the indexing process alone knows reaches them through a
:class:`HealthBoard`: the stalled chains ``/health`` reports.  Everything
else a request reads comes from the database, as for ``indexer serve``.

With ``--api-priority low`` the workers run under Linux's ``SCHED_IDLE``:
the kernel gives them a core only when no indexing thread (or anything
else of normal priority) wants it.  On two cores the HTTP server alone,
Hypercorn answering ``/health``, spends ~1 ms of CPU a request, so at 200
requests/s it took CPU the indexing would have used (docs/performance.md).
The PostgreSQL backends answering the API's queries keep their priority:
they are the database's processes, not ours.

Lifetime: the workers stop when the run's process ends (their pipes close,
even on SIGKILL) or on SIGINT/SIGTERM.  A worker that dies is logged as an
error and the run goes on: indexing never depends on the API.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import struct
import zlib
from typing import TYPE_CHECKING, Any

import orjson
import trio

from .. import api
from ._serve import StallView, index_then_serve_on, serve_until_stopped
from ._workers import check_platform, fork_workers, stop_workers, wait_for_exit

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterator

    from ..api import ApiOptions
    from ..config import ProjectConfig
    from ..runtime import HandlerSet, RunOptions, RunStatus, RunSummary

__all__ = ["ApiWorkers", "HealthBoard", "open_api_workers"]

log = logging.getLogger("indexer")

# The value's length and CRC-32, then the value.  Nothing in shared memory
# is written or read atomically from Python (struct writes byte by byte),
# so a reader checks what it read against the CRC and reads again if the
# writer was busy: a torn read shows as a mismatch.
_HEAD = struct.Struct("<II")
_WRITING = 0xFFFFFFFF  # the length while the value is being replaced


class HealthBoard:
    """A small JSON value the indexing process publishes and forked workers read.

    Shared memory mapped before the fork (anonymous and shared, so the
    workers see every later write); one writer, the indexing process's
    event loop, and any number of readers, none of which can block it.
    """

    SIZE = 1 << 16

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, self.SIZE)
        self.publish({})

    def publish(self, value: dict[str, Any]) -> None:
        body = orjson.dumps(value)
        if len(body) > self.SIZE - _HEAD.size:
            body = orjson.dumps({"status": value.get("status", "ok"), "truncated": True})
        _HEAD.pack_into(self._map, 0, _WRITING, 0)
        self._map[_HEAD.size : _HEAD.size + len(body)] = body
        _HEAD.pack_into(self._map, 0, len(body), zlib.crc32(body))

    def read(self) -> dict[str, Any]:
        for _ in range(1000):
            length, crc = _HEAD.unpack_from(self._map, 0)
            if length > self.SIZE - _HEAD.size:
                continue  # being written
            body = self._map[_HEAD.size : _HEAD.size + length]
            if zlib.crc32(body) != crc:
                continue
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
        return {}  # the writer kept writing: nothing to add this time


class ApiWorkers:
    """API processes forked beside a run (see the module's docstring)."""

    def __init__(
        self, board: HealthBoard, children: list[tuple[int, int]], where: str, low_priority: bool
    ) -> None:
        self.board, self.children, self.where = board, children, where
        self.low_priority = low_priority

    async def index(
        self,
        config: ProjectConfig,
        handlers: HandlerSet,
        run_options: RunOptions,
        finished: Callable[[RunSummary], None],
    ) -> None:
        """Index here while the workers serve; after a complete run, serve on until stopped."""
        stalls = StallView(run_options.reporter)

        def remember(status: RunStatus) -> None:
            stalls.remember(status)
            self.board.publish(stalls.health())

        run_options.reporter = remember
        async with trio.open_nursery() as nursery:
            for pid, _ in self.children:
                nursery.start_soon(_watch, pid)
            priority = ", low priority" if self.low_priority else ""
            print(
                f"serving the API on {self.where} (GraphQL at /graphql; "
                f"{len(self.children)} worker processes{priority})",
                flush=True,
            )
            await index_then_serve_on(config, handlers, run_options, finished)
            nursery.cancel_scope.cancel()


@contextlib.contextmanager
def open_api_workers(
    config: ProjectConfig,
    handlers: HandlerSet,
    url: str,
    api_options: ApiOptions,
    workers: int,
    *,
    low_priority: bool = False,
) -> Iterator[ApiWorkers]:
    """Bind the API's port and fork ``workers`` processes serving it; stop them on exit.

    Enter it before any thread or event loop exists in this process (the
    metrics server's thread included).  ``low_priority``: the workers run
    only on CPU time nothing of normal priority wants (``SCHED_IDLE``).

    Raises:
        ConfigError: the address cannot be bound, or the platform cannot fork.
    """
    check_platform("`run --serve --workers`")
    board = HealthBoard()
    listener = api.open_listener(api_options.host, api_options.port)

    async def serve(sock: socket.socket, _announce: bool) -> None:
        if low_priority:
            # Before the reader's threads start: they inherit it.
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        await serve_until_stopped(
            config,
            handlers,
            url,
            api_options,
            lambda: False,
            listener=sock,
            announce=None,
            health=board.read,
        )

    children: list[tuple[int, int]] = []
    try:
        children = fork_workers(workers, listener, serve)
        yield ApiWorkers(board, children, _url(listener), low_priority)
    finally:
        stop_workers(children)
        listener.close()


def _url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _watch(pid: int) -> None:
    code = await wait_for_exit(pid)
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        # The run goes on: indexing never depends on the API.
        log.error("API worker process %d exited with status %d", pid, code)
