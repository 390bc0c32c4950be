"""The GraphQL service: parse, validate and limit a request, then run it on one connection.

:meth:`GraphQLService.prepare` turns the request's query text into a checked
document (cached by text: by-id lookups repeat the same text, and parsing and
validation cost more than the lookup) or into an ``{"errors": [...]}``
response; :meth:`GraphQLService.execute` runs it with graphql-core's
synchronous executor (its async path needs asyncio, and we run under Trio) on
the request's read-only connection.

Limits, each a GraphQL error, never an exception: the query text is at most
``max_body_bytes`` UTF-8 bytes; selections nest at most ``max_depth`` fields
deep (introspection fields, ``__*``, excepted: graphql-core's
MaxIntrospectionDepthRule bounds them); a document has at most
``max_aliases`` aliases and an operation at most ``max_aliases`` root fields
(each list field costs up to three statements: the page, ``totalCount``, and
one ``EXISTS`` for the side of a cursor).  Fixed bounds keep parsing and
validation cheap whatever the text: :data:`MAX_TOKENS` lexical tokens and
:data:`MAX_SELECTIONS` selections, of which :data:`MAX_FRAGMENT_USES` fragment
spreads or inline fragments.  Parsing and validation take a few milliseconds
for ordinary queries and, measured on a slow shared core, up to about 0.2 s
for the worst text these bounds let through (on a cache miss): a caller
serving many clients should run :meth:`GraphQLService.prepare` off the event
loop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import psycopg
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute_sync,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.language import SKIP, ArgumentNode, VisitorAction
from graphql.utilities import validate_input_literal
from graphql.validation import ValuesOfCorrectTypeRule

from ._gql_fast import (
    ByIdPlan,
    Direct,
    ListPlan,
    direct_by_id,
    direct_list,
    plan_by_id,
    plan_list,
    run_direct,
)
from ._gql_filter import filter_keys
from ._gql_schema import GqlContext, build_schema

if TYPE_CHECKING:
    from collections.abc import Sequence

    from graphql import DocumentNode, GraphQLInputType, GraphQLSchema
    from graphql.language import ValueNode
    from graphql.validation import ValidationContext

    from ..store import EntitySpec
    from ._reader import Reader

__all__ = ["GraphQLService", "Prepared"]

#: Distinct query texts kept parsed and validated.
DOCUMENT_CACHE_SIZE = 256
#: Lexical tokens a query may have (the introspection query has ~200): bounds parsing.
MAX_TOKENS = 10_000
#: Fields, fragment spreads and inline fragments a document may write (introspection: ~80).
MAX_SELECTIONS = 1_000
#: Fragment spreads and inline fragments a document may write (introspection: ~30).
MAX_FRAGMENT_USES = 100


@dataclass(frozen=True)
class Prepared:
    """A parsed, validated query operation with its request's variables."""

    document: DocumentNode
    variables: dict[str, Any] | None
    operation_name: str | None
    # Set for a plain by-id or page document: answered without the general executor.
    by_id: ByIdPlan | None = None
    page: ListPlan | None = None
    # The operation runs at most one statement (one root field, which reads
    # one row, one page or the chains): no transaction needed for a snapshot.
    single: bool = False


def _one_statement(operation: OperationDefinitionNode) -> bool:
    """Whether the operation runs at most one SQL statement.

    Each root field of the schema runs at most one (a row by id, a list
    field's page with its count and cursor check, ``_meta``'s chains);
    ``__typename`` and introspection run none.  Fragments at the root are
    not looked into: the answer is then no, which is always safe.
    """
    reads = 0
    for sel in operation.selection_set.selections:
        if not isinstance(sel, FieldNode):
            return False
        reads += not sel.name.value.startswith("__")
    return reads <= 1


def _errors(*messages: str) -> dict[str, Any]:
    return {"errors": [{"message": m} for m in messages]}


class _NamedValuesRule(ValuesOfCorrectTypeRule):
    """ValuesOfCorrectTypeRule whose messages name the argument and input field of a bad literal.

    graphql-core reports ``BigInt cannot represent '1.5'`` alone; with many
    BigInt filter keys the user needs ``where.amount_gt`` to find it.
    """

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self._argument: str | None = None

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
        self._argument = node.name.value

    def leave_argument(self, node: ArgumentNode, *_args: Any) -> None:
        self._argument = None

    def is_valid_value_node(
        self, node: ValueNode, input_type: GraphQLInputType | None
    ) -> VisitorAction:
        if input_type:
            argument = self._argument

            def on_error(error: GraphQLError, path: list[str | int]) -> None:
                message = error.message
                if argument is not None:
                    where = argument + "".join(
                        f"[{p}]" if isinstance(p, int) else f".{p}" for p in path
                    )
                    message = f"Argument `{where}` has an invalid value: {message}"
                self.report_error(
                    GraphQLError(message, error.nodes or node, original_error=error.original_error)
                )

            validate_input_literal(
                node, input_type, on_error, None, None, self.context.hide_suggestions
            )
        return SKIP


