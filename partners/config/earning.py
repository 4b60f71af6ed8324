"""A partner's earning rules beyond points per amount: product multipliers, promotions,
sign-up and frequency bonuses, engagement activities, pending points, returns, referrals.

```toml
[[multipliers]]            # a purchase line matching the SKU (first) or the category
category = "fuel"          # or sku = "SKU-1"
factor = "2"

[[promotions]]
name = "Double stars in winter"
starts = 2026-11-01        # inclusive; ends exclusive
ends = 2027-02-01
multiplier = "2"           # or bonus = 100 (points)
tier = "gold"              # optional: only members of this tier
new_at_partner = false     # optional: only members who never earned here
min_amount = "10.00"       # optional: only purchases of at least this much

[signup_bonus]
points = 100               # on enrolment at this partner

[frequency_bonus]
every = 5                  # the 5th, 10th ... purchase in the period
period = "month"           # day | week | month | year, calendar periods in UTC
points = 50

[[activities]]
kind = "survey"            # survey | review | social_share
points = 20
cap = 2                    # per member and period
period = "month"

[pending]
return_window_days = 14    # earned points stay pending (not spendable) this long

[returns]
when_spent = "negative"    # or "cap": what a return does when its points were spent
negative_limit = 500       # how far below zero a wallet may go ("negative" only)

[referral]
referrer_points = 500
referred_points = 250
min_purchase = "20.00"     # the referred member's first purchase of at least this
```
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum

from partners.config.reader import MAX_POINTS, Reader

EARNING_KEYS = (
    "multipliers",
    "promotions",
    "signup_bonus",
    "frequency_bonus",
    "activities",
    "pending",
    "returns",
    "referral",
)
ACTIVITY_KINDS = ("survey", "review", "social_share")


class Period(Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"

    def start(self, moment: datetime) -> datetime:
        """The start of the calendar period (UTC) holding ``moment``; weeks start on Monday."""
        day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if self is Period.DAY:
            return day
        if self is Period.WEEK:
            return day - timedelta(days=day.weekday())
        if self is Period.MONTH:
            return day.replace(day=1)
        return day.replace(month=1, day=1)

    def end(self, moment: datetime) -> datetime:
        start = self.start(moment)
        if self is Period.DAY:
            return start + timedelta(days=1)
        if self is Period.WEEK:
            return start + timedelta(days=7)
        if self is Period.MONTH:
            year, month = divmod(start.month, 12)
            return start.replace(year=start.year + year, month=month + 1)
        return start.replace(year=start.year + 1)


@dataclass(frozen=True)
class Multiplier:
    factor: Decimal
    sku: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Promotion:
    name: str
    starts: datetime
    ends: datetime
    multiplier: Decimal | None = None
    bonus: int | None = None
    tier: str | None = None
    new_at_partner: bool = False
    min_amount: Decimal = Decimal(0)

    def in_force_at(self, moment: datetime) -> bool:
        return self.starts <= moment < self.ends


@dataclass(frozen=True)
class FrequencyBonus:
    every: int
    period: Period
    points: int


@dataclass(frozen=True)
class Activity:
    kind: str
    points: int
    cap: int
    period: Period


@dataclass(frozen=True)
class Returns:
    when_spent: str = "cap"  # "cap" or "negative"
    negative_limit: int = 0


@dataclass(frozen=True)
class Referral:
    referrer_points: int
    referred_points: int
    min_purchase: Decimal


@dataclass(frozen=True)
class EarningRules:
    multipliers: tuple[Multiplier, ...] = ()
    promotions: tuple[Promotion, ...] = ()
    signup_bonus: int = 0
    frequency_bonus: FrequencyBonus | None = None
    activities: tuple[Activity, ...] = ()
    return_window: timedelta = timedelta(0)
    returns: Returns = Returns()
    referral: Referral | None = None

    def activity(self, kind: str) -> Activity | None:
        return next((a for a in self.activities if a.kind == kind), None)


def _tables(reader: Reader, field: str) -> list[Reader]:
    raw = reader.table.get(field, [])
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise reader.fail(field, f"must be an array of tables ([[{field}]])")
    return [
        Reader(reader.file, reader.partner, item, f"{field}[{i}].") for i, item in enumerate(raw)
    ]


def _points(reader: Reader, field: str, default: int | None = None, minimum: int = 1) -> int:
    return reader.integer(field, default=default, minimum=minimum)


def _period(reader: Reader, default: str = "month") -> Period:
    text = reader.text("period", required=False) or default
    try:
        return Period(text)
    except ValueError:
        choices = ", ".join(p.value for p in Period)
        raise reader.fail("period", f"must be one of {choices}, got {text!r}") from None


def _multiplier(reader: Reader) -> Multiplier:
    reader.unknown_keys({"sku", "category", "factor"})
    sku = reader.text("sku", required=False) or None
    category = reader.text("category", required=False) or None
    if (sku is None) == (category is None):
        raise reader.fail("sku", "give either sku or category")
    factor = reader.decimal("factor")
    if factor > 100:
        raise reader.fail("factor", f"must be at most 100, got {factor}")
    return Multiplier(factor, sku, category)


def _promotion(reader: Reader) -> Promotion:
    reader.unknown_keys(
        {"name", "starts", "ends", "multiplier", "bonus", "tier", "new_at_partner", "min_amount"}
    )
    starts = reader.moment("starts", required=True)
    ends = reader.moment("ends", required=True)
    assert starts is not None and ends is not None
    if ends <= starts:
        raise reader.fail("ends", "must be after starts")
    has_multiplier, has_bonus = "multiplier" in reader.table, "bonus" in reader.table
    if has_multiplier == has_bonus:
        raise reader.fail("multiplier", "give either multiplier or bonus")
    multiplier = reader.decimal("multiplier") if has_multiplier else None
    if multiplier is not None and not 1 < multiplier <= 100:
        raise reader.fail("multiplier", f"must be above 1 and at most 100, got {multiplier}")
    return Promotion(
        name=reader.text("name"),
        starts=starts,
        ends=ends,
        multiplier=multiplier,
        bonus=_points(reader, "bonus") if has_bonus else None,
        tier=reader.text("tier", required=False) or None,
        new_at_partner=reader.boolean("new_at_partner", False),
        min_amount=reader.decimal("min_amount", default="0", positive=False),
    )


def _activity(reader: Reader) -> Activity:
    reader.unknown_keys({"kind", "points", "cap", "period"})
    kind = reader.text("kind")
    if kind not in ACTIVITY_KINDS:
        raise reader.fail("kind", f"must be one of {', '.join(ACTIVITY_KINDS)}, got {kind!r}")
    return Activity(kind, _points(reader, "points"), _points(reader, "cap"), _period(reader))


def read_earning(reader: Reader) -> EarningRules:
    """The rules of one partner file (``reader`` is the partner's top-level table)."""
    multipliers = tuple(_multiplier(r) for r in _tables(reader, "multipliers"))
    promotions = tuple(_promotion(r) for r in _tables(reader, "promotions"))
    activities = tuple(_activity(r) for r in _tables(reader, "activities"))
    kinds = [a.kind for a in activities]
    if len(set(kinds)) != len(kinds):
        raise reader.fail("activities", "names one activity kind twice")
    signup = reader.optional_table("signup_bonus")
    if signup is not None:
        signup.unknown_keys({"points"})
    frequency = reader.optional_table("frequency_bonus")
    if frequency is not None:
        frequency.unknown_keys({"every", "period", "points"})
    pending = reader.optional_table("pending")
    if pending is not None:
        pending.unknown_keys({"return_window_days"})
    returns = reader.optional_table("returns")
    if returns is not None:
        returns.unknown_keys({"when_spent", "negative_limit"})
    referral = reader.optional_table("referral")
    if referral is not None:
        referral.unknown_keys({"referrer_points", "referred_points", "min_purchase"})
    return EarningRules(
        multipliers=multipliers,
        promotions=promotions,
        signup_bonus=_points(signup, "points") if signup is not None else 0,
        frequency_bonus=(
            FrequencyBonus(
                _points(frequency, "every", minimum=2),
                _period(frequency),
                _points(frequency, "points"),
            )
            if frequency is not None
            else None
        ),
        activities=activities,
        return_window=timedelta(days=_days(pending)) if pending is not None else timedelta(0),
        returns=_returns(returns) if returns is not None else Returns(),
        referral=(
            Referral(
                _points(referral, "referrer_points"),
                _points(referral, "referred_points"),
                referral.decimal("min_purchase", default="0", positive=False),
            )
            if referral is not None
            else None
        ),
    )


def _days(reader: Reader) -> int:
    days = reader.integer("return_window_days", minimum=1)
    if days > 365:
        raise reader.fail("return_window_days", f"must be at most 365, got {days}")
    return days


def _returns(reader: Reader) -> Returns:
    when = reader.text("when_spent", required=False) or "cap"
    if when not in ("cap", "negative"):
        raise reader.fail("when_spent", f'must be "cap" or "negative", got {when!r}')
    limit = reader.integer("negative_limit", default=0, minimum=0)
    if when == "cap" and limit:
        raise reader.fail("negative_limit", 'applies only with when_spent = "negative"')
    if when == "negative" and not limit:
        raise reader.fail("negative_limit", 'is required with when_spent = "negative"')
    return Returns(when, min(limit, MAX_POINTS))
