"""A merge racing postings: no point is lost, stranded on the retired member, or counted
twice. Postings to the retired member either finish before the merge moves the wallets or
land on the survivor."""

from __future__ import annotations

import asyncio

from gateway.graphql.scalars import decode_member_id
from tests.conftest import Gateway
from tests.operations import EARN, ENROL, payload
from tests.sso import Brands, brands, sso  # noqa: F401

WALLETS = "query($id: ID!) { member(id: $id) { id wallets { partner { slug } balance } } }"
START = "mutation { startAccountLink { nonce userErrors { code } } }"
COMPLETE = """
mutation($token: String!) {
  completeAccountLink(input: {idToken: $token}) {
    member { id } mergedMemberIds userErrors { code message }
  }
}"""


async def balances(gateway: Gateway, member_id: str) -> dict[str, int]:
    body = await gateway.gql(WALLETS, {"id": member_id})
    return {w["partner"]["slug"]: w["balance"] for w in body["data"]["member"]["wallets"]}


async def test_earns_racing_a_merge_all_reach_the_survivor(sso: Gateway, brands: Brands):
    # B: BrewBar's customer BB-2002 with 100 stars. A: Alice, signed in at SkyWay.
    enrolled = payload(
        await sso.gql(ENROL, {"input": {"partner": "brewbar", "partnerCustomerId": "BB-2002"}})
    )
    b_id = enrolled["member"]["id"]
    brewbar = await sso.partner_token("brewbar")

    async def earn(key: str, member: dict[str, str], points: int) -> dict[str, object]:
        input = {"partner": "brewbar", "member": member, "points": points, "idempotencyKey": key}
        return payload(await sso.gql(EARN, {"input": input}, token=brewbar))

    assert (await earn("first", {"partnerCustomerId": "BB-2002"}, 100))["userErrors"] == []
    skyway_alice = brands.token("skyway", "alice-m", skyway_member="SKY-M")
    a_id = (await sso.gql("{ me { id } }", token=skyway_alice))["data"]["me"]["id"]
    assert a_id != b_id

    nonce = payload(await sso.gql(START, token=skyway_alice))["nonce"]
    brewbar_alice = brands.token("brewbar", "alice", nonce=nonce)

    async def link() -> dict[str, object]:
        await asyncio.sleep(0.05)
        return payload(await sso.gql(COMPLETE, {"token": brewbar_alice}, token=skyway_alice))

    async def worker(number: int) -> list[dict[str, object]]:
        # Sequential earns, half by customer id and half by member id, across the merge.
        member = {"partnerCustomerId": "BB-2002"} if number % 2 else {"id": b_id}
        return [await earn(f"race-{number}-{n}", member, 7) for n in range(12)]

    *batches, linked = await asyncio.gather(*(worker(n) for n in range(6)), link())
    assert linked["userErrors"] == [] and linked["mergedMemberIds"] == [b_id]
    assert all(result["userErrors"] == [] for batch in batches for result in batch)
    earned = 6 * 12 * 7

    survivor = await balances(sso, a_id)
    assert survivor["brewbar"] == 100 + earned
    # The retired id resolves to the survivor; its own wallet is empty for good.
    assert (await sso.gql(WALLETS, {"id": b_id}))["data"]["member"]["id"] == a_id
    retired = decode_member_id(b_id)
    assert retired is not None
    held = (await sso.service.wallets([retired]))[retired]
    assert [(w.pool, w.balance) for w in held] == [("brewbar", 0)]
    # A later earn by the retired id lands on the survivor too.
    assert (await earn("after", {"id": b_id}, 5))["userErrors"] == []
    assert (await balances(sso, a_id))["brewbar"] == 100 + earned + 5
