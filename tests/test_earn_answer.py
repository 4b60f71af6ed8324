"""The earn payload over HTTP (issue 10, item 2): the wallet as the call left it, after every
posting it made (a debt repaid, a referral bonus), the breakdown of every award it paid, a
pending earn's wallet, and replays that answer the same."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import Clock, Gateway
from tests.operations import ERRORS, REDEEM, payload
from tests.test_programme import (  # noqa: F401
    APPLY,
    REFERRAL_CODE,
    _programme,
    enrol,
    give_back,
    gw,
    wallet,
)

EARN = f"""
mutation($input: EarnPointsInput!) {{
  earnPoints(input: $input) {{
    transfer {{ id points }}
    wallet {{ balance available pending owed held }}
    breakdown {{ rule points }}
    pending idempotentReplay {ERRORS}
  }}
}}"""


async def buy(
    gw: Gateway, member: str, key: str, amount: str, partner: str = "shop"
) -> dict[str, Any]:
    variables = {"partner": partner, "member": {"id": member}, "idempotencyKey": key}
    result = payload(await gw.gql(EARN, {"input": {**variables, "purchase": {"amount": amount}}}))
    assert result["userErrors"] == [], result
    return result


def answer(result: dict[str, Any]) -> dict[str, Any]:
    """What a retry must repeat: everything but the replay flag."""
    return {key: value for key, value in result.items() if key != "idempotentReplay"}


async def test_an_earn_that_repays_a_debt_shows_the_wallet_it_left(gw: Gateway):
    member = await enrol(gw, "shop", "S-1")
    await buy(gw, member, "R-1", "100.00")  # 300 earned; 350 with the sign-up bonus
    spend = {"partner": "shop", "member": {"id": member}, "points": 300, "idempotencyKey": "s"}
    assert payload(await gw.gql(REDEEM, {"input": spend}))["userErrors"] == []
    returned = await give_back(gw, "R-1", "100.00", "ret")
    assert (returned["clawedBack"], returned["owed"]) == (50, 100)
    # 60 earned, all of it paying back what is owed: the wallet holds -40.
    earned = await buy(gw, member, "R-2", "30.00")
    expected = {"balance": -40, "available": 0, "pending": 0, "owed": 40, "held": 0}
    assert earned["wallet"] == expected
    assert earned["transfer"]["points"] == 60
    assert await wallet(gw, member) == {
        k: expected[k] for k in ("balance", "available", "pending", "owed")
    }
    replay = await buy(gw, member, "R-2", "30.00")
    assert replay["idempotentReplay"] is True and answer(replay) == answer(earned)
    # A later earn changes the wallet, not the answer a retry of this one gets.
    await buy(gw, member, "R-3", "30.00")
    assert answer(await buy(gw, member, "R-2", "30.00")) == answer(earned)


async def test_a_referral_purchase_shows_the_bonus_and_the_wallet_with_it(
    gw: Gateway,
):
    referrer = await enrol(gw, "shop", "S-1")
    friend = await enrol(gw, "shop", "S-2")
    code = (await gw.gql(REFERRAL_CODE, {"id": referrer}))["data"]["member"]["referralCode"]
    applied = payload(await gw.gql(APPLY, {"input": {"memberId": friend, "code": code}}))
    assert applied["applied"] is True
    earned = await buy(gw, friend, "big", "25.00")
    # 25 x2 (summer double) + 100 welcome on the purchase, 250 referral bonus, 50 sign-up.
    assert earned["transfer"]["points"] == 150
    assert earned["breakdown"] == [
        {"rule": "base", "points": 25},
        {"rule": "promotion", "points": 25},
        {"rule": "promotion", "points": 100},
        {"rule": "referral", "points": 250},
    ]
    assert earned["wallet"]["balance"] == 50 + 150 + 250
    assert (await wallet(gw, friend))["balance"] == 450
    replay = await buy(gw, friend, "big", "25.00")
    assert replay["idempotentReplay"] is True and answer(replay) == answer(earned)


async def test_a_pending_earn_shows_the_wallet_with_its_pending_points(
    gw: Gateway,
    clock: Clock,
):
    member = await enrol(gw, "store", "T-1")
    earned = await buy(gw, member, "R-1", "30.00", partner="store")
    assert earned["pending"] is True
    assert earned["wallet"] == {"balance": 0, "available": 0, "pending": 300, "owed": 0, "held": 0}
    clock.now += timedelta(days=15)
    assert await _programme(gw).mature_due() == 1
    assert (await wallet(gw, member, "store"))["balance"] == 300
    replay = await buy(gw, member, "R-1", "30.00", partner="store")
    assert replay["idempotentReplay"] is True and answer(replay) == answer(earned)
