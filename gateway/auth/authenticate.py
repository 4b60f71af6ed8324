"""Who is calling: from a bearer token (the gateway's own, or a provider's) or from the
browser session cookie."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import Request

from .errors import InvalidToken
from .identity import IdentityService, Proof
from .issuer import TokenIssuer
from .principal import MemberPrincipal, OperatorPrincipal, Principal
from .providers import Provider, Providers

SESSION_COOKIE = "coalition_session"
FLOW_COOKIE = "coalition_flow"


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
    signer: TimestampSigner
    session_seconds: int

    async def bearer(self, token: str) -> Principal:
        """The principal a bearer token proves; InvalidToken otherwise."""
        if self.issuer.looks_like_ours(token):
            return await self.issuer.verify(token)
        provider = self.providers.for_token(token)
        claims = await provider.verify(token)
        if provider.is_operator(claims):
            return OperatorPrincipal(subject=str(claims["sub"]), issuer=provider.issuer)
        proof = proof_of(provider, claims)
        member_id = await self.identity.member_of(proof.issuer, proof.subject)
        if member_id is None:
            # The first call with a valid token is the identity's first sign-in.
            member_id = (await self.identity.sign_in(proof)).member_id
        return MemberPrincipal(
            member_id=member_id,
            issuer=proof.issuer,
            subject=proof.subject,
            mfa=provider.shows_mfa(claims),
        )

    def unsign(self, value: str, max_age: int) -> str | None:
        try:
            return self.signer.unsign(value, max_age=max_age).decode()
        except (BadSignature, UnicodeDecodeError):
            return None

    async def session_principal(self, request: Request) -> Principal | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        token = self.unsign(cookie, self.session_seconds) if cookie else None
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
        )

    async def principal(self, request: Request) -> Principal | None:
        """None when the request carries no credentials; InvalidToken for bad ones."""
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidToken("send credentials as `Authorization: Bearer <token>`")
            return await self.bearer(token.strip())
        return await self.session_principal(request)
