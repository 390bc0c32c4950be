"""The JSON-RPC client: retries, backoff, error classification, batches, redaction.

Every test talks to a scripted node behind ``httpx.MockTransport``; sleeps run on
Trio's autojump clock, so backoff delays are asserted in virtual time.
"""

from __future__ import annotations

import logging
import random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import httpx
import orjson
import pytest
import trio
import trio.testing

from indexer.sources._rpc import (
    RpcClient,
    RpcError,
    RpcRangeError,
    RpcTimeoutError,
    is_range_error,
    open_rpc_client,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

URL = "https://user:secret@node.example/v2/abcdef0123456789abcdef0123456789"
SHOWN = "https://user:***@node.example/v2/***"
SECRETS = ("secret", "abcdef0123456789abcdef0123456789")

Reply: TypeAlias = "httpx.Response | Exception | Callable[[Any], httpx.Response]"


def result(value: Any) -> Callable[[Any], httpx.Response]:
    """A reply answering a single request with `value`."""
    return lambda body: _json({"jsonrpc": "2.0", "id": body["id"], "result": value})


def rpc_error(code: int, message: str) -> Callable[[Any], httpx.Response]:
    """A reply answering a single request with a JSON-RPC error object."""
    error = {"code": code, "message": message}
    return lambda body: _json({"jsonrpc": "2.0", "id": body["id"], "error": error})


def _json(value: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(value))


class Node:
    """Answers request n with ``replies[n]``; the last reply answers all further requests."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.bodies: list[Any] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(trio.current_time())
        self.bodies.append(orjson.loads(request.content))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            # A fresh copy: the same scripted reply may answer several requests.
            return httpx.Response(reply.status_code, headers=reply.headers, content=reply.content)
        return reply(self.bodies[-1])

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


@asynccontextmanager
async def rpc(node: Node, **kw: Any) -> AsyncIterator[RpcClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(node)) as client:
        yield RpcClient(URL, client=client, **kw)


def assert_redacted(message: str) -> None:
    assert SHOWN in message
    for secret in SECRETS:
        assert secret not in message


class UpperBound(random.Random):
    """Jitter that always picks the largest delay allowed, to see the bounds themselves."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_backoff_bounds_double_up_to_the_cap(autojump_clock: trio.testing.MockClock) -> None:
    node = Node(*[httpx.Response(503)] * 7, result("0x2a"))
    async with rpc(node, backoff_base=0.25, backoff_cap=2.0, rng=UpperBound()) as client:
        assert await client.block_number() == 42
    assert node.gaps() == pytest.approx([0.25, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0])


async def test_backoff_is_full_jitter_from_the_given_rng(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = Node(*[httpx.Response(429)] * 7, result("0x1"))
    async with rpc(node, rng=random.Random(1234)) as client:
        assert await client.block_number() == 1
    replay = random.Random(1234)
    bounds = [min(10.0, 0.25 * 2**k) for k in range(7)]
    assert node.gaps() == pytest.approx([replay.uniform(0, b) for b in bounds])
    assert all(0 <= gap <= b for gap, b in zip(node.gaps(), bounds, strict=True))


async def test_gives_up_after_max_attempts_with_a_redacted_message(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="indexer.sources")
    node = Node(httpx.Response(503))
    async with rpc(node, max_attempts=5, rng=random.Random(0)) as client:
        with pytest.raises(RpcError) as info:
            await client.call("eth_blockNumber", [])
    assert len(node.times) == 5
    message = str(info.value)
    assert "eth_blockNumber" in message
    assert "gave up after 5 attempts" in message
    assert "HTTP 503" in message
    assert_redacted(message)
    assert info.value.method == "eth_blockNumber"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert "attempt 1/5" in warnings[0]
    assert "attempt 4/5" in warnings[-1]
    for warning in warnings:
        assert "eth_blockNumber" in warning
        assert "HTTP 503" in warning
        assert_redacted(warning)


async def test_default_attempt_cap_is_8(autojump_clock: trio.testing.MockClock) -> None:
    node = Node(httpx.ConnectError("connection refused"))
    async with rpc(node) as client:
        with pytest.raises(RpcError, match="gave up after 8 attempts") as info:
            await client.chain_id()
    assert len(node.times) == 8
    assert "ConnectError: connection refused" in str(info.value)
    # Full jitter keeps every sleep below its doubling bound.
    assert all(gap <= min(10.0, 0.25 * 2**k) for k, gap in enumerate(node.gaps()))


async def test_url_quoted_by_an_exception_is_redacted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = Node(httpx.ConnectError(f"cannot connect to {URL}"))
    async with rpc(node, max_attempts=2) as client:
        with pytest.raises(RpcError) as info:
            await client.call("eth_chainId", [])
    assert "ConnectError: cannot connect to" in str(info.value)
    assert_redacted(str(info.value))


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(403, text=f"forbidden: {URL}"),
        rpc_error(-32602, f"invalid params for {URL}"),
        rpc_error(-32005, f"query returned more than 10000 results at {URL}"),
    ],
    ids=["http-body", "node-error", "range-error"],
)
async def test_url_echoed_by_the_node_is_redacted(
    autojump_clock: trio.testing.MockClock, reply: Reply
) -> None:
    async with rpc(Node(reply)) as client:
        with pytest.raises(RpcError) as info:
            await client.call("eth_getLogs", [{}])
    message = str(info.value)
    assert message.count(SHOWN) == 2
    assert_redacted(message)


