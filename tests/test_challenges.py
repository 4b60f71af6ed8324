"""Challenges and badges over HTTP, on SQLite and PostgreSQL (issue 5, gamification):
``[[challenges]]`` in coalition.toml and its errors, progress derived from the ledger in
calendar periods (UTC), a badge and its bonus given once per member and period however many
evaluations run (also at once), the next period giving them again, partners' own challenges
through GraphQL and who may manage and see what.

The demo coalition's challenges (the clock starts on Monday 2026-06-01 12:00 UTC):
``explorer`` (earn at 3 different partners in a month: badge "Explorer", 100 SkyWay miles)
and ``brewbar-regular`` (5 earns at BrewBar in a month: badge "BrewBar Regular", 10 stars).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.api.graphql.scalars import decode_member_id, encode_id
from gateway.challenges.service import ChallengeService
from gateway.challenges.standings import Award
from gateway.earning.observer import observe_programme
from gateway.kernel.errors import DomainError
from gateway.ledger.records import MemberRef
from gateway.ledger.service import LedgerService
from gateway.ledger.tables import transfers
from partners.config.challenges import Challenge
from partners.config.coalition import DEMO_DIRECTORY, ConfigError, load_coalition
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ERRORS, codes, payload
from tests.sso import Brands
from tests.test_api import balances, earn, enrol, reverse
from tests.test_config import COALITION, partner, write

CHALLENGE_FIELDS = """
  id slug name description kind period target badge owner { slug } partner { slug }
  bonusPoints bonusPartner { slug } validFrom validUntil active configured
