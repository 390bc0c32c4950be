"""The runtime: running a project (the feeds, the processing loop, the writer task).

INTERNAL: this package is the framework's own; its names may change in any
release.  Users run projects with :func:`indexer.run_project` (or
``indexer run``) and test handlers with :mod:`indexer.testing`.

The runtime owns the run and the in-memory store: it creates the store,
drives the sources, calls the handlers, and hands batches to its writer
task, which commits them through ``persist``.  The processor advances the
store's processed frontier, the writer its committed frontier after each
COMMIT, and a rollback reaches memory only after the database committed it.
It is the only package the CLI talks to, so it also re-exports the few
names of the layers below that the CLI needs (``load_handlers``, ``HandlerSet``,
``open_report_query``, ``DEFAULT_RETRY_SECONDS``).
"""

from ..handlers import HandlerSet as HandlerSet
from ..handlers import load_handlers as load_handlers
from ..persist import DEFAULT_RETRY_SECONDS as DEFAULT_RETRY_SECONDS
from ..persist import open_report_query as open_report_query
from ._batch import Batch as Batch
from ._handoff import DEFAULT_MIN_INTERVAL as DEFAULT_MIN_INTERVAL
from ._handoff import Handoff as Handoff
from ._handoff import open_batch_channel as open_batch_channel
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
from ._startup import StartState as StartState
from ._startup import start_from_database as start_from_database
from ._watchdog import DEFAULT_STALL_SECONDS as DEFAULT_STALL_SECONDS
from ._watchdog import Stall as Stall
from ._watchdog import Watchdog as Watchdog
from ._writer import Writer as Writer
from ._writer import WriterStatistics as WriterStatistics

__all__ = [
    "DEFAULT_MIN_INTERVAL",
    "DEFAULT_RETRY_SECONDS",
    "DEFAULT_STALL_SECONDS",
    "Batch",
    "ChainRoutes",
    "ChainStatus",
    "HandlerSet",
    "Handoff",
    "Processor",
    "RunOptions",
    "RunStatus",
    "RunSummary",
    "Stall",
    "StartState",
    "Watchdog",
    "Writer",
    "WriterStatistics",
    "build_routes",
    "load_handlers",
    "open_batch_channel",
    "open_report_query",
    "resolve_database",
    "run_project",
    "start_from_database",
    "target_from_env",
]
