"""The member's dashboard: one query, what each caller may see, and the ranking of the
rewards a member can pay for now."""

from __future__ import annotations

from datetime import timedelta

from partners.config.coalition import DEMO_DIRECTORY
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ENROL, codes, payload
from tests.test_api import earn
from tests.test_rewards import redeem, reward

DASHBOARD = """
query($id: ID!, $suggestions: Int) {
  dashboard(memberId: $id, suggestions: $suggestions) {
    member {
      wallets { partner { slug } balance held pending owed value { amount } }
      totalValue { amount }
    }
    recentActivity { kind points partner { slug } }
    suggestedRewards { reward { name } payWith { slug } cost shareOfBalance }
  }
}"""


async def member_with_points(gateway: Gateway) -> str:
    result = payload(
        await gateway.gql(ENROL, {"input": {"partner": "brewbar", "partnerCustomerId": "B-1"}})
    )
    member: str = result["member"]["id"]
    for index in range(3):
        await earn(gateway, member, 100, f"bb-{index}", "brewbar")
    await earn(gateway, member, 1000, "sky-1", "skyway")
    return member


async def test_the_dashboard_shows_everything_and_ranks_rewards(gateway: Gateway):
    member = await member_with_points(gateway)
    await reward(gateway, "brewbar", name="Cappuccino", pricePoints=60, value="2.80")
    await reward(gateway, "brewbar", name="Beans", pricePoints=250, value="9.00")
    await reward(gateway, "brewbar", name="Too dear", pricePoints=5000, value="90.00")
    await reward(gateway, "skyway", name="Lounge", pricePoints=900, value="20.00")
    body = await gateway.gql(DASHBOARD, {"id": member})
    board = body["data"]["dashboard"]
    wallets = {w["partner"]["slug"]: w for w in board["member"]["wallets"]}
    assert wallets["brewbar"]["balance"] == 300 and wallets["skyway"]["balance"] == 1000
    assert wallets["brewbar"]["pending"] == 0 and wallets["brewbar"]["owed"] == 0
    assert board["member"]["totalValue"]["amount"] == "24.00"  # 300 x 0.04 + 1000 x 0.012
    assert [a["partner"]["slug"] for a in board["recentActivity"]] == [
        "skyway",
        "brewbar",
        "brewbar",
        "brewbar",
    ]
    suggested = [(s["reward"]["name"], s["payWith"]["slug"]) for s in board["suggestedRewards"]]
    # BrewBar is used most: its rewards first, the one closest to the balance first; the
    # reward the member cannot pay for from any pool is left out.
    assert suggested[:2] == [("Beans", "brewbar"), ("Cappuccino", "brewbar")]
    assert ("Lounge", "skyway") in suggested and "Too dear" not in dict(suggested)
    assert board["suggestedRewards"][0]["shareOfBalance"] == 250 / 300


async def test_a_partner_app_sees_only_its_own_pool_and_strangers_get_null(gateway: Gateway):
    member = await member_with_points(gateway)
    await reward(gateway, "skyway", name="Lounge", pricePoints=900, value="20.00")
    brewbar = await gateway.partner_token("brewbar")
    board = (await gateway.gql(DASHBOARD, {"id": member}, token=brewbar))["data"]["dashboard"]
    assert [w["partner"]["slug"] for w in board["member"]["wallets"]] == ["brewbar"]
    assert board["member"]["totalValue"] is None
    assert {a["partner"]["slug"] for a in board["recentActivity"]} == {"brewbar"}
    # Lounge costs 900 miles or their worth in stars: more stars than the wallet holds.
    assert board["suggestedRewards"] == []
    freshmart = await gateway.partner_token("freshmart")
    body = await gateway.gql(DASHBOARD, {"id": member}, token=freshmart)
    assert body["data"]["dashboard"] is None


async def test_the_dashboard_warns_of_points_expiring_within_ninety_days(gateway: Gateway):
    member = await member_with_points(gateway)
    query = """query($id: ID!) {
      dashboard(memberId: $id) { expiringSoon { partner { slug } points expiresAt } }
    }"""
    board = (await gateway.gql(query, {"id": member}))["data"]["dashboard"]
    assert board["expiringSoon"] == []  # BrewBar's stars expire after a year without activity
    gateway.clock.now += timedelta(days=300)
    board = (await gateway.gql(query, {"id": member}))["data"]["dashboard"]
    assert [(e["partner"]["slug"], e["points"]) for e in board["expiringSoon"]] == [
        ("brewbar", 300)
    ]


