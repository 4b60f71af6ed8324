"""Sign-in configuration: which OpenID Connect provider a partner (or the coalition) uses.

A provider is named by its issuer identifier, an exact string (some end in ``/``, Auth0's
do) compared as such everywhere, or ``development = true`` for the gateway's bundled
development provider (demo only). The gateway's credentials at a provider come from the
environment, never from these files: ``COALITION_OIDC_<NAME>_CLIENT_ID`` and, as
``token_endpoint_auth_method`` says, ``COALITION_OIDC_<NAME>_CLIENT_SECRET`` or
``COALITION_OIDC_<NAME>_PRIVATE_KEY``, where NAME is the partner's slug in capitals with
``-`` as ``_``, or ``COALITION`` for the coalition's own provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from partners.config.reader import Reader

CLAIM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]{0,127}$")
DEFAULT_MFA_AMR = ("mfa", "otp", "hwk", "swk", "sms", "fpt", "face")
DEFAULT_OPERATOR_ROLE = "coalition-operator"
CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, PRIVATE_KEY_JWT = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
)
AUTH_METHODS = (CLIENT_SECRET_BASIC, CLIENT_SECRET_POST, PRIVATE_KEY_JWT)
ASSERTION_AUDIENCES = ("issuer", "token_endpoint")  # what a client assertion's aud names


@dataclass(frozen=True)
class SignIn:
    """A partner's (or the coalition's) identity provider, as configured."""

    issuer: str | None  # None when ``development`` is set: the issuer is the gateway's
    development: bool
    customer_id_claim: str | None  # the ID-token claim that carries the partner's customer id
    audiences: tuple[str, ...]  # accepted besides the gateway's client id at the provider
    scope: str
    mfa_acr: tuple[str, ...]  # ``acr`` values that prove multi-factor sign-in
    mfa_amr: tuple[str, ...]  # ``amr`` methods that prove it
    operator_claim: str | None  # coalition only: the claim listing roles
    operator_role: str | None  # coalition only: the role that makes an operator
    # How the gateway authenticates at the token (and introspection) endpoint.
    token_endpoint_auth_method: str = CLIENT_SECRET_BASIC
    client_assertion_audience: str = "issuer"  # private_key_jwt: aud is this URL
    introspection: bool = False  # opaque access tokens are checked by introspection
    introspection_endpoint: str | None = None  # None: the discovery document's


@dataclass(frozen=True)
class StepUp:
    """Redeeming or converting more than ``points`` needs a multi-factor sign-in."""

    points: int


def env_name(name: str) -> str:
    return "COALITION_OIDC_" + name.upper().replace("-", "_")


def _url(reader: Reader, field: str) -> str | None:
    """An https URL (http on loopback), exactly as written: an issuer is compared as a
    string, so a trailing ``/`` is part of it."""
    url = reader.text(field, required=False) or None
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise reader.fail(field, f"must be an absolute https URL, got {url!r}")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise reader.fail(field, "must use https (plain http is allowed for loopback only)")
    return url


def read_sign_in(reader: Reader, coalition: bool) -> SignIn:
    allowed = {
        "issuer",
        "development",
        "customer_id_claim",
        "audiences",
        "scope",
        "mfa_acr",
        "mfa_amr",
        "token_endpoint_auth_method",
        "client_assertion_audience",
        "introspection",
        "introspection_endpoint",
    }
    if coalition:
        allowed |= {"operator_claim", "operator_role"}
        allowed.discard("customer_id_claim")
    reader.unknown_keys(allowed)
    issuer = _url(reader, "issuer")
    development = reader.boolean("development", False)
    if development == (issuer is not None):
        raise reader.fail("issuer", "give either issuer or development = true, not both or neither")
    claim = reader.text("customer_id_claim", CLAIM, required=False) or None
    scope = reader.text("scope", required=False) or "openid profile"
    if "openid" not in scope.split():
        raise reader.fail("scope", "must include openid")
    operator_claim = operator_role = None
    if coalition:
        operator_claim = reader.text("operator_claim", CLAIM, required=False) or "roles"
        operator_role = reader.text("operator_role", required=False) or DEFAULT_OPERATOR_ROLE
    method = reader.text("token_endpoint_auth_method", required=False) or CLIENT_SECRET_BASIC
    if method not in AUTH_METHODS:
        raise reader.fail("token_endpoint_auth_method", f"must be one of {', '.join(AUTH_METHODS)}")
    if development and method == PRIVATE_KEY_JWT:
        raise reader.fail("token_endpoint_auth_method", "the development provider takes a secret")
    audience = reader.text("client_assertion_audience", required=False) or "issuer"
    if audience not in ASSERTION_AUDIENCES:
        raise reader.fail(
            "client_assertion_audience", f"must be one of {', '.join(ASSERTION_AUDIENCES)}"
        )
    if "client_assertion_audience" in reader.table and method != PRIVATE_KEY_JWT:
        raise reader.fail(
            "client_assertion_audience", "needs token_endpoint_auth_method = private_key_jwt"
        )
    introspection = reader.boolean("introspection", False)
    endpoint = _url(reader, "introspection_endpoint")
    if endpoint is not None and not introspection:
        raise reader.fail("introspection_endpoint", "needs introspection = true")
    return SignIn(
        issuer=issuer,
        development=development,
        customer_id_claim=claim,
        audiences=reader.strings("audiences"),
        scope=scope,
        mfa_acr=reader.strings("mfa_acr") or ("mfa",),
        mfa_amr=reader.strings("mfa_amr") or DEFAULT_MFA_AMR,
        operator_claim=operator_claim,
        operator_role=operator_role,
        token_endpoint_auth_method=method,
        client_assertion_audience=audience,
        introspection=introspection,
        introspection_endpoint=endpoint,
    )


def read_step_up(reader: Reader) -> StepUp:
    reader.unknown_keys({"points"})
    return StepUp(points=reader.integer("points", minimum=1))
