"""The runtime: the processing loop, the writer task, the handler context and running a project.

The runtime owns the in-memory store: the processor advances its processed
frontier, the writer task its committed frontier, and a rollback is applied
to it only after the database committed it.
"""

from ._batch import Batch as Batch
from ._context import Context as Context
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
from ._writer import Writer as Writer
from ._writer import WriterStatistics as WriterStatistics

__all__ = [
    "DEFAULT_MIN_INTERVAL",
    "Batch",
    "ChainRoutes",
    "ChainStatus",
    "Context",
    "Handoff",
    "Processor",
    "RunOptions",
    "RunStatus",
    "RunSummary",
    "StartState",
    "Writer",
    "WriterStatistics",
    "build_routes",
    "open_batch_channel",
    "resolve_database",
    "run_project",
    "start_from_database",
    "target_from_env",
]
