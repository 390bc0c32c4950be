"""The SQL endpoint's core (indexer.api._sql): queries work; break-outs are refused and change nothing.

Everything runs against real PostgreSQL through :class:`Reader` (one pooled
connection, a short statement timeout), as the HTTP route does.  After every
break-out attempt an admin connection checks the table, the schema's
relations and the sequence, and the pooled connection's settings are checked
through the same Reader.
"""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg import sql

from indexer.api import Reader
from indexer.api._sql import (
    MAX_SQL_LENGTH,
    SqlRefused,
    _execute,
    check_select,
    run_select,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

TIMEOUT = 0.5  # the Reader's statement timeout, seconds
BIG = 10**70  # fits numeric(78,0), far beyond 2^53
ROWS = [
    ("a", BIG, b"\x00\xff", "alpha", True, 1.5),
    ("b", 2, None, "beta", False, None),
    ("c", None, b"", "a%b", None, float("nan")),
]


@pytest.fixture
def admin(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def table(admin: psycopg.Connection[Any], schema: str) -> str:
    """The schema, holding table ``t`` (ROWS), empty table ``m`` and sequence ``s``."""
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    admin.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(schema)))
    admin.execute(
        "CREATE TABLE t (id text PRIMARY KEY, amount numeric(78,0), data bytea, note text,"
        " flag boolean, price double precision)"
    )
    admin.cursor().executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)", ROWS)
    admin.execute(
        "CREATE TABLE m (id text PRIMARY KEY, amount numeric(78,0), data bytea, note text)"
    )
    admin.execute("CREATE SEQUENCE s")
    admin.execute("SET search_path = public")
    return schema


@pytest.fixture
async def reader(database_url: str, table: str) -> AsyncIterator[Reader]:
    r = Reader(database_url, table, size=1, statement_timeout=TIMEOUT)
    try:
        yield r
    finally:
        await r.aclose()


async def select(reader: Reader, text: str, params: Any = (), **kw: Any) -> dict[str, Any]:
    return await reader.read(lambda conn: run_select(conn, text, params, **kw))


async def refused(reader: Reader, text: str, params: Any = ()) -> str:
    with pytest.raises(SqlRefused) as info:
        await select(reader, text, params)
    return info.value.message


def snapshot(admin: psycopg.Connection[Any], schema: str) -> tuple[Any, ...]:
    s = sql.Identifier(schema)
    rows = admin.execute(sql.SQL("SELECT * FROM {}.t ORDER BY id").format(s)).fetchall()
    relations = admin.execute(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE nspname = %s ORDER BY 1",
        (schema,),
    ).fetchall()
    sequence = admin.execute(sql.SQL("SELECT last_value, is_called FROM {}.s").format(s)).fetchone()
    return repr(rows), relations, sequence  # repr: NaN != NaN


async def session(reader: Reader) -> Any:
    """The pooled connection's settings that a break-out would change."""
    return await reader.read(
        lambda conn: conn.execute(
            "SELECT pg_backend_pid(), current_setting('statement_timeout'),"
            " current_setting('transaction_read_only'), current_setting('search_path'),"
            " current_user, (SELECT count(*) FROM pg_locks"
            "  WHERE locktype = 'advisory' AND pid = pg_backend_pid())"
        ).fetchone()
    )


async def assert_unchanged(reader: Reader, admin: psycopg.Connection[Any], before: Any) -> None:
    assert snapshot(admin, reader.schema) == before
    _pid, timeout, read_only, path, user, locks = await session(reader)
    assert (timeout, read_only, path, locks) == ("500ms", "on", f'"{reader.schema}", pg_catalog', 0)
    assert user == admin.execute("SELECT current_user").fetchone()[0]  # type: ignore[index]


# ------------------------------------------------------------------ queries that work


async def test_rows_are_json_values(reader: Reader) -> None:
    result = await select(reader, "SELECT id, amount, data, note, flag, price FROM t ORDER BY id")
    assert result == {
        "columns": ["id", "amount", "data", "note", "flag", "price"],
        "rows": [
            ["a", str(BIG), "0x00ff", "alpha", True, 1.5],
            ["b", "2", None, "beta", False, None],
            ["c", None, "0x", "a%b", None, "NaN"],
        ],
        "truncated": False,
    }
    json.dumps(result, allow_nan=False)
    orjson.dumps(result)  # what the HTTP layer writes with


