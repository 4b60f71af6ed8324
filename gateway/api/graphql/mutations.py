"""Mutations: each takes one `input` and answers a payload with `userErrors`."""

from __future__ import annotations

import strawberry

from gateway.api.graphql.access import check_member, check_spending, require_own_points, spending
from gateway.api.graphql.challenges import ChallengeMutations
from gateway.api.graphql.configuration import ConfigurationMutations
from gateway.api.graphql.context import Info
from gateway.api.graphql.earning import programme
from gateway.api.graphql.gifting import GiftMutations
from gateway.api.graphql.holds import HoldMutations
from gateway.api.graphql.linking import LinkMutations
from gateway.api.graphql.members import Member
from gateway.api.graphql.payloads import (
    ConvertPointsInput,
    ConvertPointsPayload,
    EarnPointsInput,
    EarnPointsPayload,
    EnrolMemberInput,
    EnrolMemberPayload,
    RedeemPointsInput,
    RedeemPointsPayload,
    ReverseTransferInput,
    ReverseTransferPayload,
    UserError,
    conversion_payload,
    member_id_of,
)
from gateway.api.graphql.privacy import PrivacyMutations
from gateway.api.graphql.programme import ProgrammeMutations
from gateway.api.graphql.promotions import PromotionMutations
from gateway.api.graphql.purchases import AS_PURCHASE, AS_PURCHASE_AMOUNT, EarnAward
from gateway.api.graphql.rewards import RewardMutations
from gateway.api.graphql.scalars import decode_int_id, encode_id
from gateway.api.graphql.settlement import SettlementMutations
from gateway.api.graphql.types import Transfer, Wallet
from gateway.api.graphql.webhooks import WebhookMutations
from gateway.auth.policy import denied
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.validation import invalid


