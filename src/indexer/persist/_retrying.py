"""A database session that survives transient errors: one retry loop for every caller.

Each call runs a blocking function on the session in a worker thread (one
at a time: a psycopg connection is not shared between threads).  A
connection-level or concurrency error (see ``_retry.is_transient``) is
retried on a fresh connection with backoff until the policy's time is up;
before repeating, ``done`` is asked whether the failed attempt committed
after all (the connection was lost while COMMIT's answer was on its way),
which makes retries of plain inserts exact: repeated only when nothing
landed, never applied twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TypeVar

import trio

from .._errors import DatabaseError
from ._retry import RetryPolicy, is_transient

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._connection import Session

__all__ = ["RetryingSession", "open_session"]

log = logging.getLogger("indexer.persist")
T = TypeVar("T")


class RetryingSession:
    """Owns one session and replaces it after a transient failure.

    Args:
        session: an open session.
        reconnect: opens a replacement; None disables retries (errors raise
            at once).
        retry: how long and how fast to retry.
        on_retry: called once per retry (metrics).
    """

    def __init__(
        self,
        session: Session,
        *,
        reconnect: Callable[[], Session] | None = None,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self.session = session
        self._reconnect_fn = reconnect
        self.retry = retry or RetryPolicy()
        self._on_retry = on_retry
        self._limiter = trio.CapacityLimiter(1)
        self.retries = 0
        # What run() is doing now, and its attempt (for the stall watchdog).
        self.current: str | None = None
        self.attempt = 0

    async def run(
        self,
        what: str,
        fn: Callable[[Session], T],
        *,
        done: Callable[[Session], bool] = lambda _session: False,
    ) -> T | None:
        """``fn(session)`` in the worker thread, retried on transient errors.

        Returns None instead of ``fn``'s result when ``done`` says a failed
        attempt had committed.  Past the retry time, a DatabaseError naming
        ``what``.
        """
        started = trio.current_time()
        self.current, self.attempt = what, 1
        try:
            return await self._run(what, fn, done, started)
        finally:
            self.current = None

    async def _run(
        self,
        what: str,
        fn: Callable[[Session], T],
        done: Callable[[Session], bool],
        started: float,
    ) -> T | None:
        attempt = 0
        while True:
            try:
                if attempt and await trio.to_thread.run_sync(
                    done, self.session, limiter=self._limiter
                ):
                    return None
                return await trio.to_thread.run_sync(fn, self.session, limiter=self._limiter)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if self._reconnect_fn is None:
                    raise DatabaseError(
                        f"{what} failed: {type(exc).__name__}: {str(exc).strip()}"
                    ) from exc
                attempt += 1
                elapsed = trio.current_time() - started
                if elapsed >= self.retry.seconds:
                    raise DatabaseError(
                        f"{what} failed {attempt} times over {elapsed:.1f}s with transient database errors; "
                        f"giving up (the limit is {self.retry.seconds:g}s, --db-retry-seconds). Last error: "
                        f"{type(exc).__name__}: {str(exc).strip()}. The database keeps its last commit "
                        f"and `indexer run` resumes from there once PostgreSQL is back."
                    ) from exc
                self.retries += 1
                self.attempt = attempt + 1
                if self._on_retry is not None:
                    self._on_retry()
                delay = self.retry.delay(attempt)
                log.warning(
                    "%s failed (%s: %s); retry %d in %.2fs on a new connection",
                    what,
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                    attempt,
                    delay,
                )
                await trio.sleep(delay)
                await self._reconnect()

    async def close(self) -> None:
        await trio.to_thread.run_sync(_close_quietly, self.session, limiter=self._limiter)

    async def _reconnect(self) -> None:
        assert self._reconnect_fn is not None
        reconnect = self._reconnect_fn
        await self.close()
        try:
            self.session = await trio.to_thread.run_sync(reconnect, limiter=self._limiter)
        except Exception as exc:
            # Still down (refused, or dropped while setting the connection
            # up): keep the closed session; the next attempt fails fast with
            # a transient error and comes back here, within the retry time.
            if not (isinstance(exc, DatabaseError) or is_transient(exc)):
                raise
            log.debug("reconnecting failed: %s", exc)


def _close_quietly(session: Session) -> None:
    try:
        session.close()
    except Exception:
        log.debug("closing a broken connection failed", exc_info=True)


async def open_session(open_fn: Callable[[], Session], retry: RetryPolicy) -> Session:
    """``open_fn()`` in a worker thread, retried when the connection drops while it sets up.

    A server that cannot be reached at all fails at once (``connect``'s
    ``DatabaseError``: a wrong URL should not take a minute to report); a
    connection that was made and then lost in its first statements (a
    restart, a failover, an administrator) is opened again, as any other
    connection of the run would be, within the retry time.
    """
    started = trio.current_time()
    attempt = 0
    while True:
        try:
            return await trio.to_thread.run_sync(open_fn)
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            elapsed = trio.current_time() - started
            if elapsed >= retry.seconds:
                raise DatabaseError(
                    f"opening a database connection failed {attempt} times over {elapsed:.1f}s "
                    f"with transient errors; giving up (the limit is {retry.seconds:g}s, --db-retry-seconds). "
                    f"Last error: {type(exc).__name__}: {str(exc).strip()}. Check that PostgreSQL is up; "
                    f"`indexer run` resumes from the last commit."
                ) from exc
            delay = retry.delay(attempt)
            log.warning(
                "opening a database connection failed (%s); retry %d in %.2fs",
                type(exc).__name__,
                attempt,
                delay,
            )
            await trio.sleep(delay)