async def test_with_params_percent_and_like(reader: Reader) -> None:
    result = await select(
        reader,
        "WITH x AS (SELECT * FROM t WHERE note LIKE 'a%' OR note LIKE $2)\n"
        "SELECT id, amount % 7 AS rest FROM x WHERE id <> $1 ORDER BY id",
        ["zzz", "b%"],
    )
    assert result["rows"] == [["a", str(BIG % 7)], ["b", "2"], ["c", None]]


async def test_param_types(reader: Reader) -> None:
    result = await select(
        reader,
        "SELECT $1::text, $2::int, $3::float8, $4::boolean, $5::text IS NULL, $6::numeric + 1",
        ["x", 5, 1.5, True, None, BIG],
    )
    assert result["rows"] == [["x", 5, 1.5, True, True, str(BIG + 1)]]


async def test_other_types(reader: Reader) -> None:
    result = await select(
        reader,
        "SELECT 'infinity'::date, '2024-01-02 03:04:05+00'::timestamptz, '24:00'::time,"
        " '1 day 02:00'::interval, '{\"a\": [1, 2.5]}'::jsonb, ARRAY[1.5, 2]::numeric[],"
        " '-Infinity'::float8, 7::int2, 8::int8, row(1, 'x'), '\\xdead'::bytea,"
        " 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, int4range(1, 5), 'NaN'::numeric,"
        " '[100000000000000000000000, 1e400]'::jsonb, '[1e400]'::json",
    )
    (row,) = result["rows"]
    assert row[0] == "infinity"
    assert datetime.datetime.fromisoformat(row[1]) == datetime.datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC
    )
    assert row[2:] == [
        "24:00:00",
        "1 day 02:00:00",
        {"a": [1, 2.5]},
        ["1.5", "2"],
        "-Infinity",
        7,
        8,
        ["1", "x"],
        "0xdead",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        row[12],
        "NaN",
        ["100000000000000000000000", str(10**400)],
        ["Infinity"],
    ]
    assert isinstance(row[12], str)
    assert "1" in row[12]
    assert "5" in row[12]
    json.dumps(result, allow_nan=False)
    orjson.dumps(result)  # what the HTTP layer writes with


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SELECT 'DROP TABLE x; --' AS s /* ; DELETE */ -- ; UPDATE\n;", "DROP TABLE x; --"),
        ("SELECT $a$ ; DROP TABLE t; $a$", " ; DROP TABLE t; "),
        ("SELECT E'\\';DROP TABLE t;--'", "';DROP TABLE t;--"),  # one string: harmless
        ("SELECT 'a'\n  -- c\n'b;c'", "ab;c"),
        ("SELECT E'a'\n'\\' ; '", "a' ; "),
        ("SELECT /* /* ; */ DROP */ 'x' -- ;", "x"),
        ("SELECT \"note\" FROM t WHERE id = 'b'", "beta"),
    ],
)
async def test_keywords_in_strings_and_comments(reader: Reader, text: str, expected: str) -> None:
    assert (await select(reader, text))["rows"] == [[expected]]


async def test_values_table_and_quoted_keyword_columns(reader: Reader) -> None:
    assert (await select(reader, "VALUES (1, 'a')"))["rows"] == [[1, "a"]]
    assert len((await select(reader, "TABLE t"))["rows"]) == 3
    result = await select(reader, 'SELECT 1 AS "delete", 2 AS "set" WHERE false')
    assert result == {"columns": ["delete", "set"], "rows": [], "truncated": False}


@pytest.mark.parametrize(
    ("total", "cap", "truncated"),
    [
        (250, 100, True),
        (250, 250, False),
        (250, 249, True),
        (0, 0, False),
        (1, 0, True),
        (5000, 3000, True),
        (5000, 5000, False),
    ],
)
async def test_row_cap(reader: Reader, total: int, cap: int, truncated: bool) -> None:
    result = await select(
        reader, "SELECT g FROM generate_series(1, $1::int) g", [total], row_cap=cap
    )
    assert result["rows"] == [[g] for g in range(1, min(total, cap) + 1)]
    assert result["truncated"] is truncated


