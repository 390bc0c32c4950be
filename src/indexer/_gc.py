"""Tuning CPython's cyclic garbage collector for a process that indexes.

Indexing allocates millions of short-lived, acyclic objects (logs, events,
entity tuples); at CPython's default gen-0 threshold of 700 the cyclic
collector ran so often that it took about half of the processing loop's
time (docs/design.md), and as much of a child process's parsing.  Only a
process the framework owns is tuned: the CLI's, and the child processes it
starts (the file reader, the JSON-RPC log worker); a program that imports
the library keeps its own settings.
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]


def tune_gc() -> None:
    """Collect young objects less often, and never scan what exists now again."""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
