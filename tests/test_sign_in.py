"""The browser flow against real providers on loopback: sign in, link, merge, unlink,
log out, and the flow's defences; linking from native apps; step-up for browser sessions."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from gateway.api.graphql.scalars import identity_id
from gateway.kernel.sealing import new_master_key
from tests.conftest import Gateway
from tests.operations import EARN, ENROL, REDEEM, codes, payload
from tests.sso import (
    CLOCK,
    Brands,
    as_browser,
    authorize,
    form_fields,
    query_of,
    sign_in,
    start_sso,
)

ME = "{ me { id wallets { partner { slug } balance } identities { provider subject } } }"
ME_ID = "{ me { id } }"
MY_IDENTITIES = "{ me { identities { id provider subject } } }"
MY_HISTORY = "{ me { transfers(first: 50) { edges { node { kind points partner { slug } } } } } }"
MEMBER_ID = "query($id: ID!) { member(id: $id) { id } }"
BY_ENROLMENT = """
query($partner: String!, $customer: String!) {
  memberByEnrolment(partner: $partner, partnerCustomerId: $customer) { id }
}"""
UNLINK = """
mutation($id: ID!) {
  unlinkIdentity(input: {identityId: $id}) {
    member { identities { provider subject } } userErrors { code field }
  }
}"""
START_LINK = "mutation { startAccountLink { nonce expiresAt userErrors { code } } }"
COMPLETE_LINK = """
mutation($token: String!) {
  completeAccountLink(input: {idToken: $token}) {
    member { id identities { provider subject } }
    mergedMemberIds alreadyLinked userErrors { code field }
  }
}"""
SESSION_COOKIE = "coalition_session"
FLOW_COOKIE = "coalition_flow"


# Operator calls


async def enrol(gateway: Gateway, partner: str, customer_id: str) -> str:
    body = await gateway.gql(
        ENROL, {"input": {"partner": partner, "partnerCustomerId": customer_id}}
    )
    member_id: str = payload(body)["member"]["id"]
    return member_id


async def earn(gateway: Gateway, partner: str, member_id: str, points: int, key: str) -> None:
    body = await gateway.gql(
        EARN,
        {
            "input": {
                "partner": partner,
                "member": {"id": member_id},
                "points": points,
                "idempotencyKey": key,
            }
        },
    )
    assert codes(payload(body)) == []


async def member_seen_by_operator(gateway: Gateway, member_id: str) -> str:
    found: str = (await gateway.gql(MEMBER_ID, {"id": member_id}))["data"]["member"]["id"]
    return found


# The member's side: a browser session, or a provider's bearer token


async def browser_gql(
    gateway: Gateway, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A GraphQL call with the session cookie only; asserts it was authenticated."""
    response = await as_browser(gateway, query, variables)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


async def my_account(gateway: Gateway) -> dict[str, Any]:
    me: dict[str, Any] = (await browser_gql(gateway, ME))["data"]["me"]
    return me


async def my_id(gateway: Gateway) -> str:
    return str((await my_account(gateway))["id"])


def balances(me: dict[str, Any]) -> dict[str, int]:
    return {w["partner"]["slug"]: w["balance"] for w in me["wallets"]}


def nodes(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in edges]


def identities(me: dict[str, Any]) -> set[tuple[str, str]]:
    return {(i["provider"], i["subject"]) for i in me["identities"]}


async def my_identity_ids(gateway: Gateway) -> dict[str, str]:
    """Provider -> Identity.id of the browser's member."""
    found = (await browser_gql(gateway, MY_IDENTITIES))["data"]["me"]["identities"]
    return {i["provider"]: i["id"] for i in found}


async def bearer_account(gateway: Gateway, token: str) -> dict[str, Any]:
    """`me` as a provider's bearer token reaches it."""
    me: dict[str, Any] = (await gateway.gql(ME, token=token))["data"]["me"]
    return me


async def bearer_member(gateway: Gateway, token: str) -> str:
    return str((await bearer_account(gateway, token))["id"])


async def with_cookie(gateway: Gateway, session: str) -> httpx.Response:
    """`{ me { id } }` sent with exactly this session cookie value, nothing else."""
    return await gateway.client.post(
        "/graphql",
        json={"query": ME_ID},
        headers={
            "accept": "application/graphql-response+json",
            "cookie": f"{SESSION_COOKIE}={session}",
        },
    )


