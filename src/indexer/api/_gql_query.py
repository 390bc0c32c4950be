"""SQL for the GraphQL API: filters, order, keyset cursors, and the statements a field runs.

Filters (``where``), combined by AND within one object:

- ``f: v`` is ``f = v``; ``f: null`` is ``f IS NULL``.
- ``f_not: v`` is the exact complement of ``f: v``: ``f IS DISTINCT FROM v``
  (rows where ``f`` is NULL match ``f_not: 5``); ``f_not: null`` is ``f IS NOT NULL``.
- ``f_in: [...]`` matches a value in the list (a ``null`` item matches NULL;
  ``[]`` matches nothing); ``f_not_in`` is its exact complement (NULL rows
  match unless the list holds ``null``; ``[]`` matches everything).
- ``f_gt``/``f_gte``/``f_lt``/``f_lte`` (int, str, float, bytes) and
  ``f_contains``/``f_starts_with``/``f_ends_with`` (str) never match NULL;
  ``null`` as their value is an error (omit the key instead).  The string
  operators use ``strpos``/``left``/``right``, so ``%``, ``_`` and ``\\`` are
  plain characters.
- ``AND: [...]`` holds when all hold (``[]``: true), ``OR: [...]`` when any
  holds (``[]``: false).  ``null`` for them, or for ``f_in``, is an error.

Order: ``orderBy`` (default ``id``) then ``id`` as tie-break, both in
``orderDirection``.  NULLs come last in ``asc`` and first in ``desc``
(PostgreSQL's default), so ``desc`` is exactly ``asc`` reversed.  Strings
compare by the column's collation, as the framework created it (code-point
order under the C and C.UTF-8 collations), which keeps the primary key and
the ``Index`` indexes usable for ordering; bytes compare byte-wise.

Cursors are base64url JSON ``[orderBy, direction, value, id]`` of a page's
first or last row; a page ``after`` a cursor holds the rows strictly after
that key and ``before`` those strictly before it, so a deleted cursor row
still pages correctly.  ``hasNextPage``/``hasPreviousPage`` are exact: the
side the page was fetched toward comes from fetching ``limit + 1`` rows, the
other side (only when there is a cursor on it, and only when selected) from
one ``EXISTS`` over the matching rows at or beyond the cursor.

Every value is a bound parameter with an explicit cast; every identifier
goes through ``sql.Identifier``.  Tables are named unqualified: the
connection's ``search_path`` is the project schema (see :class:`Reader`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from graphql import GraphQLError
from psycopg import sql
from psycopg.rows import dict_row

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import psycopg

    from ..store import EntitySpec, FieldSpec

__all__ = [
    "BIGINT_LIMIT",
    "DEFAULT_LIMIT",
    "MAX_FILTER_DEPTH",
    "MAX_LIMIT",
    "Page",
    "PagePlan",
    "check_text",
    "fetch_by_id",
    "fetch_chains",
    "filter_keys",
    "plan_page",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
#: AND/OR nesting allowed in one ``where`` (deeper is an error, not a stack overflow).
MAX_FILTER_DEPTH = 32
#: numeric(78,0) bounds every entity int; a BigInt input outside it is an error.
BIGINT_LIMIT = 10**78

_CAST = {int: "numeric", str: "text", bool: "boolean", bytes: "bytea", float: "float8"}
_ORDERED = frozenset({int, str, float, bytes})
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_INT_RE = re.compile(r"-?[0-9]+")
_HEX_RE = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


def filter_keys(spec: EntitySpec) -> dict[str, tuple[FieldSpec, str]]:
    """The ``where`` keys of an entity: key -> (field, operator).

    Raises:
        ConfigError: two fields give the same key (``a_not`` beside ``a``) or
            a field is named ``AND``/``OR``.
    """
    keys: dict[str, tuple[FieldSpec, str]] = {}
    for f in spec.fields:
        ops = ["eq", "not", "in", "not_in"]
        if f.py_type in _ORDERED:
            ops += ["gt", "gte", "lt", "lte"]
        if f.py_type is str:
            ops += ["contains", "starts_with", "ends_with"]
        for op in ops:
            key = f.name if op == "eq" else f"{f.name}_{op}"
            if key in keys or key in ("AND", "OR"):
                other = keys[key][0].name if key in keys else key
                raise ConfigError(
                    f"entity {spec.cls.__name__}: the GraphQL filter key {key!r} of field {f.name!r} "
                    f"clashes with field {other!r}; rename one of them."
                )
            keys[key] = (f, op)
    return keys


def check_text(value: str, where: str) -> str:
    """Refuse strings PostgreSQL text cannot hold (NUL, lone surrogates)."""
    if "\x00" in value:
        raise GraphQLError(f"{where}: strings cannot contain NUL (\\u0000).")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise GraphQLError(f"{where}: the string is not valid Unicode (lone surrogate).") from None
    return value


class _Frag(NamedTuple):
    """A piece of SQL and its parameters, in placeholder order."""

    sql: sql.SQL | sql.Composed
    params: tuple[Any, ...] = ()


_TRUE = _Frag(sql.SQL("TRUE"))
_FALSE = _Frag(sql.SQL("FALSE"))


def _join(frags: list[_Frag], sep: str, empty: _Frag) -> _Frag:
    if not frags:
        return empty
    if len(frags) == 1:
        return frags[0]
    joined = sql.SQL(sep).join(sql.SQL("({})").format(f.sql) for f in frags)
    return _Frag(joined, tuple(p for f in frags for p in f.params))


def _fmt(template: str, *parts: sql.Composable | _Frag) -> _Frag:
    """``template`` with ``{}`` filled by identifiers/SQL or by fragments (params in order)."""
    params: list[Any] = []
    pieces: list[sql.Composable] = []
    for part in parts:
        if isinstance(part, _Frag):
            pieces.append(part.sql)
            params.extend(part.params)
        else:
            pieces.append(part)
    return _Frag(sql.SQL(template).format(*pieces), tuple(params))


def _value(f: FieldSpec, value: Any) -> _Frag:
    """One bound value, cast to the column's type (psycopg would otherwise guess int sizes)."""
    if f.py_type is int:
        value = Decimal(value)  # exact: a Decimal dumps as numeric whatever its size
    elif f.py_type is float:
        value = float(value)
    return _Frag(sql.SQL("{}::{}").format(sql.Placeholder(), sql.SQL(_CAST[f.py_type])), (value,))


