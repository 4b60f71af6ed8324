"""Reversals over HTTP (issue 10, items 3 and 15): partial reversals that add up to the
original, each with its own key, never beyond; conversions reversed in proportion with their
settlement obligations; racing retries of one reversal answer as replays and write nothing."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.settlement.service import SettlementService
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import REVERSE, codes, payload
from tests.test_api import balances, convert, earn, enrol


async def reverse(
    gateway: Gateway,
    transfer: str,
    key: str,
    points: int | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    variables: dict[str, Any] = {"transferId": transfer, "idempotencyKey": key}
    if points is not None:
        variables["points"] = points
    if reason is not None:
        variables["reason"] = reason
    return payload(await gateway.gql(REVERSE, {"input": variables}))


async def rows(gateway: Gateway, query: str, **params: Any) -> list[Any]:
    async with gateway.service.engine.begin() as connection:
        return list((await connection.execute(sa.text(query), params)).all())


def transfer_number(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


async def reversed_by(gateway: Gateway, transfer: str) -> str | None:
    body = await gateway.gql(
        "query($id: ID!) { node(id: $id) { ... on Transfer { reversedBy { id } } } }",
        {"id": transfer},
    )
    found = body["data"]["node"]["reversedBy"]
    return None if found is None else str(found["id"])


async def test_partial_reversals_add_up_to_the_original(gateway: Gateway):
    member = await enrol(gateway)
    earned = (await earn(gateway, member, 100, "E1"))["transfer"]["id"]
    first = await reverse(gateway, earned, "V1", points=30, reason="wrong till")
    assert first["userErrors"] == [] and first["reversal"]["points"] == 30
    assert first["reversal"]["reason"] == "wrong till"
    second = await reverse(gateway, earned, "V2", points=70, reason="returned the rest")
    assert second["userErrors"] == [] and second["reversal"]["points"] == 70
    assert second["reversal"]["reverses"] == {"id": earned}
    assert (await balances(gateway, member))["skyway"] == 0
    assert await reversed_by(gateway, earned) == second["reversal"]["id"]
    # Each key answers as it did the first time.
    replay = await reverse(gateway, earned, "V1", points=30, reason="wrong till")
    assert replay["idempotentReplay"] is True
    assert replay["reversal"]["id"] == first["reversal"]["id"]
    # Nothing is left to reverse.
    assert codes(await reverse(gateway, earned, "V3", points=1)) == ["TRANSFER_ALREADY_REVERSED"]
    assert codes(await reverse(gateway, earned, "V4")) == ["TRANSFER_ALREADY_REVERSED"]


async def test_a_reversal_beyond_what_is_left_is_refused(gateway: Gateway):
    member = await enrol(gateway)
    earned = (await earn(gateway, member, 100, "E1"))["transfer"]["id"]
    assert (await reverse(gateway, earned, "V1", points=30))["userErrors"] == []
    beyond = await reverse(gateway, earned, "V2", points=71)
    assert codes(beyond) == ["AMOUNT_OUT_OF_BOUNDS"]
    assert beyond["userErrors"][0]["field"] == ["input", "points"]
    assert "At most 70 points" in beyond["userErrors"][0]["message"]
    # The refused key stays free; leaving out points reverses what is left.
    rest = await reverse(gateway, earned, "V2")
    assert rest["userErrors"] == [] and rest["reversal"]["points"] == 70
    assert (await balances(gateway, member))["skyway"] == 0


async def test_partial_reversals_of_a_conversion_are_proportional(gateway: Gateway):
    member = await enrol(gateway)
    await earn(gateway, member, 2000, "E1")
    converted = await convert(gateway, member, 1000, "C1")  # skyway -> brewbar
    conversion = converted["transfer"]
    received, fee = conversion["receivedPoints"], conversion["fee"]
    first = await reverse(gateway, conversion["id"], "V1", points=300)
    assert first["userErrors"] == []
    part = first["reversal"]
    # 300 of the 1000 miles back; 30% of the stars taken back, rounded up (the house's
    # favour), 30% of the fee refunded, rounded down.
    assert part["points"] == 300
    assert part["receivedPoints"] == -(-received * 300 // 1000)
    assert part["fee"] == fee * 300 // 1000
    by_pool: dict[str, int] = {}
    for leg in part["legs"]:
        by_pool[leg["partner"]["slug"]] = by_pool.get(leg["partner"]["slug"], 0) + leg["amount"]
    assert by_pool == {"skyway": 0, "brewbar": 0}  # the pair stays balanced
    assert await balances(gateway, member) == {
        "skyway": 1000 + 300,
        "brewbar": received - part["receivedPoints"],
        "freshmart": 0,
    }
    rest = await reverse(gateway, conversion["id"], "V2")
    assert rest["userErrors"] == [] and rest["reversal"]["points"] == 700
    assert part["receivedPoints"] + rest["reversal"]["receivedPoints"] == received
    assert part["fee"] + rest["reversal"]["fee"] == fee
    assert await balances(gateway, member) == {"skyway": 2000, "brewbar": 0, "freshmart": 0}
    assert codes(await reverse(gateway, conversion["id"], "V3")) == ["TRANSFER_ALREADY_REVERSED"]


async def test_obligations_of_a_partially_reversed_conversion_follow(
    gateway: Gateway, clock: Clock
):
    member = await enrol(gateway)
    await earn(gateway, member, 2000, "E1")
    conversion = (await convert(gateway, member, 1000, "C1"))["transfer"]
    for key, points in (("V1", 300), ("V2", 200), ("V3", None)):
        assert (await reverse(gateway, conversion["id"], key, points))["userErrors"] == []
    found = await rows(
        gateway,
        "SELECT o.debtor, o.creditor, o.amount, t.received_points FROM obligations o "
        "JOIN transfers t ON t.id = o.transfer_id ORDER BY o.id",
    )
    value = gateway.service.coalition.partners["brewbar"].point_value
    owed = Decimal(found[0].amount)
    assert (found[0].debtor, found[0].creditor) == ("skyway", "brewbar")
    assert owed == value * conversion["receivedPoints"]
    back = found[1:]
    assert [(row.debtor, row.creditor) for row in back] == [("brewbar", "skyway")] * 3
    assert all(Decimal(row.amount) == value * row.received_points for row in back)
    assert sum(Decimal(row.amount) for row in back) == owed
    clock.now += timedelta(hours=2)
    settlement: SettlementService = gateway.app.state.settlement
    period = await settlement.close(clock.now - timedelta(minutes=1), "test")
    assert period.obligation_count >= 4
    assert await settlement.reconcile() == []


# Racing retries (PostgreSQL)


@pytest.fixture
async def pg_gateway(pg_url: str) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(pg_url, Clock()):
        yield gateway


@pytest.mark.parametrize("points", [None, 400])
async def test_racing_retries_of_a_conversion_reversal_replay_and_write_nothing(
    pg_gateway: Gateway, points: int | None
):
    gateway = pg_gateway
    member = await enrol(gateway)
    await earn(gateway, member, 20_000, "E1")
    for round_ in range(6):
        conversion = (await convert(gateway, member, 1000, f"C{round_}"))["transfer"]
        answers = await asyncio.gather(
            *(reverse(gateway, conversion["id"], f"V{round_}", points) for _ in range(3))
        )
        assert [codes(answer) for answer in answers] == [[], [], []], answers
        assert sorted(answer["idempotentReplay"] for answer in answers) == [False, True, True]
        assert len({answer["reversal"]["id"] for answer in answers}) == 1
        reversal = transfer_number(answers[0]["reversal"]["id"])
        original = transfer_number(conversion["id"])
        assert await rows(
            gateway,
            "SELECT COUNT(*) FROM transfers WHERE reverses_id = :id",
            id=original,
        ) == [(1,)]
        # One obligation giving the value back, whichever transfer it is recorded on.
        assert await rows(
            gateway,
            "SELECT COUNT(*) FROM obligations WHERE debtor = 'brewbar' "
            "AND transfer_id IN (:original, :reversal)",
            original=original,
            reversal=reversal,
        ) == [(1,)]
    assert await gateway.app.state.settlement.reconcile() == []