TRANSIENT: dict[str, Reply] = {
    "http-429": httpx.Response(429, text="slow down"),
    "http-500": httpx.Response(500),
    "http-502": httpx.Response(502, text="<html>bad gateway</html>"),
    "http-503": httpx.Response(503),
    "connect-error": httpx.ConnectError("connection refused"),
    "read-error": httpx.ReadError("connection reset by peer"),
    "write-error": httpx.WriteError("broken pipe"),
    "remote-closed": httpx.RemoteProtocolError("server disconnected without sending a response"),
    "connect-timeout": httpx.ConnectTimeout("connect timed out"),
    "rate-limit": rpc_error(-32005, "rate limit exceeded"),
    "infura-rate": rpc_error(-32005, "project ID request rate exceeded"),
    "code-429": rpc_error(429, "Too Many Requests"),
    "header-not-found": rpc_error(-32000, "header not found"),
    "unknown-block": rpc_error(-32000, "unknown block"),
    "limit-exceeded-400": _json(
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32005, "message": "limit exceeded"}}, 400
    ),
}


@pytest.mark.parametrize("failure", TRANSIENT.values(), ids=TRANSIENT.keys())
async def test_transient_failures_are_retried(
    autojump_clock: trio.testing.MockClock, failure: Reply
) -> None:
    node = Node(failure, failure, result("0x10"))
    async with rpc(node) as client:
        # retry_timeouts=False must not stop retries of failures other than read/write timeouts.
        assert await client.call("eth_blockNumber", [], retry_timeouts=False) == "0x10"
    assert len(node.times) == 3
    assert node.gaps()[0] <= 0.25
    assert node.gaps()[1] <= 0.5


@pytest.mark.parametrize(
    ("reply", "code", "wording"),
    [
        (httpx.Response(400, text="bad request body"), None, "HTTP 400 Bad Request"),
        (httpx.Response(401, text="invalid API key"), None, "HTTP 401 Unauthorized"),
        (httpx.Response(404), None, "HTTP 404"),
        (rpc_error(-32602, "invalid params"), -32602, "-32602 invalid params"),
        (rpc_error(-32601, "the method eth_foo does not exist"), -32601, "-32601 the method"),
        (rpc_error(-32600, "invalid request"), -32600, "-32600 invalid request"),
        (rpc_error(-32700, "parse error"), -32700, "-32700 parse error"),
        (rpc_error(-32000, "execution reverted"), -32000, "-32000 execution reverted"),
        (
            _json({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "bad"}}, 400),
            -32602,
            "-32602 bad",
        ),
    ],
)
async def test_permanent_errors_fail_fast(
    autojump_clock: trio.testing.MockClock, reply: Reply, code: int | None, wording: str
) -> None:
    node = Node(reply, result("0x1"))
    async with rpc(node) as client:
        with pytest.raises(RpcError) as info:
            await client.call("eth_getLogs", [{}])
    assert len(node.times) == 1
    assert type(info.value) is RpcError
    assert info.value.code == code
    assert info.value.method == "eth_getLogs"
    message = str(info.value)
    assert message.startswith(f"JSON-RPC eth_getLogs to {SHOWN} failed: ")
    assert wording in message
    assert "This is not a transient error" in message
    assert_redacted(message)


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, text="<html>captive portal</html>"),
        _json({"jsonrpc": "2.0", "id": 1}),
        _json([1, 2]),
        result("not hex"),
        result(None),
    ],
)
async def test_malformed_responses_fail_fast(
    autojump_clock: trio.testing.MockClock, reply: Reply
) -> None:
    node = Node(reply, result("0x1"))
    async with rpc(node) as client:
        with pytest.raises(RpcError, match="not valid JSON-RPC") as info:
            await client.block_number()
    assert len(node.times) == 1
    assert "eth_blockNumber" in str(info.value)
    assert_redacted(str(info.value))


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-32005, "query returned more than 10000 results"),
        (-32000, "block range too large"),
        (-32000, "block range is too wide"),
        (-32000, "range is too large, max is 1k blocks"),
        (-32000, "exceed maximum block range: 50000"),
        (-32600, "query exceeds max block range 100000"),
        (-32000, "response size exceeded"),
        (
            -32602,
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
        ),
        (-32000, "limit exceeded for this block range"),
        (-32005, "Query returned more than 20000 logs"),
        (-32602, "eth_getLogs is limited to a 10,000 range"),
        (None, "ranges over 10000 blocks are not supported on freetier"),
    ],
)
async def test_range_errors_are_raised_at_once(
    autojump_clock: trio.testing.MockClock, code: int | None, message: str
) -> None:
    assert is_range_error(code, message)
    error: dict[str, Any] = (
        {"message": message} if code is None else {"code": code, "message": message}
    )
    node = Node(lambda body: _json({"jsonrpc": "2.0", "id": body["id"], "error": error}))
    async with rpc(node) as client:
        with pytest.raises(RpcRangeError) as info:
            await client.get_logs(0, 10**6, addresses=None, topic0s=["0xaa"])
    assert len(node.times) == 1
    assert info.value.code == code
    assert info.value.method == "eth_getLogs"
    assert message in str(info.value)
    assert_redacted(str(info.value))


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (-32005, "limit exceeded"),
        (-32005, "rate limit exceeded"),
        (-32005, "daily request count exceeded, request rate limited"),
        (429, "Too Many Requests"),
        (-32000, "header not found"),
        (-32602, "invalid argument 0: hex string has length 3, want 40"),
        (-32601, "the method eth_getLogs does not exist/is not available"),
        (-32000, "execution reverted"),
    ],
)
def test_is_range_error_rejects_other_errors(code: int, message: str) -> None:
    assert not is_range_error(code, message)


