"""The handlers module: ``@on`` marks handlers; ``load_handlers`` imports the module and collects them."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .._errors import ConfigError
from ..store import Entity, EntitySpec, entity_spec
from ._blocks import BlockHandler, collect_block_handlers
from ._context import Context
from ._effects import Effect
from ._event import Event

if TYPE_CHECKING:
    from pathlib import Path
    from types import ModuleType

    from ..config import ProjectConfig

__all__ = ["Handler", "HandlerSet", "collect_handlers", "load_handlers", "on"]


#: An ``@on`` handler as the runtime calls it.
Handler = Callable[[Event, Context], Awaitable[None]]
_H = TypeVar("_H", bound=Callable[..., Awaitable[None]])
_MARK: Final = "__indexer_on__"


def on(contract: str, event: str) -> Callable[[_H], _H]:
    """Register an async handler for ``event`` of ``contract`` (names as in indexer.yaml).

    The function is only marked; the framework collects marked functions
    when it loads the handlers module, so there is no global registry.
    Handlers of one event run in the order they are defined.
    """

    def mark(fn: _H) -> _H:
        if not inspect.iscoroutinefunction(fn):
            raise ConfigError(
                f"@on({contract!r}, {event!r}) decorates {fn.__qualname__}, which is not `async def`."
            )
        marks: list[tuple[str, str]] = list(getattr(fn, _MARK, []))
        marks.append((contract, event))
        setattr(fn, _MARK, marks)
        return typing.cast("_H", fn)

    return mark


@dataclass(frozen=True)
class HandlerSet:
    """What a handlers module declares."""

    module: ModuleType
    entities: tuple[EntitySpec, ...]
    # (contract, event) -> handlers in definition order
    handlers: dict[tuple[str, str], tuple[Handler, ...]]
    report: Callable[..., Any] | None
    # Effects defined (or imported) at the top level of the module.
    effects: tuple[Effect[Any, Any], ...] = ()
    # chain id -> ``@on_block`` handlers in definition order
    block_handlers: dict[int, tuple[BlockHandler, ...]] = field(default_factory=dict)


def _import(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # Let the handlers import helpers that sit beside them.
    parent = str(path.parent)
    added = parent not in sys.path
    if added:
        sys.path.insert(0, parent)
    try:
        spec.loader.exec_module(module)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigError(
            f"{path}: importing the handlers module failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if added:
            sys.path.remove(parent)
    return module


def load_handlers(config: ProjectConfig) -> HandlerSet:
    """Import the project's handlers module and check it against the config."""
    module = _import(config.handlers, f"indexer_project_{config.schema}")
    return collect_handlers(module, config)


def collect_handlers(module: ModuleType, config: ProjectConfig) -> HandlerSet:
    """The entities, ``@on`` handlers, effects and ``report`` of an imported handlers module."""
    entities: dict[type[Entity], EntitySpec] = {}
    found: list[tuple[int, str, str, Handler]] = []
    effects: dict[str, Effect[Any, Any]] = {}
    for value in vars(module).values():
        if isinstance(value, Effect):
            other = effects.setdefault(value.name, value)
            if other is not value:
                raise ConfigError(
                    f"{config.handlers}: two effects are named {value.name!r}; give one another name with "
                    f"@effect(name=...) (the name keys its cache table)."
                )
        if isinstance(value, type) and issubclass(value, Entity) and value is not Entity:
            entities[value] = entity_spec(value)
        marks = getattr(value, _MARK, None)
        if marks and callable(value):
            line = getattr(getattr(value, "__code__", None), "co_firstlineno", 0)
            found.extend((line, c, e, value) for c, e in marks)
    known = {
        (c.name, ev.name) for chain in config.chains for c in chain.contracts for ev in c.events
    }
    handlers: dict[tuple[str, str], list[Handler]] = {}
    for _line, contract, event, fn in sorted(found, key=lambda x: x[0]):
        if (contract, event) not in known:
            choices = ", ".join(f"{c}.{e}" for c, e in sorted(known)) or "none"
            raise ConfigError(
                f"{config.handlers}: handler {fn.__qualname__} is registered with @on({contract!r}, {event!r}), "
                f"but {config.config_path.name} declares no event {event!r} on a contract named {contract!r} "
                f"(declared: {choices})."
            )
        handlers.setdefault((contract, event), []).append(fn)
    block_handlers = collect_block_handlers(vars(module).values(), config)
    if not handlers and not block_handlers:
        raise ConfigError(
            f"{config.handlers}: no handlers found; decorate async functions with @on(contract, event) "
            "or @on_block(chain=...)."
        )
    report = getattr(module, "report", None)
    return HandlerSet(
        module,
        tuple(sorted(entities.values(), key=lambda s: s.table)),
        {k: tuple(v) for k, v in handlers.items()},
        report if callable(report) else None,
        tuple(effects[n] for n in sorted(effects)),
        block_handlers,
    )
