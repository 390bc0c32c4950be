"""The ``indexer`` command line (``indexer run PROJECT_DIR``).

INTERNAL: this package is the framework's own; its names may change in any
release.  The command line itself is the interface (docs/reference.md).
"""

from ._main import main as main

__all__ = ["main"]
