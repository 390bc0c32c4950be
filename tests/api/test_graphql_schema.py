"""The GraphQL schema and service: names, scalars, argument errors, limits, statement counts.

Against a real PostgreSQL: tables from ``create_schema``, plain INSERTs, and
a connection set up as :class:`~indexer.api.Reader` sets up its own.  The
statement count comes from a cursor class that counts ``execute`` calls of
our own code (psycopg's ``cursor_factory``), not from a mock.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

import psycopg
import pytest
from graphql import print_schema
from psycopg import sql

from indexer import ConfigError, Entity, Index
from indexer.api import Reader
from indexer.api._graphql import GraphQLService, Prepared
from indexer.persist import create_schema, numeric_as_int, table_ident
from indexer.store import entity_spec

if TYPE_CHECKING:
    from collections.abc import Iterator


class Holding(Entity):
    id: str
    owner: Annotated[str, Index]
    amount: int
    active: bool
    ratio: float
    data: bytes
    note: str | None = None
    rank: int | None = None


SPECS = [entity_spec(Holding)]
BIG = 2**70 + 3


class CountingCursor(psycopg.Cursor[Any]):
    """Counts the statements our code executes (conn.execute goes through a cursor too)."""

    statements: ClassVar[list[str]] = []

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Self:
        CountingCursor.statements.append(str(query))
        super().execute(query, *args, **kwargs)
        return self


def _rows() -> list[tuple[Any, ...]]:
    return [
        (
            f"h{i:02d}",
            "alice" if i % 2 else "bob",
            BIG if i == 7 else i - 5,
            i % 3 == 0,
            i / 4,
            bytes([i, 0xAB]),
            None if i % 4 else f"n%_{i}",
            None if i % 5 else i,
        )
        for i in range(20)
    ]


@pytest.fixture
def conn(database_url: str, schema: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as setup:
        create_schema(setup, schema, SPECS, chains={})
        cols = sql.SQL(", ").join(sql.Identifier(f.name) for f in SPECS[0].fields)
        marks = sql.SQL(", ").join(sql.Placeholder() * len(SPECS[0].fields))
        insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            table_ident(schema, "holding"), cols, marks
        )
        with setup.cursor() as cur:
            cur.executemany(insert, _rows())
        setup.execute(
            sql.SQL(
                "INSERT INTO {} (chain_id, start_block, progress_block, events_processed)"
                " VALUES (1, 0, 100, 7), (11297108109, 5, 3000000000, 0)"
            ).format(table_ident(schema, "_indexer_chains"))
        )
    with psycopg.connect(database_url, cursor_factory=CountingCursor) as c:
        # As Reader sets its connections up: ints as int, the project schema first.
        numeric_as_int(c)
        c.execute("SELECT set_config('search_path', %s, false)", (schema,))
        c.commit()
        c.read_only = True
        yield c


@pytest.fixture
def service() -> GraphQLService:
    return GraphQLService(SPECS)


def run(
    service: GraphQLService,
    conn: psycopg.Connection[Any],
    query: str,
    variables: dict[str, Any] | None = None,
    operation_name: str | None = None,
) -> dict[str, Any]:
    prepared = service.prepare(query, variables, operation_name)
    if not isinstance(prepared, Prepared):
        return prepared
    with conn.transaction():
        return service.execute(conn, prepared)


def error_text(response: dict[str, Any]) -> str:
    assert response.get("errors"), response
    return " | ".join(e["message"] for e in response["errors"])


def test_sdl_names_and_types() -> None:
    sdl = print_schema(GraphQLService(SPECS).schema)
    lines = sdl.splitlines()
    for line in [
        "type Query {",
        "  holding(id: String!): Holding",
        "  holdings(where: HoldingFilter, orderBy: String, orderDirection: String, limit: Int,"
        " after: String, before: String): HoldingPage!",
        "  _meta: _Meta!",
        "scalar BigInt",
        "scalar Bytes",
        "type Holding {",
        "  id: String!",
        "  owner: String!",
        "  amount: BigInt!",
        "  active: Boolean!",
        "  ratio: Float!",
        "  data: Bytes!",
        "  note: String",
        "  rank: BigInt",
        "input HoldingFilter {",
        "  amount: BigInt",
        "  amount_not: BigInt",
        "  amount_in: [BigInt!]",
        "  amount_not_in: [BigInt!]",
        "  amount_gt: BigInt",
        "  amount_lte: BigInt",
        "  rank_in: [BigInt]",
        "  note_not_in: [String]",
        "  owner_contains: String",
        "  owner_starts_with: String",
        "  owner_ends_with: String",
        "  data_gte: Bytes",
        "  ratio_lt: Float",
        "  active_in: [Boolean!]",
        "  AND: [HoldingFilter!]",
        "  OR: [HoldingFilter!]",
        "  chainId: BigInt!",
        "  block: BigInt!",
        "  chains: [_ChainMeta!]!",
    ]:
        assert line in lines, line
    assert (
        "type HoldingPage {\n  items: [Holding!]!\n  pageInfo: PageInfo!\n  totalCount: Int!\n}"
        in sdl
    )
    assert (
        "type PageInfo {\n  hasNextPage: Boolean!\n  hasPreviousPage: Boolean!\n"
        "  startCursor: String\n  endCursor: String\n}" in sdl
    )
    for absent in ("active_gt", "amount_contains", "data_starts_with", "Mutation", "Subscription"):
        assert absent not in sdl


def test_clashing_names_are_config_errors() -> None:
    class Clash(Entity):
        id: str
        a: int
        a_not: int

    class PageInfo(Entity):
        id: str

    class Thing(Entity):
        id: str

    class Things(Entity):
        id: str

    with pytest.raises(ConfigError, match="'a_not'"):
        GraphQLService([entity_spec(Clash)])
    with pytest.raises(ConfigError, match="PageInfo"):
        GraphQLService([entity_spec(PageInfo)])
    with pytest.raises(ConfigError, match="'things'"):
        GraphQLService([entity_spec(Thing), entity_spec(Things)])


def test_by_id_and_scalars_out(service: GraphQLService, conn: psycopg.Connection[Any]) -> None:
    q = "query($id: String!) { holding(id: $id) { id owner amount active ratio data note rank } }"
    got = run(service, conn, q, {"id": "h07"})
    assert got == {
        "data": {
            "holding": {
                "id": "h07",
                "owner": "alice",
                "amount": str(BIG),
                "active": False,
                "ratio": 1.75,
                "data": "0x07ab",
                "note": None,
                "rank": None,
            }
        }
    }
    assert run(service, conn, q, {"id": "nope"}) == {"data": {"holding": None}}
    assert "NUL" in error_text(run(service, conn, q, {"id": "a\x00"}))


def test_bigint_inputs(service: GraphQLService, conn: psycopg.Connection[Any]) -> None:
    q = "query($v: BigInt) { holdings(where: {amount_gte: $v}) { items { id amount } } }"
    as_text = run(service, conn, q, {"v": str(BIG)})
    assert as_text == {"data": {"holdings": {"items": [{"id": "h07", "amount": str(BIG)}]}}}
    assert run(service, conn, q, {"v": BIG}) == as_text
    assert run(service, conn, q, {"v": "-5"})["data"]["holdings"]["items"][0] == {
        "id": "h00",
        "amount": "-5",
    }
    for bad in ("1.5", "abc", 1.5, True, "1" * 79):
        response = run(service, conn, q, {"v": bad})
        assert response.get("data") is None
        assert "$v" in error_text(response), bad
    literal = "{ holdings(where: {amount: %s}) { items { id } } }"
    assert run(service, conn, literal % f'"{BIG}"')["data"]["holdings"]["items"] == [{"id": "h07"}]
    assert run(service, conn, literal % BIG)["data"]["holdings"]["items"] == [{"id": "h07"}]
    for bad_literal in ('"1.5"', '"abc"', "1.5", "true"):
        text = error_text(run(service, conn, literal % bad_literal))
        assert "where.amount" in text, text
        assert "BigInt" in text, text
    nested = '{ holdings(where: {OR: [{id: "x"}, {rank_in: [1, "x"]}]}) { totalCount } }'
    assert "where.OR[1].rank_in[1]" in error_text(run(service, conn, nested))


def test_bytes_and_text_filters(service: GraphQLService, conn: psycopg.Connection[Any]) -> None:
    q = "query($w: HoldingFilter) { holdings(where: $w) { items { id } } }"

    def ids(where: dict[str, Any]) -> list[str]:
        response = run(service, conn, q, {"w": where})
        assert "errors" not in response, response
        return [item["id"] for item in response["data"]["holdings"]["items"]]

    assert ids({"data": "0x0BAB"}) == ["h11"]
    assert ids({"note_contains": "%_1"}) == ["h12", "h16"]
    assert ids({"note_starts_with": "n%_"}) == ["h00", "h04", "h08", "h12", "h16"]
    assert ids({"note_ends_with": "_4"}) == ["h04"]
    assert ids({"note_contains": "%", "note_not": "n%_0"}) == ["h04", "h08", "h12", "h16"]
    assert ids({"OR": []}) == []
    assert len(ids({"AND": []})) == 20
    bad_bytes = error_text(run(service, conn, q, {"w": {"data": "0x123"}}))
    assert "Variable '$w' has invalid value at .data: Bytes" in bad_bytes
    assert "NUL" in error_text(run(service, conn, q, {"w": {"owner_contains": "\x00"}}))
    deep: dict[str, Any] = {"id": "h01"}
    for _ in range(40):
        deep = {"OR": [deep]}
    assert "nested more than 32" in error_text(run(service, conn, q, {"w": deep}))
    for key in ("amount_gt", "owner_in", "AND", "note_contains"):
        text = error_text(run(service, conn, q, {"w": {"OR": [{key: None}]}}))
        assert f"where.OR[0].{key}" in text
        assert "null" in text


def test_argument_errors_name_the_argument(
    service: GraphQLService, conn: psycopg.Connection[Any]
) -> None:
    def text(args: str) -> str:
        response = run(service, conn, "{ holdings(" + args + ") { items { id } } }")
        assert response["data"] is None
        return error_text(response)

    assert "`limit`" in text("limit: 1001")
    assert "`limit`" in text("limit: -1")
    assert "`orderBy`: Holding has no field 'nope'" in text('orderBy: "nope"')
    assert "`orderDirection`" in text('orderDirection: "up"')
    assert "`after`" in text('after: "garbage!"')
    assert "`before`" in text('before: "W10"')  # base64 of "[]"
    foreign = base64.urlsafe_b64encode(json.dumps(["amount", "asc", "1", "h01"]).encode())
    assert "orderBy 'amount'" in text(f'after: "{foreign.decode()}"')
    typed = base64.urlsafe_b64encode(json.dumps(["amount", "asc", "x", "h01"]).encode())
    assert "`after`" in text(f'orderBy: "amount", after: "{typed.decode()}"')
    assert "at most one" in text('after: "a", before: "b"')
    page = run(service, conn, '{ holdings(limit: 1000, orderBy: "rank") { items { id } } }')
    assert len(page["data"]["holdings"]["items"]) == 20


def test_meta_chains(service: GraphQLService, conn: psycopg.Connection[Any]) -> None:
    got = run(service, conn, "{ _meta { chains { chainId block } } }")
    assert got == {
        "data": {
            "_meta": {
                "chains": [
                    {"chainId": "1", "block": "100"},
                    {"chainId": "11297108109", "block": "3000000000"},
                ]
            }
        }
    }


def test_bounded_statements(service: GraphQLService, conn: psycopg.Connection[Any]) -> None:
    first = run(
        service, conn, '{ holdings(limit: 3, orderBy: "amount") { pageInfo { endCursor } } }'
    )
    cursor = first["data"]["holdings"]["pageInfo"]["endCursor"]
    query = """
      query($c: String) {
        a: holdings(orderBy: "amount", after: $c, limit: 5) {
          items { id amount } t1: totalCount t2: totalCount
          pageInfo { hasNextPage hasPreviousPage p2: hasPreviousPage startCursor endCursor }
          ...More
        }
        b: holdings(where: {owner: "bob"}, limit: 1000) { items { id } }
        c: holdings { pageInfo { hasPreviousPage } }
        holding(id: "h03") { id }
        _meta { chains { block } }
      }
      fragment More on HoldingPage { items { note } totalCount }
    """
    CountingCursor.statements.clear()
    got = run(service, conn, query, {"c": cursor})
    assert "errors" not in got, got
    # a: page, count and EXISTS in one statement; b: page; c: nothing (no
    # cursor); holding; _meta.
    assert len(CountingCursor.statements) == 4, CountingCursor.statements
    a = got["data"]["a"]
    assert [i["id"] for i in a["items"]] == ["h03", "h04", "h05", "h06", "h08"]
    assert a["t1"] == a["t2"] == a["totalCount"] == 20
    assert a["pageInfo"]["hasNextPage"]
    assert a["pageInfo"]["hasPreviousPage"]
    assert len(got["data"]["b"]["items"]) == 10
    assert got["data"]["c"] == {"pageInfo": {"hasPreviousPage": False}}


def test_limits(conn: psycopg.Connection[Any]) -> None:
    small = GraphQLService(SPECS, max_depth=2, max_aliases=3, max_body_bytes=300)
    assert "deeper" in error_text(run(small, conn, "{ holdings { items { id } } }"))
    spread = "{ ...F } fragment F on Query { holdings { ...G } } fragment G on HoldingPage { totalCount }"
    assert "deeper" not in str(run(small, conn, spread))
    deep = "{ ...F } fragment F on Query { holdings { ...G } } fragment G on HoldingPage { items { id } }"
    assert "deeper" in error_text(run(small, conn, deep))
    # Introspection has its own depth rule.
    assert "errors" not in run(small, conn, "{ __schema { queryType { name } } }")
    aliases = "{" + " ".join(f"a{i}: _meta {{ __typename }}" for i in range(4)) + "}"
    text = error_text(run(small, conn, aliases))
    assert "4 aliases" in text
    assert "4 root fields" in text
    roots = '{ ...A ...B } fragment A on Query { holding(id: "x") { id } _meta { __typename } } fragment B on Query { holdings { totalCount } __typename }'
    assert "4 root fields" in error_text(run(small, conn, roots))
    assert "300 bytes" in error_text(run(small, conn, "{ _meta { __typename } }" + " " * 300))
    assert "bytes" in error_text(run(small, conn, "{ _meta { __typename } } #" + "é" * 140))
    cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"
    assert "errors" in run(small, conn, cycle)
    default = GraphQLService(SPECS)
    # Fixed bounds on what parsing and validation may have to chew.
    many_ids = "{ holdings { items { " + "id " * 1000 + "} } }"
    assert "1002 selections" in error_text(run(default, conn, many_ids))
    spreads = "{ holdings { items { " + "...F " * 101 + "} } } fragment F on Holding { id }"
    assert "fragments 101 times" in error_text(run(default, conn, spreads))
    tokens = "{ holdings(where: {id_in: [" + '"x",' * 10_000 + "]}) { totalCount } }"
    assert "10000 tokens" in error_text(run(default, conn, tokens))
    ok = "{" + " ".join(f'a{i}: holding(id: "h{i:02d}") {{ id }}' for i in range(30)) + "}"
    assert "errors" not in run(default, conn, ok)


def test_bad_requests(service: GraphQLService, conn: psycopg.Connection[Any]) -> None:
    assert "Syntax Error" in error_text(run(service, conn, "{ holdings { "))
    assert "mutation" in error_text(run(service, conn, "mutation { x }"))
    assert "subscription" in error_text(run(service, conn, "subscription { _meta { __typename } }"))
    assert "no query" in error_text(run(service, conn, "  "))
    two = 'query A { _meta { __typename } } query B { holding(id: "h01") { id } }'
    assert "operationName" in error_text(run(service, conn, two))
    assert run(service, conn, two, operation_name="B") == {"data": {"holding": {"id": "h01"}}}
    assert "'C'" in error_text(run(service, conn, two, operation_name="C"))
    assert "Cannot query field" in error_text(run(service, conn, '{ holding(id: "1") { nope } }'))
    missing = run(service, conn, "query($v: Int!) { holdings(limit: $v) { totalCount } }")
    assert "$v" in error_text(missing)


def test_prepared_documents_are_cached(service: GraphQLService) -> None:
    q = "query($id: String!) { holding(id: $id) { id } }"
    first, second = service.prepare(q, {"id": "a"}, None), service.prepare(q, {"id": "b"}, None)
    assert isinstance(first, Prepared)
    assert isinstance(second, Prepared)
    assert first.document is second.document
    assert second.variables == {"id": "b"}


def test_database_errors_propagate(database_url: str, schema: str) -> None:
    service = GraphQLService(SPECS)
    prepared = service.prepare("{ holdings { totalCount } }", None, None)
    assert isinstance(prepared, Prepared)
    with psycopg.connect(database_url) as c:
        c.execute("SELECT set_config('search_path', %s, false)", (schema,))
        with pytest.raises(psycopg.errors.UndefinedTable):
            service.execute(c, prepared)


async def test_through_reader(
    database_url: str, schema: str, conn: psycopg.Connection[Any]
) -> None:
    service = GraphQLService(SPECS)
    prepared = service.prepare(
        '{ holdings(where: {amount_gt: "100"}) { items { id amount } totalCount } }', None, None
    )
    assert isinstance(prepared, Prepared)
    reader = Reader(database_url, schema, size=1)
    try:
        got = await reader.read(lambda c: service.execute(c, prepared))
    finally:
        await reader.aclose()
    assert got == {
        "data": {"holdings": {"items": [{"id": "h07", "amount": str(BIG)}], "totalCount": 1}}
    }
