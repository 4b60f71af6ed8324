from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.exchange import Quote, quote
from gateway.ledger.rules import (
    AccountCode,
    Leg,
    TransferKind,
    assert_balanced,
    conversion_legs,
    earn_legs,
    redeem_legs,
    reversal_legs,
)
from partners.config.coalition import DEMO_DIRECTORY, Coalition, load_coalition

DEMO = load_coalition(DEMO_DIRECTORY)
AT = datetime(2026, 6, 1, tzinfo=UTC)
WALLET, ISSUANCE, REDEMPTION = AccountCode.WALLET, AccountCode.ISSUANCE, AccountCode.REDEMPTION
LIQUIDITY, FEES = AccountCode.LIQUIDITY, AccountCode.FEES
EARN, REDEEM = TransferKind.EARN, TransferKind.REDEEM
CONVERSION, REVERSAL = TransferKind.CONVERSION, TransferKind.REVERSAL
SAMPLES: dict[TransferKind, tuple[list[Leg], int]] = {
    EARN: (earn_legs("skyway", 120), 120),
    REDEEM: (redeem_legs("brewbar", 30), 30),
    CONVERSION: (conversion_legs(quote(DEMO, "skyway", "freshmart", 1000, AT)), 1000),
}
DEMO_PAIRS = [
    ("skyway", "brewbar"),
    ("skyway", "freshmart"),
    ("brewbar", "skyway"),
    ("freshmart", "brewbar"),
]


def fee_free() -> Coalition:
    partners = dict(DEMO.partners)
    skyway = partners["skyway"]
    rules = tuple(replace(r, fee_percent=Decimal(0), fee_fixed=0) for r in skyway.conversions)
    partners["skyway"] = replace(skyway, conversions=rules)
    return Coalition(DEMO.name, DEMO.settlement_currency, partners)


def totals(legs: Iterable[Leg]) -> dict[tuple[str, AccountCode], int]:
    sums: dict[tuple[str, AccountCode], int] = defaultdict(int)
    for leg in legs:
        sums[leg.pool, leg.account] += leg.amount
    return {key: value for key, value in sums.items() if value}


def refused(
    kind: TransferKind, legs: list[Leg], total: int, points: int | None, before: int = 0
) -> DomainError:
    with pytest.raises(DomainError) as caught:
        reversal_legs(kind, legs, total, points, before)
    return caught.value


def test_earn_legs_move_points_from_issuance_to_wallet() -> None:
    legs = earn_legs("skyway", 120)
    assert legs == [Leg("skyway", ISSUANCE, -120), Leg("skyway", WALLET, 120)]
    assert_balanced(legs)


def test_redeem_legs_move_points_from_wallet_to_redemption() -> None:
    legs = redeem_legs("brewbar", 30)
    assert legs == [Leg("brewbar", WALLET, -30), Leg("brewbar", REDEMPTION, 30)]
    assert_balanced(legs)


def test_conversion_legs_balance_each_pool_and_carry_the_fee() -> None:
    result = quote(DEMO, "skyway", "brewbar", 1000, AT)  # fee 20, received 245
    legs = conversion_legs(result)
    assert legs == [
        Leg("skyway", WALLET, -1000),
        Leg("skyway", LIQUIDITY, 980),
        Leg("skyway", FEES, 20),
        Leg("brewbar", LIQUIDITY, -245),
        Leg("brewbar", WALLET, 245),
    ]
    assert_balanced(legs)


def test_conversion_without_fee_has_no_fee_leg() -> None:
    result = quote(fee_free(), "skyway", "brewbar", 1000, AT)
    assert result.fee == 0
    legs = conversion_legs(result)
    assert all(leg.account is not FEES for leg in legs)
    assert totals(legs) == {
        ("skyway", WALLET): -1000,
        ("skyway", LIQUIDITY): 1000,
        ("brewbar", LIQUIDITY): -250,
        ("brewbar", WALLET): 250,
    }
    assert_balanced(legs)


@pytest.mark.parametrize(
    "legs",
    [
        [Leg("skyway", WALLET, 10)],
        [Leg("skyway", WALLET, 10), Leg("skyway", ISSUANCE, -9)],
        [Leg("skyway", WALLET, 10), Leg("brewbar", ISSUANCE, -10)],
    ],
)
def test_assert_balanced_refuses_unbalanced_legs(legs: list[Leg]) -> None:
    with pytest.raises(ValueError, match="do not balance"):
        assert_balanced(legs)


def test_assert_balanced_refuses_a_zero_leg() -> None:
    legs = [Leg("skyway", WALLET, 10), Leg("skyway", FEES, 0), Leg("skyway", ISSUANCE, -10)]
    with pytest.raises(ValueError, match="zero leg"):
        assert_balanced(legs)


@pytest.mark.parametrize("kind", [EARN, REDEEM, CONVERSION])
@pytest.mark.parametrize("full", ["omitted", "equal to total"])
def test_full_reversal_negates_every_leg(kind: TransferKind, full: str) -> None:
    legs, total = SAMPLES[kind]
    points = None if full == "omitted" else total
    reversed_legs = reversal_legs(kind, legs, total, points)
    assert reversed_legs == [Leg(leg.pool, leg.account, -leg.amount) for leg in legs]
    assert_balanced(reversed_legs)
    assert totals(legs + reversed_legs) == {}


def test_partial_reversal_of_an_earn_takes_points_back_to_issuance() -> None:
    legs = reversal_legs(EARN, earn_legs("skyway", 120), 120, 45)
    assert legs == [Leg("skyway", ISSUANCE, 45), Leg("skyway", WALLET, -45)]
    assert totals(earn_legs("skyway", 120) + legs)[("skyway", WALLET)] == 75


