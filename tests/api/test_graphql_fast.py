"""The by-id direct path answers exactly as graphql-core's executor, or steps aside."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from indexer import Entity
from indexer.api._graphql import GraphQLService, Prepared
from indexer.persist import create_schema, numeric_as_int
from indexer.store import entity_spec

if TYPE_CHECKING:
    from collections.abc import Iterator


class Coin(Entity):
    id: str
    amount: int
    ratio: float
    blob: bytes
    flag: bool
    note: str | None = None


SERVICE = GraphQLService([entity_spec(Coin)])
FIELDS = ("id", "amount", "ratio", "blob", "flag", "note")


@pytest.fixture
def conn(database_url: str, schema: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as admin:
        create_schema(admin, schema, [entity_spec(Coin)], {})
        admin.execute(
            sql.SQL(
                "INSERT INTO {}.coin VALUES ('a', 10^70, 0.5, '\\x00ff', true, NULL),"
                " ('b', -3, 'Infinity', '', false, 'n'), ('c\\u00e9', 0, -0.0, '\\x01', true, '')"
            ).format(sql.Identifier(schema))
        )
    with psycopg.connect(database_url) as c:
        numeric_as_int(c)
        c.execute("SELECT set_config('search_path', %s, false)", (schema,))
        c.commit()
        yield c


def _both(
    c: psycopg.Connection[Any], query: str, variables: dict[str, Any] | None
) -> tuple[Any, Any, bool]:
    prepared = SERVICE.prepare(query, variables, None)
    assert isinstance(prepared, Prepared)
    slow = Prepared(prepared.document, prepared.variables, prepared.operation_name, None)
    with c.transaction():
        fast_answer = SERVICE.execute(c, prepared)
    with c.transaction():
        slow_answer = SERVICE.execute(c, slow)
    return fast_answer, slow_answer, prepared.by_id is not None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=st.lists(st.sampled_from(FIELDS), min_size=1, max_size=8),
    row_id=st.sampled_from(["a", "b", "cé", "missing", "", "x\u0000y"]),
    as_variable=st.booleans(),
    typename=st.booleans(),
)
def test_the_direct_path_equals_the_executor(
    conn: psycopg.Connection[Any], fields: list[str], row_id: str, as_variable: bool, typename: bool
) -> None:
    selection = " ".join(fields + (["__typename"] if typename else []))
    if as_variable:
        query = f"query($id: String!) {{ coin(id: $id) {{ {selection} }} }}"
        variables: dict[str, Any] | None = {"id": row_id}
    else:
        literal = row_id.replace("\\", "\\\\").replace('"', '\\"').replace("\u0000", "\\u0000")
        query = f'{{ coin(id: "{literal}") {{ {selection} }} }}'
        variables = None
    fast, slow, planned = _both(conn, query, variables)
    assert fast == slow
    # __typename is not a plain field: that shape goes to the executor.
    assert planned == (not typename)


def test_values_a_scalar_refuses_and_other_shapes_go_to_the_executor(
    conn: psycopg.Connection[Any],
) -> None:
    # 'b' has ratio = Infinity: Float cannot represent it, the executor reports the error.
    fast, slow, planned = _both(conn, '{ coin(id: "b") { ratio } }', None)
    assert planned
    assert fast == slow
    assert "errors" in fast
    for query, variables in (
        ('{ c: coin(id: "a") { id } }', None),  # an alias
        ('{ coin(id: "a") { id } coins { totalCount } }', None),  # two root fields
        ('query($id: String! = "a") { coin(id: $id) { id } }', {}),  # a default value
        ('{ coin(id: "a") { ...F } } fragment F on Coin { id }', None),  # a fragment
        ('{ coin(id: "a") { id @include(if: true) } }', None),  # a directive
    ):
        prepared = SERVICE.prepare(query, variables, None)
        assert isinstance(prepared, Prepared)
        assert prepared.by_id is None, query
    # A variable of the wrong type: graphql-core's coercion error, from the executor.
    fast, slow, _planned = _both(conn, "query($id: String!) { coin(id: $id) { id } }", {"id": 5})
    assert fast == slow
    assert "errors" in fast


def _both_pages(
    c: psycopg.Connection[Any], query: str, variables: dict[str, Any] | None
) -> tuple[Any, Any, bool]:
    prepared = SERVICE.prepare(query, variables, None)
    assert isinstance(prepared, Prepared)
    slow = Prepared(prepared.document, prepared.variables, prepared.operation_name)
    with c.transaction():
        fast_answer = SERVICE.execute(c, prepared)
    with c.transaction():
        slow_answer = SERVICE.execute(c, slow)
    return fast_answer, slow_answer, prepared.page is not None


PAGE_INFO = ("hasNextPage", "hasPreviousPage", "startCursor", "endCursor")


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.none() | st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True),
    count=st.booleans(),
    info=st.lists(st.sampled_from(PAGE_INFO), max_size=4, unique=True),
    order=st.sampled_from(["id", "amount", "note", "flag"]),
    direction=st.sampled_from(["asc", "desc"]),
    where=st.sampled_from(["", "where: {flag: true}", 'where: {amount_gt: "-5", note_not: "n"}']),
    limit=st.sampled_from([None, 0, 1, 2, 5, 5000]),
    side=st.sampled_from([None, "after", "before"]),
    as_variables=st.booleans(),
    extra=st.sampled_from([None, "alias", "typename", "fragment", "twice"]),
)
def test_the_direct_page_path_equals_the_executor(
    conn: psycopg.Connection[Any],
    items: list[str] | None,
    count: bool,
    info: list[str],
    order: str,
    direction: str,
    where: str,
    limit: int | None,
    side: str | None,
    as_variables: bool,
    extra: str | None,
) -> None:
    parts = []
    if items is not None:
        parts.append("items { " + " ".join(items) + " }")
    if count:
        parts.append("totalCount")
    if info:
        parts.append("pageInfo { " + " ".join(info) + " }")
    if not parts:
        parts.append("totalCount")
    args = [where] if where else []
    variables: dict[str, Any] = {}
    defs: list[str] = []
    if as_variables:
        defs += ["$o: String", "$d: String", "$l: Int"]
        args += ["orderBy: $o", "orderDirection: $d", "limit: $l"]
        variables.update(o=order, d=direction, l=limit)
    else:
        args += [f'orderBy: "{order}"', f'orderDirection: "{direction}"']
        if limit is not None:
            args.append(f"limit: {limit}")
    if side is not None:
        first = f'{{ coins(orderBy: "{order}", orderDirection: "{direction}", limit: 1) {{ pageInfo {{ endCursor }} }} }}'
        prepared = SERVICE.prepare(first, None, None)
        assert isinstance(prepared, Prepared)
        with conn.transaction():
            cursor = SERVICE.execute(conn, prepared)["data"]["coins"]["pageInfo"]["endCursor"]
        defs.append("$c: String")
        args.append(f"{side}: $c")
        variables["c"] = cursor
    body = " ".join(parts)
    root = "coins"
    if extra == "alias":
        root = "x: coins"
    elif extra == "typename":
        body += " __typename"
    elif extra == "fragment":
        body += " ...F"
    repeated = extra == "twice" and "totalCount" in body
    if extra == "twice":
        body += " totalCount"
    head = f"query({', '.join(defs)}) " if defs else ""
    query = f"{head}{{ {root}({', '.join(args)}) {{ {body} }} }}"
    if extra == "fragment":
        query += " fragment F on CoinPage { totalCount }"
    fast, slow, planned = _both_pages(conn, query, variables or None)
    assert fast == slow
    # Aliases, __typename, fragments and a field selected twice go to the executor.
    assert planned == (extra is None or (extra == "twice" and not repeated))