def _array(f: FieldSpec, values: list[Any]) -> _Frag:
    if f.py_type is int:
        values = [Decimal(v) for v in values]
    elif f.py_type is float:
        values = [float(v) for v in values]
    cast = sql.SQL(_CAST[f.py_type] + "[]")
    return _Frag(sql.SQL("{}::{}").format(sql.Placeholder(), cast), (values,))


def _condition(f: FieldSpec, op: str, value: Any, where: str) -> _Frag:
    col = sql.Identifier(f.name)
    if op in ("eq", "not"):
        if value is None:
            return _fmt("{} IS NULL" if op == "eq" else "{} IS NOT NULL", col)
        _check_value(f, value, where)
        if op == "eq":
            return _fmt("{} = {}", col, _value(f, value))
        # The complement of `f = v`: NULL rows are "not v" too.
        return _fmt("{} IS DISTINCT FROM {}" if f.nullable else "{} <> {}", col, _value(f, value))
    if value is None:
        raise GraphQLError(f"{where}: null is not allowed here; leave the key out instead.")
    if op in ("in", "not_in"):
        items = [v for v in value if v is not None]
        for i, v in enumerate(items):
            _check_value(f, v, f"{where}[{i}]")
        has_null = len(items) != len(value)
        member = _join(
            ([_fmt("{} = ANY({})", col, _array(f, items))] if items else [])
            + ([_fmt("{} IS NULL", col)] if has_null else []),
            " OR ",
            _FALSE,
        )
        if op == "in":
            return member
        # NOT of a NULL membership test would be NULL: say what NULL rows do.
        if not items:
            return _fmt("{} IS NOT NULL", col) if has_null else _TRUE
        outside = _fmt("{} <> ALL({})", col, _array(f, items))
        if not f.nullable:
            return outside
        return _fmt("{} IS NOT NULL AND {}" if has_null else "{} IS NULL OR {}", col, outside)
    _check_value(f, value, where)
    if op in _COMPARE:
        return _fmt("{} " + _COMPARE[op] + " {}", col, _value(f, value))
    if op == "contains":
        return _fmt("strpos({}, {}) > 0", col, _value(f, value))
    side = "left" if op == "starts_with" else "right"
    length = _Frag(sql.SQL("{}::int").format(sql.Placeholder()), (len(value),))
    return _fmt(side + "({}, {}) = {}", col, length, _value(f, value))


