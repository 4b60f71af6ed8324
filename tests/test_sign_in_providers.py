"""Providers as they are deployed: client secrets with reserved characters, the client
authentication methods (client_secret_basic, client_secret_post, private_key_jwt), issuers
that end in ``/``, and opaque access tokens checked by introspection (RFC 7662).

Each test serves its own strict development provider on loopback and points skyway's
sign-in at it; the rest of the coalition is the shared ``brands`` configuration.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwk, jwt

from gateway.auth.client_auth import ASSERTION_TYPE, client_auth
from partners.config.sign_in import env_name
from partners.development.oidc_clients import BASIC, POST, PRIVATE_KEY_JWT
from partners.development.oidc_provider import DevProvider, serve_in_thread
from tests.conftest import Clock, Gateway, start_gateway
from tests.sso import CLOCK, USERS, Brands, query_of, sign_in

ME = "{ me { id identities { provider subject } } }"
PREFIX = env_name("skyway")
CLIENT_ID = "gateway at skyway"  # reserved characters in the id too
RESERVED_SECRET = "q8+Zr/Xk2w+T1v/Ym9n=="


@contextmanager
def provider_at(*, trailing_slash: bool = False, **options: Any) -> Iterator[DevProvider]:
    """A skyway provider on its own loopback port, on the shared clock."""

    def build(issuer: str) -> DevProvider:
        return DevProvider(
            issuer + "/" if trailing_slash else issuer,
            {},
            USERS["skyway"],
            title="skyway (strict)",
            clock=lambda: CLOCK().timestamp(),
            **options,
        )

    with serve_in_thread(build) as provider:
        yield provider


@asynccontextmanager
async def gateway_for(
    database_url: str,
    brands: Brands,
    tmp_path: Path,
    provider: DevProvider,
    credentials: dict[str, str],
    sign_in: str = "",
    others: Callable[[Path], None] | None = None,
) -> AsyncIterator[Gateway]:
    """A gateway whose skyway sign-in is ``provider`` (with extra ``sign_in`` settings)."""
    config = tmp_path / "config"
    shutil.copytree(brands.config_dir, config)
    skyway = config / "skyway.toml"
    old = f'issuer = "{brands.providers["skyway"].issuer}"'
    text = skyway.read_text()
    assert old in text
    skyway.write_text(text.replace(old, f'issuer = "{provider.issuer}"\n{sign_in}'))
    if others is not None:
        others(config)
    every = {name: value for name, value in brands.credentials if not name.startswith(f"{PREFIX}_")}
    every |= {f"{PREFIX}_{name}": value for name, value in credentials.items()}
    CLOCK.now = Clock().now
    run = start_gateway(
        database_url,
        CLOCK,
        config_dir=config,
        oidc_credentials=tuple(sorted(every.items())),
    )
    gateway = await anext(run)
    try:
        yield gateway
    finally:
        await run.aclose()


async def signed_in_identity(gateway: Gateway) -> list[dict[str, str]]:
    response = await gateway.client.post("/graphql", json={"query": ME})
    assert response.status_code == 200, response.text
    identities: list[dict[str, str]] = response.json()["data"]["me"]["identities"]
    return identities


async def bearer(gateway: Gateway, token: str, **headers: str) -> httpx.Response:
    return await gateway.client.post(
        "/graphql",
        json={"query": ME},
        headers={"authorization": f"Bearer {token}", **headers},
    )


def assert_refused(response: httpx.Response, reason: str = "") -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
    assert reason in body["errors"][0]["message"], body


def key_pair(kind: str) -> tuple[str, dict[str, Any]]:
    """A private key as PEM (what the deployer puts in the environment) and the public
    JWK Set registered at the provider."""
    key: jwk.RSAKey | jwk.ECKey
    if kind == "RSA":
        key = jwk.RSAKey.generate_key(2048, private=True)
    else:
        key = jwk.ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    public = dict(key.as_dict(private=False))
    return key.as_pem(private=True).decode(), {"keys": [public]}


# 10. Client authentication at the token endpoint


async def test_a_secret_with_reserved_characters_signs_in_by_client_secret_basic(
    database_url: str, brands: Brands, tmp_path: Path
):
    """RFC 6749 2.3.1: id and secret are form-encoded before Basic; the strict provider
    decodes them, so a raw '+' would reach it as a space and fail as invalid_client."""
    with provider_at() as provider:
        provider.add_client(CLIENT_ID, RESERVED_SECRET, method=BASIC)
        credentials = {"CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": RESERVED_SECRET}
        async with gateway_for(database_url, brands, tmp_path, provider, credentials) as gateway:
            done = await sign_in(gateway, "skyway", "alice")
            assert done.response.status_code == 303, done.response.text
            assert await signed_in_identity(gateway) == [{"provider": "skyway", "subject": "alice"}]
        assert provider.tokens_issued == 1


async def test_client_secret_post_signs_in(database_url: str, brands: Brands, tmp_path: Path):
    with provider_at() as provider:
        provider.add_client(CLIENT_ID, RESERVED_SECRET, method=POST)  # Basic is refused
        credentials = {"CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": RESERVED_SECRET}
        method = 'token_endpoint_auth_method = "client_secret_post"\n'
        async with gateway_for(
            database_url, brands, tmp_path, provider, credentials, method
        ) as gateway:
            done = await sign_in(gateway, "skyway", "alice")
            assert done.response.status_code == 303, done.response.text
            assert await signed_in_identity(gateway) == [{"provider": "skyway", "subject": "alice"}]


@pytest.mark.parametrize(
    ("kind", "audience"), [("RSA", "issuer"), ("EC", "issuer"), ("EC", "token_endpoint")]
)
async def test_private_key_jwt_signs_in(
    database_url: str, brands: Brands, tmp_path: Path, kind: str, audience: str
):
    """The provider takes only the assertion audience it is set to, as some do."""
    private_pem, public_keys = key_pair(kind)
    with provider_at(assertion_audience=audience) as provider:
        provider.add_client(CLIENT_ID, method=PRIVATE_KEY_JWT, public_keys=public_keys)
        credentials = {"CLIENT_ID": CLIENT_ID, "PRIVATE_KEY": private_pem}
        method = 'token_endpoint_auth_method = "private_key_jwt"\n'
        if audience != "issuer":
            method += f'client_assertion_audience = "{audience}"\n'
        async with gateway_for(
            database_url, brands, tmp_path, provider, credentials, method
        ) as gateway:
            done = await sign_in(gateway, "skyway", "alice")
            assert done.response.status_code == 303, done.response.text
            assert await signed_in_identity(gateway) == [{"provider": "skyway", "subject": "alice"}]
        assert provider.tokens_issued == 1


async def test_private_key_jwt_with_a_key_the_provider_does_not_know_is_refused(
    database_url: str, brands: Brands, tmp_path: Path
):
    _, registered = key_pair("EC")
    other_pem, _ = key_pair("EC")
    with provider_at() as provider:
        provider.add_client(CLIENT_ID, method=PRIVATE_KEY_JWT, public_keys=registered)
        credentials = {"CLIENT_ID": CLIENT_ID, "PRIVATE_KEY": other_pem}
        method = 'token_endpoint_auth_method = "private_key_jwt"\n'
        async with gateway_for(
            database_url, brands, tmp_path, provider, credentials, method
        ) as gateway:
            done = await sign_in(gateway, "skyway", "alice")
            assert done.response.status_code == 400, done.response.text
            assert "invalid_client" in done.response.text
        assert provider.tokens_issued == 0


async def test_a_method_the_providers_discovery_does_not_offer_stops_the_login(
    database_url: str, brands: Brands, tmp_path: Path
):
    with provider_at(auth_methods=[BASIC]) as provider:
        provider.add_client(CLIENT_ID, RESERVED_SECRET, method=BASIC)
        credentials = {"CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": RESERVED_SECRET}
        method = 'token_endpoint_auth_method = "client_secret_post"\n'
        async with gateway_for(
            database_url, brands, tmp_path, provider, credentials, method
        ) as gateway:
            start = await gateway.client.get("/auth/login/skyway")
            assert start.status_code == 502, start.text
            assert "client_secret_post" in start.text
        assert provider.codes_issued == 0


# 11. An issuer that ends in "/"


async def test_an_issuer_with_a_trailing_slash_signs_in_and_its_tokens_are_accepted(
    database_url: str, brands: Brands, tmp_path: Path
):
    with provider_at(trailing_slash=True) as provider:
        assert provider.issuer.endswith("/")
        provider.add_client(CLIENT_ID, RESERVED_SECRET)
        credentials = {"CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": RESERVED_SECRET}
        async with gateway_for(database_url, brands, tmp_path, provider, credentials) as gateway:
            done = await sign_in(gateway, "skyway", "alice")
            assert done.response.status_code == 303, done.response.text
            assert query_of(done.callback)["iss"] == provider.issuer  # RFC 9207, exact
            me = (await gateway.client.get("/auth/me")).json()
            assert me["issuer"] == provider.issuer  # the slash is kept
            token = provider.mint("alice", CLIENT_ID)
            answer = await bearer(gateway, token)
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"]["me"]["id"] == me["memberId"]
            stripped = provider.mint("alice", CLIENT_ID, claims={"iss": provider.issuer[:-1]})
            assert_refused(await bearer(gateway, stripped), "issuer")


# 12. Opaque access tokens, by introspection


INTROSPECTION = "introspection = true\n"


@asynccontextmanager
async def introspecting(
    database_url: str,
    brands: Brands,
    tmp_path: Path,
    method: str = BASIC,
    sign_in: str = INTROSPECTION,
    others: Callable[[Path], None] | None = None,
) -> AsyncIterator[tuple[Gateway, DevProvider]]:
    """A gateway whose skyway provider issues opaque access tokens, checked by
    introspection with the client authentication ``method``."""
    with provider_at(opaque_access_tokens=True) as provider:
        credentials = {"CLIENT_ID": CLIENT_ID}
        if method == PRIVATE_KEY_JWT:
            private_pem, public_keys = key_pair("EC")
            provider.add_client(CLIENT_ID, method=method, public_keys=public_keys)
            credentials["PRIVATE_KEY"] = private_pem
        else:
            provider.add_client(CLIENT_ID, RESERVED_SECRET, method=method)
            credentials["CLIENT_SECRET"] = RESERVED_SECRET
        settings = f'token_endpoint_auth_method = "{method}"\n{sign_in}'
        async with gateway_for(
            database_url, brands, tmp_path, provider, credentials, settings, others
        ) as gateway:
            yield gateway, provider


@pytest.mark.parametrize("method", [BASIC, POST, PRIVATE_KEY_JWT])
async def test_an_opaque_access_token_is_accepted_and_cached_for_its_lifetime(
    database_url: str, brands: Brands, tmp_path: Path, method: str
):
    async with introspecting(database_url, brands, tmp_path, method) as (gateway, provider):
        token = provider.mint_opaque("alice", CLIENT_ID, claims={"skyway_member": "SKY-1001"})
        assert token.count(".") != 2  # not a JWT
        first = await bearer(gateway, token)
        assert first.status_code == 200, first.text
        assert first.json()["data"]["me"]["identities"] == [
            {"provider": "skyway", "subject": "alice"}
        ]
        assert provider.introspections == 1
        CLOCK.now += timedelta(minutes=9)  # within the token's 10 minutes
        again = await bearer(gateway, token)
        assert again.status_code == 200, again.text
        assert again.json()["data"]["me"]["id"] == first.json()["data"]["me"]["id"]
        assert provider.introspections == 1  # answered from the cache
        CLOCK.now += timedelta(minutes=2, seconds=1)  # past exp and the 60 s leeway
        assert_refused(await bearer(gateway, token), "expired")
        assert provider.introspections == 1  # the cache knows when it ends


async def test_an_opaque_token_from_the_code_flow_is_accepted(
    database_url: str, brands: Brands, tmp_path: Path
):
    """A member's app signs in at the provider and calls with the access token it got."""
    async with introspecting(database_url, brands, tmp_path) as (gateway, provider):
        done = await sign_in(gateway, "skyway", "bob")  # the gateway's own code flow
        assert done.response.status_code == 303, done.response.text
        token = provider.mint_opaque("bob", CLIENT_ID)
        answer = await bearer(gateway, token)
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["me"]["identities"] == [
            {"provider": "skyway", "subject": "bob"}
        ]


