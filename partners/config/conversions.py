"""Conversion rules (``[[conversions]]`` in a partner's file): directed rates in force."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from partners.config.reader import MAX_POINTS, SLUG, Reader


@dataclass(frozen=True)
class ConversionRule:
    """A directed rule: points of ``source`` become points of ``target`` at ``rate``."""

    source: str
    target: str
    rate: Decimal
    fee_percent: Decimal
    fee_fixed: int
    min_points: int
    max_points: int
    enabled: bool
    effective_from: datetime
    effective_until: datetime | None

    def fee_for(self, points: int) -> int:
        """The fee on converting ``points``, in source points: the percentage rounded up (in
        favour of the house) plus the fixed fee."""
        numerator, denominator = self.fee_percent.as_integer_ratio()
        return -(-points * numerator // (100 * denominator)) + self.fee_fixed

    def received_for(self, points: int) -> int:
        """The target points that ``points`` give once the fee is taken, rounded down (0 when
        the fee eats them all). The bounds are not checked. Never falls as ``points`` grows:
        the fee is below 100%."""
        net = points - self.fee_for(points)
        if net <= 0:
            return 0
        numerator, denominator = self.rate.as_integer_ratio()
        return net * numerator // denominator

    def points_for(self, received: int) -> int:
        """The fewest points whose ``received_for`` is at least ``received`` (at least 1);
        the bounds are not checked."""
        rate_numerator, rate_denominator = self.rate.as_integer_ratio()
        net = -(-max(received, 1) * rate_denominator // rate_numerator)
        # points - ceil(points * fee%) = floor(points * kept), kept = 1 - fee% = kept_n / kept_d
        fee_numerator, fee_denominator = self.fee_percent.as_integer_ratio()
        kept_denominator = 100 * fee_denominator
        kept_numerator = kept_denominator - fee_numerator
        return -(-(net + self.fee_fixed) * kept_denominator // kept_numerator)

    def in_force_at(self, moment: datetime) -> bool:
        if moment < self.effective_from:
            return False
        return self.effective_until is None or moment < self.effective_until

    def overlaps(self, other: ConversionRule) -> bool:
        far = datetime.max.replace(tzinfo=UTC)
        return self.effective_from < (other.effective_until or far) and other.effective_from < (
            self.effective_until or far
        )


def read_conversions(reader: Reader, file: Path, slug: str) -> tuple[ConversionRule, ...]:
    """The ``conversions`` array of partner ``slug``'s file: no rule into the partner itself,
    and no two rules to one target in force at once. Targets are checked against the other
    partners by the loader."""
    raw_rules: Any = reader.table.get("conversions", [])
    if not isinstance(raw_rules, list):
        raise reader.fail("conversions", "must be an array of tables ([[conversions]])")
    rules = []
    for index, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            raise reader.fail(f"conversions[{index}]", "must be a table")
        rules.append(_read_rule(Reader(file, slug, raw, f"conversions[{index}]."), slug))
    for index, rule in enumerate(rules):
        if rule.target == slug:
            raise reader.fail(f"conversions[{index}].to", "a partner cannot convert into itself")
        for other in rules[:index]:
            if other.target == rule.target and other.overlaps(rule):
                raise reader.fail(
                    f"conversions[{index}].effective_from",
                    f"overlaps another rule to '{rule.target}'; give the earlier one an "
                    "effective_until no later than this one's effective_from",
                )
    return tuple(rules)


def _read_rule(reader: Reader, source: str) -> ConversionRule:
    reader.unknown_keys(
        {
            "to",
            "rate",
            "fee_percent",
            "fee_fixed",
            "min_points",
            "max_points",
            "enabled",
            "effective_from",
            "effective_until",
        }
    )
    fee_percent = reader.decimal("fee_percent", default="0", positive=False)
    if fee_percent >= 100:
        raise reader.fail("fee_percent", f"must be below 100, got {fee_percent}")
    min_points = reader.integer("min_points", default=1, minimum=1)
    max_points = reader.integer("max_points", default=MAX_POINTS, minimum=1)
    if max_points < min_points:
        raise reader.fail("max_points", f"{max_points} is below min_points {min_points}")
    effective_from = reader.moment("effective_from", required=True)
    assert effective_from is not None
    effective_until = reader.moment("effective_until", required=False)
    if effective_until is not None and effective_until <= effective_from:
        raise reader.fail("effective_until", "must be after effective_from")
    return ConversionRule(
        source=source,
        target=reader.text("to", SLUG),
        rate=reader.decimal("rate"),
        fee_percent=fee_percent,
        fee_fixed=reader.integer("fee_fixed", default=0),
        min_points=min_points,
        max_points=max_points,
        enabled=reader.boolean("enabled", True),
        effective_from=effective_from,
        effective_until=effective_until,
    )
