"""``Context``: what a handler can do with the entities, as a type.

Handlers annotate their second parameter with it (``ctx: Context``).  It is
a Protocol: the runtime passes its own implementation (``StoreContext``, or
``PreloadContext`` during the speculative pass), and the handler side of
the API never imports the runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from ..store import Entity

if TYPE_CHECKING:
    import logging

    from ._effects import Effect

__all__ = ["Context"]

E = TypeVar("E", bound=Entity)
I = TypeVar("I")  # noqa: E741 - an effect's input
O = TypeVar("O")  # noqa: E741 - an effect's output


@runtime_checkable
class Context(Protocol):
    """Passed to every handler with the event.

    Reads (``get``, ``find``) see everything handlers did so far, in chain
    order: the database overlaid with the unwritten changes held in memory.
    Entities are immutable; ``set`` stores a new version.

    Attributes:
        log: a logger named after the project (``ctx.log.info(...)``).
        is_preload: True while the framework runs handlers speculatively to
            learn which entities the batch needs (writes are ignored then).
            Handlers should have no side effects outside ``ctx``.
    """

    log: logging.Logger
    is_preload: bool

    async def get(self, entity: type[E], id: str) -> E | None:
        """The entity with this id, or None."""
        ...

    async def find(self, entity: type[E], **where: Any) -> list[E]:
        """Entities whose Index fields equal the given values (sorted by id)."""
        ...

    def set(self, entity: Entity) -> None:
        """Store ``entity`` (insert or replace by id).

        Nothing is checked here: entities are valid by construction (their
        constructor and ``replace`` raise :class:`~indexer.EntityError`).
        """
        ...

    def delete(self, entity: type[Entity], id: str) -> None:
        """Delete the entity with this id (a no-op if it does not exist)."""
        ...

    def add_contract(self, contract: str, address: str) -> None:
        """Index ``address`` as a child of ``contract``, from the current log on.

        ``contract`` is a contract of this chain with a ``factory`` key;
        registering an address twice is a no-op.  Like any change, it is
        rolled back with the block it was made in.
        """
        ...

    async def effect(self, effect: Effect[I, O], input: I) -> O:
        """The output of ``effect`` for ``input``: from the batch, the cache, or a call.

        ``effect`` is a function declared with :func:`indexer.effect`.
        """
        ...


Context.__module__ = "indexer"