@asynccontextmanager
async def other_browser(gateway: Gateway) -> AsyncIterator[Gateway]:
    """The same gateway reached from another browser: its own, empty cookie jar."""
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield Gateway(gateway.app, client, gateway.clock)


# The browser flow, step by step


async def begin(gateway: Gateway, path: str) -> str:
    """Open a gateway sign-in URL; the provider's authorization URL it redirects to."""
    response = await gateway.client.get(path)
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def arrive(gateway: Gateway, callback: str) -> httpx.Response:
    """The browser follows the provider's redirect back to the gateway."""
    parts = urlsplit(callback)
    assert parts.netloc == "gateway", callback
    return await gateway.client.get(f"{parts.path}?{parts.query}")


async def deny(authorize_url: str) -> str:
    """Act as the person at the provider: press Deny; return the callback URL."""
    async with httpx.AsyncClient() as person:
        page = await person.get(authorize_url)
        fields = {k: html.unescape(v) for k, v in form_fields(page.text).items()}
        answer = await person.post(authorize_url.split("?")[0], data={**fields, "deny": "1"})
        assert answer.status_code == 303, answer.text
        return answer.headers["location"]


def with_params(url: str, **changes: str) -> str:
    """``url`` with some query parameters replaced."""
    parts = urlsplit(url)
    return parts._replace(query=urlencode({**query_of(url), **changes})).geturl()


def cookie_attributes(response: httpx.Response, name: str) -> dict[str, str]:
    """The attributes of the Set-Cookie for ``name``, lower-cased (flags map to '')."""
    for line in response.headers.get_list("set-cookie"):
        if line.startswith(f"{name}="):
            attributes = [part.strip() for part in line.split(";")[1:]]
            return {key.lower(): value for key, _, value in (a.partition("=") for a in attributes)}
    raise AssertionError(f"no Set-Cookie for {name}: {response.headers}")


def assert_refused(response: httpx.Response, because: str) -> None:
    """The gateway answered with its 400 page, naming the reason."""
    assert response.status_code == 400, response.text
    assert because in html.unescape(response.text), response.text


def sets_session(response: httpx.Response) -> bool:
    return any(
        line.startswith(f"{SESSION_COOKIE}=") and not line.startswith(f'{SESSION_COOKIE}="";')
        for line in response.headers.get_list("set-cookie")
    )


async def has_session(gateway: Gateway) -> bool:
    response: httpx.Response = await as_browser(gateway, ME_ID)
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


# 1. Signing in


async def test_first_sign_in_creates_a_member_and_a_session(sso: Gateway):
    result = await sign_in(sso, "skyway", "bob")
    assert result.response.status_code == 303
    assert result.response.headers["location"] == "/graphql"
    cookie = result.response.headers["set-cookie"]
    assert "coalition_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    me = (await as_browser(sso, ME)).json()["data"]["me"]
    assert me["identities"] == [{"provider": "skyway", "subject": "bob"}]


