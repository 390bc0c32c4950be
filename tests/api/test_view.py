"""Replacing a running API's entities (``indexer dev --serve``): one server, a new schema.

A real Hypercorn server on a free loopback port over a real schema.  The
request in flight during a swap is held by a table lock taken from another
connection, and seen waiting in ``pg_stat_activity``: no sleeps.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest
import trio
from psycopg import sql

from indexer import Entity
from indexer.api import ApiLimits, ApiOptions, ApiView, serve_view
from indexer.persist import create_schema
from indexer.store import entity_spec

# The same entity before and after an edit that adds a field: the same
# class name, so the same table and the same GraphQL fields.


class Before:
    class Coin(Entity):
        id: str
        amount: int


class After:
    class Coin(Entity):
        id: str
        amount: int
        note: str | None = None


BEFORE = [entity_spec(Before.Coin)]
AFTER = [entity_spec(After.Coin)]


async def _serve(
    nursery: trio.Nursery, database_url: str, schema: str, view: ApiView
) -> httpx.AsyncClient:
    binds = await nursery.start(serve_view, database_url, schema, view, ApiOptions(port=0))
    return httpx.AsyncClient(base_url=binds[0], timeout=30)


async def _post(client: httpx.AsyncClient, query: str) -> tuple[int, dict[str, Any]]:
    r = await client.post("/graphql", json={"query": query})
    body: dict[str, Any] = r.json()
    return r.status_code, body


def _admin(database_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(database_url, autocommit=True)


def _wait_for_a_blocked_api_query(database_url: str) -> None:
    """Until an API connection waits on a lock (the one the test holds)."""
    deadline = time.monotonic() + 30  # a guard only: it takes a few ms
    with _admin(database_url) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'indexer-api'"
                " AND wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            time.sleep(0.05)
    pytest.fail("the API request never reached the locked table")


async def test_a_replaced_view_serves_the_new_schema_on_the_same_server(
    database_url: str, schema: str
) -> None:
    with _admin(database_url) as conn:
        create_schema(conn, schema, BEFORE, {})
        conn.execute(
            sql.SQL("INSERT INTO {} (id, amount) VALUES ('a', 5)").format(
                sql.Identifier(schema, "coin")
            )
        )
    view = ApiView(ApiLimits(), BEFORE, [])
    async with trio.open_nursery() as nursery:
        async with await _serve(nursery, database_url, schema, view) as client:
            assert await _post(client, '{ coin(id: "a") { amount } }') == (
                200,
                {"data": {"coin": {"amount": "5"}}},
            )
            status, body = await _post(client, '{ coin(id: "a") { note } }')
            assert status == 400
            assert "note" in body["errors"][0]["message"]

            view.replace(AFTER, [])
            # The entities have the field, the table not yet: every query of
            # the entity (its rows are read whole) is a GraphQL error saying
            # so, with 503 (it passes), never a 500.
            for query in (
                '{ coin(id: "a") { note } }',
                '{ coin(id: "a") { amount } }',
                "{ coins { items { id note } } }",
            ):
                status, body = await _post(client, query)
                assert status == 503, body
                assert "other entity definitions" in body["errors"][0]["message"]
                assert "note" in body["errors"][0]["extensions"]["detail"]

            # The run re-creates the table: the new field answers.
            with _admin(database_url) as conn:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN note text").format(
                        sql.Identifier(schema, "coin")
                    )
                )
                conn.execute(
                    sql.SQL("UPDATE {} SET note = 'new'").format(sql.Identifier(schema, "coin"))
                )
            assert await _post(client, '{ coin(id: "a") { note amount } }') == (
                200,
                {"data": {"coin": {"note": "new", "amount": "5"}}},
            )
            assert (await client.get("/health")).status_code == 200
        nursery.cancel_scope.cancel()


async def test_a_request_in_flight_finishes_on_the_schema_it_started_with(
    database_url: str, schema: str
) -> None:
    with _admin(database_url) as conn:
        create_schema(conn, schema, AFTER, {})
        conn.execute(
            sql.SQL("INSERT INTO {} (id, amount, note) VALUES ('a', 5, 'n')").format(
                sql.Identifier(schema, "coin")
            )
        )
    view = ApiView(ApiLimits(), AFTER, [])
    answers: list[tuple[int, dict[str, Any]]] = []
    answered = trio.Event()
    async with trio.open_nursery() as nursery:
        async with await _serve(nursery, database_url, schema, view) as client:
            # A list query (not the by-id path) so that it runs the executor
            # with the schema it was prepared on.
            query = "{ coins { items { id note } } }"
            assert (await _post(client, query))[0] == 200  # parsed and cached
            with _admin(database_url) as locker, locker.transaction():
                locker.execute(
                    sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                        sql.Identifier(schema, "coin")
                    )
                )

                async def in_flight() -> None:
                    answers.append(await _post(client, query))
                    answered.set()

                nursery.start_soon(in_flight)
                await trio.to_thread.run_sync(_wait_for_a_blocked_api_query, database_url)
                # The edit removes the field while the request waits.
                view.replace(BEFORE, [])
            with trio.fail_after(30):
                await answered.wait()
            assert answers == [(200, {"data": {"coins": {"items": [{"id": "a", "note": "n"}]}}})]
            status, body = await _post(client, query)
            assert status == 400  # a new request: the new schema has no `note`
            assert "note" in body["errors"][0]["message"]
        nursery.cancel_scope.cancel()


async def test_a_view_without_entities_yet_answers_graphql_with_the_reason(
    database_url: str, schema: str
) -> None:
    view = ApiView(ApiLimits(), None, [], reason="the handlers could not be loaded (SyntaxError)")
    async with trio.open_nursery() as nursery:
        async with await _serve(nursery, database_url, schema, view) as client:
            assert (await client.get("/health")).status_code == 200
            assert await _post(client, "{ coins { totalCount } }") == (
                503,
                {"errors": [{"message": "the handlers could not be loaded (SyntaxError)"}]},
            )
            with _admin(database_url) as conn:
                create_schema(conn, schema, BEFORE, {})
            view.replace(BEFORE, [])
            assert await _post(client, "{ coins { totalCount } }") == (
                200,
                {"data": {"coins": {"totalCount": 0}}},
            )
        nursery.cancel_scope.cancel()
