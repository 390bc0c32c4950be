"""Running a project's handlers in tests: a harness, and reading tables back.

:class:`HandlerHarness` feeds events (or raw logs) to the handlers through
the framework's own processor and store, in memory or against PostgreSQL;
:func:`read_entities` reads an entity table back.  Whole-project runs
against a scripted chain are in ``_scripted.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import trio

from .._metrics import Metrics
from ..config import load_config
from ..handlers import Block, Event, Handler, HandlerSet, collect_handlers, load_handlers
from ..persist import (
    RetryingSession,
    Session,
    connect,
    load_all,
    load_by_ids,
)
from ..runtime import ChainRoutes, Processor, Writer, build_routes, start_from_database
from ..sources import BlockRange, DecodedLog, LogDecoder, RawLog
from ..store import Entity, EntityTable, Store, entity_spec
from ._events import make_event, make_log

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping, Sequence
    from types import ModuleType

    from ..abi import EventSpec
    from ..config import ContractConfig, ProjectConfig

__all__ = ["HandlerHarness", "Project", "open_handler_harness", "read_entities"]

E = TypeVar("E", bound=Entity)

#: A project directory (or its indexer.yaml), or a loaded configuration.
Project: TypeAlias = "str | os.PathLike[str] | ProjectConfig"


def _load_project(project: Project, schema: str | None = None) -> ProjectConfig:
    if isinstance(project, (str, os.PathLike)):
        path = Path(project)
        config = load_config(path.parent if path.name == "indexer.yaml" else path)
    else:
        config = project
    return config if schema is None else dataclasses.replace(config, schema=schema)


def _handler_set(config: ProjectConfig, module: ModuleType | None) -> HandlerSet:
    return load_handlers(config) if module is None else collect_handlers(module, config)


class _Processor(Processor):
    """The runtime's processor, with the handlers of each handled event reachable directly.

    An Event goes to the handlers of its ``(contract, name)``: each chain's
    handler table is extended with one entry per handled event, after the
    routes the decoder uses, so Events need no routing; raw logs go through
    the decoder a source would use (:meth:`decode`).

    Without a database (``memory``) every table is complete, so a missed
    ``get`` is an absent entity, and ``find`` answers from memory.
    """

    def __init__(
        self,
        store: Store,
        loads: RetryingSession,
        routes: dict[int, ChainRoutes],
        *,
        by_name: dict[tuple[str, str], tuple[Handler, ...]],
        memory: bool,
        **kw: Any,
    ) -> None:
        self._event_index: dict[int, dict[tuple[str, str], int]] = {}
        extended: dict[int, ChainRoutes] = {}
        for chain_id, chain in routes.items():
            offset = len(chain.handlers)
            self._event_index[chain_id] = {key: offset + i for i, key in enumerate(by_name)}
            # An Event of a factory's event registers children as its routed log would.
            position = {(r.contract, r.event.name): i for i, r in enumerate(chain.routes)}
            registers = chain.registers and chain.registers + tuple(
                chain.registers[position[key]] if key in position else () for key in by_name
            )
            extended[chain_id] = ChainRoutes(
                chain.routes,
                chain.handlers + tuple(by_name.values()),
                chain.block_handlers,
                registers,
            )
        super().__init__(store, loads, extended, **kw)
        self._decoders = {
            chain_id: LogDecoder(chain_id, chain.routes, keep_raw=False)
            for chain_id, chain in routes.items()
        }
        self.memory = memory

    def decode(self, chain_id: int, items: Sequence[Event | RawLog | Block]) -> BlockRange:
        """``items`` as the one shape every source delivers: a decoded block range.

        A :class:`~indexer.Block` is a block the block handlers run at; one
        at which none of them runs is refused (the send would test nothing).
        """
        decoder = self._decoders[chain_id]
        index = self._event_index[chain_id]
        schedule = self.routes[chain_id].block_handlers
        out: list[DecodedLog] = []
        blocks: dict[int, Block] = {}
        for item in items:
            if isinstance(item, Block):
                if not any(h.runs_at(item.number) for h in schedule):
                    runs = ", ".join(f"start {a}, every {b}, end {c}" for a, b, c in
                                     (h.interval for h in schedule)) or "none"  # fmt: skip
                    raise ValueError(
                        f"no block handler of chain {chain_id} runs at block {item.number} "
                        f"(block handlers: {runs})"
                    )
                blocks[item.number] = item
            elif isinstance(item, Event):
                out.append((index[item.contract, item.name], tuple(item), None))
            else:
                out.extend(decoder.decode([item]))
        numbers = [i.number if isinstance(i, Block) else i.block_number for i in items]
        return BlockRange(
            chain_id, numbers[0], numbers[-1], out, decoder.take_skipped(), blocks=blocks or None
        )

    async def load_missing(self, table: EntityTable[Any], id: str) -> Entity | None:
        if self.memory:
            return None  # unreachable while every table is complete
        return await super().load_missing(table, id)

    async def load_find(self, table: EntityTable[Any], field: str, value: Any) -> list[Entity]:
        if self.memory:
            return table.load_find(field, value, ())
        return await super().load_find(table, field, value)


class HandlerHarness:
    """A project's handlers, run on events a test sends, against the real store.

    ``HandlerHarness(project)`` keeps entities in memory only: each
    :meth:`send` runs the handlers through the framework's processor, as a
    run would, and the store then holds the result as if it had been
    committed.  :func:`open_handler_harness` with a ``database_url`` also
    commits each send to PostgreSQL with the framework's writer, and the
    handlers load what memory lacks from there.

    Args:
        project: The project directory (or its ``indexer.yaml``), or a
            loaded ``ProjectConfig``.
        handlers: The handlers module the test imported.  Pass it when the
            test uses the module's entity classes (``h.get(Account, ...)``):
            without it the harness imports the handlers file itself, and
            its classes are other objects than the test's.
        chain_id: The chain raw logs come from (default: the project's
            only chain).

    Attributes:
        config: The project configuration.
        handlers: The handlers: ``handlers.module`` is the module, whose
            entity classes the harness stores.
        store: The in-memory entity store the handlers run against.
        chain_id: The chain of raw logs and of :meth:`event`/:meth:`log`.
    """

    def __init__(
        self,
        project: Project,
        *,
        handlers: ModuleType | None = None,
        chain_id: int | None = None,
    ) -> None:
        self.config = _load_project(project)
        self.handlers = _handler_set(self.config, handlers)
        ids = [c.id for c in self.config.chains]
        if chain_id is None:
            if len(ids) != 1:
                raise ValueError(f"the project has chains {ids}: pass chain_id=")
            chain_id = ids[0]
        elif chain_id not in ids:
            raise ValueError(f"chain_id {chain_id} is not a chain of the project (chains: {ids})")
        self.chain_id = chain_id
        self.store = Store(self.handlers.entities, target=1 << 62)
        for table in self.store.tables.values():
            table.complete = True
        self._processor = self._make_processor(cast("RetryingSession", None), {}, memory=True)
        self._session: Session | None = None
        self._writer: Writer | None = None
        self._last_block: dict[int, int] = {}
        self._failed: BaseException | None = None

    def _make_processor(
        self, loads: RetryingSession, progress: dict[int, tuple[int, int]], *, memory: bool
    ) -> _Processor:
        config = self.config
        return _Processor(
            self.store,
            loads,
            {
                c.id: build_routes(
                    c, self.handlers.handlers, self.handlers.block_handlers.get(c.id, ())
                )
                for c in config.chains
            },
            start_blocks={c.id: c.start_block for c in config.chains},
            progress=progress,
            metrics=Metrics(),
            logger=logging.getLogger(f"indexer.project.{config.name}"),
            by_name=self.handlers.handlers,
            memory=memory,
        )

    async def _attach(self, url: str, reset: bool) -> None:
        """Back the harness with the project's schema at ``url`` (created if absent)."""
        config = self.config
        run = trio.to_thread.run_sync
        loader = await run(connect, url, config.schema)
        self._session = loader
        loads = RetryingSession(loader)
        writer_session = await run(functools.partial(connect, url, config.schema, writer=True))
        self._writer = Writer(self.store, RetryingSession(writer_session))
        start = await start_from_database(
            loads,
            self.store,
            start_blocks={c.id: c.start_block for c in config.chains},
            reset=reset,
        )
        self._processor = self._make_processor(loads, dict(start.progress), memory=False)

    async def _detach(self) -> None:
        if self._writer is not None:
            await self._writer.db.close()
        if self._session is not None:
            await trio.to_thread.run_sync(self._session.close)

    # -- building events -------------------------------------------------

    def _contract(self, contract: str, event: str) -> tuple[ContractConfig, EventSpec]:
        chain = next(c for c in self.config.chains if c.id == self.chain_id)
        for c in chain.contracts:
            if c.name == contract:
                for spec in c.events:
                    if spec.name == event:
                        return c, spec
                names = [e.name for e in c.events]
                raise ValueError(f"contract {contract!r} declares no event {event!r} ({names})")
        names = [c.name for c in chain.contracts]
        raise ValueError(f"chain {self.chain_id} has no contract {contract!r} ({names})")

    def _address(self, contract: ContractConfig, address: str | None) -> str:
        listed = contract.addresses
        if address is None:
            if listed is None or len(listed) != 1:
                which = "matches any address" if listed is None else "has several addresses"
                raise ValueError(f"contract {contract.name!r} {which}: pass address=")
            (address,) = listed
        elif listed is not None and address.lower() not in listed:
            raise ValueError(
                f"{address} is not an address of contract {contract.name!r} ({sorted(listed)}): "
                "its logs would not reach the handlers"
            )
        return address

    def event(
        self,
        contract: str,
        event: str,
        params: Mapping[str, Any],
        *,
        block_number: int,
        address: str | None = None,
        **position: Any,
    ) -> Event:
        """:func:`make_event` with the ABI of ``contract.event`` from indexer.yaml.

        ``address`` defaults to the contract's address when it lists exactly
        one; an address it does not list is refused.  ``position`` takes the
        other keywords of :func:`make_event` (``log_index``,
        ``transaction_hash``, ``block_hash``, ``block_timestamp``).
        """
        config, spec = self._contract(contract, event)
        return make_event(
            spec,
            params,
            contract=contract,
            address=self._address(config, address),
            block_number=block_number,
            chain_id=self.chain_id,
            **position,
        )

    def log(
        self,
        contract: str,
        event: str,
        params: Mapping[str, Any],
        *,
        block_number: int,
        address: str | None = None,
        **position: Any,
    ) -> RawLog:
        """:func:`make_log` with the ABI of ``contract.event``; arguments as for :meth:`event`."""
        config, spec = self._contract(contract, event)
        return make_log(
            spec,
            params,
            address=self._address(config, address),
            block_number=block_number,
            **position,
        )

    # -- running ---------------------------------------------------------

    async def send(self, *items: Event | RawLog | Block) -> None:
        """Run the handlers on ``items``, in order, as one batch per chain.

        An :class:`~indexer.Event` goes to the handlers of its ``(contract,
        name)``, on its ``chain_id``.  A raw log (:func:`make_log`) goes
        through the framework's routing and decoder on :attr:`chain_id`,
        exactly as in a run: a log no contract of the project matches is
        ignored, and one that does not decode raises
        :class:`~indexer.DecodeError` (or, for a contract without
        ``addresses``, is skipped and counted in :attr:`skipped`).  A
        :class:`~indexer.Block` (:func:`make_block`) on :attr:`chain_id`
        runs the block handlers due at its number, after the log handlers
        of that block, as in a run.

        Block numbers must not go down, within a send or from one to the
        next.  With a database, each send is committed before it returns.

        Raises:
            indexer.HandlerError: A handler failed.  As in a run, nothing of
                this send is committed; the harness takes no more sends
                (start a new one).
            ValueError: An event without a handler, of an unknown chain, or
                out of block order.
        """
        if self._failed is not None:
            raise RuntimeError(
                "an earlier send failed; its changes are half-applied in memory, as in a crashed run. "
                "Start a new harness."
            ) from self._failed
        groups: list[tuple[int, list[Event | RawLog | Block]]] = []
        last = dict(self._last_block)
        for item in items:
            if isinstance(item, Event):
                chain_id = item.chain_id
                if chain_id not in self._processor.start_blocks:
                    raise ValueError(f"{item!r} is on chain {chain_id}, not a chain of the project")
                if (item.contract, item.name) not in self.handlers.handlers:
                    known = sorted(f"{c}.{e}" for c, e in self.handlers.handlers)
                    raise ValueError(f"no handler is registered for {item!r} (handled: {known})")
                number = item.block_number
            elif isinstance(item, (RawLog, Block)):
                chain_id = self.chain_id
                number = item.number if isinstance(item, Block) else item.block_number
            else:
                raise TypeError(
                    f"send takes Event, RawLog and Block items, not {type(item).__name__}"
                )
            if number < last.get(chain_id, number):
                raise ValueError(
                    f"block {number} comes after block {last[chain_id]} on chain {chain_id}: "
                    "send events in chain order"
                )
            last[chain_id] = number
            if groups and groups[-1][0] == chain_id:
                groups[-1][1].append(item)
            else:
                groups.append((chain_id, [item]))
        try:
            for chain_id, group in groups:
                rng = self._processor.decode(chain_id, group)
                batch = await self._processor.process(rng)
                if self._writer is not None:
                    await self._writer.write(batch)
                else:
                    # Nothing to write: keep the store as it is after a commit.
                    self.store.mark_committed(batch.upto)
                self._last_block[chain_id] = rng.last
        except BaseException as exc:
            self._failed = exc
            raise

    def evict(self) -> int:
        """Drop every entity from memory, so that handlers load them from the database.

        Only with a database (memory is all a harness without one has).
        Returns how many entries were dropped.
        """
        if self._session is None:
            raise RuntimeError("evict() needs a database: use open_handler_harness(database_url=)")
        return sum(t.evict(len(t.values)) for t in self.store.tables.values())

    # -- reading ---------------------------------------------------------

    def _table(self, entity: type[E]) -> EntityTable[E]:
        table = self.store.tables.get(entity)
        if table is not None:
            return cast("EntityTable[E]", table)
        for cls in self.store.tables:
            if cls.__qualname__ == entity.__qualname__:
                raise TypeError(
                    f"{entity.__qualname__} is another class object than the harness's entity of that "
                    "name: the handlers file was imported twice. Pass the module the test imported, "
                    "HandlerHarness(project, handlers=module), or use harness.handlers.module."
                    f"{entity.__qualname__}."
                )
        return self.store.table(entity)  # raises KeyError naming the project's entities

    def get(self, entity: type[E], id: str) -> E | None:
        """The entity with this id after the last send, or None.

        Without a database this reads the store; with one, the database
        (every send is committed), so it also checks that the entity
        survives the trip through PostgreSQL.
        """
        table = self._table(entity)
        if self._session is None:
            return table.values.get(id)
        rows = load_by_ids(self._session, table.spec, [id])
        return rows[0] if rows else None

    def all(self, entity: type[E]) -> dict[str, E]:
        """Every entity of this type after the last send, by id (sorted); read as :meth:`get`."""
        table = self._table(entity)
        if self._session is None:
            values = table.values
            return {id: e for id in sorted(values) if (e := values[id]) is not None}
        return load_all(self._session, table.spec)

    @property
    def events(self) -> int:
        """How many events the handlers have run on."""
        return self._processor.events_total

    @property
    def skipped(self) -> dict[str, int]:
        """Logs of contracts without ``addresses`` that did not decode, by ``"Contract.Event"``."""
        return {name: n for (_chain, name), n in self._processor.skipped.items()}


