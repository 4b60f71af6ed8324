"""The badge consumer (``challenges.awards``) over a batch of many members' events, on SQLite
and PostgreSQL: the badges given are exactly those met (a merged member's earns count for
their survivor, a badge already given is not given again), in one batch, and a batch applied
again gives nothing twice.

The demo coalition's challenges (the clock starts on Monday 2026-06-01 12:00 UTC):
``explorer`` (earn at 3 different partners in a month: badge "Explorer", 100 SkyWay miles)
and ``brewbar-regular`` (5 earns at BrewBar in a month: badge "BrewBar Regular", 10 stars).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import delete, func, select

from gateway.api import jobs as wiring
from gateway.challenges.awards import ChallengeAwards
from gateway.challenges.tables import challenge_awards
from gateway.events import log
from gateway.events.event import START
from gateway.events.tables import consumer_positions, outbox
from gateway.jobs.runner import JobRunner
from gateway.members.identity import IdentityService
from gateway.members.records import Proof
from partners.config.coalition import DEMO_DIRECTORY
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import payload
from tests.test_api import balances, earn, enrol
from tests.test_challenges import bonus_transfers, member_uuid, standing

KEYS = itertools.count()
BULK = """
mutation($input: EarnPointsBulkInput!) {
  earnPointsBulk(input: $input) { succeeded failed userErrors { code } }
}"""


@pytest.fixture
async def gateway(database_url: str, clock: Clock) -> AsyncIterator[Gateway]:
    """The whole demo coalition, challenges included; no jobs unless a test runs them."""
    async for found in start_gateway(database_url, clock, config_dir=str(DEMO_DIRECTORY)):
        yield found


async def earn_at(gateway: Gateway, member: str, *partners: str) -> None:
    for partner in partners:
        result = await earn(gateway, member, 10, f"earn-{next(KEYS)}", partner)
        assert result["userErrors"] == [], result


async def badges(gateway: Gateway, member: str) -> list[str]:
    return sorted(badge["name"] for badge in (await standing(gateway, member))["badges"])


async def awards(gateway: Gateway) -> int:
    async with gateway.service.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(challenge_awards)))


async def events(gateway: Gateway) -> int:
    async with gateway.service.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(outbox)))


async def readable(gateway: Gateway, count: int) -> None:
    """Wait until the log's first ``count`` events can be read (on PostgreSQL, once every
    transaction that started before theirs ended: see gateway.events.log)."""
    async with asyncio.timeout(60):
        while True:
            async with gateway.service.engine.connect() as connection:
                if len(await log.read(connection, START, count + 1)) >= count:
                    return
            await asyncio.sleep(0.01)


async def test_one_batch_of_many_members_awards_exactly_the_badges_met(gateway: Gateway):
    runner = JobRunner(gateway.service.uow, wiring.consumers(gateway.service))
    (consumer,) = [found for found in runner.consumers if found.name == "challenges.awards"]
    assert isinstance(consumer, ChallengeAwards)
    # Before the batch: one member has their Explorer badge already.
    awarded = await enrol(gateway, "skyway", "D-1")
    await earn_at(gateway, awarded, "skyway", "brewbar", "freshmart")
    await runner.settle()
    await runner.settle()  # and the bonus's own event
    assert await badges(gateway, awarded) == ["Explorer"]
    logged = await events(gateway)

    # The batch.
    explorers = [await enrol(gateway, "skyway", f"E-{n}") for n in range(3)]
    for member in explorers:
        await earn_at(gateway, member, "skyway", "brewbar", "freshmart")
    regular = await enrol(gateway, "brewbar", "R-1")
    await earn_at(gateway, regular, *["brewbar"] * 5)
    short = [await enrol(gateway, "skyway", f"S-{n}") for n in range(3)]
    for member in short:
        await earn_at(gateway, member, "skyway", "brewbar")
    await earn_at(gateway, awarded, "brewbar", "skyway")  # met again: nothing new
    # Two partners each, then merged: together they have been to three.
    retired = await enrol(gateway, "brewbar", "X-1")
    await earn_at(gateway, retired, "brewbar", "freshmart")
    survivor = await enrol(gateway, "skyway", "Y-1")
    await earn_at(gateway, survivor, "skyway", "freshmart")
    identity = IdentityService(gateway.service, gateway.clock)
    proof = Proof("brewbar", "https://idp.test", "x-1", "X-1")
    linked = await identity.link(member_uuid(survivor), proof)
    assert linked.merged == (member_uuid(retired),)
    # More than the default batch of 100: earns at SkyWay for the short ones, in bulk.
    lines = [
        {"member": {"id": short[n % 3]}, "idempotencyKey": f"bulk-{n}", "points": 1}
        for n in range(120)
    ]
    answer = payload(await gateway.gql(BULK, {"input": {"partner": "skyway", "lines": lines}}))
    assert (answer["succeeded"], answer["failed"]) == (120, 0)
    pending = await events(gateway) - logged  # enrolments, earns, the merge...
    assert pending > 120

    await readable(gateway, pending + logged)
    assert await runner.follow(consumer) == pending  # one batch
    for member in explorers:
        assert await badges(gateway, member) == ["Explorer"]
    assert await badges(gateway, regular) == ["BrewBar Regular"]
    for member in short:
        assert await badges(gateway, member) == []
    assert await badges(gateway, awarded) == ["Explorer"]
    assert await badges(gateway, survivor) == ["Explorer"]
    assert await badges(gateway, retired) == ["Explorer"]  # the retired id names the survivor
    assert await bonus_transfers(gateway) == 1 + 3 + 1 + 1
    await readable(gateway, pending + logged + 5)
    assert await runner.follow(consumer) == 5  # the bonuses' own events: no badge

    # The whole log applied again (as after a crash before the position was stored).
    before = {member: await balances(gateway, member) for member in [*explorers, survivor]}
    async with gateway.service.engine.begin() as connection:
        await connection.execute(
            delete(consumer_positions).where(consumer_positions.c.name == consumer.name)
        )
    await runner.settle()
    assert await bonus_transfers(gateway) == 6
    assert await awards(gateway) == 6
    assert {member: await balances(gateway, member) for member in before} == before
    assert await badges(gateway, survivor) == ["Explorer"]
