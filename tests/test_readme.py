"""The README's GraphQL examples are valid documents against the schema as it is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import parse, validate

from gateway.api.graphql.schema import schema

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = [
    (README.read_text()[: match.start()].count("\n") + 1, match.group(1))
    for match in re.finditer(r"```graphql\n(.*?)```", README.read_text(), re.S)
]


def test_the_readme_has_graphql_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize(("line", "block"), BLOCKS, ids=[f"line-{line}" for line, _ in BLOCKS])
def test_each_example_block_validates(line: int, block: str) -> None:
    """A block pasted whole into GraphiQL must be one valid document: several operations
    need names, and every field, argument and input must exist."""
    errors = validate(schema._schema, parse(block))
    assert not errors, f"README.md line {line}: {[error.message for error in errors]}"