async def test_rewards_kept_for_a_higher_tier_are_not_suggested(database_url: str, clock: Clock):
    async for demo in start_gateway(database_url, clock, config_dir=str(DEMO_DIRECTORY)):
        member = await member_with_points(demo)
        await reward(demo, "brewbar", name="Cappuccino", pricePoints=60, value="2.80")
        await reward(
            demo, "brewbar", name="Gold espresso", pricePoints=50, value="2.00", minTier="gold"
        )
        board = (await demo.gql(DASHBOARD, {"id": member}))["data"]["dashboard"]
        names = [s["reward"]["name"] for s in board["suggestedRewards"]]
        assert "Cappuccino" in names and "Gold espresso" not in names
        query = "query($id: ID!) { rewards(affordableFor: $id) { name } }"
        affordable = (await demo.gql(query, {"id": member}))["data"]["rewards"]
        assert [r["name"] for r in affordable] == ["Cappuccino"]


# Issue 10, item 4: what is suggested can be redeemed. The listing and the redemption use one
# predicate (stock, validity, tier, the member's limit), in bulk for the listing.

SUGGESTED_AND_AFFORDABLE = """
query($id: ID!) {
  dashboard(memberId: $id, suggestions: 50) { suggestedRewards { reward { name } } }
  rewards(affordableFor: $id) { name }
}"""


async def offered(gateway: Gateway, member: str) -> tuple[set[str], set[str]]:
    """The names the dashboard suggests and those `rewards(affordableFor:)` lists."""
    body = await gateway.gql(SUGGESTED_AND_AFFORDABLE, {"id": member})
    assert "errors" not in body, body
    data = body["data"]
    suggested = {s["reward"]["name"] for s in data["dashboard"]["suggestedRewards"]}
    return suggested, {r["name"] for r in data["rewards"]}


async def test_a_reward_whose_limit_the_member_used_up_is_not_offered(gateway: Gateway):
    member = await member_with_points(gateway)
    once = await reward(gateway, "brewbar", name="Once", pricePoints=60, perMemberLimit=1)
    twice = await reward(gateway, "brewbar", name="Twice", pricePoints=10, perMemberLimit=2)
    last = await reward(gateway, "brewbar", name="Last unit", pricePoints=20, stock=1)
    await reward(gateway, "brewbar", name="Open", pricePoints=30)
    assert await offered(gateway, member) == ({"Once", "Twice", "Last unit", "Open"},) * 2
    for reward_id, key in ((once, "r-1"), (twice, "r-2"), (last, "r-3")):
        assert codes(await redeem(gateway, reward_id, member, "brewbar", key)) == []
    # "Once" is used up for this member, "Last unit" for everyone; "Twice" has one use left.
    assert await offered(gateway, member) == ({"Twice", "Open"},) * 2
    assert codes(await redeem(gateway, once, member, "brewbar", "r-4")) == ["REWARD_LIMIT_REACHED"]
    assert codes(await redeem(gateway, twice, member, "brewbar", "r-5")) == []
    assert await offered(gateway, member) == ({"Open"},) * 2
    # The limit is the member's: another member is still offered all three.
    other = payload(
        await gateway.gql(ENROL, {"input": {"partner": "brewbar", "partnerCustomerId": "B-2"}})
    )["member"]["id"]
    await earn(gateway, other, 100, "other-1", "brewbar")
    assert await offered(gateway, other) == ({"Once", "Twice", "Open"},) * 2


async def test_a_tier_upgrade_that_would_not_raise_the_tier_is_not_offered(
    database_url: str, clock: Clock
):
    async for demo in start_gateway(database_url, clock, config_dir=str(DEMO_DIRECTORY)):
        member = await member_with_points(demo)  # 12 EUR at BrewBar + 12 EUR at SkyWay: Blue
        silver = await reward(
            demo, "brewbar", name="Silver", kind="TIER_UPGRADE", pricePoints=50, tier="silver"
        )
        await reward(demo, "brewbar", name="Gold", kind="TIER_UPGRADE", pricePoints=60, tier="gold")
        step = await reward(demo, "brewbar", name="Step up", kind="TIER_UPGRADE", pricePoints=70)
        assert await offered(demo, member) == ({"Silver", "Gold", "Step up"},) * 2
        await earn(demo, member, 25, "bb-more", "brewbar")  # 25 EUR: Silver
        assert await offered(demo, member) == ({"Gold", "Step up"},) * 2
        assert codes(await redeem(demo, silver, member, "brewbar", "k-silver")) == [
            "REWARD_UNAVAILABLE"
        ]
        assert codes(await redeem(demo, step, member, "brewbar", "k-step")) == []  # Gold
        assert await offered(demo, member) == (set(), set())
