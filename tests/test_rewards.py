"""The rewards catalogue and redeemReward over HTTP, on SQLite and PostgreSQL (issue 4):
publishing and managing rewards, browsing the catalogue, paying in the reward's own pool or
from another pool through a conversion made atomically with the redemption, receipts,
idempotency, stock and per-member limits under concurrent redemptions, and who may do what.

The demo coalition's rules used here (the clock starts at 2026-06-01 12:00 UTC):
skyway -> brewbar 0.25 stars per mile, 2% fee rounded up, 100..200000 miles (until 2027,
then 0.27); freshmart -> brewbar 0.11 stars per point, fee 25 points; no freshmart -> skyway
rule. SkyWay asks for a second factor when a member spends more than 5000 miles a day.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.ledger.tables import obligations, transfers
from tests.conftest import PARTNER_SCOPES, Gateway
from tests.operations import ERRORS, QUOTE, TRANSFER_FIELDS, codes, payload
from tests.sso import Brands
from tests.test_api import earn, enrol

REWARD_FIELDS = """
  id partner { slug } kind name description pricePoints value { amount currency } charity
  validFrom validUntil stock perMemberLimit active available
"""
CREATE = f"""
mutation($input: CreateRewardInput!) {{
  createReward(input: $input) {{ reward {{ {REWARD_FIELDS} }} {ERRORS} }}
}}"""
UPDATE = f"""
mutation($input: UpdateRewardInput!) {{
  updateReward(input: $input) {{ reward {{ {REWARD_FIELDS} }} {ERRORS} }}
}}"""
CATALOGUE = """
query($partner: String, $kind: RewardKind, $affordableFor: ID,
      $includeUnavailable: Boolean! = false, $first: Int! = 50) {
  rewards(partner: $partner, kind: $kind, affordableFor: $affordableFor,
          includeUnavailable: $includeUnavailable, first: $first) {
    id name kind partner { slug } pricePoints stock available
  }
}"""
COST = """
query($id: ID!, $partner: String!) {
  node(id: $id) { ... on Reward { pricePoints costIn(partner: $partner) } }
}"""
NODE = f"query($id: ID!) {{ node(id: $id) {{ id ... on Reward {{ {REWARD_FIELDS} }} }} }}"
RECEIPT_FIELDS = f"""
  reward {{ id }} paidWith {{ slug }} paidPoints pricePoints rate giftCode charity createdAt
  conversion {{ {TRANSFER_FIELDS} }}
  redemption {{ {TRANSFER_FIELDS} }}
"""
REDEEM_REWARD = f"""
mutation($input: RedeemRewardInput!) {{
  redeemReward(input: $input) {{ receipt {{ {RECEIPT_FIELDS} }} idempotentReplay {ERRORS} }}
}}"""
ME = "{ me { id } }"
WALLETS = "query($id: ID!) { member(id: $id) { wallets { partner { slug } balance } } }"
GIFT_CODE = re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$")


# Helpers


def reward_input(**fields: Any) -> dict[str, Any]:
    """A valid reward's settings, with ``fields`` overriding (None leaves a field out)."""
    settings: dict[str, Any] = {
        "kind": "DISCOUNT",
        "name": "10% off",
        "pricePoints": 100,
        "value": "4.00",
    }
    settings.update(fields)
    return {name: value for name, value in settings.items() if value is not None}


async def create(
    gateway: Gateway, partner: str = "brewbar", token: str | None = None, **fields: Any
) -> dict[str, Any]:
    variables = {"input": {"partner": partner, "reward": reward_input(**fields)}}
    return payload(await gateway.gql(CREATE, variables, token=token))


async def reward(gateway: Gateway, partner: str = "brewbar", **fields: Any) -> str:
    """Publish a reward as the operator; its global id."""
    result = await create(gateway, partner, **fields)
    assert result["userErrors"] == [], result
    reward_id: str = result["reward"]["id"]
    return reward_id


async def update(
    gateway: Gateway, reward_id: str, token: str | None = None, **fields: Any
) -> dict[str, Any]:
    variables = {"input": {"rewardId": reward_id, "reward": fields}}
    return payload(await gateway.gql(UPDATE, variables, token=token))


async def redeem(
    gateway: Gateway,
    reward_id: str,
    member: str | dict[str, Any],
    pay_with: str,
    key: str,
    token: str | None = None,
) -> dict[str, Any]:
    reference = {"id": member} if isinstance(member, str) else member
    variables = {
        "input": {
            "rewardId": reward_id,
            "member": reference,
            "payWith": pay_with,
            "idempotencyKey": key,
        }
    }
    return payload(await gateway.gql(REDEEM_REWARD, variables, token=token))


async def catalogue(gateway: Gateway, token: str | None = None, **variables: Any) -> list[dict]:
    body = await gateway.gql(CATALOGUE, variables, token=token)
    found: list[dict[str, Any]] = body["data"]["rewards"]
    return found


async def names(gateway: Gateway, **variables: Any) -> list[str]:
    return [r["name"] for r in await catalogue(gateway, **variables)]