"""
CREATE = f"""
mutation($input: CreateChallengeInput!) {{
  createChallenge(input: $input) {{ challenge {{ {CHALLENGE_FIELDS} }} {ERRORS} }}
}}"""
UPDATE = f"""
mutation($input: UpdateChallengeInput!) {{
  updateChallenge(input: $input) {{ challenge {{ {CHALLENGE_FIELDS} }} {ERRORS} }}
}}"""
LIST = """
query($partner: String, $includeInactive: Boolean! = false) {
  challenges(partner: $partner, includeInactive: $includeInactive) { slug active }
}"""
STANDING = """
query($id: ID!) {
  member(id: $id) {
    challenges { challenge { slug } count target periodStart periodEnd completed awardedAt }
    badges {
      name challenge { slug } periodStart periodEnd awardedAt bonusPoints bonusPartner { slug }
      bonusTransfer { kind points partner { slug } reason }
    }
  }
}"""
KEYS = itertools.count()
EXPLORER = encode_id("Challenge", "explorer")
ME = """
{ me { id challenges { challenge { slug } count completed } badges { name bonusPoints } } }
"""


@pytest.fixture
async def gateway(database_url: str, clock: Clock) -> AsyncIterator[Gateway]:
    """The whole demo coalition, tiers and challenges included (the suite's default leaves
    them out: see conftest.core_text)."""
    async for found in start_gateway(database_url, clock, config_dir=str(DEMO_DIRECTORY)):
        yield found


# Helpers


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def service(gateway: Gateway) -> ChallengeService:
    """A challenge service of its own, as another request, job or process would have."""
    return ChallengeService(gateway.service)


def member_uuid(member: str) -> str:
    member_id = decode_member_id(member)
    assert member_id is not None
    return member_id


async def evaluate(gateway: Gateway, member: str) -> list[Award]:
    return await service(gateway).evaluate(member_uuid(member))


async def earn_at(gateway: Gateway, member: str, *partners: str, points: int = 10) -> None:
    for partner_slug in partners:
        key = f"earn-{next(KEYS)}"
        result = await earn(gateway, member, points, key, partner_slug)
        assert result["userErrors"] == [], result


async def standing(gateway: Gateway, member: str, token: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = (await gateway.gql(STANDING, {"id": member}, token=token))["data"][
        "member"
    ]
    return found


async def progress(gateway: Gateway, member: str, token: str | None = None) -> dict[str, Any]:
    found = (await standing(gateway, member, token))["challenges"]
    return {row["challenge"]["slug"]: row for row in found}


async def bonus_transfers(gateway: Gateway) -> int:
    async with gateway.service.engine.connect() as connection:
        count = await connection.scalar(
            select(func.count())
            .select_from(transfers)
            .where(transfers.c.idempotency_scope.startswith("challenge:"))
        )
    return int(count or 0)


async def create(
    gateway: Gateway, owner: str | None, token: str | None = None, **settings: Any
) -> dict[str, Any]:
    challenge = {
        "slug": "brewbar-three",
        "name": "Three coffees this week",
        "kind": "VISITS_AT_PARTNER",
        "period": "WEEK",
        "target": 3,
        "badge": "Coffee lover",
        **settings,
    }
    challenge = {name: value for name, value in challenge.items() if value is not None}
    variables = {"input": {"partner": owner, "challenge": challenge}}
    return payload(await gateway.gql(CREATE, variables, token=token))


async def update(
    gateway: Gateway, challenge_id: str, token: str | None = None, **settings: Any
) -> dict[str, Any]:
    variables = {"input": {"challengeId": challenge_id, "challenge": settings}}
    return payload(await gateway.gql(UPDATE, variables, token=token))


# Configuration


def test_the_demo_coalition_has_an_explorer_and_a_brewbar_challenge() -> None:
    coalition = load_coalition(DEMO_DIRECTORY)
    found = {c.slug: c for c in coalition.challenges}
    assert set(found) == {"explorer", "brewbar-regular"}
    explorer, regular = found["explorer"], found["brewbar-regular"]
    assert (explorer.kind.value, explorer.period.value, explorer.target) == (
        "partners_in_period",
        "month",
        3,
    )
    assert (explorer.badge, explorer.bonus_points, explorer.bonus_partner) == (
        "Explorer",
        100,
        "skyway",
    )
    assert (regular.kind.value, regular.partner, regular.target) == (
        "visits_at_partner",
        "brewbar",
        5,
    )
    assert (regular.bonus_points, regular.bonus_partner) == (10, "brewbar")
    assert explorer.configured and explorer.owner is None


VALID = (
    'slug = "regular"\nname = "Regular"\nkind = "visits_at_partner"\npartner = "alpha"\n'
    'period = "month"\ntarget = 5\nbadge = "Regular"\n'
)
REMOTE = '[pool]\nhosted = "remote"\ndevelopment = true\n'


def coalition_dir(tmp_path: Path, *challenges: str) -> Path:
    files = {
        "alpha": partner("alpha", "ALP"),
        "beta": partner("beta", "BET"),
        "gamma": partner("gamma", "GAM", extra=REMOTE),
    }
    body = "".join(f"\n[[challenges]]\n{text}" for text in challenges)
    return write(tmp_path, files, COALITION + body)


def test_a_valid_challenge_loads_with_its_defaults(tmp_path: Path) -> None:
    coalition = load_coalition(coalition_dir(tmp_path, VALID + "bonus_points = 7\n"))
    (challenge,) = coalition.challenges
    assert (challenge.slug, challenge.partner, challenge.target) == ("regular", "alpha", 5)
    assert (challenge.bonus_points, challenge.bonus_partner) == (7, "alpha")
    assert challenge.active and challenge.valid_from is None


def edit(text: str, key: str, value: str | None) -> str:
    """``VALID`` with ``key`` set to ``value`` (None: left out), or added."""
    lines = [line for line in text.splitlines() if not line.startswith(f"{key} =")]
    if value is not None:
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("challenge", "field", "words"),
    [
        (VALID + "colour = 1\n", "colour", "not a known setting"),
        (edit(VALID, "kind", '"streak"'), "kind", "partners_in_period"),
        (edit(VALID, "period", '"fortnight"'), "period", "week, month, year"),
        (edit(VALID, "target", "0"), "target", "between 1"),
        (edit(VALID, "target", "2.5"), "target", "whole number"),
        (edit(VALID, "target", None), "target", "required"),
        (edit(VALID, "slug", '"Regular Visits"'), "slug", "lower-case"),
        (edit(VALID, "badge", '"  "'), "badge", "non-empty"),
        (edit(VALID, "partner", None), "partner", "required for a visits_at_partner"),
        (edit(VALID, "partner", '"delta"'), "partner", "unknown partner 'delta'"),
        (
            edit(edit(VALID, "kind", '"partners_in_period"'), "target", "2"),
            "partner",
            "applies only to",
        ),
        (
            edit(edit(edit(VALID, "kind", '"partners_in_period"'), "partner", None), "target", "4"),
            "target",
            "only 3 partners",
        ),
        (
            edit(edit(edit(VALID, "kind", '"partners_in_period"'), "partner", None), "target", "2")
            + "bonus_points = 5\n",
            "bonus_partner",
            "required with bonus_points",
        ),
        (VALID + 'bonus_points = 5\nbonus_partner = "delta"\n', "bonus_partner", "unknown"),
        (VALID + 'bonus_points = 5\nbonus_partner = "gamma"\n', "bonus_partner", "own system"),
        (VALID + 'bonus_partner = "beta"\n', "bonus_partner", "only with bonus_points"),
        (VALID + "bonus_points = -1\n", "bonus_points", "between 0"),
        (
            VALID + "valid_from = 2026-07-01\nvalid_until = 2026-06-01\n",
            "valid_until",
            "after valid_from",
        ),
        (VALID + "valid_from = 2026-07-01T00:00:00\n", "valid_from", "UTC offset"),
    ],
)
def test_a_wrong_setting_is_refused_naming_the_field(
    tmp_path: Path, challenge: str, field: str, words: str
) -> None:
    directory = coalition_dir(tmp_path, challenge)
    with pytest.raises(ConfigError) as caught:
        load_coalition(directory)
    error = caught.value
    assert error.file == str(directory / "coalition.toml")
    assert error.partner is None
    assert error.field == f"challenges[0].{field}", error
    assert words in error.problem, error
    assert f"field 'challenges[0].{field}'" in str(error)


def test_a_duplicate_slug_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_coalition(coalition_dir(tmp_path, VALID, VALID))
    assert caught.value.field == "challenges[1].slug"
    assert "'regular' is used by another challenge" in caught.value.problem


def test_challenges_must_be_an_array_of_tables(tmp_path: Path) -> None:
    files = {"alpha": partner("alpha", "ALP")}
    write(tmp_path, files, COALITION + 'challenges = "explorer"\n')
    with pytest.raises(ConfigError) as caught:
        load_coalition(tmp_path)
    assert caught.value.field == "challenges"
    assert "[[challenges]]" in caught.value.problem


# Progress and awards


async def test_progress_counts_partners_and_visits_in_the_current_month(gateway: Gateway):
    member = await enrol(gateway, "skyway", "P-1")
    await earn_at(gateway, member, "skyway", "brewbar", "brewbar")
    found = await progress(gateway, member)
    assert set(found) == {"explorer", "brewbar-regular"}
    explorer = found["explorer"]
    assert (explorer["count"], explorer["target"], explorer["completed"]) == (2, 3, False)
    assert explorer["periodStart"] == "2026-06-01T00:00:00+00:00"
    assert explorer["periodEnd"] == "2026-07-01T00:00:00+00:00"
    assert explorer["awardedAt"] is None
    regular = found["brewbar-regular"]
    assert (regular["count"], regular["target"], regular["completed"]) == (2, 5, False)
    # Earns of last month do not count in this one.
    other = await enrol(gateway, "skyway", "P-2")
    gateway.clock.now = utc(2026, 5, 31, 23, 59)
    await earn_at(gateway, other, "skyway", "brewbar")
    gateway.clock.now = utc(2026, 6, 1, 0, 0)
    await earn_at(gateway, other, "freshmart")
    assert (await progress(gateway, other))["explorer"]["count"] == 1
    assert await service(gateway).evaluate(member_uuid(other)) == []
    assert (await standing(gateway, other))["badges"] == []


async def test_meeting_a_challenge_awards_its_badge_and_bonus_once(gateway: Gateway):
    member = await enrol(gateway, "skyway", "A-1")
    await earn_at(gateway, member, "skyway", "brewbar")
    assert await evaluate(gateway, member) == []
    before = await balances(gateway, member)
    await earn_at(gateway, member, "freshmart")
    first = await evaluate(gateway, member)
    second = await evaluate(gateway, member)
    # Once, whether the earn itself already evaluated (the lead wires that) or not.
    assert [award.challenge for award in first + second] in ([], ["explorer"])
    after = await balances(gateway, member)
    assert after["skyway"] == before["skyway"] + 100
    assert after["freshmart"] == before["freshmart"] + 10
    result = await standing(gateway, member)
    (badge,) = result["badges"]
    assert badge["name"] == "Explorer" and badge["challenge"]["slug"] == "explorer"
    assert (badge["periodStart"], badge["periodEnd"]) == (
        "2026-06-01T00:00:00+00:00",
        "2026-07-01T00:00:00+00:00",
    )
    assert badge["awardedAt"] == "2026-06-01T12:00:00+00:00"
    assert (badge["bonusPoints"], badge["bonusPartner"]) == (100, {"slug": "skyway"})
    transfer = badge["bonusTransfer"]
    assert (transfer["kind"], transfer["points"], transfer["partner"]) == (
        "EARN",
        100,
        {"slug": "skyway"},
    )
    assert "Explorer" in transfer["reason"]
    explorer = {row["challenge"]["slug"]: row for row in result["challenges"]}["explorer"]
    # The bonus is an earn at SkyWay, but not one that counts.
    assert (explorer["count"], explorer["completed"]) == (3, True)
    assert explorer["awardedAt"] == "2026-06-01T12:00:00+00:00"
    # More earns in the month: no second badge.
    await earn_at(gateway, member, "brewbar", points=11)
    assert await evaluate(gateway, member) == []
    assert await bonus_transfers(gateway) == 1
    assert len((await standing(gateway, member))["badges"]) == 1


async def test_a_bonus_is_not_a_visit_and_a_reversed_earn_does_not_count(gateway: Gateway):
    member = await enrol(gateway, "brewbar", "V-1")
    for visit in range(5):
        result = await earn(gateway, member, 3, f"visit-{visit}", "brewbar")
        assert result["userErrors"] == []
    assert (await progress(gateway, member))["brewbar-regular"]["count"] == 5
    await evaluate(gateway, member)
    regular = (await progress(gateway, member))["brewbar-regular"]
    assert (regular["count"], regular["completed"]) == (5, True)  # the 10 bonus stars: no visit
    assert (await balances(gateway, member))["brewbar"] == 15 + 10
    # A visit reversed in full does not count; one reversed in part still does.
    other = await enrol(gateway, "brewbar", "V-2")
    made = [await earn(gateway, other, 4, f"other-{n}", "brewbar") for n in range(2)]
    assert (await reverse(gateway, made[0]["transfer"]["id"], "undo-0"))["userErrors"] == []
    partial = await reverse(gateway, made[1]["transfer"]["id"], "undo-1", points=1)
    assert partial["userErrors"] == []
    for n in range(2, 5):
        assert (await earn(gateway, other, 4, f"other-{n}", "brewbar"))["userErrors"] == []
    assert (await progress(gateway, other))["brewbar-regular"]["count"] == 4
    assert await evaluate(gateway, other) == []
    assert (await standing(gateway, other))["badges"] == []


async def test_the_next_period_awards_again(gateway: Gateway):
    gateway.app.state.reference_partners["harbour"].add_member("HH-N1")  # a hotel guest
    member = await enrol(gateway, "harbour", "HH-N1")
    await earn_at(gateway, member, "skyway", "brewbar", "freshmart")
    await evaluate(gateway, member)
    gateway.clock.now = utc(2026, 7, 2, 9)
    july = await progress(gateway, member)
    assert (july["explorer"]["count"], july["explorer"]["completed"]) == (0, False)
    assert july["explorer"]["periodStart"] == "2026-07-01T00:00:00+00:00"
    await earn_at(gateway, member, "skyway", "brewbar")
    assert await evaluate(gateway, member) == []
    await earn_at(gateway, member, "harbour")  # a partner keeping its own points counts too
    await evaluate(gateway, member)
    badges = (await standing(gateway, member))["badges"]
    assert [(b["name"], b["periodStart"][:10]) for b in badges] == [
        ("Explorer", "2026-07-01"),
        ("Explorer", "2026-06-01"),
    ]
    assert await bonus_transfers(gateway) == 2
    assert (await balances(gateway, member))["skyway"] == 10 + 100 + 10 + 100


async def test_the_job_awards_a_period_that_ended_before_anyone_evaluated(gateway: Gateway):
    member = await enrol(gateway, "skyway", "J-1")
    gateway.clock.now = utc(2026, 6, 30, 23, 0)
    await earn_at(gateway, member, "skyway", "brewbar", "freshmart")
    # (If the earn evaluated, June's badge is already there; else only the job gives it.)
    gateway.clock.now = utc(2026, 7, 1, 1, 0)
    assert await evaluate(gateway, member) == []  # July: nothing met yet
    jobs = service(gateway)
    awarded = await jobs.evaluate_all(since=utc(2026, 6, 30))
    assert awarded in (0, 1)
    assert await jobs.evaluate_all(since=utc(2026, 6, 30)) == 0
    (badge,) = (await standing(gateway, member))["badges"]
    assert badge["periodStart"].startswith("2026-06-01")
    assert await bonus_transfers(gateway) == 1


class RacingService(ChallengeService):
    """Every evaluation decides what is due, then waits: concurrent ones all decide before
    any commits, so only the award row's unique key can keep the badge to one."""

    async def _due(self, connection: Any, *args: Any) -> Any:
        due = await super()._due(connection, *args)
        await asyncio.sleep(0.05)
        return due


