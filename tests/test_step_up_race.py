"""Step-up under racing spends (issue 10, item 14), on PostgreSQL: the threshold over
``STEP_UP_WINDOW`` is checked inside the transaction that posts, under the member's lock, so
spends racing each other cannot together pass it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.operations import CONVERT, REDEEM, codes, payload
from tests.sso import Brands
from tests.test_account_security import balance, give, me
from tests.test_holds import authorize

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
THRESHOLD = 5000  # SkyWay's step-up in the demo configuration


async def redeem(sso: Gateway, token: str, member: str, points: int, key: str) -> list[str]:
    input = {"partner": "skyway", "member": {"id": member}, "points": points}
    body = await sso.gql(REDEEM, {"input": {**input, "idempotencyKey": key}}, token=token)
    return codes(payload(body))


async def convert(sso: Gateway, token: str, member: str, points: int, key: str) -> list[str]:
    input = {
        "memberId": member,
        "fromPartner": "skyway",
        "toPartner": "brewbar",
        "points": points,
        "idempotencyKey": key,
    }
    return codes(payload(await sso.gql(CONVERT, {"input": input}, token=token)))


async def hold(sso: Gateway, token: str, member: str, points: int, key: str) -> list[str]:
    return codes(await authorize(sso, member, points, key, token=token))


async def test_racing_redeems_never_pass_the_step_up_threshold_together(
    sso: Gateway,
    brands: Brands,
):
    token = brands.token("skyway", "racer")
    member = (await me(sso, token))["id"]
    await give(sso, member, "skyway", 50_000)
    for round_ in range(3):
        answers = await asyncio.gather(
            *(redeem(sso, token, member, 1000, f"R{round_}-{i}") for i in range(12))
        )
        if round_ == 0:
            assert answers.count([]) == THRESHOLD // 1000, answers
        assert answers.count([]) + answers.count(["STEP_UP_REQUIRED"]) == 12, answers
    assert balance(await me(sso, token), "skyway") == 50_000 - THRESHOLD


async def test_racing_spends_of_every_kind_are_counted_together(
    sso: Gateway,
    brands: Brands,
):
    token = brands.token("skyway", "mixed")
    member = (await me(sso, token))["id"]
    await give(sso, member, "skyway", 50_000)
    calls: list[Any] = []
    for i in range(4):
        calls += [
            redeem(sso, token, member, 1000, f"R-{i}"),
            convert(sso, token, member, 1000, f"C-{i}"),
            hold(sso, token, member, 1000, f"H-{i}"),
        ]
    answers = await asyncio.gather(*calls)
    assert answers.count([]) == THRESHOLD // 1000, answers
    assert answers.count(["STEP_UP_REQUIRED"]) == 12 - THRESHOLD // 1000, answers
