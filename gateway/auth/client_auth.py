"""How the gateway authenticates itself at a provider's token and introspection endpoints.

Each sign-in names its ``token_endpoint_auth_method`` (OpenID Connect Core section 9):

- ``client_secret_basic``: HTTP Basic with the client id and secret each form-encoded first
  (RFC 6749 section 2.3.1), so a secret such as ``q8+Zr/Xk2w+T1v/Ym9n==`` reaches a strict
  provider intact;
- ``client_secret_post``: ``client_id`` and ``client_secret`` in the form body;
- ``private_key_jwt``: a short-lived, single-use JWT signed with the gateway's private key
  for that provider (RFC 7523 section 2.2), whose ``aud`` is the provider's issuer
  identifier (RFC 9126's recommendation; Auth0's default) or, with
  ``client_assertion_audience = "token_endpoint"``, its token endpoint URL (OpenID Connect
  Core section 9's SHOULD, which some providers require).

Credentials come from the environment: ``COALITION_OIDC_<NAME>_CLIENT_ID`` and either
``…_CLIENT_SECRET`` or ``…_PRIVATE_KEY`` (a PEM private key, or a private JWK as JSON; RSA
signs RS256, EC P-256 ES256, EC P-384 ES384).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from partners.config.sign_in import (
    CLIENT_SECRET_BASIC,
    CLIENT_SECRET_POST,
    PRIVATE_KEY_JWT,
    env_name,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60  # seconds
_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384"}


class ClientAuthError(ValueError):
    """Missing or unusable credentials for a provider; the message names the variables."""


@dataclass(frozen=True)
class ClientAuth:
    """The gateway's client at one provider, and how it proves it is that client."""

    method: str
    client_id: str
    secret: str | None = None  # the secret methods
    key: RSAKey | ECKey | None = None  # private_key_jwt
    algorithm: str | None = None  # private_key_jwt

    def apply(
        self, form: dict[str, str], audience: str, now: float
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The headers and the form of a request to an endpoint of the provider, with the
        client's authentication added; ``audience`` names the provider in an assertion
        (its issuer, or its token endpoint: ``client_assertion_audience``)."""
        if self.method == CLIENT_SECRET_BASIC:
            assert self.secret is not None
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self.secret)}"
            basic = base64.b64encode(pair.encode()).decode("ascii")
            return {"Authorization": f"Basic {basic}"}, form
        if self.method == CLIENT_SECRET_POST:
            assert self.secret is not None
            return {}, {**form, "client_id": self.client_id, "client_secret": self.secret}
        return {}, {
            **form,
            "client_id": self.client_id,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(audience, now),
        }

    def assertion(self, audience: str, now: float) -> str:
        """RFC 7523 section 3: iss and sub the client, aud the provider, single use."""
        assert self.key is not None and self.algorithm is not None
        issued = int(now)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(16),
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME,
        }
        header: dict[str, Any] = {"alg": self.algorithm}
        if self.key.kid:
            header["kid"] = self.key.kid
        return jwt.encode(header, claims, self.key, algorithms=[self.algorithm])


def _private_key(text: str, variable: str) -> tuple[RSAKey | ECKey, str]:
    """A private RSA or EC key from PEM or JWK JSON, and the algorithm it signs with."""
    try:
        if text.lstrip().startswith("{"):
            key: Any = import_key(json.loads(text))
        else:
            try:
                key = RSAKey.import_key(text.encode())
            except (JoseError, ValueError, TypeError):
                key = ECKey.import_key(text.encode())
    except (JoseError, ValueError, TypeError):
        raise ClientAuthError(f"{variable} is not a PEM or JWK private key") from None
    if isinstance(key, RSAKey) and key.is_private:
        key.ensure_kid()
        return key, "RS256"
    if isinstance(key, ECKey) and key.is_private and key.curve_name in _EC_ALGORITHMS:
        key.ensure_kid()
        return key, _EC_ALGORITHMS[key.curve_name]
    raise ClientAuthError(f"{variable} must be a private RSA key or EC key on P-256 or P-384")


def client_auth(name: str, method: str, lookup: Callable[[str], str | None]) -> ClientAuth:
    """The gateway's client at the provider of ``name``, from the environment."""
    prefix = env_name(name)
    client_id = lookup(f"{prefix}_CLIENT_ID")
    if method == PRIVATE_KEY_JWT:
        text = lookup(f"{prefix}_PRIVATE_KEY")
        if not client_id or not text:
            raise ClientAuthError(
                f"sign-in for '{name}' (private_key_jwt) needs {prefix}_CLIENT_ID and "
                f"{prefix}_PRIVATE_KEY in the environment"
            )
        key, algorithm = _private_key(text, f"{prefix}_PRIVATE_KEY")
        return ClientAuth(method, client_id, key=key, algorithm=algorithm)
    secret = lookup(f"{prefix}_CLIENT_SECRET")
    if not client_id or not secret:
        raise ClientAuthError(
            f"sign-in for '{name}' needs {prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET "
            "in the environment"
        )
    return ClientAuth(method, client_id, secret=secret)
