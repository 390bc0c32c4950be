"""What a source's child process does first (the file reader's and the JSON-RPC log worker's).

Kept apart from ``_spawn.py``, which starts the children from the parent's
event loop and so imports Trio: a child imports only what it runs.
"""

from __future__ import annotations

import signal

__all__ = ["deaf_to_sigint"]


def deaf_to_sigint() -> None:
    """In a child: ignore SIGINT (already so when started by ``_spawn.start_child``).

    Ctrl+C reaches the whole process group; the parent finishes its batch and
    then ends its children itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