async def node(gateway: Gateway, reward_id: str, token: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = (await gateway.gql(NODE, {"id": reward_id}, token=token))["data"][
        "node"
    ]
    return found


async def cost_in(gateway: Gateway, reward_id: str, partner: str) -> int | None:
    body = await gateway.gql(COST, {"id": reward_id, "partner": partner})
    cost: int | None = body["data"]["node"]["costIn"]
    return cost


async def quote(gateway: Gateway, member: str, source: str, target: str, points: int) -> dict:
    variables = {
        "input": {"memberId": member, "fromPartner": source, "toPartner": target, "points": points}
    }
    return payload(await gateway.gql(QUOTE, variables))


async def balances(gateway: Gateway, member: str) -> dict[str, int]:
    body = await gateway.gql(WALLETS, {"id": member})
    return {w["partner"]["slug"]: w["balance"] for w in body["data"]["member"]["wallets"]}


async def transfer_count(gateway: Gateway) -> int:
    async with gateway.service.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(transfers)) or 0)


async def reward_obligations(gateway: Gateway) -> list[tuple[str, str, str, Decimal]]:
    """The obligations recorded for reward redemptions: (kind, debtor, creditor, amount)."""
    query = select(obligations).where(obligations.c.redemption_id.is_not(None))
    async with gateway.service.engine.connect() as connection:
        rows = (await connection.execute(query.order_by(obligations.c.id))).all()
    return [(r.kind, r.debtor, r.creditor, Decimal(str(r.amount))) for r in rows]


async def member_with(
    gateway: Gateway,
    miles: int = 0,
    stars: int = 0,
    points: int = 0,
    customer: str = "C-1",
    partner: str = "skyway",
) -> str:
    """A member enrolled at ``partner`` holding these balances (earned by member id)."""
    member = await enrol(gateway, partner, customer)
    for pool, amount in (("skyway", miles), ("brewbar", stars), ("freshmart", points)):
        if amount:
            result = await earn(gateway, member, amount, f"start-{customer}-{pool}", partner=pool)
            assert result["userErrors"] == [], result
    return member


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


NOW = "2026-06-01T12:00:00+00:00"
EVERY_KIND = [
    {"kind": "DISCOUNT", "name": "10% off", "pricePoints": 100, "value": "4.00"},
    {"kind": "FREE_PRODUCT", "name": "Free latte", "pricePoints": 120, "value": "4.50"},
    {"kind": "GIFT_CARD", "name": "EUR 10 gift card", "pricePoints": 250, "value": "10"},
    {
        "kind": "EXPERIENCE",
        "name": "Barista masterclass",
        "pricePoints": 2000,
        "value": "80",
        "stock": 12,
        "perMemberLimit": 1,
        "validUntil": "2026-09-01T00:00:00+00:00",
    },
    {
        "kind": "DONATION",
        "name": "Plant a tree",
        "pricePoints": 50,
        "value": "2",
        "charity": "Trees for All",
        "description": "One tree, planted in your name.",
    },
    {"kind": "TIER_UPGRADE", "name": "Gold for a year", "pricePoints": 5000, "value": "0.01"},
]


# 1. Publishing and managing rewards


def assert_published(created: dict[str, Any], partner: str, settings: dict[str, Any]) -> None:
    assert created["userErrors"] == [], created
    published = created["reward"]
    assert published["partner"] == {"slug": partner}
    for name in ("kind", "name", "pricePoints", "stock", "perMemberLimit", "charity"):
        assert published[name] == settings.get(name), name
    assert published["description"] == settings.get("description")
    assert published["value"]["currency"] == "EUR"
    assert float(published["value"]["amount"]) == float(settings["value"])
    assert when(published["validFrom"]) == when(NOW)  # from now unless given
    until = settings.get("validUntil")
    assert (published["validUntil"] and when(published["validUntil"])) == (until and when(until))
    assert published["active"] is True and published["available"] is True


async def test_the_operator_publishes_rewards_of_every_kind(gateway: Gateway):
    for settings in EVERY_KIND:
        variables = {"input": {"partner": "brewbar", "reward": settings}}
        assert_published(payload(await gateway.gql(CREATE, variables)), "brewbar", settings)
    listed = await catalogue(gateway, partner="brewbar")
    assert sorted(r["kind"] for r in listed) == sorted(s["kind"] for s in EVERY_KIND)
    assert [r["pricePoints"] for r in listed] == sorted(s["pricePoints"] for s in EVERY_KIND)


async def test_a_partner_app_with_rewards_manage_publishes_its_own_rewards(gateway: Gateway):
    token = await gateway.partner_token("skyway", "rewards:manage")
    for settings in EVERY_KIND:
        variables = {"input": {"partner": "skyway", "reward": settings}}
        result = payload(await gateway.gql(CREATE, variables, token=token))
        assert_published(result, "skyway", settings)
    assert len(await catalogue(gateway, partner="skyway")) == len(EVERY_KIND)


async def test_a_partner_app_may_not_publish_without_the_right(gateway: Gateway):
    for app, scopes in (
        ("brewbar", "rewards:manage"),  # at another partner
        ("skyway", "points:earn points:redeem members:read"),  # without the scope
    ):
        token = await gateway.partner_token(app, scopes)
        result = await create(gateway, "skyway", token=token)
        assert codes(result) == ["ACCESS_DENIED"] and result["reward"] is None, app
    assert await catalogue(gateway, includeUnavailable=True) == []