async def test_an_endless_query_is_cut_at_the_row_cap(reader: Reader) -> None:
    result = await select(
        reader,
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
        row_cap=2000,
    )
    assert len(result["rows"]) == 2000
    assert result["truncated"]


async def test_byte_cap(reader: Reader) -> None:
    result = await select(
        reader, "SELECT repeat('x', 1000) FROM generate_series(1, 100)", max_bytes=10_000
    )
    assert 5 <= len(result["rows"]) < 10
    assert result["truncated"]


# --------------------------------------------------------- errors: clear, no secrets


async def test_postgres_errors_are_refusals_with_positions(reader: Reader) -> None:
    message = await refused(reader, "SELECT id FRM t")
    assert "syntax error" in message
    assert "(at character 15)" in message
    assert 'relation "nope" does not exist' in await refused(reader, "SELECT * FROM nope")
    assert "division by zero" in await refused(
        reader, "SELECT 1 / (g - 1) FROM generate_series(1, 2) g"
    )
    # The transaction is still usable: refusals roll back to a savepoint.
    assert (await select(reader, "SELECT 1"))["rows"] == [[1]]


async def test_timeout_is_a_clear_refusal(reader: Reader) -> None:
    with pytest.raises(SqlRefused) as info:
        await select(reader, "SELECT pg_sleep(100)")
    assert info.value.timed_out
    assert "statement timeout" in info.value.message
    assert "0.5 s" in info.value.message
    with pytest.raises(SqlRefused) as info:
        await select(reader, "SELECT 1 / 0")
    assert not info.value.timed_out


async def test_errors_do_not_leak_credentials(reader: Reader, database_url: str) -> None:
    message = await refused(reader, "SELECT 'postgresql://me:secret@db/x'::int")
    assert "secret" not in message
    assert "me:***@db" in message
    message = await refused(reader, "SELECT 'host=db password=secret'::int")
    assert "secret" not in message
    password = urlsplit(database_url).password
    if password:  # the connection's own password, even where the query shows it
        message = await refused(reader, "SELECT $1::int", [password])
        assert password not in message
    for text, _ in BREAK_OUTS:
        assert database_url not in await refused(reader, text)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ("abc", "`params` must be a list"),
        ({"a": 1}, "`params` must be a list"),
        ([{"a": 1}], "`params[0]` must be a string, number"),
        ([1, [2]], "`params[1]` must be a string, number"),
        (["a\x00b"], "`params[0]` contains a NUL"),
        (["\ud800"], "`params[0]` is not valid Unicode"),
        ([1], "uses $2 but `params` has 1 values"),
        ([1, 2, 3], "`params` has 3 values but the SQL uses only up to $2"),
        (list(range(101)), "at most 100"),
    ],
)
async def test_bad_params(reader: Reader, params: Any, fragment: str) -> None:
    assert fragment in await refused(reader, "SELECT $1::int, $2::int", params)


def test_bad_sql_text() -> None:
    for text, fragment in [
        ("SELECT " + "1," * 50_000 + "1", f"at most {MAX_SQL_LENGTH}"),
        ("SELECT 1\x00; DROP TABLE t", "NUL"),
        ("SELECT '\udc80'", "not valid Unicode"),
        (5, "`sql` must be a string"),
    ]:
        with pytest.raises(SqlRefused) as info:
            check_select(text)  # type: ignore[arg-type]
        assert fragment in info.value.message


# ------------------------------------------------------------ break-out attempts

