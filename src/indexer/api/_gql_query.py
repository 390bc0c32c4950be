"""SQL for the GraphQL list fields: order, keyset cursors, pages, and the single-row reads.

Order: ``orderBy`` (default ``id``) then ``id`` as tie-break, both in
``orderDirection``.  NULLs come last in ``asc`` and first in ``desc``
(PostgreSQL's default), so ``desc`` is exactly ``asc`` reversed.  Strings
compare by the column's collation, as the framework created it (code-point
order under the C and C.UTF-8 collations), which keeps the primary key and
the ``Index`` indexes usable for ordering; bytes compare byte-wise.

Cursors are base64url JSON ``[orderBy, direction, value, id]`` of a page's
first or last row; a page ``after`` a cursor holds the rows strictly after
that key and ``before`` those strictly before it (still in the requested
order), so a deleted cursor row still pages correctly.  A cursor made for
another orderBy or direction is an error.  ``hasNextPage``/``hasPreviousPage``
are exact: the side the page was fetched toward comes from fetching
``limit + 1`` rows, the other side (only when there is a cursor on it, and
only when selected) from one ``EXISTS`` over the matching rows at or beyond
the cursor; without a cursor ``hasPreviousPage`` is false.

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
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from psycopg import sql
from psycopg.rows import dict_row

from ._gql_filter import TRUE, Frag, bound, check_text, compile_where, fmt, ident

if TYPE_CHECKING:
    from collections.abc import Mapping

    import psycopg

    from ..store import EntitySpec, FieldSpec

__all__ = [
    "ALL_PARTS",
    "BIGINT_LIMIT",
    "COUNT",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "NEXT",
    "PREVIOUS",
    "ROWS",
    "Page",
    "PagePlan",
    "by_id_query",
    "fetch_by_id",
    "fetch_chains",
    "plan_page",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
#: numeric(78,0) bounds every entity int; a BigInt input outside it is an error.
BIGINT_LIMIT = 10**78

_INT_RE = re.compile(r"-?[0-9]+")
_HEX_RE = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


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

    def sql(self, *, reverse: bool = False) -> Frag:
        desc = self.desc != reverse
        by_id = fmt("{} DESC" if desc else "{} ASC", ident("id"))
        if self.field.name == "id":
            return by_id
        word = " DESC NULLS FIRST" if desc else " ASC NULLS LAST"
        return fmt("{}" + word + ", {}", ident(self.field.name), by_id)

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

    def beyond(self, key: _Key, *, reverse: bool = False) -> Frag:
        """Rows strictly after ``key`` in this order (in the reverse order if ``reverse``).

        NULL-free wherever the row comes after; it may be NULL (not FALSE) for
        rows that do not, so negate it with ``IS NOT TRUE``.
        """
        asc = self.desc == reverse
        cmp, strict_id = (">=", ">") if asc else ("<=", "<")
        rid = ident("id")
        cid = Frag("%s::text", (key.id,))
        if self.field.name == "id":
            return fmt("{} " + strict_id + " {}", rid, cid)
        col = ident(self.field.name)
        if key.value is None:
            # NULLs are last in asc: after a NULL only NULLs with a later id;
            # first in desc: every non-NULL, and NULLs with an earlier id.
            template = "{} IS NULL AND {} > {}" if asc else "{} IS NOT NULL OR {} < {}"
            return fmt(template, col, rid, cid)
        v = bound(self.field, key.value)
        # `col >= v` alone narrows an index scan on col; the OR settles ties by id.
        template = "{} " + cmp + " {} AND ({} " + cmp[0] + " {} OR {} " + strict_id + " {})"
        after = fmt(template, col, v, col, v, rid, cid)
        if asc and self.field.nullable:
            return fmt("({}) OR {} IS NULL", after, col)
        return after


# -- plans and pages ---------------------------------------------------------


@dataclass(frozen=True)
class PagePlan:
    """A validated list request: everything but the connection."""

    spec: EntitySpec
    where: Frag
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
        where=compile_where(keys, where, "where") if where else TRUE,
        order=order,
        limit=limit,
        after=None if after is None else order.decode(after, "after"),
        before=None if before is None else order.decode(before, "before"),
    )


def _columns(spec: EntitySpec) -> Frag:
    return Frag(", ".join(ident(f.name).sql for f in spec.fields))


#: The parts of a list field a selection can ask for (see :func:`page_parts`).
ROWS, COUNT, NEXT, PREVIOUS = "rows", "count", "next", "previous"
ALL_PARTS = frozenset({ROWS, COUNT, NEXT, PREVIOUS})


@dataclass
class Page:
    """One list field's result, read by one statement.

    ``wants`` names the parts the request selected (``items`` and the cursors
    are ``rows``, ``totalCount`` is ``count``, ``hasNextPage`` ``next``,
    ``hasPreviousPage`` ``previous``).  The first part asked for runs a
    single statement that computes all of them: the page (``limit + 1``
    rows), ``count(*)`` over the matching rows, and the ``EXISTS`` for the
    side of a cursor, as scalar subqueries beside the page.  One statement
    is one snapshot, so items and ``totalCount`` agree even outside a
    transaction, and a request whose only root field is a list costs one
    round trip.  A part outside ``wants`` (which the executor never asks for:
    ``wants`` covers the whole selection) would be read by a statement of
    its own.
    """

    #: None when the caller runs :meth:`statement` and hands the rows to :meth:`accept`.
    conn: psycopg.Connection[Any] | None
    plan: PagePlan
    wants: frozenset[str] = ALL_PARTS
    _done: set[str] = field(default_factory=set, repr=False)
    _rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _more: bool = False
    _count: int = 0
    _other_side: bool = False

    def _need(self, part: str) -> None:
        if part not in self._done:
            self._load((self.wants - self._done) | {part})

    def _other_key(self, parts: frozenset[str] | set[str]) -> tuple[_Key, bool] | None:
        """The cursor whose far side the selection asks about, and the direction to look."""
        p = self.plan
        if p.before is not None and NEXT in parts:
            return p.before, False
        if p.after is not None and PREVIOUS in parts:
            return p.after, True
        return None

    def _load(self, parts: frozenset[str] | set[str]) -> None:
        query = self.statement(parts)
        found: list[dict[str, Any]] = []
        if query is not None:
            if self.conn is None:
                raise RuntimeError(f"the page has no connection to read {sorted(parts)}")
            with self.conn.cursor(row_factory=dict_row) as cur:
                found = cur.execute(query.sql, query.params).fetchall()
        self.accept(parts, found)

    def statement(self, parts: frozenset[str] | set[str]) -> Frag | None:
        """The one statement reading ``parts`` (None when none needs the database)."""
        p = self.plan
        backward = p.before is not None
        # hasNextPage comes from the limit + 1 rows unless the page was
        # fetched backward (from `before`); hasPreviousPage the other way.
        rows = ROWS in parts or (NEXT if not backward else PREVIOUS) in parts
        table = ident(p.spec.table)
        scalars: list[Frag] = []
        if COUNT in parts:
            scalars.append(fmt("(SELECT count(*) FROM {} WHERE {}) AS _total", table, p.where))
        other = self._other_key(parts)
        if other is not None:
            key, reverse = other
            scalars.append(
                fmt(
                    "EXISTS (SELECT FROM {} WHERE ({}) AND ({}) IS NOT TRUE) AS _other",
                    table,
                    p.where,
                    p.order.beyond(key, reverse=not reverse),
                )
            )
        query: Frag | None = None
        if rows:
            bound = (
                p.order.beyond(p.before, reverse=True)
                if p.before is not None
                else p.order.beyond(p.after)
                if p.after is not None
                else TRUE
            )
            order = p.order.sql(reverse=backward)
            query = fmt(
                "SELECT {} FROM {} WHERE ({}) AND ({}) ORDER BY {} LIMIT {}",
                _columns(p.spec),
                table,
                p.where,
                bound,
                order,
                Frag("%s", (p.limit + 1,)),
            )
            if scalars:
                # The scalars' one row, joined to the page's rows (or to one
                # all-NULL row when the page is empty: the id is never NULL).
                query = fmt(
                    "SELECT _p.*, _s.* FROM (SELECT {}) AS _s LEFT JOIN LATERAL ({}) AS _p ON TRUE"
                    " ORDER BY {}",
                    _join_frags(scalars),
                    query,
                    order,
                )
        elif scalars:
            query = fmt("SELECT {}", _join_frags(scalars))
        return query

    def accept(self, parts: frozenset[str] | set[str], found: list[dict[str, Any]]) -> None:
        """Take the rows :meth:`statement` read for ``parts``."""
        p = self.plan
        backward = p.before is not None
        rows = ROWS in parts or (NEXT if not backward else PREVIOUS) in parts
        other = self._other_key(parts)
        scalars = COUNT in parts or other is not None
        head = found[0] if found else {}
        if COUNT in parts:
            self._count = int(head["_total"])
        if other is not None:
            self._other_side = bool(head["_other"])
        if rows:
            if scalars:
                # The rows are this page's own: drop the scalars' columns in place.
                found = [r for r in found if r["id"] is not None]
                for r in found:
                    r.pop("_total", None)
                    r.pop("_other", None)
            self._more = len(found) > p.limit
            found = found[: p.limit]
            if backward:
                found.reverse()
            self._rows = found
            self._done |= {ROWS, NEXT, PREVIOUS} - ({NEXT} if backward else {PREVIOUS})
        if other is not None:
            self._done.add(NEXT if backward else PREVIOUS)
        if COUNT in parts:
            self._done.add(COUNT)
        if p.before is None and p.after is None:
            self._done.add(PREVIOUS)  # no cursor: nothing before the first page

    def rows(self) -> list[dict[str, Any]]:
        """The page's rows in the requested order."""
        self._need(ROWS)
        return self._rows

    def has_next(self) -> bool:
        self._need(NEXT)
        return self._other_side if self.plan.before is not None else self._more

    def has_previous(self) -> bool:
        self._need(PREVIOUS)
        if self.plan.before is not None:
            return self._more
        return self.plan.after is not None and self._other_side

    def start_cursor(self) -> str | None:
        rows = self.rows()
        return self.plan.order.encode(self.plan.order.key(rows[0])) if rows else None

    def end_cursor(self) -> str | None:
        rows = self.rows()
        return self.plan.order.encode(self.plan.order.key(rows[-1])) if rows else None

    def total_count(self) -> int:
        """Rows matching ``where``, whatever the cursor and limit."""
        self._need(COUNT)
        return self._count


