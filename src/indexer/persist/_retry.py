"""Which database errors are worth retrying, and how long to keep trying.

A write that fails with a connection-level or concurrency error (the
connection dropped, the server restarted or is starting, a serialization
failure or deadlock) rolled back on the server, or never reached it: the
same write on a fresh connection persists exactly what the failed one
would have.  The one ambiguous case, a connection lost while COMMIT's
answer was on its way, is settled by reading ``_indexer_state`` before
trying again (see ``RetryingSession.run``).  Data errors are not retried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import psycopg

__all__ = ["DEFAULT_RETRY_SECONDS", "RetryPolicy", "is_transient"]

# Long enough to ride out a PostgreSQL restart or a failover (typically a
# few to ~30 seconds), short enough that a database that stays down is
# reported within a minute.
DEFAULT_RETRY_SECONDS = 60.0


def is_transient(exc: BaseException) -> bool:
    """True for errors a retry on a fresh connection can fix.

    Transient: the connection lost or closed, an administrator's or the
    server's shutdown, "the database system is starting up" (cannot connect
    now), too many connections, serialization failures and deadlocks, and a
    write refused as read-only (after a failover the old primary serves
    read-only until the client reconnects to the new one).  Permanent:
    everything else, data and integrity errors in particular.
    """
    if isinstance(exc, (psycopg.errors.DataError, psycopg.errors.IntegrityError)):
        return False
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return True
    # OperationalError covers lost connections, admin shutdown, "the
    # database system is starting up", too many connections, serialization
    # failures and deadlocks (TransactionRollback); InterfaceError a closed
    # connection.
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter, for at most ``seconds`` in total."""

    seconds: float = DEFAULT_RETRY_SECONDS
    base: float = 0.2
    cap: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Sleep before retry number ``attempt`` (1-based)."""
        return self.rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))
