"""What each caller may reach. Free of GraphQL: resolvers, the CLI and jobs ask here.

- A member reaches only themselves, and spends above a partner's step-up threshold only
  with a multi-factor sign-in.
- A partner's app acts only in its own pool, with the scopes its token carries, and reads
  only members who hold an identity or an enrolment at that partner, and of them only
  what concerns that partner.
- An operator reaches everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.auth.principal import MemberPrincipal, OperatorPrincipal, PartnerPrincipal, Principal
from gateway.kernel.errors import DomainError, ErrorCode
from partners.config.coalition import Partner

STEP_UP_WINDOW = timedelta(hours=24)


def denied(message: str, field: tuple[str, ...] = ()) -> DomainError:
    return DomainError(ErrorCode.ACCESS_DENIED, message, field)


@dataclass(frozen=True)
class Access:
    principal: Principal

    @property
    def is_operator(self) -> bool:
        return isinstance(self.principal, OperatorPrincipal)

    @property
    def member_id(self) -> str | None:
        principal = self.principal
        return principal.member_id if isinstance(principal, MemberPrincipal) else None

    @property
    def partner(self) -> str | None:
        principal = self.principal
        return principal.partner if isinstance(principal, PartnerPrincipal) else None

    def require_operator(self) -> None:
        if not self.is_operator:
            raise denied("Only a coalition operator may do this.")

    def require_member(self) -> str:
        if self.member_id is None:
            raise denied("Only a signed-in member may do this.")
        return self.member_id

    def act_at(self, partner: str, scope: str, field: tuple[str, ...] = ("partner",)) -> None:
        """A partner operation (enrol, earn, redeem, reverse) at ``partner``'s pool."""
        principal = self.principal
        if isinstance(principal, OperatorPrincipal):
            return
        if isinstance(principal, PartnerPrincipal):
            if principal.partner != partner:
                raise denied(f"Your token acts for '{principal.partner}', not '{partner}'.", field)
            if not principal.has(scope):
                raise denied(f"Your token lacks the scope {scope}.")
            return
        raise denied("Members cannot do this; a partner's app or an operator can.")

    def needs_step_up(self, partner: Partner, now: datetime) -> bool:
        """Whether the caller's spending at ``partner`` counts against its step-up
        threshold: a member whose sign-in shows no second factor that counts yet."""
        principal = self.principal
        if not isinstance(principal, MemberPrincipal) or partner.step_up is None:
            return False
        counts = principal.step_up_from is None or now >= principal.step_up_from
        return not (principal.mfa and counts)

    def spend(
        self,
        partner: Partner,
        points: int,
        member_id: str,
        now: datetime,
        spent_recently: int = 0,
    ) -> None:
        """Redeeming or converting ``points`` of ``partner`` from ``member_id``'s wallet.

        ``spent_recently``: what the member spent at the partner in the last
        ``STEP_UP_WINDOW``, so that splitting a large amount does not avoid step-up (the
        caller's early check passes 0; ``gateway.auth.step_up`` checks the sum where it posts)."""
        principal = self.principal
        if isinstance(principal, OperatorPrincipal):
            return
        if isinstance(principal, PartnerPrincipal):
            self.act_at(partner.slug, "points:redeem")
            return
        if principal.member_id != member_id:
            raise denied("You can only spend your own points.", ("member",))
        self.step_up(partner, points, now, spent_recently)

    def step_up(self, partner: Partner, points: int, now: datetime, spent_recently: int) -> None:
        """Refuse a member without a second factor that counts spending ``points`` at
        ``partner`` when with what they spent there in the last ``STEP_UP_WINDOW`` it passes
        the partner's threshold. ``gateway.auth.step_up`` asks this inside the posting's
        transaction, where racing spends of the member take turns."""
        if not self.needs_step_up(partner, now):
            return
        assert partner.step_up is not None
        threshold = partner.step_up.points
        if points + spent_recently > threshold:
            raise DomainError(
                ErrorCode.STEP_UP_REQUIRED,
                f"Spending more than {threshold} points at '{partner.slug}' within 24 hours "
                "needs a sign-in with a second factor (multi-factor authentication); a "
                "sign-in linked in the last 24 hours does not count yet.",
                ("points",),
            )

    def sees_member(self, member_id: str, partners_of_member: Iterable[str]) -> bool:
        """``partners_of_member``: where the member holds an identity or an enrolment."""
        principal = self.principal
        if isinstance(principal, OperatorPrincipal):
            return True
        if isinstance(principal, MemberPrincipal):
            return principal.member_id == member_id
        return principal.has("members:read") and principal.partner in set(partners_of_member)

    def sees_pool(self, pool: str) -> bool:
        """Whether the caller sees a member's points in ``pool`` (given it sees the member)."""
        partner = self.partner
        return partner is None or partner == pool

    def sees_member_wide(self) -> bool:
        """Totals across pools and linked identities: not for a partner's app."""
        return self.partner is None
