"""Read-only database access for the HTTP API: a small pool, one snapshot per request.

Every request runs one function in a worker thread on a pooled connection,
inside a ``REPEATABLE READ, READ ONLY`` transaction: all its statements see
one snapshot, so a page and its ``totalCount`` agree even while the writer
commits, and nothing it runs can write.  The connections are synchronous
psycopg connections driven from Trio worker threads (one thread at a time
per connection), as everywhere in the framework, so a slow query never
blocks the event loop that serves other requests or indexes.

The direct paths' single statement (a lookup by id, a page) skips the
thread: :meth:`Reader.fetch` sends it with libpq's non-blocking calls and
waits for the socket in Trio (``_lane.py``), on connections of its own.
Both kinds share the pool's bound on concurrent reads.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import trio
from psycopg import IsolationLevel, pq, sql

from .._errors import DatabaseError
from .._redact import redact_url
from ..persist import RetryPolicy, is_transient, numeric_as_int
from ._lane import run_statement
from ._options import DEFAULT_POOL_SIZE, DEFAULT_READ_RETRY_SECONDS, DEFAULT_STATEMENT_TIMEOUT

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = ["Reader"]

log = logging.getLogger("indexer.api")

T = TypeVar("T")


class Reader:
    """A bounded pool of read-only connections to one project schema.

    Args:
        url: the PostgreSQL URL (the primary or a read replica).
        schema: the project schema; it is the connections' ``search_path``.
        size: at most this many requests read at once; more wait their turn.
        statement_timeout: seconds any one statement may run.
    """

    def __init__(
        self,
        url: str,
        schema: str,
        *,
        size: int = DEFAULT_POOL_SIZE,
        statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT,
        application_name: str = "indexer-api",
        retry_seconds: float = DEFAULT_READ_RETRY_SECONDS,
    ) -> None:
        self.url = url
        self.schema = schema
        self.statement_timeout = statement_timeout
        self._application_name = application_name
        self._slots = trio.Semaphore(size)
        self._idle: list[psycopg.Connection[Any]] = []
        # The event loop's connections (see fetch), each with its prepared
        # statements; apart from the threads' ones, which psycopg drives.
        self._lane_idle: list[tuple[psycopg.Connection[Any], dict[Any, bytes]]] = []
        self._closed = False
        self.retry_seconds = retry_seconds
        self._policy = RetryPolicy(seconds=retry_seconds)

    def _connect(self) -> psycopg.Connection[Any]:
        ms = max(1, int(self.statement_timeout * 1000))
        try:
            conn = psycopg.connect(
                self.url,
                application_name=self._application_name,
                # Session settings: a request cannot change them (the SQL
                # endpoint refuses SET and set_config), and every transaction
                # is read-only even if something slipped through.
                options=f"-c statement_timeout={ms} -c default_transaction_read_only=on",
            )
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot connect to PostgreSQL at {redact_url(self.url)}: {str(exc).strip()}"
            ) from None
        numeric_as_int(conn)
        # psycopg would prepare a statement after five uses, and a prepared
        # statement fails for good once its table is recreated with another
        # row type (indexer dev, a --reset): "cached plan must not change
        # result type".  The worker threads' statements are the general
        # executor's, rarely repeated; the event loop's (fetch) handle it.
        conn.prepare_threshold = None
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        # pg_catalog after the schema, not before (its implicit place): an
        # entity table named like a catalog (class PgClass -> pg_class) must
        # be the entity's.
        conn.execute(
            "SELECT set_config('search_path', %s, false)",
            (sql.SQL("{}, pg_catalog").format(sql.Identifier(self.schema)).as_string(None),),
        )
        conn.commit()
        return conn

    async def read(
        self,
        fn: Callable[[psycopg.Connection[Any]], T],
        *,
        retry: bool = True,
        single: bool = False,
    ) -> T:
        """Run ``fn(conn)`` in one read-only snapshot, in a worker thread.

        ``fn`` runs inside the transaction; it must not commit or roll back.
        ``single=True`` says ``fn`` runs exactly one statement: it then runs
        without BEGIN and COMMIT (one statement is its own snapshot), which
        saves two of a by-id request's three round trips.  The session stays
        read-only (``default_transaction_read_only``) and bounded by the
        statement timeout either way.
        Transient errors (a connection lost, the server restarting, a
        serialization failure on a replica) are retried on a fresh
        connection for up to ``retry_seconds``: a read repeats safely.
        Other psycopg errors, and a statement cancelled by the timeout,
        propagate as they are (callers map them to responses).  ``retry=False``
        fails at once (health probes must answer within their own timeout).
        """
        return await self._retrying(lambda: self._read_once(fn, single), retry)

    async def fetch(self, query: bytes, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one statement (``%s`` placeholders) on the event loop's thread: its rows as dicts.

        The same snapshot, timeout, retries and errors as :meth:`read` with
        ``single=True``, without the worker thread (see ``_lane.py``): for
        the direct paths' one statement per request.
        """
        return await self._retrying(lambda: self._fetch_once(query, params), True)

    async def _retrying(self, attempt_once: Callable[[], Awaitable[T]], retry: bool) -> T:
        if self._closed:
            raise RuntimeError("the reader is closed")
        started = trio.current_time()
        attempt = 0
        while True:
            try:
                return await attempt_once()
            except (psycopg.Error, DatabaseError) as exc:
                if isinstance(exc, psycopg.errors.QueryCanceled) or not (
                    isinstance(exc, DatabaseError) or is_transient(exc)
                ):
                    raise
                attempt += 1
                if not retry or trio.current_time() - started >= self.retry_seconds:
                    raise
                log.info("API read failed (%s); retry %d", type(exc).__name__, attempt)
            await trio.sleep(self._policy.delay(attempt))

    async def _fetch_once(self, query: bytes, params: Sequence[Any]) -> list[dict[str, Any]]:
        async with self._slots:
            if self._lane_idle:
                conn, prepared = self._lane_idle.pop()
            else:
                conn, prepared = await trio.to_thread.run_sync(self._connect), {}
            try:
                rows = await run_statement(conn, prepared, query, params)
            except psycopg.Error:
                if conn.broken or conn.pgconn.status != pq.ConnStatus.OK:
                    await self._drop_all(conn)
                else:
                    self._lane_idle.append((conn, prepared))
                raise
            except BaseException:
                # Cancelled mid-statement: the connection's state is unknown,
                # so it is closed, never reused.  The server ends the statement
                # at its timeout at the latest (it notices a closed client only
                # when it next writes to it), as a thread's would have run on.
                _close_quietly(conn)
                raise
            self._lane_idle.append((conn, prepared))
            return rows

    async def _read_once(self, fn: Callable[[psycopg.Connection[Any]], T], single: bool) -> T:
        async with self._slots:
            box: list[psycopg.Connection[Any] | None] = [self._idle.pop() if self._idle else None]

            def work() -> T:
                conn = box[0]
                if conn is None:
                    conn = box[0] = self._connect()
                if single:
                    conn.autocommit = True  # client-side only: no round trip
                    try:
                        return fn(conn)
                    finally:
                        conn.autocommit = False
                with conn.transaction():
                    return fn(conn)

            try:
                # Not abandoned on cancel: the thread owns the connection
                # until the statement ends (at most the statement timeout).
                return await trio.to_thread.run_sync(work)
            finally:
                conn = box[0]
                if conn is not None and not conn.closed and not conn.broken:
                    self._idle.append(conn)
                elif conn is not None:
                    await self._drop_all(conn)

    async def _drop_all(self, lost: psycopg.Connection[Any]) -> None:
        # One connection lost usually means all were (a restart, a
        # failover): drop the idle ones rather than fail on each.
        stale = [lost, *self._idle, *(c for c, _ in self._lane_idle)]
        self._idle, self._lane_idle = [], []
        for conn in stale:
            await trio.to_thread.run_sync(_close_quietly, conn)

    async def aclose(self) -> None:
        self._closed = True
        idle = [*self._idle, *(c for c, _ in self._lane_idle)]
        self._idle, self._lane_idle = [], []
        for conn in idle:
            await trio.to_thread.run_sync(conn.close)


def _close_quietly(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.close()
    except psycopg.Error:
        log.debug("closing a broken connection failed", exc_info=True)
