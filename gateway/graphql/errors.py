"""Errors shown to clients as they are; every other exception is masked."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from ..errors import DomainError
from ..faults import ServiceFailure, classify


class ArgumentError(ValueError):
    """A bad argument of a query field (mutations answer with userErrors instead)."""


def should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None or isinstance(
        original, GraphQLError | ArgumentError | DomainError | ServiceFailure
    ):
        return False
    # Input coercion errors carry the offending value, not server internals.
    return type(original).__name__ != "StrawberryInputCoercionError"


def service_failure(error: GraphQLError) -> GraphQLError:
    """``error`` as its coded service failure (a lost, unreachable, slow or busy database),
    or as it is."""
    failure = classify(error.original_error)
    if failure is None or failure is error.original_error:
        return error
    return GraphQLError(
        failure.message,
        error.nodes,
        error.source,
        error.positions,
        error.path,
        failure,
        extensions=failure.extensions,
    )


class ServiceFailures(SchemaExtension):
    """Give service failures their code before MaskErrors (listed before this extension, so
    it finishes after it) would mask them as unexpected."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = [service_failure(error) for error in errors]
