"""One read statement on the event loop's own thread: libpq's non-blocking calls, awaited in Trio.

The general path runs a request's reads in a worker thread on a synchronous
psycopg connection.  For the requests the direct paths answer (a lookup by
id, a page: one statement each) the thread was most of the cost: on the
2-core benchmark machine a by-id request took ~1.2 ms of server CPU through
a thread and ~0.55 ms this way (the hand-off, its wake-ups and the GIL's
switch interval), for the same Hypercorn in front.  libpq already speaks the
protocol without blocking (psycopg keeps its connections in non-blocking
mode); this module sends the statement, then waits for the socket with
``trio.lowlevel.wait_readable`` instead of a thread, so a slow statement
still never blocks the loop.

Parameters and rows go through psycopg's own adaptation (``Transformer``
on the connection's adapters), so a value reads exactly as it does on the
general path.  A statement text seen before on a connection runs as a
prepared statement (PostgreSQL plans it once per connection).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

import psycopg
import trio
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["MAX_PREPARED", "run_statement"]

#: Prepared statements kept per connection; texts past it run unprepared.
MAX_PREPARED = 200

# psycopg's placeholders in a rendered statement: %s, and %% for a literal
# percent sign (identifiers and string literals in our SQL never hold one:
# values are always parameters).
_PLACEHOLDER = re.compile(rb"%[s%]")


def _numbered(text: bytes) -> bytes:
    """psycopg's ``%s`` placeholders as PostgreSQL's ``$1, $2, ...``."""
    n = 0

    def number(match: re.Match[bytes]) -> bytes:
        nonlocal n
        if match.group() == b"%%":
            return b"%"
        n += 1
        return b"$%d" % n

    return _PLACEHOLDER.sub(number, text)


async def _result(pg: pq.abc.PGconn) -> pq.abc.PGresult:
    """Flush what was sent, then the last result of the statement."""
    while pg.flush():
        await trio.lowlevel.wait_writable(pg.socket)
    last: pq.abc.PGresult | None = None
    while True:
        pg.consume_input()
        while not pg.is_busy():
            got = pg.get_result()
            if got is None:
                if last is None:
                    raise psycopg.OperationalError("the server sent no result")
                return last
            last = got
        await trio.lowlevel.wait_readable(pg.socket)


def _check(result: pq.abc.PGresult, conn: psycopg.Connection[Any]) -> None:
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise psycopg.errors.error_from_result(result, conn.info.encoding)
    if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        status = pq.ExecStatus(result.status).name
        raise psycopg.OperationalError(f"unexpected result status {status}")


async def run_statement(
    conn: psycopg.Connection[Any],
    prepared: dict[tuple[bytes, tuple[int, ...]], bytes],
    query: bytes,
    params: Sequence[Any],
) -> list[dict[str, Any]]:
    """Run one statement (``%s`` placeholders) on ``conn``: its rows as dicts.

    ``conn`` must be idle and outside a transaction; the statement runs as
    its own snapshot.  ``prepared`` is this connection's map from statement
    text and parameter types to prepared name (psycopg picks an int's type
    by its size, so one text can need several): the caller keeps one per
    connection, and drops it with the connection.  A prepared statement whose
    table changed its row type is dropped and the text run again.  A
    PostgreSQL error is raised as psycopg would raise it (``QueryCanceled`` for the statement timeout, ...), leaving the
    connection usable; a lost connection raises ``OperationalError``.
    Cancellation leaves the connection mid-statement: the caller must close
    it, never reuse it.
    """
    pg = conn.pgconn
    tx = Transformer.from_context(conn)
    values = tx.dump_sequence(params, [PyFormat.TEXT] * len(params)) if params else []
    types: tuple[int, ...] = tuple(tx.types or ()) if params else ()
    key = (query, types)
    name = prepared.get(key)
    if name is None and len(prepared) < MAX_PREPARED:
        name = _name(key)
        pg.send_prepare(name, _numbered(query), types)
        _check(await _result(pg), conn)
        prepared[key] = name
    if name is None:
        pg.send_query_params(_numbered(query), values, types)
        result = await _result(pg)
    else:
        pg.send_query_prepared(name, values)
        result = await _result(pg)
        if _plan_outdated(result):
            # The table changed under the statement (indexer dev reloaded a
            # changed entity, a --reset recreated it): PostgreSQL re-plans a
            # prepared statement but refuses a new row type.  Forget it, and
            # run the text as it now reads.
            del prepared[key]
            pg.send_query(b"DEALLOCATE " + name)
            _check(await _result(pg), conn)
            pg.send_query_params(_numbered(query), values, types)
            result = await _result(pg)
    _check(result, conn)
    tx.set_pgresult(result)
    names = [(result.fname(i) or b"").decode() for i in range(result.nfields)]
    return tx.load_rows(0, result.ntuples, lambda row: dict(zip(names, row, strict=True)))


def _name(key: tuple[bytes, tuple[int, ...]]) -> bytes:
    """A prepared statement's name: the same for the same text and types, on any connection."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=10).hexdigest()
    return b"_indexer_api_" + digest.encode()


def _plan_outdated(result: pq.abc.PGresult) -> bool:
    # 0A000 feature_not_supported: "cached plan must not change result type".
    return (
        result.status == pq.ExecStatus.FATAL_ERROR
        and result.error_field(pq.DiagnosticField.SQLSTATE) == b"0A000"
    )
