"""The ``POST /sql`` endpoint's core: check and run one read-only SQL query.

A request carries ``{"sql": "...", "params": [...]}``; the answer is
``{"columns": [...], "rows": [[...], ...], "truncated": bool}``.  Anything but
one query is refused with :class:`SqlRefused`, whose ``message`` explains why
(the HTTP layer answers 400 with it).  Three layers each stop break-outs on
their own, because the pooled connection may be a superuser's (the embedded
PostgreSQL connects as ``postgres``):

1. **The text check** (:func:`check_select`, in ``_sql_check``), on a
   tokenizer (``_sql_lexer``) that splits the text as PostgreSQL's lexer does
   (``--`` and nested ``/* */`` comments, ``'...'`` with ``''``, ``E'...'``
   with backslash escapes, ``B''``/``X''``/``N''``/``U&''`` strings, string
   continuation across newlines, ``"..."`` identifiers, ``$tag$...$tag$``,
   ``$1``), so keywords in strings and comments never count and quotes cannot
   be unbalanced to hide code.  It refuses:

   - SQL longer than :data:`MAX_SQL_LENGTH` characters, NUL characters, empty
     SQL, unterminated strings/comments/identifiers;
   - more than one statement (one trailing ``;`` is allowed);
   - statements not starting with ``SELECT``, ``WITH``, ``VALUES`` or
     ``TABLE`` (leading parentheses allowed): no ``SET``, ``SHOW``,
     ``EXPLAIN``, ``COPY``, ``CALL``, ``DO``, ``LOCK``, transaction control...;
   - anywhere outside strings, the keywords of writes, DDL and commands
     (``INSERT UPDATE DELETE MERGE TRUNCATE CREATE ALTER DROP GRANT REVOKE
     SECURITY REFRESH COPY CALL DO LOCK VACUUM ANALYZE LISTEN UNLISTEN NOTIFY
     SET RESET DISCARD PREPARE EXECUTE DEALLOCATE INTO``), so no
     data-modifying ``WITH`` and no ``SELECT INTO``, and the locking clauses
     ``FOR UPDATE/SHARE``.  A column with such a name must be written quoted
     (``"set"``); the ``SET`` of a recursive CTE's ``SEARCH``/``CYCLE`` clause
     is refused too;
   - calls (a name followed by ``(``, schema-qualified or quoted too) of the
     functions in ``_sql_check._DENIED_CALLS``, because a read-only
     transaction does not stop them: settings (``set_config``, and
     ``current_setting``: ``primary_conninfo`` can hold a password), signals
     and server control (``pg_terminate_backend``, ``pg_reload_conf``...),
     server files, large objects and the WAL (``pg_read_file``, ``pg_ls_*``,
     ``lo_*``...), sequences, advisory locks and transaction ids
     (``nextval``, ``pg_advisory_*``, ``txid_*``), other connections
     (``dblink*``, ``pg_notify``), other sessions' queries, and the functions
     that run a SQL string (``query_to_xml``..., ``ts_stat``), which would
     bypass this check.  ``pg_sleep`` is allowed: the statement timeout
     bounds it, as it bounds any slow query;
   - naming a relation of ``_sql_check._DENIED_RELATIONS``: credentials
     (``pg_authid``, ``pg_shadow``, user mappings, subscriptions), settings,
     other sessions' queries (``pg_stat_activity``), column statistics
     (``pg_stats`` samples ``pg_authid`` too) and large objects;
   - ``U&"..."`` identifiers (their escapes could spell a refused name).

   The check assumes ``standard_conforming_strings`` is on (the default);
   :func:`run_select` refuses every query when it is not.
2. **PostgreSQL**: the query runs as ``DECLARE ... CURSOR FOR <query>``, sent
   with the extended protocol (psycopg's ``RawServerCursor``), so PostgreSQL
   itself refuses a second statement, anything but a query, ``SELECT INTO``
   and data-modifying ``WITH``; inside the caller's ``READ ONLY`` transaction
   (made sure of with ``SET TRANSACTION READ ONLY``), writes, ``nextval``,
   ``lo_import`` and DDL fail; the statement timeout cancels slow queries.
3. **The session check**: the query runs in a savepoint, and the session's
   role, settings and advisory locks are compared before and after; a change
   is refused and undone (the caller's transaction rolls back, the locks are
   released), also when the query failed after making it.

The deny-lists are best effort: a deployment that exposes the API should
connect with a role that may only read the project schema.

Limits: :data:`DEFAULT_ROW_CAP` rows by default (``row_cap``) and about
:data:`DEFAULT_MAX_BYTES` of JSON (``max_bytes``); beyond either the rows are
cut and ``truncated`` is true.  At most :data:`MAX_PARAMS` parameters.  Rows
are fetched in growing pages (100 to 1,000) from the server-side cursor, so a
huge (even endless) result is never materialised; the statement timeout
bounds each fetch, and no fetch starts after it has elapsed since the first,
so a query runs at most about twice the timeout.  A single value can still be
as large as PostgreSQL allows (1 GB).

Parameters are PostgreSQL's ``$1, $2, ...``, so ``%`` needs no escaping;
``params`` is a list of strings, numbers, booleans and nulls, and must give
exactly the values the placeholders use.

Values become JSON as: ``numeric`` (entity ints are ``numeric(78,0)``) → a
decimal string always, exact for JavaScript clients whatever the value;
``smallint``/``integer``/``bigint`` → numbers (cast a ``bigint`` beyond 2^53
to text for a JavaScript client); floats → numbers, ``"NaN"``/``"Infinity"``/
``"-Infinity"`` as strings; ``bytea`` → ``"0x..."`` lowercase hex; dates and
times → ISO 8601 (PostgreSQL's text where Python cannot hold the value:
``infinity``, years beyond 9999, ``24:00``); ``interval`` → PostgreSQL's
text; ``json``/``jsonb`` → JSON (integers beyond 64 bits as strings);
arrays and records → lists; anything else (uuid, inet, ranges...) → its text.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq
from psycopg.adapt import Buffer, Loader
from psycopg.types.string import TextLoader

from .._redact import redact_url
from ._sql_check import (
    MAX_PARAMS,
    MAX_SQL_LENGTH,
    SqlRefused,
    check_params,
    check_select,
    check_sql,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_ROW_CAP",
    "MAX_PARAMS",
    "MAX_SQL_LENGTH",
    "SqlRefused",
    "check_select",
    "run_select",
]

DEFAULT_ROW_CAP = 10_000
"""Rows returned at most unless the caller says otherwise."""
DEFAULT_MAX_BYTES = 16 * 2**20
"""About this many bytes of JSON rows at most unless the caller says otherwise."""

_CURSOR = "_indexer_sql"
# psycopg sends DECLARE "<name>" NO SCROLL CURSOR FOR <sql>; PostgreSQL's
# error positions count from the DECLARE.
_DECLARE_PREFIX = len(f'DECLARE "{_CURSOR}" NO SCROLL CURSOR FOR ')
_FIRST_PAGE, _LAST_PAGE = 100, 1000
# Connection and server trouble is not the query's fault: it propagates
# (the HTTP layer answers 5xx) instead of becoming a refusal.
_SERVER_TROUBLE = frozenset({"08", "40", "57", "58", "XX", "F0"})
_STATE_SQL = """
SELECT current_user, session_user, pg_catalog.current_setting('transaction_read_only'),
    (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'statement_timeout'),
    (SELECT pg_catalog.string_agg(name || '=' || setting, ',' ORDER BY name)
        FROM pg_catalog.pg_settings WHERE source = 'session'),
    (SELECT count(*) FROM pg_catalog.pg_locks
        WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())
