"""Analytics over HTTP, on SQLite and PostgreSQL: a scripted month of a small coalition
(earns at two partners on two days, a redemption, a conversion, a partial reversal, a gift,
an expiry) and the figures ``earnBurn`` and ``crossBrandFlows`` give for it, computed by hand
below; weekly and monthly buckets; who may ask; ranges refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.expiry.service import ExpiryService
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ERRORS, payload
from tests.sso import Brands
from tests.test_api import convert, redeem, reverse
from tests.test_expiry import earned, enrol
from tests.test_rewards import redeem as redeem_reward
from tests.test_rewards import reward

COALITION = """
name = "Analytics coalition"
settlement_currency = "EUR"
"""
PARTNERS = {
    "skyway": """
slug = "skyway"
name = "SkyWay"
point_value = "0.012"
[currency]
code = "SKM"
name = "miles"
[earn]
points_per_unit = "2"
[[conversions]]
to = "brewbar"
rate = "0.25"
min_points = 1
effective_from = 2026-01-01
[expiry]
policy = "after_earning"
months = 1
[gifting]
max_points_per_gift = 5000
max_points_per_month = 10000
min_points = 10
""",
    "brewbar": """
slug = "brewbar"
name = "BrewBar"
point_value = "0.04"
[currency]
code = "STAR"
name = "stars"
[earn]
points_per_unit = "1"
[expiry]
policy = "never"
""",
    "freshmart": """
