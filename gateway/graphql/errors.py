"""Errors shown to clients as they are; every other exception is masked."""

from __future__ import annotations

from graphql import GraphQLError

from ..errors import DomainError


class ArgumentError(ValueError):
    """A bad argument of a query field (mutations answer with userErrors instead)."""


def should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None or isinstance(original, GraphQLError | ArgumentError | DomainError):
        return False
    # Input coercion errors carry the offending value, not server internals.
    return type(original).__name__ != "StrawberryInputCoercionError"