"""


@dataclass(frozen=True, slots=True)
class _State:
    """What a query could change in the session and that outlives it."""

    user: str
    session_user: str
    read_only: str
    timeout_ms: str
    settings: str | None
    advisory_locks: int

    @property
    def timeout(self) -> float:
        return int(self.timeout_ms) / 1000 if self.timeout_ms.isdigit() else 0.0


def _session_state(conn: psycopg.Connection[Any]) -> _State:
    row = conn.execute(_STATE_SQL).fetchone()
    assert row is not None
    return _State(*row)


class _NumericTextLoader(Loader):
    """numeric → its exact decimal text (``"1.50"``, ``"NaN"``)."""

    def load(self, data: Buffer) -> str:
        return bytes(data).decode("ascii")


@cache
def _lenient(base: type[Loader]) -> type[Loader]:
    """``base``, but PostgreSQL's text where Python cannot hold the value
    (``infinity``, years beyond 9999 or BC, ``24:00:00``)."""

    class _Lenient(Loader):
        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._base = base(oid, context)

        def load(self, data: Buffer) -> Any:
            try:
                return self._base.load(data)
            except (psycopg.DataError, ValueError, OverflowError):
                return bytes(data).decode("utf-8", "replace")

    return _Lenient


def _use_json_loaders(cur: psycopg.RawServerCursor[Any]) -> None:
    """Loaders for this cursor only: the pooled connection keeps its own."""
    adapters = cur.adapters
    adapters.register_loader("numeric", _NumericTextLoader)
    adapters.register_loader("interval", TextLoader)
    for name in ("date", "time", "timetz", "timestamp", "timestamptz"):
        base = adapters.get_loader(adapters.types[name].oid, pq.Format.TEXT)
        if base is not None:
            adapters.register_loader(name, _lenient(base))


def _json_value(value: object) -> object:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        # Only a json/jsonb number can be this large (numeric is text); the
        # HTTP layer's orjson writes 64-bit integers at most.
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)  # Decimal, UUID, addresses, ranges...


def _redact(message: str, conn: psycopg.Connection[Any]) -> str:
    try:
        password = conn.info.password
    except psycopg.Error:
        password = None
    if password:
        message = message.replace(password, "***")
    message = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", lambda m: redact_url(m.group()), message)
    return re.sub(r"(?i)(password\s*=\s*)\S+", r"\1***", message)


def _timed_out(state: _State) -> SqlRefused:
    return SqlRefused(
        f"the query was cancelled: it ran longer than the statement timeout "
        f"({state.timeout:g} s); make it cheaper (a narrower WHERE, a LIMIT)",
        timed_out=True,
    )


def _refusal(exc: psycopg.Error, sql: str, state: _State) -> SqlRefused | None:
    """The refusal for a psycopg error the query caused, None for server trouble."""
    sqlstate = exc.sqlstate
    if sqlstate is None:
        # Client side: only a value psycopg could not convert is the query's doing.
        return (
            SqlRefused(f"the result cannot be read: {exc}")
            if isinstance(exc, psycopg.DataError)
            else None
        )
    if sqlstate != "57014" and sqlstate[:2] in _SERVER_TROUBLE:
        return None
    diag = exc.diag
    primary = diag.message_primary or str(exc).strip().split("\n", 1)[0]
    if sqlstate == "57014" and "statement timeout" in primary:
        return _timed_out(state)
    message = f"PostgreSQL refused the query: {primary}"
    if diag.statement_position and diag.statement_position.isdigit():
        at = int(diag.statement_position) - _DECLARE_PREFIX
        if 1 <= at <= len(sql) + 1:
            message += f" (at character {at})"
    if sqlstate == "25006":
        message += " (the SQL endpoint is read-only)"
    for label, extra in (("detail", diag.message_detail), ("hint", diag.message_hint)):
        if extra:
            message += f"; {label}: {extra}"
    return SqlRefused(message)


def _fetch(
    conn: psycopg.Connection[Any],
    sql: str,
    params: list[Any],
    *,
    row_cap: int,
    max_bytes: int,
    state: _State,
) -> dict[str, Any]:
    deadline = time.monotonic() + state.timeout if state.timeout else None
    rows: list[list[object]] = []
    size, truncated, page = 0, False, _FIRST_PAGE
    with psycopg.RawServerCursor(conn, _CURSOR, scrollable=False) as cur:
        _use_json_loaders(cur)
        # A server-side cursor is sent with the extended protocol: PostgreSQL
        # refuses a second statement, and DECLARE accepts only a query.
        cur.execute(sql, params)
        columns = [column.name for column in cur.description or ()]
        while not truncated:
            want = min(page, row_cap + 1 - len(rows))
            if deadline is not None and rows and time.monotonic() > deadline:
                # Each FETCH has the statement timeout; this bounds them together.
                raise _timed_out(state)
            batch = cur.fetchmany(want)
            for raw in batch:
                row = [_json_value(value) for value in raw]
                size += len(json.dumps(row, ensure_ascii=False, allow_nan=False)) + 1
                if len(rows) == row_cap or size > max_bytes:
                    truncated = True
                    break
                rows.append(row)
            if len(batch) < want:
                break
            page = min(2 * page, _LAST_PAGE)
    return {"columns": columns, "rows": rows, "truncated": truncated}


def _execute(
    conn: psycopg.Connection[Any],
    sql: str,
    params: list[Any],
    *,
    row_cap: int,
    max_bytes: int,
) -> dict[str, Any]:
    """Run ``sql`` (already checked) with PostgreSQL's and the session's guards."""
    if conn.info.transaction_status != pq.TransactionStatus.INTRANS:
        raise RuntimeError("run_select needs an open transaction (Reader.read gives one)")
    if conn.info.parameter_status("standard_conforming_strings") != "on":
        raise SqlRefused(
            "the SQL endpoint needs standard_conforming_strings = on on the server; "
            "it refuses every query without it"
        )
    # Allowed at any point of a transaction, and a no-op under Reader.read.
    conn.execute("SET TRANSACTION READ ONLY")
    before = _session_state(conn)
    result: dict[str, Any] | None = None
    refusal: SqlRefused | None = None
    try:
        # A savepoint: after a failed query the transaction can still check
        # and clean up the session below.
        with conn.transaction():
            result = _fetch(conn, sql, params, row_cap=row_cap, max_bytes=max_bytes, state=before)
    except SqlRefused as exc:
        refusal = exc
    except UnicodeEncodeError:
        refusal = SqlRefused("the SQL or `params` hold characters the database cannot encode")
    except psycopg.Error as exc:
        refusal = _refusal(exc, sql, before)
        if refusal is None:
            raise
        refusal = SqlRefused(_redact(refusal.message, conn), timed_out=refusal.timed_out)
    changed = SqlRefused(
        "the query changed the session (its settings, role or locks), which the "
        "SQL endpoint does not allow; it was rolled back"
    )
    try:
        after = _session_state(conn)
    except psycopg.Error as exc:
        # E.g. the query set a tiny statement_timeout.  The caller's rollback
        # undoes the settings.
        if _refusal(exc, sql, before) is None:
            raise
        raise changed from None
    if after != before:
        if after.advisory_locks != before.advisory_locks:
            conn.execute("SELECT pg_catalog.pg_advisory_unlock_all()")
        raise changed  # Reader.read rolls back, which undoes setting changes
    if refusal is not None:
        raise refusal
    assert result is not None
    return result


def run_select(
    conn: psycopg.Connection[Any],
    text: str,
    params: Sequence[Any] | None,
    *,
    row_cap: int = DEFAULT_ROW_CAP,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Check and run one read-only query; return its JSON-able result.

    Args:
        conn: a connection inside a read-only transaction, as
            :meth:`Reader.read` gives it; it is left as it was, in that
            transaction (the caller commits or rolls back).
        text: the SQL, with ``$1, $2, ...`` placeholders.
        params: the placeholders' values (strings, numbers, booleans, None);
            None is the same as none.
        row_cap: rows returned at most; one more is fetched to tell whether
            the result was cut.
        max_bytes: about this many bytes of JSON rows at most.

    Returns:
        ``{"columns": [names], "rows": [[values]], "truncated": bool}``;
        values converted as this module's docstring says.

    Raises:
        SqlRefused: the SQL or ``params`` are refused, or PostgreSQL refused
            the query (syntax, permission, read-only, timeout...).
        psycopg.Error: connection or server trouble, not the query's fault.
    """
    if row_cap < 0 or max_bytes < 0:
        raise ValueError("row_cap and max_bytes must not be negative")
    checked = check_sql(text)
    values = check_params(params, checked.max_param)
    return _execute(conn, checked.sql, values, row_cap=row_cap, max_bytes=max_bytes)
