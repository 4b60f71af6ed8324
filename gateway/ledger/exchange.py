"""Conversion between pools: what a number of points of one partner buys in another's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gateway.kernel.errors import DomainError, ErrorCode, shown
from partners.config.coalition import Coalition
from partners.config.conversions import ConversionRule


@dataclass(frozen=True)
class Quote:
    """The exact outcome of converting ``points`` of ``source`` into ``target`` at ``at``.

    The fee is taken in source points and rounded up; the received points are rounded
    down. Both roundings favour the house, never the other way round.
    """

    source: str
    target: str
    points: int
    fee: int
    rate: Decimal
    received: int
    rule: ConversionRule
    at: datetime

    @property
    def net_points(self) -> int:
        return self.points - self.fee


def quote(coalition: Coalition, source: str, target: str, points: int, at: datetime) -> Quote:
    if coalition.partner(source) is None:
        raise DomainError(
            ErrorCode.UNKNOWN_PARTNER, f"No partner {shown(source)}.", ("from_partner",)
        )
    if coalition.partner(target) is None:
        raise DomainError(
            ErrorCode.UNKNOWN_PARTNER, f"No partner {shown(target)}.", ("to_partner",)
        )
    if source == target:
        raise DomainError(
            ErrorCode.SAME_PARTNER,
            "Points can only be converted between two partners.",
            ("to_partner",),
        )
    if points <= 0:
        raise DomainError(
            ErrorCode.AMOUNT_NOT_POSITIVE, "Points must be a positive whole number.", ("points",)
        )
    rule = coalition.rule_in_force(source, target, at)
    if rule is None:
        raise DomainError(
            ErrorCode.NO_CONVERSION_RULE,
            f"No conversion from '{source}' to '{target}' is offered at the moment.",
            ("to_partner",),
        )
    if not rule.min_points <= points <= rule.max_points:
        raise DomainError(
            ErrorCode.AMOUNT_OUT_OF_BOUNDS,
            f"Between {rule.min_points} and {rule.max_points} points can be converted "
            f"from '{source}' to '{target}' at once.",
            ("points",),
        )
    fee = rule.fee_for(points)
    received = rule.received_for(points)
    if received < 1:
        raise DomainError(
            ErrorCode.AMOUNT_TOO_SMALL,
            f"{points} points minus the fee of {fee} give no whole point at '{target}'.",
            ("points",),
        )
    return Quote(source, target, points, fee, rule.rate, received, rule, at)


def quote_to_receive(
    coalition: Coalition, source: str, target: str, wanted: int, at: datetime
) -> Quote:
    """The smallest conversion of ``source`` points that gives at least ``wanted`` points of
    ``target``, fee included (what paying a price in another pool costs)."""
    rule = coalition.rule_in_force(source, target, at)
    if rule is None or source == target:
        return quote(coalition, source, target, max(1, wanted), at)  # raises the right error
    points = rule.points_for(wanted) if wanted > 0 else 1
    if points > rule.max_points:
        raise DomainError(
            ErrorCode.AMOUNT_OUT_OF_BOUNDS,
            f"{wanted} points of '{target}' cost more than the {rule.max_points} points of "
            f"'{source}' that can be converted at once.",
            ("pay_with",),
        )
    return quote(coalition, source, target, max(points, rule.min_points), at)
