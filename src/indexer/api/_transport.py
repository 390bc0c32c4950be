"""Hypercorn's Trio connection handler, with two per-request costs cut and a leak closed.

Hypercorn parses HTTP and runs the ASGI app; its ``TCPServer`` moves the
bytes of one connection.  Profiled under load (docs/performance.md), that
class spent nearly half of the server's CPU on two things done for every
request, and this subclass, :class:`LeanConnection`, does them differently:

* **Writes.**  Every piece of a response (head, body, and the empty end of
  a sized body) went through a lock and ``send_all``: scheduler
  checkpoints for a few hundred bytes the socket takes at once.  Here a
  piece is written straight to the non-blocking socket when no other write
  is under way, and only what the socket does not take (a full buffer, a
  slow client, an error) goes the old way, behind the lock, in order.
  Empty pieces are not sent at all.
* **The idle timer.**  Hypercorn started a new task for every request's
  keep-alive timer and cancelled it at the next request.  Here one task per
  connection sleeps to a deadline that each request moves (:class:`_IdleTimer`).

And the leak: when the client closed a keep-alive connection, Hypercorn kept
it (in CLOSE-WAIT, a file descriptor held) until its idle timer fired, which
is 75 s with the API's keep-alive (``KEEP_ALIVE_SECONDS``).  A stream of
clients that connect once (``curl``, health probes) would pile up sockets
toward the process's file limit.  Here the timer ends with the reading side,
so the connection is closed as soon as the client has gone.

:func:`install` puts the class where Hypercorn's Trio worker looks for it;
it checks that the Hypercorn in use has the parts this relies on, and leaves
Hypercorn as it is otherwise (tests pin the installed version's behaviour).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.events import RawData, Updated
from hypercorn.trio import run as _hypercorn_run
from hypercorn.trio.tcp_server import TCPServer

if TYPE_CHECKING:
    from hypercorn.events import Event

__all__ = ["LeanConnection", "install", "installed"]


class _IdleTimer:
    """Closes a connection idle for ``keep_alive_timeout``, or idle when the server stops.

    Stands in for Hypercorn's ``TrioSingleTask`` (``restart``/``stop``):
    a request moves the deadline of one sleeping task instead of replacing it.
    A connection busy when the server stops is left to the server's own
    graceful timeout (the API stops by cancellation, which ends it anyway).
    """

    def __init__(self, server: LeanConnection) -> None:
        self._server = server
        self._idle = True
        self._deadline = math.inf
        self._scope: trio.CancelScope | None = None
        self._watching = False
        self._ended = False

    async def restart(self, task_group: Any, _action: Any) -> None:
        """The connection is idle from now on (Hypercorn's call)."""
        self._idle = True
        self._set_deadline(trio.current_time() + self._server.config.keep_alive_timeout)
        if not self._watching and not self._ended:
            self._watching = True
            task_group.spawn(self._watch)

    async def stop(self) -> None:
        """A request is being answered: no timeout until it is done (Hypercorn's call)."""
        self._idle = False
        self._set_deadline(math.inf)

    def end(self) -> None:
        """The client is gone: stop watching (the connection is being closed anyway)."""
        self._ended = True
        self._set_deadline(-math.inf)

    def _set_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        if self._scope is not None:
            self._scope.deadline = deadline

    async def _watch(self) -> None:
        with trio.CancelScope(deadline=self._deadline) as self._scope:
            # Returns when the server begins to stop; the deadline cancels it.
            await self._server.context.terminated.wait()
        self._scope = None
        if self._idle and not self._ended:
            with trio.CancelScope(shield=True):
                await self._server.close_idle()


class LeanConnection(TCPServer):
    """Hypercorn's ``TCPServer`` with direct writes and one idle timer (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle_task: Any = _IdleTimer(self)
        # Direct writes for plain TCP only; a TLS stream encrypts in send_all.
        stream = self.stream
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            data = event.data
            if not data:
                return  # h11's end of a sized body: nothing to write
            if self._socket is not None and not self.send_lock.locked():
                sent = _write_now(self._socket, data)
                if sent == len(data):
                    return
                if sent:
                    event = RawData(data=data[sent:])
        elif isinstance(event, Updated):
            # Hypercorn's base class would take a lock first; the timer needs none.
            if event.idle:
                await self.idle_task.restart(self._task_group, None)
            else:
                await self.idle_task.stop()
            return
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        try:
            await super()._read_data()
        finally:
            self.idle_task.end()

    async def close_idle(self) -> None:
        """Close the connection for being idle (as Hypercorn's own timer does)."""
        await self._initiate_server_close()


def _write_now(sock: trio.socket.SocketType, data: bytes) -> int:
    """Bytes of ``data`` the socket took without waiting (0 if it took none, or failed).

    A failure (the client gone, the socket closed) is left to the locked
    path, which turns it into Hypercorn's ``Closed`` as before.
    """
    fd = sock.fileno()
    if fd < 0:  # closed
        return 0
    try:
        return os.write(fd, data)  # the socket is non-blocking (Trio's)
    except OSError:  # BlockingIOError (full) included
        return 0


# The names of Hypercorn's TCPServer that LeanConnection uses (attributes
# and methods); each must appear in that class's own code.
_USED = (
    "send_lock",
    "idle_task",
    "stream",
    "context",
    "config",
    "_task_group",
    "protocol_send",
    "_read_data",
    "_initiate_server_close",
)


def install() -> bool:
    """Make Hypercorn's Trio worker handle connections with :class:`LeanConnection`.

    Idempotent.  False, and Hypercorn left as it is, if its Trio worker no
    longer has the shape this relies on (a version this was not written for).
    """
    current = getattr(_hypercorn_run, "TCPServer", None)
    if current is LeanConnection:
        return True
    if current is not TCPServer:
        return False
    names = set(TCPServer.__init__.__code__.co_names)
    for fn in vars(TCPServer).values():
        names.update(getattr(getattr(fn, "__code__", None), "co_names", ()))
    if not all(n in names for n in _USED):
        return False
    setattr(_hypercorn_run, "TCPServer", LeanConnection)  # noqa: B010 (not an export of it)
    return True


def installed() -> bool:
    """True if Hypercorn's Trio worker uses :class:`LeanConnection`."""
    return getattr(_hypercorn_run, "TCPServer", None) is LeanConnection
