"""Point expiry over HTTP, on SQLite and PostgreSQL: oldest-first spending, expiry after
earning and after inactivity, the job run twice and at once, what expires when, breakage.

The gateway runs a coalition of its own here (``expiry_config``), so that the programme's
other rules in the demo (tiers, challenges) do not move the numbers; the demo's own
``[expiry]`` and ``[gifting]`` tables are checked to load.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api.graphql.scalars import decode_member_id
from gateway.earning.observer import observe_programme
from gateway.expiry.schedule import credit_of, unspent_lots
from gateway.expiry.service import ExpiryService
from gateway.kernel.database import create_engine
from gateway.ledger.service import LedgerService
from partners.config.coalition import DEMO_DIRECTORY, ConfigError, load_coalition
from partners.config.expiry import ExpiryRule, add_months
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ENROL, ERRORS, REVERSE, TRANSFER_FIELDS, payload
from tests.sso import Brands
from tests.test_api import convert, earn, redeem

COALITION = """
name = "Expiry coalition"
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
months = 36
[gifting]
max_points_per_gift = 5000
max_points_per_month = 10000
min_points = 100
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
policy = "after_inactivity"
months = 12
[gifting]
max_points_per_gift = 200
max_points_per_month = 500
min_points = 10
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
[expiry]
policy = "never"
""",
    # Keeps its points in its own system (a reference partner in-process): no wallets here,
    # whatever its tables say.
    "harbour": """
slug = "harbour"
name = "Harbour"
point_value = "0.008"
[currency]
code = "HHP"
name = "hotel points"
[earn]
points_per_unit = "10"
[pool]
hosted = "remote"
development = true
[expiry]
policy = "after_earning"
months = 1
[gifting]
max_points_per_gift = 100
max_points_per_month = 100
""",
}
START = datetime(2026, 6, 1, 12, tzinfo=UTC)

WALLET = """
query($id: ID!, $partner: String!) {
  member(id: $id) {
    wallet(partner: $partner) { balance available expiring { points expiresAt } }
  }
}"""
HISTORY = f"""
query($id: ID!) {{
  member(id: $id) {{ transfers(first: 50) {{ edges {{ node {{ {TRANSFER_FIELDS} }} }} }} }}
}}"""
BREAKAGE = """
query($partner: String!, $since: DateTime, $until: DateTime) {
  breakage(partner: $partner, since: $since, until: $until) {
    partner { slug } points value { amount currency } expiries since until
    policy { rule months description }
  }
}"""
AUTHORIZE = f"""
mutation($input: AuthorizeRedemptionInput!) {{
  authorizeRedemption(input: $input) {{ hold {{ id }} {ERRORS} }}
}}"""
VOID = f"""
mutation($input: VoidRedemptionInput!) {{ voidRedemption(input: $input) {{ {ERRORS} }} }}"""


def write_config(directory: Path) -> Path:
    (directory / "coalition.toml").write_text(COALITION)
    for slug, text in PARTNERS.items():
        (directory / f"{slug}.toml").write_text(text)
    return directory


@pytest.fixture(scope="module")
def expiry_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("expiry-config"))


@pytest.fixture
async def gw(database_url: str, clock: Clock, expiry_config: Path) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(database_url, clock, config_dir=expiry_config):
        yield gateway


# Helpers


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def enrol(gateway: Gateway, customer: str, partner: str = "skyway") -> str:
    variables = {"input": {"partner": partner, "partnerCustomerId": customer}}
    result = payload(await gateway.gql(ENROL, variables))
    assert result["userErrors"] == []
    member_id: str = result["member"]["id"]
    return member_id


async def earned(gateway: Gateway, member: str, points: int, key: str, partner: str = "skyway"):
    result = await earn(gateway, member, points, key, partner)
    assert result["userErrors"] == [], result
    return result["transfer"]


async def wallet(gateway: Gateway, member: str, partner: str = "skyway") -> dict[str, Any]:
    found: dict[str, Any] = (await gateway.gql(WALLET, {"id": member, "partner": partner}))["data"][
        "member"
    ]["wallet"]
    return found


async def expiring(gateway: Gateway, member: str, partner: str = "skyway") -> list[tuple[int, str]]:
    lots = (await wallet(gateway, member, partner))["expiring"]
    return [(lot["points"], lot["expiresAt"]) for lot in lots]


async def history(gateway: Gateway, member: str) -> list[dict[str, Any]]:
    body = await gateway.gql(HISTORY, {"id": member})
    return [edge["node"] for edge in body["data"]["member"]["transfers"]["edges"]]


async def expiries(gateway: Gateway, member: str) -> list[dict[str, Any]]:
    return [t for t in await history(gateway, member) if t["kind"] == "EXPIRY"]


def own_id(member: str) -> str:
    """The member's id as the service takes it, from its global id."""
    found = decode_member_id(member)
    assert found is not None
    return found


