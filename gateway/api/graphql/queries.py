"""Queries: partners, members and conversion quotes."""

from __future__ import annotations

import strawberry
from strawberry import relay

from gateway.api.graphql.access import require_own_points
from gateway.api.graphql.analytics import AnalyticsQueries
from gateway.api.graphql.audit_trail import AuditQueries
from gateway.api.graphql.challenges import ChallengeQueries
from gateway.api.graphql.configuration import ConfigurationQueries
from gateway.api.graphql.context import Info
from gateway.api.graphql.dashboard import DashboardQueries
from gateway.api.graphql.expiry import ExpiryQueries
from gateway.api.graphql.holds import Hold
from gateway.api.graphql.imports import ImportQueries
from gateway.api.graphql.members import Member
from gateway.api.graphql.operations import OperationsQueries
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.payloads import (
    ConversionQuote,
    QuoteConversionInput,
    QuoteConversionPayload,
    UserError,
    customer_id_of,
    member_id_of,
)
from gateway.api.graphql.programme import ProgrammeQueries
from gateway.api.graphql.promotions import PromotionQueries
from gateway.api.graphql.rewards import Reward, RewardQueries
from gateway.api.graphql.scalars import decode_member_id
from gateway.api.graphql.settlement import SettlementQueries
from gateway.api.graphql.settlement_open import OpenObligationQueries
from gateway.api.graphql.tiers import TierQueries
from gateway.api.graphql.types import Transfer
from gateway.api.graphql.webhooks import WebhookQueries
from gateway.kernel.errors import DomainError
from gateway.ledger.records import MemberRef


@strawberry.type
class Query(
    RewardQueries,
    SettlementQueries,
    OpenObligationQueries,
    ProgrammeQueries,
    ChallengeQueries,
    TierQueries,
    ExpiryQueries,
    DashboardQueries,
    PromotionQueries,
    ConfigurationQueries,
    ImportQueries,
    OperationsQueries,
    AnalyticsQueries,
    WebhookQueries,
    AuditQueries,
):
    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info, id: strawberry.ID) -> relay.Node | None:
        try:
            global_id = relay.GlobalID.from_id(str(id))
        except Exception:
            return None
        kinds: dict[
            str, type[Partner] | type[Member] | type[Transfer] | type[Hold] | type[Reward]
        ] = {
            "Partner": Partner,
            "Member": Member,
            "Transfer": Transfer,
            "Hold": Hold,
            "Reward": Reward,
        }
        kind = kinds.get(global_id.type_name)
        if kind is None:
            return None
        found = await kind.resolve_nodes(info=info, node_ids=[global_id.node_id])
        return found[0]

    @strawberry.field(description="Every partner brand of the coalition.")
    def partners(self, info: Info) -> list[Partner]:
        return [Partner.of(info, slug) for slug in sorted(info.context.service.coalition.partners)]

    @strawberry.field(description="One partner by its slug.")
    def partner(self, info: Info, slug: str) -> Partner | None:
        if slug not in info.context.service.coalition.partners:
            return None
        return Partner.of(info, slug)

    @strawberry.field(description="The signed-in member; null for a partner's app or operator.")
    async def me(self, info: Info) -> Member | None:
        member_id = info.context.access.member_id
        if member_id is None:
            return None
        record = await info.context.loaders.members.load(member_id)
        return Member.of(record) if record else None

    @strawberry.field(
        description="A member by their global id (a merged member's id gives the survivor); "
        "null when there is none or the caller may not see them."
    )
    async def member(self, info: Info, id: strawberry.ID) -> Member | None:
        member_id = decode_member_id(str(id))
        if member_id is None:
            return None
        record = await info.context.loaders.members.load(member_id)
        if record is None or not await info.context.sees_member(record.id):
            return None
        return Member.of(record)

    @strawberry.field(
        description="A member by a partner's own customer id for them. A partner's app may "
        "look up its own customers only."
    )
    async def member_by_enrolment(
        self, info: Info, partner: str, partner_customer_id: str
    ) -> Member | None:
        own = info.context.access.partner
        if own is not None and own != partner:
            return None
        if partner not in info.context.service.coalition.partners:
            return None
        try:
            # Control characters (a NUL), blank or too long: no such customer, and never a
            # database error.
            customer_id = customer_id_of(partner_customer_id)
            member_id = await info.context.service.resolve_member(
                MemberRef(partner=partner, customer_id=customer_id)
            )
        except DomainError:
            return None
        record = await info.context.loaders.members.load(member_id)
        if record is None or not await info.context.sees_member(record.id):
            return None
        return Member.of(record)

    @strawberry.field(
        description="Exactly what `convertPoints` would give now, with rate and fee; posts nothing."
    )
    async def quote_conversion(
        self, info: Info, input: QuoteConversionInput
    ) -> QuoteConversionPayload:
        try:
            member_id = member_id_of(input.member_id)
            await require_own_points(info, member_id)
            quote, balance = await info.context.service.quote(
                member_id, input.from_partner, input.to_partner, input.points
            )
        except DomainError as error:
            return QuoteConversionPayload(user_errors=UserError.of(error))
        return QuoteConversionPayload(quote=ConversionQuote(quote=quote, source_balance=balance))
