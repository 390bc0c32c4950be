"""Starting the sources' child processes: the file reader and the JSON-RPC log worker.

Both are ``multiprocessing`` children started with ``spawn`` (a fresh
interpreter: forking a process that runs Trio and a writer thread could copy
a lock held by another thread).  Two things about spawn are handled here:

* **Ctrl+C.** It reaches the whole process group; the parent finishes its
  batch and then ends its children itself, so a child must not see it: it
  is started with SIGINT blocked (see :func:`start_child`).
* **The parent's ``__main__``.** Spawn runs the parent's main script again in
  the child (as ``__mp_main__``), so that functions defined there can be
  found.  The children's entry points are functions of this package, never
  of the user's script, and running that script again did harm: a script
  that calls ``run_project`` at module level (docs/reference.md, "Running
  from Python", has no ``if __name__ == "__main__":``) started a second run
  in the child, which failed on the run lock and took the reader with it;
  the ``indexer`` command's script made each child import the whole CLI
  again.  The child is therefore started with the main script hidden from
  spawn (:func:`_without_main_script`).
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from multiprocessing import resource_tracker
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.process import BaseProcess

__all__ = ["start_child"]

# Two chains may start children at once, each from a worker thread.
_MAIN_LOCK = threading.Lock()
_HIDDEN = object()


async def start_child(process: BaseProcess) -> None:
    """``process.start()`` with SIGINT kept from the child and the main script not run again in it.

    The child is started from a worker thread that blocks SIGINT; it inherits
    the blocked signal (spawn's fork and exec keep the mask), so a Ctrl+C
    while it is still importing stays pending, and is dropped when the child
    ignores SIGINT (:func:`~indexer.sources._child.deaf_to_sigint`, its first
    step).  The parent's own handling is not touched: a Ctrl+C meanwhile
    reaches its main thread as at any other time.  (This used to set the
    process's handler to "ignore" around the start.  Trio's signal receivers,
    opened meanwhile, took "ignore" for the handler to restore, and after the
    run SIGINT was ignored: a Ctrl+C during ``run --serve``'s report was lost.)
    """
    await trio.to_thread.run_sync(_start, process)


def _start(process: BaseProcess) -> None:
    # Spawn starts multiprocessing's resource tracker with the first child.
    # It protects that process the same way (bpo-33613), then *unblocks*
    # SIGINT in the calling thread: start it first, so the mask set below
    # is still there when the child forks.
    resource_tracker.ensure_running()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with _without_main_script():
            process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


@contextmanager
def _without_main_script() -> Iterator[None]:
    """While spawn reads them, ``__main__`` has no file and no spec: the child leaves its own alone.

    Spawn decides what the child runs as its ``__main__`` from the parent's
    ``__main__.__spec__`` (a module, imported again unless its name ends in
    ``__main__``) or else its ``__file__`` (a script, run again), when it
    starts the process; with neither it runs nothing.  Both are put back
    before this returns.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    with _MAIN_LOCK:
        saved_file = main.__dict__.pop("__file__", _HIDDEN)
        saved_spec = main.__dict__.get("__spec__", _HIDDEN)
        if saved_spec is not _HIDDEN:
            main.__spec__ = None
        try:
            yield
        finally:
            if saved_file is not _HIDDEN:
                main.__file__ = saved_file
            if saved_spec is not _HIDDEN:
                main.__spec__ = saved_spec
