"""The processing loop's core: decode a block range, run handlers, produce a batch.

Loading strategy: handlers run straight away against memory.  The first
miss in a batch (an id memory knows nothing about) triggers one speculative
*preload* pass over the rest of the batch: handlers run with a context whose
reads answer from memory and record misses, and whose writes are dropped.
Then every recorded miss is loaded with one query per entity type, and the
real pass continues.  A batch that finds everything in memory pays nothing;
a cold batch pays one extra handler pass instead of one round trip per miss.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import DatabaseError, EntityError, HandlerError, IndexerError
from ..handlers import Event, Handler
from ..persist import ChainProgress, load_by_field, load_by_ids
from ..store import MISSING, Entity, EntityTable, Store
from ._batch import Batch
from ._context import PreloadContext, StoreContext
from ._effect_calls import EffectCalls
from ._walk import Walk

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._metrics import Metrics
    from ..config import ChainConfig
    from ..handlers import BlockHandler, Effect
    from ..persist import RetryingSession
    from ..sources import BlockRange
from ..sources import BlockSchedule, DecodedLog, DecodeRoute

__all__ = ["ChainRoutes", "Processor", "build_routes"]

# Where the block number sits in a decoded log's Event fields.
_NUMBER = Event._fields.index("block_number")

log = logging.getLogger("indexer.runtime")


@dataclass(frozen=True, slots=True)
class ChainRoutes:
    """One chain's routes (what the decoder needs) and, index-aligned, their handlers."""

    routes: tuple[DecodeRoute, ...]
    handlers: tuple[tuple[Handler, ...], ...]
    block_handlers: tuple[BlockHandler, ...] = ()

    @property
    def schedule(self) -> BlockSchedule:
        """The blocks the block handlers run at."""
        return BlockSchedule(tuple(h.interval for h in self.block_handlers))


def build_routes(
    chain: ChainConfig,
    handlers: dict[tuple[str, str], tuple[Handler, ...]],
    block_handlers: tuple[BlockHandler, ...] = (),
) -> ChainRoutes:
    """The events of ``chain`` that have handlers, in configuration order, and its block handlers."""
    routes: list[DecodeRoute] = []
    chosen: list[tuple[Handler, ...]] = []
    for contract in chain.contracts:
        for ev in contract.events:
            hs = handlers.get((contract.name, ev.name))
            if hs:
                routes.append(
                    DecodeRoute(contract.name, ev, contract.addresses, contract.field_selection)
                )
                chosen.append(hs)
    # The defaults of @on_block follow the chain being run, not the config the
    # handlers were loaded with (a run may be given another end_block).
    ours = tuple(h.for_chain(chain.start_block, chain.end_block) for h in block_handlers)
    return ChainRoutes(tuple(routes), tuple(chosen), ours)


