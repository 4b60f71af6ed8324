from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.exchange import Quote, quote
from partners.config.coalition import DEMO_DIRECTORY, Coalition, load_coalition
from partners.config.conversions import ConversionRule

DEMO = load_coalition(DEMO_DIRECTORY)
JUNE_2026 = datetime(2026, 6, 1, tzinfo=UTC)
JUNE_2027 = datetime(2027, 6, 1, tzinfo=UTC)
DEMO_PAIRS = [
    ("skyway", "brewbar"),
    ("skyway", "freshmart"),
    ("brewbar", "skyway"),
    ("freshmart", "brewbar"),
]


def rule_of(source: str, target: str, at: datetime = JUNE_2026) -> ConversionRule:
    rule = DEMO.rule_in_force(source, target, at)
    assert rule is not None
    return rule


def failure(
    coalition: Coalition, source: str, target: str, points: int, at: datetime
) -> DomainError:
    with pytest.raises(DomainError) as caught:
        quote(coalition, source, target, points, at)
    return caught.value


def small_coalition(tmp_path: Path, rule: str) -> Coalition:
    (tmp_path / "coalition.toml").write_text('name = "Test"\nsettlement_currency = "EUR"\n')
    for slug, code, rules in (("alpha", "ALP", rule), ("beta", "BET", "")):
        (tmp_path / f"{slug}.toml").write_text(
            f'slug = "{slug}"\nname = "{slug}"\npoint_value = "0.01"\n'
            f'[currency]\ncode = "{code}"\nname = "points"\n'
            f'[earn]\npoints_per_unit = "1"\n{rules}'
        )
    return load_coalition(tmp_path)


def with_rule(rule: ConversionRule) -> Coalition:
    partners = dict(DEMO.partners)
    partners[rule.source] = replace(partners[rule.source], conversions=(rule,))
    return Coalition(DEMO.name, DEMO.settlement_currency, partners)


@pytest.mark.parametrize(
    ("source", "target", "points", "at", "fee", "received"),
    [
        # 2% of 1000 = 20; floor(980 * 0.25) = 245
        ("skyway", "brewbar", 1000, JUNE_2026, 20, 245),
        # 2% of 1001 = 20.02 -> 21; floor(980 * 0.25) = 245
        ("skyway", "brewbar", 1001, JUNE_2026, 21, 245),
        # 2% of 1003 = 20.06 -> 21; floor(982 * 0.25) = floor(245.5) = 245
        ("skyway", "brewbar", 1003, JUNE_2026, 21, 245),
        # 2% of 100 = 2; floor(98 * 0.25) = floor(24.5) = 24
        ("skyway", "brewbar", 100, JUNE_2026, 2, 24),
        # from 2027 the rate is 0.27: floor(980 * 0.27) = floor(264.6) = 264
        ("skyway", "brewbar", 1000, JUNE_2027, 20, 264),
        # 1.5% of 1000 = 15, + 10 fixed = 25; 975 * 2.2 = 2145
        ("skyway", "freshmart", 1000, JUNE_2026, 25, 2145),
        # 1.5% of 50 = 0.75 -> 1, + 10 = 11; floor(39 * 2.2) = floor(85.8) = 85
        ("skyway", "freshmart", 50, JUNE_2026, 11, 85),
        # 5% of 10 = 0.5 -> 1; 9 * 3 = 27
        ("brewbar", "skyway", 10, JUNE_2026, 1, 27),
        # 5% of 20000 = 1000; 19000 * 3 = 57000
        ("brewbar", "skyway", 20000, JUNE_2026, 1000, 57000),
        # 0% + 25 fixed; floor(475 * 0.11) = floor(52.25) = 52
        ("freshmart", "brewbar", 500, JUNE_2026, 25, 52),
        # floor(999975 * 0.11) = floor(109997.25) = 109997
        ("freshmart", "brewbar", 1_000_000, JUNE_2026, 25, 109997),
    ],
)
def test_demo_quotes_are_exact(
    source: str, target: str, points: int, at: datetime, fee: int, received: int
) -> None:
    result = quote(DEMO, source, target, points, at)
    assert (result.fee, result.received, result.net_points) == (fee, received, points - fee)
    assert (result.source, result.target, result.points, result.at) == (source, target, points, at)
    assert result.rule is rule_of(source, target, at)
    assert result.rule.fee_for(points) == fee


def test_fee_is_percentage_rounded_up_plus_fixed_fee() -> None:
    rule = rule_of("skyway", "freshmart")
    assert rule.fee_for(100) == 2 + 10  # 1.5 -> 2
    assert rule.fee_for(200) == 3 + 10  # exactly 3
    assert rule.fee_for(201) == 4 + 10  # 3.015 -> 4
    assert rule_of("freshmart", "brewbar").fee_for(12345) == 25


