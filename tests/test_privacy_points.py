"""Erasure and the points: pending points (a purchase inside its return window) go to
breakage with the available ones and never mature afterwards; the referral code goes; a
transfer's columns stay immutable but for the idempotency key, request fingerprint and
reason erasure rewrites."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from gateway.api.graphql.scalars import decode_member_id, encode_id
from gateway.ledger.tables import transfers
from partners.development.reference_faults import BY_KEY, TRANSACTIONS
from partners.development.reference_partner import ReferencePartner
from tests.conftest import Clock, Gateway
from tests.operations import CONVERT, EARN, ENROL, REVERSE, codes, payload
from tests.test_console_settlement import OPEN
from tests.test_gifting import GIFT
from tests.test_imports import earns_csv, run_jobs, upload
from tests.test_privacy import BREAKAGE, ERASE, EXPORT, database_leaks, forfeited
from tests.test_programme import (  # noqa: F401
    APPLY,
    BULK,
    REFERRAL_CODE,
    _programme,
    buy,
    enrol,
    gw,
    wallet,
)
from tests.test_remote_operations import earn as remote_earn
from tests.test_remote_operations import gw as remote  # noqa: F401
from tests.test_remote_operations import member_at_northjet, northjet, served  # noqa: F401
from tests.test_settlement import close, settlement, statement


async def test_pending_points_are_forfeited_and_never_mature(gw: Gateway, clock: Clock):
    member = await enrol(gw, "store", "T-1")
    other = await enrol(gw, "shop", "S-9")
    earned = await buy(gw, member, "R-1", partner="store", amount="30.00")
    assert earned["pending"] is True
    await buy(gw, member, "R-2", partner="shop", amount="25.00")
    code = (await gw.gql(REFERRAL_CODE, {"id": member}))["data"]["member"]["referralCode"]
    shop = await wallet(gw, member, "shop")
    erased = payload(await gw.gql(ERASE, {"id": member}))
    assert codes(erased) == []
    assert forfeited(erased) == {"store": 300, "shop": shop["balance"]}
    assert await wallet(gw, member, "store") == {
        "balance": 0,
        "available": 0,
        "pending": 0,
        "owed": 0,
    }
    breakage = (await gw.gql(BREAKAGE, {"p": "store"}))["data"]["breakage"]["points"]
    assert breakage == 300
    clock.now += timedelta(days=15)
    assert await _programme(gw).mature_due() == 0
    assert (await wallet(gw, member, "store"))["balance"] == 0
    document = payload(await gw.gql(EXPORT, {"id": member}))["data"]
    assert [p["status"] for p in document["purchases"]] == ["forfeited", "available"]
    assert document["referrals"]["code"] is None
    applied = payload(await gw.gql(APPLY, {"input": {"memberId": other, "code": code}}))
    assert codes(applied) == ["UNKNOWN_REFERRAL_CODE"]
    assert await gw.audit() == []


async def test_only_a_transfers_key_fingerprint_and_reason_can_change(gw: Gateway):
    member = await enrol(gw, "shop", "S-1")
    await buy(gw, member, "R-1", partner="shop", amount="10.00")
    uuid = decode_member_id(member)
    mine = transfers.c.member_id == uuid
    async with gw.service.engine.begin() as connection:
        await connection.execute(
            sa.update(transfers)
            .where(mine)
            .values(idempotency_key="k", request_hash="erased:h", reason=None)
        )
    for change in (
        sa.update(transfers).where(mine).values(points=1),
        sa.update(transfers).where(mine).values(idempotency_key="k2", partner="shop"),
        sa.update(transfers).where(mine).values(created_at=transfers.c.created_at),
        sa.update(transfers).where(mine).values(request_hash="h", idempotency_scope="x"),
        sa.delete(transfers).where(mine),
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            async with gw.service.engine.begin() as connection:
                await connection.execute(change)


async def test_nothing_more_reaches_an_erased_member(gateway: Gateway):
    erased, other = [
        payload(
            await gateway.gql(
                ENROL, {"input": {"partner": "skyway", "partnerCustomerId": customer}}
            )
        )["member"]["id"]
        for customer in ("E-1", "O-1")
    ]
    earned = {}
    for member in (erased, other):
        earn = {"partner": "skyway", "member": {"id": member}, "points": 500}
        body = await gateway.gql(EARN, {"input": {**earn, "idempotencyKey": f"k-{member}"}})
        earned[member] = payload(body)["transfer"]["id"]
    assert codes(payload(await gateway.gql(ERASE, {"id": erased}))) == []
    gift = {"partner": "skyway", "receiver": {"id": erased}, "points": 100}
    gift |= {"giver": {"id": other}, "idempotencyKey": "g-1"}
    given = payload(await gateway.gql(GIFT, {"input": gift}))["userErrors"]
    assert [(e["code"], e["field"]) for e in given] == [
        ("MEMBER_ERASED", ["input", "receiver", "id"])
    ]
    back = {"transferId": earned[erased], "idempotencyKey": "rev-1"}
    reversed_ = payload(await gateway.gql(REVERSE, {"input": back}))["userErrors"]
    assert [(e["code"], e["field"]) for e in reversed_] == [
        ("MEMBER_ERASED", ["input", "transferId"])
    ]
    lines = [
        {"member": {"id": member}, "idempotencyKey": f"b-{member}", "points": 10}
        for member in (erased, other)
    ]
    bulk = payload(await gateway.gql(BULK, {"input": {"partner": "skyway", "lines": lines}}))
    assert (bulk["succeeded"], bulk["failed"]) == (1, 1)
    assert [codes(result) for result in bulk["results"]] == [["MEMBER_ERASED"], []]
    assert await gateway.audit() == []


async def test_a_remote_pools_member_is_erased_at_the_gateway(
    remote: Gateway, northjet: ReferencePartner
):
    member = await member_at_northjet(remote, "NJ-1")
    # An operation whose outcome is not known yet: erasure waits for it.
    northjet.fail_next(TRANSACTIONS, "error", times=2)
    northjet.fail_next(BY_KEY, "error")
    unknown = await remote_earn(remote, member, 100, "NJ-RCPT-1", "northjet")
    assert codes(unknown) == ["PARTNER_UNAVAILABLE"]
    waiting = payload(await remote.gql(ERASE, {"id": member}))
    assert (
        codes(waiting) == ["PARTNER_UNAVAILABLE"]
        and "northjet" in waiting["userErrors"][0]["message"]
    )
    remote.clock.now += timedelta(hours=1)
    await remote.service.remote.resume_due()
    assert codes(await remote_earn(remote, member, 40, "NJ-RCPT-2", "brewbar")) == []
    held = await database_leaks(remote, ("NJ-1", "NJ-RCPT"))
    assert held.keys() >= {"enrolments", "remote_operations", "transfers", "outbox"}
    erased = payload(await remote.gql(ERASE, {"id": member}))
    # The gateway's own pool is forfeited; NorthJet's points live in NorthJet's system.
    assert codes(erased) == [] and forfeited(erased) == {"brewbar": 40}
    assert await database_leaks(remote, ("NJ-1", "NJ-RCPT")) == {}
    again = await member_at_northjet(remote, "NJ-1")
    assert again != member
    assert await remote.audit() == []


async def test_settlement_does_not_move(gateway: Gateway, clock: Clock):
    member = payload(
        await gateway.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "S-5"}})
    )["member"]["id"]
    earn = {"partner": "skyway", "member": {"id": member}, "points": 2000}
    assert codes(payload(await gateway.gql(EARN, {"input": {**earn, "idempotencyKey": "e"}}))) == []
    convert = {"memberId": member, "fromPartner": "skyway", "toPartner": "brewbar"}
    for key in ("c-1", "c-2"):
        done = payload(
            await gateway.gql(CONVERT, {"input": {**convert, "points": 400, "idempotencyKey": key}})
        )
        assert codes(done) == []
        if key == "c-1":  # the first conversion in a closed period, the second left open
            clock.now += timedelta(minutes=1)
            closed = await close(gateway, clock.now.isoformat())
            assert codes(closed) == []
    period = closed["period"]["id"]
    statements = [await statement(gateway, period, p) for p in ("skyway", "brewbar")]
    open_before = (await gateway.gql(OPEN))["data"]["openObligations"]
    assert open_before["obligationCount"] > 0
    assert codes(payload(await gateway.gql(ERASE, {"id": member}))) == []
    assert [await statement(gateway, period, p) for p in ("skyway", "brewbar")] == statements
    assert (await gateway.gql(OPEN))["data"]["openObligations"] == open_before
    assert await settlement(gateway).reconcile() == []
    assert await gateway.audit() == []


async def test_a_rejected_import_lines_key_that_later_earned_is_cleared(gateway: Gateway):
    enrolled = await gateway.service.enrol("brewbar", "IMP-C1")
    member = encode_id("Member", enrolled.member.id)
    token = await gateway.partner_token("brewbar")
    for line in ("IMP-C1,RCPT-IMP-1,-1,", "IMP-C1,RCPT-IMP-1,5,"):  # rejected, then corrected
        assert (await upload(gateway, earns_csv([line]), token)).status_code == 202
        await run_jobs(gateway)
    secrets = ("IMP-C1", "RCPT-IMP")
    assert (await database_leaks(gateway, secrets)).keys() >= {"import_rejections", "transfers"}
    assert codes(payload(await gateway.gql(ERASE, {"id": member}))) == []
    assert await database_leaks(gateway, secrets) == {}


async def explorer(gateway: Gateway, customer: str) -> str:
    """A member who earned at SkyWay, BrewBar and FreshMart this month: the Explorer badge
    is due (the badge consumer awards it)."""
    member = payload(
        await gateway.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": customer}})
    )["member"]["id"]
    for partner in ("skyway", "brewbar", "freshmart"):
        earn = {"partner": partner, "member": {"id": member}, "points": 10}
        body = await gateway.gql(
            EARN, {"input": {**earn, "idempotencyKey": f"{customer}-{partner}"}}
        )
        assert codes(payload(body)) == []
    return member


async def test_badges_are_exported_and_an_erased_member_gets_none(sso_programme: Gateway):
    gateway = sso_programme
    member = await explorer(gateway, "X-1")
    await gateway.settle_events()
    document = payload(await gateway.gql(EXPORT, {"id": member}))["data"]
    assert [b["badge"] for b in document["badges"]] == ["Explorer"]
    assert codes(payload(await gateway.gql(ERASE, {"id": member}))) == []
    kept = payload(await gateway.gql(EXPORT, {"id": member}))["data"]
    assert kept["badges"] == document["badges"]
    # Due, but erased before the consumer ran: no badge, no bonus.
    late = await explorer(gateway, "X-2")
    assert codes(payload(await gateway.gql(ERASE, {"id": late}))) == []
    await gateway.settle_events()
    after = payload(await gateway.gql(EXPORT, {"id": late}))["data"]
    assert after["badges"] == [] and {w["balance"] for w in after["wallets"]} == {0}
    assert await gateway.audit() == []
