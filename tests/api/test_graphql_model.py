"""The GraphQL list fields against a plain Python model, on real PostgreSQL through Reader.

Each example stores random rows (ints past 2^64 and negative, strings with
``%``, ``_``, ``\\``, unicode and empty, floats, bytes, NULLs), then checks
through :class:`~indexer.api.Reader`:

- one page for a random filter (nested AND/OR, every operator), orderBy,
  orderDirection and limit: items, pageInfo and totalCount as the model says;
- a forward walk over every page with ``after: endCursor`` and a backward
  walk with ``before: startCursor``: every matching row exactly once, in the
  model's order, with exact hasNextPage/hasPreviousPage on every page;
- filtered pages after/before cursors of rows the filter may exclude.

The model orders strings by the database's collation: it asks PostgreSQL to
sort the strings in play once per example (the contract is "the column's
collation", so the model must not assume code-point order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import psycopg
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from indexer import Entity, Index
from indexer.api import Reader
from indexer.api._graphql import GraphQLService, Prepared
from indexer.persist import create_schema, table_ident
from indexer.store import EntitySpec, FieldSpec, entity_spec

if TYPE_CHECKING:
    from collections.abc import Iterator


class Tok(Entity):
    id: str
    amount: int
    label: Annotated[str, Index]
    flag: bool
    ratio: float
    blob: bytes


class Opt(Entity):
    id: str
    amount: int | None = None
    label: Annotated[str | None, Index] = None
    flag: bool | None = None
    ratio: float | None = None
    blob: bytes | None = None


SPECS = {"tok": entity_spec(Tok), "opt": entity_spec(Opt)}
SERVICE = GraphQLService(list(SPECS.values()))

_STRINGS = [
    "",
    "a",
    "A",
    "b",
    "%",
    "_",
    "\\",
    "a%",
    "%a",
    "a_b",
    "\\%",
    "é",
    "e",
    "日本",
    "😀",
    " ",
]
_INTS = [0, 1, -1, 2**64, 2**64 + 1, -(2**64), 10**77, -(10**77), 10**78 - 1]
_ORDERED = (int, str, float, bytes)


def _base(t: type) -> st.SearchStrategy[Any]:
    if t is int:
        return st.one_of(
            st.sampled_from(_INTS), st.integers(-3, 3), st.integers(-(10**78) + 1, 10**78 - 1)
        )
    if t is str:
        text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4)
        return st.one_of(st.sampled_from(_STRINGS), text)
    if t is bool:
        return st.booleans()
    if t is float:
        finite = st.floats(allow_nan=False, allow_infinity=False)
        return st.one_of(st.sampled_from([0.0, -0.0, 1.5, -2.25]), finite)
    return st.one_of(st.sampled_from([b"", b"\x00", b"\xff", b"a"]), st.binary(max_size=3))


def _field_values(f: FieldSpec) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), _base(f.py_type)) if f.nullable else _base(f.py_type)


def _rows(spec: EntitySpec) -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.fixed_dictionaries(
        {f.name: (_base(str) if f.name == "id" else _field_values(f)) for f in spec.fields}
    )
    return st.lists(row, max_size=12, unique_by=lambda r: r["id"])


def _ops(f: FieldSpec) -> list[str]:
    ops = ["eq", "not", "in", "not_in"]
    if f.py_type in _ORDERED:
        ops += ["gt", "gte", "lt", "lte"]
    if f.py_type is str:
        ops += ["contains", "starts_with", "ends_with"]
    return ops


def _keys(spec: EntitySpec) -> dict[str, tuple[FieldSpec, str]]:
    return {
        (f.name if op == "eq" else f"{f.name}_{op}"): (f, op) for f in spec.fields for op in _ops(f)
    }


def _filters(spec: EntitySpec, rows: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    keys = _keys(spec)

    def value(f: FieldSpec, op: str) -> st.SearchStrategy[Any]:
        seen = [r[f.name] for r in rows if r[f.name] is not None]
        base = st.one_of(st.sampled_from(seen), _base(f.py_type)) if seen else _base(f.py_type)
        if op in ("eq", "not"):
            return st.one_of(st.none(), base)
        if op in ("in", "not_in"):
            return st.lists(st.one_of(st.none(), base) if f.nullable else base, max_size=3)
        if op in ("contains", "starts_with", "ends_with"):
            # Substrings of stored values, so that these match now and then.
            return st.one_of(base, st.sampled_from(seen or [""]).flatmap(_pieces))
        return base

    cond = st.sampled_from(sorted(keys)).flatmap(lambda k: st.tuples(st.just(k), value(*keys[k])))
    leaf = st.lists(cond, max_size=3).map(dict)

    def nest(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        lists = st.one_of(st.none(), st.lists(inner, max_size=3))
        return st.tuples(leaf, lists, lists).map(
            lambda t: {
                **t[0],
                **({"AND": t[1]} if t[1] is not None else {}),
                **({"OR": t[2]} if t[2] is not None else {}),
            }
        )

    return st.recursive(leaf, nest, max_leaves=8)


def _pieces(s: str) -> st.SearchStrategy[str]:
    return st.tuples(st.integers(0, len(s)), st.integers(0, len(s))).map(
        lambda ij: s[min(ij) : max(ij)]
    )


def _gql(f: FieldSpec, v: Any, *, as_int: bool = False) -> Any:
    """A Python value as GraphQL sends or returns it (BigInt as a string, or an int in inputs)."""
    if v is None:
        return None
    if f.py_type is int:
        return v if as_int else str(v)
    if f.py_type is bytes:
        return "0x" + v.hex()
    return v


@dataclass
class Model:
    """The reference: filters, order and pages over a list of rows, in plain Python."""

    spec: EntitySpec
    rank: dict[str, int]  # every string in play, in the database's collation order

    def __post_init__(self) -> None:
        self.keys = _keys(self.spec)

    def _k(self, f: FieldSpec, v: Any) -> Any:
        return self.rank[v] if f.py_type is str else v

    def holds(self, where: dict[str, Any] | None, row: dict[str, Any]) -> bool:
        for key, value in (where or {}).items():
            if key == "AND":
                ok = all(self.holds(w, row) for w in value)
            elif key == "OR":
                ok = any(self.holds(w, row) for w in value)
            else:
                f, op = self.keys[key]
                ok = self._test(f, op, row[f.name], value)
            if not ok:
                return False
        return True

    def _test(self, f: FieldSpec, op: str, x: Any, v: Any) -> bool:
        if op == "eq":
            return x is None if v is None else (x is not None and x == v)
        if op == "not":
            return not self._test(f, "eq", x, v)
        if op == "in":
            return any(self._test(f, "eq", x, item) for item in v)
        if op == "not_in":
            return not self._test(f, "in", x, v)
        if x is None:
            return False
        if op == "contains":
            return bool(v in x)
        if op == "starts_with":
            return bool(x.startswith(v))
        if op == "ends_with":
            return bool(x.endswith(v))
        a, b = self._k(f, x), self._k(f, v)
        return bool({"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op])

    def order(self, rows: list[dict[str, Any]], by: str | None, desc: bool) -> list[dict[str, Any]]:
        f = self.spec.field(by or "id")

        def key(r: dict[str, Any]) -> tuple[Any, ...]:
            v = r[f.name]
            return (v is None, 0 if v is None else self._k(f, v), self.rank[r["id"]])

        ordered = sorted(rows, key=key)  # NULLs last in asc
        return ordered[::-1] if desc else ordered

    def page(
        self,
        full: list[dict[str, Any]],
        where: dict[str, Any] | None,
        limit: int,
        after: str | None = None,
        before: str | None = None,
    ) -> dict[str, Any]:
        """What the page must be; ``after``/``before`` are the ids of the cursor rows."""
        ok = [self.holds(where, r) for r in full]
        ids = [r["id"] for r in full]
        if before is not None:
            p = ids.index(before)
            cands = [r for r, o in zip(full[:p], ok[:p], strict=True) if o]
            items = cands[max(0, len(cands) - limit) :]
            has_prev, has_next = len(cands) > limit, any(ok[p:])
        else:
            p = -1 if after is None else ids.index(after)
            cands = [r for r, o in zip(full[p + 1 :], ok[p + 1 :], strict=True) if o]
            items = cands[:limit]
            has_next, has_prev = len(cands) > limit, any(ok[: p + 1])
        return {
            "items": [{f.name: _gql(f, r[f.name]) for f in self.spec.fields} for r in items],
            "hasNextPage": has_next,
            "hasPreviousPage": has_prev,
            "totalCount": sum(ok),
        }


def _query(spec: EntitySpec) -> str:
    name = spec.cls.__name__
    fields = " ".join(f.name for f in spec.fields)
    return (
        f"query($where: {name}Filter, $orderBy: String, $dir: String, $limit: Int,"
        f" $after: String, $before: String) {{"
        f" {name[0].lower() + name[1:]}s(where: $where, orderBy: $orderBy, orderDirection: $dir,"
        f" limit: $limit, after: $after, before: $before) {{"
        f" items {{ {fields} }} pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}"
        f" totalCount }} }}"
    )


def _variables(keys: dict[str, tuple[FieldSpec, str]], where: Any, flip: list[bool]) -> Any:
    """A filter in GraphQL input form (BigInt alternately as string and int)."""
    out: dict[str, Any] = {}
    for key, value in where.items():
        if key in ("AND", "OR"):
            out[key] = [_variables(keys, w, flip) for w in value]
            continue
        f = keys[key][0]
        flip[0] = not flip[0]
        if isinstance(value, list):
            out[key] = [_gql(f, v, as_int=flip[0]) for v in value]
        else:
            out[key] = _gql(f, value, as_int=flip[0])
    return out


def _strings(where: Any, keys: dict[str, tuple[FieldSpec, str]]) -> Iterator[str]:
    for key, value in where.items():
        if key in ("AND", "OR"):
            for w in value:
                yield from _strings(w, keys)
        elif keys[key][0].py_type is str:
            yield from (v for v in (value if isinstance(value, list) else [value]) if v is not None)


@pytest.fixture
def setup(database_url: str, schema: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_schema(conn, schema, list(SPECS.values()), chains={})
        yield conn


@pytest.mark.parametrize("table", ["tok", "opt"])
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_pages_match_model(
    table: str, setup: psycopg.Connection[Any], database_url: str, schema: str, data: st.DataObject
) -> None:
    spec = SPECS[table]
    rows = data.draw(_rows(spec), label="rows")
    where = data.draw(st.one_of(st.none(), _filters(spec, rows)), label="where")
    by = data.draw(st.one_of(st.none(), st.sampled_from([f.name for f in spec.fields])), label="by")
    direction = data.draw(st.sampled_from([None, "asc", "desc"]), label="direction")
    limit = data.draw(st.one_of(st.none(), st.integers(0, 13)), label="limit")
    size = data.draw(st.integers(1, 4), label="page size")

    table_id = table_ident(schema, spec.table)
    setup.execute(sql.SQL("TRUNCATE {}").format(table_id))
    if rows:
        cols = [f.name for f in spec.fields]
        with setup.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    table_id,
                    sql.SQL(", ").join(map(sql.Identifier, cols)),
                    sql.SQL(", ").join(sql.Placeholder() * len(cols)),
                ),
                [tuple(r[c] for c in cols) for r in rows],
            )
    keys = _keys(spec)
    strings = {r["id"] for r in rows} | {r["label"] for r in rows if r["label"] is not None}
    strings |= set(_strings(where or {}, keys))
    ordered = setup.execute(
        "SELECT s FROM unnest(%s::text[]) AS t(s) ORDER BY s", (sorted(strings),)
    )
    model = Model(spec, {s: i for i, (s,) in enumerate(ordered.fetchall())})
    full = model.order(rows, by, direction == "desc")
    filtered = [r for r in full if model.holds(where, r)]
    gql_where = None if where is None else _variables(keys, where, [False])
    query = _query(spec)
    plural = table + "s"

    async def main() -> None:
        reader = Reader(database_url, schema, size=1)
        cursors: dict[str, str] = {}  # cursor -> id of its row

        async def fetch(filt: Any, n: int | None, **cursor: str | None) -> dict[str, Any]:
            variables = {"where": filt, "orderBy": by, "dir": direction, "limit": n, **cursor}
            prepared = SERVICE.prepare(query, variables, None)
            assert isinstance(prepared, Prepared), prepared
            # As POST /graphql answers it: these page documents take the
            # direct path, its one statement read on the event loop.
            response = await SERVICE.answer(reader, prepared)
            assert "errors" not in response, response
            got: dict[str, Any] = response["data"][plural]
            items, info = got["items"], got["pageInfo"]
            if items:
                cursors[info["startCursor"]] = items[0]["id"]
                cursors[info["endCursor"]] = items[-1]["id"]
            else:
                assert info["startCursor"] is None
                assert info["endCursor"] is None
            return got

        def check(got: dict[str, Any], want: dict[str, Any]) -> None:
            info = got["pageInfo"]
            assert got["items"] == want["items"]
            assert info["hasNextPage"] == want["hasNextPage"]
            assert info["hasPreviousPage"] == want["hasPreviousPage"]
            assert got["totalCount"] == want["totalCount"]

        try:
            # One page as asked for.
            n = 50 if limit is None else limit
            check(await fetch(gql_where, limit), model.page(full, where, n))
            # Every page, forward then backward, unfiltered and filtered.
            for filt, model_where, expected in ((None, None, full), (gql_where, where, filtered)):
                seen: list[str] = []
                after: str | None = None
                for _ in range(len(rows) + 2):
                    got = await fetch(filt, size, after=after)
                    check(got, model.page(full, model_where, size, after=cursors.get(after or "")))
                    seen += [item["id"] for item in got["items"]]
                    if not got["pageInfo"]["hasNextPage"]:
                        break
                    after = got["pageInfo"]["endCursor"]
                assert seen == [r["id"] for r in expected]
                if not expected:
                    continue
                before: str | None = got["pageInfo"]["endCursor"]
                back = [seen[-1]]
                for _ in range(len(rows) + 2):
                    assert before is not None
                    got = await fetch(filt, size, before=before)
                    check(got, model.page(full, model_where, size, before=cursors[before]))
                    back[:0] = [item["id"] for item in got["items"]]
                    if not got["pageInfo"]["hasPreviousPage"]:
                        break
                    before = got["pageInfo"]["startCursor"]
                assert back == seen
            # Filtered pages around cursors of rows the filter may leave out.
            if cursors:
                for _ in range(2):
                    c = data.draw(st.sampled_from(sorted(cursors)), label="cursor")
                    side = data.draw(st.sampled_from(["after", "before"]), label="side")
                    n = data.draw(st.integers(0, 4), label="probe limit")
                    got = await fetch(gql_where, n, **{side: c})
                    check(got, model.page(full, where, n, **{side: cursors[c]}))
        finally:
            await reader.aclose()

    trio.run(main)