class Processor:
    """Runs handlers over block ranges against ``store``; loads misses through ``loads``."""

    def __init__(
        self,
        store: Store,
        loads: RetryingSession,
        routes: dict[int, ChainRoutes],
        *,
        start_blocks: dict[int, int],
        reorg_chains: frozenset[int] = frozenset(),
        raw_events: bool = False,
        progress: dict[int, tuple[int, int]],
        metrics: Metrics,
        logger: logging.Logger,
    ) -> None:
        self.store = store
        # One connection for loads (entities and effect outputs), one thread
        # at a time, replaced and retried after transient errors.
        self.loads = loads
        self.routes = routes
        self.metrics = metrics
        self.effects = EffectCalls(store, loads, metrics)
        self.ctx = StoreContext(self, logger)
        self._logger = logger
        self.start_blocks = start_blocks
        # Chains whose source can reorganise, and the last final block each
        # reported; history, once on, stays on (see Batch.history).
        self.reorg_chains = reorg_chains
        # `raw_events: true`: sources keep each log's (topics, data) for its raw row.
        self.raw_events = raw_events
        self.raw_produced = 0
        self.final_blocks: dict[int, int] = {}
        # chain id -> the newest head its source reported (status, /ready).
        self.heads: dict[int, int] = {}
        self.history = False
        # chain -> (last processed block, events processed so far)
        self.progress = dict(progress)
        self.skipped: dict[tuple[int, str], int] = {}
        self.events_total = 0
        self.handler_seconds = 0.0
        self.load_seconds = 0.0
        # Batch-local state for the preload pass.
        self._batch: Sequence[DecodedLog] = ()
        self._handlers: tuple[tuple[Handler, ...], ...] = ()
        self._pos = 0
        self._preloaded = False

    def _count_skipped(self, rng: BlockRange) -> None:
        for index, count in rng.skipped.items():
            route = self.routes[rng.chain_id].routes[index]
            key = (rng.chain_id, f"{route.contract}.{route.event.name}")
            self.skipped[key] = self.skipped.get(key, 0) + count
            self.metrics.skipped.labels(str(rng.chain_id), key[1]).inc(count)

    # -- the batch -----------------------------------------------------------

    async def process(self, rng: BlockRange) -> Batch:
        """Run handlers for every matching log of ``rng``; return the batch to write."""
        chain_id = rng.chain_id
        self.effects.new_batch()
        items = rng.logs
        self._count_skipped(rng)
        handlers_of = self._handlers = self.routes[chain_id].handlers
        store, ctx = self.store, self.ctx
        raw_rows: list[tuple[Any, ...]] = []
        new = tuple.__new__
        if rng.hashes is not None:
            self.history = True
        # Once any range is within a reorg window (history on), every block
        # can be a rollback target: it is sealed (see Store.seal) and gets a
        # checkpoint row.  Before that, no rollback can reach these blocks:
        # the range is sealed once, so writes may end only at its end, and
        # its blocks get no rows (a fork point is never looked for there).
        store.seal()
        walk = Walk(
            rng,
            store,
            ctx,
            self.routes[chain_id].block_handlers,
            seal_every_block=self.history,
        )
        block = -1
        block_events = 0
        self._batch, self._pos, self._preloaded = items, 0, False
        loads_before = self.load_seconds
        started = time.perf_counter()
        for pos, (route, fields, raw) in enumerate(items):
            # tuple.__new__ skips Event's keyword-handling constructor: this
            # runs once per log.
            event = new(Event, fields)
            number = fields[_NUMBER]
            if number != block:
                await walk.enter(number, event.block_hash, block_events)
                block, block_events = number, 0
            block_events += 1
            self._pos = pos
            if raw is not None:
                raw_rows.append(_raw_row(event, raw, walk.cp))
            for handler in handlers_of[route]:
                try:
                    await handler(event, ctx)
                except DatabaseError as exc:
                    # A load for the handler failed: the database's fault, not the handler's.
                    raise DatabaseError(
                        f"loading entities for chain {event.chain_id} block {event.block_number} log index "
                        f"{event.log_index} failed: {exc}. Nothing of this "
                        f"batch was committed; `indexer run` resumes from the last committed block."
                    ) from exc
                except IndexerError as exc:
                    if isinstance(exc, EntityError):
                        raise HandlerError(
                            _where(handler, event, f"an entity got an invalid value: {exc}")
                        ) from exc
                    raise
                except Exception as exc:
                    raise HandlerError(
                        _where(handler, event, f"{type(exc).__name__}: {exc}")
                    ) from exc
        await walk.finish(rng.last, block_events)
        checkpoints = walk.checkpoints
        self._batch = ()
        # Loads happen inside handler calls; count them once, as loads.
        elapsed = time.perf_counter() - started - (self.load_seconds - loads_before)
        self.handler_seconds += elapsed
        self.metrics.handler_seconds.inc(elapsed)
        self.metrics.events.labels(str(chain_id)).inc(len(items))
        self.metrics.processed_block.labels(str(chain_id)).set(rng.last)
        self.events_total += len(items)
        _, events_before = self.progress.get(chain_id, (rng.first - 1, 0))
        self.progress[chain_id] = (rng.last, events_before + len(items))
        if rng.head_block is not None:
            self.heads[chain_id] = rng.head_block
        chain = ChainProgress(
            chain_id,
            self.start_blocks[chain_id],
            rng.last,
            events_before + len(items),
            self.heads.get(chain_id),
        )
        if rng.final_block is not None:
            self.final_blocks[chain_id] = rng.final_block
        # Pruning needs every reorganisable chain's final block (see _write._prune).
        prune = dict(self.final_blocks) if self.final_blocks.keys() >= self.reorg_chains else {}
        self.raw_produced += len(raw_rows)
        return Batch(
            store.processed,
            {chain_id: chain},
            checkpoints,
            history=self.history,
            prune=prune,
            raw=raw_rows,
        )

    def rolled_back(self, progress: dict[int, tuple[int, int]]) -> None:
        """Take the chains' progress from a committed rollback."""
        self.progress.update(progress)

    # -- loads ---------------------------------------------------------------

    async def load_missing(self, table: EntityTable[Any], id: str) -> Entity | None:
        """Called by ``ctx.get`` on a miss: preload the batch once, then load."""
        if not self._preloaded:
            self._preloaded = True
            misses, finds, calls = await self._preload()
            misses.setdefault(table, set()).add(id)
            await self._load(misses, finds)
            if calls:
                await self.effects.prefetch(calls, self.ctx._cp)
        value = table.get(id)
        if value is MISSING:
            await self._load({table: {id}}, {})
            value = table.get(id)
        return None if value is MISSING else value

    async def load_find(self, table: EntityTable[Any], field: str, value: Any) -> list[Entity]:
        started = time.perf_counter()
        spec = table.spec
        rows = await self.loads.run(
            f"loading {spec.cls.__name__} entities by {field}",
            lambda session: load_by_field(session, spec, field, value),
        )
        assert rows is not None
        self._count_load(table, "find", started)
        return table.load_find(field, value, rows)

    async def _preload(
        self,
    ) -> tuple[
        dict[EntityTable[Any], set[str]],
        dict[EntityTable[Any], set[tuple[str, Any]]],
        dict[Effect[Any, Any], dict[str, tuple[str, Any]]],
    ]:
        pctx = PreloadContext(self, self._logger)
        pctx._cp = self.ctx._cp
        new, handlers_of = tuple.__new__, self._handlers
        for route, fields, _raw in self._batch[self._pos :]:
            event = new(Event, fields)
            for handler in handlers_of[route]:
                try:
                    await handler(event, pctx)
                except Exception:
                    continue
        return pctx.misses, pctx.finds, pctx.effect_calls

    async def _load(
        self,
        misses: dict[EntityTable[Any], set[str]],
        finds: dict[EntityTable[Any], set[tuple[str, Any]]],
    ) -> None:
        for table, ids in misses.items():
            ids = {i for i in ids if i not in table.values}
            if not ids:
                continue
            started = time.perf_counter()
            wanted = sorted(ids)
            spec = table.spec
            rows = await self.loads.run(
                f"loading {spec.cls.__name__} entities",
                functools.partial(load_by_ids, spec=spec, ids=wanted),
            )
            assert rows is not None
            table.load(wanted, rows)
            self._count_load(table, "get", started)
        for table, pairs in finds.items():
            for field, value in pairs:
                if table.find_cached(field, value) is None:
                    await self.load_find(table, field, value)

    def _count_load(self, table: EntityTable[Any], kind: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        self.load_seconds += elapsed
        self.metrics.load_seconds.inc(elapsed)
        self.metrics.loads.labels(table.spec.cls.__name__, kind).inc()


def _raw_row(event: Event, src: tuple[tuple[str, ...], str], cp: int) -> tuple[Any, ...]:
    topics, data = src
    return (
        event.chain_id,
        event.block_number,
        event.log_index,
        event.transaction_hash,
        event.block_hash,
        event.block_timestamp,
        event.address,
        list(topics),
        data,
        f"{event.contract}.{event.name}",
        json.dumps(event.params, default=_json_value, separators=(",", ":")),
        cp,
    )


def _json_value(value: Any) -> Any:
    # Decoded params are JSON types except bytes (and tuples, which json
    # already writes as arrays).  Integers stay exact: jsonb keeps them as
    # numeric of any size.
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _where(handler: Handler, event: Event, what: str) -> str:
    code = getattr(handler, "__code__", None)
    origin = f" ({code.co_filename}:{code.co_firstlineno})" if code else ""
    return (
        f"handler {getattr(handler, '__qualname__', handler)}{origin} failed on {event.contract}.{event.name} at "
        f"chain {event.chain_id} block {event.block_number} log index {event.log_index} "
        f"(tx {event.transaction_hash}): {what}. Nothing of this batch was committed; fix the handler and run again "
        f"to resume from the last committed block."
    )
