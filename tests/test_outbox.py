"""The outbox (issue 11, item 3): every posting appends its event in its own transaction,
so an event exists exactly when its posting committed; a replay or a failed posting appends
none. Over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from gateway.events.tables import outbox
from gateway.gifting.service import GiftService
from gateway.holds.service import HoldService
from gateway.ledger.records import MemberRef
from gateway.rewards.catalogue import RewardDraft
from gateway.rewards.service import RewardService
from gateway.settlement.service import SettlementService
from tests.conftest import Gateway
from tests.operations import EARN, ENROL, REDEEM, REVERSE, codes, payload


def raw(global_id: str) -> str:
    """The database id inside a GraphQL ID ("Member:<uuid>", "Transfer:<n>")."""
    return base64.b64decode(global_id).decode().split(":", 1)[1]


async def rows(gateway: Gateway) -> list[Any]:
    """The outbox as stored (committed rows, whether or not the log would hand them out
    yet), in id order."""
    async with gateway.service.engine.connect() as connection:
        return list((await connection.execute(sa.select(outbox).order_by(outbox.c.id))).all())


def member_gid(member: str) -> str:
    return base64.b64encode(f"Member:{member}".encode()).decode()


async def transfer_count(gateway: Gateway) -> int:
    async with gateway.service.engine.connect() as connection:
        return int(await connection.scalar(sa.text("SELECT count(*) FROM transfers")) or 0)


async def enrol(gateway: Gateway, token: str, customer: str = "C-1") -> str:
    variables = {"input": {"partner": "skyway", "partnerCustomerId": customer}}
    result = payload(await gateway.gql(ENROL, variables, token=token))
    assert result["userErrors"] == []
    return raw(result["member"]["id"])


async def earn(gateway: Gateway, token: str, member: str, points: int, key: str) -> Any:
    variables = {"partner": "skyway", "member": {"id": member_gid(member)}, "points": points}
    body = await gateway.gql(EARN, {"input": {**variables, "idempotencyKey": key}}, token=token)
    return payload(body)


async def test_an_earn_appends_its_event_once_and_a_failed_or_replayed_call_none(
    gateway: Gateway,
):
    token = await gateway.partner_token("skyway")
    member = await enrol(gateway, token)
    (joined,) = await rows(gateway)
    assert (joined.type, joined.member_id, joined.partner) == ("member.enrolled", member, "skyway")
    assert joined.data == {"customer_id": "C-1", "via": "partner"}

    earned = await earn(gateway, token, member, 120, "till-1")
    assert earned["userErrors"] == []
    event = (await rows(gateway))[-1]
    assert event.type == "points.earned"
    assert event.transfer_id == int(raw(earned["transfer"]["id"]))
    assert (event.member_id, event.partner, event.points) == (member, "skyway", 120)
    assert event.actor == "partner:skyway"
    assert event.data == {"kind": "earn"}
    assert event.occurred_at.isoformat() == earned["transfer"]["createdAt"].replace("Z", "+00:00")

    # The same call again answers from the first posting and appends nothing.
    replay = await earn(gateway, token, member, 120, "till-1")
    assert replay["idempotentReplay"] is True
    # A redemption the wallet cannot pay for: its transfer was inserted, then rolled back
    # with its legs, and so was nothing else.
    spend = {"partner": "skyway", "member": {"id": member_gid(member)}, "points": 500}
    spend["idempotencyKey"] = "s"
    refused = payload(await gateway.gql(REDEEM, {"input": spend}, token=token))
    assert codes(refused) == ["INSUFFICIENT_POINTS"]
    # An earn for no member.
    unknown = await earn(gateway, token, "00000000-0000-0000-0000-000000000000", 5, "till-2")
    assert codes(unknown) == ["UNKNOWN_MEMBER"]
    assert [row.type for row in await rows(gateway)] == ["member.enrolled", "points.earned"]
    assert await transfer_count(gateway) == 1


async def test_each_posting_records_its_kind_and_a_reversal_what_it_reverses(
    gateway: Gateway,
):
    token = await gateway.partner_token("skyway")
    member = await enrol(gateway, token)
    earned = (await earn(gateway, token, member, 100, "e"))["transfer"]
    spend = {"partner": "skyway", "member": {"id": member_gid(member)}, "points": 30}
    spend["idempotencyKey"] = "r"
    redeemed = payload(await gateway.gql(REDEEM, {"input": spend}, token=token))["transfer"]
    back = {"transferId": earned["id"], "idempotencyKey": "v", "points": 20, "reason": "oops"}
    reversal = payload(await gateway.gql(REVERSE, {"input": back}, token=token))["reversal"]

    found = await rows(gateway)
    assert [(row.type, row.points) for row in found] == [
        ("member.enrolled", None),
        ("points.earned", 100),
        ("points.redeemed", 30),
        ("transfer.reversed", 20),
    ]
    assert found[2].transfer_id == int(raw(redeemed["id"]))
    reversed_ = found[3]
    assert reversed_.transfer_id == int(raw(reversal["id"]))
    assert reversed_.data == {
        "kind": "reversal",
        "reason": "oops",
        "reverses_id": int(raw(earned["id"])),
        "reverses_kind": "earn",
        "reverses_at": found[1].occurred_at.isoformat(),
    }
    # Positions: ids rise in posting order (each call is its own transaction).
    assert [row.id for row in found] == sorted(row.id for row in found)


async def test_holds_gifts_rewards_merges_and_settlement_append_their_events(
    gateway: Gateway,
):
    service = gateway.service
    alice = (await service.enrol("skyway", "A")).member.id
    bob = (await service.enrol("skyway", "B")).member.id
    await service.earn("skyway", MemberRef(id=alice), "e", points=1000)
    holds = HoldService(service)
    hold = (await holds.authorize("skyway", MemberRef(id=alice), 100, "h")).hold
    await holds.capture(hold.id, "c", 60)
    await GiftService(service).gift("skyway", alice, MemberRef(id=bob), 150, "g")
    rewards = RewardService(service)
    draft = RewardDraft(kind="free_product", name="Lounge", price_points=200, value=Decimal(5))
    reward = await rewards.create("skyway", draft)
    receipt = await rewards.redeem(reward.id, MemberRef(id=alice), "skyway", "r")
    await service.uow.write(lambda connection: service.absorb_wallets(connection, bob, alice))
    gateway.clock.now += timedelta(days=1)
    await SettlementService(service).close(gateway.clock.now - timedelta(hours=1), "test")

    found = await rows(gateway)
    assert [(row.type, row.member_id, row.points) for row in found] == [
        ("member.enrolled", alice, None),
        ("member.enrolled", bob, None),
        ("points.earned", alice, 1000),
        ("hold.placed", alice, 100),
        ("hold.captured", alice, 60),
        ("points.gifted", alice, 150),
        ("points.redeemed", alice, 200),
        ("reward.redeemed", alice, 200),
        ("member.merged", alice, 150),
        ("settlement.closed", None, None),
    ]
    # A partial capture gives the rest back in the same transfer.
    assert found[4].data["hold_id"] == hold.id and found[4].data["released_points"] == 40
    redeemed = found[7]
    assert redeemed.transfer_id == found[6].transfer_id
    assert redeemed.data["reward_id"] == reward.id
    assert redeemed.data["redemption_id"] == receipt.id
    assert found[8].data["retired"] == bob
    assert found[9].data["closed_by"] == "test"
