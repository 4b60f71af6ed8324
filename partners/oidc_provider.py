"""A small OpenID Connect provider that plays a partner brand's identity provider.

For development and tests only: the authorization code flow with PKCE (S256 only), a sign-in
page listing development users, RS256-signed ID and access tokens (or opaque access tokens,
with token introspection per RFC 7662), discovery, JWKS, userinfo and logout. State is kept
in memory and every time comes from ``clock``. Every URL it hands out is built from
``issuer``, so the app works at the root of its own port as well as mounted under a path
prefix; the issuer is kept exactly as given, a trailing ``/`` included (Auth0's issuers end
in one). Any absolute http(s) redirect URI is accepted for a known client.

Clients authenticate as registered (``add_client``): ``client_secret_basic`` (the id and
secret form-encoded before Basic, RFC 6749 section 2.3.1, and decoded so here),
``client_secret_post``, or ``private_key_jwt`` (an RFC 7523 assertion verified against the
client's registered public keys).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from joserfc import jwk, jwt
from joserfc.errors import JoseError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .serving import serve_on_loopback

CODE_LIFETIME = 60
"""Seconds an authorization code stays redeemable."""
SCOPES = ("openid", "profile")
_REGISTERED = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti")
_CLAIMS = (*_REGISTERED, "auth_time", "nonce", "acr", "amr", "at_hash", "name")
_CONTROLS = frozenset({"subject", "other_subject", "mfa", "deny"})  # sign-in form, not OAuth
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256(verifier)), unpadded
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 section 4.1
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
BASIC, POST, PRIVATE_KEY_JWT = "client_secret_basic", "client_secret_post", "private_key_jwt"
AUTH_METHODS = (BASIC, POST, PRIVATE_KEY_JWT)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256", "ES384"]
_PAGE_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_STYLE = (
    "body{font:16px/1.45 system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;"
    "color:#1d1d1f}ul{list-style:none;padding:0}li{margin:.4rem 0}"
    "li button{width:100%;text-align:left;padding:.6rem}code{font-size:.9em}"
    ".notice{color:#a00}.default{position:absolute;left:-10000px}"
)


@dataclass(frozen=True)
class DevUser:
    """A user who can sign in; ``claims`` go into their ID and access tokens and userinfo."""

    subject: str
    name: str
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Client:
    """A registered client: how it authenticates, with a secret or its public keys."""

    methods: frozenset[str]
    secret: str | None = None
    keys: jwk.KeySet | None = None


@dataclass(frozen=True)
class _AuthRequest:
    """A validated authorization request; ``params`` are echoed as hidden form fields."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str | None
    params: list[tuple[str, str]]


@dataclass
class _Grant:
    """What an authorization code stands for; ``used`` is set at the first redemption."""

    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    user: DevUser
    mfa: bool
    auth_time: int
    expires_at: float
    used: bool = False
    access_jti: str | None = None


