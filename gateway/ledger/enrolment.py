"""Enrolment: a partner's customer becomes a member, with the partner's sign-up bonus."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import outbox
from gateway.ledger import store as repository
from gateway.ledger.posting import Claim, Kernel
from gateway.ledger.records import Enrolled, EnrolmentRecord, MemberRecord
from gateway.ledger.rules import TransferKind, earn_legs
from partners.config.coalition import Coalition


class EnrolmentTaken(Exception):
    """A concurrent call enrolled the pair first: the transaction rolls back, and runs again."""


async def enrol(
    connection: AsyncConnection,
    kernel: Kernel,
    coalition: Coalition,
    partner: str,
    customer_id: str,
) -> Enrolled:
    """The member enrolled at ``partner`` as ``customer_id``: a new one when there is none."""
    existing = await repository.enrolment(connection, partner, customer_id)
    if existing is not None:
        members = await repository.members_by_id(connection, [existing.member_id])
        return Enrolled(members[existing.member_id], existing, created=False)
    member = MemberRecord(str(uuid.uuid4()), kernel.clock())
    await repository.insert_member(connection, member.id, member.created_at)
    if not await repository.claim_enrolment(
        connection, partner, customer_id, member.id, member.created_at
    ):
        raise EnrolmentTaken
    joined = outbox.enrolled(member.id, partner, customer_id, member.created_at)
    await outbox.append(connection, [joined])
    await _signup_bonus(connection, kernel, coalition, partner, member.id)
    enrolment = EnrolmentRecord(partner, customer_id, member.id, member.created_at)
    return Enrolled(member, enrolment, created=True)


async def _signup_bonus(
    connection: AsyncConnection, kernel: Kernel, coalition: Coalition, partner: str, member_id: str
) -> None:
    """A new member's sign-up bonus, in the enrolment's transaction."""
    config = coalition.partners[partner]
    points = config.earning.signup_bonus
    if not points or config.pool.remote:
        return
    claim = Claim.of(f"signup:{partner}", member_id, {"member": member_id})
    values = {
        "kind": TransferKind.EARN.value,
        "partner": partner,
        "points": points,
        "reason": "sign-up bonus",
    }
    await kernel.post(connection, claim, values, member_id, earn_legs(partner, points))