@asynccontextmanager
async def open_handler_harness(
    project: Project,
    *,
    handlers: ModuleType | None = None,
    database_url: str | None = None,
    schema: str | None = None,
    reset: bool = False,
    chain_id: int | None = None,
) -> AsyncIterator[HandlerHarness]:
    """A :class:`HandlerHarness`, with PostgreSQL behind it when ``database_url`` is given.

    With a database, the harness uses the project's schema (or ``schema``),
    creating it as a run does, and resumes from what it holds; ``reset``
    drops it first.  Each send is committed by the framework's writer, and
    :meth:`HandlerHarness.get` / :meth:`HandlerHarness.all` read the database.

    Args:
        project, handlers, chain_id: As for :class:`HandlerHarness`.
        database_url: A PostgreSQL URL; None keeps everything in memory.
        schema: Overrides the project's ``schema`` (use one per test).
        reset: Drop the schema first.
    """
    harness = HandlerHarness(_load_project(project, schema), handlers=handlers, chain_id=chain_id)
    if database_url is None:
        yield harness
        return
    try:
        await harness._attach(database_url, reset)
        yield harness
    finally:
        with trio.CancelScope(shield=True):
            await harness._detach()


def read_entities(database_url: str, schema: str, entity: type[E]) -> dict[str, E]:
    """Every row of ``entity``'s table in ``schema``, as entities by id (sorted).

    Values come back as the framework loads them (numeric as ``int``).
    """
    session = connect(database_url, schema)
    try:
        return load_all(session, entity_spec(entity))
    finally:
        session.close()