BAD_SETTINGS = [
    ({"name": None}, "INVALID_INPUT", "name"),
    ({"name": "   "}, "INVALID_INPUT", "name"),
    ({"kind": None}, "INVALID_INPUT", "kind"),
    ({"pricePoints": 0}, "AMOUNT_NOT_POSITIVE", "pricePoints"),
    ({"pricePoints": -5}, "AMOUNT_NOT_POSITIVE", "pricePoints"),
    ({"value": "-1"}, "AMOUNT_NOT_POSITIVE", "value"),
    ({"value": "0"}, "AMOUNT_NOT_POSITIVE", "value"),
    ({"value": None}, "INVALID_INPUT", "value"),
    ({"kind": "DONATION"}, "INVALID_INPUT", "charity"),  # a donation names its charity
    (
        {"validFrom": "2026-07-01T00:00:00+00:00", "validUntil": "2026-06-15T00:00:00+00:00"},
        "INVALID_INPUT",
        "validUntil",
    ),
    ({"validUntil": "2026-05-01T00:00:00+00:00"}, "INVALID_INPUT", "validUntil"),  # from now
    ({"stock": -1}, "INVALID_INPUT", "stock"),
    ({"perMemberLimit": 0}, "INVALID_INPUT", "perMemberLimit"),
]


async def test_bad_reward_settings_are_refused_and_publish_nothing(gateway: Gateway):
    for fields, code, field in BAD_SETTINGS:
        result = await create(gateway, **fields)
        assert codes(result) == [code], (fields, result)
        assert result["userErrors"][0]["field"][-1] == field, (fields, result)
        assert result["reward"] is None
    assert await catalogue(gateway, includeUnavailable=True) == []


async def test_a_bad_settings_error_points_at_the_field_inside_reward(gateway: Gateway):
    """UserError.field is "the path to the input field at fault": the settings are under
    input.reward, as member references are under input.member."""
    created = await create(gateway, pricePoints=0)
    assert created["userErrors"][0]["field"] == ["input", "reward", "pricePoints"], created
    reward_id = await reward(gateway)
    updated = await update(gateway, reward_id, stock=-1)
    assert updated["userErrors"][0]["field"] == ["input", "reward", "stock"], updated


async def test_update_changes_only_the_settings_given(gateway: Gateway):
    reward_id = await reward(gateway, name="Free latte", pricePoints=120, stock=5)
    token = await gateway.partner_token("brewbar", "rewards:manage")
    result = await update(
        gateway, reward_id, token=token, name="Free flat white", pricePoints=150, stock=9
    )
    assert result["userErrors"] == []
    changed = result["reward"]
    assert (changed["name"], changed["pricePoints"], changed["stock"]) == (
        "Free flat white",
        150,
        9,
    )
    assert changed["kind"] == "DISCOUNT" and float(changed["value"]["amount"]) == 4
    assert await node(gateway, reward_id) == changed


async def test_update_by_an_app_without_right_is_denied(gateway: Gateway):
    reward_id = await reward(gateway, name="Free latte")
    before = await node(gateway, reward_id)
    for app, scopes in (
        ("skyway", "rewards:manage"),  # another partner's app
        ("brewbar", "points:redeem members:read"),  # without the scope
    ):
        token = await gateway.partner_token(app, scopes)
        result = await update(gateway, reward_id, token=token, name="Hijacked", active=False)
        assert codes(result) == ["ACCESS_DENIED"] and result["reward"] is None, app
    assert await node(gateway, reward_id) == before


async def test_an_update_that_would_make_the_reward_invalid_changes_nothing(gateway: Gateway):
    reward_id = await reward(gateway, name="Free latte")
    before = await node(gateway, reward_id)
    for fields, code in (
        ({"validUntil": "2026-01-01T00:00:00+00:00"}, "INVALID_INPUT"),
        ({"kind": "DONATION"}, "INVALID_INPUT"),  # a donation names its charity
        ({"pricePoints": 0}, "AMOUNT_NOT_POSITIVE"),
        ({"stock": -3}, "INVALID_INPUT"),
    ):
        assert codes(await update(gateway, reward_id, **fields)) == [code], fields
    assert await node(gateway, reward_id) == before


async def test_a_withdrawn_reward_leaves_the_catalogue_and_cannot_be_redeemed(gateway: Gateway):
    reward_id = await reward(gateway, name="Free latte")
    member = await member_with(gateway, stars=500)
    result = await update(gateway, reward_id, active=False)
    assert result["userErrors"] == []
    assert (result["reward"]["active"], result["reward"]["available"]) == (False, False)
    assert await names(gateway) == []
    [shown] = await catalogue(gateway, includeUnavailable=True)
    assert (shown["id"], shown["available"]) == (reward_id, False)
    refused = await redeem(gateway, reward_id, member, "brewbar", "K1")
    assert codes(refused) == ["REWARD_UNAVAILABLE"] and refused["receipt"] is None
    assert (await balances(gateway, member))["brewbar"] == 500
    # and back again
    assert (await update(gateway, reward_id, active=True))["userErrors"] == []
    assert codes(await redeem(gateway, reward_id, member, "brewbar", "K2")) == []


# 2. The catalogue


