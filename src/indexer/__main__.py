"""``python -m indexer`` is the ``indexer`` command."""

import sys

from .cli import main

# Guarded: the reader child processes start by "spawn", which imports the
# parent's __main__ module under another name.
if __name__ == "__main__":
    sys.exit(main())
