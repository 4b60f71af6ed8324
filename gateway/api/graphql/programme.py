"""Earning for purchases and activities, the earn quote, returns and referrals."""

from __future__ import annotations

import logging
from decimal import Decimal
from enum import Enum

import strawberry

from gateway.api.graphql.access import check_member
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
from gateway.earning.bulk import MAX_BULK, BulkLine
from gateway.earning.purchases import Earned
from gateway.earning.returns import Returned
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.validation import invalid
from gateway.ledger.records import MemberRef

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


@strawberry.input(description="One purchase of a batch: points, or a purchase.")
class BulkEarnLineInput:
    member: MemberReferenceInput
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)
    points: Int64 | None = None
    purchase: PurchaseInput | None = None
    reason: str | None = None


@strawberry.input
class EarnPointsBulkInput:
    partner: str
    lines: list[BulkEarnLineInput] = strawberry.field(description="At most 10,000.")


@strawberry.type(description="The outcome of one line of a batch, in the batch's order.")
class BulkEarnResult:
    index: int
    transfer: Transfer | None = None
    breakdown: list[EarnAward] | None = None
    pending: bool = False
    idempotent_replay: bool = False
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class EarnPointsBulkPayload:
    results: list[BulkEarnResult] = strawberry.field(default_factory=list)
    succeeded: Int64 = 0
    failed: Int64 = 0
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Errors of the whole call; line errors are per line."
    )


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
        results: list[BulkEarnResult] = []
        lines: list[BulkLine] = []
        try:
            info.context.access.act_at(input.partner, "points:earn")
            if len(input.lines) > MAX_BULK:
                raise DomainError(
                    ErrorCode.TOO_MANY_LINES,
                    f"At most {MAX_BULK} purchases per call; this one has {len(input.lines)}.",
                    ("lines",),
                )
            refused: dict[int, DomainError] = {}
            for index, line in enumerate(input.lines):
                try:
                    ref = line.member.resolve(input.partner)
                    await check_member(info, ref)
                except DomainError as error:
                    refused[index] = error
                    ref = MemberRef(id="")
                amount, parts = line.purchase.parts() if line.purchase else (None, [])
                if line.points is None and line.purchase is None:
                    refused.setdefault(index, invalid("points", "Give points or a purchase."))
                lines.append(
                    BulkLine(ref, line.idempotency_key, line.points, amount, parts, line.reason)
                )
            chosen = [i for i in range(len(lines)) if i not in refused]
            answers = await programme(info).earn_bulk(input.partner, [lines[i] for i in chosen])
        except DomainError as error:
            return EarnPointsBulkPayload(user_errors=UserError.of(error))
        outcome: dict[int, Earned | DomainError] = {
            **refused,
            **dict(zip(chosen, answers, strict=True)),
        }
        for index in range(len(lines)):
            answer = outcome[index]
            if isinstance(answer, DomainError):
                placed = answer.placed(AS_PURCHASE).within("lines", str(index))
                results.append(BulkEarnResult(index=index, user_errors=UserError.of(placed)))
                continue
            results.append(
                BulkEarnResult(
                    index=index,
                    transfer=Transfer.of(answer.posting.transfer),
                    breakdown=[EarnAward.of(a) for a in answer.awards],
                    pending=answer.pending,
                    idempotent_replay=answer.posting.replayed,
                )
            )
        failed = sum(1 for r in results if r.user_errors)
        return EarnPointsBulkPayload(
            results=results, succeeded=len(results) - failed, failed=failed
        )

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
