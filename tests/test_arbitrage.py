from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from itertools import pairwise, permutations
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partners.config.arbitrage import Arbitrage, Unproven, find_arbitrage
from partners.config.coalition import DEMO_DIRECTORY, load_coalition
from partners.config.conversions import ConversionRule

START = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2027, 6, 1, tzinfo=UTC)


def rule(source: str, target: str, rate: str, **fields: Any) -> ConversionRule:
    values: dict[str, Any] = {
        "fee_percent": Decimal(0),
        "fee_fixed": 0,
        "min_points": 1,
        "max_points": 1_000_000_000,
        "enabled": True,
        "effective_from": START,
        "effective_until": None,
    }
    values.update(fields)
    return ConversionRule(source=source, target=target, rate=Decimal(rate), **values)


def run(rules: list[ConversionRule], cycle: tuple[str, ...], points: int) -> int | None:
    """What converting ``points`` round ``cycle`` returns; None if a rule refuses an amount."""
    by_pair = {(each.source, each.target): each for each in rules}
    for source, target in pairwise(cycle):
        step = by_pair[source, target]
        if not step.min_points <= points <= step.max_points:
            return None
        points = step.received_for(points)
        if points < 1:
            return None
    return points


def found(rules: list[ConversionRule], since: datetime = START) -> Arbitrage:
    result = find_arbitrage(rules, since)
    assert isinstance(result, Arbitrage), result
    assert run(rules, result.cycle, result.points_in) == result.points_out
    assert result.points_out > result.points_in
    return result


def test_the_demo_coalition_has_no_arbitrage() -> None:
    demo = load_coalition(DEMO_DIRECTORY)
    rules = [each for partner in demo.partners.values() for each in partner.conversions]
    assert rules
    assert find_arbitrage(rules, datetime(2025, 1, 1, tzinfo=UTC)) is None


def test_a_two_partner_cycle_that_gains_is_named_with_its_amounts() -> None:
    rules = [rule("alpha", "beta", "0.5"), rule("beta", "alpha", "2.5")]
    result = found(rules)
    assert result.cycle in {("alpha", "beta", "alpha"), ("beta", "alpha", "beta")}
    assert result.at == START
    middle = rules[0] if result.cycle[0] == "alpha" else rules[1]
    back = rules[1] if middle is rules[0] else rules[0]
    assert result.points_out == back.received_for(middle.received_for(result.points_in))
    assert (
        str(result)
        == result.message
        == (
            f"converting {result.points_in} points round {' → '.join(result.cycle)} "
            f"from 2026-01-01 returns {result.points_out}"
        )
    )


@pytest.mark.parametrize(
    ("there", "back"),
    [
        ({"fee_percent": Decimal(10)}, {"fee_percent": Decimal("12.5")}),  # 0.45 * 2.1875 < 1
        ({}, {"fee_percent": Decimal(20)}),  # 0.5 * 2 = 1: never more than was taken
        ({"max_points": 100}, {"fee_fixed": 30}),  # at most 100 → 50 → (50-30) * 2.5 = 50
    ],
)
def test_fees_that_eat_the_gain_make_the_rates_safe(
    there: dict[str, Any], back: dict[str, Any]
) -> None:
    rules = [rule("alpha", "beta", "0.5", **there), rule("beta", "alpha", "2.5", **back)]
    assert find_arbitrage(rules, START) is None


def test_a_fixed_fee_that_bites_only_small_amounts_leaves_the_gain_on_large_ones() -> None:
    rules = [
        rule("alpha", "beta", "0.5", max_points=1000),
        rule("beta", "alpha", "2.5", fee_fixed=30),
    ]
    assert run(rules, ("alpha", "beta", "alpha"), 100) == 50  # (50 - 30) * 2.5
    result = found(rules)
    assert run(rules, ("alpha", "beta", "alpha"), 1000) == 1175  # (500 - 30) * 2.5
    assert result.points_out - result.points_in >= 175 or result.cycle[0] == "beta"


