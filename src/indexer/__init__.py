"""indexer: a Trio framework for EVM event indexers.

Declare entities and async handlers; the framework feeds decoded logs to the
handlers in chain order, keeps the entities they touch in memory, and
persists every batch to PostgreSQL in the background.

    from typing import Annotated
    from indexer import Block, Context, Entity, Event, Index, on, on_block

    class Account(Entity):
        id: str
        token: Annotated[str, Index]
        balance: int = 0

    @on("ERC20", "Transfer")
    async def transfer(event: Event, ctx: Context) -> None: ...

    @on_block(chain=1, every=100)
    async def snapshot(block: Block, ctx: Context) -> None: ...

The public API is this module and :mod:`indexer.testing`.  The subpackages
(``abi``, ``config``, ``handlers``, ``sources``, ``store``, ``runtime``,
``persist``, ``cli``) are internal: their names may change in any release
(docs/design.md maps them).

Only the errors are imported with the package; every other name loads its
subpackage on first use.  A spawned child (the file reader, the JSON-RPC log
worker) imports ``indexer.sources`` and so this package first, and needs
neither the runtime nor PostgreSQL's driver nor the metrics: eager, they were
~0.3 s of CPU in each child (docs/performance.md).
"""

import typing as _typing

from ._errors import AlreadyRunningError as AlreadyRunningError
from ._errors import ConfigError as ConfigError
from ._errors import DatabaseError as DatabaseError
from ._errors import DecodeError as DecodeError
from ._errors import EntityError as EntityError
from ._errors import HandlerError as HandlerError
from ._errors import IndexerError as IndexerError
from ._errors import ReorgTooDeepError as ReorgTooDeepError
from ._errors import SchemaMismatchError as SchemaMismatchError
from ._errors import SourceError as SourceError
from ._errors import WriteError as WriteError
from ._lazy import lazy_names as _lazy_names

if _typing.TYPE_CHECKING:
    from ._metrics import Metrics as Metrics
    from .config import ProjectConfig as ProjectConfig
    from .config import load_config as load_config
    from .handlers import Block as Block
    from .handlers import Context as Context
    from .handlers import Effect as Effect
    from .handlers import Event as Event
    from .handlers import Transaction as Transaction
    from .handlers import effect as effect
    from .handlers import load_handlers as load_handlers
    from .handlers import on as on
    from .handlers import on_block as on_block
    from .runtime import ChainStatus as ChainStatus
    from .runtime import RunOptions as RunOptions
    from .runtime import RunStatus as RunStatus
    from .runtime import RunSummary as RunSummary
    from .runtime import run_project as run_project
    from .store import Entity as Entity
    from .store import Index as Index

__all__ = [
    "AlreadyRunningError",
    "Block",
    "ChainStatus",
    "ConfigError",
    "Context",
    "DatabaseError",
    "DecodeError",
    "Effect",
    "Entity",
    "EntityError",
    "Event",
    "HandlerError",
    "Index",
    "IndexerError",
    "Metrics",
    "ProjectConfig",
    "ReorgTooDeepError",
    "RunOptions",
    "RunStatus",
    "RunSummary",
    "SchemaMismatchError",
    "SourceError",
    "Transaction",
    "WriteError",
    "effect",
    "load_config",
    "load_handlers",
    "on",
    "on_block",
    "run_project",
]

_LAZY = {
    "Block": ".handlers",
    "ChainStatus": ".runtime",
    "Context": ".handlers",
    "Effect": ".handlers",
    "Entity": ".store",
    "Event": ".handlers",
    "Index": ".store",
    "Metrics": "._metrics",
    "ProjectConfig": ".config",
    "RunOptions": ".runtime",
    "RunStatus": ".runtime",
    "RunSummary": ".runtime",
    "Transaction": ".handlers",
    "effect": ".handlers",
    "load_config": ".config",
    "load_handlers": ".handlers",
    "on": ".handlers",
    "on_block": ".handlers",
    "run_project": ".runtime",
}


if not _typing.TYPE_CHECKING:  # mypy sees the imports above (and no catch-all attribute)
    __getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
