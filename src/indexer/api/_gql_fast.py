"""A direct path for the commonest request: one entity by id, plain fields.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    OperationDefinitionNode,
    StringValueNode,
    VariableNode,
    get_operation_ast,
)

from ._gql_query import fetch_by_id

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import psycopg
    from graphql import DocumentNode, GraphQLSchema

    from ..store import EntitySpec

__all__ = ["ByIdPlan", "plan_by_id", "run_by_id"]


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
    if len(document.definitions) != 1:
        return None
    op = get_operation_ast(document, operation_name)
    if not isinstance(op, OperationDefinitionNode) or op.directives:
        return None
    (root, *more) = op.selection_set.selections
    if more or not isinstance(root, FieldNode) or root.alias or root.directives:
        return None
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
    if not isinstance(entity, GraphQLObjectType) or root.selection_set is None:
        return None
    fields: list[tuple[str, Callable[[Any], Any]]] = []
    for sel in root.selection_set.selections:
        if not isinstance(sel, FieldNode) or sel.alias or sel.directives or sel.arguments:
            return None
        field = entity.fields.get(sel.name.value)
        if field is None or sel.selection_set is not None:
            return None
        kind = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        if not isinstance(kind, GraphQLScalarType):
            return None
        fields.append((sel.name.value, kind.serialize))
    return ByIdPlan(root.name.value, spec, literal, variable, tuple(fields))


def run_by_id(
    conn: psycopg.Connection[Any], plan: ByIdPlan, variables: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The response, or None to let the general executor answer."""
    row_id = plan.id_literal
    if plan.id_variable is not None:
        row_id = (variables or {}).get(plan.id_variable)
    if not isinstance(row_id, str):
        return None
    try:
        row = fetch_by_id(conn, plan.spec, row_id)
        if row is None:
            return {"data": {plan.root: None}}
        out = {}
        for name, serialize in plan.fields:
            value = row[name]
            out[name] = None if value is None else serialize(value)
    except GraphQLError:
        return None
    return {"data": {plan.root: out}}
