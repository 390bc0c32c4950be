"""``@on_block``: handlers that run at blocks of a chain, every so many blocks."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVar

from .._errors import ConfigError

if TYPE_CHECKING:
    from .._fields import Block
    from ..config import ProjectConfig
    from ._context import Context

__all__ = ["BlockHandler", "collect_block_handlers", "on_block"]

_H = TypeVar("_H", bound=Callable[..., Awaitable[None]])
_MARK: Final = "__indexer_on_block__"


def on_block(
    chain: int, every: int = 1, start: int | None = None, end: int | None = None
) -> Callable[[_H], _H]:
    """Register ``async def f(block: Block, ctx: Context)`` to run at blocks of ``chain``.

    It runs at blocks ``start, start + every, start + 2 * every, ...`` up
    to ``end`` (inclusive); ``start`` and ``end`` default to the chain's
    ``start_block`` and ``end_block``.  In a block, the log handlers run
    first, then the block handlers in the order they are defined.  Their
    changes are rolled back with a reorg like any others, and each runs
    once per canonical block, also across restarts.  ``block`` has
    ``number``, ``hash``, ``parent_hash``, ``timestamp`` and the keys of the
    chain's ``field_selection.block``.
    """
    for name, value in (("chain", chain), ("every", every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"@on_block: {name} must be an integer >= 1, got {value!r}.")
    for name, bound in (("start", start), ("end", end)):
        if bound is not None and (
            isinstance(bound, bool) or not isinstance(bound, int) or bound < 0
        ):
            raise ConfigError(f"@on_block: {name} must be None or an integer >= 0, got {bound!r}.")
    if start is not None and end is not None and end < start:
        raise ConfigError(f"@on_block: end {end} is before start {start}.")

    def mark(fn: _H) -> _H:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigError(
                f"@on_block(chain={chain}) decorates {fn.__qualname__}, which is not `async def`."
            )
        marks = list(getattr(fn, _MARK, []))
        marks.append((chain, every, start, end))
        setattr(fn, _MARK, marks)
        return typing.cast("_H", fn)

    return mark


@dataclass(frozen=True, slots=True)
class BlockHandler:
    """One ``@on_block`` registration, with the chain's defaults filled in."""

    fn: Callable[[Block, Context], Awaitable[None]]
    chain_id: int
    start: int
    every: int
    end: int | None
    # As written in @on_block (None: the chain's start_block / end_block), so
    # that a run whose config differs from the one the handlers were loaded
    # with can fill the defaults in again (see for_chain).
    given_start: int | None = None
    given_end: int | None = None

    def for_chain(self, start_block: int, end_block: int | None) -> BlockHandler:
        """This handler with its defaults taken from a chain's ``start_block`` and ``end_block``."""
        start = start_block if self.given_start is None else self.given_start
        end = end_block if self.given_end is None else self.given_end
        if (start, end) == (self.start, self.end):
            return self
        return BlockHandler(self.fn, self.chain_id, start, self.every, end, *self._given)

    @property
    def _given(self) -> tuple[int | None, int | None]:
        return self.given_start, self.given_end

    @property
    def interval(self) -> tuple[int, int, int | None]:
        """(start, every, end)."""
        return self.start, self.every, self.end

    def runs_at(self, number: int) -> bool:
        """Whether the handler runs at block ``number``."""
        return (
            self.start <= number
            and (self.end is None or number <= self.end)
            and (number - self.start) % self.every == 0
        )


def collect_block_handlers(
    values: typing.Iterable[object], config: ProjectConfig
) -> dict[int, tuple[BlockHandler, ...]]:
    """The ``@on_block`` handlers among ``values``, by chain, in definition order."""
    chains = {c.id: c for c in config.chains}
    found: list[tuple[int, BlockHandler]] = []
    for value in values:
        marks = getattr(value, _MARK, None)
        if not marks or not callable(value):
            continue
        name = getattr(value, "__qualname__", repr(value))
        line = getattr(getattr(value, "__code__", None), "co_firstlineno", 0)
        for chain_id, every, start, end in marks:
            chain = chains.get(chain_id)
            where = f"{config.handlers}: block handler {name} (@on_block(chain={chain_id}))"
            if chain is None:
                raise ConfigError(
                    f"{where}: {config.config_path.name} has no chain {chain_id} "
                    f"(chains: {', '.join(map(str, sorted(chains)))})."
                )
            if chain.source.file is not None and chain.source.blocks is None:
                # A log file holds no block headers: the handler's Block comes from cryo's blocks.
                raise ConfigError(
                    f"{where}: chain {chain_id}'s source is a file ({chain.source.file.name}) "
                    "without blocks: add `blocks: <cryo blocks .parquet>` to its `source` "
                    "(block handlers read their Block from it), or use an `rpc` source."
                )
            first = chain.start_block if start is None else start
            last = chain.end_block if end is None else end
            if first < chain.start_block:
                raise ConfigError(
                    f"{where}: start {first} is before the chain's start_block {chain.start_block}, "
                    "whose earlier blocks are never indexed."
                )
            if last is not None and last < first:
                raise ConfigError(
                    f"{where}: it would never run: end {last} is before start {first}."
                )
            handler = BlockHandler(value, chain_id, first, every, last, start, end)
            found.append((line, handler))
    out: dict[int, list[BlockHandler]] = {}
    for _line, handler in sorted(found, key=lambda x: x[0]):
        out.setdefault(handler.chain_id, []).append(handler)
    return {k: tuple(v) for k, v in out.items()}
