"""Promotions: listed with those of the partners' files, managed through the API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from gateway.api.graphql.context import Info
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.payloads import UserError
from gateway.api.graphql.scalars import Int64, decode_int_id, encode_id
from gateway.earning.promotions import PromotionDraft, PromotionRecord, PromotionService
from gateway.kernel.errors import DomainError, ErrorCode


@strawberry.type(description="A time-boxed promotion: a multiplier or a fixed bonus.")
class Promotion:
    record: strawberry.Private[PromotionRecord]

    @strawberry.field(description="Null for a promotion from the partner's file.")
    def id(self) -> strawberry.ID | None:
        found = self.record.id
        return strawberry.ID(encode_id("Promotion", found)) if found is not None else None

    @strawberry.field
    def partner(self, info: Info) -> Partner:
        return Partner.of(info, self.record.partner)

    @strawberry.field
    def name(self) -> str:
        return self.record.promotion.name

    @strawberry.field
    def starts_at(self) -> datetime:
        return self.record.promotion.starts

    @strawberry.field
    def ends_at(self) -> datetime:
        return self.record.promotion.ends

    @strawberry.field
    def multiplier(self) -> Decimal | None:
        return self.record.promotion.multiplier

    @strawberry.field
    def bonus(self) -> Int64 | None:
        return self.record.promotion.bonus

    @strawberry.field(description="Only for members of this tier, when set.")
    def tier(self) -> str | None:
        return self.record.promotion.tier

    @strawberry.field(description="Only for a member's first purchase at the partner.")
    def new_at_partner(self) -> bool:
        return self.record.promotion.new_at_partner

    @strawberry.field
    def min_amount(self) -> Decimal:
        return self.record.promotion.min_amount

    @strawberry.field
    def active(self) -> bool:
        return self.record.active

    @strawberry.field(description="Whether it is set in the partner's file (change it there).")
    def configured(self) -> bool:
        return self.record.id is None


@strawberry.input
class PromotionInput:
    name: str
    starts_at: datetime
    ends_at: datetime = strawberry.field(description="Exclusive.")
    multiplier: Decimal | None = strawberry.field(
        default=None, description="Above 1: adds (m - 1) times the purchase's base and products."
    )
    bonus: Int64 | None = strawberry.field(default=None, description="Or a fixed bonus.")
    tier: str | None = None
    new_at_partner: bool = False
    min_amount: Decimal = Decimal(0)
    active: bool = True

    def draft(self) -> PromotionDraft:
        return PromotionDraft(
            name=self.name,
            starts=self.starts_at,
            ends=self.ends_at,
            multiplier=self.multiplier,
            bonus=self.bonus,
            tier=self.tier,
            new_at_partner=self.new_at_partner,
            min_amount=self.min_amount,
            active=self.active,
        )


@strawberry.input
class CreatePromotionInput:
    partner: str
    promotion: PromotionInput


@strawberry.input
class UpdatePromotionInput:
    promotion_id: strawberry.ID
    promotion: PromotionInput = strawberry.field(
        description="The whole promotion; `active: false` ends it at once."
    )


@strawberry.type
class PromotionPayload:
    promotion: Promotion | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _inside(error: DomainError) -> DomainError:
    if error.field and error.field[0] not in ("partner", "promotion_id"):
        return DomainError(error.code, error.message, ("promotion", *error.field))
    return error


@strawberry.type
class PromotionQueries:
    @strawberry.field(
        description="Promotions not yet ended (or all), from the partners' files and the API."
    )
    async def promotions(
        self, info: Info, partner: str | None = None, include_ended: bool = False
    ) -> list[Promotion]:
        found = await PromotionService(info.context.service).listed(partner, include_ended)
        return [Promotion(record=record) for record in found]


@strawberry.type
class PromotionMutations:
    @strawberry.mutation(
        description="An operator, or the partner's app (rewards:manage), starts a promotion."
    )
    async def create_promotion(
        self, info: Info, input: CreatePromotionInput
    ) -> PromotionPayload | None:
        try:
            info.context.access.act_at(input.partner, "rewards:manage")
            record = await PromotionService(info.context.service).create(
                input.partner, input.promotion.draft()
            )
        except DomainError as error:
            return PromotionPayload(user_errors=UserError.of(_inside(error)))
        return PromotionPayload(promotion=Promotion(record=record))

    @strawberry.mutation(description="Change or end (active: false) a promotion of the API.")
    async def update_promotion(
        self, info: Info, input: UpdatePromotionInput
    ) -> PromotionPayload | None:
        service = PromotionService(info.context.service)
        try:
            found_id = decode_int_id(str(input.promotion_id), "Promotion")
            found = await service.get(found_id) if found_id is not None else None
            if found is None or found_id is None:
                raise DomainError(
                    ErrorCode.UNKNOWN_PROMOTION, "No such promotion.", ("promotion_id",)
                )
            info.context.access.act_at(found.partner, "rewards:manage", ("promotion_id",))
            record = await service.update(found_id, input.promotion.draft())
        except DomainError as error:
            return PromotionPayload(user_errors=UserError.of(_inside(error)))
        return PromotionPayload(promotion=Promotion(record=record))