class DevProvider:
    """An in-memory OpenID Connect provider for ``issuer``; serve or mount ``app``.

    ``clients`` maps client ids to secrets (either secret method accepted; ``add_client``
    registers one method). With ``require_pkce`` an authorization request without an S256
    ``code_challenge`` is refused. Tokens live ``token_lifetime`` seconds. With
    ``opaque_access_tokens`` the access tokens are random strings, checked at ``/introspect``.
    ``auth_methods`` are the client authentication methods the discovery document offers.
    A client assertion's ``aud`` may name the issuer, the token endpoint or the endpoint
    called (RFC 9126 section 2), unless ``assertion_audience`` ("issuer" or
    "token_endpoint") allows that one only, as some providers do.
    """

    def __init__(
        self,
        issuer: str,
        clients: Mapping[str, str],
        users: Sequence[DevUser] = (),
        *,
        title: str = "Development sign-in",
        require_pkce: bool = True,
        token_lifetime: int = 600,
        clock: Callable[[], float] = time.time,
        opaque_access_tokens: bool = False,
        auth_methods: Sequence[str] = AUTH_METHODS,
        assertion_audience: str | None = None,
    ) -> None:
        self.issuer = issuer  # exactly: a trailing "/" is part of it
        self.base = issuer.rstrip("/")  # where the endpoints are
        self.title = title
        self.opaque_access_tokens = opaque_access_tokens
        self.auth_methods = tuple(auth_methods)
        self.assertion_audience = assertion_audience
        self.introspections = 0  # answered introspection requests
        self._opaque: dict[str, dict[str, Any]] = {}  # opaque access token -> its claims
        self._assertions: set[str] = set()  # jti of client assertions seen (no replays)
        self.require_pkce = require_pkce
        self.token_lifetime = token_lifetime
        self.codes_issued = 0
        self.tokens_issued = 0
        self._clock = clock
        self._clients: dict[str, _Client] = {
            client_id: _Client(frozenset({BASIC, POST}), secret=secret)
            for client_id, secret in clients.items()
        }
        self._users: dict[str, DevUser] = {user.subject: user for user in users}
        self._signed_in: dict[str, DevUser] = {}  # free-text subjects, for userinfo
        self._codes: dict[str, _Grant] = {}
        self._revoked: set[str] = set()  # access token ids revoked by a replayed code
        self._keys: list[jwk.RSAKey] = []
        self.rotate_key()
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery, methods=["GET"]),
                Route("/jwks", self._jwks, methods=["GET"]),
                Route("/authorize", self._authorize, methods=["GET", "POST"]),
                Route("/token", self._token, methods=["POST"]),
                Route("/introspect", self._introspect, methods=["POST"]),
                Route("/userinfo", self._userinfo, methods=["GET", "POST"]),
                Route("/logout", self._logout, methods=["GET", "POST"]),
            ]
        )

    def add_client(
        self,
        client_id: str,
        secret: str | None = None,
        *,
        method: str | None = None,
        public_keys: Mapping[str, Any] | None = None,
    ) -> None:
        """Register a client, or replace a known one. ``method`` alone is then accepted
        (without it: either secret method); ``private_key_jwt`` needs ``public_keys``, a
        JWK Set, and no secret."""
        if method is not None and method not in AUTH_METHODS:
            raise ValueError(f"unknown client authentication method {method!r}")
        if (method == PRIVATE_KEY_JWT) != (public_keys is not None) or (
            (method == PRIVATE_KEY_JWT) == (secret is not None)
        ):
            raise ValueError("private_key_jwt takes public_keys; the secret methods a secret")
        methods = frozenset({method} if method else {BASIC, POST})
        keys = jwk.KeySet.import_key_set(public_keys) if public_keys is not None else None  # type: ignore[arg-type]
        self._clients[client_id] = _Client(methods, secret, keys)

    def add_user(self, user: DevUser) -> None:
        """Offer ``user`` on the sign-in page, replacing one with the same subject."""
        self._users[user.subject] = user

    def rotate_key(self) -> str:
        """Make a new RS256 key current and return its kid; old keys stay in the JWKS."""
        key = jwk.RSAKey.generate_key(2048, {"use": "sig", "alg": "RS256"}, private=True)
        key.ensure_kid()  # the RFC 7638 thumbprint
        self._keys.append(key)
        return str(key.kid)

    @property
    def jwks(self) -> dict[str, Any]:
        """The public half of every key, current last, as a JWK Set."""
        return {"keys": [dict(key.as_dict(private=False)) for key in self._keys]}

    @property
    def signing_key(self) -> jwk.RSAKey:
        """The current private signing key."""
        return self._keys[-1]

    def mint(
        self,
        subject: str,
        audience: str | list[str],
        *,
        claims: Mapping[str, Any] | None = None,
        lifetime: int | None = None,
        header: Mapping[str, Any] | None = None,
        key: Any = None,
    ) -> str:
        """A signed JWT as this provider issues them, for tests that need their own tokens.

        The claims are iss, sub, aud, iat, nbf, exp (iat + ``lifetime``, by default
        ``token_lifetime``) and a fresh jti, then ``claims``: a value replaces the standard
        one and None drops it. The header is ``{"alg": "RS256", "kid": <current kid>,
        "typ": "JWT"}`` updated the same way from ``header``. ``key`` (by default
        ``signing_key``) signs it; the kid stays the current one unless ``header`` says so.
        """
        payload = self._claims(subject, audience, claims, lifetime)
        head: dict[str, Any] = {"alg": "RS256", "kid": self.signing_key.kid, "typ": "JWT"}
        _merge(head, header)
        alg = head.get("alg")
        algorithms = [alg] if isinstance(alg, str) else None
        signer = self.signing_key if key is None else key
        return jwt.encode(head, payload, signer, algorithms=algorithms, default_type=None)

    def mint_opaque(
        self,
        subject: str,
        audience: str | list[str],
        *,
        claims: Mapping[str, Any] | None = None,
        lifetime: int | None = None,
    ) -> str:
        """An opaque access token standing for the claims ``mint`` would sign (the same
        arguments), as introspection will describe it."""
        token = secrets.token_urlsafe(32)
        self._opaque[token] = self._claims(subject, audience, claims, lifetime)
        return token

    def _claims(
        self,
        subject: str,
        audience: str | list[str],
        claims: Mapping[str, Any] | None,
        lifetime: int | None,
    ) -> dict[str, Any]:
        now = int(self._clock())
        span = self.token_lifetime if lifetime is None else lifetime
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + span,
            "jti": secrets.token_urlsafe(16),
        }
        _merge(payload, claims)
        return payload

    # Endpoints

    def _metadata(self) -> dict[str, Any]:
        extra = {name for user in list(self._users.values()) for name in user.claims}
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base}/authorize",
            "token_endpoint": f"{self.base}/token",
            "introspection_endpoint": f"{self.base}/introspect",
            "userinfo_endpoint": f"{self.base}/userinfo",
            "jwks_uri": f"{self.base}/jwks",
            "end_session_endpoint": f"{self.base}/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": list(self.auth_methods),
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "introspection_endpoint_auth_methods_supported": list(self.auth_methods),
            "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "scopes_supported": list(SCOPES),
            "claims_supported": [*_CLAIMS, *sorted(extra.difference(_CLAIMS))],
            "acr_values_supported": ["mfa"],
            "authorization_response_iss_parameter_supported": True,
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
        }

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(self._metadata())

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse(self.jwks)

    async def _authorize(self, request: Request) -> Response:
        if request.method != "POST":
            auth = self._check_authorization(_strings(request.query_params.multi_items()), 302)
            return auth if isinstance(auth, Response) else self._sign_in_page(auth)
        items = _strings((await request.form()).multi_items())
        controls = {name: value for name, value in items if name in _CONTROLS}
        auth = self._check_authorization(items, 303)
        if isinstance(auth, Response):
            return auth
        if "deny" in controls:
            return self._auth_error(auth, "access_denied", "the user denied the request", 303)
        subject = (controls.get("subject") or controls.get("other_subject", "")).strip()
        if not subject:
            return self._sign_in_page(auth, "Choose a user or type a subject.", 400)
        user = self._users.get(subject) or DevUser(subject, subject)
        if subject not in self._users:
            self._signed_in[subject] = user
        now = self._clock()
        self._codes = {code: g for code, g in self._codes.items() if g.expires_at > now}
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Grant(
            client_id=auth.client_id,
            redirect_uri=auth.redirect_uri,
            scope=auth.scope,
            nonce=auth.nonce,
            code_challenge=auth.code_challenge,
            user=user,
            mfa=controls.get("mfa", "") not in ("", "0", "off", "false"),
            auth_time=int(now),
            expires_at=now + CODE_LIFETIME,
        )
        self.codes_issued += 1
        return self._auth_redirect(auth.redirect_uri, {"code": code}, auth.state, 303)

    def _check_authorization(
        self, items: list[tuple[str, str]], status: int
    ) -> _AuthRequest | Response:
        """Validate an authorization request; errors redirect with ``status`` when they may."""
        params: dict[str, str] = {}
        repeated: set[str] = set()
        kept: list[tuple[str, str]] = []
        for name, value in items:
            if name in _CONTROLS:
                continue
            if name in params:
                repeated.add(name)
            params[name] = value
            kept.append((name, value))
        client_id = params.get("client_id", "")
        if "client_id" in repeated or client_id not in self._clients:
            return self._page(400, "Unknown client", f"No client is registered as {client_id!r}.")
        redirect_uri = params.get("redirect_uri", "")
        if "redirect_uri" in repeated or not _is_web_url(redirect_uri):
            message = "The redirect_uri must be one absolute http or https URL without fragment."
            return self._page(400, "Invalid redirect_uri", message)
        state = params.get("state")

        def refuse(error: str, description: str) -> Response:
            answer = {"error": error, "error_description": description}
            return self._auth_redirect(redirect_uri, answer, state, status)

        scopes = params.get("scope", "").split()
        method = params.get("code_challenge_method")
        challenge = params.get("code_challenge")
        if repeated:
            return refuse("invalid_request", f"repeated parameters: {', '.join(sorted(repeated))}")
        if "response_type" not in params:
            return refuse("invalid_request", "response_type is missing")
        if params["response_type"] != "code":
            return refuse("unsupported_response_type", "only response_type=code is supported")
        if params.get("response_mode", "query") != "query":
            return refuse("invalid_request", "only response_mode=query is supported")
        if "openid" not in scopes:
            return refuse("invalid_scope", "the scope must include openid")
        if params.get("prompt") == "none":
            return refuse("login_required", "this provider keeps no sessions")
        if challenge is None and method is not None:
            return refuse("invalid_request", "code_challenge_method without code_challenge")
        if challenge is not None and method != "S256":
            return refuse("invalid_request", "code_challenge_method must be S256")
        if challenge is not None and not _CHALLENGE.fullmatch(challenge):
            return refuse("invalid_request", "code_challenge is not a BASE64URL SHA-256 digest")
        if challenge is None and self.require_pkce:
            return refuse("invalid_request", "PKCE is required: send code_challenge with S256")
        return _AuthRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scope=" ".join(dict.fromkeys(s for s in scopes if s in SCOPES)),
            state=state,
            nonce=params.get("nonce") or None,
            code_challenge=challenge,
            params=kept,
        )

    async def _client_form(
        self, request: Request, endpoint: str
    ) -> tuple[str, dict[str, str]] | Response:
        """A back-channel request's form and the client it authenticates, or the refusal."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _oauth_error(400, "invalid_request", "send application/x-www-form-urlencoded")
        params, repeated = _single((await request.form()).multi_items())
        if repeated:
            return _oauth_error(400, "invalid_request", f"repeated: {', '.join(sorted(repeated))}")
        client_id = self._authenticate(request, params, f"{self.base}/{endpoint}")
        if isinstance(client_id, Response):
            return client_id
        return client_id, params

    async def _token(self, request: Request) -> Response:
        client = await self._client_form(request, "token")
        if isinstance(client, Response):
            return client
        client_id, params = client
        grant_type = params.get("grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "grant_type is missing")
        if grant_type != "authorization_code":
            return _oauth_error(400, "unsupported_grant_type", "only authorization_code")
        code = params.get("code")
        if not code:
            return _oauth_error(400, "invalid_request", "code is missing")
        grant = self._codes.get(code)
        if grant is None or grant.client_id != client_id:
            return _oauth_error(400, "invalid_grant", "unknown code")
        if grant.used:  # a replay: also revoke what the first redemption issued
            if grant.access_jti is not None:
                self._revoked.add(grant.access_jti)
            return _oauth_error(400, "invalid_grant", "the code was already used")
        grant.used = True
        if self._clock() >= grant.expires_at:
            return _oauth_error(400, "invalid_grant", "the code has expired")
        if params.get("redirect_uri") != grant.redirect_uri:
            return _oauth_error(400, "invalid_grant", "redirect_uri does not match")
        verifier = params.get("code_verifier")
        if grant.code_challenge is None:
            if verifier is not None:
                return _oauth_error(400, "invalid_grant", "no code_challenge was sent")
        elif verifier is None or not _VERIFIER.fullmatch(verifier):
            return _oauth_error(400, "invalid_grant", "a valid code_verifier is required")
        elif not hmac.compare_digest(_s256(verifier), grant.code_challenge):
            return _oauth_error(400, "invalid_grant", "code_verifier does not match")
        return JSONResponse(self._issue(grant), headers=_NO_STORE)

    def _authenticate(
        self, request: Request, params: Mapping[str, str], endpoint: str
    ) -> str | Response:
        """The client id, authenticated by the method it registered, or a 4xx response.

        ``endpoint`` is the URL called, which a client assertion may name as its audience.
        """
        header = request.headers.get("authorization")
        presented = [
            method
            for method, present in (
                (BASIC, header is not None),
                (POST, "client_secret" in params),
                (PRIVATE_KEY_JWT, "client_assertion" in params),
            )
            if present
        ]
        if len(presented) > 1:
            return _oauth_error(400, "invalid_request", "use one authentication method")
        method = presented[0] if presented else POST
        if method not in self.auth_methods:
            return _invalid_client()
        if method == PRIVATE_KEY_JWT:
            return self._assertion_client(params, endpoint)
        if header is not None:
            credentials = _basic_credentials(header)
            if credentials is None:
                return _invalid_client()
            client_id, secret = credentials
            if params.get("client_id", client_id) != client_id:
                return _invalid_client()
        else:
            client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        client = self._clients.get(client_id)
        if (
            client is None
            or method not in client.methods
            or client.secret is None
            or not hmac.compare_digest(_bytes(client.secret), _bytes(secret))
        ):
            return _invalid_client()
        return client_id

    def _assertion_client(self, params: Mapping[str, str], endpoint: str) -> str | Response:
        """RFC 7523 section 3: the client whose registered key signed the assertion, which
        names it as iss and sub, this provider (or ``endpoint``) as aud, and is fresh."""
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            return _oauth_error(
                400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}"
            )
        assertion = params.get("client_assertion", "")
        client_id = params.get("client_id") or _unverified_issuer(assertion) or ""
        client = self._clients.get(client_id)
        if client is None or client.keys is None or PRIVATE_KEY_JWT not in client.methods:
            return _invalid_client()
        now = int(self._clock())
        try:
            claims = jwt.decode(assertion, client.keys, algorithms=ASSERTION_ALGORITHMS).claims
            jwt.JWTClaimsRegistry(
                now=now,
                leeway=5,
                iss={"essential": True, "value": client_id},
                sub={"essential": True, "value": client_id},
                exp={"essential": True},
                jti={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError, TypeError):
            return _invalid_client()
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        accepted = {
            "issuer": {self.issuer},
            "token_endpoint": {f"{self.base}/token"},
        }.get(self.assertion_audience or "", {self.issuer, f"{self.base}/token", endpoint})
        if not accepted.intersection(a for a in audiences if isinstance(a, str)):
            return _invalid_client()
        jti = str(claims["jti"])
        if jti in self._assertions:  # each assertion is used once
            return _invalid_client()
        self._assertions.add(jti)
        return client_id

    def _issue(self, grant: _Grant) -> dict[str, Any]:
        """The token response for a redeemed code."""
        user = grant.user
        claims = {name: value for name, value in user.claims.items() if name not in _REGISTERED}
        assurance: dict[str, Any] = {"amr": ["pwd"]}
        if grant.mfa:
            assurance = {"acr": "mfa", "amr": ["pwd", "otp"]}
        grant.access_jti = secrets.token_urlsafe(16)
        access_claims = {
            **claims,
            "scope": grant.scope,
            "client_id": grant.client_id,
            "auth_time": grant.auth_time,
            **assurance,
            "jti": grant.access_jti,
        }
        if self.opaque_access_tokens:
            access_token = self.mint_opaque(user.subject, grant.client_id, claims=access_claims)
        else:
            access_token = self.mint(user.subject, grant.client_id, claims=access_claims)
        id_claims = {
            "name": user.name,
            **claims,
            "auth_time": grant.auth_time,
            **assurance,
            "at_hash": _at_hash(access_token),
        }
        if grant.nonce is not None:
            id_claims["nonce"] = grant.nonce
        id_token = self.mint(user.subject, grant.client_id, claims=id_claims)
        self.tokens_issued += 1
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "id_token": id_token,
            "scope": grant.scope,
        }

    async def _userinfo(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return JSONResponse({"error": "invalid_request"}, 401, {"WWW-Authenticate": "Bearer"})
        claims = self._verify(token.strip())
        if claims is None or not isinstance(claims.get("scope"), str):
            challenge = 'Bearer error="invalid_token"'
            return JSONResponse({"error": "invalid_token"}, 401, {"WWW-Authenticate": challenge})
        if "openid" not in claims["scope"].split():
            challenge = 'Bearer error="insufficient_scope", scope="openid"'
            return JSONResponse(
                {"error": "insufficient_scope"}, 403, {"WWW-Authenticate": challenge}
            )
        subject = str(claims["sub"])
        user = self._users.get(subject) or self._signed_in.get(subject) or DevUser(subject, subject)
        body = {**user.claims, "name": user.name, "sub": subject}
        return JSONResponse(body, headers=_NO_STORE)

    async def _introspect(self, request: Request) -> Response:
        """RFC 7662: whether an access token is active, and its claims."""
        client = await self._client_form(request, "introspect")
        if isinstance(client, Response):
            return client
        _, params = client
        token = params.get("token")
        if not token:
            return _oauth_error(400, "invalid_request", "token is missing")
        self.introspections += 1
        claims = self._verify(token)
        body: dict[str, Any] = {"active": False}
        if claims is not None:
            body = {**claims, "active": True, "token_type": "Bearer"}
        return JSONResponse(body, headers=_NO_STORE)

    def _verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this provider issued (signed or opaque) that has not
        expired and was not revoked, else None."""
        opaque = self._opaque.get(token)
        if opaque is not None:
            exp = opaque.get("exp")  # without one (a test's choice) it never expires
            if isinstance(exp, int) and self._clock() >= exp:
                return None
            return None if opaque.get("jti") in self._revoked else dict(opaque)
        try:
            decoded = jwt.decode(token, jwk.KeySet(list(self._keys)), algorithms=["RS256"])
            jwt.JWTClaimsRegistry(
                now=int(self._clock()),
                iss={"essential": True, "value": self.issuer},
                sub={"essential": True},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError):
            return None
        if decoded.claims.get("jti") in self._revoked:
            return None
        return decoded.claims

    async def _logout(self, request: Request) -> Response:
        if request.method == "POST":
            params, _ = _single((await request.form()).multi_items())
        else:
            params, _ = _single(request.query_params.multi_items())
        target = params.get("post_logout_redirect_uri")
        if target is None:
            return self._page(200, "Signed out", f"You are signed out of {self.title}.")
        if not _is_web_url(target):
            message = "The post_logout_redirect_uri must be an absolute http or https URL."
            return self._page(400, "Invalid post_logout_redirect_uri", message)
        state = params.get("state")
        return RedirectResponse(_with_query(target, {} if state is None else {"state": state}), 302)

    # Responses

    def _auth_redirect(
        self, redirect_uri: str, params: Mapping[str, str], state: str | None, status: int
    ) -> Response:
        """An authorization response: ``params``, ``state`` and ``iss`` (RFC 9207)."""
        extra = {**params, **({} if state is None else {"state": state}), "iss": self.issuer}
        return RedirectResponse(_with_query(redirect_uri, extra), status)

    def _auth_error(
        self, auth: _AuthRequest, error: str, description: str, status: int
    ) -> Response:
        params = {"error": error, "error_description": description}
        return self._auth_redirect(auth.redirect_uri, params, auth.state, status)

    def _sign_in_page(self, auth: _AuthRequest, notice: str = "", status: int = 200) -> Response:
        e = html.escape
        hidden = "".join(
            f'<input type="hidden" name="{e(name)}" value="{e(value)}">\n'
            for name, value in auth.params
        )
        users = "".join(
            f'<li><button type="submit" name="subject" value="{e(user.subject)}">'
            f"<strong>{e(user.name)}</strong> <code>{e(user.subject)}</code></button></li>\n"
            for user in list(self._users.values())
        )
        body = (
            f"<p>Signing in to <code>{e(auth.client_id)}</code>.</p>\n"
            + (f'<p class="notice">{e(notice)}</p>\n' if notice else "")
            + f'<form method="post" action="{e(self.base)}/authorize">\n{hidden}'
            # Pressing Enter in the text field submits the first button: make it this one.
            '<button type="submit" name="subject" value="" class="default" tabindex="-1"'
            ' aria-hidden="true">Sign in</button>\n'
            '<p><label><input type="checkbox" name="mfa" value="1">'
            " I used a second factor (MFA)</label></p>\n"
            f"<ul>\n{users}</ul>\n"
            '<p><label for="other_subject">Any other subject:</label>\n'
            '<input id="other_subject" name="other_subject" autocomplete="off">\n'
            '<button type="submit" name="subject" value="">Sign in</button></p>\n'
            '<p><button type="submit" name="deny" value="1">Deny</button></p>\n</form>'
        )
        return _html(status, self.title, body)

    def _page(self, status: int, heading: str, message: str) -> Response:
        body = f"<h2>{html.escape(heading)}</h2>\n<p>{html.escape(message)}</p>"
        return _html(status, self.title, body)


