"""How requests reach an :class:`RpcServer`: HTTP/1.1 over sockets, or in-process.

HTTP/1.1 with keep-alive, spoken with h11 over ``trio.serve_tcp``
(:func:`open_rpc_server`).  Each connection is served by one task, one
request at a time; only the sockets themselves are real.

Real sockets and ``MockClock(autojump_threshold=0)`` do not mix well: the
clock may jump while a socket read is pending, so client timeouts fire
early.  Under the mock clock, hand the client :meth:`RpcServer.transport`
(:class:`InProcessTransport`) instead: the same JSON-RPC answers and
scripted faults, with no socket to wait on.
"""

from __future__ import annotations

import math
from contextlib import asynccontextmanager
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING

import h11
import httpx
import trio

from ._rpc_server import RpcServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._chain import ScriptedChain

__all__ = ["InProcessTransport", "open_rpc_server"]

_MAX_BODY = 32 << 20
_RECV_SIZE = 65536


async def _serve_connection(server: RpcServer, stream: trio.SocketStream) -> None:
    async with stream:
        conn = h11.Connection(h11.SERVER)
        try:
            while await _exchange(server, conn, stream):
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the client went away
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = exc.error_status_hint
                try:
                    await _send(conn, stream, status, b"bad request\n", "text/plain")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return


async def _exchange(server: RpcServer, conn: h11.Connection, stream: trio.SocketStream) -> bool:
    """Serve one request; True if the connection may carry another."""
    request = await _next_event(conn, stream)
    if not isinstance(request, h11.Request):
        return False  # closed between requests
    body = bytearray()
    while True:
        if conn.they_are_waiting_for_100_continue:
            await stream.send_all(
                conn.send(
                    h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                )
            )
        event = await _next_event(conn, stream)
        if isinstance(event, h11.EndOfMessage):
            break
        if not isinstance(event, h11.Data):
            return False
        body += event.data
        if len(body) > _MAX_BODY:
            await _send(conn, stream, 413, b"request body too large\n", "text/plain")
            return False
    if request.method != b"POST":
        await _send(conn, stream, 405, b"use POST\n", "text/plain", [("allow", "POST")])
    else:
        reply = await server._process(bytes(body))
        if reply.action == "disconnect":
            return False
        if reply.action == "timeout":
            # Hang until the client gives up; whatever it sends meanwhile is ignored.
            while await stream.receive_some(_RECV_SIZE):
                pass
            return False
        ctype = "application/json" if reply.status == 200 else "text/plain"
        await _send(conn, stream, reply.status, reply.body, ctype)
    return conn.our_state is h11.DONE and conn.their_state is h11.DONE


class InProcessTransport(httpx.AsyncBaseTransport):
    """See :meth:`RpcServer.transport`."""

    def __init__(self, server: RpcServer) -> None:
        self._server = server

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if request.method != "POST":
            return _plain(405, b"use POST\n", [("allow", "POST")])
        if len(body) > _MAX_BODY:
            return _plain(413, b"request body too large\n")
        timeouts = request.extensions.get("timeout") or {}
        read = timeouts.get("read")
        with trio.move_on_after(math.inf if read is None else read) as scope:
            reply = await self._server._process(body)
            if reply.action == "timeout":
                await trio.sleep_forever()
        if scope.cancelled_caught:
            raise httpx.ReadTimeout("The read operation timed out", request=request)
        if reply.action == "disconnect":
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if reply.status != 200:
            return _plain(reply.status, reply.body)
        return httpx.Response(
            200, headers=[("content-type", "application/json")], content=reply.body
        )


def _plain(status: int, body: bytes, extra: list[tuple[str, str]] | None = None) -> httpx.Response:
    return httpx.Response(
        status, headers=[("content-type", "text/plain"), *(extra or [])], content=body
    )


async def _next_event(conn: h11.Connection, stream: trio.SocketStream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(_RECV_SIZE))


async def _send(
    conn: h11.Connection,
    stream: trio.SocketStream,
    status: int,
    body: bytes,
    ctype: str,
    extra: list[tuple[str, str]] | None = None,
) -> None:
    headers = [("content-type", ctype), ("content-length", str(len(body))), *(extra or [])]
    reason = HTTPStatus(status).phrase.encode()
    data = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
    data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    await stream.send_all(data)


@asynccontextmanager
async def open_rpc_server(
    chain: ScriptedChain, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RpcServer]:
    """Serve ``chain`` over HTTP JSON-RPC for the duration of the ``async with``.

    Args:
        chain: The chain to answer from.
        host: A literal address to listen on.
        port: The port (0: a free one; see ``server.url``).

    Yields:
        The running server.
    """
    server = RpcServer(chain)
    try:
        async with trio.open_nursery() as nursery:
            listeners: list[trio.SocketListener] = await nursery.start(
                partial(trio.serve_tcp, partial(_serve_connection, server), port, host=host)
            )
            bound = listeners[0].socket.getsockname()[1]
            server.url = f"http://{f'[{host}]' if ':' in host else host}:{bound}/"
            try:
                yield server
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery wraps even the body's own exception in a group; a lone one is
        # re-raised bare so that pytest.raises and except clauses around the body work.
        if len(group.exceptions) != 1:
            raise
        lone = group.exceptions[0]
        raise lone from lone.__cause__
