"""Sign-in configuration: which OpenID Connect provider a partner (or the coalition) uses.

A provider is named by its issuer URL, or ``development = true`` for the gateway's bundled
development provider (demo only). The gateway's client id and secret at a provider come
from the environment, never from these files: ``COALITION_OIDC_<NAME>_CLIENT_ID`` and
``COALITION_OIDC_<NAME>_CLIENT_SECRET``, where NAME is the partner's slug in capitals with
``-`` as ``_``, or ``COALITION`` for the coalition's own provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from .reader import Reader

CLAIM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]{0,127}$")
DEFAULT_MFA_AMR = ("mfa", "otp", "hwk", "swk", "sms", "fpt", "face")
DEFAULT_OPERATOR_ROLE = "coalition-operator"


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


@dataclass(frozen=True)
class StepUp:
    """Redeeming or converting more than ``points`` needs a multi-factor sign-in."""

    points: int


def env_name(name: str) -> str:
    return "COALITION_OIDC_" + name.upper().replace("-", "_")


def _issuer(reader: Reader) -> str | None:
    issuer = reader.text("issuer", required=False) or None
    if issuer is None:
        return None
    parts = urlsplit(issuer)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise reader.fail("issuer", f"must be an absolute https URL, got {issuer!r}")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise reader.fail("issuer", "must use https (plain http is allowed for loopback only)")
    return issuer.rstrip("/")


def read_sign_in(reader: Reader, coalition: bool) -> SignIn:
    allowed = {
        "issuer",
        "development",
        "customer_id_claim",
        "audiences",
        "scope",
        "mfa_acr",
        "mfa_amr",
    }
    if coalition:
        allowed |= {"operator_claim", "operator_role"}
        allowed.discard("customer_id_claim")
    reader.unknown_keys(allowed)
    issuer = _issuer(reader)
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
    )


def read_step_up(reader: Reader) -> StepUp:
    reader.unknown_keys({"points"})
    return StepUp(points=reader.integer("points", minimum=1))
