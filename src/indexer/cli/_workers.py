"""``indexer serve --workers N``: N processes answering on one listening socket.

One server process spends about a core on HTTP parsing, GraphQL and JSON in
Python (docs/performance.md); the API holds no state, so more processes
answer more requests where there are cores for them.  The parent binds the
port once, forks N - 1 workers, then serves too: every process accepts on
the same socket and the kernel hands each new connection to one of them,
so to clients (and to anything else wanting the port) it is one server.

Forking happens before any event loop or worker thread exists in the
process (fork is only safe then), so each worker starts its own Trio run
from the already-loaded project.  Lifetime:

* SIGINT or SIGTERM to the parent stops it; it then stops the workers and
  waits for them (Ctrl+C in a terminal reaches every process anyway).
* A worker that exits on its own (a crash) stops the whole server with an
  error: half a server would look healthy to a load balancer.
* Each worker watches a pipe whose other end only the parent holds: if the
  parent dies, even by SIGKILL, the pipe's end stops the worker, so none
  outlives it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

import trio

from .. import api
from .._errors import ConfigError, IndexerError

if TYPE_CHECKING:
    import socket
    from collections.abc import Awaitable, Callable

__all__ = [
    "WorkerExited",
    "check_platform",
    "fork_workers",
    "reap",
    "serve_in_workers",
    "stop_workers",
    "wait_for_exit",
]

log = logging.getLogger("indexer")


class WorkerExited(IndexerError):
    """A worker process of ``indexer serve --workers`` ended while the server was up."""


def serve_in_workers(
    workers: int,
    host: str,
    port: int,
    serve: Callable[[socket.socket, bool], Awaitable[None]],
) -> None:
    """Run ``serve`` in ``workers`` processes (this one included) on one socket, until stopped.

    ``serve(listener, announce)`` serves ``listener`` until SIGINT or
    SIGTERM; only the parent's call has ``announce`` (it prints the URL).

    Raises:
        ConfigError: the address cannot be bound, or the platform cannot
            fork and watch processes (Linux can).
        WorkerExited: a worker ended by itself; the others were stopped.
    """
    check_platform("--workers above 1")
    listener = api.open_listener(host, port)
    children: list[tuple[int, int]] = []
    try:
        children = fork_workers(workers - 1, listener, serve)
        trio.run(_supervise, serve, listener, [pid for pid, _ in children])
    finally:
        failed = stop_workers(children)
        listener.close()
    # A worker's own failure is reported by _supervise; here only what is left.
    bad = [code for code in failed if code not in (0, -signal.SIGINT, -signal.SIGTERM)]
    if bad:
        raise WorkerExited(f"{len(bad)} API worker process(es) exited with status {bad}")


def check_platform(what: str) -> None:
    """Raise ConfigError unless this platform can fork and watch processes (Linux can)."""
    if not (hasattr(os, "fork") and hasattr(os, "pidfd_open")):
        raise ConfigError(f"{what} needs Linux (fork and pidfd_open)")


def fork_workers(
    count: int,
    listener: socket.socket,
    serve: Callable[[socket.socket, bool], Awaitable[None]],
) -> list[tuple[int, int]]:
    """Fork ``count`` processes serving ``listener``; (pid, the write end of its pipe) each.

    Call it before any event loop or thread exists in this process.  Each
    child runs ``serve(listener, False)`` until SIGINT, SIGTERM, or the end
    of its pipe (:func:`stop_workers`, or this process dying), then exits
    without running this process's cleanup.
    """
    children: list[tuple[int, int]] = []
    try:
        for _ in range(count):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover (runs in the child; tests see it from outside)
                os.close(write)
                for _pid, other in children:
                    os.close(other)
                _worker_main(serve, listener, read)
            os.close(read)
            children.append((pid, write))
    except BaseException:
        stop_workers(children)
        raise
    return children


def stop_workers(children: list[tuple[int, int]]) -> list[int]:
    """Stop the workers (closing their pipes) and wait for them; their exit codes."""
    for _pid, write in children:
        os.close(write)
    return [reap(pid) for pid, _ in children]


def reap(pid: int) -> int:
    """Wait for ``pid`` to end; its exit code (0 if it was reaped already)."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 0  # already reaped
    return os.waitstatus_to_exitcode(status)


async def _supervise(
    serve: Callable[[socket.socket, bool], Awaitable[None]],
    listener: socket.socket,
    pids: list[int],
) -> None:
    async with trio.open_nursery() as nursery:
        for pid in pids:
            nursery.start_soon(_watch, pid)
        await serve(listener, True)
        nursery.cancel_scope.cancel()


async def wait_for_exit(pid: int) -> int:
    """Wait, without blocking the event loop, for child ``pid`` to end; its exit code."""
    fd = os.pidfd_open(pid)
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)
    return reap(pid)


async def _watch(pid: int) -> None:
    code = await wait_for_exit(pid)
    raise WorkerExited(f"API worker process {pid} exited with status {code}; stopping the server")


def _worker_main(  # pragma: no cover (runs in the child)
    serve: Callable[[socket.socket, bool], Awaitable[None]], listener: socket.socket, pipe: int
) -> None:
    code = 1
    try:
        trio.run(_worker, serve, listener, pipe)
        code = 0
    except KeyboardInterrupt:
        code = 0
    except BaseException:
        log.exception("API worker process %d failed", os.getpid())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # Not sys.exit: the parent's cleanup (its finally blocks, atexit
        # handlers such as the embedded server's stop) is not ours to run.
        os._exit(code)


async def _worker(  # pragma: no cover (runs in the child)
    serve: Callable[[socket.socket, bool], Awaitable[None]], listener: socket.socket, pipe: int
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_until_parent_ends, pipe, nursery.cancel_scope)
        await serve(listener, False)
        nursery.cancel_scope.cancel()


async def _until_parent_ends(
    pipe: int, scope: trio.CancelScope
) -> None:  # pragma: no cover (runs in the child)
    async with trio.lowlevel.FdStream(pipe) as stream:
        while await stream.receive_some():
            pass  # the parent never writes: only the end matters
    scope.cancel()