def test_rate_changes_at_the_boundary() -> None:
    before = quote(DEMO, "skyway", "brewbar", 1000, datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
    after = quote(DEMO, "skyway", "brewbar", 1000, datetime(2027, 1, 1, tzinfo=UTC))
    assert (before.rate, before.received) == (Decimal("0.25"), 245)
    assert (after.rate, after.received) == (Decimal("0.27"), 264)


@pytest.mark.parametrize(
    ("source", "target", "field"),
    [("nobody", "brewbar", "from_partner"), ("skyway", "nobody", "to_partner")],
)
def test_unknown_partner(source: str, target: str, field: str) -> None:
    error = failure(DEMO, source, target, points=1000, at=JUNE_2026)
    assert (error.code, error.field) == (ErrorCode.UNKNOWN_PARTNER, (field,))
    assert "nobody" in error.message


def test_same_partner() -> None:
    error = failure(DEMO, "skyway", "skyway", points=1000, at=JUNE_2026)
    assert (error.code, error.field) == (ErrorCode.SAME_PARTNER, ("to_partner",))


@pytest.mark.parametrize("points", [0, -1, -1000])
def test_amount_not_positive(points: int) -> None:
    error = failure(DEMO, "skyway", "brewbar", points=points, at=JUNE_2026)
    assert (error.code, error.field) == (ErrorCode.AMOUNT_NOT_POSITIVE, ("points",))


@pytest.mark.parametrize(
    ("source", "target", "at"),
    [
        ("freshmart", "skyway", JUNE_2026),
        ("brewbar", "freshmart", JUNE_2026),
        ("skyway", "brewbar", datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_no_conversion_rule(source: str, target: str, at: datetime) -> None:
    error = failure(DEMO, source, target, points=1000, at=at)
    assert (error.code, error.field) == (ErrorCode.NO_CONVERSION_RULE, ("to_partner",))


def test_disabled_rule_offers_no_conversion(tmp_path: Path) -> None:
    rule = '[[conversions]]\nto = "beta"\nrate = "1"\neffective_from = 2026-01-01\n'
    rule += "enabled = false\n"
    error = failure(small_coalition(tmp_path, rule), "alpha", "beta", points=1000, at=JUNE_2026)
    assert error.code is ErrorCode.NO_CONVERSION_RULE


@pytest.mark.parametrize(
    ("source", "target", "points"),
    [
        ("skyway", "brewbar", 99),
        ("skyway", "brewbar", 200_001),
        ("skyway", "freshmart", 49),
        ("brewbar", "skyway", 20_001),
        ("freshmart", "brewbar", 499),
    ],
)
def test_amount_out_of_bounds(source: str, target: str, points: int) -> None:
    error = failure(DEMO, source, target, points=points, at=JUNE_2026)
    assert (error.code, error.field) == (ErrorCode.AMOUNT_OUT_OF_BOUNDS, ("points",))


@pytest.mark.parametrize(
    ("rule", "points"),
    [
        ('rate = "1"\nfee_fixed = 100\n', 50),  # fee larger than the points
        ('rate = "1"\nfee_fixed = 50\n', 50),  # fee equal to the points
        ('rate = "0.01"\n', 99),  # floor(99 * 0.01) = 0
        ('rate = "0.5"\nfee_percent = "60"\n', 2),  # fee ceil(1.2) = 2, nothing left
    ],
)
def test_amount_too_small_when_nothing_is_left(tmp_path: Path, rule: str, points: int) -> None:
    text = f'[[conversions]]\nto = "beta"\neffective_from = 2026-01-01\n{rule}'
    error = failure(small_coalition(tmp_path, text), "alpha", "beta", points=points, at=JUNE_2026)
    assert (error.code, error.field) == (ErrorCode.AMOUNT_TOO_SMALL, ("points",))


def test_smallest_convertible_amount_gives_one_point(tmp_path: Path) -> None:
    text = '[[conversions]]\nto = "beta"\neffective_from = 2026-01-01\nrate = "0.01"\n'
    assert quote(small_coalition(tmp_path, text), "alpha", "beta", 100, JUNE_2026).received == 1


def check(result: Quote, rule: ConversionRule, points: int) -> None:
    expected_fee = math.ceil(Fraction(points) * Fraction(rule.fee_percent) / 100) + rule.fee_fixed
    exact = (points - expected_fee) * Fraction(rule.rate)
    assert result.fee == expected_fee >= 0
    assert result.received >= 1
    assert result.received == math.floor(exact)
    assert result.received <= exact < result.received + 1


@given(
    pair=st.sampled_from(DEMO_PAIRS),
    at=st.sampled_from([JUNE_2026, JUNE_2027]),
    data=st.data(),
)
def test_demo_quotes_follow_the_formula(
    pair: tuple[str, str], at: datetime, data: st.DataObject
) -> None:
    rule = rule_of(*pair, at)
    points = data.draw(st.integers(rule.min_points, rule.max_points))
    check(quote(DEMO, *pair, points, at), rule, points)


@given(
    rate=st.decimals(Decimal("0.001"), Decimal("50"), places=3),
    fee_percent=st.decimals(Decimal("0"), Decimal("99.9"), places=1),
    fee_fixed=st.integers(0, 500),
    points=st.integers(1, 500_000),
)
def test_any_rule_quotes_follow_the_formula(
    rate: Decimal, fee_percent: Decimal, fee_fixed: int, points: int
) -> None:
    base = rule_of("skyway", "freshmart")
    rule = replace(base, rate=rate, fee_percent=fee_percent, fee_fixed=fee_fixed, min_points=1)
    try:
        result = quote(with_rule(rule), "skyway", "freshmart", points, JUNE_2026)
    except DomainError as error:
        assert error.code is ErrorCode.AMOUNT_TOO_SMALL
        net = points - rule.fee_for(points)
        assert net <= 0 or net * Fraction(rate) < 1
        return
    check(result, rule, points)
