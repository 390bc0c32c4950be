"""What a project's handlers module declares: events, handlers, effects and the context type.

INTERNAL: this package is the framework's own; its names may change in any
release.  Users import ``Context``, ``Event``, ``on``, ``effect``,
``Effect`` and ``load_handlers`` from :mod:`indexer`.

It sits beside the store, below the runtime: it imports the store (entity
classes) and the configuration (to check handlers against it), never the
runtime, which implements :class:`Context` and calls the handlers.

Modules: ``_event`` (Event), ``_context`` (the Context Protocol),
``_effects`` (``@effect``), ``_module`` (``@on``, loading the module).
"""

from .._fields import Block as Block
from .._fields import Transaction as Transaction
from ._blocks import BlockHandler as BlockHandler
from ._blocks import on_block as on_block
from ._context import Context as Context
from ._effects import Effect as Effect
from ._effects import conforms as conforms
from ._effects import effect as effect
from ._event import Event as Event
from ._module import Handler as Handler
from ._module import HandlerSet as HandlerSet
from ._module import collect_handlers as collect_handlers
from ._module import load_handlers as load_handlers
from ._module import on as on

__all__ = [
    "Block",
    "BlockHandler",
    "Context",
    "Effect",
    "Event",
    "Handler",
    "HandlerSet",
    "Transaction",
    "collect_handlers",
    "conforms",
    "effect",
    "load_handlers",
    "on",
    "on_block",
]