async def test_concurrent_evaluations_award_once(gateway: Gateway):
    members = [await enrol(gateway, "skyway", f"C-{n}") for n in range(3)]
    ledger = gateway.service
    for member in members:
        # Straight to the ledger, so that no earn evaluates on its own: every badge is
        # left to the racing evaluations below.
        ref = MemberRef(id=member_uuid(member))
        for n, partner_slug in enumerate(("skyway", "brewbar", "freshmart")):
            await ledger.earn(partner_slug, ref, f"{member}-p{n}", points=10)
        for visit in range(5):
            await ledger.earn("brewbar", ref, f"{member}-v{visit}", points=2)
    # Separate services (as separate requests and processes would be), all at once.
    services = [RacingService(ledger) for _ in range(6 * len(members) + 3)]
    await asyncio.gather(*(racer.start() for racer in services))
    calls: list[Any] = [
        racer.evaluate(member_uuid(member))
        for racer, member in zip(services, members * 6, strict=False)
    ]
    calls += [racer.evaluate_all(since=utc(2026, 6, 1)) for racer in services[-3:]]
    results = await asyncio.gather(*calls)
    given = [award for result in results if isinstance(result, list) for award in result]
    given_by_job = sum(result for result in results if isinstance(result, int))
    assert len(given) + given_by_job == 2 * len(members)
    assert await bonus_transfers(gateway) == 2 * len(members)
    for member in members:
        badges = (await standing(gateway, member))["badges"]
        assert sorted(b["name"] for b in badges) == ["BrewBar Regular", "Explorer"]
        wallets = await balances(gateway, member)
        assert wallets["skyway"] == 10 + 100
        assert wallets["brewbar"] == 10 + 5 * 2 + 10


