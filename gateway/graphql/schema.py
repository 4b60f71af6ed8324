"""The schema, with its limits on query depth, size and aliases, and error masking."""

from __future__ import annotations

from decimal import Decimal

import strawberry
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from .errors import should_mask
from .mutations import Mutation
from .queries import Query
from .scalars import DecimalScalar


def build_schema(max_depth: int = 12, max_tokens: int = 2000) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        scalar_overrides={Decimal: DecimalScalar},
        extensions=[
            lambda: MaskErrors(should_mask_error=should_mask),
            lambda: QueryDepthLimiter(max_depth=max_depth),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            lambda: MaxAliasesLimiter(max_alias_count=30),
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
        ],
    )


schema = build_schema()
