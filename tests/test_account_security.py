"""What protects a member's account beyond signing in: linking and unlinking need a recent
sign-in, a newly linked sign-in's second factor waits a day before it counts for step-up,
step-up counts what was spent in the last day, unlinking holds, members' idempotency keys
live apart from the partner's, and customer ids cannot be probed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import Gateway
from tests.operations import EARN, ENROL, REDEEM, codes, payload
from tests.sso import CLOCK, Brands, authorize, sign_in
from tests.test_sign_in import COMPLETE_LINK, START_LINK, UNLINK, arrive, begin

ME = "{ me { id wallets { partner { slug } balance } identities { id provider } } }"


async def me(gateway: Gateway, token: str) -> dict[str, Any]:
    found: dict[str, Any] = (await gateway.gql(ME, token=token))["data"]["me"]
    return found


def balance(account: dict[str, Any], partner: str) -> int:
    return next(w["balance"] for w in account["wallets"] if w["partner"]["slug"] == partner)


async def give(gateway: Gateway, member_id: str, partner: str, points: int) -> None:
    input = {"partner": partner, "member": {"id": member_id}, "points": points}
    body = await gateway.gql(EARN, {"input": {**input, "idempotencyKey": f"give-{member_id}"}})
    assert codes(payload(body)) == []


async def redeem(
    gateway: Gateway, token: str, member_id: str, points: int, key: str, partner: str = "skyway"
) -> list[str]:
    input = {"partner": partner, "member": {"id": member_id}, "points": points}
    body = await gateway.gql(REDEEM, {"input": {**input, "idempotencyKey": key}}, token=token)
    return codes(payload(body))


def later(minutes: float) -> None:
    CLOCK.now += timedelta(minutes=minutes)


# Linking and unlinking need a recent sign-in


async def test_an_old_token_cannot_start_a_link(sso: Gateway, brands: Brands):
    token = brands.token("skyway", "victim")
    await me(sso, token)
    later(11)
    old = brands.token(
        "skyway", "victim", auth_time=int((CLOCK.now - timedelta(minutes=11)).timestamp())
    )
    started = payload(await sso.gql(START_LINK, token=old))
    assert codes(started) == ["REAUTHENTICATION_REQUIRED"] and started["nonce"] is None
    fresh = brands.token("skyway", "victim")
    assert codes(payload(await sso.gql(START_LINK, token=fresh))) == []


async def test_an_old_token_cannot_unlink(sso: Gateway, brands: Brands):
    skyway = brands.token("skyway", "bob")
    nonce = payload(await sso.gql(START_LINK, token=skyway))["nonce"]
    linked = payload(
        await sso.gql(
            COMPLETE_LINK, {"token": brands.token("brewbar", "bob", nonce=nonce)}, token=skyway
        )
    )
    assert codes(linked) == []
    brewbar_id = next(
        i["id"] for i in (await me(sso, skyway))["identities"] if i["provider"] == "brewbar"
    )
    later(11)
    stale = brands.token(
        "skyway", "bob", auth_time=int((CLOCK.now - timedelta(minutes=11)).timestamp())
    )
    refused = payload(await sso.gql(UNLINK, {"id": brewbar_id}, token=stale))
    assert codes(refused) == ["REAUTHENTICATION_REQUIRED"]
    assert len((await me(sso, skyway))["identities"]) == 2


async def test_an_old_browser_session_cannot_start_a_link(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    later(11)
    refused = await sso.client.get("/auth/link/brewbar")
    assert refused.status_code == 401 and "Sign in again" in refused.text


async def test_a_browser_link_asks_the_provider_for_a_fresh_sign_in(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    query = parse_qs(urlsplit(await begin(sso, "/auth/link/brewbar")).query)
    assert query["prompt"] == ["login"] and query["max_age"] == ["0"]


async def test_a_link_answered_with_an_old_sign_in_is_refused(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    authorize_url = await begin(sso, "/auth/link/brewbar")
    # The provider answers with a sign-in from before the link began (as a provider
    # would that kept an old session open and ignored max_age).
    CLOCK.now -= timedelta(minutes=2)
    callback = await authorize(authorize_url, "bob")
    refused = await arrive(sso, callback)
    assert refused.status_code == 400 and "fresh sign-in" in refused.text


# A stolen session cannot link the thief's second factor and spend at once


async def test_a_newly_linked_second_factor_does_not_count_for_a_day(sso: Gateway, brands: Brands):
    victim = brands.token("skyway", "victim")
    member_id = (await me(sso, victim))["id"]
    await give(sso, member_id, "skyway", 20000)
    assert await redeem(sso, victim, member_id, 6000, "v-1") == ["STEP_UP_REQUIRED"]
    # With the victim's ordinary token, the thief links their own MFA-capable sign-in.
    nonce = payload(await sso.gql(START_LINK, token=victim))["nonce"]
    thief = brands.token("brewbar", "thief", nonce=nonce)
    assert codes(payload(await sso.gql(COMPLETE_LINK, {"token": thief}, token=victim))) == []
    with_mfa = brands.token("brewbar", "thief", amr=["pwd", "otp"])
    assert await redeem(sso, with_mfa, member_id, 6000, "t-1") == ["STEP_UP_REQUIRED"]
    assert balance(await me(sso, victim), "skyway") == 20000
    later(24 * 60 + 1)
    with_mfa = brands.token("brewbar", "thief", amr=["pwd", "otp"])
    assert await redeem(sso, with_mfa, member_id, 6000, "t-2") == []


async def test_the_first_sign_ins_second_factor_counts_at_once(sso: Gateway, brands: Brands):
    token = brands.token("skyway", "carol", acr="mfa")
    member_id = (await me(sso, token))["id"]
    await give(sso, member_id, "skyway", 7000)
    assert await redeem(sso, token, member_id, 6000, "c-1") == []


# Step-up counts what was spent in the last day


async def test_splitting_a_redemption_does_not_avoid_step_up(sso: Gateway, brands: Brands):
    token = brands.token("skyway", "dave")
    member_id = (await me(sso, token))["id"]
    await give(sso, member_id, "skyway", 20000)
    assert await redeem(sso, token, member_id, 3000, "d-1") == []
    assert await redeem(sso, token, member_id, 2000, "d-2") == []
    assert await redeem(sso, token, member_id, 1, "d-3") == ["STEP_UP_REQUIRED"]
    # A retry of an earlier redemption still answers as the first time.
    assert await redeem(sso, token, member_id, 3000, "d-1") == []
    assert balance(await me(sso, token), "skyway") == 15000
    later(24 * 60 + 1)
    token = brands.token("skyway", "dave")
    assert await redeem(sso, token, member_id, 5000, "d-4") == []


# Unlinking holds


async def test_an_unlinked_sign_in_with_a_customer_id_starts_a_new_member(
    sso: Gateway, brands: Brands
):
    enrolled = payload(
        await sso.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "SKY-1001"}})
    )
    alice = enrolled["member"]["id"]
    await give(sso, alice, "skyway", 500)
    skyway = brands.token("skyway", "alice")  # carries skyway_member SKY-1001
    assert (await me(sso, skyway))["id"] == alice
    nonce = payload(await sso.gql(START_LINK, token=skyway))["nonce"]
    brewbar = brands.token("brewbar", "alice-2", nonce=nonce)
    assert codes(payload(await sso.gql(COMPLETE_LINK, {"token": brewbar}, token=skyway))) == []
    account = await me(sso, brewbar)
    skyway_id = next(i["id"] for i in account["identities"] if i["provider"] == "skyway")
    assert codes(payload(await sso.gql(UNLINK, {"id": skyway_id}, token=brewbar))) == []
    # The SkyWay login (perhaps shared, perhaps stolen) no longer reaches Alice's points.
    again = await me(sso, brands.token("skyway", "alice"))
    assert again["id"] != alice and balance(again, "skyway") == 0
    assert balance(await me(sso, brewbar), "skyway") == 500
    by_customer = await sso.gql(
        'query { memberByEnrolment(partner: "skyway", partnerCustomerId: "SKY-1001") { id } }'
    )
    assert by_customer["data"]["memberByEnrolment"]["id"] == alice


# Members' idempotency keys live apart from the partner's


async def test_a_member_cannot_take_or_probe_a_partners_till_numbers(sso: Gateway, brands: Brands):
    token = brands.token("skyway", "erin")
    member_id = (await me(sso, token))["id"]
    await give(sso, member_id, "skyway", 100)
    customer = payload(
        await sso.gql(ENROL, {"input": {"partner": "skyway", "partnerCustomerId": "SKY-7"}})
    )["member"]["id"]
    await give(sso, customer, "skyway", 100)
    assert await redeem(sso, token, member_id, 1, "till-1") == []
    skyway_app = await sso.partner_token("skyway")
    assert await redeem(sso, skyway_app, customer, 1, "till-1") == []
    # A key the partner used is as free for the member as any other.
    assert await redeem(sso, token, member_id, 1000, "till-1-partner") == ["INSUFFICIENT_POINTS"]
