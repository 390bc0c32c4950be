"""The runtime's implementations of :class:`indexer.Context`: the handlers' window on the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import EntityError
from ..store import MISSING, Entity, EntityTable, entity_spec

if TYPE_CHECKING:
    import logging

    from ..handlers import Context, Effect
    from ._processor import Processor

__all__ = ["PreloadContext", "StoreContext"]

E = TypeVar("E", bound=Entity)
I = TypeVar("I")  # noqa: E741 - an effect's input
O = TypeVar("O")  # noqa: E741 - an effect's output


class StoreContext:
    """The :class:`indexer.Context` handlers get: reads and writes go to the processor's store.

    Reads (``get``, ``find``) see everything handlers did so far, in chain
    order: the database overlaid with the unwritten changes held in memory
    (a miss is loaded through the processor).  ``_cp`` is the checkpoint the
    processor stamps on every change.
    """

    __slots__ = ("_block", "_cp", "_log", "_proc", "_tables", "is_preload", "log")

    def __init__(self, proc: Processor, log: logging.Logger) -> None:
        self._proc = proc
        self._tables: dict[type[Entity], EntityTable[Any]] = proc.store.tables
        self._cp = 0
        # Where handlers are (set per block by the walk, per log on chains with
        # factories only): the position a ``ctx.add_contract`` is recorded at.
        self._block = -1
        self._log = -1
        self.log = log
        self.is_preload = False

    def _table(self, cls: type[Entity]) -> EntityTable[Any]:
        table = self._tables.get(cls)
        if table is None:
            table = self._proc.store.table(cls)
        return table

    async def get(self, entity: type[E], id: str) -> E | None:
        """The entity with this id, or None."""
        table = self._tables.get(entity) or self._table(entity)
        value = table.get(id)
        if value is MISSING:
            value = await self._proc.load_missing(table, id)
        return value

    async def find(self, entity: type[E], **where: Any) -> list[E]:
        """Entities whose Index fields equal the given values (sorted by id)."""
        table = self._tables.get(entity) or self._table(entity)
        if not where:
            raise TypeError("ctx.find needs at least one field=value")
        spec = table.spec
        for name in where:
            try:
                f = spec.field(name)
            except KeyError:
                raise TypeError(f"{spec.cls.__name__} has no field {name!r}") from None
            if not f.indexed:
                raise TypeError(
                    f"{spec.cls.__name__}.{name} is not an Index field; declare it as Annotated[{f.py_type.__name__}, Index]"
                )
        (field, value), *rest = where.items()
        found = table.find_cached(field, value)
        if found is None:
            found = await self._proc.load_find(table, field, value)
        if rest:
            found = [e for e in found if all(getattr(e, k) == v for k, v in rest)]
        return found  # type: ignore[return-value]

    def set(self, entity: Entity) -> None:
        """Store ``entity`` (insert or replace by id).

        Nothing is checked here: entities are valid by construction (their
        constructor and ``replace`` raise :class:`~indexer.EntityError`).
        """
        cls = type(entity)
        table = self._tables.get(cls) or self._table(cls)
        table.set(entity[table.id_pos], entity, self._cp)

    async def effect(self, effect: Effect[I, O], input: I) -> O:
        """The output of ``effect`` for ``input``: from the batch, the cache, or a call.

        ``effect`` is a function declared with :func:`indexer.effect`.
        """
        return await self._proc.effects.get(effect, input, self._cp)  # type: ignore[no-any-return]

    def add_contract(self, contract: str, address: str) -> None:
        """Index ``address`` as a child of ``contract`` (a contract with a ``factory`` key).

        Effective from the current log on; a second registration of an
        address is a no-op.  Rolled back with the block, like every change.
        """
        self._proc.add_child(contract, address, self._cp, self._block, self._log)

    def delete(self, entity: type[Entity], id: str) -> None:
        """Delete the entity with this id (a no-op if it does not exist)."""
        table = self._tables.get(entity) or self._table(entity)
        if type(id) is not str:
            raise EntityError(f"ctx.delete({entity.__name__}, {id!r}): ids are str")
        table.set(id, None, self._cp)


class PreloadContext(StoreContext):
    """Speculative pass: reads answer from memory and record misses; writes are dropped."""

    __slots__ = ("effect_calls", "finds", "misses")

    def __init__(self, proc: Processor, log: logging.Logger) -> None:
        super().__init__(proc, log)
        self.is_preload = True
        self.misses: dict[EntityTable[Any], set[str]] = {}
        self.finds: dict[EntityTable[Any], set[tuple[str, Any]]] = {}
        # effect -> key -> (input JSON, input)
        self.effect_calls: dict[Effect[Any, Any], dict[str, tuple[str, Any]]] = {}

    async def get(self, entity: type[E], id: str) -> E | None:
        table = self._tables.get(entity) or self._table(entity)
        value = table.values.get(id, MISSING)
        if value is MISSING:
            if not table.known_absent(id):
                self.misses.setdefault(table, set()).add(id)
            return None
        return value

    async def find(self, entity: type[E], **where: Any) -> list[E]:
        table = self._tables.get(entity) or self._table(entity)
        if where:
            field, value = next(iter(where.items()))
            if entity_spec(entity).field(field).indexed and table.find_cached(field, value) is None:
                self.finds.setdefault(table, set()).add((field, value))
        return []

    async def effect(self, effect: Effect[I, O], input: I) -> O:
        cache = self._proc.effects.cache(effect)
        key, text = effect.key(input)
        value = cache.get(key)
        if value is MISSING:
            self.effect_calls.setdefault(effect, {})[key] = (text, input)
            return None  # type: ignore[return-value]  # speculative pass: errors are ignored
        return value  # type: ignore[no-any-return]

    def set(self, entity: Entity) -> None:
        pass

    def add_contract(self, contract: str, address: str) -> None:
        pass

    def delete(self, entity: type[Entity], id: str) -> None:
        pass


if TYPE_CHECKING:

    def _implements_context(
        store: StoreContext, preload: PreloadContext
    ) -> tuple[Context, Context]:
        """Never called: mypy checks here that both classes implement the Protocol."""
        return store, preload
