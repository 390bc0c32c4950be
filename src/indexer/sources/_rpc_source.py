"""Following a chain over JSON-RPC: block ranges ahead of processing, reorg detection.

The fetcher walks from the first unprocessed block to the head (or the
configured end), sending :class:`BlockRange` values into a small channel so
processing never waits on the network while data is available.  Far behind
the head it asks only for logs.  Within ``max_reorg_depth`` of the head (the
*window*) it also fetches every block header of the range and checks that

* the headers chain by ``parentHash``, and every log's ``blockHash``
  matches its block (otherwise the node changed under us: fetch again), and
* the first header's parent is the block it sent last (otherwise: reorg).

When caught up it re-reads the last block it sent each poll, which catches
reorgs that replace blocks without growing the chain.  On a reorg it walks
back over the stored hashes to the newest block the node still has, sends
:class:`Reorg` and stops; the runtime rolls back and starts a new fetcher.
With no stored block still canonical it raises
:class:`~indexer.ReorgTooDeepError` rather than continue on a forked state.

Accepted answers become ranges in ``_rpc_ranges.py``.

With several URLs the requests go through an :class:`RpcPool`
(``_rpc_pool.py``); the checks above are the same, as two answers from two
nodes on different forks disagree exactly as two answers from one node
across a reorg do.  Only a *missing* block means less: one node may lag, so
with several nodes a missing tip is a shorter chain only when a node that
served it answers without it, or every node answers and none has it
(:meth:`RpcPool.get_tip`); while one that may have it is down, it is waited for.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from .._errors import SourceError
from ._decode import LogDecoder, route_filter
from ._log import BlockRange, Reorg
from ._rpc import RpcBeyondHeadError, RpcError
from ._rpc_children import ChildFetch
from ._rpc_fields import FieldFetcher
from ._rpc_forks import check_tip, find_fork
from ._rpc_options import RpcSourceOptions, open_source_client
from ._rpc_pool import RpcPool
from ._rpc_ranges import Part, build_ranges, decode_parts, raw_logs, window_consistent
from ._rpc_span import SpanSizer, plan_range, too_large, window_start
from ._rpc_worker import LogRequest, LogWorker, WorkerRange, open_log_worker

if TYPE_CHECKING:
    from ._filter import LogFilter
    from ._rpc import RpcClient
    from ._rpc_fields import Fetched

__all__ = ["RpcSourceOptions", "feed_rpc"]

log = logging.getLogger("indexer.sources.rpc")

# Consecutive inconsistent answers (logs of one fork, headers of another)
# tolerated before giving up: one or two happen when a block lands mid-fetch.
_MAX_INCONSISTENT = 5
# Consecutive "beyond the head" answers to ranges at or below the head just
# read: a node that keeps contradicting its own head is broken, not lagging.
_MAX_BEYOND_HEAD = 10


async def feed_rpc(
    options: RpcSourceOptions,
    decoder: LogDecoder,
    first_block: int,
    stored_hashes: dict[int, str],
    send: trio.MemorySendChannel[BlockRange | Reorg],
) -> None:
    """Send the chain's ranges from ``first_block`` on; a :class:`Reorg` ends it.

    Args:
        decoder: routes and decodes each range's logs (the logs asked for
            are those its routes want).
        stored_hashes: hashes of processed blocks within the reorg window
            (from the database on start), the reference for detection.
    """
    with send:  # no checkpoint on close while an error propagates
        async with (
            open_source_client(options) as client,
            open_log_worker(
                decoder, options.url, options.timeout, options.where, options.chunk_logs
            ) as worker,
        ):
            await client.check_chain_id()
            fetcher = _Fetcher(
                client,
                options,
                decoder,
                first_block,
                stored_hashes,
                worker if options.log_worker_usable else None,
            )
            await fetcher.run(send)


# Far ranges the fetcher still does itself once it starts the log worker: the
# child imports for ~0.5 s, which the loop waited out when asked for the next.
_BOOT_RANGES = 2


class _Fetcher:
    def __init__(
        self,
        client: RpcClient | RpcPool,
        options: RpcSourceOptions,
        decoder: LogDecoder,
        first_block: int,
        stored_hashes: dict[int, str],
        worker: LogWorker | None = None,
    ) -> None:
        self.client = client
        self.o = options
        self.decoder = decoder
        self.worker = worker
        # Children are fetched apart (ChildFetch); the rest in one query.
        self.children = (
            None
            if options.children is None
            else ChildFetch(
                client, decoder, options.children, self.where, lambda: open_source_client(options)
            )
        )
        log_filter: LogFilter = route_filter([r for r in decoder.routes if not r.child])
        self.topic0s = sorted(log_filter.topics)
        addresses: set[str] | None = set()
        for allowed in map(log_filter.addresses, self.topic0s):
            if allowed is None or addresses is None:
                addresses = None
            else:
                addresses |= allowed
        self.addresses = sorted(addresses) if addresses is not None else None
        self.log_filter = log_filter
        self.next = first_block
        self.hashes = dict(stored_hashes)
        self.head = -1
        self.head_at = -float("inf")
        self.sizer = SpanSizer(options.initial_span, options.max_span)
        self.inconsistent = 0
        self.beyond_head = 0
        self.boot_left = 0  # far ranges still fetched here while the worker starts
        self.pooled = isinstance(client, RpcPool)
        self._fetched: dict[str, frozenset[str] | None] | None = None
        self.fields = FieldFetcher(
            options.chain_id, decoder.routes, options.block_fields, options.block_schedule
        )
        if self.children is not None:
            self.children.fields = self.fields

    @property
    def where(self) -> str:
        return self.o.where

    async def _lagging(self) -> list[BlockRange]:
        """No node has the blocks asked for yet: re-read the head after a poll interval.

        With one node, the next head tells: lower than the blocks sent, the
        tip check decides whether they were replaced.
        """
        self.head_at = -float("inf")
        await trio.sleep(self.o.poll_interval)
        return []

    async def run(self, send: trio.MemorySendChannel[BlockRange | Reorg]) -> None:
        o = self.o
        # A reorg while the indexer was down: the stored tip is gone.  Checked
        # even when there is nothing left to fetch (end_block reached).
        reorg = await self._check_tip()
        if reorg is not None:
            await send.send(reorg)
            return
        while o.end_block is None or self.next <= o.end_block:
            now = trio.current_time()
            if self.next > self.head or now - self.head_at >= o.poll_interval:
                self.head, self.head_at = await self.client.block_number(), now
                if o.on_head is not None:
                    o.on_head(self.head)
            if self.next > self.head:
                reorg = await self._check_tip()
                if reorg is not None:
                    await send.send(reorg)
                    return
                await trio.sleep(o.poll_interval)
                continue
            result = await self._fetch_range()
            if isinstance(result, Reorg):
                await send.send(result)
                return
            for rng in result:
                await send.send(rng)

    def _window_start(self) -> int:
        return window_start(self.head, self.o.max_reorg_depth)

    def _stop(self) -> int:
        """The last block to fetch for now: the head read, or ``end_block`` if lower."""
        end = self.o.end_block
        return self.head if end is None else min(self.head, end)

    async def _fetch_range(self) -> list[BlockRange] | Reorg:
        window = self._window_start()
        planned = plan_range(self.next, self.sizer.span, self._stop(), window)
        assert planned is not None  # run() fetches only up to the head
        first, last, in_window = planned
        headers: list[dict[str, Any] | None] | None = None
        asking = "logs"
        try:
            answer = await self._in_worker(first, last, in_window)
            if answer is None and in_window:
                asking = "headers"
                # Headers *before* logs.  Fetched after, a reorg landing
                # between the two calls could pair the new fork's hashes with
                # the old fork's logs; when the replaced blocks had no
                # matching logs nothing would contradict it, and the new
                # blocks' events would be lost without a trace.  Fetched
                # before, a change in between leaves stale hashes behind,
                # which the next parent or tip check reports as a reorg.
                # (The log worker's child asks in the same order.)
                headers = await self.client.get_blocks(list(range(first, last + 1)))
                asking = "logs"
            logs = (
                None
                if answer is not None
                else await self.client.get_logs(
                    first, last, addresses=self.addresses, topic0s=self.topic0s
                )
            )
            fetched = None
            if self.children is not None:
                assert logs is not None
                extra, fetched = await self.children.fetch(first, last, logs)
                logs += extra
        except RpcError as exc:
            if asking == "headers":
                raise  # only the logs query can be too large or beyond the head
            return await self._refused(first, last, exc)
        self.beyond_head = 0
        self.sizer.served(first, last)
        # Blocks up to here can no longer be replaced (see _window_start).
        final = window if self.o.max_reorg_depth else self.head
        self._fetched = fetched
        if answer is not None:
            return await self._from_worker(first, last, answer, final, in_window)
        assert logs is not None
        if headers is not None:
            return await self._in_window(first, last, logs, final, headers)
        return await self._far(first, last, logs, final)

    async def _refused(self, first: int, last: int, exc: RpcError) -> list[BlockRange]:
        """The logs of ``first..last`` were refused: poll, shrink the span, or raise."""
        if isinstance(exc, RpcBeyondHeadError):
            # Not "too large": the node's head is below the range (it lags,
            # or moved back).  Halving would end in a fatal single-block error.
            # With several nodes it means that none has the blocks now (the one
            # that had them may be down): waited for like a head, without limit.
            self.beyond_head += 0 if self.pooled else 1
            if self.beyond_head >= _MAX_BEYOND_HEAD:
                raise SourceError(
                    f"{self.where}: eth_getLogs {first}..{last} was refused as beyond the head "
                    f"{_MAX_BEYOND_HEAD} times in a row although the head read was {self.head}: {exc}"
                ) from exc
            log.info(
                "%s: blocks %d..%d are beyond the node's head; polling", self.where, first, last
            )
            return await self._lagging()
        if not too_large(exc):
            raise exc
        if last == first:
            raise SourceError(
                f"{self.where}: eth_getLogs for the single block {first} failed ({exc}); the node cannot "
                f"serve this block's logs even one block at a time."
            ) from exc
        self.sizer.refused(first, last)
        log.info(
            "%s: eth_getLogs %d..%d too large, span now %d",
            self.where,
            first,
            last,
            self.sizer.span,
        )
        return []

    async def _in_worker(self, first: int, last: int, in_window: bool) -> WorkerRange | None:
        """The log worker's answer for a range (None: fetch it here)."""
        worker = self.worker
        if worker is None or not worker.started or self.children is not None or self.fields.active:
            return None
        if self.boot_left:
            self.boot_left -= 1
            return None
        return await worker.fetch(self._log_request(first, last, in_window))

    async def _far(
        self, first: int, last: int, logs: list[dict[str, Any]], final: int
    ) -> list[BlockRange] | Reorg:
        """A final range: logs only (headers just for missing timestamps and the last hash)."""
        need = {int(lg["blockNumber"], 16) for lg in logs if lg.get("blockTimestamp") is None}
        need.add(last)
        # The block before this range was sent with a hash (it was in the
        # window then): if the chain was replaced while we were behind, its
        # successor's parent differs, even though this range is final now.
        known = self.hashes.get(first - 1)
        if known is not None:
            need.add(first)
        numbers = sorted(need)
        headers = await self.client.get_blocks(numbers)
        by_number: dict[int, dict[str, Any]] = {}
        for n, h in zip(numbers, headers, strict=True):
            if h is None:
                # A load-balanced node may lag behind the head it reported.
                return await self._lagging() if self.pooled else []
            by_number[n] = h
        if known is not None and by_number[first]["parentHash"] != known:
            return await self._find_fork(first - 1)
        fetched = None
        if self.fields.active:
            fetched = await self.fields.fetch(self.client, first, last, logs, None)
            if fetched is None:
                return self._inconsistent(first, last)
            self.inconsistent = 0
        attach = None if fetched is None else fetched.attach
        raws = raw_logs(self.where, logs, by_number)
        parts = decode_parts(self.decoder, first, last, raws, self.o.chunk_logs, attach)
        ranges = self._far_done(first, last, by_number[last]["hash"], parts, final, fetched)
        least = self.o.log_worker_min_logs
        if self.worker is not None and least is not None and len(logs) >= least:
            if not self.worker.started:
                # Worth it: the child takes the far ranges after the next few.
                await self.worker.start()
                self.boot_left = _BOOT_RANGES
            await self._prefetch()
        return ranges

    async def _from_worker(
        self, first: int, last: int, answer: WorkerRange, final: int, in_window: bool
    ) -> list[BlockRange] | Reorg:
        """``_far`` or ``_in_window`` for a range the log worker fetched: the same checks, in
        the same order (the child checked the window's headers and logs against each other)."""
        if answer.lagging:
            return []  # a null header: the node lags (one node: asked again)
        known = self.hashes.get(first - 1)
        if known is not None and answer.first_parent != known:
            return await self._find_fork(first - 1)
        if not in_window:
            ranges = self._far_done(first, last, answer.last_hash, answer.parts, final, None)
        elif not answer.consistent:
            return self._inconsistent(first, last)
        else:
            assert answer.hashes is not None
            hashes = dict(zip(range(first, last + 1), answer.hashes, strict=True))
            ranges = self._window_done(last, hashes, answer.parts, final, None)
        await self._prefetch()
        return ranges

    async def _prefetch(self) -> None:
        """Have the log worker fetch its next range while this one is processed."""
        ahead = 1 + self.boot_left
        nxt = self._next_range(ahead)
        if nxt is not None and self.worker is not None and self.worker.started:
            # Past ranges the fetcher does first, the block before it will have
            # a hash by then (each range records its last one).
            await self.worker.prefetch(self._log_request(*nxt, known=ahead > 1 or None))

    def _log_request(
        self, first: int, last: int, in_window: bool, known: bool | None = None
    ) -> LogRequest:
        """The worker's request for a range; the parent hash is wanted where one is known."""
        addresses = None if self.addresses is None else tuple(self.addresses)
        if in_window:
            known = True  # every header is fetched anyway
        elif known is None:
            known = self.hashes.get(first - 1) is not None
        return LogRequest(first, last, addresses, tuple(self.topic0s), known, in_window)

    def _far_done(
        self,
        first: int,
        last: int,
        last_hash: str,
        parts: list[Part],
        final: int,
        fetched: Fetched | None,
    ) -> list[BlockRange]:
        self.hashes[last] = last_hash
        self.next = last + 1
        self._forget_old()
        return build_ranges(
            self.o.chain_id,
            parts,
            final,
            head=self.head,
            blocks=None if fetched is None else fetched.blocks,
            fetched=self._fetched,
            refetch=None if self.children is None else self.children.refetch,
        )

    def _next_range(self, ahead: int = 1) -> tuple[int, int, bool] | None:
        """The range ``_fetch_range`` will ask for ``ahead`` ranges on if nothing changes."""
        return plan_range(self.next, self.sizer.span, self._stop(), self._window_start(), ahead)

    async def _in_window(
        self,
        first: int,
        last: int,
        logs: list[dict[str, Any]],
        final: int,
        headers: list[dict[str, Any] | None],
    ) -> list[BlockRange] | Reorg:
        numbers = list(range(first, last + 1))
        if any(h is None for h in headers):
            # The node lags (or the chain got shorter): poll again.
            return await self._lagging() if self.pooled else []
        by_number = {n: h for n, h in zip(numbers, headers, strict=True) if h is not None}
        parent = by_number[first]["parentHash"]
        known = self.hashes.get(first - 1)
        if known is not None and parent != known:
            return await self._find_fork(first - 1)
        if not window_consistent(first, last, by_number, logs):
            return self._inconsistent(first, last)
        fetched = None
        if self.fields.active:
            # After the logs, like the logs after the headers: checked
            # against both, so nothing of another fork slips in between.
            fetched = await self.fields.fetch(self.client, first, last, logs, by_number)
            if fetched is None:
                return self._inconsistent(first, last)
        raws = raw_logs(self.where, logs, by_number)
        attach = None if fetched is None else fetched.attach
        parts = decode_parts(self.decoder, first, last, raws, self.o.chunk_logs, attach)
        hashes = {n: str(by_number[n]["hash"]) for n in numbers}
        return self._window_done(last, hashes, parts, final, fetched)

    def _window_done(
        self,
        last: int,
        hashes: dict[int, str],
        parts: list[Part],
        final: int,
        fetched: Fetched | None,
    ) -> list[BlockRange]:
        """A window range accepted: keep every block's hash, send its parts."""
        self.inconsistent = 0
        self.hashes.update(hashes)
        self.next = last + 1
        self._forget_old()
        return build_ranges(
            self.o.chain_id,
            parts,
            final,
            hashes,
            head=self.head,
            blocks=None if fetched is None else fetched.blocks,
            fetched=self._fetched,
            refetch=None if self.children is None else self.children.refetch,
        )

    def _inconsistent(self, first: int, last: int) -> list[BlockRange]:
        """Answers of two forks (or a node that lost a block): ask again, a few times."""
        self.inconsistent += 1
        if self.inconsistent >= _MAX_INCONSISTENT:
            raise SourceError(
                f"{self.where}: blocks {first}..{last} came back inconsistent {_MAX_INCONSISTENT} times in a "
                f"row (logs whose blockHash does not match their block, headers that do not chain, or "
                f"transactions, receipts or blocks of another fork); the node may be serving two forks "
                f"behind a load balancer."
            )
        return []

    async def _check_tip(self) -> Reorg | None:
        """Caught up: is the last block sent still canonical?"""
        return await check_tip(self.client, self.hashes, self.next - 1, self.o)

    async def _find_fork(self, detected_at: int) -> Reorg:
        return await find_fork(self.client, self.hashes, detected_at, self.o)

    def _forget_old(self) -> None:
        # Keep one block below the window: the parent of its first block.
        floor = self._window_start() - 1
        if len(self.hashes) > 2 * max(1, self.o.max_reorg_depth) + 2:
            for n in [n for n in self.hashes if n < floor]:
                del self.hashes[n]
