"""Bearer tokens from the partners' and the coalition's OpenID Connect providers, over real
HTTP against real providers on loopback: who a token reaches, the tokens that are refused
(and create nothing), key rotation and its rate-limited refetch, operators, and step-up."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwk
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.ledger.tables import members
from gateway.members.tables import identities
from partners.config.sign_in import env_name
from partners.development.oidc_provider import DevProvider
from tests.conftest import Gateway
from tests.sso import CLOCK, Brands, authorize

ME = "{ me { id } }"
BALANCE = '{ me { wallet(partner: "skyway") { balance } } }'
FIGURES = '{ partner(slug: "skyway") { figures { pointsIssued } } }'
EARN = """mutation($input: EarnPointsInput!) {
  earnPoints(input: $input) { wallet { balance } userErrors { code message } } }"""
REDEEM = """mutation($input: RedeemPointsInput!) {
  redeemPoints(input: $input) { wallet { balance } userErrors { code field } } }"""
CONVERT = """mutation($input: ConvertPointsInput!) {
  convertPoints(input: $input) { fromWallet { balance } userErrors { code field } } }"""


# Calling the gateway


async def post(gateway: Gateway, authorization: str | None, query: str = ME) -> httpx.Response:
    """A GraphQL POST with exactly this Authorization header (or none)."""
    headers = {"accept": "application/graphql-response+json"}
    if authorization is not None:
        headers["authorization"] = authorization
    return await gateway.client.post("/graphql", json={"query": query}, headers=headers)


async def me(gateway: Gateway, token: str) -> str:
    """The id of the member ``token`` reaches."""
    member = (await gateway.gql(ME, token=token))["data"]["me"]
    assert member is not None
    return str(member["id"])


async def count(gateway: Gateway, table: Any) -> int:
    async with gateway.service.engine.connect() as connection:
        return int((await connection.scalar(select(func.count()).select_from(table))) or 0)


def assert_refused(response: httpx.Response, reason: str = "") -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token"'), challenge
    body = response.json()
    assert body.get("data") is None, body
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
    assert reason in body["errors"][0]["message"], body


# Making tokens


def now() -> int:
    return int(CLOCK().timestamp())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def part(token: str, index: int) -> dict[str, Any]:
    """The header (0) or the claims (1) of a compact JWT, unverified."""
    value: dict[str, Any] = json.loads(unb64(token.split(".")[index]))
    return value


def segment(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def skyway(brands: Brands) -> DevProvider:
    return brands.providers["skyway"]


def mint(brands: Brands, subject: str = "eve", **options: Any) -> str:
    """A token from skyway's provider for the gateway (``options`` as for ``mint``)."""
    return skyway(brands).mint(subject, brands.client_id("skyway"), **options)


def claims_for(brands: Brands, subject: str = "eve") -> dict[str, Any]:
    """Claims that would pass every check, for tokens put together by hand."""
    return {
        "iss": skyway(brands).issuer,
        "sub": subject,
        "aud": brands.client_id("skyway"),
        "iat": now(),
        "nbf": now(),
        "exp": now() + 600,
    }


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@cache
def foreign_key() -> jwk.RSAKey:
    """An RSA key nobody publishes."""
    return jwk.RSAKey.generate_key(2048, {"use": "sig", "alg": "RS256"}, private=True)


async def code_flow_tokens(brands: Brands, subject: str) -> dict[str, Any]:
    """The token response of skyway's provider after ``subject`` signs in (code + PKCE),
    as a member's app would get it."""
    provider = skyway(brands)
    client = (
        brands.client_id("skyway"),
        dict(brands.credentials)[f"{env_name('skyway')}_CLIENT_SECRET"],
    )
    redirect_uri = "http://app.example/callback"
    verifier = secrets.token_urlsafe(48)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client[0],
            "redirect_uri": redirect_uri,
            "scope": "openid profile",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
        }
    )
    callback = await authorize(f"{provider.issuer}/authorize?{query}", subject)
    code = dict(parse_qsl(urlsplit(callback).query))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{provider.issuer}/token", data=form, auth=client)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


