"""Gifting over HTTP, on SQLite and PostgreSQL: one GIFT transfer between two wallets of a
pool, the partner's limits (also under concurrent gifts), who may gift, retries.

Most tests run the coalition of ``tests/test_expiry.py`` (SkyWay: 100 to 5,000 miles a
gift, 10,000 a month; BrewBar: 10 to 200 stars, 500 a month; FreshMart: no gifting;
Harbour: points in its own system). Members' own gifts use the demo's sign-in providers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.gifting.service import GiftService
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.records import MemberRef
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ERRORS, REVERSE, TRANSFER_FIELDS, codes, payload
from tests.sso import Brands
from tests.test_expiry import earned, enrol, expiring, history, own_id, wallet, write_config

GIFT = f"""
mutation($input: GiftPointsInput!) {{
  giftPoints(input: $input) {{
    transfer {{ {TRANSFER_FIELDS} }}
    wallet {{ balance partner {{ slug }} }}
    idempotentReplay {ERRORS}
  }}
}}"""
ME = "{ me { id } }"


@pytest.fixture(scope="module")
def gift_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("gift-config"))


@pytest.fixture
async def gw(database_url: str, clock: Clock, gift_config: Path) -> AsyncIterator[Gateway]:
    async for gateway in start_gateway(database_url, clock, config_dir=gift_config):
        yield gateway


async def gift(
    gateway: Gateway,
    receiver: dict[str, str],
    points: int,
    key: str,
    giver: str | dict[str, str] | None = None,
    partner: str = "skyway",
    token: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "partner": partner,
        "receiver": receiver,
        "points": points,
        "idempotencyKey": key,
    }
    if giver is not None:
        data["giver"] = {"id": giver} if isinstance(giver, str) else giver
    if message is not None:
        data["message"] = message
    return payload(await gateway.gql(GIFT, {"input": data}, token=token))


async def pair(gateway: Gateway, points: int = 20_000, partner: str = "skyway") -> tuple[str, str]:
    giver = await enrol(gateway, "GIVER", partner)
    receiver = await enrol(gateway, "RECEIVER", partner)
    await earned(gateway, giver, points, "E-giver", partner)
    return giver, receiver


async def balance(gateway: Gateway, member: str, partner: str = "skyway") -> int:
    found: int = (await wallet(gateway, member, partner))["balance"]
    return found


# A gift


async def test_a_gift_moves_points_between_two_wallets_in_one_transfer(gw: Gateway, clock: Clock):
    giver, receiver = await pair(gw, 1000)
    result = await gift(gw, {"id": receiver}, 300, "G-1", giver, message="Happy birthday!")
    assert result["userErrors"] == [] and result["idempotentReplay"] is False
    transfer = result["transfer"]
    assert transfer["kind"] == "GIFT" and transfer["points"] == 300
    assert transfer["member"] == {"id": giver} and transfer["reason"] == "Happy birthday!"
    assert sorted(
        (leg["account"], leg["amount"], leg["balanceAfter"]) for leg in transfer["legs"]
    ) == [
        ("WALLET", -300, 700),
        ("WALLET", 300, 300),
    ]
    assert result["wallet"] == {"balance": 700, "partner": {"slug": "skyway"}}
    assert await balance(gw, giver) == 700 and await balance(gw, receiver) == 300
    # Both see it in their history.
    assert [t["id"] for t in await history(gw, receiver)] == [transfer["id"]]
    assert transfer["id"] in [t["id"] for t in await history(gw, giver)]
    # For the receiver, the gift is new points: they expire 36 months from now.
    assert await expiring(gw, receiver) == [(300, "2029-06-01T12:00:00+00:00")]


async def test_a_retry_answers_as_the_first_call_and_a_changed_one_is_refused(gw: Gateway):
    giver, receiver = await pair(gw, 1000)
    first = await gift(gw, {"id": receiver}, 300, "G-1", giver)
    again = await gift(gw, {"id": receiver}, 300, "G-1", giver)
    assert again["idempotentReplay"] is True
    assert again["transfer"]["id"] == first["transfer"]["id"]
    assert again["wallet"] == first["wallet"]
    assert codes(await gift(gw, {"id": receiver}, 301, "G-1", giver)) == ["IDEMPOTENCY_KEY_REUSED"]
    assert await balance(gw, giver) == 700


async def test_the_receiver_by_the_partners_customer_id(gw: Gateway):
    giver, receiver = await pair(gw, 1000)
    result = await gift(gw, {"partnerCustomerId": "RECEIVER"}, 150, "G-1", giver)
    assert result["userErrors"] == []
    assert await balance(gw, receiver) == 150
    unknown = await gift(gw, {"partnerCustomerId": "NOBODY"}, 150, "G-2", giver)
    assert codes(unknown) == ["UNKNOWN_MEMBER"]
    assert unknown["userErrors"][0]["field"] == ["input", "receiver", "partnerCustomerId"]
    by_id = await gift(gw, {"id": "TWVtYmVyOm5vcGU="}, 150, "G-3", giver)
    assert codes(by_id) == ["UNKNOWN_MEMBER"]
    assert by_id["userErrors"][0]["field"] == ["input", "receiver", "id"]


# Refused


async def test_a_gift_to_oneself_is_same_member(gw: Gateway):
    giver, _ = await pair(gw, 1000)
    assert codes(await gift(gw, {"id": giver}, 200, "G-1", giver)) == ["SAME_MEMBER"]
    assert codes(await gift(gw, {"partnerCustomerId": "GIVER"}, 200, "G-2", giver)) == [
        "SAME_MEMBER"
    ]
    assert await balance(gw, giver) == 1000


async def test_more_than_the_wallet_holds_is_insufficient_points(gw: Gateway):
    giver, receiver = await pair(gw, 400)
    result = await gift(gw, {"id": receiver}, 500, "G-1", giver)
    assert codes(result) == ["INSUFFICIENT_POINTS"]
    assert await balance(gw, giver) == 400 and await balance(gw, receiver) == 0


async def test_limits_per_gift(gw: Gateway):
    giver, receiver = await pair(gw)
    assert codes(await gift(gw, {"id": receiver}, 99, "G-1", giver)) == ["AMOUNT_TOO_SMALL"]
    too_much = await gift(gw, {"id": receiver}, 5001, "G-2", giver)
    assert codes(too_much) == ["GIFT_LIMIT_EXCEEDED"]
    assert too_much["userErrors"][0]["field"] == ["input", "points"]
    assert "at most 5000" in too_much["userErrors"][0]["message"]
    assert codes(await gift(gw, {"id": receiver}, 0, "G-3", giver)) == ["AMOUNT_NOT_POSITIVE"]
    assert (await gift(gw, {"id": receiver}, 5000, "G-4", giver))["userErrors"] == []


async def test_the_monthly_limit_per_giver(gw: Gateway, clock: Clock):
    giver, receiver = await pair(gw)
    other = await enrol(gw, "OTHER")
    assert (await gift(gw, {"id": receiver}, 5000, "G-1", giver))["userErrors"] == []
    assert (await gift(gw, {"id": other}, 4000, "G-2", giver))["userErrors"] == []
    over = await gift(gw, {"id": receiver}, 1001, "G-3", giver)
    assert codes(over) == ["GIFT_LIMIT_EXCEEDED"]
    assert "at most 1000 more this month" in over["userErrors"][0]["message"]
    assert (await gift(gw, {"id": receiver}, 1000, "G-4", giver))["userErrors"] == []
    assert codes(await gift(gw, {"id": receiver}, 100, "G-5", giver)) == ["GIFT_LIMIT_EXCEEDED"]
    # The receiver's own gifts have their own limit.
    assert (await gift(gw, {"id": other}, 5000, "G-6", receiver))["userErrors"] == []
    # A new calendar month (UTC), a new limit.
    clock.now = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
    assert (await gift(gw, {"id": receiver}, 100, "G-7", giver))["userErrors"] == []
    assert await GiftService(gw.service).given_this_month(own_id(giver), "skyway") == 100


async def test_a_partner_without_gifting_and_a_remote_pool_refuse(gw: Gateway):
    giver, receiver = await pair(gw, 1000, "freshmart")
    result = await gift(gw, {"id": receiver}, 100, "G-1", giver, partner="freshmart")
    assert codes(result) == ["GIFT_LIMIT_EXCEEDED"]
    assert result["userErrors"][0]["field"] == ["input", "partner"]
    assert "does not let members gift points" in result["userErrors"][0]["message"]
    for customer in ("HH-1", "HH-2"):  # hotel guests
        gw.app.state.reference_partners["harbour"].add_member(customer)
    guest = await enrol(gw, "HH-1", "harbour")
    friend = await enrol(gw, "HH-2", "harbour")
    await earned(gw, guest, 50, "E-hh", "harbour")
    remote = await gift(gw, {"id": friend}, 10, "G-2", guest, partner="harbour")
    assert codes(remote) == ["NOT_AVAILABLE_AT_REMOTE_POOL"]
    assert codes(await gift(gw, {"id": friend}, 10, "G-3", guest, partner="nope")) == [
        "UNKNOWN_PARTNER"
    ]


async def test_bad_input_is_a_typed_error(gw: Gateway):
    giver, receiver = await pair(gw, 1000)
    result = await gift(gw, {"id": receiver}, 200, "G-1", giver, message="x" * 501)
    assert codes(result) == ["INVALID_INPUT"]
    assert codes(await gift(gw, {"id": receiver}, 200, "G\x01", giver)) == ["INVALID_INPUT"]
    assert codes(await gift(gw, {"id": receiver}, 200, "", giver)) == ["INVALID_INPUT"]
    # An operator names the giver.
    missing = await gift(gw, {"id": receiver}, 200, "G-2")
    assert codes(missing) == ["INVALID_INPUT"] and missing["userErrors"][0]["field"] == [
        "input",
        "giver",
    ]
    assert await balance(gw, giver) == 1000


async def test_a_gift_cannot_be_reversed(gw: Gateway):
    giver, receiver = await pair(gw, 1000)
    done = await gift(gw, {"id": receiver}, 300, "G-1", giver)
    variables = {"input": {"transferId": done["transfer"]["id"], "idempotencyKey": "X"}}
    assert codes(payload(await gw.gql(REVERSE, variables))) == ["NOT_REVERSIBLE"]
    variables["input"]["points"] = 100
    assert codes(payload(await gw.gql(REVERSE, variables))) == ["NOT_REVERSIBLE"]
    assert await balance(gw, giver) == 700 and await balance(gw, receiver) == 300


# At once


async def test_concurrent_gifts_keep_the_monthly_limit(gw: Gateway):
    giver, receiver = await pair(gw)
    results = await asyncio.gather(
        *(gift(gw, {"id": receiver}, 1500, f"G-{index}", giver) for index in range(10))
    )
    done = [r for r in results if r["userErrors"] == []]
    refused = [codes(r) for r in results if r["userErrors"]]
    assert len(done) == 6  # 9,000 of the 10,000 a month
    assert refused == [["GIFT_LIMIT_EXCEEDED"]] * 4
    assert await balance(gw, giver) == 11_000 and await balance(gw, receiver) == 9000


async def test_concurrent_retries_post_one_gift(gw: Gateway):
    giver, receiver = await pair(gw)
    results = await asyncio.gather(
        *(gift(gw, {"id": receiver}, 2500, "G-same", giver) for _ in range(6))
    )
    assert {r["transfer"]["id"] for r in results} == {results[0]["transfer"]["id"]}
    assert sorted(r["idempotentReplay"] for r in results) == [False] + [True] * 5
    assert await balance(gw, giver) == 17_500


async def test_members_gifting_each_other_at_once_do_not_deadlock(gw: Gateway):
    first, second = await pair(gw)
    await earned(gw, second, 20_000, "E-second")
    results = await asyncio.gather(
        *(
            gift(gw, {"id": b}, 100, f"G-{index}-{b[-6:]}", a)
            for index in range(8)
            for a, b in ((first, second), (second, first))
        )
    )
    assert all(r["userErrors"] == [] for r in results)
    assert await balance(gw, first) == await balance(gw, second) == 20_000


async def test_the_service_api(gw: Gateway):
    giver, receiver = await pair(gw, 1000)
    service = GiftService(gw.service)
    posting = await service.gift(
        "skyway", own_id(giver), MemberRef(partner="skyway", customer_id="RECEIVER"), 200, "S-1"
    )
    assert posting.transfer.kind.value == "gift" and not posting.replayed
    assert [leg.member_id for leg in posting.legs] == [own_id(giver), own_id(receiver)]
    assert service.limits("skyway").max_points_per_month == 10_000
    again = await service.gift(
        "skyway", own_id(giver), MemberRef(partner="skyway", customer_id="RECEIVER"), 200, "S-1"
    )
    assert again.replayed and again.transfer.id == posting.transfer.id
    with pytest.raises(DomainError) as raised:
        await service.gift("skyway", own_id(giver), MemberRef(id=own_id(receiver)), 200, "S-1")
    assert raised.value.code is ErrorCode.IDEMPOTENCY_KEY_REUSED


# Who may gift


async def test_a_partners_app_gifts_for_its_customers_in_its_own_pool(gw: Gateway):
    giver, receiver = await pair(gw, 1000)
    skyway = await gw.partner_token("skyway")
    by_customer = await gift(
        gw,
        {"partnerCustomerId": "RECEIVER"},
        200,
        "G-1",
        {"partnerCustomerId": "GIVER"},
        token=skyway,
    )
    assert by_customer["userErrors"] == [] and by_customer["wallet"]["balance"] == 800
    brewbar = await gw.partner_token("brewbar")
    other = await gift(gw, {"id": receiver}, 200, "G-2", giver, token=brewbar)
    assert codes(other) == ["ACCESS_DENIED"]
    no_scope = await gw.partner_token("skyway", "members:read points:earn")
    assert codes(await gift(gw, {"id": receiver}, 200, "G-3", giver, token=no_scope)) == [
        "ACCESS_DENIED"
    ]
    # Members the partner does not know are no members to it.
    stranger = await enrol(gw, "BB-9", "brewbar")
    unseen = await gift(gw, {"id": stranger}, 200, "G-4", giver, token=skyway)
    assert codes(unseen) == ["UNKNOWN_MEMBER"]
    assert unseen["userErrors"][0]["field"] == ["input", "receiver", "id"]
    unseen_giver = await gift(gw, {"id": receiver}, 200, "G-5", stranger, token=skyway)
    assert codes(unseen_giver) == ["UNKNOWN_MEMBER"]
    assert unseen_giver["userErrors"][0]["field"] == ["input", "giver", "id"]
    assert codes(await gift(gw, {"id": receiver}, 200, "G-6", token=skyway)) == ["INVALID_INPUT"]
    assert await balance(gw, giver) == 800


async def signed_in(sso: Gateway, brands: Brands, subject: str, points: int) -> tuple[str, str]:
    token = brands.token("skyway", subject)
    member: str = (await sso.gql(ME, token=token))["data"]["me"]["id"]
    if points:
        await earned(sso, member, points, f"E-{subject}")
    return member, token


async def test_a_member_gifts_their_own_points(sso: Gateway, brands: Brands):
    bob, token = await signed_in(sso, brands, "bob", 3000)
    before = await balance(sso, bob)
    friend = await enrol(sso, "FRIEND-1")
    start = await balance(sso, friend)
    result = await gift(sso, {"id": friend}, 500, "M-1", token=token)
    assert result["userErrors"] == [], result
    assert result["wallet"]["balance"] == before - 500
    assert result["transfer"]["member"] == {"id": bob}
    # The giver sees their own balance on the gift, not the receiver's.
    legs = {leg["amount"]: leg["balanceAfter"] for leg in result["transfer"]["legs"]}
    assert legs == {-500: before - 500, 500: None}
    named = await gift(sso, {"partnerCustomerId": "FRIEND-1"}, 500, "M-2", bob, token=token)
    assert named["userErrors"] == []
    # The member's keys live apart from the partner's: an operator's "M-1" is another call.
    assert (await gift(sso, {"id": friend}, 100, "M-1", bob))["idempotentReplay"] is False
    assert await balance(sso, friend) == start + 1100


async def test_a_member_cannot_gift_someone_elses_points(sso: Gateway, brands: Brands):
    _, token = await signed_in(sso, brands, "bob", 0)
    other = await enrol(sso, "OTHER-1")
    await earned(sso, other, 1000, "E-other")
    before = await balance(sso, other)
    friend = await enrol(sso, "FRIEND-2")
    result = await gift(sso, {"id": friend}, 500, "M-1", other, token=token)
    assert codes(result) == ["ACCESS_DENIED"]
    assert await balance(sso, other) == before


async def test_gifts_count_towards_step_up(sso: Gateway, brands: Brands):
    """SkyWay asks for a second factor above 5,000 miles spent in 24 hours."""
    bob, token = await signed_in(sso, brands, "bob", 20_000)
    friend = await enrol(sso, "FRIEND-3")
    start = await balance(sso, friend)
    assert (await gift(sso, {"id": friend}, 3000, "M-1", token=token))["userErrors"] == []
    again = await gift(sso, {"id": friend}, 3000, "M-2", token=token)
    assert codes(again) == ["STEP_UP_REQUIRED"]
    # A retry of the first is not counted twice.
    assert (await gift(sso, {"id": friend}, 3000, "M-1", token=token))["idempotentReplay"]
    with_mfa = brands.token("skyway", "bob", acr="mfa")
    assert (await gift(sso, {"id": friend}, 3000, "M-2", token=with_mfa))["userErrors"] == []
    assert await balance(sso, friend) == start + 6000
    assert await balance(sso, bob) >= 0


async def test_the_demo_limits_apply(sso: Gateway, brands: Brands):
    bob, token = await signed_in(sso, brands, "bob", 20_000)
    friend = await enrol(sso, "FRIEND-4")
    assert codes(await gift(sso, {"id": friend}, 5001, "M-1", token=token)) == [
        "GIFT_LIMIT_EXCEEDED"
    ]
    assert codes(await gift(sso, {"id": friend}, 99, "M-2", token=token)) == ["AMOUNT_TOO_SMALL"]
    harbour = await gift(sso, {"id": friend}, 100, "M-3", partner="harbour", token=token)
    assert codes(harbour) == ["NOT_AVAILABLE_AT_REMOTE_POOL"]
    assert (await gift(sso, {"id": bob}, 100, "M-4", token=token))["userErrors"][0]["code"] == (
        "SAME_MEMBER"
    )
