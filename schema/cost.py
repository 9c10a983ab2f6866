"""What an operation would cost, computed from its document before it runs, and refused above a limit.

Depth, alias and token limits bound the shape of a document, not the work it asks for: `assets(first: 500)`
with `executions(first: 500)` under each node is shallow and short, yet asks for 250,000 executions. The cost
is an upper bound on the number of objects the operation resolves:

- a leaf field (scalar, enum, or a list of them) costs nothing: it is read from an object already fetched;
- an object field costs 1 plus the cost of its selections;
- a list field costs its size times (1 + the cost of its selections). Its size is its `first` argument (or the
  default page size), the size of the page of the connection it belongs to (`edges`, `nodes`), the node limit for
  lineage (`lineage(limit)`, `upstream`, `downstream`), the path length for `lineagePath`, the number of
  representations for `_entities`, and the default page size for any other list.

Arguments given as variables are resolved; values out of their range are clamped to it (the resolver refuses them
with its own, precise message). Fragments and inline fragments count like the selections they stand for;
introspection (`__schema`, `__type`) is bounded by the schema itself and costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_leaf_type,
    is_list_type,
)
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from gateway.settings import Settings

CODE = "QUERY_TOO_COSTLY"

# Lists bounded by the lineage node limit although they take no `limit` argument.
_LINEAGE_LISTS = frozenset({("Asset", "upstream"), ("Asset", "downstream")})
# Objects whose lists are as long as a lineage path: at most one hop per level of the deepest lineage.
_PATH_TYPES = frozenset({"LineagePath"})


@dataclass(frozen=True)
class CostModel:
    default_page_size: int
    max_page_size: int
    lineage_max_nodes: int
    lineage_max_depth: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CostModel:
        return cls(
            default_page_size=min(settings.default_page_size, settings.max_page_size),
            max_page_size=settings.max_page_size,
            lineage_max_nodes=settings.lineage_max_nodes,
            lineage_max_depth=settings.lineage_max_depth,
        )


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
        model: CostModel,
    ) -> None:
        self.schema = schema
        self.model = model
        self.variables = dict(variables)
        # A variable the client left out takes the default the operation declares.
        for definition in operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in self.variables and isinstance(definition.default_value, IntValueNode):
                self.variables[name] = int(definition.default_value.value)
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        # A fragment costs the same wherever it is spread (given the page it is spread into): computing it once
        # keeps a document that spreads fragments into fragments from costing exponential time to cost.
        self._fragment_costs: dict[tuple[str, int | None], int] = {}
        self._expanding: set[str] = set()

    def selections(self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None, page: int | None) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, target, page)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, page)
        return total

    def fragment(self, name: str, page: int | None) -> int:
        key = (name, page)
        if key in self._fragment_costs:
            return self._fragment_costs[key]
        definition = self.fragments.get(name)
        # Unknown and cyclic fragments are validation errors, reported on their own.
        if definition is None or name in self._expanding:
            return 0
        self._expanding.add(name)
        try:
            target = self.schema.get_type(definition.type_condition.name.value)
            cost = self.selections(definition.selection_set, target, page)
        finally:
            self._expanding.discard(name)
        self._fragment_costs[key] = cost
        return cost

    def field(self, node: FieldNode, parent: GraphQLNamedType | None, page: int | None) -> int:
        name = node.name.value
        if name.startswith("__") or node.selection_set is None:
            return 0
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 0
        definition = parent.fields.get(name)
        if definition is None:
            return 0
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        own = self.own_size(node, parent.name, named.name, set(definition.args))
        if is_list_type(get_nullable_type(definition.type)):
            size = own if own is not None else page if page is not None else self.model.default_page_size
            return size * (1 + self.selections(node.selection_set, named, None))
        # An object with a size of its own (a connection, a lineage graph) passes it on to its lists.
        return 1 + self.selections(node.selection_set, named, own)

    def own_size(self, node: FieldNode, parent: str, returns: str, arguments: set[str]) -> int | None:
        values = {argument.name.value: argument.value for argument in node.arguments or ()}
        model = self.model
        if "first" in arguments:
            return _clamp(self.integer(values.get("first")), model.default_page_size, model.max_page_size)
        if "limit" in arguments:
            return _clamp(self.integer(values.get("limit")), model.lineage_max_nodes, model.lineage_max_nodes)
        if "representations" in arguments:
            return self.length(values.get("representations"))
        if (parent, node.name.value) in _LINEAGE_LISTS:
            return model.lineage_max_nodes
        if returns in _PATH_TYPES:
            return model.lineage_max_depth + 1
        return None

    def value(self, node: ValueNode | None) -> Any:
        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        return node

    def integer(self, node: ValueNode | None) -> int | None:
        value = self.value(node)
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return None

    def length(self, node: ValueNode | None) -> int | None:
        value = self.value(node)
        if isinstance(value, ListValueNode):
            return len(value.values)
        if isinstance(value, list):
            return len(value)
        return None


def _clamp(value: int | None, default: int, ceiling: int) -> int:
    if value is None:
        return default
    return max(1, min(value, ceiling))


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    model: CostModel,
) -> int | None:
    """The cost of the operation `operation_name` names (or the only one), or None when there is no such one."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[operation.operation]
    walker = _Walker(schema, document, operation, variables or {}, model)
    return walker.selections(operation.selection_set, root, None)


def too_costly(cost: int, limit: int) -> GraphQLError:
    return GraphQLError(
        f"the operation would cost {cost}, more than the limit of {limit}: ask for smaller pages (`first`, `limit`)"
        " or fewer nested lists",
        extensions={"code": CODE, "cost": cost, "maxCost": limit},
    )


class QueryCostLimiter(SchemaExtension):
    """Refuses, after validation and before execution, an operation whose cost exceeds the limit."""

    def __init__(self, max_cost: int, model: CostModel) -> None:
        self.max_cost = max_cost
        self.model = model

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is not None and context.result is None:
            cost = operation_cost(
                context.schema._schema, context.graphql_document, context.operation_name, context.variables, self.model
            )
            if cost is not None and cost > self.max_cost:
                # A result set before execution is what Strawberry returns instead of executing.
                context.result = ExecutionResult(data=None, errors=[too_costly(cost, self.max_cost)])
        yield
