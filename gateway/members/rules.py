"""The rules of members' sign-in: how long flows, links and sessions last, when a sign-in
is recent or fresh enough, when a linked second factor counts for step-up, and what is
stored for a secret (its digest, never the value)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from gateway.auth.principal import MemberPrincipal
from gateway.members.store import IdentityRecord

FLOW_LIFETIME = timedelta(minutes=10)
SIGN_IN, LINK = "sign_in", "link"  # how an identity came to its member
LINK_NONCE_LIFETIME = timedelta(minutes=5)
# A second factor shown by an identity linked to an existing member counts for step-up
# only after this long: a stolen session cannot link the thief's MFA-capable sign-in and
# spend at once.
STEP_UP_COOLING_OFF = timedelta(hours=24)
RECENT_SIGN_IN = timedelta(minutes=10)  # linking and unlinking need a sign-in this recent


def recently_signed_in(principal: MemberPrincipal, now: datetime) -> bool:
    """Whether the member signed in recently enough to link or unlink sign-ins."""
    at = principal.authenticated_at
    return at is not None and now - at <= RECENT_SIGN_IN


LINK_SIGN_IN_LEEWAY = timedelta(seconds=60)  # clock skew allowed on a link's auth_time


def fresh_for_link(signed_in: datetime | None, started_at: datetime) -> bool:
    """Whether a provider sign-in at ``signed_in`` (its ``auth_time``) was made for a link
    started at ``started_at``: a link (browser or native) needs a fresh sign-in, not a
    provider session left open; no ``auth_time`` is no proof."""
    return signed_in is not None and signed_in >= started_at - LINK_SIGN_IN_LEEWAY


def step_up_from(identity: IdentityRecord) -> datetime | None:
    """When the identity's second factor starts to count for step-up (None: at once)."""
    return identity.linked_at + STEP_UP_COOLING_OFF if identity.origin == LINK else None


SESSION_RETENTION = timedelta(days=7)  # ended sessions are kept this long, then deleted


def digest(secret: str) -> str:
    """What is stored for a state, nonce or session token: never the value itself."""
    return hashlib.sha256(secret.encode()).hexdigest()
