"""Errors shown to clients as they are; every other exception is masked.

Every error in a response's ``errors`` carries ``extensions.code``: the code a cause gave
(a DomainError's, such as ACCESS_DENIED), else one that says which phase refused the
request (GraphQL over HTTP and Apollo use the same names).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.extensions import MaskErrors, SchemaExtension

from gateway.api.faults import ServiceFailure, classify
from gateway.kernel.errors import DomainError

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"  # the document is not GraphQL
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"  # it does not fit the schema or its limits
BAD_USER_INPUT = "BAD_USER_INPUT"  # an argument or variable value was refused
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"  # masked: the server's fault


class ArgumentError(ValueError):
    """A bad argument of a query field (mutations answer with userErrors instead)."""


def should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None or isinstance(
        original, GraphQLError | ArgumentError | DomainError | ServiceFailure
    ):
        return False
    # Input coercion errors carry the offending value, not server internals.
    return not isinstance(original, StrawberryInputCoercionError)


class MaskUnexpected(MaskErrors):
    """Masks what ``should_mask`` says, and codes the masked error INTERNAL_SERVER_ERROR."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=should_mask)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": INTERNAL_SERVER_ERROR}
        return masked


def _given_code(error: BaseException | None) -> str | None:
    """The code an error or one of its causes carries."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, DomainError):
            return error.code.value
        if isinstance(error, GraphQLError) and error.extensions and "code" in error.extensions:
            return str(error.extensions["code"])
        if isinstance(error, ArgumentError | StrawberryInputCoercionError):
            return BAD_USER_INPUT
        error = error.original_error if isinstance(error, GraphQLError) else None
        seen += 1
    return None


def error_code(error: GraphQLError, before_execution: bool) -> str:
    """The ``extensions.code`` of an error; ``before_execution`` for a refused request."""
    given = _given_code(error)
    if given is not None:
        return given
    if error.message.startswith("Variable '$"):
        return BAD_USER_INPUT
    if before_execution:
        return PARSE_FAILED if error.message.startswith("Syntax Error") else VALIDATION_FAILED
    return INTERNAL_SERVER_ERROR


def formatted(error: GraphQLError, before_execution: bool) -> dict[str, Any]:
    """The error as the response shows it, with its ``extensions.code``."""
    shown: dict[str, Any] = dict(error.formatted)
    extensions: dict[str, Any] = dict(error.extensions or {})
    extensions.setdefault("code", error_code(error, before_execution))
    shown["extensions"] = extensions
    return shown


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