def test_bounds_that_keep_the_gainful_amounts_out_of_reach_make_the_rates_safe() -> None:
    # From alpha at most 10 → 5 beta points, below beta's minimum of 100; from beta at least
    # 100 → 250 alpha points, above alpha's maximum of 10.
    rules = [
        rule("alpha", "beta", "0.5", max_points=10),
        rule("beta", "alpha", "2.5", min_points=100),
    ]
    assert find_arbitrage(rules, START) is None


def test_every_partner_of_a_cycle_is_tried_as_its_start() -> None:
    # From alpha at least 1000 → 500 beta points, above beta's maximum; from beta it gains.
    rules = [
        rule("alpha", "beta", "0.5", min_points=1000),
        rule("beta", "alpha", "2.5", max_points=400),
    ]
    result = found(rules)
    assert (result.cycle, result.points_in, result.points_out) == (
        ("beta", "alpha", "beta"),
        400,
        500,
    )


def test_a_gain_that_rounding_allows_at_only_a_few_amounts_is_found() -> None:
    rules = [
        rule("alpha", "gamma", "0.9", fee_percent=Decimal(5), fee_fixed=1, max_points=106),
        rule("gamma", "alpha", "1.2", min_points=78),
    ]
    cycle = ("alpha", "gamma", "alpha")
    gains = [amount for amount in range(1, 107) if (run(rules, cycle, amount) or 0) > amount]
    assert gains == [95, 96]
    result = found(rules)
    assert (result.cycle, result.points_in, result.points_out) == (cycle, 95, 96)


def test_small_amounts_that_rounding_keeps_from_gaining_are_safe() -> None:
    # 1.1 points per point on at most 5 points rounds down to no gain at all.
    rules = [
        rule(source, target, "1.1", max_points=5)
        for source, target in permutations(["alpha", "beta", "gamma", "delta"], 2)
    ]
    assert find_arbitrage(rules, START) is None


@pytest.mark.parametrize(
    "change",
    [
        {"enabled": False},
        {"effective_from": datetime(2027, 1, 1, tzinfo=UTC)},
    ],
)
def test_a_rule_disabled_or_not_in_force_with_the_others_breaks_the_cycle(
    change: dict[str, Any],
) -> None:
    rules = [
        rule("alpha", "beta", "0.5", effective_until=datetime(2027, 1, 1, tzinfo=UTC)),
        rule("beta", "alpha", "2.5", **change),
    ]
    assert find_arbitrage(rules, START) is None


def test_rules_that_ended_before_the_check_do_not_count() -> None:
    rules = [
        rule("alpha", "beta", "0.5", effective_until=datetime(2026, 3, 1, tzinfo=UTC)),
        rule("beta", "alpha", "2.5"),
    ]
    assert found(rules).at == START
    assert find_arbitrage(rules, datetime(2026, 3, 1, tzinfo=UTC)) is None


def test_a_three_partner_cycle() -> None:
    rules = [
        rule("alpha", "beta", "0.5"),
        rule("beta", "gamma", "3", fee_percent=Decimal(2)),
        rule("gamma", "alpha", "0.8"),  # 0.5 * 2.94 * 0.8 = 1.176
        rule("beta", "alpha", "1.9"),
        rule("gamma", "beta", "0.3"),
    ]
    result = found(rules)
    assert sorted(result.cycle[:-1]) == ["alpha", "beta", "gamma"]
    assert result.cycle[0] == result.cycle[-1]


def test_a_future_rule_that_closes_a_cycle_is_found_when_it_takes_effect() -> None:
    rules = [
        rule("alpha", "beta", "0.5"),
        rule("beta", "alpha", "1.9", effective_until=LATER),
        rule("beta", "alpha", "2.5", effective_from=LATER),
    ]
    result = found(rules)
    assert result.at == LATER
    assert f"from {LATER.date().isoformat()} returns" in result.message
    assert found(rules, since=datetime(2028, 1, 1, tzinfo=UTC)).at == datetime(
        2028, 1, 1, tzinfo=UTC
    )


