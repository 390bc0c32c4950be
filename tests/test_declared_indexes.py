"""``__indexes__``: declaration errors, the indexes a start creates and drops, and their use.

Against a real PostgreSQL: ``create_schema`` as a run's start calls it, the
catalog read back, and the planner's own ``EXPLAIN`` for the API's page
statement (a filter on the leading column, ordered by the next one).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, ClassVar

import psycopg
import pytest
from psycopg import sql

from indexer import ConfigError, Entity, Index
from indexer.persist import create_schema, table_ident
from indexer.store import entity_spec


class Holding(Entity):
    __indexes__ = (Index("token", "balance"), Index("holder"))
    id: str
    token: Annotated[str, Index]
    holder: str
    balance: int = 0


def _indexes(conn: psycopg.Connection[Any], schema: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'holding'",
        (schema,),
    ).fetchall()
    return {name: d.split(" USING btree ")[1] for name, d in rows}


def test_the_spec_appends_the_id() -> None:
    spec = entity_spec(Holding)
    assert spec.indexes == (("token", "balance", "id"), ("holder", "id"))

    class WithId(Entity):
        __indexes__: ClassVar[tuple[Index, ...]] = (Index("id", "n"),)
        id: str
        n: int

    assert entity_spec(WithId).indexes == (("id", "n"),)


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ((Index("nope"),), "names 'nope', which is not a field; fields: id, n"),
        ((Index("n", "n"),), "names a field twice"),
        ((Index("n"), Index("n", "id")), "declared twice"),
        ((Index(),), 'expected a tuple of `Index\\("field", ...\\)`'),
        (Index("n"), "expected a tuple"),
        (("n",), "expected a tuple"),
    ],
)
def test_bad_declarations_name_the_entity(declared: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=f"entity Bad, __indexes__: .*{message}"):

        class Bad(Entity):
            __indexes__ = declared
            id: str
            n: int


def test_field_names_inside_annotated_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"field 'n'.*without field names.*__indexes__"):

        class Bad(Entity):
            id: str
            n: Annotated[int, Index("n")]


def test_a_start_creates_missing_indexes_and_drops_undeclared_ones(
    database_url: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_schema(conn, schema, [entity_spec(Holding)], chains={})
        first = _indexes(conn, schema)
        assert first["holding_by_token_balance_id"] == "(token, balance, id)"
        assert first["holding_by_holder_id"] == "(holder, id)"
        assert first["holding_token_idx"] == "(token)"
        # An index made by hand is the user's: never dropped.
        conn.execute(
            sql.SQL("CREATE INDEX mine ON {} (balance)").format(table_ident(schema, "holding"))
        )

        class Fewer(Entity):  # the same table, one index fewer, one more
            __table__ = "holding"
            __indexes__ = (Index("balance", "holder"),)
            id: str
            token: Annotated[str, Index]
            holder: str
            balance: int = 0

        # Over existing rows an index takes a while to build: that is logged.
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES ('a', 't', 'h', 1)").format(
                table_ident(schema, "holding")
            )
        )
        with caplog.at_level(logging.INFO, logger="indexer.persist"):
            create_schema(conn, schema, [entity_spec(Fewer)], chains={})
        after = _indexes(conn, schema)
        assert "holding_by_token_balance_id" not in after
        assert "holding_by_holder_id" not in after
        assert after["holding_by_balance_holder_id"] == "(balance, holder, id)"
        assert after["mine"] == "(balance)"
        assert after["holding_token_idx"] == "(token)"
        text = caplog.text
        assert "dropping index holding_by_holder_id" in text
        assert (
            "creating index holding_by_balance_holder_id on holding (balance, holder, id)" in text
        )
        # Starting again changes nothing.
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="indexer.persist"):
            create_schema(conn, schema, [entity_spec(Fewer)], chains={})
        assert _indexes(conn, schema) == after
        assert "index" not in caplog.text


def test_long_names_stay_distinct_and_within_63_bytes(database_url: str, schema: str) -> None:
    class VeryLongEntityNameForAnIndexTest(Entity):
        __indexes__ = (
            Index("a_rather_long_field_name_one", "a_rather_long_field_name_two"),
            Index("a_rather_long_field_name_one", "a_rather_long_field_name_three"),
        )
        id: str
        a_rather_long_field_name_one: str
        a_rather_long_field_name_two: str
        a_rather_long_field_name_three: str

    spec = entity_spec(VeryLongEntityNameForAnIndexTest)
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_schema(conn, schema, [spec], chains={})
        names = [
            n
            for (n,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s"
                " AND indexname LIKE %s",
                (schema, spec.table, "%_by_%"),
            ).fetchall()
        ]
    assert len(names) == 2
    assert all(len(n.encode()) <= 63 for n in names)


def test_the_api_page_reads_from_the_declared_index(database_url: str, schema: str) -> None:
    """The page statement's plan: an index scan on (token, balance, id), no sort of the matches."""
    from indexer.api._gql_filter import filter_keys
    from indexer.api._gql_query import Page, plan_page

    spec = entity_spec(Holding)
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_schema(conn, schema, [spec], chains={})
        table = table_ident(schema, "holding")
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT 'h' || i, 't' || (i % 50), 'o' || i, i FROM generate_series(1, 20000) i"
            ).format(table)
        )
        conn.execute(sql.SQL("ANALYZE {}").format(table))
        conn.execute("SELECT set_config('search_path', %s, false)", (schema,))
        plan = plan_page(
            spec,
            filter_keys(spec),
            {
                "where": {"token": "t7", "balance_gt": 0},
                "orderBy": "balance",
                "orderDirection": "desc",
            },
        )
        statements: list[Any] = []

        class Explain(psycopg.Cursor[Any]):
            def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                statements.append((query, params))
                return super().execute(query, params, **kw)

        conn.cursor_factory = Explain
        page = Page(conn, plan)
        assert len(page.rows()) == 50
        assert page.total_count() == 400
        ((query, params),) = statements
        conn.cursor_factory = psycopg.Cursor
        text = "\n".join(
            r[0] for r in conn.execute("EXPLAIN " + query, params, prepare=False).fetchall()
        )
    # The page in its order straight from the index: only the 51 rows it
    # yields are sorted again, outside.
    assert "Index Scan Backward using holding_by_token_balance_id" in text, text