def inactive(provider: DevProvider) -> str:
    return "an-opaque-token-the-provider-never-issued"


def expired(provider: DevProvider) -> str:
    return provider.mint_opaque("alice", CLIENT_ID, lifetime=-120)


def wrong_audience(provider: DevProvider) -> str:
    return provider.mint_opaque("alice", "another-api")


def wrong_issuer(provider: DevProvider) -> str:
    return provider.mint_opaque("alice", CLIENT_ID, claims={"iss": "https://elsewhere.example"})


def without_expiry(provider: DevProvider) -> str:
    return provider.mint_opaque("alice", CLIENT_ID, claims={"exp": None})


REFUSED: dict[str, tuple[Callable[[DevProvider], str], str]] = {
    "inactive": (inactive, "not active"),
    "expired": (expired, "not active"),
    "wrong-audience": (wrong_audience, "aud"),
    "wrong-issuer": (wrong_issuer, "issuer"),
    "no-expiry": (without_expiry, "expired"),
}


@pytest.mark.parametrize(("make", "reason"), REFUSED.values(), ids=REFUSED.keys())
async def test_an_opaque_token_failing_a_check_is_refused(
    database_url: str,
    brands: Brands,
    tmp_path: Path,
    make: Callable[[DevProvider], str],
    reason: str,
):
    async with introspecting(database_url, brands, tmp_path) as (gateway, provider):
        token = make(provider)
        assert_refused(await bearer(gateway, token), reason)
        assert_refused(await bearer(gateway, token), reason)
        assert provider.introspections == 2  # a refusal is not cached as an acceptance
        me = await gateway.client.post("/graphql", json={"query": ME})
        assert me.status_code == 401


