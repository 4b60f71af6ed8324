"""Tiers and challenges follow each posting without rescanning history (issue 11): a tier
upgrade is stored by the earn that reached it, badges come from the events consumer (not
from the earn's request), an earn costs the same statements whatever the member's history,
and a challenge created later counts the earns of its period made before it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from gateway.ledger.records import MemberRef
from gateway.tiers.tables import member_tiers
from partners.config.coalition import DEMO_DIRECTORY
from tests.conftest import Clock, Gateway, start_gateway
from tests.test_api import enrol
from tests.test_challenges import create, earn_at, member_uuid, progress, standing


@pytest.fixture
async def gateway(database_url: str, clock: Clock) -> AsyncIterator[Gateway]:
    async for found in start_gateway(database_url, clock, config_dir=str(DEMO_DIRECTORY)):
        yield found


@contextmanager
def statements(gateway: Gateway) -> Iterator[list[str]]:
    """The SQL statements the gateway sends while the block runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(str(args[2]))

    engine = gateway.service.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_badge_comes_from_the_events_consumer_not_from_the_earn(gateway: Gateway):
    member = await enrol(gateway, "skyway", "SW-1")
    await earn_at(gateway, member, "skyway", "brewbar", "freshmart")
    explorer = (await progress(gateway, member))["explorer"]
    assert explorer["count"] == 3 and explorer["completed"]  # counted by the earns
    assert (await standing(gateway, member))["badges"] == []  # not awarded by them
    await gateway.settle_events()
    await gateway.settle_events()  # a second run finds it done
    badges = (await standing(gateway, member))["badges"]
    assert [(b["name"], b["bonusPoints"]) for b in badges] == [("Explorer", 100)]
    assert badges[0]["bonusTransfer"]["reason"].startswith("Challenge completed")


async def test_a_tier_upgrade_is_stored_by_the_earn_that_reached_it(gateway: Gateway):
    member = await enrol(gateway, "skyway", "SW-2")
    member_id = member_uuid(member)
    await gateway.service.earn("skyway", MemberRef(id=member_id), "k-silver", points=2100)
    async with gateway.service.engine.connect() as connection:
        row = (
            await connection.execute(
                select(member_tiers).where(member_tiers.c.member_id == member_id)
            )
        ).first()
    assert row is not None and row.tier == "silver" and row.since == gateway.clock.now


async def test_an_earn_sends_the_same_statements_whatever_the_history(
    gateway: Gateway, clock: Clock
):
    service = gateway.service
    short, long = (
        member_uuid(await enrol(gateway, "skyway", "SW-3")),
        member_uuid(await enrol(gateway, "skyway", "SW-4")),
    )
    for index in range(60):
        await service.earn("skyway", MemberRef(id=long), f"old-{index}", points=1)
        clock.now += timedelta(days=3)  # history spread over most of the tier window
    await service.earn("skyway", MemberRef(id=short), "old-short", points=1)
    clock.now += timedelta(hours=1)

    async def one(member_id: str, key: str) -> list[str]:
        with statements(gateway) as sent:
            await service.earn("skyway", MemberRef(id=member_id), key, points=5)
        return sent

    assert len(await one(long, "new-long")) == len(await one(short, "new-short"))
    # A year on, the window moves past the long history: that earn reads what left it
    # (once), the next ones are back to the same statements.
    clock.now += timedelta(days=200)
    await one(long, "moved-long")
    await one(short, "moved-short")
    clock.now += timedelta(hours=1)
    assert len(await one(long, "after-long")) == len(await one(short, "after-short"))


async def test_a_challenge_created_later_counts_the_earns_of_its_period(gateway: Gateway):
    member = await enrol(gateway, "brewbar", "BB-1")
    await earn_at(gateway, member, "brewbar", "brewbar")
    created = await create(gateway, None, partner="brewbar")
    assert created["userErrors"] == []
    assert (await progress(gateway, member))["brewbar-three"]["count"] == 2
    await earn_at(gateway, member, "brewbar")
    assert (await progress(gateway, member))["brewbar-three"]["completed"]
    await gateway.settle_events()
    badges = (await standing(gateway, member))["badges"]
    assert "Coffee lover" in [b["name"] for b in badges]