slug = "freshmart"
name = "FreshMart"
point_value = "0.005"
[currency]
code = "FMP"
name = "points"
[earn]
points_per_unit = "5"
""",
}

FIGURES = "issued redeemed expired convertedOut convertedIn activeMembers"
EARN_BURN = f"""
query($partner: String, $since: DateTime!, $until: DateTime!,
      $granularity: AnalyticsGranularity) {{
  earnBurn(partner: $partner, since: $since, until: $until, granularity: $granularity) {{
    partner {{ slug }} firstDay lastDay granularity
    buckets {{ start end figures {{ {FIGURES} }} outstanding liability {{ amount currency }} }}
    totals {{ {FIGURES} }}
    outstanding liability {{ amount }} breakagePoints breakageValue {{ amount currency }}
    redemptionRate asOf
  }}
}}"""
FLOWS = """
query($since: DateTime!, $until: DateTime!) {
  crossBrandFlows(since: $since, until: $until) {
    firstDay lastDay asOf
    flows { fromPartner { slug } toPartner { slug } pointsOut pointsIn rewardPoints }
  }
}"""
GIFT = f"""
mutation($input: GiftPointsInput!) {{ giftPoints(input: $input) {{ {ERRORS} }} }}"""


@pytest.fixture(scope="module")
def analytics_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("analytics-config")
    (directory / "coalition.toml").write_text(COALITION)
    for slug, text in PARTNERS.items():
        (directory / f"{slug}.toml").write_text(text)
    return directory


@pytest.fixture
async def gw(database_url: str, clock: Clock, analytics_config: Path) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(database_url, clock, config_dir=analytics_config):
        yield gateway


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def earn_burn(gateway: Gateway, token: str | None = None, **variables: Any) -> Any:
    body = await gateway.gql(EARN_BURN, variables, token=token)
    return body["data"]["earnBurn"]


def figures(
    issued: int = 0,
    redeemed: int = 0,
    expired: int = 0,
    out: int = 0,
    into: int = 0,
    active: int = 0,
) -> dict[str, int]:
    return {
        "issued": issued,
        "redeemed": redeemed,
        "expired": expired,
        "convertedOut": out,
        "convertedIn": into,
        "activeMembers": active,
    }


async def scenario(gw: Gateway, clock: Clock) -> None:
    """Members A, B, C. Monday 1 June 2026: A earns 1000 miles at SkyWay, B 400 stars at
    BrewBar, A redeems 200 miles. Tuesday 2 June: A earns 500 miles, converts 400 miles to
    100 stars (rate 0.25, no fee), gives B 100 miles; C earns 300 miles, 100 of which are
    reversed. Wednesday 1 July: A's first 1000 miles expire (a month after earning): the
    300 of them left (spending goes oldest first: 200 redeemed, 400 converted, 100 given)."""
    clock.now = at("2026-06-01T12:00:00")
    a, b, c = await enrol(gw, "A"), await enrol(gw, "B"), await enrol(gw, "C")
    await earned(gw, a, 1000, "E-A1")
    await earned(gw, b, 400, "E-B1", "brewbar")
    assert (await redeem(gw, a, 200, "R-A1"))["userErrors"] == []
    clock.now = at("2026-06-02T12:00:00")
    await earned(gw, a, 500, "E-A2")
    converted = await convert(gw, a, 400, "C-A1")
    assert converted["userErrors"] == [] and converted["transfer"]["receivedPoints"] == 100
    gift = {"partner": "skyway", "giver": {"id": a}, "receiver": {"id": b}, "points": 100}
    body = await gw.gql(GIFT, {"input": {**gift, "idempotencyKey": "G-1"}})
    assert payload(body)["userErrors"] == []
    earn_c = await earned(gw, c, 300, "E-C1")
    assert (await reverse(gw, earn_c["id"], "V-C1", 100))["userErrors"] == []
    clock.now = at("2026-07-01T12:00:00")
    assert await ExpiryService(gw.service).expire_due() == 1


async def test_figures_per_day_match_the_hand_computed_ones(gw: Gateway, clock: Clock):
    await scenario(gw, clock)
    window = {"since": "2026-06-01T00:00:00Z", "until": "2026-06-03T00:00:00Z"}
    # The consumer has not run: nothing yet, and the report says so.
    before = await earn_burn(gw, partner="skyway", **window)
    assert before["asOf"] is None and before["totals"] == figures()
    await gw.settle_events()

    sky = await earn_burn(gw, partner="skyway", **window)
    assert sky["partner"] == {"slug": "skyway"} and sky["granularity"] == "DAY"
    assert (sky["firstDay"], sky["lastDay"]) == ("2026-06-01", "2026-06-02")
    assert [(b["start"], b["end"]) for b in sky["buckets"]] == [
        ("2026-06-01", "2026-06-01"),
        ("2026-06-02", "2026-06-02"),
    ]
    # 1 June: A earns 1000, redeems 200. 2 June: A earns 500, C 300 less 100 reversed
    # (700), A converts 400 out; active: A and C (a reversal is nobody's activity).
    assert [b["figures"] for b in sky["buckets"]] == [
        figures(issued=1000, redeemed=200, active=1),
        figures(issued=700, out=400, active=2),
    ]
    # Outstanding: 1000 - 200 = 800; then 800 + 700 - 400 = 1100 (A 800, B 100, C 200),
    # at 0.012 EUR a mile.
    assert [(b["outstanding"], b["liability"]) for b in sky["buckets"]] == [
        (800, {"amount": "9.60", "currency": "EUR"}),
        (1100, {"amount": "13.20", "currency": "EUR"}),
    ]
    assert sky["totals"] == figures(issued=1700, redeemed=200, out=400, active=2)
    assert sky["redemptionRate"] == "0.1176"  # 200 / 1700
    assert sky["asOf"] == "2026-07-01T12:00:00+00:00"  # the expiry, the last event

    bar = await earn_burn(gw, partner="brewbar", **window)
    assert [b["figures"] for b in bar["buckets"]] == [
        figures(issued=400, active=1),  # B
        figures(into=100, active=1),  # A, converting into BrewBar
    ]
    assert [b["outstanding"] for b in bar["buckets"]] == [400, 500]

    # The whole coalition: 800 miles + 400 stars = 9.60 + 16.00; then 13.20 + 20.00.
    everyone = await earn_burn(gw, **window)
    assert everyone["partner"] is None
    assert [b["figures"] for b in everyone["buckets"]] == [
        figures(issued=1400, redeemed=200, active=2),
        figures(issued=700, out=400, into=100, active=2),  # A (at both) and C
    ]
    assert [(b["outstanding"], b["liability"]["amount"]) for b in everyone["buckets"]] == [
        (1200, "25.60"),
        (1600, "33.20"),
    ]
    assert everyone["totals"]["activeMembers"] == 3


async def test_months_weeks_breakage_and_the_running_liability(gw: Gateway, clock: Clock):
    await scenario(gw, clock)
    await gw.settle_events()
    months = await earn_burn(
        gw,
        partner="skyway",
        since="2026-06-01T00:00:00Z",
        until="2026-08-01T00:00:00Z",
        granularity="MONTH",
    )
    assert [(b["start"], b["end"]) for b in months["buckets"]] == [
        ("2026-06-01", "2026-06-30"),
        ("2026-07-01", "2026-07-31"),
    ]
    assert [b["figures"] for b in months["buckets"]] == [
        figures(issued=1700, redeemed=200, out=400, active=2),
        figures(expired=300),  # an expiry is nobody's activity
    ]
    assert [(b["outstanding"], b["liability"]["amount"]) for b in months["buckets"]] == [
        (1100, "13.20"),
        (800, "9.60"),
    ]
    assert months["breakagePoints"] == 300
    assert months["breakageValue"] == {"amount": "3.60", "currency": "EUR"}  # 300 x 0.012
    assert (months["outstanding"], months["liability"]["amount"]) == (800, "9.60")

    # ISO weeks from Monday, the first and last cut to the range (Thursday 28 May to
    # Wednesday 1 July); the outstanding points run on from the days before.
    weeks = await earn_burn(
        gw,
        partner="skyway",
        since="2026-05-28T00:00:00Z",
        until="2026-07-02T00:00:00Z",
        granularity="WEEK",
    )
    assert [(b["start"], b["end"], b["outstanding"]) for b in weeks["buckets"]] == [
        ("2026-05-28", "2026-05-31", 0),
        ("2026-06-01", "2026-06-07", 1100),
        ("2026-06-08", "2026-06-14", 1100),
        ("2026-06-15", "2026-06-21", 1100),
        ("2026-06-22", "2026-06-28", 1100),
        ("2026-06-29", "2026-07-01", 800),
    ]
    # A range starting later starts from what was outstanding then.
    later = await earn_burn(
        gw, partner="skyway", since="2026-06-20T00:00:00Z", until="2026-06-21T00:00:00Z"
    )
    assert later["buckets"][0]["outstanding"] == 1100
    assert later["totals"] == figures() and later["redemptionRate"] is None

    flows = await gw.gql(FLOWS, {"since": "2026-06-01T00:00:00Z", "until": "2026-07-01T00:00:00Z"})
    report = flows["data"]["crossBrandFlows"]
    assert report["flows"] == [
        {
            "fromPartner": {"slug": "skyway"},
            "toPartner": {"slug": "brewbar"},
            "pointsOut": 400,
            "pointsIn": 100,
            "rewardPoints": 0,
        }
    ]


async def test_events_are_counted_once_however_often_the_consumer_runs(gw: Gateway, clock: Clock):
    member = await enrol(gw, "ONCE")
    await earned(gw, member, 250, "E-1")
    await gw.settle_events()
    await earned(gw, member, 50, "E-2")
    await gw.settle_events()
    await gw.settle_events()
    day = {"since": "2026-06-01T00:00:00Z", "until": "2026-06-02T00:00:00Z"}
    found = await earn_burn(gw, partner="skyway", **day)
    assert found["totals"] == figures(issued=300, active=1)
    assert found["asOf"] == "2026-06-01T12:00:00+00:00"


async def test_a_partners_app_sees_its_own_partner_only(gw: Gateway, clock: Clock):
    await scenario(gw, clock)
    await gw.settle_events()
    window = {"since": "2026-06-01T00:00:00Z", "until": "2026-07-01T00:00:00Z"}
    brewbar = await gw.partner_token("brewbar")
    own = await earn_burn(gw, brewbar, **window)  # no partner: its own
    assert own["partner"] == {"slug": "brewbar"}
    assert own["totals"] == figures(issued=400, into=100, active=2)
    body = await gw.gql(EARN_BURN, {"partner": "skyway", **window}, token=brewbar, errors=True)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    # Flows it is in, and none for a partner in none.
    flows = (await gw.gql(FLOWS, window, token=brewbar))["data"]["crossBrandFlows"]["flows"]
    assert [(f["fromPartner"]["slug"], f["pointsIn"]) for f in flows] == [("skyway", 100)]
    freshmart = await gw.partner_token("freshmart")
    assert (await gw.gql(FLOWS, window, token=freshmart))["data"]["crossBrandFlows"]["flows"] == []


async def test_members_are_refused(sso: Gateway, brands: Brands):
    token = brands.token("skyway", "bob")
    window = {"since": "2026-06-01T00:00:00Z", "until": "2026-07-01T00:00:00Z"}
    for query in (EARN_BURN, FLOWS):
        body = await sso.gql(query, window, token=token, errors=True)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"


@pytest.mark.parametrize(
    ("variables", "status", "code", "says"),
    [
        ({"until": "2026-06-01T00:00:00Z"}, 200, "BAD_USER_INPUT", "`until` must be after"),
        ({"until": "2026-05-01T00:00:00Z"}, 200, "BAD_USER_INPUT", "`until` must be after"),
        ({"until": "2029-06-01T00:00:00Z"}, 200, "BAD_USER_INPUT", "at most 750 buckets"),
        ({"until": "2026-07-01T00:00:00"}, 400, "BAD_USER_INPUT", "needs a UTC offset"),
        ({"granularity": "YEAR"}, 400, "BAD_USER_INPUT", "AnalyticsGranularity"),
        ({"partner": "nowhere"}, 200, "UNKNOWN_PARTNER", "No partner 'nowhere'"),
    ],
)
async def test_bad_ranges_are_refused(
    gw: Gateway, variables: dict[str, str], status: int, code: str, says: str
):
    asked = {"since": "2026-06-01T00:00:00Z", "until": "2026-07-01T00:00:00Z", **variables}
    body = await gw.gql(EARN_BURN, asked, errors=True, status=status)
    assert body.get("data") is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == code and says in error["message"], error
    # Weeks reach further than days.
    weeks = await earn_burn(
        gw, since="2026-06-01T00:00:00Z", until="2029-06-01T00:00:00Z", granularity="WEEK"
    )
    assert len(weeks["buckets"]) == 157


async def test_a_reward_paid_with_another_partners_points_is_a_cross_brand_flow(
    gw: Gateway, clock: Clock
):
    member = await enrol(gw, "R")
    await earned(gw, member, 1000, "E-R")
    cappuccino = await reward(gw, "brewbar", pricePoints=50, value="2.00")
    result = await redeem_reward(gw, cappuccino, member, "skyway", "RR-1")
    assert result["userErrors"] == []
    assert result["receipt"]["paidPoints"] == 200  # 50 stars at 0.25 a mile
    await gw.settle_events()
    window = {"since": "2026-06-01T00:00:00Z", "until": "2026-06-02T00:00:00Z"}
    flows = (await gw.gql(FLOWS, window))["data"]["crossBrandFlows"]["flows"]
    assert [(f["pointsOut"], f["pointsIn"], f["rewardPoints"]) for f in flows] == [(200, 50, 200)]
    bar = await earn_burn(gw, partner="brewbar", **window)
    assert bar["totals"] == figures(redeemed=50, into=50, active=1)
    assert bar["outstanding"] == 0
    sky = await earn_burn(gw, partner="skyway", **window)
    assert sky["totals"] == figures(issued=1000, out=200, active=1)
    assert (sky["outstanding"], sky["liability"]["amount"]) == (800, "9.60")


async def test_reversals_take_back_from_their_kinds_figures(gw: Gateway, clock: Clock):
    member = await enrol(gw, "V")
    await earned(gw, member, 1000, "E-V")
    spent = await redeem(gw, member, 300, "R-V")
    converted = await convert(gw, member, 400, "C-V")
    assert (await reverse(gw, spent["transfer"]["id"], "V-R"))["userErrors"] == []
    half = await reverse(gw, converted["transfer"]["id"], "V-C", 200)
    assert half["userErrors"] == [] and half["reversal"]["receivedPoints"] == 50
    await gw.settle_events()
    window = {"since": "2026-06-01T00:00:00Z", "until": "2026-06-02T00:00:00Z"}
    sky = await earn_burn(gw, partner="skyway", **window)
    # 1000 earned; 300 redeemed and given back; 400 converted, 200 of them given back.
    assert sky["totals"] == figures(issued=1000, out=200, active=1)
    assert sky["outstanding"] == 800
    bar = await earn_burn(gw, partner="brewbar", **window)
    assert (bar["totals"]["convertedIn"], bar["outstanding"]) == (50, 50)
    flows = (await gw.gql(FLOWS, window))["data"]["crossBrandFlows"]["flows"]
    assert [(f["pointsOut"], f["pointsIn"]) for f in flows] == [(200, 50)]


async def test_the_redemption_rate_counts_points_converted_into_a_pool(gw: Gateway, clock: Clock):
    clock.now = at("2026-06-01T10:00:00")
    member = await enrol(gw, "A")
    await earned(gw, member, 1000, "E-1")
    assert (await convert(gw, member, 400, "C-1"))["userErrors"] == []  # 100 stars, no fee
    assert (await redeem(gw, member, 50, "R-1", "brewbar"))["userErrors"] == []
    await gw.settle_events()
    window = {"since": "2026-06-01T00:00:00Z", "until": "2026-06-02T00:00:00Z"}
    # BrewBar issued nothing: its 50 stars redeemed came from the 100 converted in.
    assert (await earn_burn(gw, partner="brewbar", **window))["redemptionRate"] == "0.5000"
    assert (await earn_burn(gw, partner="skyway", **window))["redemptionRate"] == "0.0000"
    # The coalition as a whole: conversions move points between its pools, 50 of 1000.
    assert (await earn_burn(gw, **window))["redemptionRate"] == "0.0500"
