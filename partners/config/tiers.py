"""Coalition-wide tiers: ``[[tiers]]`` in coalition.toml, from the lowest tier up.

```toml
[[tiers]]
slug = "blue"                  # how rewards, promotions and the API name the tier
name = "Blue"
qualifying_value = "0"         # the first tier is everyone's: it needs nothing
window_months = 12             # programme-wide, given on the first tier only: the rolling
grace_days = 30                # window of qualifying value, and the grace before a downgrade

[[tiers]]
slug = "silver"
name = "Silver"
qualifying_value = "25"        # in the settlement currency, earned within the window

[tiers.benefits.brewbar]       # benefits of this tier at one partner
multiplier = "1.25"            # earn multiplier (at least 1)
```

The qualifying value is what a member earned at every partner within the window, each
point valued at its partner's ``point_value``, so that every brand counts alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from partners.config.reader import Reader

TIER_SLUG = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
MAX_TIERS = 20
MAX_WINDOW_MONTHS = 120
MAX_GRACE_DAYS = 366
MAX_MULTIPLIER = Decimal(10)
TIER_KEYS = {"slug", "name", "description", "qualifying_value", "benefits"}
PROGRAMME_KEYS = {"window_months", "grace_days"}  # on the first tier only


@dataclass(frozen=True)
class Tier:
    slug: str
    name: str
    rank: int  # 0 for the first (lowest) tier
    qualifying_value: Decimal  # in the settlement currency, earned within the window
    description: str | None = None
    multipliers: Mapping[str, Decimal] = field(default_factory=dict)  # partner -> factor

    def multiplier_at(self, partner: str) -> Decimal:
        return self.multipliers.get(partner, Decimal(1))


@dataclass(frozen=True)
class Tiers:
    """The coalition's tiers, lowest first; the first needs a qualifying value of 0."""

    levels: tuple[Tier, ...]
    window_months: int
    grace_days: int

    @property
    def base(self) -> Tier:
        return self.levels[0]

    def tier(self, slug: str) -> Tier | None:
        return next((tier for tier in self.levels if tier.slug == slug), None)

    def for_value(self, value: Decimal) -> Tier:
        """The highest tier that ``value`` qualifies for."""
        reached = self.base
        for tier in self.levels:
            if value >= tier.qualifying_value:
                reached = tier
        return reached

    def above(self, tier: Tier) -> Tier | None:
        """The next tier up, or None at the top."""
        return self.levels[tier.rank + 1] if tier.rank + 1 < len(self.levels) else None

    def has_benefit_at(self, partner: str) -> bool:
        return any(partner in tier.multipliers for tier in self.levels)


def read_tiers(reader: Reader, raw: Any, partners: Mapping[str, Any]) -> Tiers:
    """``raw``: the ``tiers`` value of coalition.toml; ``partners``: the loaded partners, by
    slug, which benefits must name. Errors name the field, e.g. ``tiers[1].qualifying_value``."""
    if not isinstance(raw, list) or not raw:
        raise reader.fail("tiers", "must be an array of tables ([[tiers]]), lowest tier first")
    if len(raw) > MAX_TIERS:
        raise reader.fail("tiers", f"at most {MAX_TIERS} tiers, got {len(raw)}")
    levels: list[Tier] = []
    window_months, grace_days = 0, 0
    for index, item in enumerate(raw):
        where = f"tiers[{index}]"
        if not isinstance(item, dict):
            raise reader.fail(where, "must be a table")
        table = Reader(reader.file, None, item, f"{where}.")
        if index == 0:
            table.unknown_keys(TIER_KEYS | PROGRAMME_KEYS)
            window_months = table.integer("window_months", minimum=1)
            if window_months > MAX_WINDOW_MONTHS:
                raise table.fail("window_months", f"must be at most {MAX_WINDOW_MONTHS}")
            grace_days = table.integer("grace_days", minimum=0)
            if grace_days > MAX_GRACE_DAYS:
                raise table.fail("grace_days", f"must be at most {MAX_GRACE_DAYS}")
        else:
            misplaced = sorted(PROGRAMME_KEYS & set(item))
            if misplaced:
                raise table.fail(misplaced[0], "is set once for all tiers, on the first [[tiers]]")
            table.unknown_keys(TIER_KEYS)
        levels.append(_read_tier(table, index, levels, partners))
    return Tiers(tuple(levels), window_months, grace_days)


def _read_tier(table: Reader, index: int, lower: list[Tier], partners: Mapping[str, Any]) -> Tier:
    slug = table.text("slug", TIER_SLUG)
    if any(tier.slug == slug for tier in lower):
        raise table.fail("slug", f"'{slug}' is already the slug of another tier")
    value = table.decimal("qualifying_value", positive=False)
    if index == 0 and value != 0:
        raise table.fail(
            "qualifying_value", f'the first tier is everyone\'s and needs "0", got "{value}"'
        )
    if lower and value <= lower[-1].qualifying_value:
        raise table.fail(
            "qualifying_value",
            f'must be above the tier below ({lower[-1].slug}: "{lower[-1].qualifying_value}"), '
            f'got "{value}"',
        )
    description = table.text("description", required=False) or None
    return Tier(
        slug=slug,
        name=table.text("name"),
        rank=index,
        qualifying_value=value,
        description=description,
        multipliers=_read_benefits(table, partners),
    )


def _read_benefits(table: Reader, partners: Mapping[str, Any]) -> dict[str, Decimal]:
    benefits = table.optional_table("benefits")
    if benefits is None:
        return {}
    multipliers: dict[str, Decimal] = {}
    for partner in benefits.table:
        if partner not in partners:
            raise benefits.fail(partner, f"names unknown partner '{partner}'")
        at_partner = benefits.table_at(partner)
        at_partner.unknown_keys({"multiplier"})
        factor = at_partner.decimal("multiplier")
        if not Decimal(1) <= factor <= MAX_MULTIPLIER:
            raise at_partner.fail("multiplier", f"must be between 1 and {MAX_MULTIPLIER}")
        multipliers[partner] = factor
    return multipliers