def job(gateway: Gateway) -> ExpiryService:
    return ExpiryService(gateway.service)


async def breakage(gateway: Gateway, token: str | None = None, **variables: Any) -> Any:
    body = await gateway.gql(BREAKAGE, {"partner": "skyway", **variables}, token=token)
    return body["data"]["breakage"]


# Configuration


def test_the_demo_coalition_loads_with_its_expiry_and_gifting():
    coalition = load_coalition(DEMO_DIRECTORY)
    skyway, brewbar = coalition.partners["skyway"], coalition.partners["brewbar"]
    assert skyway.expiry is not None and skyway.expiry.rule is ExpiryRule.AFTER_EARNING
    assert skyway.expiry.months == 36
    assert brewbar.expiry is not None and brewbar.expiry.rule is ExpiryRule.AFTER_INACTIVITY
    assert brewbar.expiry.months == 12
    freshmart = coalition.partners["freshmart"]
    assert freshmart.expiry is not None and not freshmart.expiry.expires
    assert skyway.gifting is not None and skyway.gifting.max_points_per_month == 10000
    assert coalition.partners["harbour"].gifting is None


@pytest.mark.parametrize(
    ("tables", "field", "problem"),
    [
        ('[expiry]\npolicy = "soon"', "expiry.policy", "must be one of never, after_earning"),
        ("[expiry]\nmonths = 3", "expiry.policy", "is required"),
        ('[expiry]\npolicy = "after_earning"', "expiry.months", "is required"),
        ('[expiry]\npolicy = "after_earning"\nmonths = 0', "expiry.months", "between 1"),
        ('[expiry]\npolicy = "after_earning"\nmonths = 1201', "expiry.months", "at most 1200"),
        ('[expiry]\npolicy = "after_earning"\nmonths = "3"', "expiry.months", "whole number"),
        ('[expiry]\npolicy = "never"\nmonths = 3', "expiry.months", "does not apply"),
        ('[expiry]\npolicy = "never"\nmonth = 3', "expiry.month", "not a known setting"),
        ("[gifting]\nmax_points_per_gift = 10", "gifting.max_points_per_month", "is required"),
        (
            "[gifting]\nmax_points_per_gift = 10\nmax_points_per_month = 5",
            "gifting.max_points_per_gift",
            "is above max_points_per_month",
        ),
        (
            "[gifting]\nmax_points_per_gift = 10\nmax_points_per_month = 50\nmin_points = 11",
            "gifting.min_points",
            "is above max_points_per_gift",
        ),
        (
            "[gifting]\nmax_points_per_gift = 0\nmax_points_per_month = 50",
            "gifting.max_points_per_gift",
            "between 1",
        ),
        (
            "[gifting]\nmax_points_per_gift = 5\nmax_points_per_month = 50\nmax = 1",
            "gifting.max",
            "not a known setting",
        ),
    ],
)
def test_bad_expiry_and_gifting_tables_are_refused_clearly(
    tmp_path: Path, tables: str, field: str, problem: str
):
    write_config(tmp_path)
    text = PARTNERS["freshmart"].replace('[expiry]\npolicy = "never"\n', "")
    (tmp_path / "freshmart.toml").write_text(text + tables + "\n")
    with pytest.raises(ConfigError) as raised:
        load_coalition(tmp_path)
    assert raised.value.partner == "freshmart"
    assert raised.value.field == field
    assert problem in raised.value.problem


