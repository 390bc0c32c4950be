"""Several JSON-RPC nodes of one chain behind the interface of one client.

``source: {rpc: [URL, URL, ...]}`` gives a chain several nodes.  Each node is
an :class:`RpcClient` that makes one attempt per request; the pool owns the
retries, so that a failure moves the request to another node instead of
waiting for the same one.  Per node it keeps:

* its **head** (``eth_blockNumber``), lowered when the node shows it lacks a
  block (a null header, "header not found", "beyond current head"): a node is
  asked only for blocks at or below its head, so a lagging node never serves
  a range it does not have;
* a **cool-down** after a transient failure (capped exponential backoff with
  full jitter, per node) and, after a rate limit, an **adaptive spacing**
  between its requests that doubles on each 429/-32005 and decays on success:
  a rate-limited or dead node backs off alone while the others keep serving;
* its consecutive failures and latency, which rank the nodes: the healthiest
  node able to serve a request gets it, config order breaking ties.

A node that failed is not dropped: every head poll asks each node that is not
cooling down, and one answer makes it healthy again.
"""

from __future__ import annotations

import itertools
import logging
import random
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .._redact import redact_url
from ._rpc import (
    RpcBeyondHeadError,
    RpcClient,
    RpcError,
    RpcTimeoutError,
    RpcUnavailableError,
    open_rpc_client,
)
from ._rpc_node import Lacks as _Lacks
from ._rpc_node import Node as _Node
from ._rpc_node import NoNode as _NoNode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

    import httpx

__all__ = ["RpcPool", "open_rpc_pool"]

_log = logging.getLogger("indexer.sources")
_T = TypeVar("_T")