_RULES = tuple(_NamedValuesRule if r is ValuesOfCorrectTypeRule else r for r in specified_rules)


class _Shape:
    """Depth, root fields and aliases of a document, without expanding fragments twice."""

    def __init__(self, document: DocumentNode, max_depth: int) -> None:
        self.max_depth = max_depth
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._fragment_depth: dict[str, int] = {}

    def depth(self, selections: SelectionSetNode | None, budget: int) -> int:
        """Field nesting below ``selections``; stops counting once past ``budget``."""
        deepest = 0
        for s in selections.selections if selections else ():
            if isinstance(s, FieldNode):
                if s.name.value.startswith("__"):
                    continue
                d = 1 if budget <= 0 else 1 + self.depth(s.selection_set, budget - 1)
            elif isinstance(s, InlineFragmentNode):
                d = self.depth(s.selection_set, budget)
            else:
                d = self._spread_depth(cast("FragmentSpreadNode", s).name.value)
            deepest = max(deepest, d)
            if deepest > budget:
                break
        return deepest

    def _spread_depth(self, name: str) -> int:
        if name not in self._fragment_depth:
            fragment = self.fragments.get(name)
            self._fragment_depth[name] = 0  # a cycle: validation reports it
            if fragment is not None:
                self._fragment_depth[name] = self.depth(fragment.selection_set, self.max_depth)
        return self._fragment_depth[name]

    def root_keys(self, selections: SelectionSetNode, seen: set[str]) -> set[str]:
        keys: set[str] = set()
        for s in selections.selections:
            if isinstance(s, FieldNode):
                keys.add((s.alias or s.name).value)
            elif isinstance(s, InlineFragmentNode):
                keys |= self.root_keys(s.selection_set, seen)
            elif isinstance(s, FragmentSpreadNode) and s.name.value not in seen:
                seen.add(s.name.value)
                fragment = self.fragments.get(s.name.value)
                if fragment is not None:
                    keys |= self.root_keys(fragment.selection_set, seen)
        return keys


