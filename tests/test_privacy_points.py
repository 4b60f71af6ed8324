"""Erasure and the points: pending points (a purchase inside its return window) go to
breakage with the available ones and never mature afterwards; the referral code goes; a
transfer's columns stay immutable but for the idempotency key erasure replaces."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from gateway.api.graphql.scalars import decode_member_id
from gateway.ledger.tables import transfers
from tests.conftest import Clock, Gateway
from tests.operations import codes, payload
from tests.test_privacy import BREAKAGE, ERASE, EXPORT
from tests.test_programme import (  # noqa: F401
    APPLY,
    REFERRAL_CODE,
    _programme,
    buy,
    enrol,
    gw,
    wallet,
)


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
    assert erased["forfeitedPoints"] == {"store": 300, "shop": shop["balance"]}
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


async def test_only_a_transfers_idempotency_key_can_change(gw: Gateway):
    member = await enrol(gw, "shop", "S-1")
    await buy(gw, member, "R-1", partner="shop", amount="10.00")
    uuid = decode_member_id(member)
    mine = transfers.c.member_id == uuid
    async with gw.service.engine.begin() as connection:
        await connection.execute(sa.update(transfers).where(mine).values(idempotency_key="k"))
    for change in (
        sa.update(transfers).where(mine).values(points=1),
        sa.update(transfers).where(mine).values(idempotency_key="k2", reason="x"),
        sa.delete(transfers).where(mine),
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            async with gw.service.engine.begin() as connection:
                await connection.execute(change)