async def test_without_introspection_an_opaque_token_is_refused_unasked(
    database_url: str, brands: Brands, tmp_path: Path
):
    async with introspecting(database_url, brands, tmp_path, sign_in="") as (gateway, provider):
        token = provider.mint_opaque("alice", CLIENT_ID)
        assert_refused(await bearer(gateway, token), "not a signed JWT")
        assert provider.introspections == 0


def brewbar_introspects(config: Path) -> None:
    brewbar = config / "brewbar.toml"
    text = brewbar.read_text()
    brewbar.write_text(text.replace("[sign_in]\n", "[sign_in]\nintrospection = true\n", 1))


async def test_with_several_introspecting_providers_the_caller_names_its_own(
    database_url: str, brands: Brands, tmp_path: Path
):
    """An opaque token is never sent to another partner's provider: with several that
    introspect, the Coalition-Provider header says which one issued it."""
    async with introspecting(database_url, brands, tmp_path, others=brewbar_introspects) as (
        gateway,
        provider,
    ):
        token = provider.mint_opaque("alice", CLIENT_ID)
        assert_refused(await bearer(gateway, token), "Coalition-Provider")
        assert_refused(await bearer(gateway, token, **{"Coalition-Provider": "nowhere"}))
        assert provider.introspections == 0
        named = await bearer(gateway, token, **{"Coalition-Provider": "skyway"})
        assert named.status_code == 200, named.text
        assert provider.introspections == 1


def test_the_assertion_the_gateway_signs_names_the_provider() -> None:
    """RFC 7523 3: iss and sub the client id, aud the provider's issuer, short-lived."""
    private_pem, public_keys = key_pair("RSA")
    environment = {f"{PREFIX}_CLIENT_ID": "gw", f"{PREFIX}_PRIVATE_KEY": private_pem}
    client = client_auth("skyway", PRIVATE_KEY_JWT, environment.get)
    headers, form = client.apply({"grant_type": "x"}, "https://login.example/", 1_000_000)
    assert headers == {} and form["client_assertion_type"] == ASSERTION_TYPE
    keys = jwk.KeySet.import_key_set(public_keys)  # type: ignore[arg-type]
    claims = jwt.decode(form["client_assertion"], keys, algorithms=["RS256"]).claims
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("gw", "gw", "https://login.example/")
    assert claims["exp"] - claims["iat"] == 60 and claims["jti"]