def test_partial_reversal_of_a_redeem_gives_points_back_to_the_wallet() -> None:
    legs = reversal_legs(REDEEM, redeem_legs("brewbar", 30), 30, 1)
    assert legs == [Leg("brewbar", WALLET, 1), Leg("brewbar", REDEMPTION, -1)]
    assert totals(redeem_legs("brewbar", 30) + legs)[("brewbar", WALLET)] == -29


def test_partial_reversals_of_a_conversion_are_proportional_and_add_up() -> None:
    legs = conversion_legs(quote(DEMO, "skyway", "brewbar", 1000, AT))
    received = totals(legs)[("brewbar", WALLET)]
    fee = totals(legs).get(("skyway", FEES), 0)
    first = reversal_legs(CONVERSION, legs, 1000, 300)
    assert_balanced(first)
    # The member gets 300 miles back and returns 30% of the stars, rounded up; the operator
    # refunds 30% of the fee, rounded down.
    assert totals(first)[("skyway", WALLET)] == 300
    assert totals(first)[("brewbar", WALLET)] == (-received * 300) // 1000 == -74
    assert totals(first).get(("skyway", FEES), 0) == -(fee * 300 // 1000)
    rest = reversal_legs(CONVERSION, legs, 1000, None, 300)
    assert_balanced(rest)
    assert totals(legs + first + rest) == {}
    error = refused(CONVERSION, legs, 1000, 701, 300)
    assert (error.code, error.field) == (ErrorCode.AMOUNT_OUT_OF_BOUNDS, ("points",))
    assert "At most 700 points" in error.message
    done = refused(CONVERSION, legs, 1000, None, 1000)
    assert done.code is ErrorCode.TRANSFER_ALREADY_REVERSED


@pytest.mark.parametrize("points", [None, 10, 120])
def test_a_reversal_cannot_be_reversed(points: int | None) -> None:
    legs = reversal_legs(EARN, earn_legs("skyway", 120), 120, None)
    error = refused(REVERSAL, legs, 120, points)
    assert (error.code, error.field) == (ErrorCode.NOT_REVERSIBLE, ("transfer_id",))


@pytest.mark.parametrize("kind", [EARN, REDEEM])
def test_reversing_more_than_the_total_is_out_of_bounds(kind: TransferKind) -> None:
    legs, total = SAMPLES[kind]
    error = refused(kind, legs, total, total + 1)
    assert (error.code, error.field) == (ErrorCode.AMOUNT_OUT_OF_BOUNDS, ("points",))
    assert f"At most {total} points" in error.message


@pytest.mark.parametrize("kind", [EARN, REDEEM, CONVERSION])
@pytest.mark.parametrize("points", [0, -1, -120])
def test_reversing_non_positive_points_is_refused(kind: TransferKind, points: int) -> None:
    error = refused(kind, *SAMPLES[kind], points)
    assert (error.code, error.field) == (ErrorCode.AMOUNT_NOT_POSITIVE, ("points",))


@st.composite
def transfers(draw: st.DrawFn) -> tuple[TransferKind, list[Leg], int]:
    kind = draw(st.sampled_from([EARN, REDEEM, CONVERSION]))
    if kind is CONVERSION:
        source, target = draw(st.sampled_from(DEMO_PAIRS))
        rule = DEMO.rule_in_force(source, target, AT)
        assert rule is not None
        points = draw(st.integers(rule.min_points, rule.max_points))
        result: Quote = quote(DEMO, source, target, points, AT)
        return kind, conversion_legs(result), points
    pool = draw(st.sampled_from(sorted(DEMO.partners)))
    points = draw(st.integers(1, 1_000_000_000))
    return kind, (earn_legs if kind is EARN else redeem_legs)(pool, points), points


@given(transfer=transfers(), data=st.data())
def test_original_plus_reversal_stays_balanced_per_pool(
    transfer: tuple[TransferKind, list[Leg], int], data: st.DataObject
) -> None:
    kind, legs, total = transfer
    assert_balanced(legs)
    points = data.draw(st.none() | st.integers(1, total))
    undo = reversal_legs(kind, legs, total, points)
    assert_balanced(undo)
    assert_balanced(legs + undo)
    left = total - (total if points is None else points)
    wallets = {pool: n for (pool, account), n in totals(legs + undo).items() if account is WALLET}
    if left == 0:
        assert totals(legs + undo) == {}
    elif kind is not CONVERSION:
        assert wallets == {legs[0].pool: left if kind is EARN else -left}


@given(transfer=transfers(), data=st.data())
def test_partial_reversals_add_up_to_the_original_and_never_beyond(
    transfer: tuple[TransferKind, list[Leg], int], data: st.DataObject
) -> None:
    """Parts of any sizes, each balanced per pool, never undo more of any account than the
    original moved, and the last one leaves nothing of the original; one more is refused."""
    kind, legs, total = transfer
    posted = list(legs)
    before = 0
    while before < total:
        points = data.draw(st.none() | st.integers(1, total - before), label="part")
        undo = reversal_legs(kind, legs, total, points, before)
        assert_balanced(undo)
        posted += undo
        before += points if points is not None else total - before
        for account, amount in totals(posted).items():
            original = totals(legs).get(account, 0)
            # What is left of each account lies between nothing and what the original moved.
            assert 0 <= amount * (1 if original > 0 else -1) <= abs(original), account
    assert totals(posted) == {}
    assert refused(kind, legs, total, None, total).code is ErrorCode.TRANSFER_ALREADY_REVERSED
    beyond = refused(kind, legs, total, total + 1, 0)
    assert beyond.code is ErrorCode.AMOUNT_OUT_OF_BOUNDS
