"""Who is calling: from a bearer token (the gateway's own, or a provider's) or from the
browser session cookie."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import Request

from gateway.auth.errors import InvalidToken
from gateway.auth.issuer import TokenIssuer
from gateway.auth.principal import MemberPrincipal, OperatorPrincipal, Principal
from gateway.auth.providers import PROVIDER_HEADER, Provider, Providers
from gateway.members.identity import IdentityService
from gateway.members.records import Proof
from gateway.members.rules import step_up_from

SESSION_COOKIE = "coalition_session"
FLOW_COOKIE = "coalition_flow"


def _moment(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def authenticated_at(claims: dict[str, Any]) -> datetime | None:
    """When the person signed in at the provider (``auth_time``), if the token says."""
    return _moment(claims.get("auth_time"))


def signed_in_at(claims: dict[str, Any]) -> datetime | None:
    """When the person behind the token signed in: ``auth_time``, else ``iat``."""
    return authenticated_at(claims) or _moment(claims.get("iat"))


def proof_of(provider: Provider, claims: dict[str, Any]) -> Proof:
    return Proof(
        provider=provider.name,
        issuer=str(claims["iss"]),
        subject=str(claims["sub"]),
        customer_id=provider.customer_id(claims),
    )


@dataclass
class Authenticator:
    providers: Providers
    issuer: TokenIssuer
    identity: IdentityService
    secret: str  # signs the cookies, with a salt per cookie
    session_seconds: int

    async def bearer(self, token: str, provider_name: str | None = None) -> Principal:
        """The principal a bearer token proves; InvalidToken otherwise. ``provider_name``
        names the provider of an opaque token when several introspect."""
        if self.issuer.looks_like_ours(token):
            return await self.issuer.verify(token)
        provider, claims = await self.providers.access_claims(token, provider_name)
        if provider.is_operator(claims):
            return OperatorPrincipal(subject=str(claims["sub"]), issuer=provider.issuer)
        proof = proof_of(provider, claims)
        identity = await self.identity.linked(proof.issuer, proof.subject)
        if identity is None:
            # The first call with a valid token is the identity's first sign-in.
            await self.identity.sign_in(proof)
            identity = await self.identity.linked(proof.issuer, proof.subject)
            if identity is None:  # unlinked again in between
                raise InvalidToken("this sign-in is not linked to a member")
        return MemberPrincipal(
            member_id=identity.member_id,
            issuer=proof.issuer,
            subject=proof.subject,
            mfa=provider.shows_mfa(claims),
            authenticated_at=signed_in_at(claims),
            proven_at=authenticated_at(claims),
            step_up_from=step_up_from(identity),
        )

    def _signer(self, cookie: str) -> TimestampSigner:
        return TimestampSigner(self.secret, salt=f"coalition-cookie-{cookie}")

    def sign(self, cookie: str, value: str) -> str:
        return self._signer(cookie).sign(value).decode()

    def unsign(self, cookie: str, value: str, max_age: int) -> str | None:
        try:
            return self._signer(cookie).unsign(value, max_age=max_age).decode()
        except (BadSignature, UnicodeDecodeError):
            return None

    async def session_principal(self, request: Request) -> Principal | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        token = self.unsign(SESSION_COOKIE, cookie, self.session_seconds) if cookie else None
        if token is None:
            return None
        found = await self.identity.session(token)
        if found is None:
            return None
        if found.operator:
            return OperatorPrincipal(subject=found.subject, issuer=found.issuer)
        assert found.member_id is not None
        return MemberPrincipal(
            member_id=found.member_id,
            issuer=found.issuer,
            subject=found.subject,
            mfa=found.mfa,
            session_id=found.id,
            authenticated_at=found.created_at,
            proven_at=found.created_at,
            step_up_from=found.step_up_from,
        )

    async def principal(self, request: Request) -> Principal | None:
        """None when the request carries no credentials; InvalidToken for bad ones."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidToken("send credentials as `Authorization: Bearer <token>`")
            return await self.bearer(token.strip(), request.headers.get(PROVIDER_HEADER))
        return await self.session_principal(request)
