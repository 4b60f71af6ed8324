"""The development provider's signing keys and the tokens it mints and verifies."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from joserfc import jwk, jwt
from joserfc.errors import JoseError


class TokenIssuer:
    """Mints and verifies the tokens of ``issuer``: RS256 JWTs signed by the current key
    (older keys stay in the JWKS), or opaque tokens standing for the same claims.

    Tokens live ``token_lifetime`` seconds; every time comes from ``clock``.
    """

    def __init__(self, issuer: str, token_lifetime: int, clock: Callable[[], float]) -> None:
        self.issuer = issuer  # exactly: a trailing "/" is part of it
        self.token_lifetime = token_lifetime
        self.clock = clock
        self._opaque: dict[str, dict[str, Any]] = {}  # opaque access token -> its claims
        self._revoked: set[str] = set()  # access token ids revoked by a replayed code
        # Made when first needed: a gateway starts a provider per brand in development,
        # and most never sign anybody in (an RSA key takes tens of milliseconds).
        self._made: list[jwk.RSAKey] = []

    @property
    def _keys(self) -> list[jwk.RSAKey]:
        if not self._made:
            self._made.append(self._new_key())
        return self._made

    @staticmethod
    def _new_key() -> jwk.RSAKey:
        key = jwk.RSAKey.generate_key(2048, {"use": "sig", "alg": "RS256"}, private=True)
        key.ensure_kid()  # the RFC 7638 thumbprint
        return key

    def rotate_key(self) -> str:
        """Make a new RS256 key current and return its kid; old keys stay in the JWKS."""
        key = self._new_key()
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

    def revoke(self, jti: str) -> None:
        """Withdraw the token whose ``jti`` this is: ``verify`` no longer accepts it."""
        self._revoked.add(jti)

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this provider issued (signed or opaque) that has not
        expired and was not revoked, else None."""
        opaque = self._opaque.get(token)
        if opaque is not None:
            exp = opaque.get("exp")  # without one (a test's choice) it never expires
            if isinstance(exp, int) and self.clock() >= exp:
                return None
            return None if opaque.get("jti") in self._revoked else dict(opaque)
        try:
            decoded = jwt.decode(token, jwk.KeySet(list(self._keys)), algorithms=["RS256"])
            jwt.JWTClaimsRegistry(
                now=int(self.clock()),
                iss={"essential": True, "value": self.issuer},
                sub={"essential": True},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError):
            return None
        if decoded.claims.get("jti") in self._revoked:
            return None
        return decoded.claims

    def _claims(
        self,
        subject: str,
        audience: str | list[str],
        claims: Mapping[str, Any] | None,
        lifetime: int | None,
    ) -> dict[str, Any]:
        now = int(self.clock())
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


def s256(verifier: str) -> str:
    """PKCE's S256 transform (RFC 7636 section 4.2): BASE64URL(SHA-256(verifier))."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def at_hash(access_token: str) -> str:
    """OpenID Connect Core 3.1.3.6: the left half of the SHA-256 of the token."""
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def _merge(target: dict[str, Any], changes: Mapping[str, Any] | None) -> None:
    for name, value in (changes or {}).items():
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
