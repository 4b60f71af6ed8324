"""Coalition-wide tiers over HTTP, on SQLite and PostgreSQL (issue 5, "Tiers"): the
configuration and its errors, upgrades by the qualifying value earned at every partner,
what the next tier needs, reviews with grace and downgrade, tier-upgrade rewards, rewards
for a tier and above, the earn multiplier, who sees a member's tier, and concurrent jobs.

The demo coalition's tiers (the clock starts at 2026-06-01 12:00 UTC): Blue (0), Silver
(25 EUR), Gold (100 EUR) earned within 12 months, 30 days of grace. A point is worth
0.012 EUR at SkyWay, 0.04 at BrewBar, 0.005 at FreshMart. Silver earns 1.25x at BrewBar;
Gold 1.5x at BrewBar and 1.25x at SkyWay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.api.graphql.scalars import decode_member_id
from gateway.tiers.service import TierService
from gateway.tiers.tables import member_tiers
from partners.config.coalition import DEMO_DIRECTORY, load_coalition
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import codes
from tests.sso import Brands
from tests.test_api import balances, convert, earn, enrol, redeem, reverse
from tests.test_config import assert_names, partner, refusal, write
from tests.test_rewards import catalogue, create, reward, transfer_count, update
from tests.test_rewards import redeem as redeem_reward

START = datetime(2026, 6, 1, 12, tzinfo=UTC)
TIER = """
query($id: ID!) {
  member(id: $id) {
    tier {
      tier { slug name rank }
      since reviewAt downgradeAt windowStart
      qualifyingValue { amount currency }
      nextTier { slug }
      valueNeeded { amount }
      valueToKeep { amount }
    }
  }
}"""
TIERS = """
{ tiers { slug name rank qualifyingValue { amount currency }
          benefits { partner { slug } earnMultiplier } } }"""


def at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def months(moment: datetime, count: int) -> datetime:
    year, month = divmod(moment.month - 1 + count, 12)
    return moment.replace(year=moment.year + year, month=month + 1)


async def tier_of(gateway: Gateway, member: str, token: str | None = None) -> dict[str, Any]:
    body = await gateway.gql(TIER, {"id": member}, token=token)
    found: dict[str, Any] = body["data"]["member"]["tier"]
    return found


async def slug(gateway: Gateway, member: str) -> str:
    return str((await tier_of(gateway, member))["tier"]["slug"])


async def earned(gateway: Gateway, member: str, points: int, key: str, partner: str) -> None:
    result = await earn(gateway, member, points, key, partner)
    assert result["userErrors"] == [], result


def tiers_of(gateway: Gateway) -> TierService:
    return TierService(gateway.service)


@pytest.fixture
async def gateway(database_url: str, clock: Clock) -> AsyncIterator[Gateway]:
    """The whole demo coalition, tiers and challenges included (the suite's default leaves
    them out: see conftest.core_text)."""
    async for found in start_gateway(database_url, clock, config_dir=str(DEMO_DIRECTORY)):
        yield found


# 1. Configuration

TIERS_TOML = """
[[tiers]]
slug = "blue"
name = "Blue"
qualifying_value = "0"
window_months = 6
grace_days = 14

[[tiers]]
slug = "gold"
name = "Gold"
qualifying_value = "50.5"

