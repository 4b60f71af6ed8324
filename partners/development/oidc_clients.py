"""The development provider's clients and how they authenticate at its back channel.

Methods: ``client_secret_basic`` (the id and secret form-encoded before Basic, RFC 6749 section
2.3.1, and decoded so here), ``client_secret_post``, or ``private_key_jwt`` (an RFC 7523
assertion verified against the client's registered public keys).
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from joserfc import jwk, jwt
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from partners.development.oidc_requests import single

BASIC, POST, PRIVATE_KEY_JWT = "client_secret_basic", "client_secret_post", "private_key_jwt"
AUTH_METHODS = (BASIC, POST, PRIVATE_KEY_JWT)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256", "ES384"]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class _Client:
    """A registered client: how it authenticates, with a secret or its public keys."""

    methods: frozenset[str]
    secret: str | None = None
    keys: jwk.KeySet | None = None


class Clients:
    """The registered clients, and the ids of the client assertions already used.

    ``secrets`` maps client ids to secrets, either secret method accepted.
    """

    def __init__(self, secrets: Mapping[str, str]) -> None:
        self._clients: dict[str, _Client] = {
            client_id: _Client(frozenset({BASIC, POST}), secret=secret)
            for client_id, secret in secrets.items()
        }
        self._assertions: set[str] = set()  # jti of client assertions seen (no replays)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._clients

    def register(
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

    async def authenticate(
        self,
        request: Request,
        *,
        methods: Collection[str],
        audiences: Collection[str],
        clock: Callable[[], float],
    ) -> tuple[str, dict[str, str]] | Response:
        """A back-channel request's client, authenticated by the method it registered, and
        its form; or the 4xx refusal.

        ``methods`` are the methods the provider offers; a client assertion must name one of
        ``audiences`` and be valid at ``clock()``.
        """
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return oauth_error(400, "invalid_request", "send application/x-www-form-urlencoded")
        params, repeated = single((await request.form()).multi_items())
        if repeated:
            return oauth_error(400, "invalid_request", f"repeated: {', '.join(sorted(repeated))}")
        authorization = request.headers.get("authorization")
        client_id = self._client_id(authorization, params, methods, audiences, int(clock()))
        if isinstance(client_id, Response):
            return client_id
        return client_id, params

    def _client_id(
        self,
        authorization: str | None,
        params: Mapping[str, str],
        methods: Collection[str],
        audiences: Collection[str],
        now: int,
    ) -> str | Response:
        presented = [
            method
            for method, present in (
                (BASIC, authorization is not None),
                (POST, "client_secret" in params),
                (PRIVATE_KEY_JWT, "client_assertion" in params),
            )
            if present
        ]
        if len(presented) > 1:
            return oauth_error(400, "invalid_request", "use one authentication method")
        method = presented[0] if presented else POST
        if method not in methods:
            return _invalid_client()
        if method == PRIVATE_KEY_JWT:
            return self._assertion_client(params, audiences, now)
        if authorization is not None:
            credentials = _basic_credentials(authorization)
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

    def _assertion_client(
        self, params: Mapping[str, str], audiences: Collection[str], now: int
    ) -> str | Response:
        """RFC 7523 section 3: the client whose registered key signed the assertion, which
        names it as iss and sub, one of ``audiences`` as aud, and is fresh."""
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            return oauth_error(
                400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}"
            )
        assertion = params.get("client_assertion", "")
        client_id = params.get("client_id") or _unverified_issuer(assertion) or ""
        client = self._clients.get(client_id)
        if client is None or client.keys is None or PRIVATE_KEY_JWT not in client.methods:
            return _invalid_client()
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
        named = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(a, str) and a in audiences for a in named):
            return _invalid_client()
        jti = str(claims["jti"])
        if jti in self._assertions:  # each assertion is used once
            return _invalid_client()
        self._assertions.add(jti)
        return client_id


def oauth_error(status: int, error: str, description: str) -> Response:
    """An OAuth error response (RFC 6749 section 5.2), never cached."""
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status, headers=NO_STORE)


def _invalid_client() -> Response:
    body = {"error": "invalid_client", "error_description": "client authentication failed"}
    headers = {**NO_STORE, "WWW-Authenticate": 'Basic realm="token"'}
    return JSONResponse(body, 401, headers=headers)


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
