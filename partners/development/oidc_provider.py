"""A small OpenID Connect provider that plays a partner brand's identity provider.

For development and tests only: the authorization code flow with PKCE (S256 only), a sign-in
page listing development users, RS256-signed ID and access tokens (or opaque access tokens,
with token introspection per RFC 7662), discovery, JWKS, userinfo and logout. State is kept
in memory and every time comes from ``clock``. Every URL it hands out is built from
``issuer``, so the app works at the root of its own port as well as mounted under a path
prefix; the issuer is kept exactly as given, a trailing ``/`` included (Auth0's issuers end
in one). Any absolute http(s) redirect URI is accepted for a known client.

Clients authenticate as registered (``add_client``, see ``oidc_clients``). The keys and
tokens are ``oidc_tokens``'s, the checks of a request ``oidc_requests``'s, the HTML pages
``oidc_pages``'s, the users and the codes' grants ``oidc_users``'s.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from partners.development.oidc_clients import (
    ASSERTION_ALGORITHMS,
    AUTH_METHODS,
    NO_STORE,
    Clients,
    oauth_error,
)
from partners.development.oidc_pages import message_page, sign_in_page
from partners.development.oidc_requests import (
    CONTROLS,
    SCOPES,
    AuthRequest,
    authorization_request,
    authorization_response,
    is_web_url,
    single,
    strings,
    with_query,
)
from partners.development.oidc_tokens import TokenIssuer, at_hash, s256
from partners.development.oidc_users import DevUser, Grant
from partners.development.serving import serve_on_loopback

CODE_LIFETIME = 60
"""Seconds an authorization code stays redeemable."""
_REGISTERED = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti")
_CLAIMS = (*_REGISTERED, "auth_time", "nonce", "acr", "amr", "at_hash", "name")
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 section 4.1


class DevProvider(TokenIssuer):
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
        super().__init__(issuer, token_lifetime, clock)
        self.base = issuer.rstrip("/")  # where the endpoints are
        self.title = title
        self.opaque_access_tokens = opaque_access_tokens
        self.auth_methods = tuple(auth_methods)
        self.assertion_audience = assertion_audience
        self.introspections = 0  # answered introspection requests
        self.require_pkce = require_pkce
        self.codes_issued = 0
        self.tokens_issued = 0
        self._clients = Clients(clients)
        self._users: dict[str, DevUser] = {user.subject: user for user in users}
        self._signed_in: dict[str, DevUser] = {}  # free-text subjects, for userinfo
        self._codes: dict[str, Grant] = {}
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
        self._clients.register(client_id, secret, method=method, public_keys=public_keys)

    def add_user(self, user: DevUser) -> None:
        """Offer ``user`` on the sign-in page, replacing one with the same subject."""
        self._users[user.subject] = user

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
            auth = self._check_authorization(strings(request.query_params.multi_items()), 302)
            return auth if isinstance(auth, Response) else self._sign_in_page(auth)
        items = strings((await request.form()).multi_items())
        controls = {name: value for name, value in items if name in CONTROLS}
        auth = self._check_authorization(items, 303)
        if isinstance(auth, Response):
            return auth
        if "deny" in controls:
            denial = {"error": "access_denied", "error_description": "the user denied the request"}
            return self._auth_redirect(auth.redirect_uri, denial, auth.state, 303)
        subject = (controls.get("subject") or controls.get("other_subject", "")).strip()
        if not subject:
            return self._sign_in_page(auth, "Choose a user or type a subject.", 400)
        user = self._users.get(subject) or DevUser(subject, subject)
        if subject not in self._users:
            self._signed_in[subject] = user
        now = self.clock()
        self._codes = {code: g for code, g in self._codes.items() if g.expires_at > now}
        code = secrets.token_urlsafe(32)
        self._codes[code] = Grant(
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
    ) -> AuthRequest | Response:
        """Validate an authorization request; errors redirect with ``status`` when they may."""
        return authorization_request(
            items,
            status,
            clients=self._clients,
            require_pkce=self.require_pkce,
            issuer=self.issuer,
            title=self.title,
        )

    async def _client_form(
        self, request: Request, endpoint: str
    ) -> tuple[str, dict[str, str]] | Response:
        """A back-channel request's client and form, or the refusal. ``endpoint`` is the URL
        called, which a client assertion may name as its audience (RFC 9126 section 2)
        unless ``assertion_audience`` allows one audience only."""
        token_endpoint = f"{self.base}/token"
        audiences = {"issuer": {self.issuer}, "token_endpoint": {token_endpoint}}.get(
            self.assertion_audience or "", {self.issuer, token_endpoint, f"{self.base}/{endpoint}"}
        )
        return await self._clients.authenticate(
            request, methods=self.auth_methods, audiences=audiences, clock=self.clock
        )

    async def _token(self, request: Request) -> Response:
        client = await self._client_form(request, "token")
        if isinstance(client, Response):
            return client
        client_id, params = client
        grant_type = params.get("grant_type")
        if not grant_type:
            return oauth_error(400, "invalid_request", "grant_type is missing")
        if grant_type != "authorization_code":
            return oauth_error(400, "unsupported_grant_type", "only authorization_code")
        code = params.get("code")
        if not code:
            return oauth_error(400, "invalid_request", "code is missing")
        grant = self._codes.get(code)
        if grant is None or grant.client_id != client_id:
            return oauth_error(400, "invalid_grant", "unknown code")
        if grant.used:  # a replay: also revoke what the first redemption issued
            if grant.access_jti is not None:
                self.revoke(grant.access_jti)
            return oauth_error(400, "invalid_grant", "the code was already used")
        grant.used = True
        if self.clock() >= grant.expires_at:
            return oauth_error(400, "invalid_grant", "the code has expired")
        if params.get("redirect_uri") != grant.redirect_uri:
            return oauth_error(400, "invalid_grant", "redirect_uri does not match")
        verifier = params.get("code_verifier")
        if grant.code_challenge is None:
            if verifier is not None:
                return oauth_error(400, "invalid_grant", "no code_challenge was sent")
        elif verifier is None or not _VERIFIER.fullmatch(verifier):
            return oauth_error(400, "invalid_grant", "a valid code_verifier is required")
        elif not hmac.compare_digest(s256(verifier), grant.code_challenge):
            return oauth_error(400, "invalid_grant", "code_verifier does not match")
        return JSONResponse(self._issue(grant), headers=NO_STORE)

    def _issue(self, grant: Grant) -> dict[str, Any]:
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
            "at_hash": at_hash(access_token),
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
        claims = self.verify(token.strip())
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
        return JSONResponse(body, headers=NO_STORE)

    async def _introspect(self, request: Request) -> Response:
        """RFC 7662: whether an access token is active, and its claims."""
        client = await self._client_form(request, "introspect")
        if isinstance(client, Response):
            return client
        _, params = client
        token = params.get("token")
        if not token:
            return oauth_error(400, "invalid_request", "token is missing")
        self.introspections += 1
        claims = self.verify(token)
        body: dict[str, Any] = {"active": False}
        if claims is not None:
            body = {**claims, "active": True, "token_type": "Bearer"}
        return JSONResponse(body, headers=NO_STORE)

    async def _logout(self, request: Request) -> Response:
        if request.method == "POST":
            params, _ = single((await request.form()).multi_items())
        else:
            params, _ = single(request.query_params.multi_items())
        target = params.get("post_logout_redirect_uri")
        if target is None:
            return self._page(200, "Signed out", f"You are signed out of {self.title}.")
        if not is_web_url(target):
            message = "The post_logout_redirect_uri must be an absolute http or https URL."
            return self._page(400, "Invalid post_logout_redirect_uri", message)
        state = params.get("state")
        return RedirectResponse(with_query(target, {} if state is None else {"state": state}), 302)

    # Responses

    def _auth_redirect(
        self, redirect_uri: str, params: Mapping[str, str], state: str | None, status: int
    ) -> Response:
        return authorization_response(self.issuer, redirect_uri, params, state, status)

    def _sign_in_page(self, auth: AuthRequest, notice: str = "", status: int = 200) -> Response:
        users = [(user.subject, user.name) for user in list(self._users.values())]
        action = f"{self.base}/authorize"
        return sign_in_page(self.title, action, auth.client_id, auth.params, users, notice, status)

    def _page(self, status: int, heading: str, message: str) -> Response:
        return message_page(self.title, status, heading, message)


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
