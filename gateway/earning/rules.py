"""What a purchase earns, rule by rule: the domain, free of storage and of GraphQL.

The rules apply in this order, each giving whole points rounded with the partner's rounding
(multiplied amounts round down, in favour of the house):

1. ``base``: the purchase amount times the partner's points per unit.
2. ``product``: each line matching a multiplier (by SKU first, else by category) earns the
   extra ``(factor - 1)`` times its own base.
3. ``promotion``: each promotion in force whose conditions hold (tier, first purchase at the
   partner, minimum amount), the file's in their order, then the API's oldest first: a
   multiplier adds ``(m - 1)`` times the points of steps 1-2; a bonus adds its points.
4. ``tier``: the member's tier multiplier at this partner adds ``(m - 1)`` times steps 1-2.
5. ``frequency``: the n-th purchase in the period (every n-th) adds the bonus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.validation import invalid
from partners.config.coalition import MAX_POINTS, Partner
from partners.config.earning import Multiplier, Promotion

MAX_LINES = 500
# How far ahead of the gateway's clock a purchase's time may be (tills' clocks drift), and
# how far back a purchase may still earn.
CLOCK_SKEW = timedelta(minutes=5)
MAX_AGE = timedelta(days=365)


@dataclass(frozen=True)
class Line:
    amount: Decimal
    sku: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Purchase:
    amount: Decimal
    lines: tuple[Line, ...] = ()


@dataclass(frozen=True)
class Member:
    """What the rules need to know of the member at the moment of the purchase."""

    tier: str | None = None
    tier_multiplier: Decimal = Decimal(1)
    earned_here_before: bool = False
    purchases_in_period: int = 0  # before this one, in the frequency bonus's period


@dataclass(frozen=True)
class Award:
    rule: str  # base | product | promotion | tier | frequency | signup | activity | referral
    description: str
    points: int


def purchase(amount: Decimal | None, lines: list[Line]) -> Purchase:
    """A purchase from its input: lines add up to the amount when both are given."""
    if len(lines) > MAX_LINES:
        raise invalid("purchase", f"At most {MAX_LINES} lines per purchase.")
    total = sum((line.amount for line in lines), Decimal(0))
    if amount is None:
        if not lines:
            raise invalid("purchase", "Give the purchase amount, its lines, or both.")
        amount = total
    elif lines and total != amount:
        raise invalid("purchase", f"The lines add up to {total}, not to the amount {amount}.")
    return Purchase(amount, tuple(lines))


def occurred(at: datetime | None, now: datetime) -> datetime | None:
    """When a purchase happened, checked against ``now`` (None: now)."""
    if at is None:
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        raise invalid("occurred_at", "Give the time with its UTC offset.")
    if at > now + CLOCK_SKEW:
        raise invalid("occurred_at", "A purchase cannot have happened in the future.")
    if at < now - MAX_AGE:
        raise invalid(
            "occurred_at", f"A purchase more than {MAX_AGE.days} days old earns no points."
        )
    return at


def _floor(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), ROUND_FLOOR))


def _match(multipliers: tuple[Multiplier, ...], line: Line) -> Multiplier | None:
    if line.sku is not None:
        for rule in multipliers:
            if rule.sku == line.sku:
                return rule
    if line.category is not None:
        for rule in multipliers:
            if rule.category == line.category:
                return rule
    return None


def breakdown(
    partner: Partner,
    bought: Purchase,
    member: Member,
    at: datetime,
    promotions: Sequence[Promotion] = (),
) -> list[Award]:
    """Every rule that gives points for ``bought``, in the documented order; ``promotions``:
    those set through the API, applied after the file's."""
    rules = partner.earning
    base = partner.earn.points_for(bought.amount)
    awards = [Award("base", f"{partner.earn.points_per_unit} per unit spent", base)]
    for line in bought.lines:
        rule = _match(rules.multipliers, line)
        if rule is None:
            continue
        extra = _floor(line.amount * partner.earn.points_per_unit * (rule.factor - 1))
        label = f"SKU {line.sku}" if rule.sku is not None else f"category {line.category}"
        if extra > 0:
            awards.append(Award("product", f"x{rule.factor} on {label}", extra))
    subtotal = sum(award.points for award in awards)
    for promotion in (*rules.promotions, *promotions):
        if not promotion.in_force_at(at) or bought.amount < promotion.min_amount:
            continue
        if promotion.tier is not None and promotion.tier != member.tier:
            continue
        if promotion.new_at_partner and member.earned_here_before:
            continue
        if promotion.multiplier is not None:
            extra = _floor(subtotal * (promotion.multiplier - 1))
        else:
            extra = promotion.bonus or 0
        if extra > 0:
            awards.append(Award("promotion", promotion.name, extra))
    if member.tier_multiplier > 1:
        extra = _floor(subtotal * (member.tier_multiplier - 1))
        if extra > 0:
            awards.append(Award("tier", f"{member.tier} tier x{member.tier_multiplier}", extra))
    frequency = rules.frequency_bonus
    if frequency is not None and (member.purchases_in_period + 1) % frequency.every == 0:
        awards.append(
            Award(
                "frequency",
                f"purchase {member.purchases_in_period + 1} this {frequency.period.value}",
                frequency.points,
            )
        )
    return awards


def total(awards: list[Award]) -> int:
    points = sum(award.points for award in awards)
    if points < 1:
        raise DomainError(
            ErrorCode.AMOUNT_TOO_SMALL,
            "This purchase earns no whole point.",
            ("purchase",),
        )
    if points > MAX_POINTS:  # the ledger's limit for one transfer, as for points given
        raise DomainError(
            ErrorCode.AMOUNT_OUT_OF_BOUNDS,
            f"This purchase would earn {points} points; at most {MAX_POINTS} can move in "
            "one transfer.",
            ("purchase",),
        )
    return points