async def test_the_catalogue_filters_by_partner_and_kind(gateway: Gateway):
    await reward(gateway, "brewbar", name="BB discount", kind="DISCOUNT", pricePoints=10)
    await reward(gateway, "brewbar", name="BB card", kind="GIFT_CARD", pricePoints=20)
    await reward(gateway, "skyway", name="SW discount", kind="DISCOUNT", pricePoints=30)
    await reward(gateway, "skyway", name="SW upgrade", kind="TIER_UPGRADE", pricePoints=40)
    assert await names(gateway) == ["BB discount", "BB card", "SW discount", "SW upgrade"]
    assert await names(gateway, partner="brewbar") == ["BB discount", "BB card"]
    assert await names(gateway, kind="DISCOUNT") == ["BB discount", "SW discount"]
    assert await names(gateway, partner="skyway", kind="DISCOUNT") == ["SW discount"]
    assert await names(gateway, partner="freshmart") == []
    assert await names(gateway, first=2) == ["BB discount", "BB card"]


async def test_unavailable_rewards_are_shown_only_when_asked(gateway: Gateway):
    later = (when(NOW) + timedelta(days=1)).isoformat()
    await reward(gateway, name="Open", pricePoints=1)
    await reward(gateway, name="Not yet", pricePoints=2, validFrom=later)
    await reward(
        gateway,
        name="Expired",
        pricePoints=3,
        validFrom="2026-01-01T00:00:00+00:00",
        validUntil="2026-05-31T00:00:00+00:00",
    )
    await reward(gateway, name="Sold out", pricePoints=4, stock=0)
    await reward(gateway, name="Withdrawn", pricePoints=5, active=False)
    assert await names(gateway) == ["Open"]
    every = await catalogue(gateway, includeUnavailable=True)
    assert [(r["name"], r["available"]) for r in every] == [
        ("Open", True),
        ("Not yet", False),
        ("Expired", False),
        ("Sold out", False),
        ("Withdrawn", False),
    ]
    gateway.clock.now = when(NOW) + timedelta(days=2)
    assert await names(gateway) == ["Open", "Not yet"]


async def test_affordable_for_shows_what_the_members_pools_can_pay_now(gateway: Gateway):
    member = await member_with(gateway, miles=5000)  # miles only
    await reward(gateway, "brewbar", name="Stars 1000", pricePoints=1000)  # 4082 miles
    await reward(gateway, "brewbar", name="Stars 1300", pricePoints=1300)  # 5307 miles
    await reward(gateway, "skyway", name="Miles 5000", pricePoints=5000)
    await reward(gateway, "skyway", name="Miles 5001", pricePoints=5001)
    found = await names(gateway, affordableFor=member, partner="skyway")
    assert found == ["Miles 5000"]
    found = await names(gateway, affordableFor=member, partner="brewbar")
    assert found == ["Stars 1000"]
    # freshmart points cannot pay for skyway rewards (no rule): a freshmart-only member
    other = await member_with(gateway, points=100_000, customer="C-2")
    assert await names(gateway, affordableFor=other, partner="skyway") == []
    assert await names(gateway, affordableFor=other, partner="brewbar") == [
        "Stars 1000",
        "Stars 1300",
    ]


async def test_cost_in_another_pool_is_the_smallest_sufficient_conversion(gateway: Gateway):
    member = await member_with(gateway, miles=100_000, points=100_000)
    for price in (1000, 1001, 777, 10):
        reward_id = await reward(gateway, name=f"Stars {price}", pricePoints=price)
        assert await cost_in(gateway, reward_id, "brewbar") == price
        for source in ("skyway", "freshmart"):
            cost = await cost_in(gateway, reward_id, source)
            assert cost is not None
            enough = await quote(gateway, member, source, "brewbar", cost)
            assert enough["userErrors"] == [] and enough["quote"]["receivedPoints"] >= price
            less = await quote(gateway, member, source, "brewbar", cost - 1)
            # one point less gives too little, or is below the rule's minimum
            assert less["quote"] is None or less["quote"]["receivedPoints"] < price, less
    assert await cost_in(gateway, reward_id, "freshmart") == 500  # the rule's minimum
    miles_reward = await reward(gateway, "skyway", name="Miles", pricePoints=100)
    assert await cost_in(gateway, miles_reward, "freshmart") is None  # no rule
    assert await cost_in(gateway, miles_reward, "nowhere") is None


# 3. and 4. Redeeming


async def test_paying_in_the_rewards_own_pool_redeems_the_price(gateway: Gateway):
    reward_id = await reward(gateway, "brewbar", name="Free latte", pricePoints=120)
    member = await member_with(gateway, miles=1000, stars=500)
    before = await transfer_count(gateway)
    result = await redeem(gateway, reward_id, member, "brewbar", "K1")
    assert result["userErrors"] == [] and result["idempotentReplay"] is False
    receipt = result["receipt"]
    assert receipt["reward"] == {"id": reward_id}
    assert receipt["paidWith"] == {"slug": "brewbar"}
    assert (receipt["paidPoints"], receipt["pricePoints"]) == (120, 120)
    assert receipt["rate"] is None and receipt["conversion"] is None
    assert (receipt["giftCode"], receipt["charity"]) == (None, None)
    redemption = receipt["redemption"]
    assert (redemption["kind"], redemption["points"]) == ("REDEEM", 120)
    assert redemption["partner"] == {"slug": "brewbar"} and redemption["member"] == {"id": member}
    assert await balances(gateway, member) == {"skyway": 1000, "brewbar": 380, "freshmart": 0}
    assert await transfer_count(gateway) == before + 1