async def test_a_member_sees_their_own_badges_and_progress(sso_programme: Gateway, brands: Brands):
    token = brands.token("skyway", "bob")
    member: str = (await sso_programme.gql(ME, token=token))["data"]["me"]["id"]
    await earn_at(sso_programme, member, "skyway", "brewbar", "freshmart")
    await service(sso_programme).evaluate(member_uuid(member))
    me = (await sso_programme.gql(ME, token=token))["data"]["me"]
    assert {"name": "Explorer", "bonusPoints": 100} in me["badges"]
    found = {row["challenge"]["slug"]: row for row in me["challenges"]}
    assert (found["explorer"]["count"], found["explorer"]["completed"]) == (3, True)


# Partners' own challenges, and who may do what


async def test_a_partner_creates_and_changes_its_own_challenge(gateway: Gateway):
    brewbar = await gateway.partner_token("brewbar", "rewards:manage")
    created = await create(gateway, "brewbar", brewbar, bonusPoints=5)
    assert created["userErrors"] == []
    challenge = created["challenge"]
    assert challenge["owner"] == {"slug": "brewbar"} and challenge["partner"] == {"slug": "brewbar"}
    assert (challenge["bonusPoints"], challenge["bonusPartner"]) == (5, {"slug": "brewbar"})
    assert (challenge["kind"], challenge["period"], challenge["configured"]) == (
        "VISITS_AT_PARTNER",
        "WEEK",
        False,
    )
    listed = (await gateway.gql(LIST, {"partner": "brewbar"}))["data"]["challenges"]
    assert [c["slug"] for c in listed] == ["brewbar-regular", "brewbar-three"]
    everyone = (await gateway.gql(LIST, token=brewbar))["data"]["challenges"]
    assert {c["slug"] for c in everyone} == {"brewbar-regular", "brewbar-three", "explorer"}
    # Week of Monday 1 June: three visits (the bonus is 5 stars).
    member = await enrol(gateway, "brewbar", "W-1")
    for visit in range(3):
        assert (await earn(gateway, member, 2, f"w-{visit}", "brewbar"))["userErrors"] == []
    found = await progress(gateway, member)
    week = found["brewbar-three"]
    assert (week["count"], week["target"]) == (3, 3)
    assert (week["periodStart"], week["periodEnd"]) == (
        "2026-06-01T00:00:00+00:00",
        "2026-06-08T00:00:00+00:00",
    )
    await evaluate(gateway, member)
    assert (await balances(gateway, member))["brewbar"] == 6 + 5
    # Raising the target changes what counts from now on; a badge given stays given.
    changed = await update(gateway, challenge["id"], brewbar, target=4, badge="Coffee fan")
    assert changed["userErrors"] == []
    assert (changed["challenge"]["target"], changed["challenge"]["badge"]) == (4, "Coffee fan")
    assert [b["name"] for b in (await standing(gateway, member))["badges"]] == ["Coffee lover"]
    refused = await update(gateway, challenge["id"], brewbar, kind="POINTS_IN_PERIOD")
    assert codes(refused) == ["INVALID_INPUT"]
    assert refused["userErrors"][0]["field"] == ["input", "challenge", "kind"]
    # Ended: no longer listed or shown, found with includeInactive.
    ended = await update(gateway, challenge["id"], brewbar, active=False)
    assert ended["challenge"]["active"] is False
    listed = (await gateway.gql(LIST, {"partner": "brewbar"}))["data"]["challenges"]
    assert [c["slug"] for c in listed] == ["brewbar-regular"]
    variables = {"partner": "brewbar", "includeInactive": True}
    listed = (await gateway.gql(LIST, variables))["data"]["challenges"]
    assert [c["slug"] for c in listed] == ["brewbar-regular", "brewbar-three"]
    assert "brewbar-three" not in await progress(gateway, member)


