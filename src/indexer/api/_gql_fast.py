"""Direct paths for the commonest requests: one entity by id, or one page, plain fields.

``{ holding(id: $id) { id token balance } }`` is what a dapp sends most, and
graphql-core's general executor spent ~250 µs of a ~450 µs request on it
(resolver dispatch, completion, result building), more than the lookup
itself.  A document of exactly that shape (one root field, the by-id field
of an entity, its ``id`` argument a string literal or variable, only scalar
fields of the entity below, no aliases, directives or fragments) is answered
here: the same statement as the resolver's, each value serialised by the
schema's own scalar (so the answer is byte-for-byte the executor's).  Any
doubt (another shape, a value a scalar refuses, a variable that is not a
string) returns None and the caller runs the general executor, which then
produces the right answer or error.  ``tests/api/test_graphql_fast.py``
compares both paths.

A page document (``{ holdings(where: ..., orderBy: ..., limit: ...) { items {
id balance } totalCount pageInfo { hasNextPage endCursor } } }``: one root
list field, its arguments literals or variables, ``items`` of plain scalar
fields, ``totalCount``, ``pageInfo`` of its four fields, no aliases,
directives or fragments) is answered the same way: the arguments coerced by
graphql-core's own ``get_variable_values``/``get_argument_values`` (so they
are what a resolver would get), the same :class:`Page` and statement, and
each item serialised field by field.  The executor completed ~150 fields for
a 50-item page, ~1.7 ms of a ~2.6 ms page in-process; this path takes
~0.9 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    OperationDefinitionNode,
    StringValueNode,
    VariableNode,
    get_operation_ast,
)
from graphql.execution.values import get_argument_values, get_variable_values
from psycopg.rows import dict_row

from ._gql_filter import check_text
from ._gql_query import COUNT, NEXT, PREVIOUS, ROWS, Page, by_id_query, plan_page

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import psycopg
    from graphql import DocumentNode, GraphQLSchema

    from ..store import EntitySpec

__all__ = [
    "ByIdPlan",
    "Direct",
    "ListPlan",
    "direct_by_id",
    "direct_list",
    "plan_by_id",
    "plan_list",
    "run_direct",
]


@dataclass(frozen=True, slots=True)
class ByIdPlan:
    """What a by-id document asks: which entity, where its id comes from, which fields."""

    root: str
    spec: EntitySpec
    id_literal: str | None
    id_variable: str | None
    fields: tuple[tuple[str, Callable[[Any], Any]], ...]


def plan_by_id(
    schema: GraphQLSchema,
    by_field: Mapping[str, EntitySpec],
    document: DocumentNode,
    operation_name: str | None,
) -> ByIdPlan | None:
    """The plan of a by-id document, or None if it is any other shape."""
    found_root = _single_root(document, operation_name)
    if found_root is None:
        return None
    op, root = found_root
    spec = by_field.get(root.name.value)
    arguments = root.arguments or ()
    if spec is None or len(arguments) != 1 or arguments[0].name.value != "id":
        return None
    value = arguments[0].value
    literal = value.value if isinstance(value, StringValueNode) else None
    variable = value.name.value if isinstance(value, VariableNode) else None
    if literal is None and variable is None:
        return None
    if variable is not None and any(
        d.variable.name.value == variable and d.default_value is not None
        for d in op.variable_definitions or ()
    ):
        return None
    entity = schema.get_type(spec.cls.__name__)
    if not isinstance(entity, GraphQLObjectType):
        return None
    fields = _scalar_fields(entity, root)
    if fields is None:
        return None
    return ByIdPlan(root.name.value, spec, literal, variable, fields)


def _single_root(
    document: DocumentNode, operation_name: str | None
) -> tuple[OperationDefinitionNode, FieldNode] | None:
    """The operation and its one root field, plain (no alias or directive); None otherwise."""
    if len(document.definitions) != 1:
        return None
    op = get_operation_ast(document, operation_name)
    if not isinstance(op, OperationDefinitionNode) or op.directives:
        return None
    (root, *more) = op.selection_set.selections
    if more or not isinstance(root, FieldNode) or root.alias or root.directives:
        return None
    return op, root


@dataclass(frozen=True, slots=True)
class Direct:
    """One request answered by one statement: the statement, and how its rows become the answer.

    ``query`` is None when no part needs the database (``pageInfo {
    hasPreviousPage }`` without a cursor); ``finish`` then gets no rows.
    ``finish`` returns None to hand the request to the general executor.
    """

    query: bytes | None
    params: tuple[Any, ...]
    finish: Callable[[list[dict[str, Any]]], dict[str, Any] | None]


def direct_by_id(plan: ByIdPlan, variables: Mapping[str, Any] | None) -> Direct | None:
    """The statement and shaping of a by-id document, or None for the executor."""
    row_id = plan.id_literal
    if plan.id_variable is not None:
        row_id = (variables or {}).get(plan.id_variable)
    if not isinstance(row_id, str):
        return None
    try:
        check_text(row_id, "`id`")
    except GraphQLError:
        return None

    def finish(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not rows:
            return {"data": {plan.root: None}}
        row, out = rows[0], {}
        try:
            for name, serialize in plan.fields:
                value = row[name]
                out[name] = None if value is None else serialize(value)
        except GraphQLError:
            return None
        return {"data": {plan.root: out}}

    return Direct(by_id_query(plan.spec), (row_id,), finish)


def run_direct(conn: psycopg.Connection[Any], direct: Direct) -> dict[str, Any] | None:
    """``direct`` on a synchronous connection (the general path's threads)."""
    rows: list[dict[str, Any]] = []
    if direct.query is not None:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(direct.query, direct.params).fetchall()
    return direct.finish(rows)


#: pageInfo's fields: the Page method answering each, and the part it needs.
_PAGE_INFO = {
    "hasNextPage": ("has_next", NEXT),
    "hasPreviousPage": ("has_previous", PREVIOUS),
    "startCursor": ("start_cursor", ROWS),
    "endCursor": ("end_cursor", ROWS),
}


@dataclass(frozen=True, slots=True)
class ListPlan:
    """What a page document asks: which list field, its arguments, which parts in which order."""

    root: str
    spec: EntitySpec
    keys: Mapping[str, Any]
    field: GraphQLField
    node: FieldNode
    operation: OperationDefinitionNode
    #: ("items", item fields) | ("totalCount", ()) | ("pageInfo", pageInfo field names)
    selection: tuple[tuple[str, tuple[Any, ...]], ...]
    wants: frozenset[str]


def _plain(node: FieldNode) -> bool:
    return not (node.alias or node.directives or node.arguments)


def _scalar_fields(
    entity: GraphQLObjectType, node: FieldNode
) -> tuple[tuple[str, Callable[[Any], Any]], ...] | None:
    """The entity fields a selection names, each with its serialiser; None if not all plain scalars."""
    if node.selection_set is None:
        return None
    fields: list[tuple[str, Callable[[Any], Any]]] = []
    for sel in node.selection_set.selections:
        if not isinstance(sel, FieldNode) or not _plain(sel) or sel.selection_set is not None:
            return None
        field = entity.fields.get(sel.name.value)
        if field is None:
            return None
        kind = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        if not isinstance(kind, GraphQLScalarType):
            return None
        fields.append((sel.name.value, kind.serialize))
    return tuple(fields)


def plan_list(
    schema: GraphQLSchema,
    by_list_field: Mapping[str, tuple[EntitySpec, Mapping[str, Any]]],
    document: DocumentNode,
    operation_name: str | None,
) -> ListPlan | None:
    """The plan of a page document, or None if it is any other shape.

    ``by_list_field``: list field name -> (entity, its filter keys).
    """
    found_root = _single_root(document, operation_name)
    if found_root is None:
        return None
    op, root = found_root
    found = by_list_field.get(root.name.value)
    query_type = schema.query_type
    if found is None or query_type is None or root.selection_set is None:
        return None
    spec, keys = found
    field = query_type.fields[root.name.value]
    page_type = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if not isinstance(page_type, GraphQLObjectType):
        return None
    items = page_type.fields["items"].type
    while isinstance(items, GraphQLNonNull | GraphQLList):
        items = items.of_type
    if not isinstance(items, GraphQLObjectType):
        return None
    selection: list[tuple[str, tuple[Any, ...]]] = []
    wants: set[str] = set()
    for sel in root.selection_set.selections:
        if not isinstance(sel, FieldNode) or not _plain(sel):
            return None
        name = sel.name.value
        if any(name == done for done, _ in selection):
            return None  # the executor merges repeated fields; leave that to it
        if name == "items":
            fields = _scalar_fields(items, sel)
            if fields is None:
                return None
            selection.append((name, fields))
            wants.add(ROWS)
        elif name == "totalCount" and sel.selection_set is None:
            selection.append((name, ()))
            wants.add(COUNT)
        elif name == "pageInfo" and sel.selection_set is not None:
            names: list[str] = []
            for sub in sel.selection_set.selections:
                if (
                    not isinstance(sub, FieldNode)
                    or not _plain(sub)
                    or sub.name.value not in _PAGE_INFO
                    or sub.name.value in names
                ):
                    return None
                names.append(sub.name.value)
                wants.add(_PAGE_INFO[sub.name.value][1])
            selection.append((name, tuple(names)))
        else:
            return None
    return ListPlan(
        root.name.value, spec, keys, field, root, op, tuple(selection), frozenset(wants)
    )


def direct_list(
    schema: GraphQLSchema, plan: ListPlan, variables: Mapping[str, Any] | None
) -> Direct | None:
    """The statement and shaping of a page document, or None for the executor (and its errors)."""
    coerced = get_variable_values(
        schema, plan.operation.variable_definitions or [], dict(variables or {})
    )
    if isinstance(coerced, list):
        return None
    try:
        args = get_argument_values(plan.field, plan.node, coerced)
        page = Page(None, plan_page(plan.spec, plan.keys, args), plan.wants)
        statement = page.statement(plan.wants)
    except GraphQLError:
        return None

    def finish(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        page.accept(plan.wants, rows)
        out: dict[str, Any] = {}
        try:
            for name, sub in plan.selection:
                if name == "items":
                    out[name] = [
                        {n: None if (v := row[n]) is None else ser(v) for n, ser in sub}
                        for row in page.rows()
                    ]
                elif name == "totalCount":
                    out[name] = GraphQLInt.serialize(page.total_count())
                else:
                    out[name] = {n: getattr(page, _PAGE_INFO[n][0])() for n in sub}
        except GraphQLError:
            return None
        return {"data": {plan.root: out}}

    if statement is None:
        return Direct(None, (), finish)
    return Direct(statement.sql.encode(), statement.params, finish)