def _count(document: DocumentNode) -> tuple[int, int, int]:
    """Aliases, selections (fields, spreads, inline fragments) and fragment uses written."""
    aliases = selections = fragments = 0
    stack = [
        d.selection_set
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while stack:
        for s in stack.pop().selections:
            selections += 1
            if not isinstance(s, FieldNode):
                fragments += 1
            elif s.alias is not None:
                aliases += 1
            selection_set = getattr(s, "selection_set", None)
            if selection_set is not None:
                stack.append(selection_set)
    return aliases, selections, fragments


class GraphQLService:
    """The GraphQL endpoint's logic, independent of HTTP.

    Args:
        specs: the project's entities; the schema is generated from them.
        max_depth: deepest field nesting a query may select.
        max_aliases: most aliases in a document, and most root fields in an operation.
        max_body_bytes: longest query text, in UTF-8 bytes.

    Raises:
        ConfigError: an entity cannot be given a GraphQL schema (see :func:`build_schema`).
    """

    schema: GraphQLSchema

    def __init__(
        self,
        specs: Sequence[EntitySpec],
        *,
        max_depth: int = 10,
        max_aliases: int = 30,
        max_body_bytes: int = 100_000,
    ) -> None:
        self.schema = build_schema(specs)
        self._by_field = {s.cls.__name__[0].lower() + s.cls.__name__[1:]: s for s in specs}
        self._by_list = {name + "s": (s, filter_keys(s)) for name, s in self._by_field.items()}
        self.max_depth = max_depth
        self.max_aliases = max_aliases
        self.max_body_bytes = max_body_bytes
        self._cache: OrderedDict[str, DocumentNode | list[GraphQLError]] = OrderedDict()
        # prepare() may be called from several threads; the cache is shared.
        self._lock = threading.Lock()

    def prepare(
        self, query: str, variables: dict[str, Any] | None, operation_name: str | None
    ) -> Prepared | dict[str, Any]:
        """Check a request: a :class:`Prepared` operation, or the GraphQL error response to send."""
        if not isinstance(query, str) or not query.strip():
            return _errors("The request has no query: send a GraphQL document in `query`.")
        if len(query) > self.max_body_bytes or len(query.encode()) > self.max_body_bytes:
            return _errors(f"The query is longer than {self.max_body_bytes} bytes.")
        if variables is not None and not isinstance(variables, dict):
            return _errors("`variables` must be a JSON object.")
        if operation_name is not None and not isinstance(operation_name, str):
            return _errors("`operationName` must be a string.")
        checked = self._document(query)
        if isinstance(checked, list):
            return {"errors": [e.formatted for e in checked]}
        operation = get_operation_ast(checked, operation_name)
        if operation is None:
            if operation_name is not None:
                return _errors(f"The query has no operation named {operation_name!r}.")
            return _errors("The query has several operations: choose one with `operationName`.")
        if operation.operation is not OperationType.QUERY:
            return _errors("Only queries are supported (no mutations or subscriptions).")
        by_id = plan_by_id(self.schema, self._by_field, checked, operation_name)
        page = None
        if by_id is None:
            page = plan_list(self.schema, self._by_list, checked, operation_name)
        return Prepared(
            checked, variables, operation_name, by_id, page, single=_one_statement(operation)
        )

    def _document(self, query: str) -> DocumentNode | list[GraphQLError]:
        with self._lock:
            hit = self._cache.get(query)
            if hit is not None:
                self._cache.move_to_end(query)
                return hit
        checked: DocumentNode | list[GraphQLError]
        try:
            document = parse(query, max_lexical_tokens=MAX_TOKENS)
        except GraphQLError as error:
            checked = [error]
        else:
            checked = self._limit_errors(document) or validate(self.schema, document, _RULES)
            if not checked:
                checked = document
        with self._lock:
            self._cache[query] = checked
            while len(self._cache) > DOCUMENT_CACHE_SIZE:
                self._cache.popitem(last=False)
        return checked

    def _limit_errors(self, document: DocumentNode) -> list[GraphQLError]:
        errors = []
        aliases, selections, fragments = _count(document)
        # Validation's cost grows faster than the document (pairs of fields,
        # pairs of fragments): refuse big documents before it runs.
        if selections > MAX_SELECTIONS:
            return [
                GraphQLError(
                    f"The query has {selections} selections; at most {MAX_SELECTIONS} are allowed."
                )
            ]
        if fragments > MAX_FRAGMENT_USES:
            return [
                GraphQLError(
                    f"The query uses fragments {fragments} times; at most {MAX_FRAGMENT_USES} are allowed."
                )
            ]
        if aliases > self.max_aliases:
            errors.append(
                GraphQLError(
                    f"The query uses {aliases} aliases; at most {self.max_aliases} are allowed."
                )
            )
        shape = _Shape(document, self.max_depth)
        try:
            for d in document.definitions:
                if not isinstance(d, OperationDefinitionNode):
                    continue
                roots = len(shape.root_keys(d.selection_set, set()))
                if roots > self.max_aliases:
                    errors.append(
                        GraphQLError(
                            f"The operation selects {roots} root fields; at most "
                            f"{self.max_aliases} are allowed.",
                            d,
                        )
                    )
                if shape.depth(d.selection_set, self.max_depth) > self.max_depth:
                    errors.append(
                        GraphQLError(
                            f"The query nests fields deeper than the limit of {self.max_depth}.", d
                        )
                    )
        except RecursionError:
            errors.append(GraphQLError("The query nests fragments too deeply."))
        return errors

    async def answer(self, reader: Reader, prepared: Prepared) -> dict[str, Any]:
        """The response to ``prepared``, read through ``reader``: what ``POST /graphql`` sends.

        A document a direct path answers reads its one statement on the event
        loop (:meth:`Reader.fetch`); any other, or one the direct path hands
        back, runs :meth:`execute` in a worker thread, without a transaction
        when it has one root field (one statement is its own snapshot).
        """
        direct = self.direct(prepared) if prepared.single else None
        if direct is not None:
            rows = [] if direct.query is None else await reader.fetch(direct.query, direct.params)
            answer = direct.finish(rows)
            if answer is not None:
                return answer
        return await reader.read(lambda conn: self.execute(conn, prepared), single=prepared.single)

    def direct(self, prepared: Prepared) -> Direct | None:
        """The one statement answering ``prepared`` on a direct path, or None (see ``_gql_fast``)."""
        if prepared.by_id is not None:
            return direct_by_id(prepared.by_id, prepared.variables)
        if prepared.page is not None:
            return direct_list(self.schema, prepared.page, prepared.variables)
        return None

    def execute(self, conn: psycopg.Connection[Any], prepared: Prepared) -> dict[str, Any]:
        """Run a prepared query on ``conn``: ``{"data": ..., "errors"?: [...]}``, JSON-able.

        Bad arguments (limit, orderBy, cursor, filter values, variables) come
        back as GraphQL errors.  A psycopg error (statement timeout, lost
        connection) is re-raised as it is, for the caller to map: the
        transaction is aborted and nothing further could run on it.
        """
        direct = self.direct(prepared)
        if direct is not None:
            fast = run_direct(conn, direct)
            if fast is not None:
                return fast
        result = execute_sync(
            self.schema,
            prepared.document,
            context_value=GqlContext(conn),
            variable_values=prepared.variables,
            operation_name=prepared.operation_name,
        )
        for error in result.errors or ():
            if isinstance(error.original_error, psycopg.Error):
                raise error.original_error
        return cast("dict[str, Any]", result.formatted)