@strawberry.type
class Mutation(
    LinkMutations,
    HoldMutations,
    RewardMutations,
    SettlementMutations,
    ProgrammeMutations,
    ChallengeMutations,
    GiftMutations,
    PromotionMutations,
    ConfigurationMutations,
    WebhookMutations,
    PrivacyMutations,
):
    @strawberry.mutation(
        description="A partner enrols one of its customers. Enrolling the same "
        "(partner, partnerCustomerId) again returns the member created the first time. A "
        "partner that keeps its points in its own system is asked first: UNKNOWN_CUSTOMER "
        "if it has no such customer, PARTNER_UNAVAILABLE (nothing enrolled; retry) if it "
        "does not answer."
    )
    async def enrol_member(self, info: Info, input: EnrolMemberInput) -> EnrolMemberPayload | None:
        try:
            info.context.access.act_at(input.partner, "members:enrol")
            enrolled = await info.context.service.enrol(input.partner, input.partner_customer_id)
        except DomainError as error:
            return EnrolMemberPayload(user_errors=UserError.of(error))
        member_id = enrolled.member.id
        visible = await info.context.sees_member(member_id)
        return EnrolMemberPayload(
            member=Member.of(enrolled.member) if visible else None,
            member_id=strawberry.ID(encode_id("Member", member_id)),
            created=enrolled.created,
        )

    @strawberry.mutation(
        description="Award points at a partner, as a number of points or for a purchase."
    )
    async def earn_points(self, info: Info, input: EarnPointsInput) -> EarnPointsPayload | None:
        try:
            info.context.access.act_at(input.partner, "points:earn")
            member = input.member.resolve(input.partner)
            await check_member(info, member)
            given = [
                x for x in (input.points, input.purchase_amount, input.purchase) if x is not None
            ]
            if len(given) != 1:
                raise invalid("points", "Give exactly one of points, purchaseAmount or purchase.")
            if input.points is not None:
                posting = await info.context.service.earn(
                    input.partner,
                    member,
                    input.idempotency_key,
                    points=input.points,
                    reason=input.reason,
                )
                return EarnPointsPayload.of(posting, input.partner)  # type: ignore[return-value]
            amount, lines = (
                input.purchase.parts()
                if input.purchase is not None
                else (input.purchase_amount, [])
            )
            earned = await programme(info).earn(
                input.partner, member, input.idempotency_key, amount, lines, input.reason
            )
        except DomainError as error:
            where = AS_PURCHASE if input.purchase is not None else AS_PURCHASE_AMOUNT
            return EarnPointsPayload(user_errors=UserError.of(error.placed(where)))
        payload: EarnPointsPayload = EarnPointsPayload.of(earned.posting, input.partner)  # type: ignore[assignment]
        if earned.wallet is not None:
            payload.wallet = Wallet(record=earned.wallet)
        payload.breakdown = [EarnAward.of(award) for award in earned.awards]
        payload.pending = earned.pending
        return payload

    @strawberry.mutation(description="Spend a member's points at a partner.")
    async def redeem_points(
        self, info: Info, input: RedeemPointsInput
    ) -> RedeemPointsPayload | None:
        try:
            member, step_up = await check_spending(info, input.partner, input.member, input.points)
            posting = await info.context.service.redeem(
                input.partner,
                member,
                input.points,
                input.idempotency_key,
                reason=input.reason,
                caller=info.context.access.member_id,
                step_up=step_up,
            )
        except DomainError as error:
            return RedeemPointsPayload(user_errors=UserError.of(error))
        return RedeemPointsPayload.of(posting, input.partner)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Convert a member's points of one partner into another's at the rate in "
        "force now. Both pools are posted together or not at all."
    )
    async def convert_points(
        self, info: Info, input: ConvertPointsInput
    ) -> ConvertPointsPayload | None:
        try:
            member_id = member_id_of(input.member_id)
            await require_own_points(info, member_id)
            service = info.context.service
            source = service.partner(input.from_partner, "from_partner")
            owner = (await info.context.loaders.members.load(member_id)) or None
            owner_id = owner.id if owner else member_id
            step_up = spending(info, source, input.points, owner_id)
            posting = await service.convert(
                member_id,
                input.from_partner,
                input.to_partner,
                input.points,
                input.idempotency_key,
                step_up,
            )
        except DomainError as error:
            return ConvertPointsPayload(user_errors=UserError.of(error))
        return conversion_payload(posting)

    @strawberry.mutation(
        description="Undo a transfer, in full or in part, with a new transfer that points at "
        "it. Partial reversals (each with its own key) add up to at most the original: a part "
        "beyond what is left is AMOUNT_OUT_OF_BOUNDS; once nothing is left, "
        "TRANSFER_ALREADY_REVERSED. "
        "A conversion is reversed in proportion (its target points and fee too, rounded in "
        "the house's favour). A member's wallet never goes below zero."
    )
    async def reverse_transfer(
        self, info: Info, input: ReverseTransferInput
    ) -> ReverseTransferPayload | None:
        try:
            transfer_id = decode_int_id(str(input.transfer_id), "Transfer")
            original = (
                await info.context.loaders.transfers.load(transfer_id) if transfer_id else None
            )
            if original is None or not await info.context.sees_transfer(original):
                raise DomainError(ErrorCode.UNKNOWN_TRANSFER, "No such transfer.", ("transfer_id",))
            access = info.context.access
            access.act_at(original.partner, "points:reverse", ("transfer_id",))
            if access.partner is not None and original.to_partner not in (None, access.partner):
                raise denied(
                    "A conversion into another partner's pool is reversed by an operator.",
                    ("transfer_id",),
                )
            assert transfer_id is not None
            posting = await info.context.service.reverse(
                transfer_id, input.idempotency_key, points=input.points, reason=input.reason
            )
        except DomainError as error:
            return ReverseTransferPayload(user_errors=UserError.of(error))
        return ReverseTransferPayload(
            reversal=Transfer.of(posting.transfer), idempotent_replay=posting.replayed
        )
