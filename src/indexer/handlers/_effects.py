"""Effects: memoised external calls that handlers make (``@effect``, ``ctx.effect``).

An effect is an async function of one JSON-serialisable input returning a
JSON-serialisable output, e.g. a token's metadata read with ``eth_call``.
Handlers call it through ``await ctx.effect(fn, input)``: calls with the same
input within a batch run once, and with ``cache=True`` outputs are kept in
a table of their own (input hash -> output), loaded in batches like
entities and written by the writer with the batch that made them.  Effects
are never rolled back by reorgs: an output depends on its input only.

The declared return type is the contract of the cache: an output stored by
an earlier version of the function that no longer fits it is *invalidated*
(counted) and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Effect", "conforms", "effect"]

I = TypeVar("I")  # noqa: E741 - the input type
O = TypeVar("O")  # noqa: E741 - the output type

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True, eq=False)
class Effect(Generic[I, O]):
    """A declared effect.  Call it through ``ctx.effect(effect, input)``."""

    fn: Callable[[I], Awaitable[O]]
    name: str
    cache: bool
    rate_limit: float | None
    output: Any

    __module__ = "indexer"

    def key(self, input: Any) -> tuple[str, str]:
        """(cache key, canonical input JSON) of ``input``; TypeError if it is not JSON."""
        try:
            text = json.dumps(input, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"effect {self.name}: the input {input!r} is not JSON-serialisable ({exc})"
            ) from None
        return hashlib.sha256(text.encode()).hexdigest(), text

    def check_output(self, value: Any) -> bool:
        """True if ``value`` fits the declared return type (and is JSON)."""
        return conforms(value, self.output)


@overload
def effect(fn: Callable[[I], Awaitable[O]], /) -> Effect[I, O]: ...


@overload
def effect(
    *, name: str | None = None, cache: bool = True, rate_limit: float | None = None
) -> Callable[[Callable[[I], Awaitable[O]]], Effect[I, O]]: ...


def effect(
    fn: Callable[[I], Awaitable[O]] | None = None,
    /,
    *,
    name: str | None = None,
    cache: bool = True,
    rate_limit: float | None = None,
) -> Effect[I, O] | Callable[[Callable[[I], Awaitable[O]]], Effect[I, O]]:
    """Declare an effect: ``@effect`` or ``@effect(name=..., cache=..., rate_limit=...)``.

    Args:
        name: the effect's name (default: the function's); names its cache
            table, so renaming it starts a new cache.
        cache: keep outputs in the database across batches and runs.
        rate_limit: at most this many calls per second (None: unlimited).

    The function must be ``async``, take one positional argument (the
    input) and declare its return type, which may use int, float, str,
    bool, None, list[...], dict[str, ...], unions and Any.
    """

    def wrap(f: Callable[[I], Awaitable[O]]) -> Effect[I, O]:
        import inspect

        where = f"@effect {getattr(f, '__qualname__', f)!r}"
        if not inspect.iscoroutinefunction(f):
            raise ConfigError(f"{where}: an effect must be an `async def` function.")
        effect_name = name or f.__name__
        if not _NAME_RE.match(effect_name) or len(effect_name) > 40:
            raise ConfigError(
                f"{where}: effect name {effect_name!r} must be an identifier of at most 40 characters "
                f"starting with a letter (it names a table)."
            )
        if rate_limit is not None and not rate_limit > 0:
            raise ConfigError(
                f"{where}: rate_limit must be > 0 calls per second, got {rate_limit!r}."
            )
        try:
            hints = typing.get_type_hints(f)
        except Exception as exc:
            raise ConfigError(f"{where}: cannot evaluate its annotations: {exc}") from None
        if "return" not in hints:
            raise ConfigError(
                f"{where}: declare the return type (e.g. `-> int`): cached outputs are checked against it."
            )
        return Effect(f, effect_name, cache, rate_limit, hints["return"])

    return wrap(fn) if fn is not None else wrap


def conforms(value: Any, tp: Any) -> bool:
    """Whether a JSON value fits a type annotation (the subset effects allow)."""
    if tp is Any or tp is object:
        return True
    if tp is None or tp is type(None):
        return value is None
    if tp is bool:
        return type(value) is bool
    if tp is int:
        return type(value) is int
    if tp is float:
        return type(value) in (int, float)
    if tp is str:
        return type(value) is str
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is list or tp is list:
        return type(value) is list and all(conforms(v, args[0] if args else Any) for v in value)
    if origin is dict or tp is dict:
        item = args[1] if len(args) == 2 else Any
        return type(value) is dict and all(
            type(k) is str and conforms(v, item) for k, v in value.items()
        )
    return False
