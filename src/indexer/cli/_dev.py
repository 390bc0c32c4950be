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
  exits 1, and dev mode waits for the next change.  Until ``indexer.yaml``
  has been valid once, dev mode cannot know the database to give a child:
  it prints the configuration error itself (the same paragraph) and waits
  the same way.  Only a project directory that does not exist, or has no
  ``indexer.yaml`` at all, ends dev mode (exit 1): that is a wrong path,
  not an edit in progress.

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
from the first valid ``indexer.yaml`` until dev mode stops.  Its listener is
never restarted: after each reload dev mode imports the new handlers itself
and, when the entities or the chains changed, replaces the API's
:class:`~indexer.api.ApiView` (the GraphQL schema and the chain targets).
A request in flight finishes on the schema it started with; the next one
sees the new one.  What a client sees across a reload:

* ``/health``: 200 throughout.
* ``/ready``: 503 from the reload's reset until the run has indexed to its
  end block again (``/status`` says how far it is).
* ``POST /graphql``: an answer (200), or, while the tables and the served
  entities disagree, 503 with a GraphQL error body (``{"errors": [{"message",
  "extensions": {"detail"}}]}``): between the swap and the reset a changed
  entity's table lacks a column (its rows are read whole, so every query of
  that entity gets the error), during the reset a table may be missing, and
  until the run catches up the answers hold part of the data.  Before the
  handlers have ever loaded (a syntax error when dev mode starts) it is 503
  with the reason; a reload whose handlers do not load keeps the last schema.
* Never a refused connection, and never a 500 for any of the above.

The database schema name (``schema:``/``name:`` in ``indexer.yaml``) is
fixed for the API when it starts; a change of it is reported and takes a
restart of dev mode to be served.
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

from .. import api
from .._errors import IndexerError
from ..config import load_config
from ..runtime import load_handlers, resolve_database
from ._codegen import GENERATED_FILE, write_types
from ._serve import _targets, add_serve_flags, api_options

if TYPE_CHECKING:
    import argparse

    from ..config import ProjectConfig
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


def _config_digest(project: Path) -> str:
    try:
        return hashlib.sha256((project / "indexer.yaml").read_bytes()).hexdigest()
    except OSError:
        return ""


def run_dev(args: argparse.Namespace) -> int:
    project = Path(args.project)
    if not (project / "indexer.yaml").is_file():
        load_config(project)  # raises: the directory or the file is missing
    trio.run(_Dev(args, project.resolve()).main)
    return 0


class _Dev:
    def __init__(self, args: argparse.Namespace, project: Path) -> None:
        self.args = args
        self.project = project
        # Known from the first valid indexer.yaml on, then kept.
        self.url: str | None = None
        self.changed = trio.Event()
        self.stopping = False
        self.config_digest = ""
        self.view: api.ApiView | None = None
        self.api_schema = ""
        self.api_fingerprint: str | None = None

    async def main(self) -> None:
        import anyio

        stop_watching = anyio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._signals, stop_watching)
            await nursery.start(self._watch, stop_watching)
            while not self.stopping:
                self.changed = trio.Event()
                config = self._config()
                if config is not None:
                    self._prepare(config)
                    if self.args.serve:
                        await self._refresh_api(nursery, config)
                if self.url is not None:
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

    def _config(self) -> ProjectConfig | None:
        """The project's config, None if it is invalid; the first valid one gives the database.

        Once the database is known an invalid config is the child's to
        report (with the rest of its output); before, there is no child to
        start, so the error is shown here.
        """
        try:
            config = load_config(self.project)
        except IndexerError as exc:
            if self.url is None:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                print("dev: indexer.yaml is invalid; fix the error above and save", flush=True)
            return None
        if self.url is None:
            self.url = resolve_database(config, None)
        return config

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

    def _prepare(self, config: ProjectConfig) -> None:
        """Regenerate the types when the config changed (the child would, but it is watched).

        It runs before dev mode imports the handlers for the API: they import the types.
        """
        digest = _config_digest(self.project)
        if digest == self.config_digest:
            return
        written = write_types(config, only_if_present=True)
        if written is not None:
            print(f"dev: the config changed; rewrote {written.name}", flush=True)
        self.config_digest = digest

    async def _one_run(self) -> None:
        assert self.url is not None
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

    async def _refresh_api(self, nursery: trio.Nursery, config: ProjectConfig) -> None:
        """Start the API once; after that, give it the reloaded entities and chains.

        The listener is never restarted (connections would be refused
        meanwhile): a new schema replaces the old one in the running app.
        """
        assert self.url is not None
        targets = _targets(config)
        handlers: HandlerSet | None = None
        why = ""
        try:
            handlers = _load_fresh(config)
        except IndexerError as exc:
            # The child shows the error with the rest of the run's output.
            why = f"the handlers could not be loaded ({exc}); fix them and save"
        if self.view is None:
            options = api_options(self.args)
            self.view = api.ApiView(options.limits, None, targets, reason=why)
            self.api_schema = config.schema
            binds = await nursery.start(api.serve_view, self.url, config.schema, self.view, options)
            print(
                f"dev: serving {config.name} on {', '.join(binds)} (GraphQL at /graphql)",
                flush=True,
            )
        if config.schema != self.api_schema:
            print(
                f"dev: the API keeps serving schema {self.api_schema!r}; restart indexer dev "
                f"to serve {config.schema!r}",
                flush=True,
            )
            return
        if handlers is None:
            return  # the last schema that loaded keeps answering
        fingerprint = repr(([s.fingerprint() for s in handlers.entities], targets))
        if fingerprint == self.api_fingerprint:
            return
        try:
            self.view.replace(handlers.entities, targets)
        except IndexerError as exc:
            print(f"dev: the API keeps its previous GraphQL schema: {exc}", flush=True)
            return
        if self.api_fingerprint is not None:
            print("dev: the API serves the new entities", flush=True)
        self.api_fingerprint = fingerprint


def _load_fresh(config: ProjectConfig) -> HandlerSet:
    """Import the handlers anew: first forget every module loaded from the project."""
    root = str(config.project_dir.resolve()) + os.sep
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and os.path.abspath(path).startswith(root):
            del sys.modules[name]
    return load_handlers(config)
