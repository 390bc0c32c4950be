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
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from .._errors import (
    DecodeError,
)
from ..handlers import Event, Handler
from ..persist import ChainProgress, load_by_field, load_by_ids
from ..store import MISSING, Entity, EntityTable, Store
from ._batch import Batch
from ._child_fetch import fetch_missing, fetch_rest
from ._context import PreloadContext, StoreContext
from ._effect_calls import EffectCalls
from ._factories import ChainFactories
from ._failures import handler_failure
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

# Where the block number and log index sit in a decoded log's Event fields.
_NUMBER = Event._fields.index("block_number")
_LOG_INDEX = Event._fields.index("log_index")
# Events between two turns for the run's other tasks (see process): ~1 ms of
# handler work at ~10 µs an event.  A count, not a clock, so that a schedule
# drawn by a test replays exactly.
_EVENTS_PER_TURN = 100
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")

log = logging.getLogger("indexer.runtime")


@dataclass(frozen=True, slots=True)
class ChainRoutes:
    """One chain's routes (what the decoder needs) and, index-aligned, their handlers."""

    routes: tuple[DecodeRoute, ...]
    handlers: tuple[tuple[Handler, ...], ...]
    block_handlers: tuple[BlockHandler, ...] = ()
    # Per route: the (child contract, address parameter) pairs its event
    # registers; empty when the chain has no factories.
    registers: tuple[tuple[tuple[str, str], ...], ...] = ()

    @property
    def schedule(self) -> BlockSchedule:
        """The blocks the block handlers run at."""
        return BlockSchedule(tuple(h.interval for h in self.block_handlers))


def build_routes(
    chain: ChainConfig,
    handlers: dict[tuple[str, str], tuple[Handler, ...]],
    block_handlers: tuple[BlockHandler, ...] = (),
) -> ChainRoutes:
    """The events of ``chain`` that have handlers or register children, and its block handlers.

    In configuration order.  A factory's event is routed even without a
    handler: the processing loop registers the children it names.
    """
    by_event: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for contract in chain.contracts:
        if contract.factory is not None:
            for name in contract.factory.events:
                key = (contract.factory.contract, name)
                by_event.setdefault(key, []).append((contract.name, contract.factory.parameter))
    routes: list[DecodeRoute] = []
    chosen: list[tuple[Handler, ...]] = []
    registers: list[tuple[tuple[str, str], ...]] = []
    for contract in chain.contracts:
        for ev in contract.events:
            hs = handlers.get((contract.name, ev.name), ())
            pairs = tuple(by_event.get((contract.name, ev.name), ()))
            if hs or pairs:
                routes.append(
                    DecodeRoute(
                        contract.name,
                        ev,
                        contract.addresses,
                        contract.field_selection,
                        child=contract.factory is not None,
                    )
                )
                chosen.append(hs)
                registers.append(pairs)
    # The defaults of @on_block follow the chain being run, not the config the
    # handlers were loaded with (a run may be given another end_block).
    ours = tuple(h.for_chain(chain.start_block, chain.end_block) for h in block_handlers)
    return ChainRoutes(tuple(routes), tuple(chosen), ours, tuple(registers) if by_event else ())


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
        # Chains with factory children; the others pay nothing per log.
        self.factories = {
            chain_id: ChainFactories(chain_id, r.routes, r.registers, store.children)
            for chain_id, r in routes.items()
            if r.registers
        }
        self._factories: ChainFactories | None = None
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
        if rng.hashes is not None and not self.history:
            self.history = True
            store.keep_every_change()
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
        factories = self._factories = self.factories.get(chain_id)
        if factories is not None:
            factories.begin(rng.fetched)
            if rng.fetched is not None:
                self._batch = items = await fetch_missing(rng, factories, items)
            factories.prepare(items)
        dropped = 0
        turn = _EVENTS_PER_TURN
        loads_before = self.load_seconds
        started = time.perf_counter()
        for pos, (route, fields, raw) in enumerate(items):
            if factories is not None:
                if not factories.admit(route, fields):
                    dropped += 1
                    continue
                ctx._log = fields[_LOG_INDEX]
            # tuple.__new__ skips Event's keyword-handling constructor: this
            # runs once per log.
            event = new(Event, fields)
            number = fields[_NUMBER]
            if number != block:
                if pos >= turn:
                    # A range is thousands of events, 100 ms and more of
                    # handlers that await nothing that blocks: give the run's
                    # other tasks (the writer's hand-over, the API of
                    # run --serve, signals) a turn between two blocks.
                    # Shielded: no new place where the loop can be cancelled.
                    turn = pos + _EVENTS_PER_TURN
                    await trio.lowlevel.cancel_shielded_checkpoint()
                await walk.enter(number, event.block_hash, block_events)
                block, block_events = number, 0
            block_events += 1
            self._pos = pos
            if factories is not None and factories.registers[route]:
                factories.register_from(route, fields, walk.cp)
            if raw is not None:
                raw_rows.append(_raw_row(event, raw, walk.cp))
            for handler in handlers_of[route]:
                try:
                    await handler(event, ctx)
                except Exception as exc:
                    failure = handler_failure(
                        exc,
                        functools.partial(_where, handler, event),
                        f"chain {event.chain_id} block {event.block_number} log index {event.log_index}",
                    )
                    if failure is None:
                        raise
                    raise failure from exc
            if factories is not None and (factories.uncovered or factories.rescan):
                await fetch_rest(rng, factories, items, pos)
        await walk.finish(rng.last, block_events)
        checkpoints = walk.checkpoints
        self._batch = ()
        children = [] if factories is None else factories.take_rows()
        self._factories = None
        events = len(items) - dropped
        # Loads happen inside handler calls; count them once, as loads.
        elapsed = time.perf_counter() - started - (self.load_seconds - loads_before)
        self.handler_seconds += elapsed
        self.metrics.handler_seconds.inc(elapsed)
        self.metrics.events.labels(str(chain_id)).inc(events)
        self.metrics.processed_block.labels(str(chain_id)).set(rng.last)
        self.events_total += events
        _, events_before = self.progress.get(chain_id, (rng.first - 1, 0))
        self.progress[chain_id] = (rng.last, events_before + events)
        if rng.head_block is not None:
            self.heads[chain_id] = rng.head_block
        chain = ChainProgress(
            chain_id,
            self.start_blocks[chain_id],
            rng.last,
            events_before + events,
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
            children=children,
        )

    def add_child(self, contract: str, address: str, cp: int, block: int, log_index: int) -> None:
        """``ctx.add_contract``: register a child of the chain being processed, from here on."""
        factories = self._factories
        if factories is None or contract not in factories.names:
            chain = "no chain is being processed" if factories is None else ""
            names = sorted(factories.names) if factories is not None else []
            raise ValueError(
                f"ctx.add_contract({contract!r}, ...): {contract!r} is not a contract with a "
                f"`factory` key on this chain"
                + (f" (those are: {', '.join(names)})" if names else f"; {chain or 'it has none'}")
            )
        if type(address) is not str or not _ADDRESS_RE.fullmatch(address):
            raise ValueError(
                f"ctx.add_contract({contract!r}, {address!r}): the address must be 0x followed by "
                "40 hex digits"
            )
        factories.add(contract, address.lower(), block, log_index, cp, handler=True)

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
        factories = self._factories
        for route, fields, _raw in self._batch[self._pos :]:
            if factories is not None and factories.child_of[route] is not None:
                try:
                    if not factories.admit(route, fields):
                        continue
                except DecodeError:
                    continue  # raised in the real pass
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
