"""Literal argument values checked with the argument and the input field they are at.

graphql-core's rule reports a literal a scalar refuses with the scalar's message alone;
this one says which argument and which of its input fields hold it, as the errors for
variables do (``Variable '$input' has invalid value at .endsAt: ...``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    ArgumentNode,
    GraphQLError,
    GraphQLInputType,
    ValueNode,
    ValuesOfCorrectTypeRule,
    VariableDefinitionNode,
)
from graphql.language import SKIP, VisitorAction
from graphql.pyutils import print_path_list
from graphql.utilities.validate_input_value import validate_input_literal
from strawberry.extensions import SchemaExtension


class ValuesOfCorrectTypeNamed(ValuesOfCorrectTypeRule):
    where = "A value"

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.where = f"Argument '{node.name.value}'"

    def enter_variable_definition(self, node: VariableDefinitionNode, *_: Any) -> None:
        self.where = f"The default value of '${node.variable.name.value}'"

    def is_valid_value_node(
        self, node: ValueNode, input_type: GraphQLInputType | None
    ) -> VisitorAction:
        if input_type:

            def on_error(error: GraphQLError, path: list[str | int]) -> None:
                self.report_error(
                    GraphQLError(
                        f"{self.where} has an invalid value{print_path_list(path)}: "
                        f"{error.message}",
                        error.nodes or node,
                        original_error=error,
                    )
                )

            validate_input_literal(
                node, input_type, on_error, None, None, self.context.hide_suggestions
            )
        return SKIP


class NameLiteralErrors(SchemaExtension):
    """Puts ``ValuesOfCorrectTypeNamed`` in the place of graphql-core's rule."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = tuple(
            ValuesOfCorrectTypeNamed if rule is ValuesOfCorrectTypeRule else rule
            for rule in context.validation_rules
        )
        yield
