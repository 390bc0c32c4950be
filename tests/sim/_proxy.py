"""A fault-injecting proxy between the indexer and PostgreSQL.

The proxy listens on a Unix socket of its own (``<dir>/.s.PGSQL.<port>``,
where libpq looks for it) and forwards every connection to the real server.
It reads the PostgreSQL wire protocol just far enough to see message
boundaries, and with a seeded RNG it ends connections at those points:

* ``before``: a statement never reaches the server (the connection closes
  instead of forwarding it);
* ``cut``: the server gets only part of a message, then end of file;
* ``reply``: the statement is forwarded and the server runs it, but the
  connection closes before the answer gets back.  For a ``COMMIT`` that is
  the ambiguous case: the transaction is committed and the client cannot
  know.

It never changes a byte: every fault is a close, as a network or a server
restart would do.  ``down(seconds)`` drops every connection and refuses new
ones for a while; ``enabled = False`` switches faults off (the outage too).

A "statement" here is a client message that makes the server act: a simple
``Query``, a ``Sync`` (end of an extended-protocol statement), ``CopyData``
and ``CopyDone``, and the startup packet (a connection attempt).  Each one
is faulted with probability ``drop_rate``; a ``COMMIT`` with twice that, and
then always in the ``reply`` way.  Connections whose ``application_name``
does not end in ``-writer`` (the indexer's loads and start-up queries, which
it does not retry) may be given a rate of their own, ``other_drop_rate``.
"""

from __future__ import annotations

import collections
import os
import random
import shutil
import socket
import struct
import tempfile
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from psycopg.conninfo import make_conninfo

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["DbProxy", "open_db_proxy"]

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
# Client messages that make the server do something (see the module docstring).
_STATEMENTS = frozenset(b"QSdc")
_RECV = 65536


