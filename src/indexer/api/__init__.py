"""The HTTP API: GraphQL and read-only SQL over the indexed data, health, live events.

INTERNAL: this package is the framework's own; its names may change in any
release.  Users reach it through ``indexer serve`` and ``indexer run --serve``
(docs/api.md).  It reads the database only, through :class:`Reader`; it never
imports the runtime, so a failing request cannot touch indexing.
"""

from ._app import ApiLimits as ApiLimits
from ._events import EventHub as EventHub
from ._events import LiveEvent as LiveEvent
from ._reader import DEFAULT_POOL_SIZE as DEFAULT_POOL_SIZE
from ._reader import DEFAULT_STATEMENT_TIMEOUT as DEFAULT_STATEMENT_TIMEOUT
from ._reader import Reader as Reader
from ._serve import DEFAULT_PORT as DEFAULT_PORT
from ._serve import ApiOptions as ApiOptions
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
