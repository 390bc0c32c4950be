"""The GraphQL schema, generated from the entity classes in Ponder's shape.

``class Holding(Entity)`` gives the object type ``Holding`` (fields named
exactly as the Python attributes, ``!`` unless ``| None``), the input type
``HoldingFilter`` (see :mod:`._gql_filter` for the operators and their NULL
semantics), ``HoldingPage { items, pageInfo, totalCount }``, and two root
fields: ``holding(id: String!): Holding`` and ``holdings(where, orderBy,
orderDirection, limit, after, before): HoldingPage!`` (the class name with a
lower-cased first letter; the plural appends ``s``).

Field types:

- ``int``   -> ``BigInt``: a decimal string in responses (``"-12"``); inputs
  take a decimal string or a GraphQL/JSON integer, at most 78 digits
  (numeric(78,0)); ``"1.5"``, ``1.5`` or ``"abc"`` are errors.
- ``str``   -> ``String``
- ``bool``  -> ``Boolean``
- ``float`` -> ``Float`` (a non-finite value cannot be represented in
  GraphQL: such a field comes back as an error)
- ``bytes`` -> ``Bytes``: a ``0x``-prefixed hex string (lower-case in
  responses, either case in inputs, even length).

``_meta { chains { chainId block } }`` gives the committed block of each
chain from ``_indexer_chains``; both are ``BigInt``, because GraphQL's
``Int`` is 32-bit and chain ids already exceed it (Palm: 11297108109), as
fast chains' block numbers may in time.

``totalCount`` is ``Int`` (32-bit): a count past 2^31 - 1 is a field error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    InlineFragmentNode,
    IntValueNode,
    StringValueNode,
)

from .._errors import ConfigError
from ._gql_filter import filter_keys
from ._gql_query import (
    BIGINT_LIMIT,
    COUNT,
    NEXT,
    PREVIOUS,
    ROWS,
    Page,
    fetch_by_id,
    fetch_chains,
    plan_page,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import psycopg
    from graphql import (
        FragmentDefinitionNode,
        GraphQLInputType,
        GraphQLOutputType,
        GraphQLResolveInfo,
        SelectionSetNode,
    )
    from graphql.language import ConstValueNode

    from ..store import EntitySpec, FieldSpec

__all__ = ["BigIntType", "BytesType", "GqlContext", "build_schema"]

_INT_RE = re.compile(r"-?[0-9]+")
_HEX_RE = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_NAME_RE = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


@dataclass(frozen=True)
class GqlContext:
    """What resolvers get as ``info.context``: the request's read-only connection."""

    conn: psycopg.Connection[Any]


if TYPE_CHECKING:
    _Info: TypeAlias = GraphQLResolveInfo[GqlContext]


def _bigint_in(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and len(value) <= 80 and _INT_RE.fullmatch(value):
        number = int(value)
    else:
        raise GraphQLError(
            f"BigInt cannot represent {value!r}: use a decimal integer string such as "
            f'"-12" or an integer.'
        )
    if not -BIGINT_LIMIT < number < BIGINT_LIMIT:
        raise GraphQLError(f"BigInt {value!r} has more than 78 digits (numeric(78,0)).")
    return number


def _bigint_literal(node: ConstValueNode) -> int:
    if isinstance(node, IntValueNode | StringValueNode):
        return _bigint_in(node.value)
    raise GraphQLError('BigInt takes a decimal integer string such as "-12" or an integer literal.')


def _bigint_out(value: Any) -> str:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)  # a connection without the int loader
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise GraphQLError(f"BigInt cannot represent {value!r}.")


def _bytes_in(value: Any) -> bytes:
    if isinstance(value, str) and _HEX_RE.fullmatch(value):
        return bytes.fromhex(value[2:])
    raise GraphQLError(
        f"Bytes cannot represent {value!r}: use 0x followed by an even number of hex digits."
    )


def _bytes_literal(node: ConstValueNode) -> bytes:
    if isinstance(node, StringValueNode):
        return _bytes_in(node.value)
    raise GraphQLError('Bytes takes a string such as "0x00ff".')


