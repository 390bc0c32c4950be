"""The runtime: the processing loop, the handler context and running a project."""

from ._options import ChainStatus as ChainStatus
from ._options import RunOptions as RunOptions
from ._options import RunStatus as RunStatus
from ._options import RunSummary as RunSummary
from ._options import resolve_database as resolve_database
from ._options import target_from_env as target_from_env
from ._processor import Processor as Processor
from ._run import run_project as run_project

__all__ = [
    "ChainStatus",
    "Processor",
    "RunOptions",
    "RunStatus",
    "RunSummary",
    "resolve_database",
    "run_project",
    "target_from_env",
]