@contextmanager
def counting_jwks(provider: DevProvider) -> Iterator[list[str]]:
    """Count the JWKS fetches a provider serves: a route put in front of its own."""
    fetches: list[str] = []

    async def jwks(request: Request) -> Response:
        fetches.append(request.url.path)
        return JSONResponse(provider.jwks)

    route = Route("/jwks", jwks, methods=["GET"])
    routes = provider.app.router.routes
    routes.insert(0, route)
    try:
        yield fetches
    finally:
        routes.remove(route)


# Tokens that reach a member


async def test_a_providers_token_reaches_a_member_created_at_first_use(sso: Gateway, brands):
    token = brands.token("skyway", "bob")
    assert await count(sso, members) == 0
    member_id = await me(sso, token)
    assert await count(sso, members) == 1
    assert await me(sso, token) == member_id
    assert await me(sso, brands.token("skyway", "bob")) == member_id  # a new token, same person
    assert await count(sso, members) == 1
    assert await count(sso, identities) == 1


async def test_id_token_and_access_token_from_the_code_flow_both_reach_the_member(
    sso: Gateway, brands
):
    tokens = await code_flow_tokens(brands, "bob")
    assert "at_hash" in part(tokens["id_token"], 1)
    assert "scope" in part(tokens["access_token"], 1)
    member_id = await me(sso, tokens["id_token"])
    assert await me(sso, tokens["access_token"]) == member_id
    assert await count(sso, members) == 1


async def test_concurrent_first_uses_create_one_member(sso: Gateway, brands):
    token = brands.token("skyway", "bob")
    found = await asyncio.gather(*(me(sso, token) for _ in range(5)))
    assert len(set(found)) == 1
    assert await count(sso, members) == 1


async def test_the_scheme_is_case_insensitive(sso: Gateway, brands):
    response = await post(sso, f"bearer {brands.token('skyway', 'bob')}")
    assert response.status_code == 200, response.text
    assert response.json()["data"]["me"]["id"]


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": -30}, id="expired-30s-ago"),
        pytest.param({"nbf": 30}, id="valid-in-30s"),
        pytest.param({"iat": 30}, id="issued-30s-ahead"),
    ],
)
async def test_clock_skew_within_the_leeway_is_accepted(sso: Gateway, brands, claims):
    token = mint(brands, claims={name: now() + offset for name, offset in claims.items()})
    assert await me(sso, token)


# Tokens that are refused, creating nothing


def expired(brands: Brands) -> str:
    return mint(brands, lifetime=-61)


def expired_while_held(brands: Brands) -> str:
    token = mint(brands, lifetime=600)
    CLOCK.now += timedelta(seconds=600 + 61)
    return token


def without_exp(brands: Brands) -> str:
    return mint(brands, claims={"exp": None})


def exp_not_a_number(brands: Brands) -> str:
    # Signed by the provider; NaN compares false with everything, so it never "expires".
    return mint(brands, claims={"exp": float("nan")})


def not_yet_valid(brands: Brands) -> str:
    return mint(brands, claims={"nbf": now() + 61})


def issued_in_the_future(brands: Brands) -> str:
    return mint(brands, claims={"iat": now() + 61, "nbf": None})


def without_iat(brands: Brands) -> str:
    return mint(brands, claims={"iat": None})


def audience_of_another_provider(brands: Brands) -> str:
    # Issued by skyway's provider to the gateway's client at brewbar's: not to us here.
    return skyway(brands).mint("eve", brands.client_id("brewbar"))


def audience_of_another_app(brands: Brands) -> str:
    return skyway(brands).mint("eve", ["some-other-app", "and-another"])


def issuer_of_another_provider(brands: Brands) -> str:
    # Signed by skyway's provider, claiming to come from brewbar's.
    return mint(brands, claims={"iss": brands.providers["brewbar"].issuer})


def issuer_not_configured(brands: Brands) -> str:
    stranger = DevProvider("http://127.0.0.1:1/unknown", {})
    return stranger.mint("eve", brands.client_id("skyway"))