async def test_a_partner_cannot_manage_another_partners_or_the_coalitions_challenges(
    gateway: Gateway,
):
    created = await create(gateway, "brewbar", await gateway.partner_token("brewbar"))
    challenge_id = created["challenge"]["id"]
    skyway = await gateway.partner_token("skyway")
    for owner in ("brewbar", None):
        result = await create(gateway, owner, skyway, slug="sneaky", partner="skyway")
        assert codes(result) == ["ACCESS_DENIED"] and result["challenge"] is None, owner
    result = await update(gateway, challenge_id, skyway, target=1)
    assert codes(result) == ["ACCESS_DENIED"]
    assert result["userErrors"][0]["field"] == ["input", "challengeId"]
    result = await update(gateway, EXPLORER, skyway, target=1)  # the coalition's
    assert codes(result) == ["ACCESS_DENIED"]
    without_scope = await gateway.partner_token("brewbar", "points:earn members:read")
    result = await create(gateway, "brewbar", without_scope, slug="no-scope")
    assert codes(result) == ["ACCESS_DENIED"]
    result = await update(gateway, challenge_id, without_scope, target=1)
    assert codes(result) == ["ACCESS_DENIED"]
    listed = (await gateway.gql(LIST, {"includeInactive": True}))["data"]["challenges"]
    assert {c["slug"] for c in listed} == {"brewbar-regular", "brewbar-three", "explorer"}
    unchanged = (await gateway.gql(LIST, {"partner": "brewbar"}))["data"]["challenges"]
    assert [c["slug"] for c in unchanged] == ["brewbar-regular", "brewbar-three"]