@contextmanager
def serve_in_thread(build: Callable[[str], DevProvider]) -> Iterator[DevProvider]:
    """Serve ``build(issuer)`` under uvicorn on a free 127.0.0.1 port in a daemon thread.

    The issuer is ``http://127.0.0.1:<port>``; the server is up when the provider is yielded
    and is stopped on exit.
    """
    built: list[DevProvider] = []

    def make(issuer: str) -> Starlette:
        built.append(build(issuer))
        return built[0].app

    with serve_on_loopback(make, "oidc"):
        yield built[0]


def _merge(target: dict[str, Any], changes: Mapping[str, Any] | None) -> None:
    for name, value in (changes or {}).items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value


def _strings(items: Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in items if isinstance(value, str)]


def _single(items: Sequence[tuple[str, Any]]) -> tuple[dict[str, str], set[str]]:
    """The parameters as a dict, and the names that appear more than once."""
    params: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in _strings(items):
        if name in params:
            repeated.add(name)
        params[name] = value
    return params, repeated


def _is_web_url(uri: str) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "#" not in uri


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    """``uri`` with ``params`` appended to its query string."""
    if not params:
        return uri
    parts = urlsplit(uri)
    extra = urlencode(params)
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _s256(verifier: str) -> str:
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def _at_hash(access_token: str) -> str:
    """OpenID Connect Core 3.1.3.6: the left half of the SHA-256 of the token."""
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """The client id and secret of a Basic header, each form-decoded (RFC 6749 2.3.1): a
    ``+`` sent as is becomes a space, as a strict provider reads it."""
    scheme, _, credentials = header.partition(" ")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError alike
        return None
    raw_id, colon, raw_secret = decoded.partition(":")
    if scheme.lower() != "basic" or not colon:
        return None
    return unquote_plus(raw_id), unquote_plus(raw_secret)


def _unverified_issuer(assertion: str) -> str | None:
    """The ``iss`` of a compact JWT, unverified: only to find whose keys verify it."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeError, RecursionError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return issuer if isinstance(issuer, str) else None


def _oauth_error(status: int, error: str, description: str) -> Response:
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status, headers=_NO_STORE)


def _invalid_client() -> Response:
    body = {"error": "invalid_client", "error_description": "client authentication failed"}
    headers = {**_NO_STORE, "WWW-Authenticate": 'Basic realm="token"'}
    return JSONResponse(body, 401, headers=headers)


def _html(status: int, title: str, body: str) -> Response:
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
    return HTMLResponse(page, status, headers=_PAGE_HEADERS)
