"""The API's connections (``api/_transport.py``): written straight, closed when the client goes."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import orjson
import trio

from indexer.api import _transport as transport
from indexer.api._serve import KEEP_ALIVE_SECONDS

from ._serving import serving
from .test_server_errors import _get_health, _project, _settled

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


async def _connect(client: Any) -> trio.SocketStream:
    host, port = str(client.base_url.host), client.base_url.port
    assert port is not None
    return await trio.open_tcp_stream(host, port)


async def test_the_api_handles_connections_with_the_lean_class(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """The installed Hypercorn has what LeanConnection relies on: it is used, not skipped."""
    async with serving(_project(tmp_path, schema), database_url) as client:
        assert transport.installed()
        assert transport.install()  # idempotent
        assert (await client.get("/health")).json() == {"status": "ok"}


async def test_a_connection_the_client_closed_is_closed_at_once(
    tmp_path: Path, database_url: str, schema: str
) -> None:
    """Hypercorn kept it (CLOSE-WAIT, a file descriptor held) until its idle timer fired:
    75 s with the API's keep-alive, so clients that connect once piled sockets up."""
    assert KEEP_ALIVE_SECONDS > 30
    async with serving(_project(tmp_path, schema), database_url) as client:
        for _ in range(3):
            stream = await _connect(client)
            assert (await _get_health(stream)).startswith(b"HTTP/1.1 200")
            # The server has recycled the connection and waits, idle, for the next
            # request (a close before that was always seen).
            await _settled()
            # Half-closed: the client is done, and can still see the server close.
            await stream.send_eof()
            with trio.fail_after(10):
                assert await stream.receive_some(65536) == b""
            await stream.aclose()


async def test_an_answer_larger_than_the_socket_takes_arrives_whole_and_in_order(
    tmp_path: Path, database_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that reads slowly: the direct write takes part, the locked path the rest."""
    taken: list[tuple[int, int]] = []
    write_now = transport._write_now

    def spy(sock: trio.socket.SocketType, data: bytes) -> int:
        sent = write_now(sock, data)
        taken.append((sent, len(data)))
        return sent

    monkeypatch.setattr(transport, "_write_now", spy)
    body = {"sql": "SELECT repeat('ab', 2000000) AS s, 7 AS n", "params": []}
    request = orjson.dumps(body)
    async with serving(_project(tmp_path, schema), database_url) as client:
        for round_no in range(2):
            sock = trio.socket.socket()
            # A small receive window, and nothing read for a while: the server's
            # socket fills.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            host, port = str(client.base_url.host), client.base_url.port
            await sock.connect((host, port))
            stream = trio.SocketStream(sock)
            await stream.send_all(
                b"POST /sql HTTP/1.1\r\nHost: api\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(request), request)
            )
            await trio.sleep(0.5)
            got = b""
            while b"\r\n\r\n" not in got:
                got += await stream.receive_some(65536)
            head, rest = got.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(
                next(
                    line.split(b":")[1]
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
            )
            while len(rest) < length:
                rest += await stream.receive_some(65536)
            assert len(rest) == length
            assert orjson.loads(rest) == {
                "columns": ["s", "n"],
                "rows": [["ab" * 2_000_000, 7]],
                "truncated": False,
            }, f"round {round_no}"
            await stream.aclose()
    # Some piece was too large to be taken at once, and went the locked way.
    assert any(0 <= sent < size for sent, size in taken), taken
    assert any(sent == size for sent, size in taken), taken


def test_install_leaves_a_hypercorn_of_another_shape_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hypercorn whose worker uses another class, or whose class lacks a name the
    subclass relies on, keeps its own handler: install says so and changes nothing."""
    from hypercorn.trio import run as hypercorn_run
    from hypercorn.trio.tcp_server import TCPServer

    def handler() -> object:
        return getattr(hypercorn_run, "TCPServer")  # noqa: B009 (not an export of it)

    class Other:
        pass

    monkeypatch.setattr(hypercorn_run, "TCPServer", Other)
    assert not transport.install()
    assert handler() is Other

    monkeypatch.setattr(hypercorn_run, "TCPServer", TCPServer)
    monkeypatch.setattr(transport, "_USED", (*transport._USED, "a_name_it_never_had"))
    assert not transport.install()
    assert handler() is TCPServer
    assert not transport.installed()