async def test_a_member_cannot_manage_challenges(sso_programme: Gateway, brands: Brands):
    token = brands.token("skyway", "bob")
    result = await create(sso_programme, "skyway", token, partner="skyway")
    assert codes(result) == ["ACCESS_DENIED"]
    result = await create(sso_programme, None, token, slug="members-own", partner="skyway")
    assert codes(result) == ["ACCESS_DENIED"]


async def test_wrong_challenges_are_user_errors_that_change_nothing(gateway: Gateway):
    brewbar = await gateway.partner_token("brewbar")
    cases: list[tuple[str | None, str | None, dict[str, Any], str, list[str]]] = [
        # (owner, token: None for the operator, settings, code, field)
        ("brewbar", brewbar, {"kind": "PARTNERS_IN_PERIOD"}, "INVALID_INPUT", ["kind"]),
        ("brewbar", brewbar, {"partner": "skyway"}, "INVALID_INPUT", ["partner"]),
        (
            "brewbar",
            brewbar,
            {"bonusPoints": 5, "bonusPartner": "skyway"},
            "INVALID_INPUT",
            ["bonusPartner"],
        ),
        (None, None, {"slug": "explorer", "partner": "brewbar"}, "INVALID_INPUT", ["slug"]),
        (None, None, {"slug": "Bad Slug", "partner": "brewbar"}, "INVALID_INPUT", ["slug"]),
        (None, None, {"partner": None}, "INVALID_INPUT", ["partner"]),
        (None, None, {"partner": "nowhere"}, "UNKNOWN_PARTNER", ["partner"]),
        (None, None, {"partner": "brewbar", "target": 0}, "INVALID_INPUT", ["target"]),
        (None, None, {"partner": "brewbar", "badge": " "}, "INVALID_INPUT", ["badge"]),
        (None, None, {"partner": "brewbar", "badge": None}, "INVALID_INPUT", ["badge"]),
        (None, None, {"partner": "brewbar", "name": "x" * 121}, "INVALID_INPUT", ["name"]),
        (
            None,
            None,
            {"kind": "PARTNERS_IN_PERIOD", "target": 9, "partner": None},
            "INVALID_INPUT",
            ["target"],
        ),
        (
            None,
            None,
            {"kind": "PARTNERS_IN_PERIOD", "bonusPoints": 50, "bonusPartner": "harbour"},
            "NOT_AVAILABLE_AT_REMOTE_POOL",
            ["bonusPartner"],
        ),
        (
            None,
            None,
            {
                "partner": "brewbar",
                "validFrom": "2026-07-01T00:00:00Z",
                "validUntil": "2026-06-01T00:00:00Z",
            },
            "INVALID_INPUT",
            ["validUntil"],
        ),
    ]
    for owner, token, settings, code, field in cases:
        result = await create(gateway, owner, token, **settings)
        assert codes(result) == [code], (settings, result)
        assert result["userErrors"][0]["field"] == ["input", "challenge", *field], settings
        assert result["challenge"] is None
    result = await create(gateway, "nowhere", None)
    assert codes(result) == ["UNKNOWN_PARTNER"]
    assert result["userErrors"][0]["field"] == ["input", "partner"]
    for challenge_id in (encode_id("Challenge", "none"), encode_id("Reward", 1), "nonsense", ""):
        result = await update(gateway, challenge_id, None, target=2)
        assert codes(result) == ["UNKNOWN_CHALLENGE"], challenge_id
    explorer = (await gateway.gql(LIST))["data"]["challenges"]
    assert {c["slug"] for c in explorer} == {"brewbar-regular", "explorer"}
    configured = await update(gateway, EXPLORER, None, target=2)
    assert codes(configured) == ["INVALID_INPUT"]
    assert "coalition.toml" in configured["userErrors"][0]["message"]


