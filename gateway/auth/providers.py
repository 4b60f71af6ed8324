"""The configured OpenID Connect providers, and the checks every token from them passes.

Keys come from each provider's discovery document and JWKS, cached; an unknown key id
makes one refetch (at most every ``REFETCH_SECONDS``), so a provider's key rotation is
picked up without a restart. Only asymmetric algorithms are accepted, so neither
``alg: none`` nor an HMAC token keyed with a provider's public key gets through.

The issuer is an exact string (a trailing ``/`` included) in the configuration, the
discovery document, the ``iss`` claim and the callback's ``iss`` parameter; only the
discovery document's address drops a trailing ``/`` before ``/.well-known`` (OpenID Connect
Discovery section 4).

An access token that is not a JWT (an opaque one) is checked by token introspection
(RFC 7662) at a provider whose sign-in sets ``introspection = true``, and passes the same
checks as a JWT's claims (active, ``iss`` when given, ``aud``, ``exp``, ``nbf``, ``sub``).
An accepted answer is cached (bounded, by the token's hash) until the token expires.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.auth.client_auth import ClientAuth
from gateway.auth.errors import InvalidToken
from gateway.kernel.validation import ERASED_PREFIX
from partners.config.sign_in import CLIENT_SECRET_BASIC, SignIn

log = logging.getLogger("gateway.auth")

ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"})
LEEWAY = 60  # seconds of clock skew allowed on exp, nbf and iat
REFETCH_SECONDS = 10.0
CACHE_SECONDS = 3600.0
MAX_TOKEN_BYTES = 16 * 1024
COALITION = "coalition"  # the provider name of the coalition's own sign-in
INTROSPECTION_CACHE_SIZE = 10_000  # accepted opaque tokens remembered per provider
PROVIDER_HEADER = "coalition-provider"  # names an opaque token's provider, when several could


class ProviderUnavailable(InvalidToken):
    """The provider's discovery document or keys cannot be fetched: not the token's fault."""


def _segment(text: str) -> dict[str, Any]:
    padded = text + "=" * (-len(text) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _check_length(token: str) -> None:
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("the token is too long")


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A JWT's header and claims, NOT verified: only to choose how to verify it."""
    _check_length(token)
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
    issuer: str  # exactly as configured (or the development provider's)
    client: ClientAuth
    http: httpx.AsyncClient
    clock: Callable[[], datetime]
    _introspected: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    _metadata: dict[str, Any] | None = None
    _metadata_at: float = 0.0
    _keys: KeySet | None = None
    _keys_at: float = field(default=-1e18)
    _attempt_at: float = field(default=-1e18)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def client_id(self) -> str:
        return self.client.client_id

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
        """The discovery document, cached for an hour; its issuer must be ours exactly, and
        it must offer the client authentication the sign-in is configured with."""
        if self._metadata is None or self._now() - self._metadata_at > CACHE_SECONDS:
            base = self.issuer.rstrip("/")
            document = await self._get_json(f"{base}/.well-known/openid-configuration")
            if document.get("issuer") != self.issuer:
                log.error(
                    "provider %s: discovery names issuer %r", self.name, document.get("issuer")
                )
                raise InvalidToken(f"the provider '{self.name}' is misconfigured")
            self._check_auth_method(document, "token_endpoint")
            self._metadata, self._metadata_at = document, self._now()
        return self._metadata

    def _check_auth_method(self, document: Mapping[str, Any], endpoint: str) -> None:
        """The provider must offer our method (and assertion algorithm) at ``endpoint``.
        RFC 8414: the token endpoint's list defaults to client_secret_basic; the
        introspection endpoint's is taken, when missing, to be the token endpoint's."""
        default = (
            [CLIENT_SECRET_BASIC]
            if endpoint == "token_endpoint"
            else document.get("token_endpoint_auth_methods_supported", [CLIENT_SECRET_BASIC])
        )
        offered = document.get(f"{endpoint}_auth_methods_supported", default)
        if not isinstance(offered, list) or self.client.method not in offered:
            log.error(
                "provider %s: %s offers %r, not the configured token_endpoint_auth_method %r",
                self.name,
                endpoint,
                offered,
                self.client.method,
            )
            raise InvalidToken(
                f"the provider '{self.name}' does not offer {self.client.method} "
                "(token_endpoint_auth_method)"
            )
        algorithms = document.get(f"{endpoint}_auth_signing_alg_values_supported")
        algorithm = self.client.algorithm
        if algorithm is not None and isinstance(algorithms, list) and algorithm not in algorithms:
            log.error(
                "provider %s: %s takes no %s client assertion", self.name, endpoint, algorithm
            )
            raise InvalidToken(
                f"the provider '{self.name}' does not accept {algorithm} client assertions"
            )

    async def post_form(self, url: str, form: dict[str, str]) -> httpx.Response:
        """POST ``form`` to one of the provider's endpoints as the gateway's client."""
        audience = self.issuer
        if self.sign_in.client_assertion_audience == "token_endpoint":
            audience = await self.endpoint("token_endpoint")
        headers, body = self.client.apply(form, audience, self._now())
        return await self.http.post(
            url, data=body, headers={"Accept": "application/json", **headers}
        )

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

    async def introspect(self, token: str) -> dict[str, Any]:
        """An opaque access token's claims, by introspection (RFC 7662) or from the cache,
        once they pass the checks a JWT's claims pass."""
        _check_length(token)
        if not self.sign_in.introspection:
            raise InvalidToken("the token is not a signed JWT")
        key = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        claims = self._introspected.get(key)
        if claims is not None:
            self._introspected.move_to_end(key)
        else:
            claims = await self._ask_introspection(token)
        try:
            self._check_claims(claims, require_iat=False)
        except InvalidToken:
            self._introspected.pop(key, None)
            raise
        self._introspected[key] = claims  # until it expires, when the check above fails
        while len(self._introspected) > INTROSPECTION_CACHE_SIZE:
            self._introspected.popitem(last=False)
        return claims

    async def _ask_introspection(self, token: str) -> dict[str, Any]:
        url = self.sign_in.introspection_endpoint
        if url is None:
            url = await self.endpoint("introspection_endpoint")
        self._check_auth_method(await self.metadata(), "introspection_endpoint")
        try:
            response = await self.post_form(
                url, {"token": token, "token_type_hint": "access_token"}
            )
            answer = response.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning("provider %s: introspection failed: %r", self.name, error)
            raise ProviderUnavailable(f"the provider '{self.name}' cannot be reached") from None
        if response.status_code != 200 or not isinstance(answer, dict):
            log.warning("provider %s: introspection answered %s", self.name, response.status_code)
            raise ProviderUnavailable(f"the provider '{self.name}' refused introspection")
        if answer.get("active") is not True:
            raise InvalidToken("the token is not active")
        claims = {name: value for name, value in answer.items() if name != "active"}
        claims.setdefault("iss", self.issuer)  # the provider asked speaks for itself
        return claims

    def _check_claims(self, claims: Mapping[str, Any], *, require_iat: bool = True) -> None:
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
        if (iat is None and require_iat) or (iat is not None and now + LEEWAY < iat):
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
        if not isinstance(value, str) or not 0 < len(value.strip()) <= 128:
            return None
        # Erasure's pseudonyms start so: a claim like one must not reach an erased enrolment.
        return None if value[: len(ERASED_PREFIX)].lower() == ERASED_PREFIX else value


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

    async def access_claims(self, token: str, named: str | None) -> tuple[Provider, dict[str, Any]]:
        """The provider of an access token and its verified claims: a JWT by its ``iss``, an
        opaque token by introspection at the one provider that introspects, or at the one
        ``named`` (the ``Coalition-Provider`` header) when several do."""
        try:
            provider = self.for_token(token)
        except InvalidToken:
            introspecting = [p for p in self.by_name.values() if p.sign_in.introspection]
            if not introspecting or len(token.split(".")) == 3:
                raise
            provider = self._introspecting(introspecting, named)
            return provider, await provider.introspect(token)
        return provider, await provider.verify(token)

    def _introspecting(self, introspecting: list[Provider], named: str | None) -> Provider:
        if named is not None:
            provider = self.by_name.get(named.strip())
            if provider is None or not provider.sign_in.introspection:
                raise InvalidToken(
                    "the Coalition-Provider header names no provider that introspects"
                )
            return provider
        if len(introspecting) > 1:
            raise InvalidToken(
                "several providers issue opaque tokens: name yours in the Coalition-Provider header"
            )
        return introspecting[0]