[tiers.benefits.alpha]
multiplier = "2"
"""
COALITION = 'name = "Test coalition"\nsettlement_currency = "EUR"\n'


def tier_config(tmp_path: Path, tiers: str) -> Path:
    files = {"alpha": partner("alpha", "ALP"), "beta": partner("beta", "BET")}
    return write(tmp_path, files, COALITION + tiers)


def test_tiers_load_with_exact_values(tmp_path: Path) -> None:
    tiers = load_coalition(tier_config(tmp_path, TIERS_TOML)).tiers
    assert tiers is not None
    assert (tiers.window_months, tiers.grace_days) == (6, 14)
    assert [(t.slug, t.rank, t.qualifying_value) for t in tiers.levels] == [
        ("blue", 0, Decimal(0)),
        ("gold", 1, Decimal("50.5")),
    ]
    gold = tiers.levels[1]
    assert gold.multiplier_at("alpha") == Decimal(2) and gold.multiplier_at("beta") == 1
    assert tiers.for_value(Decimal("50.49")).slug == "blue"
    assert tiers.for_value(Decimal("50.5")).slug == "gold"


def test_the_demo_coalition_has_blue_silver_and_gold() -> None:
    tiers = load_coalition(DEMO_DIRECTORY).tiers
    assert tiers is not None
    assert [t.slug for t in tiers.levels] == ["blue", "silver", "gold"]
    assert tiers.levels[2].multipliers == {"brewbar": Decimal("1.5"), "skyway": Decimal("1.25")}


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        pytest.param(TIERS_TOML, 'tiers = "gold"\n', "tiers", id="not-an-array"),
        pytest.param(
            'qualifying_value = "0"',
            'qualifying_value = "5"',
            "tiers[0].qualifying_value",
            id="first-tier-needs-zero",
        ),
        pytest.param('"50.5"', "50.5", "tiers[1].qualifying_value", id="float-value"),
        pytest.param('"50.5"', '"-1"', "tiers[1].qualifying_value", id="negative-value"),
        pytest.param('"50.5"', '"0"', "tiers[1].qualifying_value", id="not-increasing"),
        pytest.param("window_months = 6\n", "", "tiers[0].window_months", id="no-window"),
        pytest.param(
            "window_months = 6", "window_months = 0", "tiers[0].window_months", id="zero-window"
        ),
        pytest.param(
            "window_months = 6",
            "window_months = 121",
            "tiers[0].window_months",
            id="window-too-long",
        ),
        pytest.param("grace_days = 14", "grace_days = -1", "tiers[0].grace_days", id="grace"),
        pytest.param(
            "grace_days = 14", 'grace_days = "14"', "tiers[0].grace_days", id="grace-as-text"
        ),
        pytest.param(
            'name = "Gold"',
            'name = "Gold"\ngrace_days = 3',
            "tiers[1].grace_days",
            id="grace-on-a-later-tier",
        ),
        pytest.param('slug = "gold"', 'slug = "blue"', "tiers[1].slug", id="duplicate-slug"),
        pytest.param('slug = "gold"', 'slug = "Gold!"', "tiers[1].slug", id="bad-slug"),
        pytest.param('name = "Gold"\n', "", "tiers[1].name", id="no-name"),
        pytest.param(
            'name = "Gold"',
            'name = "Gold"\nqualifying_vale = "1"',
            "tiers[1].qualifying_vale",
            id="typo",
        ),
        pytest.param(
            "benefits.alpha", "benefits.nowhere", "tiers[1].benefits.nowhere", id="unknown-partner"
        ),
        pytest.param(
            'multiplier = "2"',
            'multiplier = "0.5"',
            "tiers[1].benefits.alpha.multiplier",
            id="multiplier-below-one",
        ),
        pytest.param(
            'multiplier = "2"',
            "multiplier = 2.0",
            "tiers[1].benefits.alpha.multiplier",
            id="float-multiplier",
        ),
        pytest.param(
            'multiplier = "2"',
            'multiplier = "11"',
            "tiers[1].benefits.alpha.multiplier",
            id="multiplier-too-high",
        ),
        pytest.param(
            'multiplier = "2"',
            'multiplyer = "2"',
            "tiers[1].benefits.alpha.multiplyer",
            id="benefit-typo",
        ),
    ],
)
def test_tier_configuration_errors_name_the_field(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    assert old in TIERS_TOML
    directory = tier_config(tmp_path, TIERS_TOML.replace(old, new, 1))
    error = refusal(directory)
    assert_names(error, directory / "coalition.toml", None, field)


def test_an_empty_tier_list_is_refused(tmp_path: Path) -> None:
    directory = tier_config(tmp_path, "tiers = []\n")
    assert_names(refusal(directory), directory / "coalition.toml", None, "tiers")


async def test_the_coalition_lists_its_tiers(gateway: Gateway) -> None:
    found = (await gateway.gql(TIERS))["data"]["tiers"]
    assert [(t["slug"], t["name"], t["rank"]) for t in found] == [
        ("blue", "Blue", 0),
        ("silver", "Silver", 1),
        ("gold", "Gold", 2),
    ]
    assert [t["qualifyingValue"] for t in found] == [
        {"amount": "0.00", "currency": "EUR"},
        {"amount": "25.00", "currency": "EUR"},
        {"amount": "100.00", "currency": "EUR"},
    ]
    assert found[2]["benefits"] == [
        {"partner": {"slug": "brewbar"}, "earnMultiplier": "1.5"},
        {"partner": {"slug": "skyway"}, "earnMultiplier": "1.25"},
    ]


@pytest.fixture
async def untiered(tmp_path: Path, database_url: str, clock: Clock) -> AsyncIterator[Gateway]:
    """A gateway whose coalition has no tiers."""
    (tmp_path / "config").mkdir()
    directory = write(tmp_path / "config", {"alpha": partner("alpha", "ALP")})
    async for gateway in start_gateway(database_url, clock, config_dir=directory):
        yield gateway


async def test_without_tiers_there_is_no_tier(untiered: Gateway) -> None:
    member = await enrol(untiered, "alpha", "A-1")
    await earned(untiered, member, 10_000, "e1", "alpha")
    assert (await untiered.gql(TIERS))["data"]["tiers"] == []
    assert (await untiered.gql(TIER, {"id": member}))["data"]["member"]["tier"] is None
    service = tiers_of(untiered)
    assert await service.earn_multiplier(member_uuid(member), "alpha") == 1
    assert await service.review_due() == 0
    result = await create(untiered, "alpha", kind="DISCOUNT", minTier="gold")
    assert codes(result) == ["UNKNOWN_TIER"]
    assert result["userErrors"][0]["field"] == ["input", "reward", "minTier"]


# 2. Upgrades and what the next tier needs


async def test_value_earned_at_every_partner_counts_at_its_point_value(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 1000, "e1", "skyway")  # 12.00 EUR
    status = await tier_of(gateway, member)
    assert status["tier"] == {"slug": "blue", "name": "Blue", "rank": 0}
    assert status["qualifyingValue"] == {"amount": "12.00", "currency": "EUR"}
    assert status["nextTier"] == {"slug": "silver"}
    assert status["valueNeeded"] == {"amount": "13.00"}
    assert status["since"] is None and status["reviewAt"] is None
    assert at(status["windowStart"]) == months(START, -12)

    await earned(gateway, member, 250, "e2", "brewbar")  # 10.00 EUR
    assert (await tier_of(gateway, member))["valueNeeded"] == {"amount": "3.00"}
    # Conversions and redemptions are not earning: the value stays.
    assert (await convert(gateway, member, 200, "c1"))["userErrors"] == []
    assert (await redeem(gateway, member, 10, "r1", "brewbar"))["userErrors"] == []
    assert (await tier_of(gateway, member))["qualifyingValue"]["amount"] == "22.00"

    gateway.clock.now = START + timedelta(hours=1)
    # 3.00 EUR: 25.00, Silver at once; and a third partner this month meets the demo's
    # Explorer challenge, whose bonus of 100 miles the badge consumer earns (1.20 EUR).
    await earned(gateway, member, 600, "e3", "freshmart")
    assert (await tier_of(gateway, member))["qualifyingValue"]["amount"] == "25.00"
    await gateway.settle_events()
    status = await tier_of(gateway, member)
    assert status["tier"]["slug"] == "silver"
    assert status["qualifyingValue"]["amount"] == "26.20"
    assert at(status["since"]) == gateway.clock.now
    assert at(status["reviewAt"]) == months(gateway.clock.now, 12)
    assert status["nextTier"] == {"slug": "gold"} and status["valueNeeded"]["amount"] == "73.80"
    assert status["valueToKeep"]["amount"] == "0.00" and status["downgradeAt"] is None

    # Seen once, the upgrade is stored: it does not move with the clock.
    gateway.clock.now = START + timedelta(days=3)
    later = await tier_of(gateway, member)
    assert at(later["since"]) == START + timedelta(hours=1)
    assert at(later["reviewAt"]) == months(START + timedelta(hours=1), 12)


async def test_refresh_stores_an_upgrade_at_the_earn(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 2500, "e1", "brewbar")  # 100.00 EUR: Gold
    status = await tiers_of(gateway).refresh(member_uuid(member))
    assert status is not None and status.tier.slug == "gold" and status.since == START
    async with gateway.service.engine.connect() as connection:
        row = (await connection.execute(select(member_tiers))).one()
    assert (row.tier, row.since, row.review_at, row.downgrade_at) == (
        "gold",
        START,
        months(START, 12),
        None,
    )
    assert status.next_tier is None and status.value_needed is None
    gateway.clock.now = START + timedelta(days=10)
    assert at((await tier_of(gateway, member))["since"]) == START


async def test_reversed_earns_and_old_earns_leave_the_value_but_not_the_tier(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    result = await earn(gateway, member, 2084, "e1", "skyway")  # 25.008 EUR: Silver
    assert (await tier_of(gateway, member))["tier"]["slug"] == "silver"
    assert (await reverse(gateway, result["transfer"]["id"], "rev-1", 1000))["userErrors"] == []
    status = await tier_of(gateway, member)
    # 1084 miles are left: 13.008 EUR. The tier is kept until its review.
    assert status["qualifyingValue"]["amount"] == "13.008"
    assert status["tier"]["slug"] == "silver" and status["downgradeAt"] is None
    assert status["valueToKeep"]["amount"] == "11.992"
    # A year on, the earn has left the window.
    gateway.clock.now = months(START, 12) - timedelta(seconds=1)
    assert (await tier_of(gateway, member))["qualifyingValue"]["amount"] == "13.008"
    gateway.clock.now = months(START, 12)
    assert (await tier_of(gateway, member))["qualifyingValue"]["amount"] == "0.00"


# 3. Reviews, grace and downgrades


async def test_review_grace_then_downgrade_to_the_tier_the_value_reaches(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 2500, "e1", "brewbar")  # 100 EUR: Gold
    await tiers_of(gateway).refresh(member_uuid(member))
    gateway.clock.now = START + timedelta(days=180)
    await earned(gateway, member, 700, "e2", "brewbar")  # 28 EUR: Silver's worth
    assert await tiers_of(gateway).review_due() == 0  # nothing due yet

    review = months(START, 12)
    gateway.clock.now = review
    assert await tiers_of(gateway).review_due() == 1
    assert await tiers_of(gateway).review_due() == 0  # a second run finds it done
    status = await tier_of(gateway, member)
    assert status["tier"]["slug"] == "gold"  # kept through the grace
    assert at(status["downgradeAt"]) == review + timedelta(days=30)
    assert status["qualifyingValue"]["amount"] == "28.00"
    assert status["valueToKeep"]["amount"] == "72.00"

    gateway.clock.now = review + timedelta(days=30) - timedelta(seconds=1)
    assert await tiers_of(gateway).review_due() == 0
    gateway.clock.now = review + timedelta(days=30)
    assert await tiers_of(gateway).review_due() == 1
    assert await tiers_of(gateway).review_due() == 0
    status = await tier_of(gateway, member)
    assert status["tier"]["slug"] == "silver"  # what 28 EUR reaches
    assert at(status["since"]) == review + timedelta(days=30)
    assert at(status["reviewAt"]) == months(review + timedelta(days=30), 12)
    assert status["downgradeAt"] is None


async def test_a_value_that_still_qualifies_keeps_the_tier_for_another_window(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 625, "e1", "brewbar")  # 25 EUR: Silver
    await tiers_of(gateway).refresh(member_uuid(member))
    gateway.clock.now = START + timedelta(days=200)
    await earned(gateway, member, 700, "e2", "brewbar")
    gateway.clock.now = months(START, 12)
    assert await tiers_of(gateway).review_due() == 1
    status = await tier_of(gateway, member)
    assert status["tier"]["slug"] == "silver" and status["downgradeAt"] is None
    assert at(status["reviewAt"]) == months(START, 24)
    assert at(status["since"]) == START


async def test_requalifying_during_the_grace_keeps_the_tier(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 625, "e1", "brewbar")  # Silver
    await tiers_of(gateway).refresh(member_uuid(member))
    # The job never ran: the member is shown the review that fell due, and it is stored.
    gateway.clock.now = months(START, 12) + timedelta(days=5)
    status = await tier_of(gateway, member)
    assert status["tier"]["slug"] == "silver"
    assert at(status["downgradeAt"]) == months(START, 12) + timedelta(days=30)
    assert status["valueToKeep"]["amount"] == "25.00"
    await earned(gateway, member, 700, "e2", "brewbar")  # 28 EUR within the grace
    refreshed = await tiers_of(gateway).refresh(member_uuid(member))
    assert refreshed is not None and refreshed.downgrade_at is None
    assert refreshed.review_at == months(START, 24)
    gateway.clock.now = months(START, 12) + timedelta(days=31)
    assert await tiers_of(gateway).review_due() == 0
    assert await slug(gateway, member) == "silver"


async def test_a_member_reviewed_late_drops_straight_to_the_first_tier(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 625, "e1", "brewbar")
    await tiers_of(gateway).refresh(member_uuid(member))
    gateway.clock.now = months(START, 14)  # review and grace both passed
    assert await tiers_of(gateway).review_due() == 1
    status = await tier_of(gateway, member)
    assert status["tier"]["slug"] == "blue"
    assert at(status["since"]) == months(START, 12) + timedelta(days=30)
    assert status["reviewAt"] is None and status["downgradeAt"] is None


# 4. Rewards: tier upgrades and rewards for a tier


async def test_a_tier_upgrade_bought_with_points_lasts_one_window(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 500, "e1", "skyway")  # 6 EUR: Blue
    gold = await reward(
        gateway, "skyway", kind="TIER_UPGRADE", name="Gold for a year", pricePoints=300, tier="gold"
    )
    result = await redeem_reward(gateway, gold, member, "skyway", "k1")
    assert result["userErrors"] == [], result
    status = await tier_of(gateway, member)
    assert status["tier"]["slug"] == "gold"
    assert at(status["since"]) == START and at(status["reviewAt"]) == months(START, 12)
    assert (await balances(gateway, member))["skyway"] == 200
    # A retry replays: no second payment, the tier as it was.
    assert (await redeem_reward(gateway, gold, member, "skyway", "k1"))["idempotentReplay"]
    assert (await balances(gateway, member))["skyway"] == 200

    # A lower tier's upgrade would lower nothing: refused, nothing paid.
    silver = await reward(
        gateway, "skyway", kind="TIER_UPGRADE", name="Silver", pricePoints=10, tier="silver"
    )
    before = await transfer_count(gateway)
    assert codes(await redeem_reward(gateway, silver, member, "skyway", "k2")) == [
        "REWARD_UNAVAILABLE"
    ]
    assert await transfer_count(gateway) == before
    assert await slug(gateway, member) == "gold"

    # One window later the value (6 EUR) does not keep Gold: grace, then Blue.
    gateway.clock.now = months(START, 12) + timedelta(days=30)
    assert await tiers_of(gateway).review_due() == 1
    assert await slug(gateway, member) == "blue"


async def test_an_upgrade_without_a_tier_gives_the_next_one_up(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 1000, "e1", "skyway")
    step = await reward(gateway, "skyway", kind="TIER_UPGRADE", name="Step up", pricePoints=100)
    assert codes(await redeem_reward(gateway, step, member, "skyway", "k1")) == []
    assert await slug(gateway, member) == "silver"
    assert codes(await redeem_reward(gateway, step, member, "skyway", "k2")) == []
    assert await slug(gateway, member) == "gold"
    assert codes(await redeem_reward(gateway, step, member, "skyway", "k3")) == [
        "REWARD_UNAVAILABLE"
    ]
    assert (await balances(gateway, member))["skyway"] == 800


async def test_buying_the_own_tier_in_grace_keeps_it(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 625, "e1", "brewbar")  # Silver
    await tiers_of(gateway).refresh(member_uuid(member))
    silver = await reward(
        gateway, "brewbar", kind="TIER_UPGRADE", name="Keep Silver", pricePoints=100, tier="silver"
    )
    gateway.clock.now = months(START, 12) + timedelta(days=1)
    assert await tiers_of(gateway).review_due() == 1  # grace
    assert codes(await redeem_reward(gateway, silver, member, "brewbar", "k1")) == []
    status = await tier_of(gateway, member)
    assert status["tier"]["slug"] == "silver" and status["downgradeAt"] is None
    assert at(status["reviewAt"]) == months(gateway.clock.now, 12)


async def test_reward_tier_settings_are_checked(gateway: Gateway):
    result = await create(gateway, "skyway", kind="DISCOUNT", tier="gold")
    assert codes(result) == ["INVALID_INPUT"]
    assert result["userErrors"][0]["field"] == ["input", "reward", "tier"]
    result = await create(gateway, "skyway", kind="TIER_UPGRADE", tier="platinum")
    assert codes(result) == ["UNKNOWN_TIER"]
    assert result["userErrors"][0]["field"] == ["input", "reward", "tier"]
    assert codes(await create(gateway, "skyway", kind="TIER_UPGRADE", tier="blue")) == [
        "INVALID_INPUT"
    ]
    assert codes(await create(gateway, "skyway", minTier="diamond")) == ["UNKNOWN_TIER"]

    created = await create(gateway, "skyway", kind="TIER_UPGRADE", tier="gold", minTier="silver")
    assert created["userErrors"] == []
    reward_id = created["reward"]["id"]
    shown = (await gateway.gql(TIER_FIELDS, {"id": reward_id}))["data"]["node"]
    assert shown == {"tier": {"slug": "gold"}, "minTier": {"slug": "silver"}}
    # A tier upgrade that stops being one would keep a tier it cannot give.
    assert codes(await update(gateway, reward_id, kind="DISCOUNT")) == ["INVALID_INPUT"]
    assert (await update(gateway, reward_id, minTier="gold"))["userErrors"] == []
    shown = (await gateway.gql(TIER_FIELDS, {"id": reward_id}))["data"]["node"]
    assert shown["minTier"] == {"slug": "gold"}


TIER_FIELDS = """
query($id: ID!) { node(id: $id) { ... on Reward { tier { slug } minTier { slug } } } }"""


async def test_a_reward_for_gold_is_shown_to_all_but_refused_below_gold(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 700, "e1", "brewbar")  # 28 EUR: Silver
    lounge = await reward(gateway, "brewbar", name="Gold lounge", pricePoints=50, minTier="gold")
    listed = await catalogue(gateway, partner="brewbar")
    assert [r["name"] for r in listed] == ["Gold lounge"]
    flagged = (await gateway.gql(TIER_FIELDS, {"id": lounge}))["data"]["node"]
    assert flagged["minTier"] == {"slug": "gold"}

    before = await transfer_count(gateway)
    result = await redeem_reward(gateway, lounge, member, "brewbar", "k1")
    assert codes(result) == ["TIER_REQUIRED"] and result["receipt"] is None
    assert result["userErrors"][0]["field"] == ["input", "rewardId"]
    assert await transfer_count(gateway) == before
    assert (await balances(gateway, member))["brewbar"] == 700

    await earned(gateway, member, 1800, "e2", "brewbar")  # 100 EUR: Gold
    assert codes(await redeem_reward(gateway, lounge, member, "brewbar", "k1")) == []
    assert (await balances(gateway, member))["brewbar"] == 2450


# 5. Benefits


async def test_the_earn_multiplier_follows_the_tier(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    service, uuid = tiers_of(gateway), member_uuid(member)
    assert [await service.earn_multiplier(uuid, p) for p in ("brewbar", "skyway")] == [1, 1]
    assert await service.tier_name(uuid) == "blue"
    await earned(gateway, member, 625, "e1", "brewbar")  # Silver
    assert await service.earn_multiplier(uuid, "brewbar") == Decimal("1.25")
    assert await service.earn_multiplier(uuid, "skyway") == 1
    await earned(gateway, member, 1875, "e2", "brewbar")  # Gold
    assert await service.earn_multiplier(uuid, "brewbar") == Decimal("1.5")
    assert await service.earn_multiplier(uuid, "skyway") == Decimal("1.25")
    assert await service.earn_multiplier(uuid, "freshmart") == 1
    assert await service.tier_name(uuid) == "gold"


# 6. Who sees a member's tier


async def test_a_partner_app_sees_its_customers_tier_and_no_one_elses(gateway: Gateway):
    member = await enrol(gateway, "skyway", "C-1")
    await earned(gateway, member, 625, "e1", "brewbar")
    skyway = await gateway.partner_token("skyway")
    status = await tier_of(gateway, member, token=skyway)
    assert status["tier"]["slug"] == "silver" and status["nextTier"] == {"slug": "gold"}
    freshmart = await gateway.partner_token("freshmart")
    body = await gateway.gql(TIER, {"id": member}, token=freshmart)
    assert body["data"]["member"] is None
    without_read = await gateway.partner_token("skyway", "points:earn")
    body = await gateway.gql(TIER, {"id": member}, token=without_read)
    assert body["data"]["member"] is None


async def test_a_member_sees_their_own_tier(sso_programme: Gateway, brands: Brands):
    token = brands.token("skyway", "bob")
    me = (await sso_programme.gql("{ me { id } }", token=token))["data"]["me"]["id"]
    await earned(sso_programme, me, 2084, "e1", "skyway")
    body = await sso_programme.gql(
        "{ me { tier { tier { slug } reviewAt nextTier { slug } valueNeeded { amount } } } }",
        token=token,
    )
    status = body["data"]["me"]["tier"]
    assert status["tier"] == {"slug": "silver"} and status["nextTier"] == {"slug": "gold"}
    assert status["valueNeeded"] == {"amount": "74.992"}
    assert status["reviewAt"] is not None


# 7. Concurrency (PostgreSQL: real parallel transactions)


@pytest.fixture
async def pg_gateway(pg_url: str, clock: Clock) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(pg_url, clock, config_dir=str(DEMO_DIRECTORY)):
        yield gateway


async def test_concurrent_refreshes_and_jobs_store_each_change_once(pg_gateway: Gateway):
    gateway = pg_gateway
    members = [await enrol(gateway, "skyway", f"C-{n}") for n in range(8)]
    for n, member in enumerate(members):
        await earned(gateway, member, 625, f"e{n}", "brewbar")  # Silver each
    service = tiers_of(gateway)
    statuses = await asyncio.gather(
        *(service.refresh(member_uuid(m)) for m in members for _ in range(5))
    )
    assert {s.tier.slug for s in statuses if s} == {"silver"}
    assert {s.since for s in statuses if s} == {START}
    async with gateway.service.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(member_tiers)) == 8

    # Four jobs at once at the review: each member's grace is stored by exactly one.
    gateway.clock.now = months(START, 12)
    assert sum(await asyncio.gather(*(service.review_due() for _ in range(4)))) == 8
    results = await asyncio.gather(
        *(service.review_due() for _ in range(4)),
        *(service.refresh(member_uuid(m)) for m in members),
    )
    assert sum(r for r in results if isinstance(r, int)) == 0
    # Downgrades by several jobs taking small batches: each member's once.
    gateway.clock.now = months(START, 12) + timedelta(days=30)
    total = sum(await asyncio.gather(*(service.review_due(limit=3) for _ in range(4))))
    while changed := await service.review_due(limit=3):
        total += changed
    assert total == 8
    assert {await slug(gateway, m) for m in members} == {"blue"}


def member_uuid(global_id: str) -> str:
    found = decode_member_id(global_id)
    assert found is not None
    return found
