"""Running a project: the nursery that owns the processing loop and the writer.

Task layout (nested nurseries, nothing detached; docs/design.md draws it)::

    run()
    ├── writer.serve        commits batches in the background
    ├── signals, reporter   stop requests, progress display
    ├── feed (per chain)    reads/fetches block ranges ahead (bounded channel)
    └── body: processing loop -> final flush (shielded) -> wait for the writer

A writer failure raises in its task, which cancels the body; the database
keeps the last committed checkpoint.  A stop request (SIGINT/SIGTERM) is
honoured between batches: the loop ends, the final flush runs, exit is
clean.  Errors from processing (handler, decoding, source) also flush the
batches completed before the failing one, then propagate.
"""

from __future__ import annotations

import collections
import functools
import logging
import signal
import time
from typing import TYPE_CHECKING

import trio

from .._errors import IndexerError
from ..persist import (
    RetryingSession,
    RetryPolicy,
    Session,
    connect,
    lock_schema_for_run,
    open_session,
    read_hashes,
)
from ..sources import BlockRange, Reorg
from ..store import Store
from ._feed import feed_chain
from ._handoff import Handoff, open_batch_channel
from ._options import RunOptions, RunStatus, RunSummary, resolve_database
from ._processor import Processor, build_routes
from ._startup import start_from_database
from ._status import run_status, run_summary
from ._watchdog import Watchdog
from ._writer import Writer

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from ..config import ChainConfig, ProjectConfig
    from ..handlers import HandlerSet
    from ._batch import Batch

__all__ = ["run_project"]

log = logging.getLogger("indexer.runtime")


