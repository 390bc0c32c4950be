"""The JSON-RPC client the RPC log source talks to a node through.

Transient failures (connection lost, HTTP 429 or 5xx, rate limits, a lagging
load-balanced node) are retried with exponential backoff and full jitter.  A
node refusing an ``eth_getLogs`` as too large raises :class:`RpcRangeError` at
once, so the caller can query less; anything else fails fast as
:class:`RpcError`.  The URL is only ever shown through ``redact_url``: hosted
nodes put API keys in it.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import httpx
import orjson
import trio

from .._errors import SourceError
from .._redact import redact_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = [
    "METHOD_NOT_FOUND",
    "RpcBeyondHeadError",
    "RpcClient",
    "RpcError",
    "RpcRangeError",
    "RpcTimeoutError",
    "RpcUnavailableError",
    "is_beyond_head",
    "is_range_error",
    "open_rpc_client",
]

_log = logging.getLogger("indexer.sources")

_BLOCKS_PER_REQUEST = 100
_T = TypeVar("_T")
METHOD_NOT_FOUND = -32601
_Call = tuple[str, list[Any]]
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
_NOT_TRANSIENT = (
    "This is not a transient error; check the `rpc` URL and the chain's settings in indexer.yaml."
)
_TOO_LARGE = "The node refuses a query this large; ask for fewer blocks at a time."
_NOT_AN_ENDPOINT = "Check that the `rpc` URL in indexer.yaml is the JSON-RPC endpoint of a node."
_UNREACHABLE = "Check that the node is up and reachable, or use one with a higher rate limit."

_QUANTITY_RE = re.compile(r"0x[0-9a-fA-F]+")
# Wordings of the common node implementations and hosted providers.
_RANGE_RE = re.compile(
    r"more than [\d,]+ results|range (?:is )?too (?:large|wide|big)"
    r"|exceeds? (?:the )?max(?:imum)? (?:block )?range|response size (?:exceeded|limit|is too)"
    r"|limited to (?:a )?[\d,]+ (?:blocks? )?range|block range limit|ranges over [\d,]+ blocks"
)
# geth and the execution-apis tests: -32602 "block range extends beyond current head block";
# anvil: "BlockOutOfRangeError: ...".
_BEYOND_HEAD_RE = re.compile(
    r"beyond (?:the )?(?:current )?head|blockoutofrange|block out of range"
)


class RpcError(SourceError):
    """A JSON-RPC request failed for good (not retried, or retried in vain).

    Attributes:
        method: The JSON-RPC method (for a batch, its methods joined by commas).
        code: The node's JSON-RPC error code, or None when there was none.
    """

    def __init__(self, message: str, *, method: str, code: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.code = code


class RpcRangeError(RpcError):
    """The node refused an ``eth_getLogs`` because its range or result set is too large."""


class RpcTimeoutError(RpcError):
    """A request made with ``retry_timeouts=False`` timed out."""


class RpcBeyondHeadError(RpcError):
    """The node refused a query for blocks above its own head.

    Not a "range too large": the node lags, or its head moved back (a reorg
    to a shorter chain).  Asking for less would not help; asking again after
    re-reading the head (or another node) does.
    """


class RpcUnavailableError(RpcError):
    """Every attempt failed transiently (connection, timeout, 429/5xx, rate limit, lag).

    Attributes:
        kind: What the last failure was: ``"rate_limit"`` (429, -32005 rate
            limits), ``"lagging"`` (the node lacks a block: "header not
            found", "unknown block") or ``"down"`` (anything else transient).
        cause: The last failure in short, for logs.
    """

    def __init__(
        self, message: str, *, method: str, kind: str, cause: str = "", code: int | None = None
    ) -> None:
        super().__init__(message, method=method, code=code)
        self.kind = kind
        self.cause = cause or message


def is_beyond_head(code: int | None, message: str) -> bool:
    """Whether `code` / `message` means "those blocks are above my head" (see RpcBeyondHeadError)."""
    del code  # the codes vary (-32602, -32000); the wordings do not
    return _BEYOND_HEAD_RE.search(message.lower()) is not None


def is_range_error(code: int | None, message: str) -> bool:
    """Whether JSON-RPC error `code` / `message` means "this log query asks for too much".

    True for messages such as "query returned more than 10000 results", "block
    range too large", "Log response size exceeded", and for code -32005 with
    "more than" or -32602 with "range" in the message.
    """
    msg = message.lower()
    if is_beyond_head(code, message):
        return False  # "block range extends beyond current head block" has "range" in it
    if _RANGE_RE.search(msg) or ("limit exceeded" in msg and "block range" in msg):
        return True
    return (code == -32005 and "more than" in msg) or (code == -32602 and "range" in msg)


def _transient_kind(code: int | None, message: str) -> str | None:
    """The RpcUnavailableError kind of a node error worth retrying, or None."""
    msg = message.lower()
    # Load-balanced nodes lag each other: a block one has served another may not know yet.
    if "header not found" in msg or "unknown block" in msg:
        return "lagging"
    if code == 429 or (code == -32005 and ("rate" in msg or "limit exceeded" in msg)):
        return "rate_limit"
    return "rate_limit" if "rate limit" in msg or "too many requests" in msg else None


def _error_fields(error: object) -> tuple[int | None, str]:
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return (code if isinstance(code, int) else None), str(message or "")
    return None, str(error)


class _Req(NamedTuple):
    what: str  # for messages: "eth_getLogs", or "batch of 100 eth_getBlockByNumber"
    methods: str  # for RpcError.method
    is_batch: bool
    retry_timeouts: bool


class _Retry(Exception):
    """An attempt failed in a way worth another; `cause` says how, for the log and the error."""

    def __init__(self, cause: str, kind: str = "down") -> None:
        super().__init__(cause)
        self.cause = cause
        self.kind = kind


class RpcClient:
    """A JSON-RPC client of one node, with retries of transient failures.

    Args:
        url: The node's http(s) URL; it may hold credentials or an API key.
        client: The HTTP client to send requests with; the caller owns it.
        chain_id: The chain ``indexer.yaml`` expects, for :meth:`check_chain_id`.
        max_attempts: Attempts per request in all, the first one included.
        backoff_base: Upper bound in seconds of the sleep before the first retry;
            it doubles for each further retry.
        backoff_cap: Largest upper bound in seconds of any sleep between attempts.
        logger: Where retries are logged (WARNING); ``indexer.sources`` by default.
        rng: Source of the backoff jitter; seed one for reproducible sleeps.
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        chain_id: int | None = None,
        max_attempts: int = 8,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
        logger: logging.Logger | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        self._url, self._shown, self._client = url, redact_url(url), client
        self._chain_id = chain_id
        self._max_attempts = max_attempts
        self._backoff_base, self._backoff_cap = backoff_base, backoff_cap
        self._logger = logger if logger is not None else _log
        self._rng = rng if rng is not None else random.Random()
        self._ids = itertools.count(1)

    async def call(self, method: str, params: list[Any], *, retry_timeouts: bool = True) -> Any:
        """Send one request and return its ``result``.

        Raises:
            RpcRangeError: The node refused the query as too large.
            RpcTimeoutError: It timed out and `retry_timeouts` is False.
            RpcError: Any other failure, permanent or retried in vain.
        """
        return (await self._request([(method, params)], False, retry_timeouts))[0]

    async def batch(
        self, calls: Sequence[tuple[str, list[Any]]], *, retry_timeouts: bool = True
    ) -> list[Any]:
        """Send `calls` as one JSON array and return their results in the order of `calls`.

        Answers are matched by id, as a node may reorder them.  Only the calls
        whose answers were transient errors are sent again.  Any other failed
        element fails the whole batch, with the errors of :meth:`call`.
        """
        if not calls:
            return []
        return await self._request(list(calls), True, retry_timeouts)

    async def chain_id(self) -> int:
        """The node's chain id (``eth_chainId``)."""
        return self._quantity("eth_chainId", await self.call("eth_chainId", []))

    async def block_number(self) -> int:
        """The node's latest block number (``eth_blockNumber``)."""
        return self._quantity("eth_blockNumber", await self.call("eth_blockNumber", []))

    async def check_chain_id(self) -> None:
        """Check that the node serves the `chain_id` given to the constructor, if one was.

        Raises:
            RpcError: The node serves another chain, or could not be asked.
        """
        if self._chain_id is None:
            return
        actual = await self.chain_id()
        if actual != self._chain_id:
            raise RpcError(
                f"the node at {self._shown} serves chain {actual} but indexer.yaml says chain "
                f"{self._chain_id}; point `rpc` at a node of chain {self._chain_id}, or fix the "
                "chain's `id`.",
                method="eth_chainId",
            )

    async def get_logs(
        self,
        from_block: int,
        to_block: int,
        *,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str],
    ) -> list[dict[str, Any]]:
        """The logs of blocks `from_block`..`to_block` (inclusive) with one of `topic0s`.

        Args:
            from_block: First block.
            to_block: Last block.
            addresses: Contract addresses to match, or None for any address.
            topic0s: Event signature hashes to match.

        Raises:
            RpcRangeError: The node refused the range as too large.
            RpcTimeoutError: The query timed out.  Not retried, as a smaller
                range is the better answer.
            RpcError: Any other failure.
        """
        query: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block)}
        if addresses is not None:
            query["address"] = list(addresses)
        query["topics"] = [list(topic0s)]
        logs = await self.call("eth_getLogs", [query], retry_timeouts=False)
        if not isinstance(logs, list) or not all(isinstance(log, dict) for log in logs):
            detail = f"expected a list of log objects, got {logs!r:.200}"
            raise self._malformed("eth_getLogs", "eth_getLogs", detail)
        return logs

    async def get_blocks(
        self, numbers: Sequence[int], *, full: bool = False
    ) -> list[dict[str, Any] | None]:
        """The headers of blocks `numbers` (``eth_getBlockByNumber``; `full`: with transactions).

        Sent as batches of at most 100 calls per HTTP request.  An entry is
        None for a block the node does not have.
        """
        return await self._per_item("eth_getBlockByNumber", [[hex(n), full] for n in numbers], dict)

    async def get_block_receipts(self, numbers: Sequence[int]) -> list[list[Any] | None]:
        """The receipts of blocks `numbers` (``eth_getBlockReceipts``), batched like blocks.

        An entry is None for a block the node does not have.  A node without
        the method raises :class:`RpcError` with code -32601.
        """
        return await self._per_item("eth_getBlockReceipts", [[hex(n)] for n in numbers], list)

    async def get_receipts(
        self, hashes: Sequence[str], need: int | None = None
    ) -> list[dict[str, Any] | None]:
        """The receipts of transactions `hashes` (``eth_getTransactionReceipt``), batched.

        `need` (the highest block they are in) is for :class:`RpcPool`'s choice of node.
        """
        return await self._per_item("eth_getTransactionReceipt", [[h] for h in hashes], dict)

    async def _per_item(
        self, method: str, params: Sequence[list[Any]], kind: type[_T]
    ) -> list[_T | None]:
        out: list[_T | None] = []
        for start in range(0, len(params), _BLOCKS_PER_REQUEST):
            chunk = params[start : start + _BLOCKS_PER_REQUEST]
            results = await self.batch([(method, p) for p in chunk])
            for p, item in zip(chunk, results, strict=True):
                if item is not None and not isinstance(item, kind):
                    detail = f"{p[0]} is {item!r:.200}, not a JSON {'object' if kind is dict else 'array'}"
                    raise self._malformed(method, method, detail)
                out.append(item)
        return out

    def _quantity(self, method: str, value: object) -> int:
        if isinstance(value, str) and _QUANTITY_RE.fullmatch(value):
            return int(value, 16)
        raise self._malformed(method, method, f"expected a hex quantity, got {value!r:.200}")

    def _fail(
        self, cls: type[RpcError], where: str, text: str, method: str, code: int | None = None
    ) -> RpcError:
        # Exception texts and echoed bodies may quote the request URL.
        text = text.replace(self._url, self._shown)
        return cls(f"JSON-RPC {where} to {self._shown} failed: {text}", method=method, code=code)

    def _malformed(self, where: str, method: str, detail: str) -> RpcError:
        text = f"the response is not valid JSON-RPC ({detail}). {_NOT_AN_ENDPOINT}"
        return self._fail(RpcError, where, text, method)

    def _node_error(self, req: _Req, method: str, error: object) -> RpcError | _Retry:
        code, message = _error_fields(error)
        cause = f"{code} {message}" if code is not None else message
        where = f"{method} (in a {req.what})" if req.is_batch else req.what
        if is_beyond_head(code, message):
            return self._fail(RpcBeyondHeadError, where, cause, method, code)
        if is_range_error(code, message):
            return self._fail(RpcRangeError, where, f"{cause}. {_TOO_LARGE}", method, code)
        kind = _transient_kind(code, message)
        if kind is not None:
            return _Retry(cause.replace(self._url, self._shown), kind)
        return self._fail(RpcError, where, f"{cause}. {_NOT_TRANSIENT}", method, code)

    async def _request(self, calls: list[_Call], is_batch: bool, retry_timeouts: bool) -> list[Any]:
        methods = ",".join(dict.fromkeys(m for m, _ in calls))
        what = f"batch of {len(calls)} {methods}" if is_batch else methods
        req = _Req(what, methods, is_batch, retry_timeouts)
        ids = [next(self._ids) for _ in calls]
        pending, done = dict(zip(ids, calls, strict=True)), dict[int, Any]()
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self._attempt(req, pending, done)
                return [done[i] for i in ids]
            except _Retry as retry:
                last = retry
            if attempt == self._max_attempts:
                break
            bound = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
            delay = self._rng.uniform(0.0, bound)
            self._logger.warning(
                "JSON-RPC %s to %s failed (attempt %d/%d): %s; retrying in %.2f s",
                *(what, self._shown, attempt, self._max_attempts, last.cause, delay),
            )
            await trio.sleep(delay)
        text = f"gave up after {self._max_attempts} attempts; the last error was: {last.cause}"
        error = self._fail(RpcError, what, f"{text}. {_UNREACHABLE}", methods)
        raise RpcUnavailableError(
            str(error), method=methods, kind=last.kind, cause=f"{what}: {last.cause}"
        ) from last.__cause__

    async def _attempt(self, req: _Req, pending: dict[int, _Call], done: dict[int, Any]) -> None:
        """One HTTP request for the `pending` calls; moves the answered ones to `done`."""
        what, methods = req.what, req.methods
        items = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in pending.items()
        ]
        body = orjson.dumps(items if req.is_batch else items[0])
        try:
            response = await self._client.post(self._url, content=body, headers=_HEADERS)
        except httpx.HTTPError as exc:
            cause = f"{type(exc).__name__}: {exc}".rstrip(": ").replace(self._url, self._shown)
            # Failing to connect says nothing about the request's size, so it is always retried.
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout) or (
                req.retry_timeouts and isinstance(exc, httpx.TimeoutException)
            ):
                raise _Retry(cause) from exc
            if isinstance(exc, httpx.TimeoutException):
                text = f"{cause}. The request may be too large for the node; ask for less at once."
                raise self._fail(RpcTimeoutError, what, text, methods) from exc
            if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
                raise _Retry(cause) from exc
            raise self._fail(RpcError, what, f"{cause}. {_NOT_TRANSIENT}", methods) from exc
        status, content = response.status_code, response.content
        if status == 429 or status >= 500:
            raise _Retry(
                f"HTTP {status} {response.reason_phrase}", "rate_limit" if status == 429 else "down"
            )
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict) and data.get("error") is not None:
            # A single answer, or a node that rejected a whole batch at once.
            raise self._node_error(req, methods, data["error"])
        if not 200 <= status < 300:
            text = f"HTTP {status} {response.reason_phrase}: {content[:300]!r}. {_NOT_TRANSIENT}"
            raise self._fail(RpcError, what, text, methods)
        if not req.is_batch:
            if not isinstance(data, dict) or "result" not in data:
                raise self._malformed(what, methods, f"body {content[:300]!r}")
            done[next(iter(pending))] = data["result"]
            pending.clear()
            return
        if not isinstance(data, list):
            raise self._malformed(what, methods, f"expected a JSON array, got {content[:300]!r}")
        retry: _Retry | None = None
        for item in data:
            key = item.get("id") if isinstance(item, dict) else None
            if not isinstance(item, dict) or key not in pending:
                raise self._malformed(what, methods, f"unexpected element {item!r:.200}")
            if item.get("error") is not None:
                failure = self._node_error(req, pending[key][0], item["error"])
                if isinstance(failure, RpcError):
                    raise failure
                retry = failure
            elif "result" in item:
                done[key] = item.get("result")
                del pending[key]
            else:
                raise self._malformed(what, methods, f"element {item!r:.200} has no result")
        if retry is not None:
            raise retry
        if pending:
            raise self._malformed(what, methods, f"no answer to request ids {sorted(pending)}")


@asynccontextmanager
async def open_rpc_client(
    url: str,
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - httpx's per-operation timeout, not a deadline
    transport: httpx.AsyncBaseTransport | None = None,
    **kw: Any,
) -> AsyncIterator[RpcClient]:
    """An :class:`RpcClient` of `url` over an HTTP client of its own, closed on exit.

    Args:
        url: The node's http(s) URL.
        timeout: Seconds allowed for connecting, and for each read and write.
        transport: What sends the HTTP requests instead of real connections
            (tests: :meth:`indexer.testing.RpcServer.transport`, which works
            under Trio's mock clock, or ``httpx.MockTransport``); None for the
            network.  The client closes it on exit.
        **kw: Passed on to :class:`RpcClient` (``chain_id``, ``max_attempts``, ...).
    """
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=8)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout), limits=limits, transport=transport
    ) as client:
        yield RpcClient(url, client=client, **kw)
