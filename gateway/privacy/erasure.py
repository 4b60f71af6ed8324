"""The rules of erasure (GDPR article 17), free of storage: who may erase, what erasure
removes, pseudonymises and keeps, and the postings that forfeit a member's points.

Removed: sessions and sign-in flows (the member is signed out), the referral code, the
keys of rejected import lines that the member's earns used too.
Pseudonymised with random tokens (``erased:<random>``, never derived from the value, so
nothing brute-forces it back): identities' subjects (unlinked too, so signing in with that
account again starts a new member), partners' customer ids (enrolling the same customer
again makes a new member), purchases' receipts and returns' keys, the callers'
idempotency keys of the member's transfers, remote operations' customer ids and keys, the
customer ids in ``member.enrolled`` events; the request fingerprints (hashes of requests
naming the customer id) of the member's transfers, returns and remote operations; the
quotes of the member's customer ids and keys in rejected import lines' messages. Cleared:
the messages of the gifts the member gave or received (in the transfers and their events),
the receivers' answers kept with the attempts of webhook deliveries about the member.
Kept: the member id (a random UUID, meaningless outside the gateway), transfers with
their amounts and legs, purchases' amounts and points, obligations and settlement
statements (bookkeeping records partners must keep), tiers, badges and reward receipts
(ids and figures only).
The points: open holds released, then every local wallet (available) and every pending
purchase's points forfeited to the pool's breakage with an EXPIRY transfer, the kind that
already moves unspent points to breakage. Obligations are untouched, so settlement
figures do not change. Points in a remote pool live in the partner's own system: the
gateway cannot move them, and after erasure no longer knows whose they are; an erasure
waits for the member's pending remote operations, whose outcome still moves points.
A ``member.erased`` event per partner that heard of the member (enrolled there, a wallet
in its pool, operations in its own system) tells the event log's consumers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.auth.principal import MemberPrincipal, OperatorPrincipal, Principal
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.rules import AccountCode, Leg, expiry_legs

FORFEIT = "forfeit"  # the one policy: points go to the pools' breakage
# A member erasing themself must have signed in this recently: a session left open on a
# shared computer must not be enough to destroy the account.
FRESH_SIGN_IN = timedelta(minutes=5)
REASON = "member erased"


@dataclass(frozen=True)
class Erasure:
    """What an erasure did; recorded without personal data (gateway.privacy.store)."""

    member_id: str
    erased_at: datetime
    erased_by: str
    merged_members: tuple[str, ...] = ()
    policy: str = FORFEIT
    released_holds: int = 0
    # Points forfeited to breakage, per pool (available and pending together).
    forfeited: dict[str, int] = field(default_factory=dict)
    identities: int = 0
    enrolments: int = 0
    transfers_rekeyed: int = 0


def check_may_erase(principal: Principal, member_id: str, now: datetime) -> None:
    """An operator may erase anyone; a member only themself, with a fresh sign-in: a
    browser session opened, or a token whose ``auth_time`` is, in the last 5 minutes
    (REAUTHENTICATION_REQUIRED otherwise); a partner's app never (ACCESS_DENIED)."""
    if isinstance(principal, MemberPrincipal):
        if principal.member_id != member_id:
            raise DomainError(
                ErrorCode.ACCESS_DENIED, "A member may only erase themself.", ("member_id",)
            )
        at = principal.proven_at  # a token's auth_time or the session's sign-in; not iat
        if at is None or now - at > FRESH_SIGN_IN:
            minutes = int(FRESH_SIGN_IN.total_seconds() // 60)
            raise DomainError(
                ErrorCode.REAUTHENTICATION_REQUIRED,
                f"Erasing your account needs a sign-in from the last {minutes} minutes: sign "
                "in again and retry.",
            )
        return
    if not isinstance(principal, OperatorPrincipal):
        raise DomainError(
            ErrorCode.ACCESS_DENIED,
            "Only an operator, or the member themself, may erase a member.",
        )


def wallet_forfeit(pool: str, points: int) -> list[Leg]:
    """A wallet's available points to the pool's breakage (as an expiry)."""
    return expiry_legs(pool, points)


def pending_forfeit(pool: str, points: int) -> list[Leg]:
    """A member's pending points (not yet in the wallet) to the pool's breakage."""
    return [Leg(pool, AccountCode.PENDING, -points), Leg(pool, AccountCode.BREAKAGE, points)]
