"""Purchase inputs and the earn breakdown, shared by earnPoints and earnQuote."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from gateway.api.graphql.scalars import Int64
from gateway.earning.rules import Award, Line


@strawberry.input(description="One line of a purchase.")
class PurchaseLineInput:
    amount: Decimal = strawberry.field(description="The line's amount, in purchase currency.")
    sku: str | None = strawberry.field(default=None, description="The product's SKU.")
    category: str | None = strawberry.field(default=None, description="The product category.")


@strawberry.input(
    description="A purchase: its amount, its lines, or both (then the lines add up to it)."
)
class PurchaseInput:
    amount: Decimal | None = strawberry.field(default=None)
    lines: list[PurchaseLineInput] = strawberry.field(
        default_factory=list, description="At most 500 lines."
    )

    def parts(self) -> tuple[Decimal | None, list[Line]]:
        return self.amount, [Line(x.amount, x.sku, x.category) for x in self.lines]


# Where a purchase's errors (named ``amount``, ``lines.<i>.<field>`` or ``purchase`` by the
# programme) are in an input that sends it as `purchase`, or as `purchaseAmount`.
AS_PURCHASE: dict[str, tuple[str, ...]] = {
    "amount": ("purchase", "amount"),
    "lines": ("purchase", "lines"),
    "purchase": ("purchase",),
}
AS_PURCHASE_AMOUNT: dict[str, tuple[str, ...]] = {
    "amount": ("purchase_amount",),
    "purchase": ("purchase_amount",),
}


@strawberry.type(description="What one earning rule gave for a purchase.")
class EarnAward:
    rule: str = strawberry.field(
        description="base, product, promotion, tier or frequency (and points for plain points)."
    )
    description: str
    points: Int64

    @classmethod
    def of(cls, award: Award) -> EarnAward:
        return cls(rule=award.rule, description=award.description, points=award.points)
