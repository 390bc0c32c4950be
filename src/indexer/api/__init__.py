"""The HTTP API: GraphQL and read-only SQL over the indexed data, health, live events.

INTERNAL: this package is the framework's own; its names may change in any
release.  Users reach it through ``indexer serve`` and ``indexer run --serve``
(docs/api.md).  It reads the database only, through :class:`Reader`; it never
imports the runtime, so a failing request cannot touch indexing.

The options and defaults are imported with the package; everything else
(the server, the app, the GraphQL schema: Hypercorn, Starlette and
graphql-core, about 0.2 s of imports) on first use, so that the command
line pays for them only when it serves.
"""

import typing as _typing

from .._lazy import lazy_names as _lazy_names
from ._options import DEFAULT_POOL_SIZE as DEFAULT_POOL_SIZE
from ._options import DEFAULT_PORT as DEFAULT_PORT
from ._options import DEFAULT_STATEMENT_TIMEOUT as DEFAULT_STATEMENT_TIMEOUT
from ._options import ApiLimits as ApiLimits
from ._options import ApiOptions as ApiOptions

if _typing.TYPE_CHECKING:
    from ._events import EventHub as EventHub
    from ._events import LiveEvent as LiveEvent
    from ._reader import Reader as Reader
    from ._serve import open_listener as open_listener
    from ._serve import serve_api as serve_api
    from ._serve import serve_view as serve_view
    from ._status import ChainTarget as ChainTarget
    from ._status import readiness as readiness
    from ._status import status_body as status_body
    from ._view import ApiView as ApiView

__all__ = [
    "DEFAULT_POOL_SIZE",
    "DEFAULT_PORT",
    "DEFAULT_STATEMENT_TIMEOUT",
    "ApiLimits",
    "ApiOptions",
    "ApiView",
    "ChainTarget",
    "EventHub",
    "LiveEvent",
    "Reader",
    "open_listener",
    "readiness",
    "serve_api",
    "serve_view",
    "status_body",
]

# Name -> the module that defines it, loaded by __getattr__ on first use.
_LAZY = {
    "ApiView": "._view",
    "ChainTarget": "._status",
    "EventHub": "._events",
    "LiveEvent": "._events",
    "Reader": "._reader",
    "open_listener": "._serve",
    "readiness": "._status",
    "serve_api": "._serve",
    "serve_view": "._serve",
    "status_body": "._status",
}


if not _typing.TYPE_CHECKING:  # mypy sees the imports above (and no catch-all attribute)
    __getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