class RpcPool:
    """Requests of one chain spread over several nodes; see the module docstring.

    Offers what the fetcher uses of :class:`RpcClient`: :meth:`check_chain_id`,
    :meth:`block_number`, :meth:`get_logs` and :meth:`get_blocks`; and
    :meth:`get_tip`, which tells a shorter chain from lagging nodes.

    Args:
        clients: One client per node, in config order; each should make a
            single attempt per request (``max_attempts=1``).
        chain_id: The chain every node must serve.
        max_attempts: Transient failures allowed per request *per node*
            before the request fails, as a single client allows.
        backoff_base: Upper bound in seconds of a node's first cool-down.
        backoff_cap: Largest cool-down (and rate-limit spacing) in seconds.
        head_grace: Seconds a head poll waits for the other nodes after the
            first answer; a node later than that counts as failing.
        on_request: Called with (node label, outcome) after each request:
            ``"ok"`` or the failure's kind, for per-node metrics.
        rng: Source of the cool-down jitter.
    """

    def __init__(
        self,
        clients: Sequence[tuple[str, RpcClient]],
        *,
        chain_id: int | None = None,
        max_attempts: int = 8,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
        head_grace: float = 0.5,
        on_request: Callable[[str, str], None] | None = None,
        logger: logging.Logger | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not clients:
            raise ValueError("a pool needs at least one node")
        self.nodes = [_Node(i, redact_url(url), c) for i, (url, c) in enumerate(clients)]
        self._chain_id = chain_id
        self._budget = max(1, max_attempts) * len(self.nodes)
        self._base, self._cap, self._grace = backoff_base, backoff_cap, head_grace
        self._on_request = on_request
        self._logger = logger if logger is not None else _log
        self._rng = rng if rng is not None else random.Random()

    @property
    def shown(self) -> str:
        """The nodes' redacted URLs, for messages."""
        return ", ".join(n.shown for n in self.nodes)

    # -- the fetcher's interface ---------------------------------------------

    async def check_chain_id(self) -> None:
        """Check every reachable node's chain id and read the heads.

        A node unreachable now is checked before its first use instead.

        Raises:
            RpcError: A node serves another chain, or no node answered.
        """
        await self.block_number()

    async def block_number(self) -> int:
        """Ask every node not cooling down for its head; the highest answer.

        The highest, not the chosen node's: each range goes only to nodes
        that have it, so a lagging node costs nothing, while following the
        lowest head would hold the whole chain back to the slowest node.

        Raises:
            RpcUnavailableError: No node answered, ``max_attempts`` rounds
                in a row.
            RpcError: A node serves another chain.
        """
        for round_ in itertools.count(1):
            heads = await self._head_round()
            if heads:
                return max(heads)
            if round_ >= self._budget // len(self.nodes):
                raise self._exhausted("eth_blockNumber")
            await self._wait_for_ready(self.nodes)
        raise AssertionError("unreachable")

    async def get_logs(
        self,
        from_block: int,
        to_block: int,
        *,
        addresses: Sequence[str] | None,
        topic0s: Sequence[str],
    ) -> list[dict[str, Any]]:
        """The logs of `from_block`..`to_block` from a node whose head covers `to_block`.

        Sent in one batch with the header of `to_block`: a node without that
        block would answer only up to its own head (geth clamps) and lose
        logs silently, so a null header sends the request elsewhere.

        Raises:
            RpcBeyondHeadError: No node has `to_block` now (re-read the head).
            RpcRangeError, RpcTimeoutError: As for :meth:`RpcClient.get_logs`;
                a timeout only once every node able to serve it timed out.
            RpcError: Any other failure.
        """
        query: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block)}
        if addresses is not None:
            query["address"] = list(addresses)
        query["topics"] = [list(topic0s)]
        calls: list[tuple[str, list[Any]]] = [
            ("eth_getBlockByNumber", [hex(to_block), False]),
            ("eth_getLogs", [query]),
        ]

        async def ask(client: RpcClient) -> list[dict[str, Any]]:
            header, logs = await client.batch(calls, retry_timeouts=False)
            if header is None:
                raise _Lacks(to_block)
            if not isinstance(logs, list) or not all(isinstance(lg, dict) for lg in logs):
                raise RpcError(
                    f"JSON-RPC eth_getLogs failed: expected a list of log objects, got "
                    f"{logs!r:.200}. Check that every `rpc` URL is the JSON-RPC endpoint of a node.",
                    method="eth_getLogs",
                )
            return logs

        try:
            node, logs = await self._run("eth_getLogs", to_block, ask, set(), fallback=False)
        except _NoNode:
            raise RpcBeyondHeadError(
                f"JSON-RPC eth_getLogs {from_block}..{to_block}: no node has block {to_block} "
                f"now ({self._heads()})",
                method="eth_getLogs",
            ) from None
        node.served = max(node.served, to_block)
        return logs

    async def get_blocks(
        self, numbers: Sequence[int], *, denied: set[int] | None = None, full: bool = False
    ) -> list[dict[str, Any] | None]:
        """The headers of `numbers`; None only for a block no node has.

        A node's null header for a block another node may have marks it as
        lagging there (its head drops below the block) and the block is
        asked of the next node: one node's lag must not look like a reorg.
        `denied` collects the nodes that answered without some block.
        """
        found: dict[int, dict[str, Any]] = {}
        todo, asked = list(numbers), set[int]()
        while todo:
            # The first node should have them all; later ones need only have some.
            need = max(todo) if not asked else min(todo)
            try:
                node, headers = await self._run(
                    "eth_getBlockByNumber", need, _blocks(todo, full), asked, fallback=not asked
                )
            except _NoNode:
                break
            asked.add(node.index)
            missing = [n for n, h in zip(todo, headers, strict=True) if h is None]
            got = [(n, h) for n, h in zip(todo, headers, strict=True) if h is not None]
            found.update(got)
            if got:
                node.served = max(node.served, max(n for n, _ in got))
            if missing:
                node.head = min(node.head, min(missing) - 1)
                if denied is not None:
                    denied.add(node.index)
            todo = missing
        return [found.get(n) for n in numbers]

    async def get_block_receipts(self, numbers: Sequence[int]) -> list[list[Any] | None]:
        """The receipts of blocks `numbers` from one node that has the highest of them.

        None for a block that node lacks (the fetcher asks again later).
        """
        frozen = list(numbers)
        _node, receipts = await self._run(
            "eth_getBlockReceipts",
            max(frozen),
            lambda client: client.get_block_receipts(frozen),
            set(),
            fallback=True,
        )
        return receipts

    async def get_receipts(self, hashes: Sequence[str], need: int) -> list[dict[str, Any] | None]:
        """The receipts of transactions `hashes`, from a node that has block `need`."""
        frozen = list(hashes)
        _node, receipts = await self._run(
            "eth_getTransactionReceipt",
            need,
            lambda client: client.get_receipts(frozen),
            set(),
            fallback=True,
        )
        return receipts

    async def get_tip(self, number: int) -> tuple[dict[str, Any] | None, bool]:
        """The header of `number`, the last block a fetcher sent, and whether
        its absence means the chain went back rather than that it is late.

        No node having it now is a shorter chain when a node that served it
        (or a later block) answers without it: that node's own chain went
        back, which is all one node can tell us too.  Or when every node
        answered and none has it: a fresh pool (a fetcher after a restart or
        a rollback) knows nothing better; if they merely lag, the blocks
        rolled back are fetched again once they have them, so the tables
        stay exact either way.  Otherwise (a node that may have it is down
        or resting) it is late: wait, rather than roll back good blocks.
        """
        denied: set[int] = set()
        (header,) = await self.get_blocks([number], denied=denied)
        if header is not None:
            return header, False
        went_back = any(self.nodes[i].served >= number for i in denied)
        everyone = all(
            n.index in denied or (n.failures == 0 and 0 <= n.head < number) for n in self.nodes
        )
        return None, went_back or everyone

    # -- choosing and running ------------------------------------------------

    async def _run(
        self,
        method: str,
        need: int,
        ask: Callable[[RpcClient], Awaitable[_T]],
        skip: set[int],
        *,
        fallback: bool,
    ) -> tuple[_Node, _T]:
        """Run `ask` on the best node for block `need`, failing over until it succeeds.

        `skip`: nodes not to ask (they lacked the block or timed out in this
        request).  `fallback`: if no node's head covers `need`, ask the
        highest ones anyway (a header may exist by now) rather than none.

        Raises:
            _NoNode: No node is left that could serve it.
        """
        failures, timeout = 0, None
        while True:
            node = await self._pick(need, skip, fallback)
            if node is None:
                if timeout is not None:
                    raise timeout
                raise _NoNode
            start = trio.current_time()
            try:
                await self._verify(node)
                result = await ask(node.client)
            except (RpcBeyondHeadError, _Lacks) as exc:
                number = exc.number if isinstance(exc, _Lacks) else need
                node.head = min(node.head, number - 1)
                skip.add(node.index)
                self._count(node, "lagging")
                self._logger.info(
                    "JSON-RPC node %s lacks block %d (it lags): asking another", node.label, number
                )
                continue
            except RpcTimeoutError as exc:
                timeout = exc  # too large for every node, or this node hangs
                skip.add(node.index)
                self._failed(node, "timeout", str(exc))
                continue
            except RpcUnavailableError as exc:
                if exc.kind == "lagging":
                    node.head = min(node.head, need - 1)
                    skip.add(node.index)
                elif exc.kind == "down" and any(
                    n.failures == 0 and n.index not in skip for n in self.nodes if n is not node
                ):
                    # While another node is healthy a dead one must not hold the request
                    # through its backoff, even when it alone had the block: the caller
                    # waits for the others to have it.  A rate-limited node is alive,
                    # so it is waited for.
                    skip.add(node.index)
                self._failed(node, exc.kind, exc.cause)
                failures += 1
                if failures >= self._budget:
                    raise self._exhausted(method) from exc
                continue
            self._succeeded(node, trio.current_time() - start)
            return node, result

    async def _pick(self, need: int, skip: set[int], fallback: bool) -> _Node | None:
        """The healthiest node that can serve block `need`, waiting out cool-downs."""
        while True:
            able = [n for n in self.nodes if n.index not in skip and n.head >= need]
            if not able and fallback:
                rest = [n for n in self.nodes if n.index not in skip]
                top = max((n.head for n in rest), default=-1)
                able = [n for n in rest if n.head == top]
            if not able:
                return None
            now = trio.current_time()
            ready = [n for n in able if n.ready_at <= now]
            if not ready:
                await self._wait_for_ready(able)
                continue
            node = min(ready, key=lambda n: (n.failures, n.next_send > now, n.latency, n.index))
            if node.next_send > now:
                await trio.sleep_until(node.next_send)
            node.next_send = trio.current_time() + node.spacing
            return node

    async def _wait_for_ready(self, nodes: Sequence[_Node]) -> None:
        await trio.sleep_until(min(n.ready_at for n in nodes))

    async def _verify(self, node: _Node) -> None:
        """Check a node's chain id before its first use."""
        if node.verified or self._chain_id is None:
            return
        actual = await node.client.chain_id()
        if actual != self._chain_id:
            raise RpcError(
                f"the node {node.label} serves chain {actual} but indexer.yaml says chain "
                f"{self._chain_id}; every URL of `rpc` must be a node of chain {self._chain_id}.",
                method="eth_chainId",
            )
        node.verified = True

    async def _head_round(self) -> list[int]:
        """One concurrent ``eth_blockNumber`` to every node not cooling down."""
        now = trio.current_time()
        asking = [n for n in self.nodes if n.ready_at <= now]
        if not asking:
            return []
        heads: list[int] = []
        fatal: list[RpcError] = []
        pending = set(n.index for n in asking)
        first = trio.Event()

        async def ask(node: _Node, cancel: trio.CancelScope) -> None:
            start = trio.current_time()
            try:
                await self._verify(node)
                head = await node.client.block_number()
            except RpcUnavailableError as exc:
                self._failed(node, exc.kind, exc.cause)
            except RpcError as exc:
                fatal.append(exc)
                cancel.cancel()
            else:
                node.head = head
                heads.append(head)
                self._succeeded(node, trio.current_time() - start)
                first.set()
            pending.discard(node.index)
            if not pending:
                cancel.cancel()

        async def grace(cancel: trio.CancelScope) -> None:
            await first.wait()
            await trio.sleep(self._grace)
            cancel.cancel()

        async with trio.open_nursery() as nursery:
            for node in asking:
                nursery.start_soon(ask, node, nursery.cancel_scope)
            nursery.start_soon(grace, nursery.cancel_scope)
        if fatal:
            raise fatal[0]
        for node in asking:
            if node.index in pending:  # still silent after the others answered
                self._failed(node, "down", f"no answer within {self._grace} s of the others")
        return heads

    # -- health ---------------------------------------------------------------

    def _succeeded(self, node: _Node, seconds: float) -> None:
        node.succeeded(seconds)
        self._count(node, "ok")

    def _failed(self, node: _Node, kind: str, cause: str) -> None:
        pause = node.failed(kind, self._base, self._cap, self._rng)
        self._count(node, kind)
        self._logger.warning(
            "JSON-RPC node %s failed (%s); it rests %.2f s, the other nodes serve meanwhile: %s",
            *(node.label, kind, pause, cause),
        )

    def _count(self, node: _Node, outcome: str) -> None:
        if self._on_request is not None:
            self._on_request(node.shown, outcome)

    def _heads(self) -> str:
        return "; ".join(
            f"{n.label}: {'head unknown' if n.head < 0 else f'head {n.head}'}" for n in self.nodes
        )

    def _exhausted(self, method: str) -> RpcUnavailableError:
        return RpcUnavailableError(
            f"JSON-RPC {method} failed on every node ({self.shown}): gave up after "
            f"{self._budget} attempts. Check that the nodes are up and reachable, or use ones "
            "with higher rate limits.",
            method=method,
            kind="down",
        )


