"""A list field is one statement: every selection of its parts, answered as part by part.

A page, its ``totalCount`` and the ``EXISTS`` behind a cursor's far side are
computed by one statement (one snapshot, one round trip).  Hypothesis picks
the parts a request selects (directly or through fragments), the order, the
filter, the limit and the cursor; the answer must equal, part by part, the
answers of requests selecting each part alone (each a different statement
shape: the plain page, the bare count, the bare ``EXISTS``), and the
combined request must execute at most one statement.  The requests run as
the server runs a one-root-field request: autocommit, no transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.api._graphql import GraphQLService, Prepared

from .test_graphql_schema import CountingCursor, conn, service

if TYPE_CHECKING:
    import psycopg

__all__ = ["conn", "service"]  # fixtures, imported to be found

PARTS = {
    "items": "items { id amount rank }",
    "totalCount": "totalCount",
    "hasNextPage": "pageInfo { hasNextPage }",
    "hasPreviousPage": "pageInfo { hasPreviousPage }",
    "startCursor": "pageInfo { startCursor }",
    "endCursor": "pageInfo { endCursor }",
}


def _run(
    service: GraphQLService, conn: psycopg.Connection[Any], query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    prepared = service.prepare(query, variables, None)
    assert isinstance(prepared, Prepared), prepared
    assert prepared.single
    conn.autocommit = True
    try:
        got = service.execute(conn, prepared)
    finally:
        conn.autocommit = False
    assert "errors" not in got, got
    return got["data"]["holdings"]  # type: ignore[no-any-return]


def _flat(page: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in page.items() if k != "pageInfo"}
    out.update(page.get("pageInfo", {}))
    return out


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(st.sampled_from(sorted(PARTS)), min_size=1, unique=True),
    via_fragment=st.booleans(),
    order=st.sampled_from(["id", "amount", "rank"]),
    direction=st.sampled_from(["asc", "desc"]),
    owner=st.sampled_from([None, "alice", "bob"]),
    limit=st.integers(0, 12),
    side=st.sampled_from([None, "after", "before"]),
    skip=st.integers(0, 15),
)
def test_a_list_field_is_one_statement_whatever_it_selects(
    service: GraphQLService,
    conn: psycopg.Connection[Any],
    parts: list[str],
    via_fragment: bool,
    order: str,
    direction: str,
    owner: str | None,
    limit: int,
    side: str | None,
    skip: int,
) -> None:
    where = f'where: {{owner: "{owner}"}}, ' if owner else ""
    args = f'{where}orderBy: "{order}", orderDirection: "{direction}"'
    variables: dict[str, Any] = {}
    if side is not None:
        # A cursor of the same order: the row at position `skip` (or the last).
        first = _run(
            service,
            conn,
            f"{{ holdings({args}, limit: {skip + 1}) {{ pageInfo {{ endCursor }} }} }}",
            {},
        )
        cursor = first["pageInfo"]["endCursor"]
        if cursor is None:
            side = None
        variables = {"c": cursor} if side else {}
    cursor_arg = f", {side}: $c" if side else ""
    head = "query($c: String) " if side else ""
    body = " ".join(PARTS[p] for p in parts)
    if via_fragment:
        query = (
            f"{head}{{ holdings({args}, limit: {limit}{cursor_arg}) {{ ...P }} }} "
            f"fragment P on HoldingPage {{ {body} }}"
        )
    else:
        query = f"{head}{{ holdings({args}, limit: {limit}{cursor_arg}) {{ {body} }} }}"
    CountingCursor.statements.clear()
    combined = _flat(_run(service, conn, query, variables))
    assert len(CountingCursor.statements) <= 1, CountingCursor.statements
    alone: dict[str, Any] = {}
    for p in parts:
        q = f"{head}{{ holdings({args}, limit: {limit}{cursor_arg}) {{ {PARTS[p]} }} }}"
        alone.update(_flat(_run(service, conn, q, variables)))
    assert combined == alone


def test_which_operations_run_one_statement(service: GraphQLService) -> None:
    def single(query: str) -> bool:
        prepared = service.prepare(query, None, None)
        assert isinstance(prepared, Prepared), prepared
        return prepared.single

    assert single("{ holdings { totalCount items { id } } }")
    assert single('{ holding(id: "h01") { id } }')
    assert single("{ __typename h: holdings { totalCount } }")
    assert single("{ _meta { chains { block } } }")
    assert single("{ __schema { queryType { name } } }")
    # Two root fields need one snapshot for both: a transaction.
    assert not single("{ a: holdings { totalCount } b: holdings { totalCount } }")
    assert not single('{ holdings { totalCount } holding(id: "h01") { id } }')
    # Fragments at the root are not looked into.
    assert not single("{ ...Q } fragment Q on Query { holdings { totalCount } }")