async def test_paying_from_another_pool_converts_just_enough(gateway: Gateway):
    reward_id = await reward(gateway, "brewbar", name="Free cake", pricePoints=1001)
    member = await member_with(gateway, miles=10_000)
    cost = await cost_in(gateway, reward_id, "skyway")
    assert cost == 4086
    before = await transfer_count(gateway)
    result = await redeem(gateway, reward_id, member, "skyway", "K1")
    assert result["userErrors"] == [], result
    receipt = result["receipt"]
    assert receipt["paidWith"] == {"slug": "skyway"}
    assert (receipt["paidPoints"], receipt["pricePoints"], receipt["rate"]) == (cost, 1001, "0.25")
    conversion, redemption = receipt["conversion"], receipt["redemption"]
    assert conversion["kind"] == "CONVERSION" and conversion["points"] == cost
    assert conversion["partner"] == {"slug": "skyway"}
    assert conversion["toPartner"] == {"slug": "brewbar"}
    assert conversion["rate"] == "0.25" and conversion["fee"] == 82
    assert redemption["kind"] == "REDEEM" and redemption["points"] == 1001
    assert redemption["partner"] == {"slug": "brewbar"}
    received = conversion["receivedPoints"]
    assert received >= 1001
    assert await balances(gateway, member) == {
        "skyway": 10_000 - cost,
        "brewbar": received - 1001,
        "freshmart": 0,
    }
    assert await transfer_count(gateway) == before + 2


async def test_the_member_keeps_the_points_the_conversion_gives_beyond_the_price(
    gateway: Gateway,
):
    reward_id = await reward(gateway, "brewbar", name="Sticker", pricePoints=10)
    member = await member_with(gateway, miles=1000)
    result = await redeem(gateway, reward_id, member, "skyway", "K1")
    assert result["userErrors"] == [], result
    receipt = result["receipt"]
    # the rule's minimum of 100 miles: 98 after the fee, 24 stars
    assert receipt["paidPoints"] == 100 and receipt["conversion"]["receivedPoints"] == 24
    assert await balances(gateway, member) == {"skyway": 900, "brewbar": 14, "freshmart": 0}


async def test_a_cross_brand_redemption_records_what_the_paying_partner_owes(
    gateway: Gateway,
):
    cake = await reward(gateway, "brewbar", name="Cake", pricePoints=1000, value="4.00")
    sticker = await reward(gateway, "brewbar", name="Sticker", pricePoints=10, value="0.30")
    member = await member_with(gateway, miles=10_000, stars=1000)
    assert codes(await redeem(gateway, cake, member, "brewbar", "K1")) == []
    assert await reward_obligations(gateway) == []  # paid in the reward's own pool
    assert codes(await redeem(gateway, cake, member, "skyway", "K2")) == []
    assert await reward_obligations(gateway) == [("reward", "skyway", "brewbar", Decimal(4))]
    # the sticker's conversion gives 24 stars for a price of 10: 14 stay with the member
    assert codes(await redeem(gateway, sticker, member, "skyway", "K3")) == []
    assert (await reward_obligations(gateway))[1:] == [
        ("reward", "skyway", "brewbar", Decimal("0.30")),
        ("conversion", "skyway", "brewbar", Decimal("0.56")),  # 14 stars at 0.04
    ]


async def test_paying_uses_the_rate_in_force(gateway: Gateway):
    reward_id = await reward(gateway, "brewbar", name="Free cake", pricePoints=1000)
    member = await member_with(gateway, miles=10_000)
    gateway.clock.now = datetime.fromisoformat("2027-01-02T12:00:00+00:00")
    cost = await cost_in(gateway, reward_id, "skyway")
    result = await redeem(gateway, reward_id, member, "skyway", "K1")
    assert result["userErrors"] == [], result
    assert result["receipt"]["rate"] == "0.27" and result["receipt"]["paidPoints"] == cost
    assert cost is not None and cost < 4082  # cheaper than at 0.25


async def test_too_few_points_in_the_paying_pool_post_nothing(gateway: Gateway):
    reward_id = await reward(
        gateway, "brewbar", name="Class", pricePoints=1000, stock=1, perMemberLimit=1
    )
    member = await member_with(gateway, miles=4081, stars=999)  # 4082 miles needed
    before = await transfer_count(gateway)
    for pay_with in ("skyway", "brewbar"):
        result = await redeem(gateway, reward_id, member, pay_with, f"K-{pay_with}")
        assert codes(result) == ["INSUFFICIENT_POINTS"] and result["receipt"] is None
    assert await balances(gateway, member) == {"skyway": 4081, "brewbar": 999, "freshmart": 0}
    assert await transfer_count(gateway) == before
    # neither the unit of stock nor the member's one use was taken
    assert (await node(gateway, reward_id))["stock"] == 1
    assert (await earn(gateway, member, 1, "top-up"))["userErrors"] == []
    assert codes(await redeem(gateway, reward_id, member, "skyway", "K-again")) == []
    assert await balances(gateway, member) == {"skyway": 0, "brewbar": 999, "freshmart": 0}