def test_rates_that_gain_but_are_stopped_only_by_tangled_bounds_are_refused_unproven() -> None:
    partners = [f"p{index}" for index in range(12)]
    rules = [
        rule(source, target, "1.009", max_points=100)
        for source, target in permutations(partners, 2)
    ]
    result = find_arbitrage(rules, START)
    assert isinstance(result, Unproven)
    assert result.at == START
    assert "could not be proven free of arbitrage" in str(result)


@pytest.mark.parametrize(
    ("rate", "fields"),
    [("0", {}), ("1", {"fee_percent": Decimal(100)}), ("1", {"min_points": 0})],
)
def test_a_malformed_rule_is_a_clear_error(rate: str, fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="alpha → beta"):
        find_arbitrage([rule("alpha", "beta", rate, **fields)], START)


points = st.integers(min_value=1, max_value=10**9)
percents = st.decimals(min_value=0, max_value=Decimal("99.9"), places=1)
rates = st.decimals(min_value=Decimal("0.01"), max_value=100, places=2)


@given(rate=rates, fee_percent=percents, fee_fixed=st.integers(0, 1000), amount=points)
def test_the_rule_arithmetic_rounds_for_the_house_and_inverts_exactly(
    rate: Decimal, fee_percent: Decimal, fee_fixed: int, amount: int
) -> None:
    each = rule("alpha", "beta", str(rate), fee_percent=fee_percent, fee_fixed=fee_fixed)
    fee = (Decimal(amount) * fee_percent / 100).quantize(Decimal(1), ROUND_CEILING) + fee_fixed
    assert each.fee_for(amount) == fee
    net = amount - fee
    assert each.received_for(amount) == (
        0 if net <= 0 else int((net * rate).quantize(Decimal(1), ROUND_FLOOR))
    )
    least = each.points_for(amount)
    assert each.received_for(least) >= amount
    assert least == 1 or each.received_for(least - 1) < amount


PARTNERS = ["alpha", "beta", "gamma"]


@st.composite
def small_rules(draw: st.DrawFn) -> list[ConversionRule]:
    """Rules between three partners, at most 300 points at once; rates either anything or
    near what the partners' points are worth, so that round trips come close to 1."""
    worth = {partner: draw(st.integers(1, 20)) for partner in PARTNERS}
    priced = draw(st.booleans())
    rules = []
    for source, target in permutations(PARTNERS, 2):
        if not draw(st.booleans()):
            continue
        if priced:
            near = Decimal(worth[source]) / worth[target] * draw(st.integers(95, 110)) / 100
            rate = max(near.quantize(Decimal("0.01")), Decimal("0.01"))
        else:
            rate = draw(st.decimals(min_value=Decimal("0.2"), max_value=4, places=2))
        low = draw(st.integers(1, 100))
        rules.append(
            rule(
                source,
                target,
                str(rate),
                fee_percent=draw(st.sampled_from([Decimal(0), Decimal("1.5"), Decimal(5)])),
                fee_fixed=draw(st.integers(0, 3)),
                min_points=low,
                max_points=draw(st.integers(low, 300)),
            )
        )
    return rules


def brute_force_gains(rules: list[ConversionRule]) -> bool:
    cycles = [(*order, order[0]) for length in (2, 3) for order in permutations(PARTNERS, length)]
    pairs = {(each.source, each.target) for each in rules}
    for cycle in cycles:
        if all(pair in pairs for pair in pairwise(cycle)):
            for amount in range(1, 301):
                out = run(rules, cycle, amount)
                if out is not None and out > amount:
                    return True
    return False


@settings(max_examples=400, deadline=None)
@given(rules=small_rules())
def test_a_cycle_is_found_exactly_when_some_amount_gains(rules: list[ConversionRule]) -> None:
    result = find_arbitrage(rules, START)
    assert not isinstance(result, Unproven)
    assert (result is not None) == brute_force_gains(rules)
    if result is not None:
        assert run(rules, result.cycle, result.points_in) == result.points_out > result.points_in
