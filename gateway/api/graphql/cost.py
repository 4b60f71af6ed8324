"""A query's cost, worked out before it runs, and the extension that refuses a costly one.

Each field selected costs 1. A field that takes a page size (`first` or `last`) multiplies
the cost of what it selects by that size: the value sent (a literal or a variable), or the
argument's default when none is. A size above the largest page any field serves counts as
that largest page: the field refuses it with its own error anyway. So `transfers(first: 100)
{ edges { node { member { transfers(first: 100) { edges { node { id } } } } } } }` costs
about 100 x 100 x 3. Fragments and inline fragments count as if written in place (an upper
bound where they select on different types). ``@skip`` and ``@include`` are ignored: the
bound holds either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
    is_interface_type,
    is_object_type,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.type import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef
from strawberry.extensions import SchemaExtension

from gateway.api.graphql.members import MAX_PAGE
from gateway.api.graphql.rewards import MAX_CATALOGUE
from gateway.api.graphql.settlement import MAX_PERIODS
from gateway.challenges.standings import MAX_BADGES

PAGE_SIZE_ARGUMENTS = ("first", "last")
# The most items any field returns in one page (each refuses a larger `first` itself).
LARGEST_PAGE = max(MAX_PAGE, MAX_BADGES, MAX_CATALOGUE, MAX_PERIODS)
QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"

Composite = Any  # a GraphQL object, interface or union type


class _Costing:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: VariableValues,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self._fragment_costs: dict[str, int] = {}  # a fragment spread 1,000 times is costed once
        self.uses_variables = False  # whether a page size came from a variable

    def selection_set(self, parent: Composite, selections: SelectionSetNode | None) -> int:
        if selections is None:
            return 0
        total = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total += self.field(parent, selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_set(on, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value)
        return total

    def fragment(self, name: str) -> int:
        if name not in self._fragment_costs:
            definition = self.fragments[name]
            on = self.schema.get_type(definition.type_condition.name.value)
            self._fragment_costs[name] = 0  # validation has refused cycles already
            self._fragment_costs[name] = self.selection_set(on, definition.selection_set)
        return self._fragment_costs[name]

    def field(self, parent: Composite, node: FieldNode) -> int:
        definition = self._definition(parent, node.name.value)
        if definition is None:  # validation has refused unknown fields already
            return 1
        children = self.selection_set(get_named_type(definition.type), node.selection_set)
        return 1 + self._page_size(definition, node) * children

    def _definition(self, parent: Composite, name: str) -> GraphQLField | None:
        if name == "__typename":
            return TypeNameMetaFieldDef
        if parent is self.schema.query_type and name == "__schema":
            return SchemaMetaFieldDef
        if parent is self.schema.query_type and name == "__type":
            return TypeMetaFieldDef
        if is_object_type(parent) or is_interface_type(parent):
            field: GraphQLField | None = parent.fields.get(name)
            return field
        return None

    def _page_size(self, definition: GraphQLField, node: FieldNode) -> int:
        if not any(name in definition.args for name in PAGE_SIZE_ARGUMENTS):
            return 1
        if any(isinstance(argument.value, VariableNode) for argument in node.arguments or ()):
            self.uses_variables = True
        values = get_argument_values(definition, node, self.variables)
        sizes = [values.get(name) for name in PAGE_SIZE_ARGUMENTS]
        given = [size for size in sizes if isinstance(size, int)]
        return min(max(1, *given), LARGEST_PAGE) if given else 1


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: VariableValues,
) -> int:
    return _costing(schema, operation, fragments, variables)[0]


def _costing(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: VariableValues,
) -> tuple[int, bool]:
    """The cost, and whether it depends on the variables' values."""
    root: GraphQLObjectType | None = schema.get_root_type(operation.operation)
    costing = _Costing(schema, fragments, variables)
    return costing.selection_set(root, operation.selection_set), costing.uses_variables


# Operations (query text, operation name, budget) known to be within their budget whatever
# their variables: the same document again is not costed again. Bounded: cleared when full.
_WITHIN_BUDGET: set[tuple[str, str | None, int]] = set()
_WITHIN_BUDGET_SIZE = 1024


class QueryCostLimiter(SchemaExtension):
    """Refuse, before execution, an operation that costs more than ``max_cost``."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        known = (context.query or "", context.operation_name, self.max_cost)
        if known in _WITHIN_BUDGET:
            yield
            return
        cost = self._cost()
        if cost is not None and cost > self.max_cost:
            raise GraphQLError(
                f"The query costs {cost}, over the budget of {self.max_cost}: ask for smaller "
                "pages (`first`), fewer nested lists or fewer aliases.",
                extensions={"code": QUERY_TOO_COSTLY, "cost": cost, "budget": self.max_cost},
            )
        yield

    def _cost(self) -> int | None:
        """The cost of the operation to run; None when execution will refuse it anyway."""
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            return None
        operation = get_operation_ast(document, context.operation_name)
        if operation is None:
            return None
        schema = context.schema._schema
        coerced = get_variable_values(
            schema, operation.variable_definitions or (), context.variables or {}
        )
        if isinstance(coerced, list):  # bad variables: execution reports them, runs nothing
            return None
        fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        cost, uses_variables = _costing(schema, operation, fragments, coerced)
        if not uses_variables and cost <= self.max_cost and context.query:
            if len(_WITHIN_BUDGET) >= _WITHIN_BUDGET_SIZE:
                _WITHIN_BUDGET.clear()
            _WITHIN_BUDGET.add((context.query, context.operation_name, self.max_cost))
        return cost
