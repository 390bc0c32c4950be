"""The runtime: running a project (the feeds, the processing loop, the writer), and the handler context.

INTERNAL: this package is the framework's own; its names may change in any
release.  Users run projects with :func:`indexer.run_project` (or
``indexer run``) and test handlers with :mod:`indexer.testing`.

The runtime owns the run: it creates the store, drives the sources, calls
the handlers and hands batches to the writer (``persist``).  It is the only
package the CLI talks to, so it also re-exports the few names of the layers
below that the CLI needs (``load_handlers``, ``open_report_query``,
``DEFAULT_RETRY_SECONDS``).
"""

from ..handlers import load_handlers as load_handlers
from ..persist import DEFAULT_RETRY_SECONDS as DEFAULT_RETRY_SECONDS
from ..persist import open_report_query as open_report_query
from ._options import ChainStatus as ChainStatus
from ._options import RunOptions as RunOptions
from ._options import RunStatus as RunStatus
from ._options import RunSummary as RunSummary
from ._options import resolve_database as resolve_database
from ._options import target_from_env as target_from_env
from ._processor import ChainRoutes as ChainRoutes
from ._processor import Processor as Processor
from ._processor import build_routes as build_routes
from ._run import run_project as run_project

__all__ = [
    "DEFAULT_RETRY_SECONDS",
    "ChainRoutes",
    "ChainStatus",
    "Processor",
    "RunOptions",
    "RunStatus",
    "RunSummary",
    "build_routes",
    "load_handlers",
    "open_report_query",
    "resolve_database",
    "run_project",
    "target_from_env",
]
