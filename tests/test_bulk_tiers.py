"""A member's first earns arriving in a batch count once towards their tier, as the same
earns one by one do (the batch builds the member's running sum before adding its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from partners.config.coalition import DEMO_DIRECTORY
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import EARN, ENROL, payload
from tests.test_bulk import BULK

TIER = """
query($id: ID!) {
  member(id: $id) { tier { tier { slug } qualifyingValue { amount } } }
}"""


@pytest.fixture
async def demo(database_url: str, clock: Clock) -> AsyncIterator[Gateway]:
    async for found in start_gateway(database_url, clock, config_dir=str(DEMO_DIRECTORY)):
        yield found


async def _member(gw: Gateway, customer: str) -> str:
    body = payload(
        await gw.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": customer}})
    )
    member_id: str = body["member"]["id"]
    return member_id


async def _tier(gw: Gateway, member: str) -> Any:
    return (await gw.gql(TIER, {"id": member}))["data"]["member"]["tier"]


async def test_first_earns_in_a_batch_count_once_towards_the_tier(demo: Gateway):
    batched, single = await _member(demo, "T-B"), await _member(demo, "T-S")
    amounts = ["40.00", "25.00", "60.00"]
    lines = [
        {"member": {"id": batched}, "idempotencyKey": f"b-{i}", "purchase": {"amount": a}}
        for i, a in enumerate(amounts)
    ]
    body = payload(await demo.gql(BULK, {"input": {"partner": "skyway", "lines": lines}}))
    assert body["succeeded"] == len(amounts)
    for i, a in enumerate(amounts):
        earn = {
            "partner": "skyway",
            "member": {"id": single},
            "idempotencyKey": f"s-{i}",
            "purchase": {"amount": a},
        }
        assert payload(await demo.gql(EARN, {"input": earn}))["userErrors"] == []
    assert await _tier(demo, batched) == await _tier(demo, single)
    for member, key in ((batched, "b-next"), (single, "s-next")):
        earn = {
            "partner": "skyway",
            "member": {"id": member},
            "idempotencyKey": key,
            "purchase": {"amount": "5.00"},
        }
        assert payload(await demo.gql(EARN, {"input": earn}))["userErrors"] == []
    assert await _tier(demo, batched) == await _tier(demo, single)
