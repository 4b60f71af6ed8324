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
