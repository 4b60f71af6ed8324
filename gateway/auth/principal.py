"""Who is calling: a member, a partner's app, or a coalition operator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

PARTNER_SCOPES = frozenset(
    {
        "members:enrol",
        "members:read",
        "points:earn",
        "points:redeem",
        "points:reverse",
        "rewards:manage",
        "webhooks:manage",
    }
)
OPERATOR_SCOPE = "operator"


@dataclass(frozen=True)
class MemberPrincipal:
    """A signed-in member: by a session cookie or a provider's bearer token."""

    member_id: str  # the surviving member, after any merge
    issuer: str
    subject: str
    mfa: bool  # the sign-in showed multi-factor authentication (acr/amr)
    session_id: str | None = None  # set for browser sessions
    authenticated_at: datetime | None = None  # when the person signed in (auth_time / iat)
    # When the person proved who they are, for what needs a fresh sign-in (erasure): a
    # token's ``auth_time`` or a browser session's start, never a token's ``iat`` (a token
    # renewed with a refresh token has a recent ``iat`` and no new sign-in).
    proven_at: datetime | None = None
    step_up_from: datetime | None = None  # when ``mfa`` starts to count (a new link waits)

    @property
    def actor(self) -> str:
        """How events name this caller (gateway.events.actor)."""
        return f"member:{self.member_id}"


@dataclass(frozen=True)
class PartnerPrincipal:
    """A partner's app, by a client-credentials token from the gateway."""

    partner: str
    client_id: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def actor(self) -> str:
        return f"partner:{self.partner}"


@dataclass(frozen=True)
class OperatorPrincipal:
    """A coalition operator: the coalition provider's role claim, or an operator client."""

    subject: str  # the person's subject at the coalition's provider, or the client's id
    issuer: str
    client: bool = False  # an operator client (client credentials), not a person

    @property
    def actor(self) -> str:
        return f"operator:{self.subject}"


Principal = MemberPrincipal | PartnerPrincipal | OperatorPrincipal
