"""GraphQL ``where`` filters compiled to SQL (bound parameters, quoted identifiers).

Within one filter object the keys combine by AND:

- ``f: v`` is ``f = v``; ``f: null`` is ``f IS NULL``.
- ``f_not: v`` is the exact complement of ``f: v``: ``f IS DISTINCT FROM v``
  (rows where ``f`` is NULL match ``f_not: 5``); ``f_not: null`` is ``f IS NOT NULL``.
- ``f_in: [...]`` matches a value in the list (a ``null`` item, allowed for
  nullable fields, matches NULL; ``[]`` matches nothing); ``f_not_in`` is its
  exact complement (NULL rows match unless the list holds ``null``; ``[]``
  matches everything).
- ``f_gt``/``f_gte``/``f_lt``/``f_lte`` (int, str, float, bytes) and
  ``f_contains``/``f_starts_with``/``f_ends_with`` (str) never match NULL;
  ``null`` as their value is an error (omit the key instead).  The string
  operators use ``strpos``/``left``/``right``, so ``%``, ``_`` and ``\\`` are
  plain characters.  Strings compare by the column's collation.
- ``AND: [...]`` holds when all hold (``[]``: true), ``OR: [...]`` when any
  holds (``[]``: false).  ``null`` for them, or for ``f_in``, is an error.

A bad value (``null`` where none is allowed, a string PostgreSQL text cannot
hold, AND/OR nested past :data:`MAX_FILTER_DEPTH`) is a ``GraphQLError``
naming its path, e.g. ``where.OR[1].amount_gt``.  Every value is a bound
parameter with an explicit cast (psycopg would otherwise pick int sizes).
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from graphql import GraphQLError
from psycopg import sql

from .._errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..store import EntitySpec, FieldSpec

__all__ = [
    "FALSE",
    "MAX_FILTER_DEPTH",
    "TRUE",
    "Frag",
    "bound",
    "check_text",
    "compile_where",
    "filter_keys",
    "fmt",
    "ident",
]

#: AND/OR nesting allowed in one ``where`` (deeper is an error, not a stack overflow).
MAX_FILTER_DEPTH = 32

_CAST = {int: "numeric", str: "text", bool: "boolean", bytes: "bytea", float: "float8"}
_ORDERED = frozenset({int, str, float, bytes})
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


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


class Frag(NamedTuple):
    """A piece of SQL text and its parameters, in placeholder order.

    The text is built only from constants in this package and identifiers
    quoted by :func:`ident` (psycopg's ``sql.Identifier``); every value is a
    ``%s`` placeholder with its parameter here.  Plain text, not a tree of
    ``psycopg.sql`` objects: a page statement composed of those took ~0.3 ms
    a request to build and render, a third of the page's own CPU.
    """

    sql: str
    params: tuple[Any, ...] = ()


TRUE = Frag("TRUE")
FALSE = Frag("FALSE")


@functools.lru_cache(maxsize=4096)
def ident(name: str) -> Frag:
    """``name`` quoted as an SQL identifier (by ``psycopg.sql.Identifier``)."""
    return Frag(sql.Identifier(name).as_string(None))


def _join(frags: list[Frag], sep: str, empty: Frag) -> Frag:
    if not frags:
        return empty
    if len(frags) == 1:
        return frags[0]
    joined = sep.join(f"({f.sql})" for f in frags)
    return Frag(joined, tuple(p for f in frags for p in f.params))


@functools.lru_cache(maxsize=1024)
def _pieces(template: str) -> tuple[str, ...]:
    return tuple(template.split("{}"))


def fmt(template: str, *parts: Frag) -> Frag:
    """``template`` (a constant) with each ``{}`` filled by a fragment, params in order."""
    pieces = _pieces(template)
    if len(pieces) != len(parts) + 1:
        raise ValueError(f"{template!r} has {len(pieces) - 1} slots for {len(parts)} fragments")
    text = [pieces[0]]
    params: list[Any] = []
    for part, piece in zip(parts, pieces[1:], strict=True):
        text.append(part.sql)
        text.append(piece)
        params.extend(part.params)
    return Frag("".join(text), tuple(params))


def bound(f: FieldSpec, value: Any) -> Frag:
    """One bound value, cast to the column's type (psycopg would otherwise guess int sizes)."""
    if f.py_type is int:
        value = Decimal(value)  # exact: a Decimal dumps as numeric whatever its size
    elif f.py_type is float:
        value = float(value)
    return Frag("%s::" + _CAST[f.py_type], (value,))


def _array(f: FieldSpec, values: list[Any]) -> Frag:
    if f.py_type is int:
        values = [Decimal(v) for v in values]
    elif f.py_type is float:
        values = [float(v) for v in values]
    return Frag("%s::" + _CAST[f.py_type] + "[]", (values,))


def _condition(f: FieldSpec, op: str, value: Any, where: str) -> Frag:
    col = ident(f.name)
    if op in ("eq", "not"):
        if value is None:
            return fmt("{} IS NULL" if op == "eq" else "{} IS NOT NULL", col)
        _checkbound(f, value, where)
        if op == "eq":
            return fmt("{} = {}", col, bound(f, value))
        # The complement of `f = v`: NULL rows are "not v" too.
        return fmt("{} IS DISTINCT FROM {}" if f.nullable else "{} <> {}", col, bound(f, value))
    if value is None:
        raise GraphQLError(f"{where}: null is not allowed here; leave the key out instead.")
    if op in ("in", "not_in"):
        items = [v for v in value if v is not None]
        for i, v in enumerate(items):
            _checkbound(f, v, f"{where}[{i}]")
        has_null = len(items) != len(value)
        member = _join(
            ([fmt("{} = ANY({})", col, _array(f, items))] if items else [])
            + ([fmt("{} IS NULL", col)] if has_null else []),
            " OR ",
            FALSE,
        )
        if op == "in":
            return member
        # NOT of a NULL membership test would be NULL: say what NULL rows do.
        if not items:
            return fmt("{} IS NOT NULL", col) if has_null else TRUE
        outside = fmt("{} <> ALL({})", col, _array(f, items))
        if not f.nullable:
            return outside
        return fmt("{} IS NOT NULL AND {}" if has_null else "{} IS NULL OR {}", col, outside)
    _checkbound(f, value, where)
    if op in _COMPARE:
        return fmt("{} " + _COMPARE[op] + " {}", col, bound(f, value))
    if op == "contains":
        return fmt("strpos({}, {}) > 0", col, bound(f, value))
    side = "left" if op == "starts_with" else "right"
    length = Frag("%s::int", (len(value),))
    return fmt(side + "({}, {}) = {}", col, length, bound(f, value))


def _checkbound(f: FieldSpec, value: Any, where: str) -> None:
    if f.py_type is str:
        check_text(value, where)


def compile_where(
    keys: Mapping[str, tuple[FieldSpec, str]], where: Mapping[str, Any], path: str, depth: int = 0
) -> Frag:
    """The SQL condition of one (coerced) filter object; ``path`` names it in errors."""
    if depth > MAX_FILTER_DEPTH:
        raise GraphQLError(f"{path}: AND/OR are nested more than {MAX_FILTER_DEPTH} levels deep.")
    parts: list[Frag] = []
    for key, value in where.items():
        here = f"{path}.{key}"
        if key in ("AND", "OR"):
            if value is None:
                raise GraphQLError(f"{here}: null is not allowed here; leave the key out instead.")
            subs = [
                compile_where(keys, sub, f"{here}[{i}]", depth + 1) for i, sub in enumerate(value)
            ]
            parts.append(_join(subs, " AND ", TRUE) if key == "AND" else _join(subs, " OR ", FALSE))
        else:
            f, op = keys[key]  # the schema admits only these keys
            parts.append(_condition(f, op, value, here))
    return _join(parts, " AND ", TRUE)
