"""Which database errors are retried: one case per class, from a real server where it can be made."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, cast

import psycopg
import pytest
import trio
import trio.testing
from psycopg import sql

from indexer import DatabaseError
from indexer.persist import RetryPolicy, Session, is_transient, open_report_query, open_session

if TYPE_CHECKING:
    from collections.abc import Callable


def _raised(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except psycopg.Error as exc:
        return exc
    raise AssertionError("no error")


def test_connection_terminated_by_an_administrator_is_transient(database_url: str) -> None:
    conn = psycopg.connect(database_url, autocommit=True)
    pid = conn.info.backend_pid
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    exc = _raised(lambda: conn.execute("SELECT 1"))
    assert isinstance(exc, psycopg.OperationalError)
    assert is_transient(exc)
    # ... and so is the next call on the dead connection.
    assert is_transient(_raised(lambda: conn.execute("SELECT 1")))
    conn.close()


def test_serialization_failure_is_transient(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        admin.execute(
            sql.SQL("CREATE TABLE {}.t (id int PRIMARY KEY, v int)").format(sql.Identifier(schema))
        )
        admin.execute(sql.SQL("INSERT INTO {}.t VALUES (1, 0)").format(sql.Identifier(schema)))
    table = sql.SQL("{}.t").format(sql.Identifier(schema))
    with psycopg.connect(database_url) as a, psycopg.connect(database_url) as b:
        for conn in (a, b):
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            conn.execute(sql.SQL("SELECT v FROM {}").format(table))
        a.execute(sql.SQL("UPDATE {} SET v = 1").format(table))
        a.commit()
        exc = _raised(lambda: b.execute(sql.SQL("UPDATE {} SET v = 2").format(table)))
    assert isinstance(exc, psycopg.errors.SerializationFailure)
    assert is_transient(exc)


def test_too_many_connections_is_transient(database_url: str) -> None:
    role = f"indexer_limited_{os.getpid()}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 0").format(sql.Identifier(role))
        )
        try:
            exc = _raised(lambda: psycopg.connect(database_url, user=role))
        finally:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert "too many connections" in str(exc)
    assert is_transient(exc)


def test_a_write_refused_as_read_only_is_transient(database_url: str) -> None:
    """What a demoted primary answers after a failover, until the client reconnects."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = on")
        exc = _raised(lambda: conn.execute("CREATE TEMP TABLE x (a int)"))
    assert isinstance(exc, psycopg.errors.ReadOnlySqlTransaction)
    assert is_transient(exc)


@pytest.mark.parametrize(
    ("sqlstate", "name"),
    [("57P03", "CannotConnectNow"), ("57P01", "AdminShutdown"), ("40P01", "DeadlockDetected")],
)
def test_server_states_hard_to_provoke_are_transient(sqlstate: str, name: str) -> None:
    """ "The database system is starting up" and the like, classified by their SQLSTATE's class."""
    cls = psycopg.errors.lookup(sqlstate)
    assert cls.__name__ == name
    assert is_transient(cls("simulated"))


def test_permanent_errors_are_not_retried(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in (
            "SELECT * FROM no_such_table_here",  # undefined table
            "SELEC 1",  # syntax error
            "SELECT 1/0",  # data error
            "SELECT 'x'::int",  # invalid text representation
        ):
            exc = _raised(lambda s=statement: conn.execute(s))  # type: ignore[misc]
            assert not is_transient(exc), statement
        conn.execute("CREATE TEMP TABLE u (id int PRIMARY KEY)")
        conn.execute("INSERT INTO u VALUES (1)")
        exc = _raised(lambda: conn.execute("INSERT INTO u VALUES (1)"))
        assert isinstance(exc, psycopg.errors.UniqueViolation)
        assert not is_transient(exc)


def test_opening_a_session_retries_a_drop_during_setup_but_not_an_unreachable_server() -> None:
    """A connection lost in its first statements (the run lock, SET) is opened again."""
    calls: list[str] = []
    opened = cast("Session", object())

    def flaky() -> Session:
        calls.append("open")
        if len(calls) < 3:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return opened

    def unreachable() -> Session:
        calls.append("unreachable")
        raise DatabaseError("cannot connect to PostgreSQL at postgresql://***@nowhere")

    async def main() -> None:
        policy = RetryPolicy(seconds=60, rng=random.Random(0))
        assert await open_session(flaky, policy) is opened
        with pytest.raises(DatabaseError, match="cannot connect"):
            await open_session(unreachable, policy)
        with pytest.raises(DatabaseError, match="giving up"):
            await open_session(
                lambda: (_ for _ in ()).throw(psycopg.OperationalError("down")),
                RetryPolicy(seconds=5, rng=random.Random(0)),
            )

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert calls == ["open", "open", "open", "unreachable"]


def test_a_report_query_survives_its_connection_being_killed(database_url: str) -> None:
    with open_report_query(database_url, "public") as query:
        ((pid,),) = query("SELECT pg_backend_pid()")
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        ((other, two),) = query("SELECT pg_backend_pid(), 1 + %s", 1)
    assert other != pid
    assert two == 2
    with (
        pytest.raises(psycopg.errors.UndefinedTable),
        open_report_query(database_url, "public") as query,
    ):
        query("SELECT * FROM no_such_table_here")  # permanent: raised at once