def _blocks(
    numbers: list[int], full: bool
) -> Callable[[RpcClient], Awaitable[list[dict[str, Any] | None]]]:
    frozen = list(numbers)

    async def ask(client: RpcClient) -> list[dict[str, Any] | None]:
        return await client.get_blocks(frozen, full=full)

    return ask


@asynccontextmanager
async def open_rpc_pool(
    urls: Sequence[str],
    *,
    timeout: float = 30.0,  # noqa: ASYNC109 - httpx's per-operation timeout, not a deadline
    transport: httpx.AsyncBaseTransport | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    **kw: Any,
) -> AsyncIterator[RpcPool]:
    """An :class:`RpcPool` of `urls`, each node with an HTTP client of its own.

    Args:
        urls: The nodes' URLs, in order of preference.
        timeout: Seconds allowed for connecting, and for each read and write.
        transport: What sends every node's requests instead of the network.
        transports: Per URL, what sends that node's requests (tests:
            several :meth:`indexer.testing.RpcServer.transport`); wins over
            `transport`.
        **kw: Passed on to :class:`RpcPool` (``chain_id``, ``max_attempts``, ...).
    """
    async with AsyncExitStack() as stack:
        clients = []
        for url in urls:
            chosen = (transports or {}).get(url, transport)
            client = await stack.enter_async_context(
                open_rpc_client(url, timeout=timeout, transport=chosen, max_attempts=1)
            )
            clients.append((url, client))
        yield RpcPool(clients, **kw)