def _check_value(f: FieldSpec, value: Any, where: str) -> None:
    if f.py_type is str:
        check_text(value, where)


def _compile_where(
    keys: Mapping[str, tuple[FieldSpec, str]], where: Mapping[str, Any], path: str, depth: int
) -> _Frag:
    if depth > MAX_FILTER_DEPTH:
        raise GraphQLError(f"{path}: AND/OR are nested more than {MAX_FILTER_DEPTH} levels deep.")
    parts: list[_Frag] = []
    for key, value in where.items():
        here = f"{path}.{key}"
        if key in ("AND", "OR"):
            if value is None:
                raise GraphQLError(f"{here}: null is not allowed here; leave the key out instead.")
            subs = [
                _compile_where(keys, sub, f"{here}[{i}]", depth + 1) for i, sub in enumerate(value)
            ]
            parts.append(
                _join(subs, " AND ", _TRUE) if key == "AND" else _join(subs, " OR ", _FALSE)
            )
        else:
            f, op = keys[key]  # the schema admits only these keys
            parts.append(_condition(f, op, value, here))
    return _join(parts, " AND ", _TRUE)


# -- order and cursors -------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """A row's position in an order: the orderBy value and the id."""

    value: Any
    id: str


def _encode_value(f: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if f.py_type is int:
        return str(value)  # JSON numbers would lose precision in other readers
    if f.py_type is bytes:
        return "0x" + bytes(value).hex()
    return value


def _decode_value(f: FieldSpec, raw: Any) -> Any:
    """The cursor's JSON value as the field's Python value; ValueError if it is not one."""
    if raw is None:
        if not f.nullable:
            raise ValueError("null value for a non-null field")
        return None
    t = f.py_type
    if t is int and isinstance(raw, str) and _INT_RE.fullmatch(raw) and len(raw) <= 80:
        return int(raw)
    if t is str and isinstance(raw, str):
        return check_text(raw, "cursor")
    if t is bool and isinstance(raw, bool):
        return raw
    if t is float and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if t is bytes and isinstance(raw, str) and _HEX_RE.fullmatch(raw):
        return bytes.fromhex(raw[2:])
    raise ValueError(f"not a {t.__name__}")


@dataclass(frozen=True)
class _Order:
    field: FieldSpec
    desc: bool

    @property
    def direction(self) -> str:
        return "desc" if self.desc else "asc"

    def sql(self, *, reverse: bool = False) -> sql.Composable:
        desc = self.desc != reverse
        word = sql.SQL(" DESC NULLS FIRST" if desc else " ASC NULLS LAST")
        by_id = sql.SQL("{}{}").format(sql.Identifier("id"), sql.SQL(" DESC" if desc else " ASC"))
        if self.field.name == "id":
            return by_id
        return sql.SQL("{}{}, {}").format(sql.Identifier(self.field.name), word, by_id)

    def key(self, row: Mapping[str, Any]) -> _Key:
        return _Key(row[self.field.name], row["id"])

    def encode(self, key: _Key) -> str:
        raw = [self.field.name, self.direction, _encode_value(self.field, key.value), key.id]
        text = json.dumps(raw, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    def decode(self, cursor: str, arg: str) -> _Key:
        """Parse a cursor made by :meth:`encode` for this same order."""
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            raw = json.loads(base64.b64decode(padded, altchars=b"-_", validate=True))
            if not isinstance(raw, list) or len(raw) != 4 or not isinstance(raw[3], str):
                raise ValueError("not a cursor")
            name, direction, value, row_id = raw
        except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
            raise GraphQLError(f"`{arg}` is not a cursor made by this API.") from None
        if (name, direction) != (self.field.name, self.direction):
            raise GraphQLError(
                f"`{arg}` is a cursor for orderBy {name!r} {direction!r}, but this query orders by "
                f"{self.field.name!r} {self.direction!r}; a cursor only pages the order it was made for."
            )
        try:
            return _Key(_decode_value(self.field, value), check_text(row_id, "cursor"))
        except (ValueError, GraphQLError):
            raise GraphQLError(f"`{arg}` is not a cursor made by this API.") from None

    def beyond(self, key: _Key, *, reverse: bool = False) -> _Frag:
        """Rows strictly after ``key`` in this order (in the reverse order if ``reverse``).

        NULL-free wherever the row comes after; it may be NULL (not FALSE) for
        rows that do not, so negate it with ``IS NOT TRUE``.
        """
        asc = self.desc == reverse
        cmp, strict_id = (">=", ">") if asc else ("<=", "<")
        rid = sql.Identifier("id")
        cid = _Frag(sql.SQL("{}::text").format(sql.Placeholder()), (key.id,))
        if self.field.name == "id":
            return _fmt("{} " + strict_id + " {}", rid, cid)
        col = sql.Identifier(self.field.name)
        if key.value is None:
            # NULLs are last in asc: after a NULL only NULLs with a later id;
            # first in desc: every non-NULL, and NULLs with an earlier id.
            template = "{} IS NULL AND {} > {}" if asc else "{} IS NOT NULL OR {} < {}"
            return _fmt(template, col, rid, cid)
        v = _value(self.field, key.value)
        # `col >= v` alone narrows an index scan on col; the OR settles ties by id.
        template = "{} " + cmp + " {} AND ({} " + cmp[0] + " {} OR {} " + strict_id + " {})"
        after = _fmt(template, col, v, col, v, rid, cid)
        if asc and self.field.nullable:
            return _fmt("({}) OR {} IS NULL", after, col)
        return after


# -- plans and pages ---------------------------------------------------------


@dataclass(frozen=True)
class PagePlan:
    """A validated list request: everything but the connection."""

    spec: EntitySpec
    where: _Frag
    order: _Order
    limit: int
    after: _Key | None
    before: _Key | None


def plan_page(
    spec: EntitySpec, keys: Mapping[str, tuple[FieldSpec, str]], args: Mapping[str, Any]
) -> PagePlan:
    """Check a list field's arguments and compile its filter.

    Raises:
        GraphQLError: naming the bad argument (limit out of range, unknown
            orderBy, bad orderDirection, bad or foreign cursor, bad filter value).
    """
    limit = args.get("limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    if not 0 <= limit <= MAX_LIMIT:
        raise GraphQLError(f"`limit` must be between 0 and {MAX_LIMIT}, got {limit}.")
    order_by = args.get("orderBy")
    if order_by is None:
        order_by = "id"
    try:
        order_field = spec.field(order_by)
    except KeyError:
        names = ", ".join(f.name for f in spec.fields)
        raise GraphQLError(
            f"`orderBy`: {spec.cls.__name__} has no field {order_by!r}; use one of {names}."
        ) from None
    direction = args.get("orderDirection")
    if direction is None:
        direction = "asc"
    if direction not in ("asc", "desc"):
        raise GraphQLError(f'`orderDirection` must be "asc" or "desc", got {direction!r}.')
    order = _Order(order_field, direction == "desc")
    after, before = args.get("after"), args.get("before")
    if after is not None and before is not None:
        raise GraphQLError("pass at most one of `after` and `before`.")
    where = args.get("where")
    return PagePlan(
        spec=spec,
        where=_compile_where(keys, where, "where", 0) if where else _TRUE,
        order=order,
        limit=limit,
        after=None if after is None else order.decode(after, "after"),
        before=None if before is None else order.decode(before, "before"),
    )


def _columns(spec: EntitySpec) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(f.name) for f in spec.fields)


@dataclass
class Page:
    """One list field's result; each statement runs at most once, and only if asked for.

    ``items`` and ``pageInfo`` share the page statement; ``totalCount`` and the
    ``EXISTS`` for the side without ``limit + 1`` run only when selected.
    """

    conn: psycopg.Connection[Any]
    plan: PagePlan
    _rows: list[dict[str, Any]] | None = field(default=None, repr=False)
    _more: bool = False
    _count: int | None = None
    _other_side: bool | None = None

    def rows(self) -> list[dict[str, Any]]:
        """The page's rows in the requested order."""
        if self._rows is None:
            p = self.plan
            backward = p.before is not None
            bound = (
                p.order.beyond(p.before, reverse=True)
                if p.before is not None
                else p.order.beyond(p.after)
                if p.after is not None
                else _TRUE
            )
            query = _fmt(
                "SELECT {} FROM {} WHERE ({}) AND ({}) ORDER BY {} LIMIT {}",
                _columns(p.spec),
                sql.Identifier(p.spec.table),
                p.where,
                bound,
                p.order.sql(reverse=backward),
                _Frag(sql.Composed([sql.Placeholder()]), (p.limit + 1,)),
            )
            with self.conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(query.sql, query.params).fetchall()
            self._more = len(rows) > p.limit
            rows = rows[: p.limit]
            if backward:
                rows.reverse()
            self._rows = rows
        return self._rows

    def _exists_at_or_beyond(self, key: _Key, *, reverse: bool) -> bool:
        """Whether a matching row is at ``key`` or past it (in the reverse order if ``reverse``)."""
        if self._other_side is None:
            p = self.plan
            query = _fmt(
                "SELECT EXISTS (SELECT FROM {} WHERE ({}) AND ({}) IS NOT TRUE)",
                sql.Identifier(p.spec.table),
                p.where,
                p.order.beyond(key, reverse=not reverse),
            )
            row = self.conn.execute(query.sql, query.params).fetchone()
            self._other_side = bool(row and row[0])
        return self._other_side

    def has_next(self) -> bool:
        if self.plan.before is not None:
            return self._exists_at_or_beyond(self.plan.before, reverse=False)
        self.rows()
        return self._more

    def has_previous(self) -> bool:
        if self.plan.before is not None:
            self.rows()
            return self._more
        if self.plan.after is not None:
            return self._exists_at_or_beyond(self.plan.after, reverse=True)
        return False

    def start_cursor(self) -> str | None:
        rows = self.rows()
        return self.plan.order.encode(self.plan.order.key(rows[0])) if rows else None

    def end_cursor(self) -> str | None:
        rows = self.rows()
        return self.plan.order.encode(self.plan.order.key(rows[-1])) if rows else None

    def total_count(self) -> int:
        """Rows matching ``where``, whatever the cursor and limit."""
        if self._count is None:
            p = self.plan
            query = _fmt("SELECT count(*) FROM {} WHERE {}", sql.Identifier(p.spec.table), p.where)
            row = self.conn.execute(query.sql, query.params).fetchone()
            self._count = int(row[0]) if row else 0
        return self._count


def fetch_by_id(
    conn: psycopg.Connection[Any], spec: EntitySpec, row_id: str
) -> dict[str, Any] | None:
    """One entity row by primary key, or None."""
    check_text(row_id, "`id`")
    query = sql.SQL("SELECT {} FROM {} WHERE {} = %s::text").format(
        _columns(spec), sql.Identifier(spec.table), sql.Identifier("id")
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, (row_id,)).fetchone()


def fetch_chains(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The committed block of every chain, by chain id."""
    query = sql.SQL("SELECT chain_id AS {}, progress_block AS {} FROM {} ORDER BY chain_id").format(
        sql.Identifier("chainId"), sql.Identifier("block"), sql.Identifier("_indexer_chains")
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query).fetchall()
