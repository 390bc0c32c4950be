"""Fetching and decoding the ranges a run catches up on in a child process.

Over JSON-RPC the fetcher shares one thread (and one GIL) with the
processing loop and the writer's Python side, and that thread is what
bounds a run: receiving an ``eth_getLogs`` answer, parsing it and turning
each log into a decoded event (``raw_logs`` then ``decode_parts``) took
about half of its time in the profile of docs/performance.md.  A child
process does all of that: it asks the node for the logs and for the
headers the fetcher would ask for, and sends back the decoded parts
``marshal``-ed (about 2 us a log to load, as the file reader's chunks) with
the hashes the fetcher checks.  Behind the reorg window those are the first
block's parent and the last block's hash; inside it (``window``), as the
fetcher does there, every header is fetched before the logs, the child
checks that the headers chain and that each log's ``blockHash`` is its
block's, and answers with every hash.  While the loop processes one range,
the child already fetches the next (``prefetch``): the fetcher asks for the
range it would ask for next, and takes the answer only if that is still the
range it wants.

Everything that decides *what* to fetch and whether answers agree with what
was processed stays in the fetcher (``_rpc_source.py``): the child sends the
queries the client would send (with ``http.client``, about ten times less
CPU than httpx per answer of several MB: ``_rpc_post.py``) and runs the same
pure functions on the answers, so its parts are those the fetcher would make
(``tests/test_rpc_worker.py``).  Anything but plain answers (a transport
error, an HTTP status, a JSON-RPC error other than "too large", a malformed
body) sends the range down the fetcher's own path, with its retries, backoff
and messages.  Not used with several nodes (the pool picks nodes per
request), for factory children or selected transaction and block fields
(their fetches read the logs), or with a test transport (the child cannot
reach it).  A child that dies, or a request cut short by cancellation, ends
its use: the fetcher then does everything itself.
"""

from __future__ import annotations

import logging
import marshal
import multiprocessing
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from .._errors import DecodeError, SourceError
from ._rpc import RpcRangeError, is_range_error
from ._rpc_child import child_main
from ._spawn import start_child

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from ._decode import LogDecoder
    from ._rpc_ranges import Part

__all__ = ["LogRequest", "LogWorker", "WorkerRange", "open_log_worker"]

log = logging.getLogger("indexer.sources.rpc")

_ERRORS: dict[str, type[SourceError] | type[DecodeError]] = {
    "SourceError": SourceError,
    "DecodeError": DecodeError,
}


@dataclass(frozen=True, slots=True)
class LogRequest:
    """A range to fetch: its blocks, which logs, whether the parent hash is wanted, and how."""

    first: int
    last: int
    addresses: tuple[str, ...] | None
    topic0s: tuple[str, ...]
    with_first: bool  # also return the first block's parent hash
    window: bool = False  # within the reorg window: every header, before the logs


@dataclass(frozen=True, slots=True)
class WorkerRange:
    """The log worker's answer for a range."""

    lagging: bool  # a header came back null: ask again
    first_parent: str | None = None  # parentHash of the first block, if asked for
    last_hash: str = ""
    parts: list[Part] = field(default_factory=list)
    # Within the window: the hash of every block, and whether the headers
    # chain and every log's blockHash matches its block.
    hashes: list[str] | None = None
    consistent: bool = True


