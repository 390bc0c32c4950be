"""A JSON-RPC endpoint that answers from a :class:`ScriptedChain`, with scripted faults.

This module is what the endpoint says: the methods, their validation, the
scripted failures and latency, block production.  How requests reach it is
in ``_rpc_http.py``: over HTTP/1.1 sockets (:func:`open_rpc_server`), or
in-process through :meth:`RpcServer.transport`.  Every wait (latency,
block production) is a ``trio.sleep``, so a ``MockClock`` drives it.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

import orjson
import trio

from ._chain_data import block_json, locate_transaction, receipt_json, transaction_json

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import httpx

    from ._chain import Block, LogSpec, ScriptedChain

__all__ = ["FAILURE_KINDS", "RpcServer"]

FAILURE_KINDS = frozenset(
    {"http_500", "http_503", "http_429", "disconnect", "rpc_error", "timeout"}
)
"""The kinds of failure :meth:`RpcServer.fail` can script."""

_HTTP_STATUS = {"http_500": 500, "http_503": 503, "http_429": 429}
# Block tags, as distances below the head (geth's finalized lags two epochs).
_TAG_DEPTH = {"latest": 0, "pending": 0, "safe": 32, "finalized": 64}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class _Failure:
    kind: str
    code: int
    message: str
    remaining: int


@dataclass(frozen=True, slots=True)
class _Reply:
    """What to do with one HTTP request: answer, drop the connection, or hang."""

    action: str  # "answer", "disconnect" or "timeout"
    status: int = 200
    body: bytes = b""


def _error(call_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": call_id, "error": {"code": code, "message": message}}


def _invalid(message: str) -> _RpcError:
    return _RpcError(-32602, f"invalid params: {message}")


def _is_hex(value: object, digits: int | None = None) -> TypeGuard[str]:
    """True for ``0x`` + hex digits (exactly ``digits`` of them, if given)."""
    return (
        isinstance(value, str)
        and value[:2] == "0x"
        and len(value) > 2
        and (digits is None or len(value) == digits + 2)
        and _HEX_DIGITS.issuperset(value[2:])
    )


def _hex_set(value: object, digits: int, what: str) -> frozenset[str] | None:
    """A filter entry (None, one hex string or a list of them) as a set; None or [] = any."""
    items = [] if value is None else [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise _invalid(f"{what} must be a hex string or a list of them, got {value!r}")
    for item in items:
        if not _is_hex(item, digits):
            raise _invalid(f"{what} {item!r} is not 0x followed by {digits} hex digits")
    return frozenset(item.lower() for item in items) or None


def _full(params: list[Any]) -> bool:
    return len(params) > 1 and params[1] is True


class RpcServer:
    """A JSON-RPC endpoint over a :class:`ScriptedChain`.

    Made by :func:`open_rpc_server`, which serves it over HTTP.  Answers
    read the chain at the moment they are sent, so a test may change the
    chain between (or during) calls.

    Made directly, ``RpcServer(chain)``, it listens nowhere (``url`` is
    ``""``) and is reached only through :meth:`transport`: the way to test
    under Trio's mock clock.  Failures, latency and ``calls`` work the same
    both ways, and an :func:`open_rpc_server` server answers on both.

    Attributes:
        chain: The chain the server answers from.
        url: ``http://HOST:PORT/`` once listening (any path is accepted);
            ``""`` for a server made directly.
        calls: Method name -> calls received, counted when the server
            takes a call up (before any latency), whether it is then
            answered or fails.  Each call of a batch counts.

    Several servers may serve one chain, each with its own failures,
    latency and :meth:`lag`: the way to test a project with several
    ``rpc`` URLs (failover).
    """

    def __init__(self, chain: ScriptedChain, url: str = "") -> None:
        self.chain = chain
        self.url = url
        self.calls: collections.Counter[str] = collections.Counter()
        self._failures: dict[str, collections.deque[_Failure]] = {}
        self._latency: dict[str, float] = {}
        self._lag = 0
        self._methods: dict[str, Callable[[list[Any]], Any]] = {
            "eth_chainId": lambda params: hex(self.chain.chain_id),
            "eth_blockNumber": lambda params: hex(self.head),
            "eth_getBlockByNumber": self._get_block_by_number,
            "eth_getBlockByHash": self._get_block_by_hash,
            "eth_getLogs": self._get_logs,
            "eth_getBlockReceipts": self._get_block_receipts,
            "eth_getTransactionReceipt": self._get_transaction_receipt,
            "eth_getTransactionByHash": self._get_transaction_by_hash,
        }
        self._unsupported: set[str] = set()

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that answers requests in-process, without sockets.

        Pass it as ``httpx.AsyncClient(transport=...)`` (through the
        runtime: ``RunOptions(rpc_tuning={"client_options": {"transport": ...}})``);
        the request URL is then ignored, so any ``http://`` URL will do.
        This is the way to test under Trio's mock clock (``autojump_clock``):
        every wait is a ``trio.sleep`` and nothing waits on a real socket,
        so virtual time is exact.

        Requests get the answers of the socket server, scripted failures
        included: ``http_*`` kinds answer that status; ``rpc_error`` a
        JSON-RPC error; latency is a ``trio.sleep``; ``disconnect`` raises
        ``httpx.RemoteProtocolError``; ``timeout`` never answers, so the
        client's read timeout (from the request's ``timeout`` extension, as
        httpx sets it) raises ``httpx.ReadTimeout``, and without one the
        request hangs.  The read timeout also bounds latency, as a socket
        read would.  A non-POST request gets 405.

        The transport holds no connections: one may serve many clients in
        turn (e.g. a runtime restarting its feeds after a reorg), and
        closing it does nothing.
        """
        from ._rpc_http import InProcessTransport  # the HTTP layer builds on this module

        return InProcessTransport(self)

    @property
    def head(self) -> int:
        """The head this server serves: the chain's, less its :meth:`lag`."""
        return max(0, self.chain.head - self._lag)

    # -- scripting -------------------------------------------------------

    def lag(self, blocks: int) -> None:
        """Serve the chain as a node ``blocks`` behind its head would (0: in sync again).

        ``eth_blockNumber`` and the block tags say ``chain.head - blocks``;
        blocks above that are unknown (``eth_getBlockByNumber`` and
        ``eth_getBlockByHash`` answer null) and ``eth_getLogs`` answers only
        up to it, as for any range reaching past the head (geth's clamping).
        Blocks at or below it are the chain's current ones.  Set while a
        client runs, it is a node that fell behind: a client that read the
        higher head before finds blocks it expected missing.

        Raises:
            ValueError: ``blocks`` is negative.
        """
        if blocks < 0:
            raise ValueError(f"lag must not be negative, got {blocks}")
        self._lag = blocks

    def unsupported(self, method: str) -> None:
        """Answer ``method`` as a node without it does: JSON-RPC error -32601 (method not found).

        E.g. ``eth_getBlockReceipts``, which older nodes lack.
        """
        self._unsupported.add(method)

    def fail(
        self,
        method: str,
        times: int = 1,
        *,
        kind: str = "http_500",
        code: int = -32000,
        message: str = "scripted failure",
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail.

        Failures queue up per method, in the order scripted; a call takes
        one for its own method before one for ``"*"``.  Kinds:

        * ``"http_500"``, ``"http_503"``, ``"http_429"``: that HTTP status, a short text body.
        * ``"disconnect"``: the connection is closed without an answer.
        * ``"rpc_error"``: HTTP 200 with the JSON-RPC error ``{code, message}``.
        * ``"timeout"``: no answer ever; the server waits until the client
          closes the connection.

        In a batch, each call takes its own failure in order; a failure
        other than ``rpc_error`` fails the whole HTTP request (later calls
        of the batch take none), while ``rpc_error`` fails just its call.

        Args:
            method: The method name, or ``"*"`` for any method.
            times: How many calls fail.
            kind: One of :data:`FAILURE_KINDS`.
            code: The JSON-RPC error code (``rpc_error`` only).
            message: The error message (``rpc_error`` only).

        Raises:
            ValueError: An unknown kind or ``times`` below 1.
        """
        if kind not in FAILURE_KINDS:
            raise ValueError(
                f"unknown failure kind {kind!r}; expected one of {sorted(FAILURE_KINDS)}"
            )
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        self._failures.setdefault(method, collections.deque()).append(
            _Failure(kind, code, message, times)
        )

    def latency(self, method: str, seconds: float) -> None:
        """Delay every call of ``method`` (``"*"``: any method without its own) by ``seconds``.

        A batch waits once, for the longest delay among its calls.  Zero
        removes the delay.

        Raises:
            ValueError: ``seconds`` is negative or not finite.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"latency must be a finite number of seconds >= 0, got {seconds}")
        if seconds:
            self._latency[method] = seconds
        else:
            self._latency.pop(method, None)

    async def produce_blocks(
        self,
        *,
        interval: float,
        until: int,
        reorgs: Mapping[int, int] | None = None,
        logs: Callable[[int], Sequence[LogSpec]] | None = None,
    ) -> None:
        """Add one block every ``interval`` seconds until the head is ``until``.

        Each block comes after a ``trio.sleep(interval)``.  When the head
        reaches a height ``h`` in ``reorgs`` (once per height), the chain
        is reorged right away: ``chain.reorg(reorgs[h])`` replaces the
        last ``reorgs[h]`` blocks, so the head stays at ``h``.

        Args:
            interval: Seconds between blocks.
            until: The head to stop at (returns at once if already there).
            reorgs: Head height -> reorg depth.
            logs: ``logs(n)`` gives the logs of each new block ``n``, for
                replacement blocks too (default: no logs).
        """
        if not (math.isfinite(interval) and interval >= 0):
            raise ValueError(f"interval must be a finite number of seconds >= 0, got {interval}")
        pending = dict(reorgs or {})
        chain = self.chain
        while chain.head < until:
            await trio.sleep(interval)
            number = chain.head + 1
            chain.advance(1, {number: logs(number)} if logs else None)
            depth = pending.pop(chain.head, None)
            if depth is not None:
                first = chain.head - depth + 1
                branch = {n: logs(n) for n in range(first, chain.head + 1)} if logs else None
                chain.reorg(depth, branch)

    # -- JSON-RPC ----------------------------------------------------------

    def _take_failure(self, method: str) -> _Failure | None:
        for key in (method, "*"):
            queue = self._failures.get(key)
            if queue:
                failure = queue[0]
                failure.remaining -= 1
                if not failure.remaining:
                    queue.popleft()
                return failure
        return None

    async def _process(self, body: bytes) -> _Reply:
        """Answer one HTTP request body (a call or a batch)."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _Reply("answer", body=orjson.dumps(_error(None, -32700, f"parse error: {exc}")))
        batch = isinstance(payload, list)
        calls: list[Any] = payload if batch else [payload]
        if not calls:
            return _Reply("answer", body=orjson.dumps(_error(None, -32600, "empty batch")))
        methods = [c.get("method") if isinstance(c, dict) else None for c in calls]
        named = [m for m in methods if isinstance(m, str)]
        self.calls.update(named)

        failures: list[_Failure | None] = []
        transport: _Failure | None = None
        for method in methods:
            failure = self._take_failure(method) if isinstance(method, str) else None
            if failure is not None and failure.kind != "rpc_error":
                transport = failure
                break
            failures.append(failure)
        delay = max((self._latency.get(m, self._latency.get("*", 0.0)) for m in named), default=0.0)
        if delay:
            await trio.sleep(delay)

        if transport is not None:
            if transport.kind in _HTTP_STATUS:
                status = _HTTP_STATUS[transport.kind]
                return _Reply("answer", status, f"scripted HTTP {status}\n".encode())
            return _Reply(transport.kind)
        answers = [
            self._answer(call, failure) for call, failure in zip(calls, failures, strict=True)
        ]
        return _Reply("answer", body=orjson.dumps(answers if batch else answers[0]))

    def _answer(self, call: object, failure: _Failure | None) -> dict[str, Any]:
        if not isinstance(call, dict):
            return _error(None, -32600, "invalid request")
        call_id = call.get("id")
        method = call.get("method")
        if not isinstance(method, str):
            return _error(call_id, -32600, "invalid request: no method")
        if failure is not None:
            return _error(call_id, failure.code, failure.message)
        handler = None if method in self._unsupported else self._methods.get(method)
        if handler is None:
            return _error(call_id, -32601, f"the method {method} does not exist/is not available")
        params = call.get("params")
        if params is None:
            params = []
        try:
            if not isinstance(params, list):
                raise _invalid("params must be an array")
            result = handler(params)
        except _RpcError as exc:
            return _error(call_id, exc.code, exc.message)
        return {"jsonrpc": "2.0", "id": call_id, "result": result}

    def _block_number(self, value: object, what: str) -> int:
        if value is None:  # an omitted block means the latest, as in geth
            value = "latest"
        if isinstance(value, str) and value in _TAG_DEPTH:
            return max(0, self.head - _TAG_DEPTH[value])
        if value == "earliest":
            return 0
        if not _is_hex(value):
            raise _invalid(f"{what} {value!r} is not a hex quantity or block tag")
        return int(value, 16)

    def _get_block_by_number(self, params: list[Any]) -> dict[str, Any] | None:
        if not 1 <= len(params) <= 2:
            raise _invalid("expected [block, fullTransactions]")
        number = self._block_number(params[0], "block number")
        if number > self.head:
            return None
        return block_json(self.chain.block(number), _full(params))

    def _get_block_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        if not 1 <= len(params) <= 2:
            raise _invalid("expected [blockHash, fullTransactions]")
        if not _is_hex(params[0], 64):
            raise _invalid(f"block hash {params[0]!r} is not 0x followed by 64 hex digits")
        block = self.chain.block_by_hash(params[0])
        return (
            None if block is None or block.number > self.head else block_json(block, _full(params))
        )

    def _get_block_receipts(self, params: list[Any]) -> list[dict[str, Any]] | None:
        if len(params) != 1:
            raise _invalid("expected [block]")
        number = self._block_number(params[0], "block number")
        if number > self.head:
            return None
        block = self.chain.block(number)
        logs = self.chain.logs(number, number)
        return [receipt_json(block, i, logs) for i in range(len(block.logs))]

    def _find_transaction(self, params: list[Any]) -> tuple[Block, int] | None:
        if len(params) != 1 or not _is_hex(params[0], 64):
            raise _invalid("expected [transactionHash], 0x followed by 64 hex digits")
        tx_hash = params[0].lower()
        number, position = locate_transaction(tx_hash)
        if number > self.head:
            return None
        block = self.chain.block(number)
        if position >= len(block.logs) or transaction_json(block, position)["hash"] != tx_hash:
            return None  # unknown, or its block was reorged away
        return block, position

    def _get_transaction_receipt(self, params: list[Any]) -> dict[str, Any] | None:
        found = self._find_transaction(params)
        if found is None:
            return None
        block, position = found
        return receipt_json(block, position, self.chain.logs(block.number, block.number))

    def _get_transaction_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        found = self._find_transaction(params)
        return None if found is None else transaction_json(*found)

    def _get_logs(self, params: list[Any]) -> list[dict[str, Any]]:
        if len(params) != 1 or not isinstance(params[0], dict):
            raise _invalid("expected one filter object")
        criteria: dict[str, Any] = params[0]
        chain = self.chain
        addresses = _hex_set(criteria.get("address"), 40, "address")
        topics = criteria.get("topics") or []
        if not isinstance(topics, list) or len(topics) > 4:
            raise _invalid("topics must be a list of at most 4 entries")
        wanted = [_hex_set(t, 64, f"topics[{i}]") for i, t in enumerate(topics)]

        if criteria.get("blockHash") is not None:
            if criteria.get("fromBlock") is not None or criteria.get("toBlock") is not None:
                raise _invalid("cannot specify both blockHash and fromBlock/toBlock")
            block_hash = criteria["blockHash"]
            if not _is_hex(block_hash, 64):
                raise _invalid(f"blockHash {block_hash!r} is not 0x followed by 64 hex digits")
            block = chain.block_by_hash(block_hash)
            if block is None or block.number > self.head:
                raise _RpcError(-32000, "unknown block")
            first = last = block.number
        else:
            first = self._block_number(criteria.get("fromBlock"), "fromBlock")
            last = self._block_number(criteria.get("toBlock"), "toBlock")
            if last < first:
                raise _invalid(f"toBlock {last} is before fromBlock {first}")
            if first > self.head:
                return []
            last = min(last, self.head)  # geth answers up to the head
            limit = chain.max_block_range
            if limit is not None and last - first + 1 > limit:
                raise _RpcError(-32600, f"block range too large, max is {limit}")

        logs = chain.logs(first, last, addresses=addresses, topic0s=wanted[0] if wanted else None)
        for position, allowed in enumerate(wanted[1:], start=1):
            if allowed is not None:
                logs = [
                    log
                    for log in logs
                    if len(log["topics"]) > position and log["topics"][position] in allowed
                ]
        most = chain.max_logs_per_query
        if most is not None and len(logs) > most:
            raise _RpcError(-32005, f"query returned more than {most} results")
        return logs