async def test_a_pool_that_cannot_pay_is_refused_and_nothing_posted(gateway: Gateway):
    reward_id = await reward(gateway, "skyway", name="Lounge pass", pricePoints=100)
    member = await member_with(gateway, points=100_000)
    before = await transfer_count(gateway)
    result = await redeem(gateway, reward_id, member, "freshmart", "K1")  # no such rule
    assert codes(result) == ["NO_CONVERSION_RULE"] and result["receipt"] is None
    result = await redeem(gateway, reward_id, member, "nowhere", "K2")
    assert codes(result) == ["UNKNOWN_PARTNER"] and result["receipt"] is None
    assert (await balances(gateway, member))["freshmart"] == 100_000
    assert await transfer_count(gateway) == before


async def test_a_reward_not_yet_valid_or_expired_cannot_be_redeemed(gateway: Gateway):
    later = (when(NOW) + timedelta(days=1)).isoformat()
    soon = await reward(gateway, name="Soon", validFrom=later)
    ending = await reward(gateway, name="Ending", validUntil=later)
    member = await member_with(gateway, stars=500)
    assert codes(await redeem(gateway, soon, member, "brewbar", "K1")) == ["REWARD_UNAVAILABLE"]
    gateway.clock.now = when(NOW) + timedelta(days=1)
    assert codes(await redeem(gateway, soon, member, "brewbar", "K2")) == []
    assert codes(await redeem(gateway, ending, member, "brewbar", "K3")) == ["REWARD_UNAVAILABLE"]
    assert (await balances(gateway, member))["brewbar"] == 400


# 5. Idempotency


async def test_a_retry_replays_the_receipt_and_posts_nothing(gateway: Gateway):
    reward_id = await reward(gateway, name="Card", kind="GIFT_CARD", pricePoints=1000, stock=1)
    member = await member_with(gateway, miles=10_000)
    first = await redeem(gateway, reward_id, member, "skyway", "K1")
    assert first["userErrors"] == [] and first["idempotentReplay"] is False
    after = (await balances(gateway, member), await transfer_count(gateway))
    # the last unit is gone, yet the retry answers as the first call did
    again = await redeem(gateway, reward_id, member, "skyway", "K1")
    assert again["userErrors"] == [] and again["idempotentReplay"] is True
    assert again["receipt"] == first["receipt"]
    assert (await balances(gateway, member), await transfer_count(gateway)) == after
    assert (await node(gateway, reward_id))["stock"] == 0


async def test_racing_retries_with_one_key_redeem_once(gateway: Gateway):
    reward_id = await reward(gateway, name="Card", kind="GIFT_CARD", pricePoints=100, stock=5)
    member = await member_with(gateway, miles=10_000)
    results = await asyncio.gather(
        *(redeem(gateway, reward_id, member, "skyway", "same") for _ in range(8))
    )
    assert all(r["userErrors"] == [] for r in results), results
    assert [r["idempotentReplay"] for r in results].count(False) == 1
    assert len({r["receipt"]["giftCode"] for r in results}) == 1
    cost = results[0]["receipt"]["paidPoints"]
    assert (await balances(gateway, member))["skyway"] == 10_000 - cost
    assert (await node(gateway, reward_id))["stock"] == 4


async def test_the_same_key_for_another_redemption_is_refused(gateway: Gateway):
    first_reward = await reward(gateway, name="One", pricePoints=100)
    other_reward = await reward(gateway, name="Two", pricePoints=100)
    member = await member_with(gateway, miles=10_000, stars=1000)
    assert codes(await redeem(gateway, first_reward, member, "brewbar", "K1")) == []
    after = (await balances(gateway, member), await transfer_count(gateway))
    for reward_id, pay_with in ((other_reward, "brewbar"), (first_reward, "skyway")):
        result = await redeem(gateway, reward_id, member, pay_with, "K1")
        assert codes(result) == ["IDEMPOTENCY_KEY_REUSED"] and result["receipt"] is None
    assert (await balances(gateway, member), await transfer_count(gateway)) == after


# 6. Gift cards and donations


async def test_receipts_carry_gift_codes_and_charities(gateway: Gateway):
    card = await reward(gateway, name="Card", kind="GIFT_CARD", pricePoints=100)
    tree = await reward(gateway, name="Tree", kind="DONATION", pricePoints=50, charity="Trees")
    member = await member_with(gateway, miles=1000, stars=1000)
    first = (await redeem(gateway, card, member, "brewbar", "K1"))["receipt"]
    second = (await redeem(gateway, card, member, "skyway", "K2"))["receipt"]
    for receipt in (first, second):
        assert GIFT_CODE.fullmatch(receipt["giftCode"]), receipt
        assert receipt["charity"] is None
    assert first["giftCode"] != second["giftCode"]
    donated = (await redeem(gateway, tree, member, "skyway", "K3"))["receipt"]
    assert donated["charity"] == "Trees" and donated["giftCode"] is None


# 7. Stock and limits under concurrent redemptions