def test_months_are_calendar_months_clamped_at_the_month_end():
    assert add_months(at("2026-01-31T10:00:00"), 1) == at("2026-02-28T10:00:00")
    assert add_months(at("2027-12-15T00:00:00"), 14) == at("2029-02-15T00:00:00")
    assert add_months(at("2028-02-29T00:00:00"), -12) == at("2027-02-28T00:00:00")
    assert add_months(at("2026-06-01T12:00:00"), -36) == at("2023-06-01T12:00:00")


# Oldest first: the reasoning, against a FIFO simulation with explicit lots


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 500)), max_size=40))
def test_unspent_points_are_the_newest_as_with_explicit_fifo_lots(moves: list[tuple[bool, int]]):
    """Credits and debits (never below zero) against a queue of lots spent oldest first: the
    lots left are the newest ``balance`` points, which ``unspent_lots`` finds from the
    credits and the balance alone."""
    lots: deque[list[Any]] = deque()
    credits: list[tuple[datetime, int]] = []
    balance = 0
    for index, (credit, points) in enumerate(moves):
        moment = START + timedelta(days=index)
        if credit:
            lots.append([moment, points])
            credits.append((moment, points))
            balance += points
            continue
        points = min(points, balance)
        balance -= points
        while points:
            taken = min(points, lots[0][1])
            lots[0][1] -= taken
            points -= taken
            if not lots[0][1]:
                lots.popleft()
    expected = [(moment, points) for moment, points in lots if points]
    assert unspent_lots(balance, credits) == expected
    # And the old part at any cutoff: max(0, credits up to it - all debits).
    debits = sum(points for _, points in credits) - balance
    for cutoff in {moment for moment, _ in credits}:
        old = sum(points for moment, points in credits if moment <= cutoff)
        held = sum(points for moment, points in expected if moment <= cutoff)
        assert held == max(0, old - debits)


def test_which_wallet_entries_are_credits():
    now, then = START, START - timedelta(days=30)
    assert credit_of(100, "earn", now, None, None) == (now, 100)
    assert credit_of(-100, "redeem", now, None, None) is None
    assert credit_of(50, "reversal", now, "redeem", then) == (now, 50)  # a refund: new
    assert credit_of(-50, "reversal", now, "earn", then) == (then, -50)  # never theirs
    assert credit_of(-50, "reversal", now, "capture", then) is None
    assert credit_of(70, "gift", now, None, None) == (now, 70)


# Expiry after earning


async def test_only_the_unspent_part_of_old_points_expires(gw: Gateway, clock: Clock):
    member = await enrol(gw, "OLD-NEW")
    await earned(gw, member, 1000, "E-old")  # 2026-06-01
    clock.now = at("2027-06-01T12:00:00")
    await earned(gw, member, 500, "E-new")
    assert (await redeem(gw, member, 700, "R-1"))["userErrors"] == []  # oldest first
    assert await expiring(gw, member) == [
        (300, "2029-06-01T12:00:00+00:00"),
        (500, "2030-06-01T12:00:00+00:00"),
    ]
    clock.now = at("2029-06-01T11:59:59")
    assert await job(gw).expire_due() == 0
    clock.now = at("2029-06-01T12:00:00")
    assert await job(gw).expire_due() == 1
    found = await wallet(gw, member)
    assert found["balance"] == found["available"] == 500
    assert found["expiring"] == [{"points": 500, "expiresAt": "2030-06-01T12:00:00+00:00"}]
    (posted,) = await expiries(gw, member)
    assert posted["points"] == 300 and posted["partner"] == {"slug": "skyway"}
    assert posted["member"] == {"id": member}
    assert sorted((leg["account"], leg["amount"]) for leg in posted["legs"]) == [
        ("BREAKAGE", 300),
        ("WALLET", -300),
    ]
    assert "36 months after they were earned" in posted["reason"]
    assert await job(gw).expire_due() == 0  # run again: nothing new
    clock.now = at("2030-06-01T12:00:00")
    assert await job(gw).expire_due() == 1
    assert (await wallet(gw, member))["balance"] == 0
    assert [t["points"] for t in await expiries(gw, member)] == [500, 300]
    assert (await breakage(gw))["points"] == 800


