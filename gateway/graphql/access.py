"""Authorization checks that need the request's loaders (the rules are in auth.policy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from partners.config import Partner

from ..auth.policy import STEP_UP_WINDOW, denied
from ..errors import DomainError, ErrorCode
from ..records import MemberRef, scope
from .context import Info

if TYPE_CHECKING:
    from .payloads import MemberReferenceInput


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
    operation: str,
    idempotency_key: str,
) -> MemberRef:
    """Spending ``points`` at ``partner`` from the referenced member's wallet (a redeem or a
    hold): who may, and step-up over the last day. The member reference, to post with."""
    service, access = info.context.service, info.context.access
    if access.partner is not None:
        access.act_at(partner, "points:redeem")
    ref = member.resolve(partner)
    member_id = await check_member(info, ref)
    config = service.partner(partner)
    retry_of = (scope(operation, config.slug, access.member_id), idempotency_key)
    recent = await spent_recently(info, config, member_id, retry_of)
    access.spend(config, points, member_id or "", service.clock(), recent)
    return ref


async def spent_recently(
    info: Info, partner: Partner, member_id: str | None, *retry_of: tuple[str, str]
) -> int:
    """What the member spent at ``partner`` in the step-up window, when step-up applies;
    ``retry_of`` is the (scope, key) of this call, which a retry must not count."""
    access = info.context.access
    service = info.context.service
    now = service.clock()
    if member_id is None or not access.needs_step_up(partner, now):
        return 0
    return await service.spent_since(member_id, partner.slug, now - STEP_UP_WINDOW, retry_of)
