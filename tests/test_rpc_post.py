"""The log worker's blocking POST (``sources/_rpc_post.py``) against a real HTTP server.

The server is the standard library's, on a free loopback port, in a thread:
it records what each request carried and answers as a node may (gzip when
asked, a keep-alive connection it then drops, an encoding nobody asked for).
The worker's whole path, child process included, runs in test_rpc_worker.py.
"""

from __future__ import annotations

import gzip
import json
import threading
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from indexer.sources._rpc_post import BlockingPost, PostError

if TYPE_CHECKING:
    from collections.abc import Iterator

_HEADERS = {"Content-Type": "application/json"}
_ANSWER = json.dumps({"jsonrpc": "2.0", "id": 1, "result": ["0x" + "ab" * 32] * 500}).encode()


class _Node(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, Any]]] = []
    mode: ClassVar[str] = "plain"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(
            {
                "path": self.path,
                "headers": dict(self.headers),
                "body": body,
                "port": self.client_address[1],
            }
        )
        answer, extra = _ANSWER, {}
        if self.mode == "gzip" and "gzip" in self.headers.get("Accept-Encoding", ""):
            answer, extra = gzip.compress(_ANSWER), {"Content-Encoding": "gzip"}
        if self.mode == "br":
            extra = {"Content-Encoding": "br"}
        self.send_response(200)
        for key, value in {"Content-Type": "application/json", **extra}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        if self.mode == "drop":
            # Answered as keep-alive, then gone: what a node's idle timeout does.
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def node() -> Iterator[tuple[str, type[_Node]]]:
    handler = type("Node", (_Node,), {"seen": [], "mode": "plain"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_posts_on_one_kept_alive_connection(node: tuple[str, type[_Node]]) -> None:
    url, handler = node
    post = BlockingPost(url + "/rpc?key=abc", 10, _HEADERS)
    assert not post.uses_httpx
    for i in range(3):
        assert post.post(b'{"id": %d}' % i) == (200, _ANSWER)
    assert [s["body"] for s in handler.seen] == [b'{"id": 0}', b'{"id": 1}', b'{"id": 2}']
    assert {s["path"] for s in handler.seen} == {"/rpc?key=abc"}
    assert len({s["port"] for s in handler.seen}) == 1  # one connection
    assert handler.seen[0]["headers"]["Content-Type"] == "application/json"
    post.close()


def test_gzip_is_asked_for_and_inflated(node: tuple[str, type[_Node]]) -> None:
    url, handler = node
    handler.mode = "gzip"
    with closing(BlockingPost(url, 10, _HEADERS)) as post:
        assert post.post(b"{}") == (200, _ANSWER)
    assert handler.seen[0]["headers"]["Accept-Encoding"] == "gzip"


def test_user_and_password_in_the_url_are_basic_auth(node: tuple[str, type[_Node]]) -> None:
    url, handler = node
    with_auth = url.replace("http://", "http://al%40ice:s3cr%3At@")
    with closing(BlockingPost(with_auth, 10, _HEADERS)) as post:
        assert post.post(b"{}")[0] == 200
    # base64 of "al@ice:s3cr:t": the userinfo is percent-decoded, as httpx does.
    assert handler.seen[0]["headers"]["Authorization"] == "Basic YWxAaWNlOnMzY3I6dA=="


def test_a_connection_the_node_dropped_is_replaced_once(node: tuple[str, type[_Node]]) -> None:
    url, handler = node
    handler.mode = "drop"
    with closing(BlockingPost(url, 10, _HEADERS)) as post:
        for _ in range(3):
            assert post.post(b"{}") == (200, _ANSWER)
    assert len({s["port"] for s in handler.seen}) == 3


def test_an_encoding_not_asked_for_is_an_error(node: tuple[str, type[_Node]]) -> None:
    url, handler = node
    handler.mode = "br"
    with closing(BlockingPost(url, 10, _HEADERS)) as post, pytest.raises(PostError, match="'br'"):
        post.post(b"{}")


def test_no_node_is_an_error_naming_it() -> None:
    with (
        closing(BlockingPost("http://127.0.0.1:1/", 5, _HEADERS)) as post,
        pytest.raises(PostError, match="ConnectionRefusedError"),
    ):
        post.post(b"{}")


def test_a_proxy_in_the_environment_keeps_httpx(
    node: tuple[str, type[_Node]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = node
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # this node is reached directly all the same
    post = BlockingPost(url, 10, _HEADERS)
    assert post.uses_httpx
    assert post.post(b"{}") == (200, _ANSWER)
    post.close()
