"""Authorization checks that need the request's loaders (the rules are in auth.policy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.api.graphql.context import Info
from gateway.auth.policy import denied
from gateway.auth.step_up import StepUp
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.records import MemberRef
from partners.config.coalition import Partner

if TYPE_CHECKING:
    from gateway.api.graphql.payloads import MemberReferenceInput


async def _survivor(info: Info, member_id: str) -> str | None:
    record = await info.context.loaders.members.load(member_id)
    return record.id if record else None


async def require_own_points(info: Info, member_id: str) -> None:
    """Quoting or converting a member's points: the member themself, or an operator."""
    access = info.context.access
    if access.is_operator:
        return
    if access.member_id is None:
        raise denied("Only the member or an operator may convert a member's points.")
    if await _survivor(info, member_id) != access.member_id:
        raise denied("You can only convert your own points.", ("member_id",))


async def check_member(info: Info, ref: MemberRef) -> str | None:
    """For a partner's app or a member naming a member: refuse who they may not reach.

    A partner's app reaches members with an identity or enrolment at it (others are
    UNKNOWN_MEMBER, not revealing they exist); a member reaches only themself. Returns the
    member's id when it had to be resolved here."""
    access = info.context.access
    if access.is_operator:
        return None
    if ref.id is None:
        if access.member_id is None:
            return None  # a partner's own customer id: its own enrolments only
        try:
            member_id = await info.context.service.resolve_member(ref)
        except DomainError:
            # The same answer as for someone else's customer id: a member cannot probe
            # which customer ids exist.
            raise denied("You can only act on your own account.", ("member",)) from None
    else:
        member_id = await _survivor(info, ref.id) or ""
    if access.member_id is not None:
        if member_id != access.member_id:
            raise denied("You can only act on your own account.", ("member",))
        return member_id
    if not member_id or not await info.context.sees_member(member_id):
        raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member", "id"))
    return member_id


async def check_spending(
    info: Info,
    partner: str,
    member: MemberReferenceInput,
    points: int,
) -> tuple[MemberRef, StepUp]:
    """Spending ``points`` at ``partner`` from the referenced member's wallet (a redeem or a
    hold): who may (refused here), and the step-up rule, which the service checks inside
    the posting's transaction. The member reference to post with, and that rule."""
    service, access = info.context.service, info.context.access
    if access.partner is not None:
        access.act_at(partner, "points:redeem")
    ref = member.resolve(partner)
    member_id = await check_member(info, ref)
    return ref, spending(info, service.partner(partner), points, member_id)


def spending(info: Info, partner: Partner, points: int, member_id: str | None) -> StepUp:
    """Whether the caller may spend ``points`` of ``partner`` from ``member_id``'s wallet,
    ``points`` alone against the step-up threshold (refused here); the rule for the sum
    over the window, which the posting's transaction checks (``gateway.auth.step_up``)."""
    access = info.context.access
    access.spend(partner, points, member_id or "", info.context.service.clock())
    return StepUp(access, partner, points)