async def test_spending_more_than_the_old_points_leaves_nothing_to_expire(
    gw: Gateway, clock: Clock
):
    member = await enrol(gw, "SPENDER")
    await earned(gw, member, 400, "E-old")
    clock.now = at("2028-01-01T00:00:00")
    await earned(gw, member, 600, "E-new")
    assert (await redeem(gw, member, 450, "R-1"))["userErrors"] == []
    clock.now = at("2029-06-02T00:00:00")
    assert await job(gw).expire_due() == 0
    assert await expiring(gw, member) == [(550, "2031-01-01T00:00:00+00:00")]


async def test_conversions_and_gifts_received_are_new_points_in_their_pool(
    gw: Gateway, clock: Clock
):
    member = await enrol(gw, "CONVERTER")
    await earned(gw, member, 1000, "E-1")
    clock.now = at("2027-01-10T08:00:00")
    result = await convert(gw, member, 400, "C-1")  # 100 stars, now
    assert result["userErrors"] == [], result
    assert await expiring(gw, member) == [(600, "2029-06-01T12:00:00+00:00")]
    # BrewBar's points expire after inactivity: from the conversion, the member's last move.
    assert await expiring(gw, member, "brewbar") == [(100, "2028-01-10T08:00:00+00:00")]


async def test_a_reversed_earn_takes_its_own_points_and_a_refund_is_new(gw: Gateway, clock: Clock):
    member = await enrol(gw, "REVERSALS")
    await earned(gw, member, 1000, "E-old")
    clock.now = at("2027-06-01T12:00:00")
    fraud = await earned(gw, member, 500, "E-fraud")
    reversed_earn = payload(
        await gw.gql(REVERSE, {"input": {"transferId": fraud["id"], "idempotencyKey": "X-1"}})
    )
    assert reversed_earn["userErrors"] == []
    # The 500 reversed were never the member's: what is left is the old earn.
    assert await expiring(gw, member) == [(1000, "2029-06-01T12:00:00+00:00")]
    spent = await redeem(gw, member, 200, "R-1")
    clock.now = at("2028-01-01T00:00:00")
    refund = payload(
        await gw.gql(
            REVERSE, {"input": {"transferId": spent["transfer"]["id"], "idempotencyKey": "X-2"}}
        )
    )
    assert refund["userErrors"] == []
    assert await expiring(gw, member) == [
        (800, "2029-06-01T12:00:00+00:00"),
        (200, "2031-01-01T00:00:00+00:00"),  # the refund: a new credit at its own time
    ]


async def test_an_undone_expiry_gives_the_points_a_new_life(gw: Gateway, clock: Clock):
    member = await enrol(gw, "UNDONE")
    await earned(gw, member, 250, "E-1")
    clock.now = at("2029-07-01T00:00:00")
    assert await job(gw).expire_due() == 1
    (posted,) = await expiries(gw, member)
    undo = payload(
        await gw.gql(REVERSE, {"input": {"transferId": posted["id"], "idempotencyKey": "U-1"}})
    )
    assert undo["userErrors"] == []
    assert await expiring(gw, member) == [(250, "2032-07-01T00:00:00+00:00")]
    assert await job(gw).expire_due() == 0
    report = await breakage(gw)
    assert report["points"] == 0 and report["expiries"] == 1