async def test_an_operator_sets_a_points_challenge_for_a_window(gateway: Gateway):
    result = await create(
        gateway,
        None,
        slug="freshmart-500",
        name="Spend big at FreshMart this week",
        kind="POINTS_IN_PERIOD",
        partner="freshmart",
        target=500,
        badge="Big shopper",
        bonusPoints=50,
        validFrom="2026-06-01T12:00:00Z",
        validUntil="2026-07-01T00:00:00Z",
    )
    assert result["userErrors"] == []
    assert result["challenge"]["bonusPartner"] == {"slug": "freshmart"}
    assert result["challenge"]["owner"] is None
    member = await enrol(gateway, "freshmart", "F-1")
    gateway.clock.now = utc(2026, 6, 1, 11)  # before the window: does not count
    assert (await earn(gateway, member, 400, "f-0", "freshmart"))["userErrors"] == []
    gateway.clock.now = utc(2026, 6, 2, 11)
    for n, points in enumerate((300, 150)):
        assert (await earn(gateway, member, points, f"f-{n + 1}", "freshmart"))["userErrors"] == []
    spender = (await progress(gateway, member))["freshmart-500"]
    assert (spender["count"], spender["target"], spender["completed"]) == (450, 500, False)
    assert await evaluate(gateway, member) == []
    assert (await earn(gateway, member, 50, "f-3", "freshmart"))["userErrors"] == []
    await evaluate(gateway, member)
    badges = (await standing(gateway, member))["badges"]
    assert [(b["name"], b["bonusPoints"]) for b in badges] == [("Big shopper", 50)]
    assert (await balances(gateway, member))["freshmart"] == 400 + 500 + 50
    # After the window the challenge is over: neither listed nor shown.
    gateway.clock.now = utc(2026, 7, 1, 0, 0)
    assert "freshmart-500" not in await progress(gateway, member)
    listed = (await gateway.gql(LIST))["data"]["challenges"]
    assert "freshmart-500" not in {c["slug"] for c in listed}