class _Runner:
    def __init__(self, config: ProjectConfig, handlers: HandlerSet, options: RunOptions) -> None:
        self.config = config
        self.handlers = handlers
        self.options = options
        self.metrics = options.metrics
        self.store = Store(
            handlers.entities,
            target=options.target,
            effects=[(e.name, e.cache) for e in handlers.effects],
        )
        self.stop_requested = False
        self._idle_scope: trio.CancelScope | None = None
        self.stalled = 0.0
        self.peak_in_memory = 0
        self.started = time.perf_counter()
        self._rate_samples: collections.deque[tuple[float, int]] = collections.deque(
            [(self.started, 0)]
        )
        self.cancelled_by_signal = False
        self.rollbacks: list[tuple[int, int, int, float]] = []
        self.doing = "start-up"

    async def run(self, url: str) -> RunSummary:
        config, opts = self.config, self.options
        schema = config.schema

        def open_loader() -> Session:
            # Before anything else, --reset included: one run per schema.
            # The lock lives with the loader's connection, so it is taken
            # again on every replacement connection.
            session = connect(url, schema)
            try:
                lock_schema_for_run(session.conn, schema)
            except BaseException:
                session.close()
                raise
            return session

        retry = RetryPolicy(seconds=opts.db_retry_seconds)
        loader_session = await open_session(open_loader, retry)
        try:
            writer_session = await open_session(lambda: connect(url, schema, writer=True), retry)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(loader_session.close)
            raise
        loader = RetryingSession(
            loader_session,
            reconnect=open_loader,
            retry=retry,
            on_retry=self.metrics.load_retries.inc,
        )
        db = RetryingSession(
            writer_session,
            reconnect=lambda: connect(url, schema, writer=True),
            retry=retry,
            on_retry=self.metrics.write_retries.inc,
        )
        try:
            return await self._run(url, loader, db)
        finally:
            # Shielded: a cancelled run must still close its connections.
            with trio.CancelScope(shield=True):
                await loader.close()
                await db.close()

    async def _run(self, url: str, loader: RetryingSession, db: RetryingSession) -> RunSummary:
        config, opts, store = self.config, self.options, self.store
        starts = {c.id: c.start_block for c in config.chains}
        start = await start_from_database(
            loader,
            store,
            start_blocks=starts,
            cached_effects=[e.name for e in self.handlers.effects if e.cache],
            reset=opts.reset,
            keep_caches=opts.keep_caches,
        )
        routes = {
            c.id: build_routes(
                c, self.handlers.handlers, self.handlers.block_handlers.get(c.id, ())
            )
            for c in config.chains
        }
        logger = logging.getLogger(f"indexer.project.{config.name}")
        self.processor = Processor(
            store,
            loader,
            routes,
            start_blocks=starts,
            reorg_chains=frozenset(
                c.id for c in config.chains if c.source.rpc is not None and c.max_reorg_depth > 0
            ),
            raw_events=config.raw_events,
            progress=dict(start.progress),
            metrics=self.metrics,
            logger=logger,
        )
        self.writer = Writer(
            store,
            db,
            committed_blocks={c: block for c, (block, _events) in start.progress.items()},
            effect_rows=start.effect_rows,
            metrics=self.metrics,
            fault=opts.fault,
            pre_write=opts.pre_write,
        )
        send, receive = open_batch_channel()
        # Writes end where a batch is handed over (the Handoff tells the
        # store), or at the last range's end: the run's start is the first.
        store.mark_handed()
        self.handoff = Handoff(send, store, opts.write_interval, roomy=self._roomy)
        self.loader = loader
        self.watchdog = Watchdog(
            opts.stall_seconds,
            ends={c.id: c.end_block for c in config.chains},
            heads=self.processor.heads,
            committed=lambda: self.writer.statistics().committed_blocks,
            doing=lambda: self.doing,
            sessions=(("a database load", loader), ("the writer", db)),
            metrics=self.metrics,
        )
        async with trio.open_nursery() as nursery:
            writer_done = trio.Event()
            nursery.start_soon(self._serve_writer, receive, writer_done)
            error: BaseException | None = None
            async with trio.open_nursery() as aux:
                if opts.handle_signals:
                    aux.start_soon(self._watch_signals, nursery.cancel_scope)
                if opts.reporter is not None:
                    aux.start_soon(self._report)
                aux.start_soon(self.watchdog.serve)
                while True:
                    try:
                        outcome = await self._run_feeds()
                    except IndexerError as exc:
                        error, outcome = exc, False
                    if not isinstance(outcome, Reorg) or self.stop_requested:
                        break
                    try:
                        await self._rollback(outcome)
                    except IndexerError as exc:
                        error = exc
                        break
                aux.cancel_scope.cancel()
            # The final flush: shielded so that nothing processed is dropped
            # on the way out; the writer sets writer_done even if it fails.
            with trio.CancelScope(shield=True):
                await self.handoff.close()
                await writer_done.wait()
            # A last look: the final commits may end a stall it reported.
            self.watchdog.check(trio.current_time())
            if error is not None:
                raise error
        if self.cancelled_by_signal:
            raise IndexerError(
                "stopped by a second signal before the final flush finished: the last processed batches were "
                "not written. The database holds the last committed checkpoint; `indexer run` resumes from it."
            )
        return self._summary(url)

    async def _run_feeds(self) -> bool | Reorg:
        """Start every chain's feed from its progress and process until done, stopped or a reorg."""
        ranges_send, ranges_receive = trio.open_memory_channel[BlockRange | Reorg](2)
        with ranges_receive:
            # The feeds get a nursery of their own that is cancelled only
            # when the loop stops early: after a normal end (the loop saw
            # every channel closed) a feed may still be unwinding with an
            # error, and cancelling it then would replace that error with
            # Cancelled and lose it.
            async with trio.open_nursery() as feeds:
                for chain in self.config.chains:
                    await self._start_feed(feeds, chain, ranges_send.clone())
                ranges_send.close()
                outcome: bool | Reorg | IndexerError = False
                try:
                    outcome = await self._loop(ranges_receive)
                except IndexerError as exc:
                    # Raised outside the nursery below, so that it is not
                    # wrapped in an ExceptionGroup and the caller flushes.
                    outcome = exc
                finally:
                    if outcome is not True:
                        feeds.cancel_scope.cancel()
        if isinstance(outcome, IndexerError):
            raise outcome
        return outcome

    def _count_rpc_request(self, chain: str, node: str, outcome: str) -> None:
        self.metrics.rpc_requests.labels(chain, node, outcome).inc()

    async def _start_feed(
        self,
        feeds: trio.Nursery,
        chain: ChainConfig,
        send: trio.MemorySendChannel[BlockRange | Reorg],
    ) -> None:
        """Start ``chain``'s feed from its progress, with its stored hashes near the head."""
        progress = self.processor.progress.get(chain.id)
        first = progress[0] + 1 if progress is not None else chain.start_block
        hashes: dict[int, str] | None = {}
        if chain.source.rpc is not None and chain.max_reorg_depth > 0:
            above = first - chain.max_reorg_depth - 2
            hashes = await self.loader.run(
                f"reading chain {chain.id}'s stored block hashes",
                lambda s: read_hashes(s.conn, s.schema, chain.id, above),
            )
        # The watchdog compares with the head the node reports now, not the
        # one of the last range.
        on_head = functools.partial(self.processor.heads.__setitem__, chain.id)
        feeds.start_soon(
            feed_chain,
            chain,
            first,
            self.processor.routes[chain.id].routes,
            send,
            self.options.chunk_logs,
            self.processor.raw_events,
            hashes or {},
            {**self.options.rpc_tuning, "on_head": on_head},
            functools.partial(self._count_rpc_request, str(chain.id)),
            self.processor.routes[chain.id].schedule,
            self._children(chain.id),
        )

    def _children(
        self, chain_id: int
    ) -> tuple[Sequence[tuple[tuple[str, str], ...]], Callable[[str], Collection[str]]] | None:
        """What the chain's feed needs to fetch its factory children, if it has any."""
        registers = self.processor.routes[chain_id].registers
        if not registers:
            return None
        return registers, functools.partial(self.store.children.of, chain_id)

    async def _rollback(self, reorg: Reorg) -> None:
        """Roll back to ``reorg.block``: drain the writer, then one rollback transaction.

        Processing has stopped (the loop returned) and the feeds are gone.
        Every processed batch is committed first, so the rollback reads a
        database that holds everything memory holds; then the rollback runs
        as a transaction of its own, inside a cancel scope (a second stop
        request cancels it: the transaction is then either committed or not
        at all).  The feeds restart from the rolled-back progress.
        """
        started = trio.current_time()
        self.doing = f"a rollback of chain {reorg.chain_id} to block {reorg.block}"
        await self._wait_committed(self.store.processed)
        with trio.CancelScope():
            result = await self.writer.rollback({reorg.chain_id: reorg.block})
        self.processor.rolled_back(result.progress)
        elapsed = trio.current_time() - started
        self.rollbacks.append((reorg.chain_id, reorg.block, result.rows, elapsed))
        self.metrics.rollbacks.labels(str(reorg.chain_id)).inc()
        self.metrics.rollback_seconds.observe(elapsed)
        log.warning(
            "chain %d reorganised (detected at block %d): rolled back to block %d, checkpoint %d; "
            "%d entity rows restored in %.3f s",
            reorg.chain_id,
            reorg.detected_at,
            reorg.block,
            result.checkpoint,
            result.rows,
            elapsed,
        )

    async def _serve_writer(
        self, receive: trio.MemoryReceiveChannel[Batch], done: trio.Event
    ) -> None:
        try:
            await self.writer.serve(receive)
        finally:
            done.set()

    async def _loop(self, ranges: trio.MemoryReceiveChannel[BlockRange | Reorg]) -> bool | Reorg:
        """Process block ranges until the sources end (True), a stop request (False) or a reorg."""
        store = self.store
        while not self.stop_requested:
            with trio.CancelScope() as idle:
                self._idle_scope = idle
                self.doing = "the sources (the next block range of any chain)"
                try:
                    rng = await self._next_range(ranges)
                except trio.EndOfChannel:
                    return True
                finally:
                    self._idle_scope = None
            if idle.cancelled_caught:
                return False
            if isinstance(rng, Reorg):
                return rng
            self.doing = f"the handlers (chain {rng.chain_id} blocks {rng.first}..{rng.last})"
            batch = await self.processor.process(rng)
            self.handoff.offer(batch)
            self.doing = "the writer (memory is over its target, or --sync-writes)"
            if self.options.sync_writes:
                await self._wait_committed(batch.upto)
            await self._make_room()
            size = store.size()
            self.peak_in_memory = max(self.peak_in_memory, size)
            self.metrics.entities.set(size)
        return False

    async def _next_range(
        self, ranges: trio.MemoryReceiveChannel[BlockRange | Reorg]
    ) -> BlockRange | Reorg:
        """The next range; if none comes before the pending batch is due, hand that over first.

        A batch left pending would otherwise wait for the *next* range, and
        on a quiet chain that may not come for a long time: processed blocks
        would stay uncommitted.
        """
        try:
            return ranges.receive_nowait()
        except trio.WouldBlock:
            pass
        # Idle: wait for a range, but no longer than until the pending batch is due.
        with trio.move_on_at(self.handoff.due):
            return await ranges.receive()
        await self.handoff.flush()
        return await ranges.receive()

    async def _wait_committed(self, upto: int) -> None:
        """Hand over what is pending and wait until everything up to ``upto`` is committed."""
        started = trio.current_time()
        while self.store.committed < upto:
            await self.handoff.flush()
            if self.store.committed < upto:
                await self.writer.wait_commit()
        self.stalled += trio.current_time() - started

    async def _make_room(self) -> None:
        """The capacity rule, run between batches.

        Past half the target, drop committed entries.  Still over the target:
        wait for the writer, but only while it has something to commit;
        with nothing pending or in flight, waiting could never help (e.g. a
        single batch bigger than the target), so carry on instead of
        deadlocking.
        """
        store, handoff = self.store, self.handoff
        store.evict_committed()
        started = None
        while self._over_target():
            if handoff.pending is None and handoff.sent_upto <= store.committed:
                break
            if started is None:
                started = trio.current_time()
            await handoff.flush()
            # The write just handed over cannot have committed yet: a worker
            # thread's result comes back through the run loop, after this
            # task has gone on (so waiting for the *next* commit is right).
            await self.writer.wait_commit()
            store.evict_committed()
        if started is not None:
            # Trio's clock, so that tests under MockClock see virtual seconds.
            waited = trio.current_time() - started
            self.stalled += waited
            self.metrics.stalled_seconds.inc(waited)

    def _roomy(self) -> bool:
        # Under half the target: the capacity rule is far (see Handoff).
        held = self.processor.raw_produced - self.writer.statistics().raw_written
        return self.store.size() + held <= self.store.target // 2

    def _over_target(self) -> bool:
        # Raw event rows wait in batches until written: they count too.
        held = self.processor.raw_produced - self.writer.statistics().raw_written
        return self.store.over_target(extra=held)

    async def _watch_signals(self, outer: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            if self.options.stop_early is not None and self.options.stop_early():
                log.warning("stop requested during start-up: flushing and exiting")
                self.stop_requested = True
                if self._idle_scope is not None:
                    self._idle_scope.cancel()
            async for signum in signals:
                if not self.stop_requested:
                    log.warning(
                        "%s received: finishing the current batch and flushing",
                        signal.Signals(signum).name,
                    )
                    self.stop_requested = True
                    if self._idle_scope is not None:
                        self._idle_scope.cancel()
                else:
                    log.warning("second stop request: cancelling (committed data stays consistent)")
                    self.cancelled_by_signal = True
                    outer.cancel()

    async def _report(self) -> None:
        assert self.options.reporter is not None
        while True:
            await trio.sleep(self.options.report_interval)
            self.options.reporter(self.status())

    def status(self) -> RunStatus:
        return run_status(
            self.config,
            self.processor,
            self.writer,
            self.store,
            self.watchdog,
            started=self.started,
            stalled=self.stalled,
            samples=self._rate_samples,
        )

    def _summary(self, url: str) -> RunSummary:
        return run_summary(
            self.processor,
            self.writer,
            self.store,
            started=self.started,
            stalled=self.stalled,
            stopped=self.stop_requested,
            url=url,
            peak_in_memory=self.peak_in_memory,
            rollbacks=self.rollbacks,
        )


async def run_project(
    config: ProjectConfig, handlers: HandlerSet, options: RunOptions | None = None
) -> RunSummary:
    """Index ``config``'s chains with ``handlers`` until every chain reaches its end.

    Resumes after the last committed checkpoint of a previous run on the
    same database.  Raises :class:`IndexerError` subclasses for anything the
    user can fix; the database then holds the last committed checkpoint.
    """
    options = options or RunOptions()
    url = await trio.to_thread.run_sync(resolve_database, config, options.database_url)
    return await _Runner(config, handlers, options).run(url)