async def test_a_hold_does_not_make_points_younger(gw: Gateway, clock: Clock):
    member = await enrol(gw, "HOLDER")
    await earned(gw, member, 1000, "E-old")
    clock.now = at("2027-06-01T12:00:00")
    await earned(gw, member, 100, "E-new")
    variables = {
        "input": {
            "partner": "skyway",
            "member": {"id": member},
            "points": 900,
            "idempotencyKey": "H",
        }
    }
    hold = payload(await gw.gql(AUTHORIZE, variables))
    assert hold["userErrors"] == []
    assert await expiring(gw, member) == [
        (100, "2029-06-01T12:00:00+00:00"),
        (100, "2030-06-01T12:00:00+00:00"),
    ]
    clock.now = at("2028-06-01T12:00:00")
    void = {"input": {"holdId": hold["hold"]["id"], "idempotencyKey": "V"}}
    assert payload(await gw.gql(VOID, void))["userErrors"] == []
    # The 900 came back as the old points they were, not as new ones.
    assert await expiring(gw, member) == [
        (1000, "2029-06-01T12:00:00+00:00"),
        (100, "2030-06-01T12:00:00+00:00"),
    ]


async def test_points_expiring_while_held_expire_once_the_hold_is_released(
    gw: Gateway, clock: Clock
):
    member = await enrol(gw, "HELD")
    await earned(gw, member, 300, "E-old")
    clock.now = at("2029-05-31T12:00:00")
    variables = {
        "input": {
            "partner": "skyway",
            "member": {"id": member},
            "points": 300,
            "idempotencyKey": "H",
            "expiresInSeconds": 3 * 24 * 3600,
        }
    }
    hold = payload(await gw.gql(AUTHORIZE, variables))
    clock.now = at("2029-06-02T00:00:00")
    assert await job(gw).expire_due() == 0  # nothing available to expire
    void = {"input": {"holdId": hold["hold"]["id"], "idempotencyKey": "V"}}
    assert payload(await gw.gql(VOID, void))["userErrors"] == []
    assert await expiring(gw, member) == [(300, "2029-06-01T12:00:00+00:00")]
    assert await job(gw).expire_due() == 1
    assert (await wallet(gw, member))["balance"] == 0


# Expiry after inactivity


async def test_activity_anywhere_keeps_inactive_points_alive(gw: Gateway, clock: Clock):
    member = await enrol(gw, "BB-1", "brewbar")
    await earned(gw, member, 100, "E-bb", "brewbar")  # 2026-06-01
    assert await expiring(gw, member, "brewbar") == [(100, "2027-06-01T12:00:00+00:00")]
    clock.now = at("2027-03-01T09:00:00")
    await earned(gw, member, 10, "E-sky", "skyway")  # activity at another partner
    assert await expiring(gw, member, "brewbar") == [(100, "2028-03-01T09:00:00+00:00")]
    clock.now = at("2027-06-01T12:00:00")
    assert await job(gw).expire_due() == 0
    clock.now = at("2028-03-01T09:00:00")
    assert await job(gw).expire_due() == 1  # the stars; the miles are 36 months
    assert (await wallet(gw, member, "brewbar"))["balance"] == 0
    assert (await wallet(gw, member, "skyway"))["balance"] == 10
    (posted,) = await expiries(gw, member)
    assert posted["partner"] == {"slug": "brewbar"} and posted["points"] == 100
    assert "No activity in the coalition for 12 months" in posted["reason"]
    # The expiry is no activity of the member's: the miles' own clock is unchanged.
    clock.now = at("2030-03-01T09:00:00")
    assert await job(gw).expire_due() == 1
    assert (await wallet(gw, member, "skyway"))["balance"] == 0


async def test_all_of_an_inactive_members_points_expire_at_once(gw: Gateway, clock: Clock):
    member = await enrol(gw, "BB-2", "brewbar")
    await earned(gw, member, 40, "E-1", "brewbar")
    clock.now = at("2026-12-24T18:00:00")
    await earned(gw, member, 60, "E-2", "brewbar")
    assert await expiring(gw, member, "brewbar") == [(100, "2027-12-24T18:00:00+00:00")]
    clock.now = at("2027-12-24T18:00:00")
    assert await job(gw).expire_due() == 1
    assert (await expiries(gw, member))[0]["points"] == 100


