"""``indexer dev PROJECT [--serve]``: run the project, and run it again on every change.

Each run is a child process, ``indexer run PROJECT --reset --keep-caches``:

* a fresh interpreter per run, so every module of the project (handlers,
  the helpers they import, the generated types) is imported anew, with no
  stale ``sys.modules`` entries and nothing left over from the last run;
* the child is stopped the way a user stops ``indexer run``, with SIGINT: it
  finishes its batch, flushes what it processed and exits;
* every run re-indexes from the start blocks, so what the tables hold is what
  the current code computes.  The reset drops the entity tables and the
  progress but keeps the effect caches (``_indexer_effect_*``), so effects
  already computed are not called again.  (There is no RPC response cache
  to keep: logs are fetched again.)
* an error (a handler raising, a syntax error, a bad ``indexer.yaml``) is
  the child's: it prints its usual paragraph (file, line, the exception) and
  exits 1, and dev mode waits for the next change.

The watcher is `watchfiles <https://watchfiles.helpmanual.io>`_: maintained,
backed by the Rust ``notify`` crate (inotify, FSEvents, ReadDirectoryChangesW,
with a polling fallback), and its ``awatch`` is written against AnyIO, so it
runs under Trio as it is; a change burst (an editor's write-rename-chmod) is
debounced into one set of changes.  It watches the project directory: every
``.py`` file (handlers and the modules they import), ``indexer.yaml`` and
``.json`` files (ABIs), leaving out ``tests/``, dot-directories such as
``.indexer/``, ``__pycache__`` and the generated ``indexer_types.py`` (dev
regenerates that one itself before each run, when the config changed).

With ``--serve`` the HTTP API runs in this process, over the same database,
and keeps answering across reloads; it is restarted (on the same port) only
when the entities change, so its GraphQL schema follows them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
import trio.lowlevel

from .._errors import IndexerError
from ..api import serve_api
from ..config import load_config
from ..runtime import load_handlers, resolve_database
from ._codegen import GENERATED_FILE, write_types
from ._serve import _targets, add_serve_flags, api_options

if TYPE_CHECKING:
    import argparse

    from ..api import ApiOptions
    from ..runtime import HandlerSet

__all__ = ["add_dev_parser", "run_dev", "watch_filter"]

log = logging.getLogger("indexer")

#: How long a stopped run may take to flush before it is killed.
STOP_GRACE_SECONDS = 60.0
#: Changes closer together than this are one reload.
DEBOUNCE_MS = 300


def add_dev_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dev",
        help="run a project, and re-run it from the start whenever its code or config changes",
    )
    p.add_argument("project", type=Path, help="project directory (holds indexer.yaml)")
    p.add_argument(
        "--serve",
        action="store_true",
        help="serve the HTTP API (GraphQL, SQL, /events), answering across reloads",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    add_serve_flags(p)


def watch_filter(project: Path) -> Any:
    """The watchfiles filter: project code and config, not tests, caches or generated files."""
    root = project.resolve()

    def accept(_change: Any, path: str) -> bool:
        p = Path(path)
        try:
            rel = p.resolve().relative_to(root)
        except ValueError:
            return False
        parts = rel.parts
        if not parts or any(part.startswith(".") or part == "__pycache__" for part in parts):
            return False
        if parts[0] == "tests" or rel.as_posix() == GENERATED_FILE:
            return False
        return p.suffix in (".py", ".json") or rel.as_posix() == "indexer.yaml"

    return accept


def _fingerprint(handlers: HandlerSet) -> str:
    return repr([s.fingerprint() for s in handlers.entities])


def _config_digest(project: Path) -> str:
    try:
        return hashlib.sha256((project / "indexer.yaml").read_bytes()).hexdigest()
    except OSError:
        return ""


def run_dev(args: argparse.Namespace) -> int:
    config = load_config(args.project)
    url = resolve_database(config, None)
    trio.run(_Dev(args, config.project_dir, url).main)
    return 0


class _Dev:
    def __init__(self, args: argparse.Namespace, project: Path, url: str) -> None:
        self.args = args
        self.project = project
        self.url = url
        self.changed = trio.Event()
        self.stopping = False
        self.config_digest = ""
        self.api_scope: trio.CancelScope | None = None
        self.api_fingerprint: str | None = None
        self.api_port: int | None = None

    async def main(self) -> None:
        import anyio

        stop_watching = anyio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._signals, stop_watching)
            await nursery.start(self._watch, stop_watching)
            while not self.stopping:
                self.changed = trio.Event()
                if self.args.serve:
                    await self._refresh_api(nursery)
                await self._one_run()
                if self.stopping:
                    break
                if not self.changed.is_set():
                    print("dev: waiting for a change (Ctrl+C to stop)", flush=True)
                    await self.changed.wait()
                if not self.stopping:
                    print("dev: change detected; restarting", flush=True)
            stop_watching.set()
            nursery.cancel_scope.cancel()

    async def _signals(self, stop_watching: Any) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                if self.stopping:  # a second one: stop at once
                    raise KeyboardInterrupt
                self.stopping = True
                stop_watching.set()
                self.changed.set()

    async def _watch(self, stop_watching: Any, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        from watchfiles import awatch

        task_status.started()
        async for changes in awatch(
            self.project,
            watch_filter=watch_filter(self.project),
            debounce=DEBOUNCE_MS,
            stop_event=stop_watching,
        ):
            prefix = str(self.project) + os.sep
            names = sorted({path.removeprefix(prefix) for _c, path in changes})
            log.info("dev: changed: %s", ", ".join(names))
            self.changed.set()

    def _prepare(self) -> None:
        """Regenerate the types when the config changed (the child would, but it is watched)."""
        digest = _config_digest(self.project)
        if digest == self.config_digest:
            return
        try:
            config = load_config(self.project)
        except IndexerError:
            return  # the child reports it, with the file and key
        written = write_types(config, only_if_present=True)
        if written is not None:
            print(f"dev: the config changed; rewrote {written.name}", flush=True)
        self.config_digest = digest

    async def _one_run(self) -> None:
        self._prepare()
        cmd = [
            sys.executable,
            "-m",
            "indexer",
            "run",
            str(self.project),
            "--reset",
            "--keep-caches",
            "--no-progress",
        ]
        if self.args.debug:
            cmd.append("--debug")
        env = {**os.environ, "INDEXER_DATABASE_URL": self.url}
        print("dev: indexing from the start blocks", flush=True)
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    cmd,
                    check=False,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    # Its own session: a Ctrl+C at the terminal reaches only
                    # dev mode, which passes on exactly one SIGINT (a second
                    # one would make the run stop without flushing).
                    start_new_session=True,
                )
            )
            done = trio.Event()

            async def wait_for_exit() -> None:
                await process.wait()
                done.set()
                self._wake()

            nursery.start_soon(wait_for_exit)
            while not done.is_set() and not self.changed.is_set():
                await self._next_wake()
            if not done.is_set():
                # A change (or Ctrl+C): stop the run as a user would, and let it flush.
                process.send_signal(signal.SIGINT)
                with trio.move_on_after(STOP_GRACE_SECONDS):
                    await done.wait()
                if not done.is_set():
                    print("dev: the run did not stop in time; killing it", flush=True)
                    process.kill()
                    await done.wait()
        code = process.returncode
        if code not in (0, None) and not self.stopping:
            print(
                f"dev: the run failed (exit status {code}); fix the error above and save",
                flush=True,
            )

    # A tiny wake-up mechanism: the loop in _one_run waits for "the child
    # ended" or "a file changed", whichever comes first.
    _waker: trio.Event | None = None

    def _wake(self) -> None:
        if self._waker is not None:
            self._waker.set()

    async def _next_wake(self) -> None:
        self._waker = waker = trio.Event()
        async with trio.open_nursery() as nursery:

            async def on_change() -> None:
                await self.changed.wait()
                waker.set()

            nursery.start_soon(on_change)
            await waker.wait()
            nursery.cancel_scope.cancel()

    async def _refresh_api(self, nursery: trio.Nursery) -> None:
        """Start the API, or restart it (same port) when the entities changed."""
        try:
            config = load_config(self.project)
            handlers = _load_fresh(config)
        except IndexerError as exc:
            if self.api_scope is None:
                print(f"dev: cannot start the API yet: {exc}", flush=True)
            return  # the child shows the error; the API keeps answering
        fingerprint = _fingerprint(handlers)
        if fingerprint == self.api_fingerprint:
            return
        if self.api_scope is not None:
            self.api_scope.cancel()
            await trio.lowlevel.checkpoint()
        options = api_options(self.args)
        if self.api_port is not None:
            options = _with_port(options, self.api_port)
        scope = trio.CancelScope()
        binds = await nursery.start(
            _serve_in,
            scope,
            self.url,
            config.schema,
            handlers,
            _targets(config),
            options,
        )
        self.api_scope = scope
        self.api_fingerprint = fingerprint
        if self.api_port is None and binds:
            self.api_port = int(str(binds[0]).rstrip("/").rsplit(":", 1)[1])
        print(f"dev: serving {config.name} on {', '.join(binds)} (GraphQL at /graphql)", flush=True)


async def _serve_in(
    scope: trio.CancelScope,
    url: str,
    schema: str,
    handlers: HandlerSet,
    targets: Any,
    options: ApiOptions,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve_api, url, schema, handlers.entities, targets, options)
            task_status.started(binds)


def _with_port(options: ApiOptions, port: int) -> ApiOptions:
    import dataclasses

    return dataclasses.replace(options, port=port)


def _load_fresh(config: Any) -> HandlerSet:
    """Import the handlers anew: first forget every module loaded from the project."""
    root = str(config.project_dir.resolve()) + os.sep
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and os.path.abspath(path).startswith(root):
            del sys.modules[name]
    return load_handlers(config)
