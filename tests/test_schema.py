"""schema.graphql at the repository root is the schema the code serves."""

from __future__ import annotations

from pathlib import Path

from gateway.api.graphql.schema import schema

EXPORTED = Path(__file__).parents[1] / "schema.graphql"


def test_exported_schema_matches_the_code() -> None:
    assert EXPORTED.read_text(encoding="utf-8") == schema.as_str() + "\n", (
        "schema.graphql is out of date: run `coalition export-schema`"
    )


def test_every_operation_the_issue_names_is_there() -> None:
    text = EXPORTED.read_text(encoding="utf-8")
    for name in (
        "partners:",
        "member(id: ID!)",
        "quoteConversion(input: QuoteConversionInput!)",
        "enrolMember(input:",
        "earnPoints(input:",
        "redeemPoints(input:",
        "convertPoints(input:",
        "reverseTransfer(input:",
        "node(",
    ):
        assert name in text, name