async def test_a_partner_app_sees_only_challenges_counting_at_its_own_pool(gateway: Gateway):
    member = await enrol(gateway, "brewbar", "S-1")
    await earn_at(gateway, member, "skyway", "brewbar", "freshmart")
    await evaluate(gateway, member)
    operator_view = await standing(gateway, member)
    assert [b["name"] for b in operator_view["badges"]] == ["Explorer"]
    brewbar = await gateway.partner_token("brewbar")
    brewbar_view = await standing(gateway, member, brewbar)
    assert brewbar_view["badges"] == []  # where else the member earns is not BrewBar's
    assert [row["challenge"]["slug"] for row in brewbar_view["challenges"]] == ["brewbar-regular"]
    skyway = await gateway.partner_token("skyway")
    body = await gateway.gql(STANDING, {"id": member}, token=skyway)
    assert body["data"]["member"] is None  # not a SkyWay customer


async def test_an_unknown_member_is_refused(gateway: Gateway):
    with pytest.raises(DomainError) as caught:
        await service(gateway).evaluate("00000000-0000-0000-0000-000000000000")
    assert caught.value.code.value == "UNKNOWN_MEMBER"


def with_challenges(gateway: Gateway, *challenges: Challenge) -> ChallengeService:
    """A service of a gateway started with another coalition.toml (on the same database)."""
    coalition = replace(gateway.service.coalition, challenges=challenges)
    return ChallengeService(
        observe_programme(LedgerService(gateway.service.engine, coalition, gateway.clock))
    )


async def test_configured_challenges_are_synced_at_start(gateway: Gateway):
    starting = [service(gateway) for _ in range(4)]  # several processes at once
    await asyncio.gather(*(one.start() for one in starting))
    assert [c.slug for c in await starting[0].challenges()] == ["brewbar-regular", "explorer"]
    assert (await create(gateway, "brewbar", slug="mine"))["userErrors"] == []
    # A configured slug that a partner already took through the API is refused at start.
    explorer = next(c for c in gateway.service.coalition.challenges if c.slug == "explorer")
    clash = with_challenges(gateway, explorer, replace(explorer, slug="mine"))
    with pytest.raises(ConfigError) as caught:
        await clash.start()
    assert caught.value.field == "challenges[1].slug"
    assert "'mine'" in caught.value.problem
    # A challenge taken out of the file ends; its badges stay. A changed one changes.
    member = await enrol(gateway, "skyway", "T-1")
    await earn_at(gateway, member, "skyway", "brewbar", "freshmart")
    await evaluate(gateway, member)
    later = with_challenges(gateway, replace(explorer, target=2, badge="Traveller"))
    await later.start()
    listed = {c.slug: c for c in await later.challenges(include_inactive=True)}
    assert (listed["explorer"].target, listed["explorer"].badge) == (2, "Traveller")
    assert listed["brewbar-regular"].active is False
    assert [c.slug for c in await later.challenges()] == ["explorer", "mine"]
    assert [b.badge for b in await later.badges(member_uuid(member))] == ["Explorer"]