class _Framer:
    """Splits one direction of a PostgreSQL connection into whole messages.

    The client's first messages have no type byte (startup, SSL and GSS
    requests, cancel); the server answers an SSL or GSS request with one
    bare byte.  Everything else is a type byte and a 4-byte length that
    counts itself.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.untyped = 0  # how many untyped messages come next
        self.bare_bytes = 0  # how many one-byte answers come next

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """The messages completed by ``data``: (bytes, whether it was untyped)."""
        self.buffer += data
        out: list[tuple[bytes, bool]] = []
        while True:
            buf = self.buffer
            untyped = bool(self.bare_bytes or self.untyped)
            if self.bare_bytes:
                if not buf:
                    break
                size = 1
                self.bare_bytes -= 1
            elif self.untyped:
                if len(buf) < 4:
                    break
                (size,) = struct.unpack_from("!i", buf)
                if size < 4 or len(buf) < size:
                    break
                self.untyped -= 1
            else:
                if len(buf) < 5:
                    break
                size = struct.unpack_from("!i", buf, 1)[0] + 1
                if size < 5 or len(buf) < size:
                    break
            out.append((bytes(buf[:size]), untyped))
            del buf[:size]
        return out


class DbProxy:
    """A PostgreSQL proxy that drops connections at seeded random points.

    Made by :func:`open_db_proxy`.  Attributes:

    * ``url``: the proxy's URL for the embedded server's ``postgres`` user
      (``conninfo(upstream_url)`` keeps another server's user and password);
    * ``drop_rate``: probability of a fault per statement (may be changed);
    * ``other_drop_rate``: the same for connections not named ``*-writer``;
    * ``enabled``: faults on or off (off also ends an outage);
    * ``stats``: counts of connections and of each kind of fault;
    * ``by_role``: faults by the role of the connection they hit: ``"writer"``
      for the indexer's writer once it writes (its failures are retried),
      ``"other"`` for everything else (loads and start-up, not retried).
      The first writer connection after :meth:`new_epoch` (a new process)
      counts as ``"other"`` until its first ``BEGIN``: opening it is start-up.
    """

    def __init__(
        self,
        upstream: str,
        port: int,
        rng: random.Random,
        drop_rate: float,
        other_drop_rate: float,
        listen_dir: Path,
    ) -> None:
        self.upstream = upstream
        self.port = port
        self.rng = rng
        self.drop_rate = drop_rate
        self.other_drop_rate = other_drop_rate
        self.enabled = True
        self.listen_dir = listen_dir
        self.url = f"postgresql://postgres:@/postgres?host={listen_dir}&port={port}"
        self.stats: collections.Counter[str] = collections.Counter()
        self.by_role: collections.Counter[str] = collections.Counter()
        self._down_until = -1.0
        self._live: dict[trio.CancelScope, _Connection] = {}
        self._initial_writer = True

    def conninfo(self, upstream_url: str) -> str:
        """``upstream_url`` (user, password, database...) redirected through the proxy."""
        return make_conninfo(upstream_url, host=str(self.listen_dir), port=str(self.port))

    # -- control -----------------------------------------------------------

    def new_epoch(self) -> None:
        """A new client process starts: its first writer connection is start-up."""
        self._initial_writer = True

    def down(self, seconds: float) -> None:
        """Drop every open connection and refuse new ones for ``seconds``."""
        self._down_until = trio.current_time() + seconds
        self.stats["outages"] += 1
        self.drop_all()

    def drop_all(self) -> None:
        """Close every open connection now."""
        for scope, conn in list(self._live.items()):
            self.stats["drop_outage"] += 1
            self.by_role[conn.role] += 1
            scope.cancel()

    @property
    def is_down(self) -> bool:
        return self.enabled and trio.current_time() < self._down_until

    @property
    def faults(self) -> int:
        """Connections this proxy has ended on purpose so far (outages included)."""
        return sum(n for kind, n in self.stats.items() if kind.startswith(("drop_", "refused")))

    # -- serving -----------------------------------------------------------

    async def _open_upstream(self) -> trio.SocketStream:
        if self.upstream.startswith("/"):
            return await trio.open_unix_socket(os.path.join(self.upstream, f".s.PGSQL.{self.port}"))
        return await trio.open_tcp_stream(self.upstream, self.port)

    async def serve_connection(self, client: trio.SocketStream) -> None:
        self.stats["connections"] += 1
        if self.is_down:
            self.stats["refused"] += 1
            self.by_role["other"] += 1
            await client.aclose()
            return
        try:
            server = await self._open_upstream()
        except OSError:
            self.stats["upstream_unreachable"] += 1
            await client.aclose()
            return
        # Each connection draws from its own generator, seeded in accept order.
        conn = _Connection(self, random.Random(self.rng.getrandbits(64)))
        with trio.CancelScope() as scope:
            self._live[scope] = conn
            try:
                async with client, server, trio.open_nursery() as nursery:
                    conn.scope = nursery.cancel_scope
                    nursery.start_soon(conn.pump, conn.pump_client, client, server)
                    nursery.start_soon(conn.pump, conn.pump_server, server, client)
            finally:
                self._live.pop(scope, None)


class _Connection:
    """The two pumps of one proxied connection, and its fault decisions."""

    def __init__(self, proxy: DbProxy, rng: random.Random) -> None:
        self.proxy = proxy
        self.rng = rng
        self.client_framer = _Framer()
        self.client_framer.untyped = 1
        self.server_framer = _Framer()
        self.drop_reply = ""  # non-empty: end the connection at the server's next message
        self.writer = False  # the indexer's writer connection (from its application_name)
        self.initial = False  # the first writer connection of its process
        self.began = False  # it has sent a BEGIN
        self.scope: trio.CancelScope | None = None

    @property
    def role(self) -> str:
        """See :attr:`DbProxy.by_role`."""
        return "writer" if self.writer and (self.began or not self.initial) else "other"

    def _close(self, kind: str) -> None:
        self.proxy.stats[kind] += 1
        self.proxy.by_role[self.role] += 1
        assert self.scope is not None
        self.scope.cancel()

    async def pump(
        self,
        fn: Callable[[trio.SocketStream, trio.SocketStream], Awaitable[None]],
        source: trio.SocketStream,
        sink: trio.SocketStream,
    ) -> None:
        """Run one direction; when it ends (end of file, reset, fault), end both."""
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await fn(source, sink)
        assert self.scope is not None
        self.scope.cancel()

    async def pump_client(self, client: trio.SocketStream, server: trio.SocketStream) -> None:
        framer = self.client_framer
        while True:
            data = await client.receive_some(_RECV)
            if not data:
                return
            for message, untyped in framer.feed(data):
                fault = self._decide(message, untyped)
                if fault in ("before", "connect"):
                    self._close(f"drop_{fault}")
                    return
                if fault == "cut":
                    await server.send_all(message[: self.rng.randrange(1, len(message))])
                    self._close("drop_cut")
                    return
                if fault == "reply":
                    self.drop_reply = (
                        "drop_commit_reply"
                        if message[:1] == b"Q" and b"COMMIT" in message[5:20].upper()
                        else "drop_reply"
                    )
                await server.send_all(message)

    def _decide(self, message: bytes, untyped: bool) -> str:
        """The fault for a client message: "", "connect", "before", "cut" or "reply"."""
        if untyped:
            (code,) = struct.unpack_from("!i", message, 4) if len(message) >= 8 else (0,)
            if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                # The server answers with one byte; the real startup follows.
                self.server_framer.bare_bytes += 1
                self.client_framer.untyped += 1
                return ""
            if code == _CANCEL_REQUEST:
                return ""
            self.writer = _application_name(message).endswith("-writer")
            if self.writer and self.proxy._initial_writer:
                self.initial, self.proxy._initial_writer = True, False
            return "connect" if self._hit(1.0) else ""  # the connection attempt fails
        if message[0] not in _STATEMENTS:
            return ""
        self.proxy.stats["statements"] += 1
        if message[:1] == b"Q" and message[5:].lstrip().upper().startswith(b"BEGIN"):
            self.began = True
        if message[:1] == b"Q" and message[5:].lstrip().upper().startswith(b"COMMIT"):
            return "reply" if self._hit(2.0) else ""
        return self.rng.choice(("before", "cut", "reply")) if self._hit(1.0) else ""

    def _hit(self, factor: float) -> bool:
        proxy = self.proxy
        rate = proxy.drop_rate if self.writer else proxy.other_drop_rate
        return proxy.enabled and rate > 0 and self.rng.random() < factor * rate

    async def pump_server(self, server: trio.SocketStream, client: trio.SocketStream) -> None:
        framer = self.server_framer
        while True:
            data = await server.receive_some(_RECV)
            if not data:
                return
            messages = framer.feed(data)
            if self.drop_reply and messages:
                # The statement reached the server and ran; its answer is lost.
                self._close(self.drop_reply)
                return
            if messages:
                await client.send_all(b"".join(m for m, _untyped in messages))


def _application_name(startup: bytes) -> str:
    """The ``application_name`` parameter of a startup message ("" if absent)."""
    fields = startup[8:].split(b"\0")
    for key, value in zip(fields[::2], fields[1::2], strict=False):
        if key == b"application_name":
            return value.decode(errors="replace")
    return ""


@asynccontextmanager
async def open_db_proxy(
    upstream: str,
    port: int,
    rng: random.Random,
    drop_rate: float,
    *,
    other_drop_rate: float | None = None,
) -> AsyncIterator[DbProxy]:
    """Serve a :class:`DbProxy` to PostgreSQL at ``upstream``/``port`` for the ``async with``.

    Args:
        upstream: The server's Unix socket directory (a path starting with
            ``/``, as in ``?host=/dir``), or a TCP host name or address.
        port: The server's port (also the number in the proxy's socket name).
        rng: Decides every fault; seed it for a reproducible schedule.
        drop_rate: Probability of a fault per statement (see the module docstring).
        other_drop_rate: The same for connections other than the indexer's
            writer (default: ``drop_rate``).
    """
    # A short directory: a Unix socket path must fit in about 100 bytes.
    listen_dir = Path(tempfile.mkdtemp(prefix="simdb-", dir="/tmp"))
    path = listen_dir / f".s.PGSQL.{port}"
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other = drop_rate if other_drop_rate is None else other_drop_rate
    proxy = DbProxy(upstream, port, rng, drop_rate, other, listen_dir)
    try:
        await sock.bind(str(path))
        sock.listen(64)
        listener = trio.SocketListener(sock)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.serve_listeners, proxy.serve_connection, [listener]))
            try:
                yield proxy
            finally:
                nursery.cancel_scope.cancel()
    finally:
        sock.close()
        shutil.rmtree(listen_dir, ignore_errors=True)
