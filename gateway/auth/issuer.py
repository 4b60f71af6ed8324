"""The gateway's OAuth 2.0 token service for partner apps and operators.

``client_credentials`` issues a JWT access token (RFC 9068: header ``typ`` ``at+jwt``,
RS256, ``kid``) with ``iss``, ``aud`` (the GraphQL endpoint), ``sub`` and ``client_id``,
``scope``, ``iat``, ``nbf``, ``exp``, ``jti``, and ``partner`` for a partner client or
``roles: ["operator"]`` for an operator client.

``verify`` checks a token without the database: the client is not looked up again, so a
disabled client's (or a rotated secret's) tokens stay valid until they expire, at most
``lifetime`` seconds. Keep the lifetime short.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import RSAKey
from joserfc.jwt import ClaimsOption
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.auth import clients
from gateway.auth.errors import InvalidToken, OAuthError
from gateway.auth.keys import ALGORITHM, KeyStore
from gateway.auth.principal import (
    OPERATOR_SCOPE,
    PARTNER_SCOPES,
    OperatorPrincipal,
    PartnerPrincipal,
)

TOKEN_TYPE = "at+jwt"
LEEWAY = 60  # seconds of clock skew allowed on exp, nbf and iat
MAX_TOKEN_LENGTH = 8192
VERIFIED_TOKENS = 10_000  # signatures remembered (see TokenIssuer._verified)
REQUIRED_CLAIMS = ("iss", "aud", "sub", "client_id", "scope", "iat", "exp", "jti")


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _unverified_part(token: str, index: int) -> dict[str, Any] | None:
    """The JSON object in part ``index`` of a compact JWS, unverified; None if malformed."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        value = json.loads(_b64decode(parts[index]))
    except (binascii.Error, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def parse_scope(scope: str | None) -> frozenset[str] | None:
    """The scope tokens of a space-separated ``scope`` parameter; None when it is absent."""
    if scope is None or not scope.strip():
        return None
    return frozenset(scope.split())


class TokenIssuer:
    """Issues and verifies the gateway's client-credentials access tokens."""

    def __init__(
        self,
        engine: AsyncEngine,
        keys: KeyStore,
        issuer: str,
        lifetime: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.issuer = issuer
        self.audience = f"{issuer}/graphql"
        self.lifetime = lifetime
        self.clock = clock
        # Tokens whose signature was checked, by their exact text, with the key that checked
        # it: a token sent again is not verified again while that key is published (its
        # claims, expiry included, are checked every time). Bounded: cleared when full.
        self._verified: dict[str, tuple[RSAKey, dict[str, Any]]] = {}

    async def client_credentials(
        self, client_id: str, secret: str, scope: str | None
    ) -> dict[str, Any]:
        """The token response for an authenticated client (RFC 6749 section 4.4.3).

        Raises ``OAuthError``: ``invalid_client`` (401) for bad credentials or a disabled
        client, ``invalid_scope`` for a scope beyond the client's. No scope: all of them.
        """
        client = await clients.authenticate(self.engine, client_id, secret)
        if client is None:
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        requested = parse_scope(scope)
        if requested is not None and not requested <= client.scopes:
            raise OAuthError("invalid_scope", "The requested scope exceeds the client's scopes.")
        granted = " ".join(sorted(client.scopes if requested is None else requested))
        token = await self.issue(client.client_id, client.partner, granted)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "scope": granted,
        }

    async def issue(self, client_id: str, partner: str | None, scope: str) -> str:
        """Sign an access token for ``client_id`` (a partner's, or an operator's if None)."""
        kid, key = await self.keys.current()
        now = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": client_id,
            "client_id": client_id,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "jti": secrets.token_urlsafe(16),
        }
        if partner is None:
            claims["roles"] = [OPERATOR_SCOPE]
        else:
            claims["partner"] = partner
        header = {"typ": TOKEN_TYPE, "alg": ALGORITHM, "kid": kid}
        return jwt.encode(header, claims, key, algorithms=[ALGORITHM], default_type=None)

    def looks_like_ours(self, token: str) -> bool:
        """Cheaply, without verifying: whether the token's ``iss`` is this gateway, so a
        bearer token can be routed to ``verify`` rather than to a partner's verifier."""
        claims = _unverified_part(token, 1)
        return claims is not None and claims.get("iss") == self.issuer

    async def verify(self, token: str) -> PartnerPrincipal | OperatorPrincipal:
        """The caller this access token authenticates; raises ``InvalidToken`` otherwise.

        The header is checked before any signature: only ``alg`` RS256 (never ``none`` or
        an HMAC keyed with a public key), ``typ`` at+jwt, a ``kid`` naming a published key.
        Then the signature, ``iss``, ``aud``, and ``exp``/``nbf``/``iat`` with 60 s leeway.
        """
        header = _unverified_part(token, 0)
        if header is None:
            raise InvalidToken("malformed token")
        if header.get("alg") != ALGORITHM:
            raise InvalidToken("unsupported algorithm")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in (TOKEN_TYPE, f"application/{TOKEN_TYPE}"):
            raise InvalidToken("not an access token")
        if "crit" in header:
            raise InvalidToken("unsupported header")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("missing key id")
        key = await self.keys.key_for(kid)
        if key is None:
            raise InvalidToken("unknown key")
        verified = self._verified.get(token)
        if verified is not None and verified[0] is key:
            claims = verified[1]
        else:
            try:
                claims = jwt.decode(token, key, algorithms=[ALGORITHM]).claims
            except BadSignatureError:
                raise InvalidToken("bad signature") from None
            except (JoseError, ValueError):
                raise InvalidToken("malformed token") from None
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = (key, claims)
        self._check_claims(claims)
        return self._principal(claims)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        options: dict[str, ClaimsOption] = {name: {"essential": True} for name in REQUIRED_CLAIMS}
        options["iss"] = {"essential": True, "value": self.issuer}
        options["aud"] = {"essential": True, "value": self.audience}
        registry = jwt.JWTClaimsRegistry(
            now=int(self.clock().timestamp()), leeway=LEEWAY, **options
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise InvalidToken("token expired") from None
        except MissingClaimError:
            raise InvalidToken("missing claim") from None
        except InvalidClaimError as error:
            raise InvalidToken(f"invalid {error.claim}") from None
        except JoseError:
            raise InvalidToken("invalid claims") from None

    def _principal(self, claims: dict[str, Any]) -> PartnerPrincipal | OperatorPrincipal:
        client_id, scope = claims["client_id"], claims["scope"]
        if not isinstance(client_id, str) or not isinstance(scope, str):
            raise InvalidToken("invalid claims")
        partner, roles = claims.get("partner"), claims.get("roles")
        if isinstance(partner, str) and partner and roles is None:
            scopes = frozenset(scope.split()) & PARTNER_SCOPES
            return PartnerPrincipal(partner=partner, client_id=client_id, scopes=scopes)
        if partner is None and isinstance(roles, list) and OPERATOR_SCOPE in roles:
            return OperatorPrincipal(subject=client_id, issuer=self.issuer, client=True)
        raise InvalidToken("invalid claims")