async def test_signing_in_again_reaches_the_same_member(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    first = await my_id(sso)
    async with other_browser(sso) as laptop:
        await sign_in(laptop, "skyway", "bob")
        assert await my_id(laptop) == first


async def test_the_same_subject_at_another_brand_is_another_member(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    async with other_browser(sso) as laptop:
        await sign_in(laptop, "brewbar", "bob")
        assert await my_id(laptop) != await my_id(sso)


async def test_first_sign_in_with_a_customer_id_claim_reaches_the_enrolled_member(sso: Gateway):
    enrolled = await enrol(sso, "skyway", "SKY-1001")
    await earn(sso, "skyway", enrolled, 840, "receipt-1")
    await sign_in(sso, "skyway", "alice")  # her ID token carries skyway_member=SKY-1001
    me = await my_account(sso)
    assert me["id"] == enrolled
    assert balances(me)["skyway"] == 840


# 2. The session cookie


async def test_session_cookie_is_http_only_lax_site_wide_and_not_secure_in_development(
    sso: Gateway,
):
    result = await sign_in(sso, "skyway", "bob")
    attributes = cookie_attributes(result.response, SESSION_COOKIE)
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "lax"
    assert attributes["path"] == "/"
    assert "secure" not in attributes


@pytest.fixture
async def production_sso(database_url: str, brands: Brands) -> AsyncIterator[Gateway]:
    """A production gateway reached over https (a browser sends Secure cookies only so)."""
    async for gateway in start_sso(
        database_url,
        brands,
        environment="production",
        session_secret="s" * 32,
        master_key=new_master_key(),
        public_url="https://gateway",
    ):
        transport = httpx.ASGITransport(app=gateway.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as client:
            yield Gateway(gateway.app, client, gateway.clock)


async def test_cookies_are_secure_in_production(production_sso: Gateway):
    start = await production_sso.client.get("/auth/login/skyway")
    assert start.status_code == 302
    assert {"secure", "httponly"} <= set(cookie_attributes(start, FLOW_COOKIE))
    response = await arrive(production_sso, await authorize(start.headers["location"], "bob"))
    assert response.status_code == 303
    attributes = cookie_attributes(response, SESSION_COOKIE)
    assert {"secure", "httponly"} <= set(attributes)
    assert attributes["samesite"].lower() == "lax"


# 3. Logging out


async def test_logout_by_post_ends_the_session_even_for_a_replayed_cookie(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    stolen = sso.client.cookies[SESSION_COOKIE]
    assert (await with_cookie(sso, stolen)).status_code == 200
    response = await sso.client.post("/auth/logout")
    assert response.status_code == 204
    assert not await has_session(sso)
    assert (await with_cookie(sso, stolen)).status_code == 401


async def test_logout_by_get_only_asks_so_another_site_cannot_sign_anyone_out(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    page = await sso.client.get("/auth/logout")
    assert page.status_code == 200 and 'method="post"' in page.text
    assert await has_session(sso)


async def test_logout_from_the_browser_form_redirects_home(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    stolen = sso.client.cookies[SESSION_COOKIE]
    response = await sso.client.post("/auth/logout", headers={"accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert not await has_session(sso)
    assert (await with_cookie(sso, stolen)).status_code == 401


# 4. Linking in the browser


async def sign_in_and_link_bob(gateway: Gateway) -> str:
    """Bob signs in at SkyWay and links his BrewBar sign-in; his member id."""
    await sign_in(gateway, "skyway", "bob")
    linked = await sign_in(gateway, "brewbar", "bob", path="link")
    assert linked.response.status_code == 303, linked.response.text
    assert linked.response.headers["location"] == "/graphql"
    return await my_id(gateway)


async def test_linking_in_the_browser_lists_both_identities(sso: Gateway):
    await sign_in_and_link_bob(sso)
    assert identities(await my_account(sso)) == {("skyway", "bob"), ("brewbar", "bob")}


async def test_linked_brands_tokens_reach_the_same_member(sso: Gateway, brands: Brands):
    member = await sign_in_and_link_bob(sso)
    assert await bearer_member(sso, brands.token("skyway", "bob")) == member
    assert await bearer_member(sso, brands.token("brewbar", "bob")) == member


# 5. Merging


async def merge_alice(gateway: Gateway) -> tuple[str, str]:
    """A (SkyWay's SKY-1001, 840 miles) and B (BrewBar's BB-2002, 120 stars); Alice signs
    in at SkyWay (reaching A) and links BrewBar, whose token carries BB-2002 (B's)."""
    a = await enrol(gateway, "skyway", "SKY-1001")
    await earn(gateway, "skyway", a, 840, "sky-receipt")
    b = await enrol(gateway, "brewbar", "BB-2002")
    await earn(gateway, "brewbar", b, 120, "bb-receipt")
    await sign_in(gateway, "skyway", "alice")
    assert await my_id(gateway) == a
    linked = await sign_in(gateway, "brewbar", "alice", path="link")
    assert linked.response.status_code == 303, linked.response.text
    return a, b


async def test_merge_moves_the_other_members_points_to_the_signed_in_member(sso: Gateway):
    a, _ = await merge_alice(sso)
    me = await my_account(sso)
    assert me["id"] == a
    assert balances(me) == {"brewbar": 120, "freshmart": 0, "skyway": 840}
    assert identities(me) == {("skyway", "alice"), ("brewbar", "alice")}


async def test_merge_keeps_the_retired_members_history(sso: Gateway):
    await merge_alice(sso)
    edges = (await browser_gql(sso, MY_HISTORY))["data"]["me"]["transfers"]["edges"]
    history = sorted((n["kind"], n["partner"]["slug"], n["points"]) for n in nodes(edges))
    assert history == [
        ("EARN", "brewbar", 120),  # B's, before the merge
        ("EARN", "skyway", 840),
        ("MERGE", "brewbar", 120),
    ]


async def test_merged_member_id_resolves_to_the_survivor(sso: Gateway):
    a, b = await merge_alice(sso)
    assert await member_seen_by_operator(sso, b) == a


async def test_merged_members_enrolment_resolves_to_the_survivor(sso: Gateway):
    a, _ = await merge_alice(sso)
    body = await sso.gql(BY_ENROLMENT, {"partner": "brewbar", "customer": "BB-2002"})
    assert body["data"]["memberByEnrolment"]["id"] == a


async def test_linking_an_identity_that_has_its_own_member_merges_it_into_the_linker(
    sso: Gateway,
):
    async with other_browser(sso) as phone:
        await sign_in(phone, "brewbar", "bob")
        y = await my_id(phone)
    await earn(sso, "brewbar", y, 50, "bb-y")
    await sign_in(sso, "skyway", "bob")
    x = await my_id(sso)
    await sign_in(sso, "brewbar", "bob", path="link")
    me = await my_account(sso)
    assert me["id"] == x
    assert balances(me)["brewbar"] == 50
    assert await member_seen_by_operator(sso, y) == x


async def test_a_session_of_the_merged_member_reaches_the_survivor(sso: Gateway):
    async with other_browser(sso) as phone:
        await sign_in(phone, "brewbar", "bob")
        await sign_in(sso, "skyway", "bob")
        x = await my_id(sso)
        await sign_in(sso, "brewbar", "bob", path="link")
        assert await my_id(phone) == x


# 6. Unlinking


async def unlink(gateway: Gateway, identity_id: str) -> dict[str, Any]:
    result: dict[str, Any] = payload(await browser_gql(gateway, UNLINK, {"id": identity_id}))
    return result


async def test_unlinking_removes_that_identity(sso: Gateway):
    await sign_in_and_link_bob(sso)
    result = await unlink(sso, (await my_identity_ids(sso))["brewbar"])
    assert result["userErrors"] == []
    assert result["member"]["identities"] == [{"provider": "skyway", "subject": "bob"}]
    assert identities(await my_account(sso)) == {("skyway", "bob")}


async def test_the_last_identity_cannot_be_unlinked(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    result = await unlink(sso, (await my_identity_ids(sso))["skyway"])
    assert codes(result) == ["LAST_IDENTITY"]
    assert identities(await my_account(sso)) == {("skyway", "bob")}


async def test_unlinking_an_unknown_identity_id_is_refused(sso: Gateway, brands: Brands):
    await sign_in_and_link_bob(sso)
    nobody = identity_id(brands.providers["skyway"].issuer, "nobody")
    member_id = await my_id(sso)
    for unknown in ("nonsense", "", member_id, nobody):
        assert codes(await unlink(sso, unknown)) == ["UNKNOWN_IDENTITY"], unknown
    assert len((await my_account(sso))["identities"]) == 2


async def test_a_member_cannot_unlink_another_members_identity(sso: Gateway):
    await sign_in_and_link_bob(sso)
    bobs_brewbar = (await my_identity_ids(sso))["brewbar"]
    async with other_browser(sso) as carol:
        await sign_in(carol, "freshmart", "carol")
        await sign_in(carol, "brewbar", "carol", path="link")  # two, so not her last
        assert codes(await unlink(carol, bobs_brewbar)) == ["UNKNOWN_IDENTITY"]
    assert identities(await my_account(sso)) == {("skyway", "bob"), ("brewbar", "bob")}


async def test_an_unlinked_identitys_token_reaches_another_member(sso: Gateway, brands: Brands):
    member = await sign_in_and_link_bob(sso)
    await unlink(sso, (await my_identity_ids(sso))["brewbar"])
    assert await bearer_member(sso, brands.token("brewbar", "bob")) != member
    assert await bearer_member(sso, brands.token("skyway", "bob")) == member


async def test_unlinking_signs_out_the_browsers_that_signed_in_with_that_identity(
    sso: Gateway,
):
    """Bob signed in with BrewBar on a phone he lost, and unlinks BrewBar: the phone must
    no longer act as him (a bearer token of that identity already reaches someone else)."""
    member = await sign_in_and_link_bob(sso)
    async with other_browser(sso) as lost_phone:
        await sign_in(lost_phone, "brewbar", "bob")
        assert await my_id(lost_phone) == member
        await unlink(sso, (await my_identity_ids(sso))["brewbar"])
        assert not await has_session(lost_phone)
    assert await my_id(sso) == member  # signed in with SkyWay: still in


# 7. Linking from native apps (bearer tokens, no cookie)


async def start_link(gateway: Gateway, token: str) -> str:
    result = payload(await gateway.gql(START_LINK, token=token))
    assert result["userErrors"] == []
    nonce: str = result["nonce"]
    return nonce


async def complete_link(gateway: Gateway, token: str, id_token: str) -> dict[str, Any]:
    result: dict[str, Any] = payload(
        await gateway.gql(COMPLETE_LINK, {"token": id_token}, token=token)
    )
    return result


async def test_native_link_attaches_the_other_brands_identity(sso: Gateway, brands: Brands):
    bob = brands.token("skyway", "bob")
    member = await bearer_member(sso, bob)
    nonce = await start_link(sso, bob)
    result = await complete_link(sso, bob, brands.token("brewbar", "bob", nonce=nonce))
    assert result["userErrors"] == []
    assert result["member"]["id"] == member
    assert identities(result["member"]) == {("skyway", "bob"), ("brewbar", "bob")}
    assert await bearer_member(sso, brands.token("brewbar", "bob")) == member


async def test_native_link_merges_a_member_the_identity_already_had(sso: Gateway, brands: Brands):
    other = await bearer_member(sso, brands.token("brewbar", "bob"))
    bob = brands.token("skyway", "bob")
    member = await bearer_member(sso, bob)
    nonce = await start_link(sso, bob)
    result = await complete_link(sso, bob, brands.token("brewbar", "bob", nonce=nonce))
    assert result["userErrors"] == []
    assert result["mergedMemberIds"] == [other]
    assert await member_seen_by_operator(sso, other) == member


async def test_native_link_nonce_is_single_use(sso: Gateway, brands: Brands):
    bob = brands.token("skyway", "bob")
    nonce = await start_link(sso, bob)
    first = await complete_link(sso, bob, brands.token("brewbar", "bob", nonce=nonce))
    assert first["userErrors"] == []
    again = await complete_link(sso, bob, brands.token("freshmart", "bob", nonce=nonce))
    assert codes(again) == ["LINK_INVALID"]
    assert identities(await bearer_account(sso, bob)) == {("skyway", "bob"), ("brewbar", "bob")}


async def test_native_link_nonce_of_another_member_is_refused(sso: Gateway, brands: Brands):
    bob, carol = brands.token("skyway", "bob"), brands.token("freshmart", "carol")
    nonce = await start_link(sso, bob)
    stolen = await complete_link(sso, carol, brands.token("brewbar", "carol", nonce=nonce))
    assert codes(stolen) == ["LINK_INVALID"]
    assert identities(await bearer_account(sso, bob)) == {("skyway", "bob")}
    assert identities(await bearer_account(sso, carol)) == {("freshmart", "carol")}


async def test_native_link_nonce_expires(sso: Gateway, brands: Brands):
    bob = brands.token("skyway", "bob")
    nonce = await start_link(sso, bob)
    CLOCK.now += timedelta(minutes=6)
    late = await complete_link(
        sso, brands.token("skyway", "bob"), brands.token("brewbar", "bob", nonce=nonce)
    )
    assert codes(late) == ["LINK_INVALID"]


async def test_native_link_with_a_nonce_never_issued_is_refused(sso: Gateway, brands: Brands):
    bob = brands.token("skyway", "bob")
    await start_link(sso, bob)
    forged = await complete_link(sso, bob, brands.token("brewbar", "bob", nonce="made-up"))
    assert codes(forged) == ["LINK_INVALID"]


async def test_native_link_with_an_id_token_for_another_audience_is_refused(
    sso: Gateway, brands: Brands
):
    bob = brands.token("skyway", "bob")
    nonce = await start_link(sso, bob)
    foreign = brands.providers["brewbar"].mint("bob", "another-app", claims={"nonce": nonce})
    result = await complete_link(sso, bob, foreign)
    assert codes(result) == ["INVALID_TOKEN"]
    assert result["userErrors"][0]["field"] == ["input", "idToken"]


@pytest.mark.parametrize(
    "auth_time",
    [None, -600, -61, "yesterday"],
    ids=["missing", "a-provider-session-10-minutes-old", "just-before-the-link", "not-a-number"],
)
async def test_native_link_needs_a_sign_in_made_for_the_link(
    sso: Gateway, brands: Brands, auth_time: int | str | None
):
    bob = brands.token("skyway", "bob")
    nonce = await start_link(sso, bob)
    CLOCK.now += timedelta(seconds=30)  # the app sends the member to the other provider
    signed_in = auth_time
    if isinstance(auth_time, int):  # seconds before the link started
        signed_in = int((CLOCK() - timedelta(seconds=30)).timestamp()) + auth_time
    stale = brands.token("brewbar", "bob", nonce=nonce, auth_time=signed_in)
    result = await complete_link(sso, bob, stale)
    assert codes(result) == ["REAUTHENTICATION_REQUIRED"]
    assert result["userErrors"][0]["field"] == ["input", "idToken"]
    assert result["member"] is None
    assert identities(await bearer_account(sso, bob)) == {("skyway", "bob")}


async def test_native_link_accepts_a_sign_in_made_after_the_link_started(
    sso: Gateway, brands: Brands
):
    bob = brands.token("skyway", "bob")
    nonce = await start_link(sso, bob)
    CLOCK.now += timedelta(minutes=2)
    result = await complete_link(sso, bob, brands.token("brewbar", "bob", nonce=nonce))
    assert result["userErrors"] == []
    assert identities(result["member"]) == {("skyway", "bob"), ("brewbar", "bob")}


async def test_partner_apps_and_operators_cannot_start_a_native_link(sso: Gateway):
    for token in (await sso.partner_token("skyway"), await sso.operator_token()):
        result = payload(await sso.gql(START_LINK, token=token))
        assert codes(result) == ["ACCESS_DENIED"]
        assert result["nonce"] is None


async def test_a_partner_app_cannot_complete_a_native_link(sso: Gateway, brands: Brands):
    bob = brands.token("skyway", "bob")
    nonce = await start_link(sso, bob)
    app = await sso.partner_token("brewbar")
    result = await complete_link(sso, app, brands.token("brewbar", "bob", nonce=nonce))
    assert codes(result) == ["ACCESS_DENIED"]


# 8. The flow's defences


async def test_callback_with_another_state_than_the_browsers_is_refused(sso: Gateway):
    callback = await authorize(await begin(sso, "/auth/login/skyway"), "bob")
    response = await arrive(sso, with_params(callback, state="not-the-browsers"))
    assert_refused(response, "state does not match")
    assert not sets_session(response)
    assert not await has_session(sso)


async def test_callback_of_an_earlier_flow_is_refused_once_another_began(sso: Gateway):
    """Login CSRF: a callback for a flow the browser no longer has in its cookie."""
    earlier = await authorize(await begin(sso, "/auth/login/skyway"), "mallory")
    await begin(sso, "/auth/login/skyway")
    response = await arrive(sso, earlier)
    assert_refused(response, "state does not match")
    assert not await has_session(sso)


async def test_replayed_callback_is_refused(sso: Gateway):
    signed_in = await sign_in(sso, "skyway", "bob")
    assert signed_in.response.status_code == 303
    session = sso.client.cookies[SESSION_COOKIE]
    replay = await arrive(sso, signed_in.callback)
    assert_refused(replay, "state does not match")  # the browser forgot the flow
    assert not sets_session(replay)
    assert sso.client.cookies[SESSION_COOKIE] == session


async def test_replayed_callback_with_its_flow_cookie_is_refused(sso: Gateway):
    """The flow is used up on the server too, not only forgotten by the browser."""
    authorize_url = await begin(sso, "/auth/login/skyway")
    flow_cookie = sso.client.cookies[FLOW_COOKIE]
    callback = await authorize(authorize_url, "bob")
    assert (await arrive(sso, callback)).status_code == 303
    sso.client.cookies.set(FLOW_COOKIE, flow_cookie)
    replay = await arrive(sso, callback)
    assert_refused(replay, "already used")
    assert not sets_session(replay)


async def test_callback_with_a_stolen_state_from_a_browser_without_the_flow_is_refused(
    sso: Gateway,
):
    callback = await authorize(await begin(sso, "/auth/login/skyway"), "bob")
    async with other_browser(sso) as attacker:
        response = await arrive(attacker, callback)
        assert_refused(response, "state does not match")
        assert not await has_session(attacker)
    assert (await arrive(sso, callback)).status_code == 303  # the rightful browser still can


async def test_a_used_authorization_code_is_refused(sso: Gateway):
    used = await sign_in(sso, "skyway", "bob")
    assert used.response.status_code == 303
    async with other_browser(sso) as attacker:
        authorize_url = await begin(attacker, "/auth/login/skyway")
        state = query_of(authorize_url)["state"]
        response = await arrive(attacker, with_params(used.callback, state=state))
        assert_refused(response, "the provider refused the code (invalid_grant)")
        assert not sets_session(response)
        assert not await has_session(attacker)


async def test_sign_in_redirect_uses_pkce_s256_state_and_nonce(sso: Gateway):
    params = query_of(await begin(sso, "/auth/login/skyway"))
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32
    assert params["redirect_uri"] == "http://gateway/auth/callback/skyway"
    again = query_of(await begin(sso, "/auth/login/skyway"))
    assert {again[k] != params[k] for k in ("code_challenge", "state", "nonce")} == {True}


async def test_the_code_is_worthless_without_the_gateways_pkce_verifier(
    sso: Gateway, brands: Brands
):
    """Someone who intercepts the code and knows the client secret still cannot redeem it."""
    callback = await authorize(await begin(sso, "/auth/login/skyway"), "bob")
    provider = brands.providers["skyway"]
    secret = dict(brands.credentials)["COALITION_OIDC_SKYWAY_CLIENT_SECRET"]
    async with httpx.AsyncClient() as thief:
        answer = await thief.post(
            f"{provider.issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": query_of(callback)["code"],
                "redirect_uri": "http://gateway/auth/callback/skyway",
            },
            auth=(brands.client_id("skyway"), secret),
        )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "a valid code_verifier is required",
    }


async def test_id_token_with_a_replayed_nonce_is_refused(sso: Gateway):
    """The provider is made to issue an ID token carrying an earlier flow's nonce."""
    earlier = await begin(sso, "/auth/login/skyway")
    assert (await arrive(sso, await authorize(earlier, "bob"))).status_code == 303
    sso.client.cookies.clear()
    current = await begin(sso, "/auth/login/skyway")
    tampered = with_params(current, nonce=query_of(earlier)["nonce"])
    response = await arrive(sso, await authorize(tampered, "bob"))
    assert_refused(response, "nonce does not match")
    assert not sets_session(response)
    assert not await has_session(sso)


async def test_return_to_only_leads_to_paths_on_the_gateway(sso: Gateway):
    """An open redirect would let a phishing link bounce through the real sign-in."""
    for return_to, landing in (
        ("https://evil.example/", "/graphql"),
        ("//evil.example/x", "/graphql"),
        ("/\\evil.example", "/graphql"),
        ("javascript:alert(1)", "/graphql"),
        ("/auth/me", "/auth/me"),
    ):
        query = urlencode({"return_to": return_to})
        authorize_url = await begin(sso, f"/auth/login/skyway?{query}")
        response = await arrive(sso, await authorize(authorize_url, "bob"))
        assert response.status_code == 303
        assert response.headers["location"] == landing, return_to


async def test_unknown_provider_is_not_found(sso: Gateway):
    for path in ("/auth/login/nowhere", "/auth/callback/nowhere?state=x&code=y"):
        assert (await sso.client.get(path)).status_code == 404, path
    assert FLOW_COOKIE not in sso.client.cookies


async def test_linking_an_unknown_provider_is_not_found(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    assert (await sso.client.get("/auth/link/nowhere")).status_code == 404


async def test_linking_without_a_session_asks_to_sign_in(sso: Gateway):
    response = await sso.client.get("/auth/link/skyway")
    assert response.status_code == 401
    assert "Sign in first" in response.text
    assert FLOW_COOKIE not in sso.client.cookies


async def test_link_completed_in_another_session_is_refused(sso: Gateway):
    await sign_in(sso, "skyway", "bob")
    bob = await my_id(sso)
    link_url = await begin(sso, "/auth/link/brewbar")
    flow_cookie = sso.client.cookies[FLOW_COOKIE]
    callback = await authorize(link_url, "alice")
    await sign_in(sso, "freshmart", "carol")  # the browser now holds Carol's session
    carol = await my_id(sso)
    sso.client.cookies.set(FLOW_COOKIE, flow_cookie)
    response = await arrive(sso, callback)
    assert_refused(response, "Finish the link in the session that began it")
    assert identities(await my_account(sso)) == {("freshmart", "carol")}
    assert await member_seen_by_operator(sso, bob) == bob != carol


async def test_callback_at_another_providers_address_is_refused(sso: Gateway):
    callback = await authorize(await begin(sso, "/auth/login/skyway"), "bob")
    response = await arrive(sso, callback.replace("/callback/skyway", "/callback/brewbar"))
    assert_refused(response, "already used or expired")
    assert not await has_session(sso)


async def test_flow_expires_after_its_lifetime(sso: Gateway):
    callback = await authorize(await begin(sso, "/auth/login/skyway"), "bob")
    CLOCK.now += timedelta(minutes=11)
    response = await arrive(sso, callback)
    assert_refused(response, "already used or expired")
    assert not await has_session(sso)


async def test_sign_in_denied_at_the_provider_creates_no_session(sso: Gateway):
    response = await arrive(sso, await deny(await begin(sso, "/auth/login/skyway")))
    assert_refused(response, "access_denied")
    assert not await has_session(sso)


# 9. Step-up for a browser session


async def redeem_own_miles(gateway: Gateway, member_id: str, points: int, key: str) -> list[str]:
    body = await browser_gql(
        gateway,
        REDEEM,
        {
            "input": {
                "partner": "skyway",
                "member": {"id": member_id},
                "points": points,
                "idempotencyKey": key,
            }
        },
    )
    return codes(payload(body))


async def signed_in_with_miles(gateway: Gateway, mfa: bool) -> str:
    await sign_in(gateway, "skyway", "bob", mfa=mfa)
    member = await my_id(gateway)
    await earn(gateway, "skyway", member, 20000, "miles")
    return member


async def test_spending_above_the_threshold_without_mfa_needs_step_up(sso: Gateway):
    member = await signed_in_with_miles(sso, mfa=False)
    assert await redeem_own_miles(sso, member, 6000, "r-1") == ["STEP_UP_REQUIRED"]
    assert balances(await my_account(sso))["skyway"] == 20000


async def test_spending_above_the_threshold_with_mfa_succeeds(sso: Gateway):
    member = await signed_in_with_miles(sso, mfa=True)
    assert await redeem_own_miles(sso, member, 6000, "r-1") == []
    assert balances(await my_account(sso))["skyway"] == 14000


async def test_spending_up_to_the_threshold_needs_no_mfa(sso: Gateway):
    member = await signed_in_with_miles(sso, mfa=False)
    assert await redeem_own_miles(sso, member, 5000, "r-1") == []
    assert balances(await my_account(sso))["skyway"] == 15000


async def test_auth_me_tells_who_the_cookie_signs_in(sso: Gateway):
    assert (await sso.client.get("/auth/me")).status_code == 401
    await sign_in(sso, "skyway", "bob", mfa=True)
    me = (await sso.client.get("/auth/me")).json()
    member_id = (await as_browser(sso, ME_ID)).json()["data"]["me"]["id"]
    assert me["role"] == "member" and me["memberId"] == member_id and me["mfa"] is True
    sso.client.cookies.clear()
    await sign_in(sso, "coalition", "olivia")
    operator = (await sso.client.get("/auth/me")).json()
    assert operator["role"] == "operator" and operator["subject"] == "olivia"
    assert (await as_browser(sso, ME_ID)).json()["data"]["me"] is None
