"""Point expiry and gifting limits per partner: the ``[expiry]`` and ``[gifting]`` tables.

```toml
[expiry]
policy = "after_earning"     # after_earning | after_inactivity | never
months = 36                  # after_earning: points expire 36 months after they were earned
                             # after_inactivity: all points here expire after 36 months in
                             # which the member had no transfer anywhere in the coalition

[gifting]                    # leave the table out and members cannot gift points here
max_points_per_gift = 5000
max_points_per_month = 20000 # per giver, per calendar month (UTC)
min_points = 100             # optional, default 1
```
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from partners.config.reader import MAX_POINTS, Reader

MAX_MONTHS = 1200  # a hundred years: more is a typo


class ExpiryRule(Enum):
    NEVER = "never"
    AFTER_EARNING = "after_earning"
    AFTER_INACTIVITY = "after_inactivity"


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` moved by whole calendar months (negative: back), keeping the time of day;
    a day past the end of the target month becomes its last day (31 Jan + 1 = 28/29 Feb)."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True)
class ExpiryPolicy:
    """How a partner's points expire: ``months`` after they were earned, after ``months``
    without any activity of the member in the coalition, or never."""

    rule: ExpiryRule = ExpiryRule.NEVER
    months: int = 0

    @property
    def expires(self) -> bool:
        return self.rule is not ExpiryRule.NEVER

    def expires_at(self, moment: datetime) -> datetime:
        """When points earned (or a member last active) at ``moment`` expire."""
        return add_months(moment, self.months)

    def cutoff(self, now: datetime, slack: timedelta = timedelta(0)) -> datetime:
        """The latest moment whose points have expired by ``now``, give or take the days
        that month ends add (``slack`` widens it for a first, cheap selection)."""
        return add_months(now, -self.months) + slack

    def describe(self) -> str:
        if self.rule is ExpiryRule.AFTER_EARNING:
            return f"points expire {self.months} months after they were earned"
        if self.rule is ExpiryRule.AFTER_INACTIVITY:
            return f"points expire after {self.months} months without activity in the coalition"
        return "points never expire"


def read_expiry(reader: Reader) -> ExpiryPolicy:
    reader.unknown_keys({"policy", "months"})
    text = reader.text("policy")
    try:
        rule = ExpiryRule(text)
    except ValueError:
        choices = ", ".join(rule.value for rule in ExpiryRule)
        raise reader.fail("policy", f"must be one of {choices}, got {text!r}") from None
    if rule is ExpiryRule.NEVER:
        if "months" in reader.table:
            raise reader.fail("months", 'does not apply to policy = "never"')
        return ExpiryPolicy()
    months = reader.integer("months", minimum=1)
    if months > MAX_MONTHS:
        raise reader.fail("months", f"must be at most {MAX_MONTHS}, got {months}")
    return ExpiryPolicy(rule, months)


@dataclass(frozen=True)
class GiftingLimits:
    """How much a member may gift to another member in a partner's pool: per gift (between
    ``min_points`` and ``max_points_per_gift``) and per giver and calendar month (UTC)."""

    max_points_per_gift: int
    max_points_per_month: int
    min_points: int = 1


def read_gifting(reader: Reader) -> GiftingLimits:
    reader.unknown_keys({"max_points_per_gift", "max_points_per_month", "min_points"})
    per_gift = reader.integer("max_points_per_gift", minimum=1)
    per_month = reader.integer("max_points_per_month", minimum=1)
    minimum = reader.integer("min_points", default=1, minimum=1)
    if per_gift > per_month:
        raise reader.fail(
            "max_points_per_gift", f"{per_gift} is above max_points_per_month {per_month}"
        )
    if minimum > per_gift:
        raise reader.fail("min_points", f"{minimum} is above max_points_per_gift {per_gift}")
    assert per_month <= MAX_POINTS
    return GiftingLimits(per_gift, per_month, minimum)