BREAK_OUTS = [
    ("SELECT 1; DROP TABLE t", "only one statement"),
    ("/* ; */ DELETE FROM t", "starts with DELETE"),
    ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "DELETE is not allowed"),
    ("WITH x AS (INSERT INTO t (id) VALUES ('z') RETURNING *) TABLE x", "INSERT is not allowed"),
    ("SELECT * INTO t2 FROM t", "INTO is not allowed"),
    ("SELECT set_config('statement_timeout', '0', false)", "set_config() is not allowed"),
    ("SELECT pg_catalog.set_config('statement_timeout', '0', false)", "set_config()"),
    ("SELECT \"set_config\"('statement_timeout', '0', false)", "set_config()"),
    (
        "SELECT pg_catalog . \"set_config\" /* x */ ('statement_timeout', '0', false)",
        "set_config()",
    ),
    ("SELECT U&\"\\0073et_config\"('statement_timeout', '0', false)", "Unicode-escaped"),
    ("SELECT current_setting('data_directory')", "current_setting()"),
    ("SELECT query_to_xml('delete from t', true, true, '')", "query_to_xml()"),
    ("SELECT ts_stat('SELECT to_tsvector(pg_read_file(''/etc/passwd''))')", "ts_stat()"),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "pg_terminate_backend()"),
    ("SELECT query FROM pg_stat_activity", "reading pg_stat_activity"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file()"),
    ("SELECT pg_ls_dir('.')", "pg_ls_dir()"),
    ("SELECT lo_import('/etc/passwd')", "lo_import()"),
    ("SELECT * FROM pg_authid", "reading pg_authid"),
    ('SELECT rolpassword FROM pg_catalog."pg_authid"', "reading pg_authid"),
    ("SELECT * FROM pg_stats WHERE tablename = 'pg_authid'", "reading pg_stats"),
    ("SELECT * FROM pg_settings", "reading pg_settings"),
    ("SELECT nextval('s')", "nextval()"),
    ("SELECT * FROM t FOR UPDATE", "locking clauses"),
    ("SELECT * FROM t FOR NO KEY UPDATE NOWAIT", "locking clauses"),
    ("SELECT * FROM t FOR SHARE", "locking clauses"),
    ("COMMIT; DROP TABLE t", "only one statement"),
    ("END; DROP TABLE t", "only one statement"),
    ("ROLLBACK", "starts with ROLLBACK"),
    ("SET ROLE pg_read_server_files", "starts with SET"),
    ("SET statement_timeout = 0", "starts with SET"),
    ("SELECT $a$ ; $a$; DROP TABLE t", "only one statement"),
    ("SELECT $$;$$; DROP TABLE t", "only one statement"),
    ("SELECT '\\';DROP TABLE t;--'", "only one statement"),
    ("SELECT E'\\\\';DROP TABLE t;--'", "only one statement"),
    ("SELECT 'abc", "unterminated quoted string"),
    ("SELECT E'abc\\'", "unterminated quoted string"),
    ("SELECT /* /* */ 1; DROP TABLE t", "unterminated /* comment"),
    ('SELECT "abc', "unterminated quoted identifier"),
    ("SELECT $x$ abc", "unterminated dollar-quoted string"),
    ("", "empty"),
    ("  /* only a comment */ ;", "empty"),
    ("SELECT " + "1," * 50_000 + "1", f"at most {MAX_SQL_LENGTH}"),
    ("SELECT pg_sleep(100)", "statement timeout"),
    ("LOCK TABLE t", "starts with LOCK"),
    ("COPY t TO '/tmp/x'", "starts with COPY"),
    ("CALL p()", "starts with CALL"),
    ("DO $$ BEGIN DROP TABLE t; END $$", "starts with DO"),
    ("PREPARE p AS DELETE FROM t", "starts with PREPARE"),
    ("EXECUTE p", "starts with EXECUTE"),
    ("EXPLAIN ANALYZE DELETE FROM t", "starts with EXPLAIN"),
    ("TRUNCATE t", "starts with TRUNCATE"),
    ("VALUES (1); DROP TABLE t", "only one statement"),
    ("SELECT dblink('dbname=postgres', 'DROP TABLE t')", "dblink()"),
    ("SELECT pg_advisory_lock(1)", "pg_advisory_lock()"),
    ("SELECT txid_current()", "txid_current()"),
    ("SELECT pg_current_xact_id()", "pg_current_xact_id()"),
    ("SELECT pg_notify('c', 'x')", "pg_notify()"),
    ("SELECT 1 \\; DROP TABLE t", "only one statement"),
]


@pytest.mark.parametrize(("text", "fragment"), BREAK_OUTS)
async def test_break_out_is_refused_and_changes_nothing(
    reader: Reader, admin: psycopg.Connection[Any], text: str, fragment: str
) -> None:
    before = snapshot(admin, reader.schema)
    message = await refused(reader, text)
    assert fragment in message
    await assert_unchanged(reader, admin, before)