async def test_the_last_units_are_sold_once(gateway: Gateway):
    reward_id = await reward(gateway, name="Class", kind="EXPERIENCE", pricePoints=100, stock=3)
    members = [
        await member_with(gateway, miles=1000, stars=100, customer=f"C-{i}") for i in range(10)
    ]
    cost = await cost_in(gateway, reward_id, "skyway")
    assert cost is not None
    # half pay in stars, half in miles (a conversion that must be undone when out of stock)
    pay_with = ["brewbar" if i % 2 else "skyway" for i in range(10)]
    results = await asyncio.gather(
        *(
            redeem(gateway, reward_id, member, pay, f"K-{i}")
            for i, (member, pay) in enumerate(zip(members, pay_with, strict=True))
        )
    )
    outcomes = [codes(r) for r in results]
    assert outcomes.count([]) == 3 and outcomes.count(["OUT_OF_STOCK"]) == 7, outcomes
    assert (await node(gateway, reward_id))["stock"] == 0
    for member, pay, result in zip(members, pay_with, results, strict=True):
        wallets = await balances(gateway, member)
        if result["userErrors"]:
            assert wallets == {"skyway": 1000, "brewbar": 100, "freshmart": 0}
        elif pay == "brewbar":
            assert wallets == {"skyway": 1000, "brewbar": 0, "freshmart": 0}
        else:
            received = result["receipt"]["conversion"]["receivedPoints"]
            assert wallets == {"skyway": 1000 - cost, "brewbar": received, "freshmart": 0}
    conversions = sum(
        1 for p, r in zip(pay_with, results, strict=True) if p == "skyway" and r["receipt"]
    )
    assert await transfer_count(gateway) == 20 + 3 + conversions  # earns, redeems, conversions


async def test_the_per_member_limit_holds_against_racing_redemptions(gateway: Gateway):
    reward_id = await reward(gateway, name="Welcome gift", pricePoints=100, perMemberLimit=1)
    member = await member_with(gateway, stars=1000)
    other = await member_with(gateway, stars=1000, customer="C-2")
    results = await asyncio.gather(
        *(redeem(gateway, reward_id, member, "brewbar", f"K-{i}") for i in range(6))
    )
    outcomes = [codes(r) for r in results]
    assert outcomes.count([]) == 1 and outcomes.count(["REWARD_LIMIT_REACHED"]) == 5, outcomes
    assert (await balances(gateway, member))["brewbar"] == 900
    # the limit is per member: someone else still may
    assert codes(await redeem(gateway, reward_id, other, "brewbar", "K-other")) == []


# 8. Who may redeem


async def signed_in_member(sso: Gateway, brands: Brands, miles: int = 10_000) -> str:
    """Bob signs in at skyway (a member is made for him) and holds ``miles``."""
    member_id: str = (await sso.gql(ME, token=brands.token("skyway", "bob")))["data"]["me"]["id"]
    assert (await earn(sso, member_id, miles, "e1"))["userErrors"] == []
    return member_id


async def test_a_member_redeems_for_themself(sso: Gateway, brands: Brands):
    member = await signed_in_member(sso, brands)
    reward_id = await reward(sso, "brewbar", name="Free cake", pricePoints=1000)  # 4082 miles
    token = brands.token("skyway", "bob")
    result = await redeem(sso, reward_id, member, "skyway", "K1", token=token)
    assert result["userErrors"] == [], result
    assert result["receipt"]["paidPoints"] == 4082
    assert (await balances(sso, member))["skyway"] == 10_000 - 4082


@pytest.mark.parametrize(
    ("claims", "step_up"),
    [pytest.param({}, True, id="without-mfa"), pytest.param({"acr": "mfa"}, False, id="acr-mfa")],
)
async def test_paying_more_than_the_step_up_threshold_needs_mfa(
    sso: Gateway, brands: Brands, claims: dict[str, Any], step_up: bool
):
    member = await signed_in_member(sso, brands)
    reward_id = await reward(sso, "brewbar", name="Big cake", pricePoints=1300)  # 5307 miles
    before = await transfer_count(sso)
    token = brands.token("skyway", "bob", **claims)
    result = await redeem(sso, reward_id, member, "skyway", "K1", token=token)
    if step_up:
        assert codes(result) == ["STEP_UP_REQUIRED"] and result["receipt"] is None
        assert (await balances(sso, member))["skyway"] == 10_000
        assert await transfer_count(sso) == before
    else:
        assert result["userErrors"] == [] and result["receipt"]["paidPoints"] == 5307


async def test_splitting_a_large_spend_over_rewards_still_needs_mfa(sso: Gateway, brands: Brands):
    member = await signed_in_member(sso, brands)
    reward_id = await reward(sso, "brewbar", name="Cake", pricePoints=700)  # 2858 miles
    token = brands.token("skyway", "bob")
    assert codes(await redeem(sso, reward_id, member, "skyway", "K1", token=token)) == []
    result = await redeem(sso, reward_id, member, "skyway", "K2", token=token)
    assert codes(result) == ["STEP_UP_REQUIRED"]


async def test_a_members_retry_replays_even_near_the_step_up_threshold(
    sso: Gateway, brands: Brands
):
    """A retry must answer as the first call did: the conversion the first call made is
    part of that call, not a second spend."""
    member = await signed_in_member(sso, brands)
    reward_id = await reward(sso, "brewbar", name="Free cake", pricePoints=1000)  # 4082 miles
    token = brands.token("skyway", "bob")
    first = await redeem(sso, reward_id, member, "skyway", "K1", token=token)
    assert first["userErrors"] == [], first
    again = await redeem(sso, reward_id, member, "skyway", "K1", token=token)
    assert again["userErrors"] == [], again
    assert again["idempotentReplay"] is True and again["receipt"] == first["receipt"]