# Partners whose points never expire here


async def test_never_and_remote_pools_are_left_alone(gw: Gateway, clock: Clock):
    member = await enrol(gw, "FM-1", "freshmart")
    await earned(gw, member, 500, "E-fm", "freshmart")
    gw.app.state.reference_partners["harbour"].add_member("HH-1")  # a hotel guest
    guest = await enrol(gw, "HH-1", "harbour")
    await earned(gw, guest, 700, "E-hh", "harbour")
    assert await expiring(gw, member, "freshmart") == []
    assert await expiring(gw, guest, "harbour") == []
    clock.now = at("2040-01-01T00:00:00")
    assert await job(gw).expire_due() == 0
    assert (await wallet(gw, member, "freshmart"))["balance"] == 500
    assert (await wallet(gw, guest, "harbour"))["balance"] == 700
    assert await ExpiryService(gw.service).upcoming(own_id(member), "freshmart") == []


# The job: twice, at once, in pages, within a limit


async def members_with_old_points(gateway: Gateway, count: int, points: int = 100) -> list[str]:
    found = []
    for index in range(count):
        member = await enrol(gateway, f"M-{index}")
        await earned(gateway, member, points, f"E-{index}")
        found.append(member)
    return found


async def test_the_job_posts_once_when_run_twice_or_at_once(gw: Gateway, clock: Clock):
    members = await members_with_old_points(gw, 12)
    clock.now = at("2029-06-01T12:00:00")
    expirer = job(gw)
    posted = await asyncio.gather(*(expirer.expire_due() for _ in range(4)))
    assert sum(posted) == 12
    assert await expirer.expire_due() == 0
    for member in members:
        assert [t["points"] for t in await expiries(gw, member)] == [100]
    assert (await breakage(gw))["points"] == 1200


async def test_the_job_stops_at_its_limit_and_goes_on_next_time(gw: Gateway, clock: Clock):
    await members_with_old_points(gw, 5)
    clock.now = at("2029-06-01T12:00:00")
    assert await job(gw).expire_due(limit=2) == 2
    assert await job(gw).expire_due(limit=2) == 2
    assert await job(gw).expire_due(limit=2) == 1
    assert await job(gw).expire_due() == 0


async def test_the_job_reads_wallets_page_by_page(
    gw: Gateway, clock: Clock, monkeypatch: pytest.MonkeyPatch
):
    import gateway.expiry.wallets

    monkeypatch.setattr(gateway.expiry.wallets, "PAGE", 2)
    members = await members_with_old_points(gw, 5)
    fresh = await enrol(gw, "FRESH")
    clock.now = at("2029-05-01T00:00:00")
    await earned(gw, fresh, 100, "E-fresh")
    clock.now = at("2029-06-01T12:00:00")
    assert await job(gw).expire_due() == 5
    for member in members:
        assert [t["points"] for t in await expiries(gw, member)] == [100]
    assert await expiries(gw, fresh) == []