def _bytes_out(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    raise GraphQLError(f"Bytes cannot represent {value!r}.")


BigIntType = GraphQLScalarType(
    "BigInt",
    description="An integer of up to 78 digits, as a decimal string (inputs also take an integer).",
    coerce_output_value=_bigint_out,
    coerce_input_value=_bigint_in,
    coerce_input_literal=_bigint_literal,
)
BytesType = GraphQLScalarType(
    "Bytes",
    description="A byte string as 0x-prefixed hex.",
    coerce_output_value=_bytes_out,
    coerce_input_value=_bytes_in,
    coerce_input_literal=_bytes_literal,
)

_SCALARS: dict[type, GraphQLScalarType] = {
    int: BigIntType,
    str: GraphQLString,
    bool: GraphQLBoolean,
    float: GraphQLFloat,
    bytes: BytesType,
}


def _page(attr: str) -> Callable[[Page, _Info], Any]:
    def resolve(page: Page, _info: _Info) -> Any:
        return getattr(page, attr)()

    return resolve


_PAGE_INFO = GraphQLObjectType(
    "PageInfo",
    {
        "hasNextPage": GraphQLField(GraphQLNonNull(GraphQLBoolean), resolve=_page("has_next")),
        "hasPreviousPage": GraphQLField(
            GraphQLNonNull(GraphQLBoolean), resolve=_page("has_previous")
        ),
        "startCursor": GraphQLField(GraphQLString, resolve=_page("start_cursor")),
        "endCursor": GraphQLField(GraphQLString, resolve=_page("end_cursor")),
    },
)

_CHAIN = GraphQLObjectType(
    "_ChainMeta",
    {
        "chainId": GraphQLField(GraphQLNonNull(BigIntType)),
        "block": GraphQLField(GraphQLNonNull(BigIntType), description="The committed block."),
    },
)
_META = GraphQLObjectType(
    "_Meta",
    {
        "chains": GraphQLField(
            GraphQLNonNull(GraphQLList(GraphQLNonNull(_CHAIN))),
            resolve=lambda _meta, info: fetch_chains(info.context.conn),
        )
    },
)

# Names the schema always holds; an entity type may not take them.
_RESERVED_TYPES = frozenset(
    {"Query", "PageInfo", "BigInt", "Bytes", "String", "Int", "Float", "Boolean", "ID"}
    | {"_Meta", "_ChainMeta"}
)


def _output_type(f: FieldSpec) -> GraphQLOutputType:
    scalar = _SCALARS[f.py_type]
    return scalar if f.nullable else GraphQLNonNull(scalar)


def _filter_type(spec: EntitySpec, name: str) -> GraphQLInputObjectType:
    keys = filter_keys(spec)

    def fields() -> dict[str, GraphQLInputField]:
        out: dict[str, GraphQLInputField] = {}
        for key, (f, op) in keys.items():
            scalar: GraphQLInputType = _SCALARS[f.py_type]
            if op in ("in", "not_in"):
                # A null item means "IS NULL", so only nullable fields take one.
                scalar = GraphQLList(scalar if f.nullable else GraphQLNonNull(scalar))
            out[key] = GraphQLInputField(scalar)
        nested = GraphQLList(GraphQLNonNull(filter_type))
        out["AND"] = GraphQLInputField(nested, description="All of these hold.")
        out["OR"] = GraphQLInputField(nested, description="At least one of these holds.")
        return out

    filter_type = GraphQLInputObjectType(name, fields)
    return filter_type


def _check_names(specs: Sequence[EntitySpec]) -> None:
    types: dict[str, str] = {}
    fields: dict[str, str] = {"_meta": "the _meta field"}
    for spec in specs:
        name = spec.cls.__name__
        if not _NAME_RE.fullmatch(name) or name.startswith("__"):
            raise ConfigError(
                f"entity {name}: the class name is not a valid GraphQL type name "
                f"(ASCII letters, digits and _, not starting with __)."
            )
        single = name[0].lower() + name[1:]
        for type_name in (name, f"{name}Filter", f"{name}Page"):
            if type_name in _RESERVED_TYPES or type_name in types:
                other = types.get(type_name, "the API's own types")
                raise ConfigError(
                    f"entity {name}: its GraphQL type {type_name!r} clashes with {other}; rename the class."
                )
            types[type_name] = f"entity {name}"
        for field_name in (single, single + "s"):
            if field_name in fields:
                raise ConfigError(
                    f"entity {name}: its GraphQL query field {field_name!r} clashes with "
                    f"{fields[field_name]}; rename the class."
                )
            fields[field_name] = f"entity {name}"


def _resolve_one(spec: EntitySpec) -> Callable[..., Any]:
    def resolve(_root: Any, info: _Info, id: str) -> Any:
        return fetch_by_id(info.context.conn, spec, id)

    return resolve


_PARTS = {
    "items": ROWS,
    "totalCount": COUNT,
    "startCursor": ROWS,
    "endCursor": ROWS,
    "hasNextPage": NEXT,
    "hasPreviousPage": PREVIOUS,
}


def _fields(
    selections: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    seen: frozenset[str] = frozenset(),
) -> Iterator[FieldNode]:
    """Every field a selection set may resolve, through fragments, whatever their directives."""
    for sel in selections.selections if selections is not None else ():
        if isinstance(sel, FieldNode):
            yield sel
        elif isinstance(sel, InlineFragmentNode):
            yield from _fields(sel.selection_set, fragments, seen)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value not in seen:
            spread = fragments.get(sel.name.value)
            if spread is not None:
                yield from _fields(spread.selection_set, fragments, seen | {sel.name.value})


def _page_parts(
    field_nodes: Sequence[FieldNode], fragments: Mapping[str, FragmentDefinitionNode]
) -> frozenset[str]:
    """The parts of a list field its selection may ask for (a superset: directives are ignored)."""
    parts: set[str] = set()
    for node in field_nodes:
        for f in _fields(node.selection_set, fragments):
            if f.name.value == "pageInfo":
                for sub in _fields(f.selection_set, fragments):
                    parts.add(_PARTS.get(sub.name.value, ""))
            else:
                parts.add(_PARTS.get(f.name.value, ""))
    parts.discard("")
    return frozenset(parts)


def _resolve_page(spec: EntitySpec) -> Callable[..., Any]:
    keys = filter_keys(spec)

    def resolve(_root: Any, info: _Info, **args: Any) -> Page:
        # Arguments are checked here, before any statement runs; the page's
        # one statement runs when the first of its fields is resolved.
        wants = _page_parts(info.field_nodes, info.fragments)
        return Page(info.context.conn, plan_page(spec, keys, args), wants)

    return resolve


def build_schema(specs: Sequence[EntitySpec]) -> GraphQLSchema:
    """The query-only schema of ``specs``; resolvers read ``info.context`` (a :class:`GqlContext`).

    Raises:
        ConfigError: a class or field name cannot be a GraphQL name or two
            generated names clash.
    """
    _check_names(specs)
    query: dict[str, GraphQLField] = {}
    for spec in specs:
        name = spec.cls.__name__
        single = name[0].lower() + name[1:]
        obj = GraphQLObjectType(name, {f.name: GraphQLField(_output_type(f)) for f in spec.fields})
        page = GraphQLObjectType(
            f"{name}Page",
            {
                "items": GraphQLField(
                    GraphQLNonNull(GraphQLList(GraphQLNonNull(obj))),
                    resolve=lambda page, _info: page.rows(),
                ),
                "pageInfo": GraphQLField(
                    GraphQLNonNull(_PAGE_INFO), resolve=lambda page, _info: page
                ),
                "totalCount": GraphQLField(
                    GraphQLNonNull(GraphQLInt), resolve=lambda page, _info: page.total_count()
                ),
            },
        )
        query[single] = GraphQLField(
            obj,
            args={"id": GraphQLArgument(GraphQLNonNull(GraphQLString))},
            resolve=_resolve_one(spec),
        )
        query[single + "s"] = GraphQLField(
            GraphQLNonNull(page),
            args={
                "where": GraphQLArgument(_filter_type(spec, f"{name}Filter")),
                "orderBy": GraphQLArgument(GraphQLString),
                "orderDirection": GraphQLArgument(GraphQLString),
                "limit": GraphQLArgument(GraphQLInt),
                "after": GraphQLArgument(GraphQLString),
                "before": GraphQLArgument(GraphQLString),
            },
            resolve=_resolve_page(spec),
        )
    query["_meta"] = GraphQLField(GraphQLNonNull(_META), resolve=lambda _root, _info: {})
    return GraphQLSchema(GraphQLObjectType("Query", query))
