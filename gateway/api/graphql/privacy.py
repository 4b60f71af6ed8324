"""Members' data rights over GraphQL: exports (mutations, for the audit trail records every
mutation) and erasure. The documents are JSON; see gateway/privacy."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from gateway.api.graphql.context import Info
from gateway.api.graphql.payloads import UserError, member_id_of
from gateway.api.graphql.scalars import Int64, encode_id
from gateway.kernel.errors import DomainError
from gateway.privacy.service import PrivacyService

EXPORT_NOTE = (
    "A document in `format` 1: the member, identities, enrolments (with the partners' "
    "customer ids), wallets, transfers with their legs, holds, purchases with returns, "
    "reward redemptions, badges, tier, referrals, sessions (never their tokens). At most "
    "10,000 transfers and 10,000 purchases, oldest first: `complete` is false when more "
    "are held (an operator's `coalition members export` gives everything)."
)


def _service(info: Info) -> PrivacyService:
    return info.context.privacy or PrivacyService(info.context.service)


@strawberry.input
class ExportMemberDataInput:
    member_id: strawberry.ID = strawberry.field(description="`Member.id` of the member.")


@strawberry.type
class ExportDataPayload:
    data: JSON | None = strawberry.field(default=None, description=EXPORT_NOTE)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class EraseMemberInput:
    member_id: strawberry.ID = strawberry.field(description="`Member.id` of the member.")


@strawberry.type(description="Points of one pool an erasure forfeited to its breakage.")
class ForfeitedPoints:
    partner: str
    points: Int64


@strawberry.type
class EraseMemberPayload:
    member_id: strawberry.ID | None = strawberry.field(
        default=None, description="The member erased (the survivor, if the id was merged)."
    )
    erased_at: datetime | None = None
    released_holds: int | None = strawberry.field(
        default=None, description="Open holds voided, their points back in the wallet first."
    )
    forfeited: list[ForfeitedPoints] | None = strawberry.field(
        default=None,
        description="Points forfeited to each pool's breakage (available and pending).",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


async def _export(info: Info, member_id: str) -> JSON:
    document: dict[str, Any] = await _service(info).export(member_id)
    return cast(JSON, document)


@strawberry.type
class PrivacyMutations:
    @strawberry.mutation(
        description="A signed-in member's copy of everything the coalition holds about them "
        "(GDPR articles 15 and 20)."
    )
    async def export_my_data(self, info: Info) -> ExportDataPayload | None:
        try:
            member_id = info.context.access.require_member()
            return ExportDataPayload(data=await _export(info, member_id))
        except DomainError as error:
            return ExportDataPayload(user_errors=UserError.of(error))

    @strawberry.mutation(
        description="An operator's export of everything held about a member, to answer an "
        "access or portability request."
    )
    async def export_member_data(
        self, info: Info, input: ExportMemberDataInput
    ) -> ExportDataPayload | None:
        try:
            info.context.access.require_operator()
            member_id = member_id_of(input.member_id)
            return ExportDataPayload(data=await _export(info, member_id))
        except DomainError as error:
            return ExportDataPayload(user_errors=UserError.of(error))

    @strawberry.mutation(
        description="Erase a member (GDPR article 17): an operator, or the member themself "
        "with a sign-in from the last 5 minutes (REAUTHENTICATION_REQUIRED otherwise). Open "
        "holds are voided and every point forfeited to the pools' breakage; identities are "
        "unlinked and their subjects, customer ids, receipts and idempotency keys replaced "
        "by random tokens; sessions end. Transfers, their amounts and settlement are kept. "
        "Once erased, operations on the member are MEMBER_ERASED, as is a second erasure."
    )
    async def erase_member(self, info: Info, input: EraseMemberInput) -> EraseMemberPayload | None:
        try:
            member_id = member_id_of(input.member_id)
            erasure = await _service(info).erase(member_id, info.context.principal)
        except DomainError as error:
            return EraseMemberPayload(user_errors=UserError.of(error))
        return EraseMemberPayload(
            member_id=strawberry.ID(encode_id("Member", erasure.member_id)),
            erased_at=erasure.erased_at,
            released_holds=erasure.released_holds,
            forfeited=[
                ForfeitedPoints(partner=partner, points=Int64(points))
                for partner, points in sorted(erasure.forfeited.items())
            ],
        )
