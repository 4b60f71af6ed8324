"""The schema, with its limits on query depth, size, aliases and cost, and error masking."""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from gateway.api.graphql import audited, bulk
from gateway.api.graphql.cost import QueryCostLimiter
from gateway.api.graphql.errors import MaskUnexpected, ServiceFailures, should_mask
from gateway.api.graphql.literals import NameLiteralErrors
from gateway.api.graphql.mutations import Mutation
from gateway.api.graphql.queries import Query
from gateway.api.graphql.scalars import DateTimeScalar, DecimalScalar, Int64, Int64Scalar
from gateway.api.graphql.text import RefuseHostileText
from gateway.api.observability.operations import RecordOperation

log = logging.getLogger("gateway.api.graphql")


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log what the server got wrong; a client's bad query is only worth a debug line."""
        for error in errors:
            if should_mask(error):
                log.error("unexpected error", exc_info=error.original_error)
            else:
                log.debug("request error: %s", error.message)


@functools.cache  # a schema holds no state of its own: gateways with the same limits share one
def build_schema(
    max_depth: int = 12, max_tokens: int = 2000, max_cost: int = 10_000
) -> strawberry.Schema:
    # Built once: the validation cache keys on the rule classes, and new classes per
    # request would make every request miss it.
    rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=30).validation_rules,
    ]
    schema = Schema(
        query=Query,
        mutation=Mutation,
        scalar_overrides={Decimal: DecimalScalar, datetime: DateTimeScalar, Int64: Int64Scalar},
        extensions=[
            MaskUnexpected,
            lambda: AddValidationRules(rules),
            NameLiteralErrors,
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            RefuseHostileText,  # after the cache, which sets the validation errors
            lambda: QueryCostLimiter(max_cost),
            ServiceFailures,
            RecordOperation,
        ],
    )
    bulk.install(schema)
    audited.install(schema)  # last: it wraps the resolvers as they are
    return schema


schema = build_schema()