async def test_processes_at_different_moments_expire_each_point_once(
    pg_url: str, clock: Clock, expiry_config: Path
):
    """Two processes, their clocks a year apart, race over the same wallets: each posts what
    is due at its moment, under the wallet's lock, and no point expires twice."""
    async for gw in start_gateway(pg_url, clock, config_dir=expiry_config):
        members = []
        for index in range(8):
            member = await enrol(gw, f"RACE-{index}")
            await earned(gw, member, 100, f"E-{index}-a")
            members.append(member)
        clock.now = at("2027-06-01T12:00:00")
        for index, member in enumerate(members):
            await earned(gw, member, 50, f"E-{index}-b")
        clock.now = at("2029-01-01T00:00:00")  # and points that no process may take
        for index, member in enumerate(members):
            await earned(gw, member, 1000, f"E-{index}-c")
        early = Clock(at("2029-06-01T12:00:00"))  # the first earns are due
        late = Clock(at("2030-06-01T12:00:00"))  # all of them are due
        services = []
        for moment in (early, late, early, late):
            other = observe_programme(
                LedgerService(create_engine(pg_url, 4), gw.service.coalition, moment)
            )
            await other.start()
            services.append(other)
        try:
            for _ in range(3):
                await asyncio.gather(*(ExpiryService(s).expire_due() for s in services))
        finally:
            for other in services:
                await other.engine.dispose()
        for member in members:
            assert (await wallet(gw, member))["balance"] == 1000
            assert sum(t["points"] for t in await expiries(gw, member)) == 150
        assert (await breakage(gw))["points"] == 8 * 150


async def test_the_job_and_a_redemption_at_once_never_overdraw(
    pg_url: str, clock: Clock, expiry_config: Path
):
    async for gw in start_gateway(pg_url, clock, config_dir=expiry_config):
        members = await members_with_old_points(gw, 6, 300)
        clock.now = at("2027-01-01T00:00:00")
        for index, member in enumerate(members):
            await earned(gw, member, 200, f"E-new-{index}")
        clock.now = at("2029-06-01T12:00:00")
        spends = [redeem(gw, m, random.randint(1, 500), f"R-{i}") for i, m in enumerate(members)]
        await asyncio.gather(job(gw).expire_due(), *spends)
        await job(gw).expire_due()
        for member in members:
            found = await wallet(gw, member)
            expired = sum(t["points"] for t in await expiries(gw, member))
            spent = sum(t["points"] for t in await history(gw, member) if t["kind"] == "REDEEM")
            assert found["balance"] + expired + spent == 500
            assert found["balance"] == min(200, 500 - spent)  # the old 300 spent or expired


# What expires when


async def test_upcoming_lists_what_expires_when_oldest_first(gw: Gateway, clock: Clock):
    member = await enrol(gw, "UPCOMING")
    moments = ["2026-06-01T12:00:00", "2026-06-01T12:00:00", "2026-09-15T08:30:00"]
    for index, moment in enumerate(moments):
        clock.now = at(moment)
        await earned(gw, member, 100 * (index + 1), f"E-{index}")
    found = await ExpiryService(gw.service).upcoming(own_id(member), "skyway")
    assert found == [(300, at("2029-06-01T12:00:00")), (300, at("2029-09-15T08:30:00"))]
    assert found[0].points == 300 and found[0].expires_at == at("2029-06-01T12:00:00")
    assert await expiring(gw, member) == [
        (300, "2029-06-01T12:00:00+00:00"),
        (300, "2029-09-15T08:30:00+00:00"),
    ]


# Breakage


async def test_breakage_per_partner_and_period_with_its_value(gw: Gateway, clock: Clock):
    first = await enrol(gw, "B-1")
    await earned(gw, first, 1000, "E-1")
    clock.now = at("2026-07-01T00:00:00")
    second = await enrol(gw, "B-2")
    await earned(gw, second, 250, "E-2")
    clock.now = at("2029-06-15T00:00:00")
    assert await job(gw).expire_due() == 1
    clock.now = at("2029-07-15T00:00:00")
    assert await job(gw).expire_due() == 1
    report = await breakage(gw)
    assert report == {
        "partner": {"slug": "skyway"},
        "points": 1250,
        "value": {"amount": "15.00", "currency": "EUR"},
        "expiries": 2,
        "since": None,
        "until": None,
        "policy": {
            "rule": "AFTER_EARNING",
            "months": 36,
            "description": "points expire 36 months after they were earned",
        },
    }
    june = await breakage(gw, since="2029-06-01T00:00:00+00:00", until="2029-07-01T00:00:00+00:00")
    assert (june["points"], june["value"]["amount"], june["expiries"]) == (1000, "12.00", 1)
    assert june["since"] == "2029-06-01T00:00:00+00:00"
    july = await breakage(gw, since="2029-07-01T00:00:00+00:00")
    assert (july["points"], july["value"]["amount"]) == (250, "3.00")
    none = await gw.gql(BREAKAGE, {"partner": "freshmart"})
    assert none["data"]["breakage"]["points"] == 0
    assert none["data"]["breakage"]["policy"] is None
    remote = await gw.gql(BREAKAGE, {"partner": "harbour"})
    assert remote["data"]["breakage"]["policy"] is None
    # The service's own report, as the CLI would use it.
    direct = await ExpiryService(gw.service).breakage("skyway")
    assert (direct.points, str(direct.value), direct.currency) == (1250, "15.000", "EUR")


