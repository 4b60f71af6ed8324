"""Money in the settlement currency, as every type shows it."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from gateway.api.graphql.context import Info


@strawberry.type(description="An amount of money in the settlement currency.")
class Money:
    amount: Decimal
    currency: str


CENT = Decimal("0.01")


def money(info: Info, amount: Decimal) -> Money:
    """Exact, with at least two decimals: 10.08, 0.012, 0.00."""
    exact = amount.normalize()
    exponent = exact.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        exact = exact.quantize(CENT)
    return Money(amount=exact, currency=info.context.service.coalition.settlement_currency)