async def test_a_member_cannot_redeem_for_another_member(sso: Gateway, brands: Brands):
    await signed_in_member(sso, brands)
    other = await member_with(sso, miles=10_000, stars=1000, customer="SKY-OTHER")
    reward_id = await reward(sso, "brewbar", name="Free latte", pricePoints=100)
    token = brands.token("skyway", "bob")
    before = await transfer_count(sso)
    for pay_with in ("brewbar", "skyway"):
        result = await redeem(sso, reward_id, other, pay_with, f"K-{pay_with}", token=token)
        assert codes(result) == ["ACCESS_DENIED"] and result["receipt"] is None
    assert await balances(sso, other) == {"skyway": 10_000, "brewbar": 1000, "freshmart": 0}
    assert await transfer_count(sso) == before


async def test_the_partners_app_redeems_its_reward_for_a_member_it_knows(gateway: Gateway):
    member = await member_with(gateway, stars=500, customer="BB-1", partner="brewbar")
    reward_id = await reward(gateway, "brewbar", name="Free latte", pricePoints=120)
    token = await gateway.partner_token("brewbar")
    by_customer = {"partnerCustomerId": "BB-1"}
    result = await redeem(gateway, reward_id, by_customer, "brewbar", "K1", token=token)
    assert result["userErrors"] == [], result
    assert result["receipt"]["redemption"]["member"] == {"id": member}
    result = await redeem(gateway, reward_id, member, "brewbar", "K2", token=token)
    assert result["userErrors"] == [], result
    assert (await balances(gateway, member))["brewbar"] == 260


async def test_a_partners_app_cannot_redeem_for_a_member_it_does_not_know(gateway: Gateway):
    member = await member_with(gateway, stars=500, customer="SKY-1", partner="skyway")
    reward_id = await reward(gateway, "brewbar", name="Free latte", pricePoints=120)
    token = await gateway.partner_token("brewbar")
    result = await redeem(gateway, reward_id, member, "brewbar", "K1", token=token)
    assert codes(result) == ["UNKNOWN_MEMBER"] and result["receipt"] is None
    assert (await balances(gateway, member))["brewbar"] == 500


async def test_an_app_without_the_right_to_redeem_the_reward_is_denied(gateway: Gateway):
    member = await member_with(gateway, miles=10_000, stars=500, customer="BB-1", partner="brewbar")
    reward_id = await reward(gateway, "brewbar", name="Free latte", pricePoints=120)
    before = await transfer_count(gateway)
    for app, scopes, pay_with in (
        ("skyway", PARTNER_SCOPES, "skyway"),  # another partner's app, its own pool
        ("skyway", PARTNER_SCOPES, "brewbar"),
        ("brewbar", "members:read rewards:manage", "brewbar"),  # without points:redeem
    ):
        token = await gateway.partner_token(app, scopes)
        result = await redeem(gateway, reward_id, member, pay_with, f"K-{app}-{pay_with}", token)
        assert codes(result) == ["ACCESS_DENIED"] and result["receipt"] is None, (app, pay_with)
    assert await transfer_count(gateway) == before


async def test_a_partners_app_cannot_spend_another_partners_pool(gateway: Gateway):
    """The brewbar app may not convert a member's miles: convertPoints refuses partner apps,
    and a partner app spends only its own pool (policy.spend)."""
    member = await member_with(gateway, miles=10_000, customer="BB-1", partner="brewbar")
    reward_id = await reward(gateway, "brewbar", name="Free cake", pricePoints=1000)
    token = await gateway.partner_token("brewbar")
    before = await transfer_count(gateway)
    result = await redeem(gateway, reward_id, member, "skyway", "K1", token=token)
    assert codes(result) == ["ACCESS_DENIED"] and result["receipt"] is None
    assert (await balances(gateway, member))["skyway"] == 10_000
    assert await transfer_count(gateway) == before


# 9. Rewards as nodes


async def test_any_authenticated_caller_reads_a_reward_by_id(sso: Gateway, brands: Brands):
    reward_id = await reward(sso, "brewbar", name="Free latte", pricePoints=120)
    expected = await node(sso, reward_id)
    assert expected["id"] == reward_id and expected["name"] == "Free latte"
    await sso.gql(ME, token=brands.token("skyway", "bob"))
    for token in (
        await sso.partner_token("skyway", "points:earn"),
        await sso.partner_token("brewbar"),
        brands.token("skyway", "bob"),
    ):
        assert await node(sso, reward_id, token=token) == expected
        assert [r["id"] for r in await catalogue(sso, token=token)] == [reward_id]


UNKNOWN_IDS = (
    "garbage",
    "UmV3YXJkOjk5OTk5",  # Reward:99999
    "UmV3YXJkOmFiYw==",  # Reward:abc
    "VHJhbnNmZXI6MQ==",  # Transfer:1
)


async def test_an_unknown_reward_id_is_unknown_reward(gateway: Gateway):
    await reward(gateway, name="Free latte")
    member = await member_with(gateway, stars=500)
    for reward_id in UNKNOWN_IDS:
        result = await redeem(gateway, reward_id, member, "brewbar", f"K-{reward_id}")
        assert codes(result) == ["UNKNOWN_REWARD"] and result["receipt"] is None, reward_id
        assert codes(await update(gateway, reward_id, name="x")) == ["UNKNOWN_REWARD"]
        found = (await gateway.gql(NODE, {"id": reward_id}))["data"]["node"]
        assert found is None or "name" not in found  # nothing, or not a reward
    assert (await balances(gateway, member))["brewbar"] == 500