def _join_frags(frags: list[Frag]) -> Frag:
    return Frag(", ".join(f.sql for f in frags), tuple(x for f in frags for x in f.params))


def fetch_by_id(
    conn: psycopg.Connection[Any], spec: EntitySpec, row_id: str
) -> dict[str, Any] | None:
    """One entity row by primary key, or None."""
    check_text(row_id, "`id`")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(by_id_query(spec), (row_id,)).fetchone()


def by_id_query(spec: EntitySpec) -> bytes:
    """The statement reading one row of ``spec`` by id (one ``%s``: the id)."""
    key = (spec.table, tuple(f.name for f in spec.fields))
    query = _BY_ID.get(key)
    if query is None:
        # Rendered once per table: composing it took ~65 µs a lookup, a
        # quarter of the whole by-id request, and an identical text lets
        # the statement be prepared on the server.
        text = fmt(
            "SELECT {} FROM {} WHERE {} = %s::text", _columns(spec), ident(spec.table), ident("id")
        )
        query = _BY_ID[key] = text.sql.encode()
    return query


_BY_ID: dict[tuple[str, tuple[str, ...]], bytes] = {}


def fetch_chains(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The committed block of every chain, by chain id."""
    query = sql.SQL("SELECT chain_id AS {}, progress_block AS {} FROM {} ORDER BY chain_id").format(
        sql.Identifier("chainId"), sql.Identifier("block"), sql.Identifier("_indexer_chains")
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query).fetchall()