async def test_who_sees_breakage(gw: Gateway):
    skyway = await gw.partner_token("skyway")
    brewbar = await gw.partner_token("brewbar")
    assert (await breakage(gw, token=skyway))["partner"] == {"slug": "skyway"}
    assert await breakage(gw, token=brewbar) is None
    assert (await gw.gql(BREAKAGE, {"partner": "nope"}))["data"]["breakage"] is None


async def test_bad_breakage_periods_are_errors_not_crashes(gw: Gateway):
    body = await gw.gql(
        BREAKAGE,
        {"partner": "skyway", "since": "2029-07-01T00:00:00Z", "until": "2029-06-01T00:00:00Z"},
        errors=True,
    )
    assert body["data"]["breakage"] is None
    assert "until must be after since" in body["errors"][0]["message"]
    body = await gw.gql(
        BREAKAGE, {"partner": "skyway", "since": "2029-07-01T00:00:00"}, errors=True, status=400
    )
    assert "UTC offset" in body["errors"][0]["message"]


async def test_ledger_has_breakage_accounts_and_the_audit_is_clean(gw: Gateway, clock: Clock):
    member = await enrol(gw, "AUDIT")
    await earned(gw, member, 100, "E")
    clock.now = at("2030-01-01T00:00:00")
    assert await job(gw).expire_due() == 1
    figures = await gw.service.figures("skyway")
    assert figures["breakage"] == 100 and figures["outstanding"] == 0
    assert await gw.audit() == []


# Merged members


START_LINK = "mutation { startAccountLink { nonce userErrors { code } } }"
COMPLETE_LINK = """
mutation($token: String!) {
  completeAccountLink(input: {idToken: $token}) { mergedMemberIds userErrors { code } }
}"""


async def test_a_merged_members_points_keep_their_age(sso: Gateway, brands: Brands):
    """The demo coalition: SkyWay's miles expire 36 months after they were earned."""
    retired = await enrol(sso, "BB-2002", "brewbar")
    await earned(sso, retired, 1000, "E-old")  # miles, 2026-06-01
    old = (await wallet(sso, retired))["balance"]
    sso.clock.now = at("2027-06-01T12:00:00")
    alice = brands.token("skyway", "alice-m", skyway_member="SKY-M")
    survivor = (await sso.gql("{ me { id } }", token=alice))["data"]["me"]["id"]
    await earned(sso, survivor, 200, "E-new")
    new = (await wallet(sso, survivor))["balance"]
    nonce = payload(await sso.gql(START_LINK, token=alice))["nonce"]
    linking = brands.token("brewbar", "alice", nonce=nonce)
    linked = payload(await sso.gql(COMPLETE_LINK, {"token": linking}, token=alice))
    assert linked["userErrors"] == [] and linked["mergedMemberIds"] == [retired]
    assert (await wallet(sso, survivor))["balance"] == old + new
    assert await expiring(sso, survivor) == [
        (old, "2029-06-01T12:00:00+00:00"),
        (new, "2030-06-01T12:00:00+00:00"),
    ]
    sso.clock.now = at("2029-06-01T12:00:00")
    assert await job(sso).expire_due() == 1
    assert (await wallet(sso, survivor))["balance"] == new
    assert await job(sso).expire_due() == 0
