"""Earning for purchases and activities, the earn quote, returns and referrals."""

from __future__ import annotations

import logging
from decimal import Decimal
from enum import Enum

import strawberry

from gateway.api.graphql import bulk
from gateway.api.graphql.access import check_member
from gateway.api.graphql.bulk import EarnPointsBulkInput, EarnPointsBulkPayload
from gateway.api.graphql.context import Info
from gateway.api.graphql.earning import programme
from gateway.api.graphql.payloads import (
    IDEMPOTENCY_KEY,
    MemberReferenceInput,
    PointsPayload,
    UserError,
)
from gateway.api.graphql.purchases import AS_PURCHASE, EarnAward, PurchaseInput
from gateway.api.graphql.scalars import Int64, decode_member_id
from gateway.api.graphql.types import Transfer
from gateway.auth.policy import denied
from gateway.earning.returns import Returned
from gateway.kernel.errors import DomainError, ErrorCode

log = logging.getLogger("gateway.api.graphql.programme")


@strawberry.type
class EarnQuote:
    points: Int64
    breakdown: list[EarnAward]


@strawberry.type
class EarnQuotePayload:
    quote: EarnQuote | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.enum(description="Engagement activities a partner may pay points for.")
class Activity(Enum):
    SURVEY = "survey"
    REVIEW = "review"
    SOCIAL_SHARE = "social_share"


@strawberry.input
class RecordActivityInput:
    partner: str
    member: MemberReferenceInput
    activity: Activity
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)


@strawberry.type
class RecordActivityPayload(PointsPayload):
    pass


@strawberry.input
class ReturnPurchaseInput:
    partner: str
    receipt: str = strawberry.field(
        description="The idempotency key the purchase was earned with (its receipt number)."
    )
    amount: Decimal = strawberry.field(description="How much of the purchase is returned.")
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)


@strawberry.type
class ReturnPurchasePayload:
    clawed_back: Int64 = strawberry.field(
        default=0, description="Points taken back now, from the wallet or from pending points."
    )
    owed: Int64 = strawberry.field(
        default=0,
        description="Points already spent that the member now owes (the wallet shows below "
        "zero by this much; the next earns there pay it back first).",
    )
    uncollected: Int64 = strawberry.field(
        default=0, description="Points already spent that were not taken back (capped)."
    )
    transfer: Transfer | None = None
    idempotent_replay: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, returned: Returned) -> ReturnPurchasePayload:
        posting = returned.transfer
        return cls(
            clawed_back=returned.taken,
            owed=returned.owed,
            uncollected=returned.uncollected,
            transfer=Transfer.of(posting.transfer) if posting else None,
            idempotent_replay=returned.replayed,
        )


@strawberry.input
class ApplyReferralCodeInput:
    member_id: strawberry.ID = strawberry.field(description="The referred member.")
    code: str = strawberry.field(description="The referring member's referral code.")


@strawberry.type
class ApplyReferralCodePayload:
    applied: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ProgrammeQueries:
    @strawberry.field(
        description="What a purchase would earn now at a partner, rule by rule; nothing is "
        "posted. With a member, their tier, first purchase and frequency count apply."
    )
    async def earn_quote(
        self,
        info: Info,
        partner: str,
        purchase: PurchaseInput,
        member: MemberReferenceInput | None = None,
    ) -> EarnQuotePayload:
        try:
            ref = member.resolve(partner) if member is not None else None
            if ref is not None:
                await check_member(info, ref)
            elif info.context.access.member_id is None:
                info.context.access.act_at(partner, "points:earn")
            awards = await programme(info).quote(partner, ref, *purchase.parts())
        except DomainError as error:
            return EarnQuotePayload(user_errors=UserError.of(error.placed(AS_PURCHASE), None))
        quote = EarnQuote(
            points=sum(a.points for a in awards), breakdown=[EarnAward.of(a) for a in awards]
        )
        return EarnQuotePayload(quote=quote)


@strawberry.type
class ProgrammeMutations:
    @strawberry.mutation(
        description="A point-of-sale batch: up to 10,000 purchases, each with its own "
        "idempotency key and its own result; a bad line fails alone with its error."
    )
    async def earn_points_bulk(
        self, info: Info, input: EarnPointsBulkInput
    ) -> EarnPointsBulkPayload | None:
        # Served by ``bulk.earn_points_bulk`` (installed over this resolver by the schema),
        # which reads the lines without strawberry's conversion; the same answer.
        return await bulk.earn_points_bulk(info, input.partner, input.lines)

    @strawberry.mutation(
        description="Points for an engagement activity (survey, review, social share), at "
        "most the partner's cap per member and period."
    )
    async def record_activity(
        self, info: Info, input: RecordActivityInput
    ) -> RecordActivityPayload | None:
        try:
            info.context.access.act_at(input.partner, "points:earn")
            member = input.member.resolve(input.partner)
            await check_member(info, member)
            posting = await programme(info).record_activity(
                input.partner, member, input.activity.value, input.idempotency_key
            )
        except DomainError as error:
            return RecordActivityPayload(user_errors=UserError.of(error))
        return RecordActivityPayload.of(posting, input.partner)  # type: ignore[return-value]

    @strawberry.mutation(
        description="A purchase returned in full or in part: its points are taken back "
        "(cancelled while pending; if spent, the partner's rule decides)."
    )
    async def return_purchase(
        self, info: Info, input: ReturnPurchaseInput
    ) -> ReturnPurchasePayload | None:
        try:
            info.context.access.act_at(input.partner, "points:earn")
            returned = await programme(info).return_purchase(
                input.partner, input.receipt, input.amount, input.idempotency_key
            )
        except DomainError as error:
            return ReturnPurchasePayload(user_errors=UserError.of(error))
        return ReturnPurchasePayload.of(returned)

    @strawberry.mutation(
        description="Record who referred a member (the member themself or an operator); both "
        "get the partner's bonus at the member's first qualifying purchase, once."
    )
    async def apply_referral_code(
        self, info: Info, input: ApplyReferralCodeInput
    ) -> ApplyReferralCodePayload | None:
        access = info.context.access
        try:
            member_id = decode_member_id(str(input.member_id))
            if member_id is None:
                raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member_id",))
            if not access.is_operator and access.member_id != member_id:
                raise denied("Only the member or an operator may apply a referral code.")
            await programme(info).apply_referral(member_id, input.code)
        except DomainError as error:
            return ApplyReferralCodePayload(user_errors=UserError.of(error))
        return ApplyReferralCodePayload(applied=True)