class LogWorker:
    """The fetcher's side of the child process.

    The fetcher starts it after a far range with many logs (a run that only
    follows the head, or a small one, never does) and prefetches the range
    it expects to ask for next; at most one request is outstanding.

    Args:
        decoder: the chain's decoder (its routes are the child's too).
        url: the node (the chain's only ``rpc`` URL).
        timeout: seconds for connecting and each read, as the fetcher's client.
        where: the chain and its node, for messages.
        chunk_logs: about how many logs a part holds.
    """

    def __init__(
        self, decoder: LogDecoder, url: str, timeout: float, where: str, chunk_logs: int
    ) -> None:
        self.decoder = decoder
        self.url = url
        self.timeout = timeout
        self.where = where
        self.chunk_logs = chunk_logs
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._dropped: list[Connection] = []
        self._pending: LogRequest | None = None  # the request sent, not yet answered
        self.ranges = 0  # ranges the child fetched and decoded (tests and the bench read it)
        self.discarded = 0  # prefetched answers for a range not asked for after all

    async def fetch(self, request: LogRequest) -> WorkerRange | None:
        """The child's answer for a range, or None: fetch it the fetcher's own way.

        Raises:
            RpcRangeError: The node refused the range as too large.
            SourceError, DecodeError: As ``raw_logs`` and the decoder raise them.
        """
        if self._pending is not None and self._pending != request:
            await self._receive()  # a prefetch the fetcher no longer wants
            self.discarded += 1
        if self._pending is None and not await self._send(request):
            return None
        reply = await self._receive()
        if reply is None:
            return None
        kind = reply[0]
        if kind == "parts":
            self.ranges += 1
            return WorkerRange(False, reply[1], reply[2], reply[3])
        if kind == "window":
            self.ranges += 1
            hashes = reply[2]
            return WorkerRange(False, reply[1], hashes[-1], reply[4], hashes, reply[3])
        if kind == "lagging":
            return WorkerRange(True)
        if kind == "raise":
            raise _ERRORS[reply[1]](reply[2])
        if kind == "error" and is_range_error(reply[1], reply[2]):
            raise RpcRangeError(
                f"JSON-RPC eth_getLogs {request.first}..{request.last} to the node of {self.where} failed: "
                f"{reply[1]} {reply[2]}",
                method="eth_getLogs",
                code=reply[1],
            )
        log.debug(
            "%s: blocks %d..%d in the log worker: %s",
            self.where,
            request.first,
            request.last,
            reply,
        )
        return None

    async def prefetch(self, request: LogRequest) -> None:
        """Have the child start on the range the fetcher expects to ask for next."""
        if self._conn is not None and self._pending is None:
            await self._send(request)

    @property
    def started(self) -> bool:
        """Started, and not given up on."""
        return self._conn is not None

    async def start(self) -> None:
        """Start the child process (once; never again after it is given up on)."""
        if self._process is not None:
            return
        ctx = multiprocessing.get_context("spawn")
        parent_end, child_end = ctx.Pipe(duplex=True)
        d = self.decoder
        self._process = ctx.Process(
            target=child_main,
            args=(child_end, self.url, self.timeout, d.chain_id, list(d.routes), d.keep_raw),
            name=f"indexer-rpc-logs:{d.chain_id}",
            daemon=True,
        )
        try:
            await start_child(self._process)
        finally:
            child_end.close()
        self._conn = parent_end
        log.debug("%s: started the JSON-RPC log worker", self.where)

    async def _send(self, request: LogRequest) -> bool:
        conn = self._conn
        if conn is None:
            return False
        r = request
        addresses = None if r.addresses is None else list(r.addresses)
        wire = (
            self.where,
            r.first,
            r.last,
            addresses,
            list(r.topic0s),
            r.with_first,
            self.chunk_logs,
            r.window,
        )
        try:
            # The child reads every request (it answers in order), so the
            # send ends soon; until then the thread is not cancellable.
            await trio.to_thread.run_sync(conn.send_bytes, marshal.dumps(wire))
        except OSError as exc:
            self._drop(conn, exc)
            return False
        self._pending = request
        return True

    async def _receive(self) -> Any:
        """The answer to the pending request, or None once the child is unusable."""
        conn = self._conn
        if conn is None:
            return None
        ok = False
        try:
            # In a worker thread, as the file reader receives: a run waiting
            # for a thread is visibly busy (the tests' clock driver waits for
            # threads; a wait on a file descriptor would look like a hang).
            reply = await trio.to_thread.run_sync(conn.recv_bytes, abandon_on_cancel=True)
            ok = True
            self._pending = None
            return marshal.loads(reply)
        except (EOFError, OSError) as exc:
            self._drop(conn, exc)
            ok = True
            return None
        finally:
            if not ok:
                # Cancelled: an unread answer would answer the next request.
                self._drop(conn, None)

    def _drop(self, conn: Connection, exc: BaseException | None) -> None:
        if exc is not None:
            log.warning(
                "%s: the JSON-RPC log worker ended (%s); fetching in the main process",
                self.where,
                exc,
            )
        # The abandoned thread may still be reading: the pipe is closed only
        # once the child is reaped (aclose).
        self._conn = None
        self._pending = None
        self._dropped.append(conn)
        if self._process is not None:
            self._process.terminate()

    async def aclose(self) -> None:
        """End the child process, if one was started."""
        if self._process is not None:
            log.debug(
                "%s: the JSON-RPC log worker fetched %d ranges (%d prefetched ones discarded)",
                self.where,
                self.ranges,
                self.discarded,
            )
        with trio.CancelScope(shield=True):
            if self._conn is not None:
                self._conn.close()  # the child's recv ends with EOFError: it returns
                self._conn = None
            process = self._process
            if process is not None:
                await trio.to_thread.run_sync(process.join, 5)
                if process.is_alive():
                    process.terminate()
                    await trio.to_thread.run_sync(process.join, 5)
            for conn in self._dropped:
                conn.close()
            self._dropped.clear()


@asynccontextmanager
async def open_log_worker(
    decoder: LogDecoder,
    url: str,
    timeout: float,  # noqa: ASYNC109 - the child's per-operation socket timeout, not a deadline
    where: str,
    chunk_logs: int,
) -> AsyncIterator[LogWorker]:
    """A :class:`LogWorker`; its child process, if one starts, ends with the block."""
    worker = LogWorker(decoder, url, timeout, where, chunk_logs)
    try:
        yield worker
    finally:
        await worker.aclose()