async def test_after_all_break_outs_the_timeout_still_holds(
    reader: Reader, admin: psycopg.Connection[Any]
) -> None:
    before = snapshot(admin, reader.schema)
    pid = (await session(reader))[0]
    for text, _ in BREAK_OUTS:
        if "pg_sleep" not in text:
            await refused(reader, text)
    # The same pooled connection, its statement timeout still in force.
    assert (await session(reader))[0] == pid
    assert "statement timeout" in await refused(reader, "SELECT pg_sleep(30)")
    await assert_unchanged(reader, admin, before)


# PostgreSQL's and the session check's own guards, with the text check skipped:
# each stops these alone.
UNCHECKED = [
    ("SELECT 1; DROP TABLE t", "cannot insert multiple commands"),
    ("DROP TABLE t", "syntax error"),
    ("COMMIT", "syntax error"),
    ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "data-modifying"),
    ("SELECT * INTO t2 FROM t", "INTO"),
    ("SELECT nextval('s')", "read-only transaction"),
    ("SELECT * FROM t FOR UPDATE", "read-only transaction"),
    ("SELECT query_to_xml('delete from t', true, true, '')", "non-volatile function"),
    ("SELECT lo_import('/etc/hostname')", "read-only transaction"),
    ("SELECT set_config('statement_timeout', '0', false)", "changed the session"),
    ("SELECT set_config('search_path', 'public', false)", "changed the session"),
    ("SELECT pg_advisory_lock(1)", "changed the session"),
    # The error rolls the setting back; the lock outlives it and is released.
    ("SELECT set_config('statement_timeout', '0', false), 1 / 0", "division by zero"),
    (
        "SELECT pg_advisory_lock(7), 1 / (g - 1) FROM generate_series(1, 2) g",
        "changed the session",
    ),
]


@pytest.mark.parametrize(("text", "fragment"), UNCHECKED)
async def test_postgres_guards_hold_without_the_text_check(
    reader: Reader, admin: psycopg.Connection[Any], text: str, fragment: str
) -> None:
    before = snapshot(admin, reader.schema)
    with pytest.raises(SqlRefused) as info:
        await reader.read(lambda conn: _execute(conn, text, [], row_cap=10, max_bytes=10**6))
    assert fragment in info.value.message
    await assert_unchanged(reader, admin, before)


async def test_a_tiny_timeout_set_by_the_query_does_not_stay(
    reader: Reader, admin: psycopg.Connection[Any]
) -> None:
    before = snapshot(admin, reader.schema)
    text = "SELECT set_config('statement_timeout', '1', false)"
    with pytest.raises(SqlRefused) as info:
        await reader.read(lambda conn: _execute(conn, text, [], row_cap=10, max_bytes=10**6))
    # Which statement the 1 ms timeout cancels first varies; either way it is undone.
    assert "changed the session" in info.value.message or info.value.timed_out
    await assert_unchanged(reader, admin, before)


# ------------------------------------------------------------------- properties

PIECES = [
    "SELECT", "select", "WITH", "x", "AS", "(", ")", ",", "*", "FROM", "t", "WHERE", "id", "=",
    "1", "$1", ";", "'a'", "'it''s'", "E'\\''", "E'\\\\'", "'", '"', '"q"', '"set_config"',
    "$$", "$$;$$", "$a$ ; DROP TABLE t; $a$", "$a$", "/*", "*/", "/* ; DELETE */",
    "/* /* ; */ */", "--", "-- ; DROP TABLE t\n", "\n", "DROP", "TABLE", "DELETE", "INSERT",
    "INTO", "UPDATE", "SET", "FOR", "COMMIT", "END", "UNION", "VALUES", "count(*)", "LIMIT 1",
    "pg_sleep(0)", "set_config('statement_timeout', '0', false)", "pg_advisory_lock(1)",
    "nextval('s')", "U&'a'", 'U&"a"', "B'1'", "X'1F'", "N'n'", "'a'\n'b'", "e'", "\\", "::text",
    "$1$", "pg_catalog.", "query_to_xml('delete from t', true, true, '')",
    "pg_read_file('/etc/hostname')", "lo_import('/etc/hostname')", "note LIKE 'a%'", "%",
]  # fmt: skip
# Values in the quoting styles, some holding ";" and keywords: lists of them
# make queries the check accepts, so PostgreSQL gets to disagree with it.
LITERALS = [
    "'a'", "'it''s'", "E'\\''", "E'\\\\'", "e'\\n;'", "$$;$$", "$a$ ; DROP TABLE t; $a$",
    "$a$$b$$a$", "'a'\n'b'", "'a' -- ;\n'b'", "E'x'\n'\\';'", "U&'a'", "B'1'", "X'1F'",
    "N'n'", "1", "$1", "'DROP TABLE t; --'", "/* ; */ 1", "/* /* ; */ */ 2", "3 -- ;\n",
    "count(*)", "pg_sleep(0)", "'x' || $$y$$", '"id"', "id", "note LIKE 'a%'", "amount % 2",
    "(SELECT 1)", "'\\'", "1::text",
]  # fmt: skip
SELECT_LISTS = st.lists(st.sampled_from(LITERALS), min_size=1, max_size=6).map(
    lambda values: ("SELECT " + ", ".join(values) + " FROM t", len(values))
)
SOUP = st.lists(
    st.tuples(st.sampled_from(PIECES), st.sampled_from(["", " ", "\n"])), max_size=12
).map(lambda parts: "".join(a + b for a, b in parts))


