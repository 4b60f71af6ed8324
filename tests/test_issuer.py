"""The gateway's own authorization server: client credentials over HTTP, the access tokens'
verification, and signing-key rotation, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
import sqlalchemy as sa
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from gateway.api.settings import Settings
from gateway.auth import clients
from gateway.auth.errors import InvalidToken
from gateway.auth.issuer import TokenIssuer
from gateway.auth.keys import KeyStore
from gateway.auth.principal import PARTNER_SCOPES, OperatorPrincipal, PartnerPrincipal
from gateway.auth.tables import signing_keys
from tests.conftest import Gateway

LIFETIME = 600
SEALER = Settings().sealer()  # the gateways under test use the development master key


def _issuer(gateway: Gateway) -> TokenIssuer:
    issuer: TokenIssuer = gateway.app.state.issuer
    return issuer


async def _client(
    gateway: Gateway,
    partner: str | None = "skyway",
    scopes: set[str] | None = None,
    secret: str | None = None,
) -> tuple[str, str]:
    return await clients.create_client(
        gateway.service.engine, partner, scopes, secret=secret, now=gateway.clock()
    )


async def _post_token(
    gateway: Gateway,
    data: dict[str, str] | None = None,
    basic: tuple[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if basic is not None:
        pair = f"{quote_plus(basic[0])}:{quote_plus(basic[1])}".encode()
        headers["authorization"] = "Basic " + base64.b64encode(pair).decode()
    return await gateway.client.post("/oauth/token", data=data, headers=headers, **kwargs)


async def _token(gateway: Gateway, client_id: str, secret: str, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    response = await _post_token(gateway, data, basic=(client_id, secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert response.headers["www-authenticate"] == 'Basic realm="coalition"'


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    pad = "=="
    return (
        json.loads(base64.urlsafe_b64decode(header + pad)),
        json.loads(base64.urlsafe_b64decode(payload + pad)),
    )


async def test_partner_token_by_basic_auth_verifies_against_the_jwks(gateway: Gateway) -> None:
    client_id, secret = await _client(gateway)
    response = await _post_token(gateway, {"grant_type": "client_credentials"}, (client_id, secret))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == LIFETIME
    assert set(body["scope"].split()) == PARTNER_SCOPES

    jwks = (await gateway.client.get("/.well-known/jwks.json")).json()
    assert all(key["alg"] == "RS256" and key["use"] == "sig" for key in jwks["keys"])
    assert not any("d" in key for key in jwks["keys"])  # no private parts
    decoded = jwt.decode(body["access_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    issuer = _issuer(gateway)
    assert decoded.header["typ"] == "at+jwt" and decoded.header["alg"] == "RS256"
    assert decoded.header["kid"] in {key["kid"] for key in jwks["keys"]}
    claims = decoded.claims
    assert claims["iss"] == issuer.issuer and claims["aud"] == f"{issuer.issuer}/graphql"
    assert claims["sub"] == claims["client_id"] == client_id
    assert claims["partner"] == "skyway" and "roles" not in claims
    assert claims["iat"] == claims["nbf"] == int(gateway.clock().timestamp())
    assert claims["exp"] == claims["iat"] + LIFETIME and claims["jti"]

    principal = await issuer.verify(body["access_token"])
    assert principal == PartnerPrincipal("skyway", client_id, PARTNER_SCOPES)
    assert issuer.looks_like_ours(body["access_token"])


async def test_operator_token_by_body_credentials(gateway: Gateway) -> None:
    client_id, secret = await _client(gateway, partner=None)
    data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    response = await _post_token(gateway, data)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "operator"
    token = response.json()["access_token"]
    _, claims = _unverified(token)
    assert claims["roles"] == ["operator"] and "partner" not in claims
    issuer = _issuer(gateway)
    assert await issuer.verify(token) == OperatorPrincipal(client_id, issuer.issuer, client=True)


async def test_basic_credentials_are_form_url_decoded(gateway: Gateway) -> None:
    secret = "p@ss:w rd+%/é-secret-of-32-or-more-characters"
    client_id, _ = await _client(gateway, secret=secret)
    await _token(gateway, client_id, secret)  # _post_token form-encodes both parts


async def test_bad_credentials_are_invalid_client(gateway: Gateway) -> None:
    client_id, secret = await _client(gateway)
    grant = {"grant_type": "client_credentials"}
    for basic in [(client_id, secret + "x"), ("skyway-nobody", secret), (client_id, "")]:
        _assert_oauth_error(await _post_token(gateway, grant, basic), 401, "invalid_client")
    _assert_oauth_error(await _post_token(gateway, grant), 401, "invalid_client")
    body = {**grant, "client_id": client_id}  # no secret
    _assert_oauth_error(await _post_token(gateway, body), 401, "invalid_client")
    bearer = {"authorization": "Bearer abc"}
    _assert_oauth_error(await _post_token(gateway, grant, headers=bearer), 401, "invalid_client")
    garbage = {"authorization": "Basic !!!"}
    _assert_oauth_error(await _post_token(gateway, grant, headers=garbage), 401, "invalid_client")

    both = {**grant, "client_id": client_id, "client_secret": secret}
    _assert_oauth_error(
        await _post_token(gateway, both, (client_id, secret)), 400, "invalid_request"
    )
    other_id = {**grant, "client_id": "someone-else"}
    _assert_oauth_error(
        await _post_token(gateway, other_id, (client_id, secret)), 400, "invalid_request"
    )


async def test_a_disabled_client_gets_no_token_but_its_tokens_live_until_expiry(
    gateway: Gateway,
) -> None:
    client_id, secret = await _client(gateway)
    token = await _token(gateway, client_id, secret)
    record = await clients.disable_client(gateway.service.engine, client_id, gateway.clock())
    assert record.disabled_at == gateway.clock()
    response = await _post_token(gateway, {"grant_type": "client_credentials"}, (client_id, secret))
    _assert_oauth_error(response, 401, "invalid_client")
    assert await clients.authenticate(gateway.service.engine, client_id, secret) is None
    # Documented: verification does not look the client up; the token lives until it expires.
    assert isinstance(await _issuer(gateway).verify(token), PartnerPrincipal)
    gateway.clock.now += timedelta(seconds=LIFETIME + 61)
    with pytest.raises(InvalidToken, match="token expired"):
        await _issuer(gateway).verify(token)


async def test_a_rotated_secret_replaces_the_old_one_at_once(gateway: Gateway) -> None:
    client_id, old = await _client(gateway)
    new = await clients.rotate_secret(gateway.service.engine, client_id, gateway.clock())
    assert new != old
    grant = {"grant_type": "client_credentials"}
    _assert_oauth_error(await _post_token(gateway, grant, (client_id, old)), 401, "invalid_client")
    await _token(gateway, client_id, new)
    with pytest.raises(clients.ClientError, match="unknown client"):
        await clients.rotate_secret(gateway.service.engine, "nobody", gateway.clock())


async def test_scope_narrowing_and_invalid_scope(gateway: Gateway) -> None:
    client_id, secret = await _client(gateway, scopes={"points:earn", "members:read"})
    response = await _post_token(
        gateway, {"grant_type": "client_credentials", "scope": "points:earn"}, (client_id, secret)
    )
    assert response.json()["scope"] == "points:earn"
    principal = await _issuer(gateway).verify(response.json()["access_token"])
    assert principal == PartnerPrincipal("skyway", client_id, frozenset({"points:earn"}))

    everything = await _post_token(
        gateway, {"grant_type": "client_credentials"}, (client_id, secret)
    )
    assert everything.json()["scope"] == "members:read points:earn"
    for scope in ["points:redeem", "points:earn operator", "nonsense"]:
        response = await _post_token(
            gateway, {"grant_type": "client_credentials", "scope": scope}, (client_id, secret)
        )
        _assert_oauth_error(response, 400, "invalid_scope")


async def test_malformed_token_requests(gateway: Gateway) -> None:
    client_id, secret = await _client(gateway)
    auth = (client_id, secret)
    response = await _post_token(gateway, {"grant_type": "password"}, auth)
    _assert_oauth_error(response, 400, "unsupported_grant_type")
    _assert_oauth_error(await _post_token(gateway, {}, auth), 400, "invalid_request")
    as_json = await _post_token(gateway, json={"grant_type": "client_credentials"}, basic=auth)
    _assert_oauth_error(as_json, 400, "invalid_request")
    repeated = await _post_token(
        gateway,
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"content-type": "application/x-www-form-urlencoded"},
        basic=auth,
    )
    _assert_oauth_error(repeated, 400, "invalid_request")
    huge = {"grant_type": "client_credentials", "scope": "x" * 9000}
    _assert_oauth_error(await _post_token(gateway, huge, auth), 413, "invalid_request")
    assert (await gateway.client.get("/oauth/token")).status_code == 405
    # A charset parameter on the media type is fine.
    fine = await _post_token(
        gateway,
        content=b"grant_type=client_credentials",
        headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"},
        basic=auth,
    )
    assert fine.status_code == 200, fine.text


async def test_metadata_document(gateway: Gateway) -> None:
    response = await gateway.client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    document = response.json()
    issuer = _issuer(gateway).issuer
    assert document["issuer"] == issuer
    assert document["token_endpoint"] == f"{issuer}/oauth/token"
    assert document["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert document["grant_types_supported"] == ["client_credentials"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert set(document["scopes_supported"]) == PARTNER_SCOPES | {"operator"}


async def _jwks_kids(gateway: Gateway) -> set[str]:
    return {
        key["kid"] for key in (await gateway.client.get("/.well-known/jwks.json")).json()["keys"]
    }


async def test_key_rotation_keeps_old_tokens_valid_until_they_expire(gateway: Gateway) -> None:
    issuer = _issuer(gateway)
    client_id, secret = await _client(gateway)
    old_token = await _token(gateway, client_id, secret)
    old_kid = _unverified(old_token)[0]["kid"]

    new_kid = await issuer.keys.rotate()
    assert new_kid != old_kid
    assert isinstance(await issuer.verify(old_token), PartnerPrincipal)
    new_token = await _token(gateway, client_id, secret)
    assert _unverified(new_token)[0]["kid"] == new_kid
    assert await _jwks_kids(gateway) == {old_kid, new_kid}

    gateway.clock.now += timedelta(seconds=LIFETIME + 59)
    assert await _jwks_kids(gateway) == {old_kid, new_kid}
    gateway.clock.now += timedelta(seconds=2)
    assert await _jwks_kids(gateway) == {new_kid}
    assert await issuer.keys.key_for(old_kid) is None
    with pytest.raises(InvalidToken, match="unknown key"):
        await issuer.verify(old_token)


async def test_another_processs_rotation_is_picked_up(gateway: Gateway) -> None:
    issuer = _issuer(gateway)
    other = KeyStore(gateway.service.engine, gateway.clock, LIFETIME, SEALER)
    await other.start()
    first_kid, _ = await issuer.keys.current()
    assert (await other.current())[0] == first_kid  # no second key at start

    second_kid = await other.rotate()
    other_issuer = TokenIssuer(
        gateway.service.engine, other, issuer.issuer, LIFETIME, gateway.clock
    )
    client_id, secret = await _client(gateway)
    token = (await other_issuer.client_credentials(client_id, secret, None))["access_token"]
    # An unknown kid reloads at most once per 10 s ...
    assert (await issuer.keys.current())[0] == first_kid
    with pytest.raises(InvalidToken, match="unknown key"):
        await issuer.verify(token)
    gateway.clock.now += timedelta(seconds=10)
    assert isinstance(await issuer.verify(token), PartnerPrincipal)
    assert (await issuer.keys.current())[0] == second_kid  # a reload refreshes every key
    # ... and the signing key is re-read at most every 30 s.
    third_kid = await other.rotate()
    gateway.clock.now += timedelta(seconds=29)
    assert (await issuer.keys.current())[0] == second_kid
    gateway.clock.now += timedelta(seconds=1)
    assert (await issuer.keys.current())[0] == third_kid


async def test_processes_starting_at_once_create_one_first_key(gateway: Gateway) -> None:
    engine = gateway.service.engine
    async with engine.begin() as connection:
        await connection.execute(sa.delete(signing_keys))
    stores = [KeyStore(engine, gateway.clock, LIFETIME, SEALER) for _ in range(4)]
    await asyncio.gather(*(store.start() for store in stores))
    currents = {(await store.current())[0] for store in stores}
    assert len(currents) == 1
    for store in stores:
        assert {key["kid"] for key in (await store.public_jwks())["keys"]} == currents
    async with engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(signing_keys)) == 1


def _forge(header: dict[str, Any], claims: dict[str, Any], key: RSAKey) -> str:
    return jwt.encode(header, claims, key, algorithms=["RS256"], default_type=None)


async def test_verify_refuses_forged_and_unfit_tokens(gateway: Gateway) -> None:
    issuer = _issuer(gateway)
    client_id, secret = await _client(gateway)
    token = await _token(gateway, client_id, secret)
    header, claims = _unverified(token)
    kid, key = await issuer.keys.current()
    now = int(gateway.clock().timestamp())

    def signed(header_changes: dict[str, Any] | None = None, **claim_changes: Any) -> str:
        forged_claims = {**claims, **claim_changes}
        for name, value in claim_changes.items():
            if value is None:
                del forged_claims[name]
        forged_header = {**header, **(header_changes or {})}
        forged_header = {k: v for k, v in forged_header.items() if v is not None}
        return _forge(forged_header, forged_claims, key)

    payload = _b64(json.dumps(claims).encode())
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": kid}).encode())
    public_pem = key.as_pem(private=False)
    hs_signature = hmac.new(public_pem, f"{hs_header}.{payload}".encode(), hashlib.sha256)
    none_header = _b64(json.dumps({"alg": "none", "typ": "at+jwt", "kid": kid}).encode())
    stranger = RSAKey.generate_key(2048, parameters={"kid": "stranger", "alg": "RS256"})
    head, body, signature = token.split(".")
    middle = len(signature) // 2
    flipped = (
        signature[:middle] + ("A" if signature[middle] != "A" else "B") + signature[middle + 1 :]
    )
    other_body = _b64(json.dumps({**claims, "partner": "brewbar"}).encode())

    cases = {
        "expired": (signed(iat=now - 900, nbf=now - 900, exp=now - 61), "token expired"),
        "not yet valid": (signed(nbf=now + 61), "invalid nbf"),
        "issued in the future": (signed(iat=now + 61, nbf=now), "invalid iat"),
        "wrong audience": (signed(aud="https://elsewhere/graphql"), "invalid aud"),
        "wrong issuer": (signed(iss="https://elsewhere"), "invalid iss"),
        "no jti": (signed(jti=None), "missing claim"),
        "no typ": (signed({"typ": None}), "not an access token"),
        "typ JWT": (signed({"typ": "JWT"}), "not an access token"),
        "no kid": (signed({"kid": None}), "missing key id"),
        "alg none": (f"{none_header}.{payload}.", "unsupported algorithm"),
        "HS256 keyed with the public key": (
            f"{hs_header}.{payload}.{_b64(hs_signature.digest())}",
            "unsupported algorithm",
        ),
        "unknown kid": (
            _forge({**header, "kid": "stranger"}, claims, stranger),
            "unknown key",
        ),
        "our kid, another key": (_forge(header, claims, stranger), "bad signature"),
        "tampered signature": (f"{head}.{body}.{flipped}", "bad signature"),
        "tampered payload": (f"{head}.{other_body}.{signature}", "bad signature"),
        "garbage": ("not.a.jwt", "malformed token"),
        "two parts": (f"{head}.{body}", "malformed token"),
    }
    for name, (forged, reason) in cases.items():
        with pytest.raises(InvalidToken) as raised:
            await issuer.verify(forged)
        assert raised.value.reason == reason, name

    # Within the 60 s leeway the same shapes pass.
    assert await issuer.verify(signed(nbf=now + 59, iat=now + 59))
    assert await issuer.verify(signed(exp=now - 59))
    assert not issuer.looks_like_ours(signed(iss="https://elsewhere"))
    assert not issuer.looks_like_ours("not.a.jwt")
    assert not issuer.looks_like_ours("")


async def test_demo_clients_are_created_once(gateway: Gateway) -> None:
    engine = gateway.service.engine
    partners = ["skyway", "brewbar", "freshmart"]
    await clients.ensure_demo_clients(engine, partners, gateway.clock())
    rotated = await clients.rotate_secret(engine, "skyway-app", gateway.clock())
    await clients.ensure_demo_clients(engine, partners, gateway.clock())  # leaves it alone
    listed = {record.client_id: record for record in await clients.list_clients(engine)}
    assert set(listed) == {"skyway-app", "brewbar-app", "freshmart-app", "operator-console"}
    assert listed["brewbar-app"].scopes == PARTNER_SCOPES
    assert listed["operator-console"].operator
    assert await clients.authenticate(engine, "skyway-app", rotated)
    assert await clients.authenticate(engine, "skyway-app", "skyway-demo-secret") is None
    assert await clients.authenticate(engine, "brewbar-app", "brewbar-demo-secret")
    token = await _token(gateway, "operator-console", "operator-demo-secret")
    assert isinstance(await _issuer(gateway).verify(token), OperatorPrincipal)


async def test_client_input_is_checked(gateway: Gateway) -> None:
    engine, now = gateway.service.engine, gateway.clock()
    refused: list[tuple[str | None, set[str] | None, dict[str, Any], str]] = [
        ("skyway", {"operator"}, {}, "unknown partner scope"),
        ("skyway", set(), {}, "at least one scope"),
        (None, {"points:earn"}, {}, "exactly the scope"),
        ("nope", None, {"known_partners": ["skyway"]}, "unknown partner 'nope'"),
        ("Sky Way", None, {}, "not a partner slug"),
        ("skyway", None, {"client_id": "bad id"}, "a client id is"),
        ("skyway", None, {"secret": "short"}, "a client secret is"),
        ("skyway", None, {"secret": "x" * 31}, "a client secret is 32 to 256"),
        ("skyway", None, {"secret": "x" * 257}, "a client secret is"),
        ("skyway", None, {"secret": "tab\there" + "x" * 32}, "printable"),
    ]
    for partner, scopes, options, message in refused:
        with pytest.raises(clients.ClientError, match=message):
            await clients.create_client(engine, partner, scopes, now=now, **options)
    await clients.create_client(engine, "skyway", None, "taken", now=now)
    with pytest.raises(clients.ClientExists):
        await clients.create_client(engine, "skyway", None, "taken", now=now)


def test_secret_hash_format() -> None:
    secret = clients.new_secret()
    assert len(secret) >= clients.MIN_SECRET == 32
    stored = clients.hash_secret(secret)
    assert stored == "sha256$" + hashlib.sha256(secret.encode()).hexdigest()
    assert clients.verify_secret(secret, stored)
    assert not clients.verify_secret(secret + "!", stored)
    assert not clients.verify_secret(secret, stored.replace("sha256$", "md5$"))
    assert not clients.verify_secret(secret, "sha256$" + "00" * 32)
    assert not clients.verify_secret(secret, "sha256$zz")
    assert not clients.verify_secret(secret, "garbage")
    assert not clients.verify_secret("\ud800", stored)  # a lone surrogate does not raise


async def test_token_attempts_cost_one_fast_hash_each(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No slow password hash an unauthenticated caller could make the server spend CPU on,
    and the same work (one hash and comparison) whether the client exists or not."""

    def no_scrypt(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("scrypt on the token endpoint")

    monkeypatch.setattr(hashlib, "scrypt", no_scrypt)
    verified: list[str] = []
    real_verify = clients.verify_secret

    def spy(secret: str, stored: str) -> bool:
        verified.append(stored)
        return real_verify(secret, stored)

    monkeypatch.setattr(clients, "verify_secret", spy)
    engine = gateway.service.engine
    client_id, secret = await _client(gateway)
    disabled_id, disabled_secret = await _client(gateway)
    await clients.disable_client(engine, disabled_id, gateway.clock())

    assert await clients.authenticate(engine, client_id, secret) is not None
    attempts = [
        (client_id, secret + "x"),
        (client_id, ""),
        ("skyway-nobody", secret),
        ("bad id", secret),
        (client_id, "x" * (clients.MAX_SECRET + 1)),
        (disabled_id, disabled_secret),
    ]
    for attempt in attempts:
        assert await clients.authenticate(engine, *attempt) is None, attempt
    await _token(gateway, client_id, secret)
    response = await _post_token(gateway, {"grant_type": "client_credentials"}, ("nobody", secret))
    _assert_oauth_error(response, 401, "invalid_client")
    assert len(verified) == len(attempts) + 3
    assert all(stored.startswith("sha256$") and len(stored) == 71 for stored in verified)
