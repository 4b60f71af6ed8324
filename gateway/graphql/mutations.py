"""Mutations: each takes one `input` and answers a payload with `userErrors`."""

from __future__ import annotations

import strawberry

from ..errors import DomainError, ErrorCode
from .context import Info
from .payloads import (
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
from .scalars import decode_int_id
from .types import Member, Transfer


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="A partner enrols one of its customers. Enrolling the same "
        "(partner, partnerCustomerId) again returns the member created the first time."
    )
    async def enrol_member(self, info: Info, input: EnrolMemberInput) -> EnrolMemberPayload:
        try:
            enrolled = await info.context.service.enrol(input.partner, input.partner_customer_id)
        except DomainError as error:
            return EnrolMemberPayload(user_errors=UserError.of(error))
        return EnrolMemberPayload(member=Member.of(enrolled.member), created=enrolled.created)

    @strawberry.mutation(
        description="Award points at a partner, as a number of points or for a purchase."
    )
    async def earn_points(self, info: Info, input: EarnPointsInput) -> EarnPointsPayload:
        try:
            posting = await info.context.service.earn(
                input.partner,
                input.member.resolve(input.partner),
                input.idempotency_key,
                points=input.points,
                purchase_amount=input.purchase_amount,
                reason=input.reason,
            )
        except DomainError as error:
            return EarnPointsPayload(user_errors=UserError.of(error))
        return EarnPointsPayload.of(posting, input.partner)  # type: ignore[return-value]

    @strawberry.mutation(description="Spend a member's points at a partner.")
    async def redeem_points(self, info: Info, input: RedeemPointsInput) -> RedeemPointsPayload:
        try:
            posting = await info.context.service.redeem(
                input.partner,
                input.member.resolve(input.partner),
                input.points,
                input.idempotency_key,
                reason=input.reason,
            )
        except DomainError as error:
            return RedeemPointsPayload(user_errors=UserError.of(error))
        return RedeemPointsPayload.of(posting, input.partner)  # type: ignore[return-value]

    @strawberry.mutation(
        description="Convert a member's points of one partner into another's at the rate in "
        "force now. Both pools are posted together or not at all."
    )
    async def convert_points(self, info: Info, input: ConvertPointsInput) -> ConvertPointsPayload:
        try:
            posting = await info.context.service.convert(
                member_id_of(input.member_id),
                input.from_partner,
                input.to_partner,
                input.points,
                input.idempotency_key,
            )
        except DomainError as error:
            return ConvertPointsPayload(user_errors=UserError.of(error))
        return conversion_payload(posting)

    @strawberry.mutation(
        description="Undo a transfer with a new transfer that points at it. A transfer can be "
        "reversed once; a member's wallet never goes below zero."
    )
    async def reverse_transfer(
        self, info: Info, input: ReverseTransferInput
    ) -> ReverseTransferPayload:
        try:
            transfer_id = decode_int_id(str(input.transfer_id), "Transfer")
            if transfer_id is None:
                raise DomainError(ErrorCode.UNKNOWN_TRANSFER, "No such transfer.", ("transfer_id",))
            posting = await info.context.service.reverse(
                transfer_id, input.idempotency_key, points=input.points, reason=input.reason
            )
        except DomainError as error:
            return ReverseTransferPayload(user_errors=UserError.of(error))
        return ReverseTransferPayload(
            reversal=Transfer.of(posting.transfer), idempotent_replay=posting.replayed
        )
