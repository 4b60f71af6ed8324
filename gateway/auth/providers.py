"""The configured OpenID Connect providers, and the checks every token from them passes.

Keys come from each provider's discovery document and JWKS, cached; an unknown key id
makes one refetch (at most every ``REFETCH_SECONDS``), so a provider's key rotation is
picked up without a restart. Only asymmetric algorithms are accepted, so neither
``alg: none`` nor an HMAC token keyed with a provider's public key gets through.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from partners.sign_in import SignIn, env_name

from .errors import InvalidToken

log = logging.getLogger("gateway.auth")

ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})
LEEWAY = 60  # seconds of clock skew allowed on exp, nbf and iat
REFETCH_SECONDS = 10.0
CACHE_SECONDS = 3600.0
MAX_TOKEN_BYTES = 16 * 1024
COALITION = "coalition"  # the provider name of the coalition's own sign-in


class ProviderUnavailable(InvalidToken):
    """The provider's discovery document or keys cannot be fetched: not the token's fault."""


def _segment(text: str) -> dict[str, Any]:
    padded = text + "=" * (-len(text) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JWT's header and claims, NOT verified: only to choose how to verify it."""
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("the token is too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("the token is not a signed JWT")
    try:
        return _segment(parts[0]), _segment(parts[1])
    except (ValueError, UnicodeError, RecursionError):
        raise InvalidToken("the token is not a signed JWT") from None


@dataclass
class Provider:
    """One identity provider: a partner's, or the coalition's (``name == "coalition"``)."""

    name: str
    sign_in: SignIn
    issuer: str
    client_id: str
    client_secret: str
    http: httpx.AsyncClient
    clock: Callable[[], datetime]
    _metadata: dict[str, Any] | None = None
    _metadata_at: float = 0.0
    _keys: KeySet | None = None
    _keys_at: float = field(default=-1e18)
    _attempt_at: float = field(default=-1e18)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def audiences(self) -> frozenset[str]:
        return frozenset({self.client_id, *self.sign_in.audiences})

    def _now(self) -> float:
        return self.clock().timestamp()

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            value = response.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning("provider %s: fetching %s failed: %r", self.name, url, error)
            raise ProviderUnavailable(f"the provider '{self.name}' cannot be reached") from None
        if not isinstance(value, dict):
            raise InvalidToken(f"the provider '{self.name}' sent an unexpected document")
        return value

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, cached for an hour; its issuer must be ours exactly."""
        if self._metadata is None or self._now() - self._metadata_at > CACHE_SECONDS:
            document = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if document.get("issuer") != self.issuer:
                log.error(
                    "provider %s: discovery names issuer %r", self.name, document.get("issuer")
                )
                raise InvalidToken(f"the provider '{self.name}' is misconfigured")
            self._metadata, self._metadata_at = document, self._now()
        return self._metadata

    async def endpoint(self, name: str) -> str:
        value = (await self.metadata()).get(name)
        if not isinstance(value, str) or not value:
            raise InvalidToken(f"the provider '{self.name}' publishes no {name}")
        return value

    async def _key_set(self, refresh: bool) -> KeySet:
        """The provider's keys: cached for an hour; ``refresh`` refetches them unless the
        last attempt (successful or not) was under ``REFETCH_SECONDS`` ago."""
        async with self._lock:
            now = self._now()
            if self._keys is not None and not refresh and now - self._keys_at <= CACHE_SECONDS:
                return self._keys
            if now - self._attempt_at < REFETCH_SECONDS:
                if self._keys is not None:
                    return self._keys
                raise ProviderUnavailable(f"the provider '{self.name}' cannot be reached")
            self._attempt_at = now
            document = await self._get_json(await self.endpoint("jwks_uri"))
            try:
                self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError):
                raise InvalidToken(f"the provider '{self.name}' sent bad keys") from None
            self._keys_at = now
            return self._keys

    async def key(self, kid: str | None) -> Any:
        for refresh in (False, True):
            keys = await self._key_set(refresh)
            matching = [key for key in keys.keys if kid is None or key.kid == kid]
            if kid is None and len(matching) > 1:
                raise InvalidToken("the token names no key (kid)")
            if matching:
                return matching[0]
        raise InvalidToken("the token is signed with an unknown key")

    async def verify(self, token: str, *, nonce: str | None = None) -> dict[str, Any]:
        """The token's claims once signature, issuer, audience and times hold."""
        header, _ = peek(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise InvalidToken(f"the algorithm {str(algorithm)[:20]!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's kid is not a string")
        key = await self.key(kid)
        try:
            claims = dict(jwt.decode(token, key, algorithms=[algorithm]).claims)
        except JoseError:
            raise InvalidToken("the token's signature does not verify") from None
        self._check_claims(claims)
        if nonce is not None and claims.get("nonce") != nonce:
            raise InvalidToken("the ID token's nonce does not match the sign-in")
        return claims

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") != self.issuer:
            raise InvalidToken("the token's issuer is wrong")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if (
            not isinstance(audiences, list)
            or not all(isinstance(a, str) for a in audiences)
            or not self.audiences & set(audiences)
        ):
            raise InvalidToken("the token is not meant for this gateway (aud)")
        now = self._now()
        numbers = {name: claims.get(name) for name in ("exp", "nbf", "iat")}
        for name, value in numbers.items():
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise InvalidToken(f"the token's {name} is not a number")
        exp, nbf, iat = numbers["exp"], numbers["nbf"], numbers["iat"]
        if exp is None or now > exp + LEEWAY:
            raise InvalidToken("the token has expired")
        if nbf is not None and now + LEEWAY < nbf:
            raise InvalidToken("the token is not valid yet")
        if iat is None or now + LEEWAY < iat:
            raise InvalidToken("the token's issue time is missing or in the future")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise InvalidToken("the token has no usable subject")

    def shows_mfa(self, claims: Mapping[str, Any]) -> bool:
        """Whether the sign-in behind these claims used more than one factor."""
        if claims.get("acr") in self.sign_in.mfa_acr:
            return True
        methods = claims.get("amr")
        return isinstance(methods, list) and any(m in self.sign_in.mfa_amr for m in methods)

    def is_operator(self, claims: Mapping[str, Any]) -> bool:
        if self.name != COALITION or not self.sign_in.operator_claim:
            return False
        roles = claims.get(self.sign_in.operator_claim)
        if isinstance(roles, str):
            roles = roles.split()
        return isinstance(roles, list) and self.sign_in.operator_role in roles

    def customer_id(self, claims: Mapping[str, Any]) -> str | None:
        claim = self.sign_in.customer_id_claim
        value = claims.get(claim) if claim else None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return value if isinstance(value, str) and 0 < len(value.strip()) <= 128 else None


class ProviderError(ValueError):
    pass


@dataclass
class Providers:
    """Every configured provider, by name and by issuer."""

    by_name: dict[str, Provider]

    @property
    def by_issuer(self) -> dict[str, Provider]:
        return {provider.issuer: provider for provider in self.by_name.values()}

    def get(self, name: str) -> Provider | None:
        return self.by_name.get(name)

    def for_token(self, token: str) -> Provider:
        _, claims = peek(token)
        issuer = claims.get("iss")
        provider = self.by_issuer.get(issuer) if isinstance(issuer, str) else None
        if provider is None:
            raise InvalidToken("the token's issuer is not a provider of this coalition")
        return provider


def credentials(name: str, lookup: Callable[[str], str | None]) -> tuple[str, str]:
    """The gateway's client id and secret at a provider, from the environment."""
    prefix = env_name(name)
    client_id, secret = lookup(f"{prefix}_CLIENT_ID"), lookup(f"{prefix}_CLIENT_SECRET")
    if not client_id or not secret:
        raise ProviderError(
            f"sign-in for '{name}' needs {prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET "
            "in the environment"
        )
    return client_id, secret
