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