async def test_timeouts_are_retried_by_default(autojump_clock: trio.testing.MockClock) -> None:
    node = Node(httpx.ReadTimeout("timed out"), httpx.WriteTimeout("timed out"), result("0x7"))
    async with rpc(node) as client:
        assert await client.chain_id() == 7
    assert len(node.times) == 3


async def test_timeout_without_retry_raises_rpc_timeout_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = Node(httpx.ReadTimeout("timed out"), result([]))
    async with rpc(node) as client:
        with pytest.raises(RpcTimeoutError) as info:
            await client.get_logs(1, 2, addresses=None, topic0s=["0xaa"])
        assert len(node.times) == 1
        # The same call, allowed to retry timeouts, gets through on the second request.
        node.replies = [httpx.ReadTimeout("timed out"), result([])]
        assert await client.call("eth_getLogs", [{}]) == []
    assert "eth_getLogs" in str(info.value)
    assert "ReadTimeout: timed out" in str(info.value)
    assert info.value.method == "eth_getLogs"
    assert_redacted(str(info.value))
    assert len(node.times) == 3


async def test_get_logs_request_shape(autojump_clock: trio.testing.MockClock) -> None:
    logs = [{"blockNumber": "0x10", "logIndex": "0x0"}]
    node = Node(result(logs))
    async with rpc(node) as client:
        got = await client.get_logs(16, 31, addresses=["0xab", "0xcd"], topic0s=["0x01", "0x02"])
        assert got == logs
        await client.get_logs(5, 5, addresses=None, topic0s=["0x01"])
    first, second = node.bodies
    assert first["method"] == "eth_getLogs"
    assert first["jsonrpc"] == "2.0"
    assert first["params"] == [
        {
            "fromBlock": "0x10",
            "toBlock": "0x1f",
            "address": ["0xab", "0xcd"],
            "topics": [["0x01", "0x02"]],
        }
    ]
    assert second["params"] == [{"fromBlock": "0x5", "toBlock": "0x5", "topics": [["0x01"]]}]
    assert second["id"] > first["id"]


async def test_batch_results_follow_the_calls_not_the_answer_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def reversed_answers(body: Any) -> httpx.Response:
        answers = [{"jsonrpc": "2.0", "id": c["id"], "result": c["params"][0]} for c in body]
        return _json(answers[::-1])

    node = Node(reversed_answers)
    calls = [("echo", [f"value {i}"]) for i in range(5)]
    async with rpc(node) as client:
        assert await client.batch(calls) == [f"value {i}" for i in range(5)]
        assert await client.batch([]) == []
    (body,) = node.bodies
    assert isinstance(body, list)
    ids = [c["id"] for c in body]
    assert ids == sorted(set(ids))