def issuer_with_trailing_slash(brands: Brands) -> str:
    return mint(brands, claims={"iss": skyway(brands).issuer + "/"})


def alg_none(brands: Brands) -> str:
    return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims_for(brands))}."


def hmac_keyed_with_public_pem(brands: Brands) -> str:
    key = skyway(brands).signing_key
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    return hs256(header, claims_for(brands), key.as_pem(private=False))


def hmac_keyed_with_public_jwk(brands: Brands) -> str:
    published = httpx.get(f"{skyway(brands).issuer}/jwks").json()["keys"][-1]
    header = {"alg": "HS256", "typ": "JWT", "kid": published["kid"]}
    return hs256(header, claims_for(brands), json.dumps(published).encode())


def unknown_key_id(brands: Brands) -> str:
    return mint(brands, key=foreign_key(), header={"kid": "not-published"})


def foreign_key_under_a_published_kid(brands: Brands) -> str:
    return mint(brands, key=foreign_key())  # the header names skyway's current kid


def tampered_payload(brands: Brands) -> str:
    token = mint(brands, "eve")
    header, _, signature = token.split(".")
    return f"{header}.{segment({**part(token, 1), 'sub': 'alice'})}.{signature}"


def tampered_signature(brands: Brands) -> str:
    header, payload, signature = mint(brands).split(".")
    raw = bytearray(unb64(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64(bytes(raw))}"


def signature_not_base64(brands: Brands) -> str:
    header, payload, _ = mint(brands).split(".")
    return f"{header}.{payload}.@@@"


def without_sub(brands: Brands) -> str:
    return mint(brands, claims={"sub": None})


def empty_sub(brands: Brands) -> str:
    return mint(brands, "")


def oversized(brands: Brands) -> str:
    # Properly signed, but 20 KB.
    return mint(brands, claims={"padding": "x" * 20_000})


REFUSED: dict[str, Callable[[Brands], str]] = {
    "expired-beyond-leeway": expired,
    "expired-while-held": expired_while_held,
    "no-exp": without_exp,
    "exp-nan": exp_not_a_number,
    "not-yet-valid": not_yet_valid,
    "iat-in-the-future": issued_in_the_future,
    "no-iat": without_iat,
    "audience-of-another-provider": audience_of_another_provider,
    "audience-of-another-app": audience_of_another_app,
    "issuer-of-another-provider": issuer_of_another_provider,
    "issuer-not-configured": issuer_not_configured,
    "issuer-with-trailing-slash": issuer_with_trailing_slash,
    "alg-none": alg_none,
    "hs256-keyed-with-public-pem": hmac_keyed_with_public_pem,
    "hs256-keyed-with-public-jwk": hmac_keyed_with_public_jwk,
    "unknown-kid": unknown_key_id,
    "foreign-key-under-published-kid": foreign_key_under_a_published_kid,
    "tampered-payload": tampered_payload,
    "tampered-signature": tampered_signature,
    "signature-not-base64": signature_not_base64,
    "no-sub": without_sub,
    "empty-sub": empty_sub,
    "garbage-abc": lambda brands: "abc",
    "garbage-a.b.c": lambda brands: "a.b.c",
    "garbage-20kb": lambda brands: "a" * 20_000,
    "oversized-signed": oversized,
}


@pytest.mark.parametrize("make", REFUSED.values(), ids=REFUSED.keys())
async def test_a_bad_token_is_refused_and_creates_nothing(sso: Gateway, brands, make):
    response = await post(sso, f"Bearer {make(brands)}")
    assert_refused(response)
    assert await count(sso, members) == 0
    assert await count(sso, identities) == 0


@pytest.mark.parametrize(
    "authorization",
    ["Basic eHl6OnNlY3JldA==", "Bearer", "Bearerabc"],
)
async def test_credentials_not_sent_as_a_bearer_token_are_refused(sso: Gateway, authorization):
    response = await post(sso, authorization)
    assert_refused(response, "Authorization: Bearer <token>")
    assert await count(sso, members) == 0


# Tokens that must not crash the gateway: refused like any bad token (a 401, never a 500)


def alg_not_a_string(brands: Brands) -> str:
    header = {"alg": ["RS256"], "typ": "JWT"}
    return f"{segment(header)}.{segment(claims_for(brands))}.c2ln"


def deeply_nested_header(brands: Brands) -> str:
    return f"{b64(b'[' * 5000)}.{segment(claims_for(brands))}.c2ln"


def deeply_nested_payload(brands: Brands) -> str:
    return f"{segment({'alg': 'RS256'})}.{b64(b'[' * 5000)}.c2ln"


def signed_with_odd_audience(brands: Brands) -> str:
    return skyway(brands).mint("eve", [brands.client_id("skyway"), {"not": "a string"}])


MALFORMED: dict[str, Callable[[Brands], str]] = {
    "signed-odd-audience": signed_with_odd_audience,
    "alg-is-a-list": alg_not_a_string,
    "deeply-nested-header": deeply_nested_header,
    "deeply-nested-payload": deeply_nested_payload,
}


@pytest.mark.parametrize("make", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_token_is_refused_not_a_server_error(sso: Gateway, brands, make):
    response = await post(sso, f"Bearer {make(brands)}")
    assert_refused(response)


# Key rotation at the provider


async def test_a_rotated_key_is_picked_up_and_the_old_one_still_works(sso: Gateway, brands):
    old = brands.token("skyway", "bob")
    member_id = await me(sso, old)  # the gateway now holds the JWKS with the old key only
    CLOCK.now += timedelta(seconds=11)
    kid = skyway(brands).rotate_key()
    new = brands.token("skyway", "bob")
    assert part(new, 0)["kid"] == kid
    with counting_jwks(skyway(brands)) as fetches:
        assert await me(sso, new) == member_id  # the unknown kid makes it refetch
        assert await me(sso, old) == member_id  # still published
        assert await me(sso, new) == member_id
    assert len(fetches) == 1


async def test_refetching_keys_is_rate_limited(sso: Gateway, brands):
    provider = skyway(brands)
    with counting_jwks(provider) as fetches:
        await me(sso, brands.token("skyway", "bob"))
        assert len(fetches) == 1
        for kid in ("unknown-1", "unknown-2"):
            token = mint(brands, key=foreign_key(), header={"kid": kid})
            assert_refused(await post(sso, f"Bearer {token}"), "unknown key")
        assert len(fetches) == 1  # within 10 s of the last fetch: no refetch

        kid = provider.rotate_key()
        rotated = brands.token("skyway", "bob")
        # Until 10 s have passed since the last fetch, even the genuinely new key is unknown.
        assert_refused(await post(sso, f"Bearer {rotated}"), "unknown key")
        assert len(fetches) == 1

        CLOCK.now += timedelta(seconds=11)
        assert part(rotated, 0)["kid"] == kid
        assert await me(sso, rotated)
        assert len(fetches) == 2
        token = mint(brands, key=foreign_key(), header={"kid": "unknown-3"})
        assert_refused(await post(sso, f"Bearer {token}"), "unknown key")
        assert len(fetches) == 2


# Operators through the coalition's provider


async def test_a_coalition_operator_sees_partner_figures(sso: Gateway, brands):
    token = brands.token("coalition", "olivia")
    body = await sso.gql(FIGURES, token=token)
    assert body["data"]["partner"]["figures"] == {"pointsIssued": 0}
    assert (await sso.gql(ME, token=token))["data"]["me"] is None
    assert await count(sso, members) == 0  # an operator is not a member


async def test_a_coalition_user_without_the_role_is_a_member_without_figures(sso: Gateway, brands):
    token = brands.token("coalition", "mallory")
    assert await me(sso, token)
    body = await sso.gql(FIGURES, token=token)
    assert body["data"]["partner"] == {"figures": None}


async def test_the_operator_role_from_a_partners_provider_makes_no_operator(sso: Gateway, brands):
    token = brands.token("skyway", "mallory", roles=["coalition-operator"])
    body = await sso.gql(FIGURES, token=token)
    assert body["data"]["partner"] == {"figures": None}
    assert await me(sso, token)


# No credentials


async def test_no_credentials_tells_how_to_authenticate(sso: Gateway):
    response = await post(sso, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Authorization: Bearer <token>" in error["message"]
    assert "/oauth/token" in error["message"] and "/auth/login/" in error["message"]


async def test_graphiql_is_served_without_credentials(sso: Gateway):
    response = await sso.client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


# Step-up: skyway asks for a second factor above 5000 miles


async def member_with_miles(sso: Gateway, brands: Brands, miles: int = 10_000) -> str:
    member_id = await me(sso, brands.token("skyway", "bob"))
    reference = {"partner": "skyway", "member": {"id": member_id}}
    earned = await sso.gql(EARN, {"input": {**reference, "points": miles, "idempotencyKey": "e1"}})
    assert earned["data"]["earnPoints"]["userErrors"] == []
    return member_id


async def balance(sso: Gateway, token: str) -> int:
    return int((await sso.gql(BALANCE, token=token))["data"]["me"]["wallet"]["balance"])


def redeeming(member_id: str, points: int) -> dict[str, Any]:
    return {
        "input": {
            "partner": "skyway",
            "member": {"id": member_id},
            "points": points,
            "idempotencyKey": f"r-{secrets.token_hex(4)}",
        }
    }


@pytest.mark.parametrize(
    ("points", "claims", "step_up"),
    [
        pytest.param(6000, {}, True, id="6000-without-mfa"),
        pytest.param(6000, {"amr": ["pwd"]}, True, id="6000-password-only"),
        pytest.param(6000, {"acr": "urn:basic"}, True, id="6000-other-acr"),
        pytest.param(6000, {"acr": "mfa"}, False, id="6000-acr-mfa"),
        pytest.param(6000, {"amr": ["pwd", "otp"]}, False, id="6000-amr-otp"),
        pytest.param(5000, {}, False, id="5000-without-mfa"),
    ],
)
async def test_redeeming_above_the_threshold_needs_mfa(
    sso: Gateway, brands, points, claims, step_up
):
    member_id = await member_with_miles(sso, brands)
    token = brands.token("skyway", "bob", **claims)
    body = await sso.gql(REDEEM, redeeming(member_id, points), token=token)
    result = body["data"]["redeemPoints"]
    if step_up:
        [error] = result["userErrors"]
        assert error["code"] == "STEP_UP_REQUIRED" and error["field"][-1] == "points"
        assert result["wallet"] is None
        assert await balance(sso, token) == 10_000
    else:
        assert result["userErrors"] == []
        assert result["wallet"] == {"balance": 10_000 - points}


@pytest.mark.parametrize(
    ("claims", "step_up"),
    [pytest.param({}, True, id="without-mfa"), pytest.param({"acr": "mfa"}, False, id="acr-mfa")],
)
async def test_converting_above_the_threshold_needs_mfa(sso: Gateway, brands, claims, step_up):
    member_id = await member_with_miles(sso, brands)
    token = brands.token("skyway", "bob", **claims)
    variables = {
        "input": {
            "memberId": member_id,
            "fromPartner": "skyway",
            "toPartner": "brewbar",
            "points": 6000,
            "idempotencyKey": "c1",
        }
    }
    result = (await sso.gql(CONVERT, variables, token=token))["data"]["convertPoints"]
    if step_up:
        assert [error["code"] for error in result["userErrors"]] == ["STEP_UP_REQUIRED"]
        assert await balance(sso, token) == 10_000
    else:
        assert result["userErrors"] == []
        assert result["fromWallet"] == {"balance": 4000}


async def test_a_partner_app_is_not_subject_to_step_up(sso: Gateway, brands):
    member_id = await member_with_miles(sso, brands)
    body = await sso.gql(
        REDEEM, redeeming(member_id, 6000), token=await sso.partner_token("skyway")
    )
    assert body["data"]["redeemPoints"] == {"wallet": {"balance": 4000}, "userErrors": []}
