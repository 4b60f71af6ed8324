"""Text no field accepts: a NUL character or a lone UTF-16 surrogate.

PostgreSQL cannot store or even compare text holding U+0000, and a lone surrogate has no
UTF-8 form, so such text would fail deep inside a resolver. GraphQL reserves the name
`String` (and `ID`) for its built-in scalars, so they cannot be overridden; instead every
string of a request, in the document's literals and in its variables, is checked here
before validation, and a request holding one is refused with BAD_USER_INPUT.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, StringValueNode, Visitor, visit
from graphql.language import DocumentNode
from strawberry.extensions import SchemaExtension

from gateway.api.graphql.errors import BAD_USER_INPUT

REFUSED = re.compile("[\x00\ud800-\udfff]")


def hostile(text: str) -> bool:
    """Whether ``text`` holds a NUL or a lone surrogate."""
    return REFUSED.search(text) is not None


def _found_in(value: Any, path: str) -> Iterator[str]:
    """The paths of the hostile strings in a JSON value, keys included."""
    if isinstance(value, str):
        if hostile(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and hostile(key):
                yield f"{path} (a key)"
            yield from _found_in(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _found_in(item, f"{path}[{index}]")


class _Literals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[StringValueNode] = []

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if hostile(node.value):
            self.found.append(node)


def literals_may_be_hostile(query: str | None) -> bool:
    """Whether a document's string literals may hold hostile text: a literal holds what its
    source text holds, or what a ``\\u`` escape spells. Most documents hold neither, so
    their syntax tree is not walked."""
    return query is None or "\\u" in query or hostile(query)


def hostile_text_errors(
    document: DocumentNode | None, variables: dict[str, Any] | None, query: str | None = None
) -> list[GraphQLError]:
    message = "holds a NUL character or a lone surrogate, which no text field accepts."
    errors = [
        GraphQLError(f"Variable '{path}' {message}", extensions={"code": BAD_USER_INPUT})
        for name, value in (variables or {}).items()
        for path in _found_in(value, f"${name}")
    ]
    if document is not None and literals_may_be_hostile(query):
        literals = _Literals()
        visit(document, literals)
        errors += [
            GraphQLError(f"A string {message}", node, extensions={"code": BAD_USER_INPUT})
            for node in literals.found
        ]
    return errors


class RefuseHostileText(SchemaExtension):
    """Refuses, before validation, a request whose strings no field would accept."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        errors = hostile_text_errors(context.graphql_document, context.variables, context.query)
        if errors:  # with them, nothing runs
            context.pre_execution_errors = [*(context.pre_execution_errors or []), *errors]
        yield