async def test_batch_resends_only_the_transiently_failed_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def first(body: Any) -> httpx.Response:
        busy = {"code": -32005, "message": "rate limit exceeded"}
        return _json(
            [{"jsonrpc": "2.0", "id": body[0]["id"], "error": busy}]
            + [{"jsonrpc": "2.0", "id": c["id"], "result": c["params"][0]} for c in body[1:]]
        )

    def second(body: Any) -> httpx.Response:
        return _json([{"jsonrpc": "2.0", "id": c["id"], "result": c["params"][0]} for c in body])

    node = Node(first, second)
    async with rpc(node) as client:
        assert await client.batch([("echo", ["a"]), ("echo", ["b"]), ("echo", ["c"])]) == [
            "a",
            "b",
            "c",
        ]
    assert [len(body) for body in node.bodies] == [3, 1]
    assert node.bodies[1][0]["params"] == ["a"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": -32005, "message": "query returned more than 10000 results"}, RpcRangeError),
        ({"code": -32601, "message": "method not found"}, RpcError),
    ],
)
async def test_batch_element_error_fails_the_batch(
    autojump_clock: trio.testing.MockClock, error: dict[str, Any], expected: type[RpcError]
) -> None:
    def answer(body: Any) -> httpx.Response:
        ok = {"jsonrpc": "2.0", "id": body[0]["id"], "result": "0x1"}
        return _json([ok, {"jsonrpc": "2.0", "id": body[1]["id"], "error": error}])

    node = Node(answer)
    async with rpc(node) as client:
        with pytest.raises(RpcError) as info:
            await client.batch([("eth_chainId", []), ("eth_getLogs", [{}])])
    assert type(info.value) is expected
    assert info.value.method == "eth_getLogs"
    assert info.value.code == error["code"]
    assert "eth_getLogs (in a batch of 2" in str(info.value)
    assert len(node.times) == 1


async def test_batch_missing_answer_is_an_error(autojump_clock: trio.testing.MockClock) -> None:
    node = Node(lambda body: _json([{"jsonrpc": "2.0", "id": body[0]["id"], "result": 1}]))
    async with rpc(node) as client:
        with pytest.raises(RpcError, match="no answer to request ids"):
            await client.batch([("a", []), ("b", [])])
    assert len(node.times) == 1


async def test_get_blocks_sends_chunks_of_100(autojump_clock: trio.testing.MockClock) -> None:
    def blocks(body: Any) -> httpx.Response:
        answers = []
        for c in body:
            number = int(c["params"][0], 16)
            block = {"number": c["params"][0], "hash": f"0x{number:064x}"} if number < 240 else None
            answers.append({"jsonrpc": "2.0", "id": c["id"], "result": block})
        return _json(answers[::-1])

    node = Node(blocks)
    numbers = list(range(250))
    async with rpc(node) as client:
        got = await client.get_blocks(numbers)
        assert await client.get_blocks([]) == []
    assert [len(body) for body in node.bodies] == [100, 100, 50]
    assert all(c["method"] == "eth_getBlockByNumber" for body in node.bodies for c in body)
    assert node.bodies[0][0]["params"] == ["0x0", False]
    assert len(got) == 250
    assert [b["number"] for b in got[:240] if b is not None] == [hex(n) for n in range(240)]
    assert got[240:] == [None] * 10


async def test_chain_id_mismatch(autojump_clock: trio.testing.MockClock) -> None:
    node = Node(result("0x1"))
    async with rpc(node, chain_id=10) as client:
        with pytest.raises(RpcError) as info:
            await client.check_chain_id()
    message = str(info.value)
    assert f"the node at {SHOWN} serves chain 1 but indexer.yaml says chain 10" in message
    assert_redacted(message)
    assert node.bodies[0]["method"] == "eth_chainId"


async def test_chain_id_match_and_no_expectation(autojump_clock: trio.testing.MockClock) -> None:
    node = Node(result("0xa"))
    async with rpc(node, chain_id=10) as client:
        await client.check_chain_id()
    assert len(node.times) == 1
    async with rpc(node) as client:
        await client.check_chain_id()
    assert len(node.times) == 1


async def test_open_rpc_client_owns_its_http_client() -> None:
    async with open_rpc_client(URL, timeout=5.0, chain_id=3, max_attempts=2) as client:
        http = client._client
        assert not http.is_closed
        assert http.timeout.read == 5.0
        assert client._chain_id == 3
        assert client._max_attempts == 2
    assert http.is_closed


async def test_max_attempts_must_be_positive() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ValueError, match="max_attempts"):
            RpcClient(URL, client=http, max_attempts=0)
