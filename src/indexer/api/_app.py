"""The ASGI application: routes, request limits and error mapping (Starlette).

Every route reads the database through :class:`~indexer.api.Reader` (one
read-only snapshot per request) or listens to :class:`EventHub`; none holds
state of its own, so any number of servers can run side by side.  Errors a
client can cause are 4xx with a JSON body saying what was wrong; a database
that cannot be reached is 503; no response carries the database URL.  On
``/graphql`` every error body has GraphQL's shape, ``{"errors": [{"message",
"extensions"?}]}``; elsewhere it is ``{"error": message, ...}``.  Tables that
are missing or lack a column the entities have (a run re-creating them, as
``indexer dev`` does after each reload) are a 503 too: it passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
import trio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from .._errors import DatabaseError
from ..persist import read_chain_rows
from ._page import GRAPHQL_PAGE
from ._sql import SqlRefused, check_select, run_select
from ._status import readiness, status_body

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from starlette.requests import Request

    from ._events import EventHub
    from ._options import ApiLimits
    from ._reader import Reader
    from ._view import ApiView

__all__ = ["build_app"]

log = logging.getLogger("indexer.api")

_KEEPALIVE_SECONDS = 15.0
# Queries up to this long parse in well under a millisecond (and are cached):
# a thread hop would cost more than it saves.
_INLINE_PARSE_CHARS = 2_000


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


@dataclass
class _Api:
    reader: Reader
    hub: EventHub | None
    # Read once per request (see _view.py): indexer dev swaps it on reloads.
    view: ApiView
    limits: ApiLimits
    # The indexing process's own view (run --serve): e.g. stalled chains.
    health_extra: Callable[[], dict[str, Any]] | None = None

    async def _json_body(self, request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            raise _BadRequest(413, f"request body over {self.limits.max_body_bytes} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.limits.max_body_bytes:
                raise _BadRequest(413, f"request body over {self.limits.max_body_bytes} bytes")
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _BadRequest(400, f"the body is not valid JSON: {exc}") from None

    async def health(self, request: Request) -> Response:
        # 200 while the process is up, whatever it says: a stalled indexer
        # still serves what it has; the body says what is wrong.
        body: dict[str, Any] = {"status": "ok"}
        if self.health_extra is not None:
            body.update(self.health_extra())
        return JSONResponse(body)

    async def _chains(self) -> list[dict[str, Any]]:
        # No retry: a load balancer's probe wants an answer now, and a 503
        # is the right one while the database is away.
        targets = self.view.current.targets
        rows = await self.reader.read(
            lambda conn: read_chain_rows(conn, self.reader.schema), retry=False
        )
        return status_body(targets, rows)

    async def status(self, request: Request) -> Response:
        chains = await self._chains()
        ready, _ = readiness(chains)
        return JSONResponse({"ready": ready, "chains": chains})

    async def ready(self, request: Request) -> Response:
        chains = await self._chains()
        ready, waiting = readiness(chains)
        if ready:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "waiting": waiting}, status_code=503)

    async def graphql_page(self, request: Request) -> Response:
        return HTMLResponse(GRAPHQL_PAGE)

    async def graphql_post(self, request: Request) -> Response:
        body = await self._json_body(request)
        if not isinstance(body, dict):
            return JSONResponse({"errors": [{"message": "the body must be a JSON object"}]}, 400)
        query, variables, operation = (
            body.get("query"),
            body.get("variables"),
            body.get("operationName"),
        )
        if not isinstance(query, str):
            return JSONResponse({"errors": [{"message": "`query` must be a string"}]}, 400)
        if variables is not None and not isinstance(variables, dict):
            return JSONResponse({"errors": [{"message": "`variables` must be an object"}]}, 400)
        if operation is not None and not isinstance(operation, str):
            return JSONResponse({"errors": [{"message": "`operationName` must be a string"}]}, 400)
        served = self.view.current
        graphql = served.graphql
        if graphql is None:
            return _graphql_error(503, served.reason)
        if len(query) <= _INLINE_PARSE_CHARS:
            prepared = graphql.prepare(query, variables, operation)
        else:
            # Parsing and validating a large document on a cache miss can
            # take a good part of a second: not on the event loop, which
            # also runs indexing under run --serve.
            prepared = await trio.to_thread.run_sync(graphql.prepare, query, variables, operation)
        if isinstance(prepared, dict):
            return JSONResponse(prepared, status_code=400)
        result = await graphql.answer(self.reader, prepared)
        return JSONResponse(result)

    async def sql(self, request: Request) -> Response:
        body = await self._json_body(request)
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object {sql, params}")
        text, params = body.get("sql"), body.get("params", [])
        if not isinstance(text, str):
            return _error(400, "`sql` must be a string")
        if not isinstance(params, list):
            return _error(400, "`params` must be a list")
        try:
            check_select(text)
            cap = self.limits.sql_row_cap
            result = await self.reader.read(
                lambda conn: run_select(conn, text, params, row_cap=cap)
            )
        except SqlRefused as exc:
            return _error(504 if exc.timed_out else 400, exc.message)
        return JSONResponse(result)

    async def events(self, request: Request) -> Response:
        if self.hub is None:
            return _error(404, "live events are not enabled on this server")
        hub = self.hub

        async def stream() -> AsyncIterator[bytes]:
            with hub.subscribe() as receive:
                yield b": connected\n\n"
                while True:
                    with trio.move_on_after(_KEEPALIVE_SECONDS):
                        try:
                            event = await receive.receive()
                        except trio.EndOfChannel:
                            return  # fell behind: the client reconnects
                        data = orjson.dumps({"chain_id": event.chain_id, "block": event.block})
                        yield b"event: " + event.kind.encode() + b"\ndata: " + data + b"\n\n"
                        continue
                    yield b": keep-alive\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _graphql_error(status: int, message: str, **extensions: Any) -> JSONResponse:
    error: dict[str, Any] = {"message": message}
    if extensions:
        error["extensions"] = extensions
    return JSONResponse({"errors": [error]}, status_code=status)


def _failure(request: Request, status: int, message: str, **extra: Any) -> JSONResponse:
    # A GraphQL client looks for `errors`, whatever the status.
    if request.url.path == "/graphql":
        return _graphql_error(status, message, **extra)
    return _error(status, message, **extra)


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, _BadRequest)
    response = _failure(request, exc.status, exc.message)
    if exc.status == 413:
        # The body is left unread, so the server closes the connection after
        # this answer: say so, or a client reuses it for its next request and
        # finds it closed (it raced whether the body had arrived in time).
        response.headers["connection"] = "close"
    return response


async def _database_down(request: Request, exc: Exception) -> Response:
    # psycopg messages name the server but never the password; DatabaseError
    # messages are redacted where they are made.
    log.warning("%s %s: database error: %s", request.method, request.url.path, exc)
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return _failure(request, 504, "the query ran past the statement timeout")
    return _failure(request, 503, "the database is not available", detail=type(exc).__name__)


async def _no_tables(request: Request, exc: Exception) -> Response:
    # Also what a request sees while a run with --reset (indexer dev's
    # reload) drops and re-creates the tables: temporary, hence 503.
    return _failure(
        request,
        503,
        "the project's tables do not exist yet: no `indexer run` has created them in this "
        "schema, or a run is re-creating them",
        detail=str(exc).splitlines()[0],
    )


async def _other_tables(request: Request, exc: Exception) -> Response:
    # The entities served and the tables disagree: the code changed and no
    # run has re-created the tables from it yet (indexer dev: until the
    # reload's run resets them).
    return _failure(
        request,
        503,
        "the project's tables were created from other entity definitions than the ones "
        "served; a run with the current code re-creates them",
        detail=str(exc).splitlines()[0],
    )


def build_app(
    reader: Reader,
    view: ApiView,
    *,
    hub: EventHub | None,
    cors_origins: Sequence[str] = (),
    health: Callable[[], dict[str, Any]] | None = None,
) -> Starlette:
    """The API over ``reader``'s schema and ``view``'s entities (docs/api.md lists the routes)."""
    api = _Api(reader, hub, view, view.limits, health)
    routes = [
        Route("/health", api.health, methods=["GET"]),
        Route("/ready", api.ready, methods=["GET"]),
        Route("/status", api.status, methods=["GET"]),
        Route("/graphql", api.graphql_page, methods=["GET"]),
        Route("/graphql", api.graphql_post, methods=["POST"]),
        Route("/sql", api.sql, methods=["POST"]),
        Route("/events", api.events, methods=["GET"]),
    ]
    middleware = []
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["content-type"],
            )
        )
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            _BadRequest: _bad_request,
            DatabaseError: _database_down,
            psycopg.OperationalError: _database_down,
            psycopg.errors.UndefinedTable: _no_tables,
            psycopg.errors.UndefinedColumn: _other_tables,
        },
    )
