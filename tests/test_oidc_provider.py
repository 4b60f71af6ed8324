"""The development OpenID Connect provider, over real HTTP: discovery, the code flow with
PKCE, state and nonce, the token endpoint's refusals, userinfo, key rotation and minting."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from joserfc import jwk, jwt
from joserfc.errors import BadSignatureError
from starlette.applications import Starlette
from starlette.routing import Mount

from partners.development.oidc_provider import DevProvider, serve_in_thread
from partners.development.oidc_users import DevUser

CLIENT, SECRET = "gateway", "gateway-secret"
ODD_CLIENT, ODD_SECRET = "odd:client", "p@ss word+/=%"
REDIRECT = "http://127.0.0.1:9/auth/callback?from=skyway"
ALICE = DevUser("SKY-1001", "Alice Sky", {"skyway_member": "SKY-1001", "roles": ["member"]})
OPERATOR = DevUser("ops-1", "Olga <Ops>", {"roles": ["coalition-operator"]})


class Clock:
    """A clock the tests move; starts at the real time so joserfc's defaults agree."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Pkce:
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class FormParser(HTMLParser):
    """The sign-in form: action, hidden fields and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: list[tuple[str, str]] = []
        self.buttons: list[tuple[str, str]] = []
        self.checkboxes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = found["action"]
        elif tag == "input" and found.get("type") == "hidden":
            self.hidden.append((found["name"], found["value"]))
        elif tag == "input" and found.get("type") == "checkbox":
            self.checkboxes.append(found["name"])
        elif tag == "button":
            self.buttons.append((found["name"], found["value"]))


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def served(clock: Clock) -> Iterator[DevProvider]:
    def build(issuer: str) -> DevProvider:
        provider = DevProvider(issuer, {CLIENT: SECRET}, [ALICE], title="SkyWay", clock=clock)
        provider.add_client(ODD_CLIENT, ODD_SECRET)
        provider.add_user(OPERATOR)
        return provider

    with serve_in_thread(build) as provider:
        yield provider


@pytest.fixture
def provider(served: DevProvider, clock: Clock) -> DevProvider:
    clock.now = time.time()
    return served


@pytest.fixture
def http(provider: DevProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=provider.issuer, timeout=5) as client:
        yield client


def authorization_params(pkce: Pkce | None = None, /, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": (pkce or Pkce()).challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {name: value for name, value in params.items() if value is not None}


def sign_in_form(http: httpx.Client, params: dict[str, str]) -> FormParser:
    page = http.get("/authorize", params=params)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    form = FormParser()
    form.feed(page.text)
    return form


def redirect_query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code in (302, 303), response.text
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:9/auth/callback?from=skyway&")
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def sign_in(
    http: httpx.Client,
    pkce: Pkce | None = None,
    *,
    subject: str = ALICE.subject,
    mfa: bool = False,
    **overrides: str | None,
) -> str:
    """GET the form, submit it as ``subject``; the code from the redirect."""
    form = sign_in_form(http, authorization_params(pkce, **overrides))
    data = dict(form.hidden)
    data["subject"] = subject
    if mfa:
        data["mfa"] = "1"
    answer = redirect_query(http.post(form.action, data=data))
    assert answer["state"] == overrides.get("state", "state-123")
    return answer["code"]


def exchange(
    http: httpx.Client, code: str, verifier: str | None, **overrides: str | None
) -> httpx.Response:
    data: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        **overrides,
    }
    body = {name: value for name, value in data.items() if value is not None}
    return http.post("/token", data=body, auth=(CLIENT, SECRET))


def verified(http: httpx.Client, token: str, clock: Clock) -> dict[str, Any]:
    keys = jwk.KeySet.import_key_set(http.get("/jwks").json())
    claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
    jwt.JWTClaimsRegistry(now=int(clock()), exp={"essential": True}).validate(claims)
    return claims


def test_discovery_document(http: httpx.Client, provider: DevProvider) -> None:
    document = http.get("/.well-known/openid-configuration").json()
    issuer = provider.issuer
    assert issuer.startswith("http://127.0.0.1:")
    assert document["issuer"] == issuer
    assert document["authorization_endpoint"] == f"{issuer}/authorize"
    assert document["token_endpoint"] == f"{issuer}/token"
    assert document["userinfo_endpoint"] == f"{issuer}/userinfo"
    assert document["jwks_uri"] == f"{issuer}/jwks"
    assert document["end_session_endpoint"] == f"{issuer}/logout"
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code"]
    assert document["subject_types_supported"] == ["public"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ]
    assert document["introspection_endpoint"] == f"{issuer}/introspect"
    assert document["scopes_supported"] == ["openid", "profile"]
    assert {"sub", "nonce", "acr", "amr", "name", "skyway_member", "roles"} <= set(
        document["claims_supported"]
    )


def test_jwks_holds_only_public_signing_keys(http: httpx.Client, provider: DevProvider) -> None:
    keys = http.get("/jwks").json()["keys"]
    assert keys == provider.jwks["keys"]
    assert [key["kid"] for key in keys][-1] == provider.signing_key.kid
    for key in keys:
        assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")
        assert {"n", "e"} <= set(key) and not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_code_flow_with_pkce_state_and_nonce(
    http: httpx.Client, provider: DevProvider, clock: Clock
) -> None:
    pkce = Pkce()
    form = sign_in_form(http, authorization_params(pkce))
    assert form.action == f"{provider.issuer}/authorize"
    assert dict(form.hidden) == authorization_params(pkce)
    assert ("subject", ALICE.subject) in form.buttons and ("subject", "ops-1") in form.buttons
    assert ("deny", "1") in form.buttons and form.checkboxes == ["mfa"]
    codes, tokens = provider.codes_issued, provider.tokens_issued

    code = sign_in(http, pkce)
    response = exchange(http, code, pkce.verifier)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600 and body["scope"] == "openid profile"
    claims = verified(http, body["id_token"], clock)
    assert claims["iss"] == provider.issuer and claims["aud"] == CLIENT
    assert claims["sub"] == "SKY-1001" and claims["name"] == "Alice Sky"
    assert claims["nonce"] == "nonce-456"
    assert claims["skyway_member"] == "SKY-1001" and claims["roles"] == ["member"]
    assert claims["amr"] == ["pwd"] and "acr" not in claims
    assert claims["exp"] == claims["iat"] + 600 and claims["auth_time"] <= claims["iat"]
    digest = hashlib.sha256(body["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    access = verified(http, body["access_token"], clock)
    assert access["scope"] == "openid profile" and access["client_id"] == CLIENT
    assert access["aud"] == CLIENT and access["skyway_member"] == "SKY-1001"
    assert (provider.codes_issued, provider.tokens_issued) == (codes + 1, tokens + 1)


def test_mfa_gives_acr_and_amr(http: httpx.Client, clock: Clock) -> None:
    pkce = Pkce()
    body = exchange(http, sign_in(http, pkce, mfa=True), pkce.verifier).json()
    for token in (body["id_token"], body["access_token"]):
        claims = verified(http, token, clock)
        assert claims["acr"] == "mfa" and claims["amr"] == ["pwd", "otp"]


def test_free_text_subject_signs_in_a_new_user(http: httpx.Client, clock: Clock) -> None:
    pkce = Pkce()
    form = sign_in_form(http, authorization_params(pkce))
    data = {**dict(form.hidden), "subject": "", "other_subject": " guest-7 "}
    code = redirect_query(http.post(form.action, data=data))["code"]
    body = exchange(http, code, pkce.verifier).json()
    claims = verified(http, body["id_token"], clock)
    assert (claims["sub"], claims["name"]) == ("guest-7", "guest-7")
    assert "roles" not in claims
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.json() == {"sub": "guest-7", "name": "guest-7"}


def test_deny_redirects_with_access_denied(http: httpx.Client) -> None:
    form = sign_in_form(http, authorization_params())
    answer = redirect_query(http.post(form.action, data={**dict(form.hidden), "deny": "1"}))
    assert answer["error"] == "access_denied" and answer["state"] == "state-123"
    assert "code" not in answer


def test_a_code_is_single_use(http: httpx.Client) -> None:
    pkce = Pkce()
    code = sign_in(http, pkce)
    first = exchange(http, code, pkce.verifier)
    assert first.status_code == 200
    again = exchange(http, code, pkce.verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    # The replay revoked the access token the first redemption issued.
    bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert http.get("/userinfo", headers=bearer).status_code == 401


@pytest.mark.parametrize("verifier", ["wrong-" + "v" * 50, None, "short"])
def test_a_wrong_or_missing_verifier_is_refused(http: httpx.Client, verifier: str | None) -> None:
    code = sign_in(http, Pkce())
    response = exchange(http, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
    ],
)
def test_authorization_errors_redirect_with_state(
    http: httpx.Client, overrides: dict[str, str | None], error: str
) -> None:
    response = http.get("/authorize", params=authorization_params(**overrides))
    assert response.status_code == 302
    answer = redirect_query(response)
    assert answer["error"] == error and answer["state"] == "state-123"
    assert "code" not in answer


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "stranger"},
        {"client_id": None},
        {"redirect_uri": None},
        {"redirect_uri": "/relative/callback"},
        {"redirect_uri": "javascript:alert(1)//"},
    ],
)
def test_unredirectable_errors_show_a_400_page(
    http: httpx.Client, overrides: dict[str, str | None]
) -> None:
    response = http.get("/authorize", params=authorization_params(**overrides))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers


def test_the_form_escapes_what_it_shows(http: httpx.Client) -> None:
    page = http.get("/authorize", params=authorization_params(state='"><script>x</script>'))
    assert "<script>" not in page.text
    assert "Olga &lt;Ops&gt;" in page.text


def test_client_authentication(http: httpx.Client) -> None:
    pkce = Pkce()
    wrong = http.post(
        "/token",
        data={"grant_type": "authorization_code", "code": sign_in(http, pkce)},
        auth=(CLIENT, "not-the-secret"),
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    missing = http.post("/token", data={"grant_type": "authorization_code", "code": "x"})
    assert missing.status_code == 401 and missing.json()["error"] == "invalid_client"

    # client_secret_basic URL-encodes id and secret (RFC 6749 section 2.3.1) ...
    pkce = Pkce()
    code = sign_in(http, pkce, client_id=ODD_CLIENT)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    data["code_verifier"] = pkce.verifier
    encoded = (quote(ODD_CLIENT, safe=""), quote(ODD_SECRET, safe=""))
    assert http.post("/token", data=data, auth=encoded).status_code == 200
    # ... and client_secret_post sends them in the body.
    pkce = Pkce()
    data["code"], data["code_verifier"] = sign_in(http, pkce), pkce.verifier
    posted = {**data, "client_id": CLIENT, "client_secret": SECRET}
    assert http.post("/token", data=posted).status_code == 200


def test_an_expired_code_is_refused(http: httpx.Client, clock: Clock) -> None:
    pkce = Pkce()
    code = sign_in(http, pkce)
    clock.now += 61
    response = exchange(http, code, pkce.verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_the_redirect_uri_must_match(http: httpx.Client) -> None:
    pkce = Pkce()
    code = sign_in(http, pkce)
    response = exchange(http, code, pkce.verifier, redirect_uri="http://127.0.0.1:9/other")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_a_code_belongs_to_its_client(http: httpx.Client) -> None:
    pkce = Pkce()
    code = sign_in(http, pkce, client_id=ODD_CLIENT)
    response = exchange(http, code, pkce.verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_userinfo_takes_the_access_token(http: httpx.Client, provider: DevProvider) -> None:
    pkce = Pkce()
    body = exchange(http, sign_in(http, pkce), pkce.verifier).json()
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json() == {
        "sub": "SKY-1001",
        "name": "Alice Sky",
        "skyway_member": "SKY-1001",
        "roles": ["member"],
    }
    assert http.get("/userinfo").status_code == 401
    for token in (body["id_token"], body["access_token"] + "x"):
        refused = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    stale = provider.mint("SKY-1001", CLIENT, claims={"scope": "openid"}, lifetime=-1)
    assert http.get("/userinfo", headers={"Authorization": f"Bearer {stale}"}).status_code == 401


def test_rotate_key_keeps_the_old_key_published(clock: Clock) -> None:
    def build(issuer: str) -> DevProvider:
        return DevProvider(issuer, {CLIENT: SECRET}, [ALICE], clock=clock)

    with serve_in_thread(build) as provider, httpx.Client(base_url=provider.issuer) as http:
        old = provider.signing_key.kid
        old_token = provider.mint("SKY-1001", CLIENT)
        new = provider.rotate_key()
        assert new != old and provider.signing_key.kid == new
        assert [key["kid"] for key in http.get("/jwks").json()["keys"]] == [old, new]
        pkce = Pkce()
        body = exchange(http, sign_in(http, pkce), pkce.verifier).json()
        assert jwt.decode(body["id_token"], provider.signing_key).header["kid"] == new
        assert verified(http, old_token, clock)["sub"] == "SKY-1001"


def test_mint_overrides_claims_and_header(provider: DevProvider, clock: Clock) -> None:
    token = provider.mint(
        "SKY-1001",
        ["gateway", "other"],
        claims={"iss": "https://elsewhere", "nbf": None, "roles": ["x"]},
        lifetime=30,
        header={"kid": "forged", "typ": None},
    )
    decoded = jwt.decode(token, provider.signing_key)
    assert decoded.header == {"alg": "RS256", "kid": "forged"}
    claims = decoded.claims
    assert claims["iss"] == "https://elsewhere" and "nbf" not in claims
    assert claims["aud"] == ["gateway", "other"] and claims["roles"] == ["x"]
    assert claims["exp"] == claims["iat"] + 30 == int(clock()) + 30 and claims["jti"]

    plain = jwt.decode(provider.mint("SKY-1001", "gateway"), provider.signing_key)
    assert plain.header == {"alg": "RS256", "kid": provider.signing_key.kid, "typ": "JWT"}
    assert set(plain.claims) == {"iss", "sub", "aud", "iat", "nbf", "exp", "jti"}

    other = jwk.RSAKey.generate_key(2048, private=True)
    forged = provider.mint("SKY-1001", "gateway", key=other)
    with pytest.raises(BadSignatureError):
        jwt.decode(forged, jwk.KeySet.import_key_set({"keys": provider.jwks["keys"]}))


def test_logout(http: httpx.Client) -> None:
    back = http.get(
        "/logout", params={"post_logout_redirect_uri": "http://127.0.0.1:9/bye", "state": "s"}
    )
    assert back.status_code == 302 and back.headers["location"] == "http://127.0.0.1:9/bye?state=s"
    page = http.get("/logout")
    assert page.status_code == 200 and "signed out" in page.text


async def test_mounted_under_a_prefix(clock: Clock) -> None:
    issuer = "http://gateway/dev/oidc/x"
    provider = DevProvider(issuer + "/", {CLIENT: SECRET}, [ALICE], clock=clock)
    app = Starlette(routes=[Mount("/dev/oidc/x", app=provider.app)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=issuer + "/") as http:
        document = (await http.get(".well-known/openid-configuration")).json()
        # The issuer is kept exactly, its trailing slash included; endpoints sit below it.
        assert provider.issuer == document["issuer"] == issuer + "/"
        assert document["jwks_uri"] == f"{issuer}/jwks"
        pkce = Pkce()
        page = await http.get(document["authorization_endpoint"], params=authorization_params(pkce))
        form = FormParser()
        form.feed(page.text)
        assert form.action == f"{issuer}/authorize"
        signed_in = await http.post(form.action, data={**dict(form.hidden), "subject": "SKY-1001"})
        code = redirect_query(signed_in)["code"]
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        data |= {"code_verifier": pkce.verifier, "client_id": CLIENT, "client_secret": SECRET}
        body = (await http.post(document["token_endpoint"], data=data)).json()
        keys = jwk.KeySet.import_key_set((await http.get(document["jwks_uri"])).json())
        claims = jwt.decode(body["id_token"], keys, algorithms=["RS256"]).claims
        assert (claims["iss"], claims["aud"], claims["nonce"]) == (
            issuer + "/",
            CLIENT,
            "nonce-456",
        )
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        info = await http.get(document["userinfo_endpoint"], headers=bearer)
        assert info.json()["sub"] == "SKY-1001"


# Client assertions (private_key_jwt) and introspection (opaque access tokens)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def assertion(key: jwk.ECKey, client_id: str, audience: str, clock: Clock, **claims: Any) -> str:
    now = int(clock())
    payload = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now}
    payload |= {"exp": now + 60, "jti": secrets.token_urlsafe(8), **claims}
    return jwt.encode({"alg": "ES256", "kid": key.kid}, payload, key, algorithms=["ES256"])


def test_private_key_jwt_is_verified_against_the_registered_keys(
    http: httpx.Client, provider: DevProvider, clock: Clock
) -> None:
    key = jwk.ECKey.generate_key("P-256", private=True)
    key.ensure_kid()
    client = f"jwt-{secrets.token_hex(4)}"
    public = {"keys": [dict(key.as_dict(private=False))]}
    provider.add_client(client, method="private_key_jwt", public_keys=public)
    opaque = provider.mint_opaque("SKY-1001", client)

    def introspect(signed: str) -> httpx.Response:
        form = {"token": opaque, "client_assertion_type": ASSERTION_TYPE}
        return http.post("/introspect", data={**form, "client_assertion": signed})

    good = assertion(key, client, provider.issuer, clock)
    assert introspect(good).json()["active"] is True
    assert introspect(good).status_code == 401  # an assertion is single use
    endpoint = assertion(key, client, f"{provider.issuer}/introspect", clock)
    assert introspect(endpoint).status_code == 200  # the endpoint called may be the aud
    other = jwk.ECKey.generate_key("P-256", private=True)
    other.ensure_kid()
    refused = [
        assertion(key, client, "https://elsewhere.example", clock),
        assertion(key, client, provider.issuer, clock, exp=int(clock()) - 60),
        assertion(key, client, provider.issuer, clock, sub="someone-else"),
        assertion(other, client, provider.issuer, clock),
        assertion(key, CLIENT, provider.issuer, clock),  # a secret client's id
    ]
    for signed in refused:
        assert introspect(signed).status_code == 401
    basic = http.post("/introspect", data={"token": opaque}, auth=(client, "any"))
    assert basic.status_code == 401  # registered for private_key_jwt only


def test_introspection_describes_opaque_tokens(
    http: httpx.Client, provider: DevProvider, clock: Clock
) -> None:
    token = provider.mint_opaque("SKY-1001", CLIENT, claims={"scope": "openid"})
    assert http.post("/introspect", data={"token": token}).status_code == 401  # who asks?
    answer = http.post("/introspect", data={"token": token}, auth=(CLIENT, SECRET)).json()
    assert answer["active"] is True and answer["iss"] == provider.issuer
    assert (answer["sub"], answer["aud"], answer["token_type"]) == ("SKY-1001", CLIENT, "Bearer")
    info = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert info.json()["sub"] == "SKY-1001"  # userinfo takes it too
    unknown = http.post("/introspect", data={"token": "nope"}, auth=(CLIENT, SECRET)).json()
    assert unknown == {"active": False}
    clock.now += provider.token_lifetime
    ended = http.post("/introspect", data={"token": token}, auth=(CLIENT, SECRET)).json()
    assert ended == {"active": False}


async def test_opaque_access_tokens_from_the_code_flow(clock: Clock) -> None:
    provider = DevProvider(
        "http://op.example", {CLIENT: SECRET}, [ALICE], clock=clock, opaque_access_tokens=True
    )
    transport = httpx.ASGITransport(app=provider.app)
    async with httpx.AsyncClient(transport=transport, base_url=provider.issuer) as http:
        pkce = Pkce()
        form = FormParser()
        form.feed((await http.get("/authorize", params=authorization_params(pkce))).text)
        signed_in = await http.post(form.action, data={**dict(form.hidden), "subject": "SKY-1001"})
        code = redirect_query(signed_in)["code"]
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
        data["code_verifier"] = pkce.verifier
        tokens = (await http.post("/token", data=data, auth=(CLIENT, SECRET))).json()
        assert tokens["access_token"].count(".") != 2 and tokens["id_token"].count(".") == 2
        asked = {"token": tokens["access_token"]}
        answer = (await http.post("/introspect", data=asked, auth=(CLIENT, SECRET))).json()
        assert answer["active"] is True and answer["sub"] == "SKY-1001"
        assert answer["auth_time"] and answer["scope"] == "openid profile"