@settings(max_examples=400, deadline=None)
@given(text=SOUP | st.text(max_size=60))
def test_check_select_refuses_or_accepts_nothing_else(text: str) -> None:
    message = "accepted"
    try:
        check_select(text)
    except SqlRefused as exc:
        message = exc.message
    assert message


# What PostgreSQL's guards refuse, the text check should have refused first.
_MISSED = ("multiple commands", "read-only", "data-modifying", "changed the session", "... INTO")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=SELECT_LISTS | SOUP.map(lambda soup: ("SELECT " + soup, None)))
async def test_accepted_soup_changes_nothing(
    reader: Reader, admin: psycopg.Connection[Any], case: tuple[str, int | None]
) -> None:
    text, values = case
    try:
        check_select(text)
    except SqlRefused:
        event("refused by the check")
        return
    event("accepted by the check")
    before = snapshot(admin, reader.schema)
    params = ["1"] if "$1" in text else []
    message = ""
    try:
        result = await select(reader, text, params)
        json.dumps(result, allow_nan=False)
        orjson.dumps(result)
        # PostgreSQL split the values where the check did.
        assert values is None or len(result["columns"]) == values
    except SqlRefused as exc:
        message = exc.message
    event("refused by PostgreSQL" if message else "ran")
    assert not any(missed in message for missed in _MISSED), message
    await assert_unchanged(reader, admin, before)


NOTES = st.text(alphabet="ab%_x", max_size=6)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(st.none() | st.integers(0, 2**256 - 1), st.none() | st.binary(max_size=6), NOTES),
        max_size=30,
    ),
    floor=st.integers(0, 2**256),
    prefix=st.text(alphabet="ab", max_size=2),
    cap=st.integers(0, 35),
)
async def test_matches_a_python_model(
    reader: Reader,
    admin: psycopg.Connection[Any],
    rows: list[tuple[int | None, bytes | None, str]],
    floor: int,
    prefix: str,
    cap: int,
) -> None:
    m = sql.SQL("{}.m").format(sql.Identifier(reader.schema))
    admin.execute(sql.SQL("TRUNCATE {}").format(m))
    stored = [(f"{i:03d}", amount, data, note) for i, (amount, data, note) in enumerate(rows)]
    if stored:
        admin.cursor().executemany(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(m), stored
        )
    result = await select(
        reader,
        "SELECT id, amount, data, note FROM m"
        " WHERE (amount >= $1 OR amount IS NULL) AND note LIKE $2 ORDER BY id",
        [floor, prefix + "%"],
        row_cap=cap,
    )
    expected = [
        [
            i,
            None if amount is None else str(amount),
            None if data is None else "0x" + data.hex(),
            note,
        ]
        for i, amount, data, note in stored
        if (amount is None or amount >= floor) and note.startswith(prefix)
    ]
    assert result == {
        "columns": ["id", "amount", "data", "note"],
        "rows": expected[:cap],
        "truncated": len(expected) > cap,
    }
