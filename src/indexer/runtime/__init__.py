"""The runtime: the processing loop, the handler context and running a project."""

from ._context import Context as Context
from ._processor import Processor as Processor
from ._run import ChainStatus as ChainStatus
from ._run import RunOptions as RunOptions
from ._run import RunStatus as RunStatus
from ._run import RunSummary as RunSummary
from ._run import resolve_database as resolve_database
from ._run import run_project as run_project
from ._run import target_from_env as target_from_env

__all__ = [
    "ChainStatus",
    "Context",
    "Processor",
    "RunOptions",
    "RunStatus",
    "RunSummary",
    "resolve_database",
    "run_project",
    "target_from_env",
]
