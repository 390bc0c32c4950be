"""``python -m indexer`` is the ``indexer`` command."""

import sys

from .cli import main

sys.exit(main())
