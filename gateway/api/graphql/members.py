"""Members: their wallets, enrolments, linked sign-ins and history."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.types.lazy_type import LazyType

from gateway.api.graphql import cursors
from gateway.api.graphql.challenge_types import (
    Badge,
    ChallengeProgress,
    member_badges,
    member_challenges,
)
from gateway.api.graphql.context import Info
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.money import Money, money
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.scalars import identity_id, member_uuid
from gateway.api.graphql.tiers import MemberTier, member_tier
from gateway.api.graphql.types import HoldStatus, Transfer, Wallet
from gateway.kernel.errors import DomainError, shown
from gateway.ledger.records import MemberRecord, WalletRecord
from gateway.members.store import IdentityRecord

if TYPE_CHECKING:
    from gateway.api.graphql.holds import Hold

# The hold type, which refers back to members: resolved when first used.
HOLD: LazyType[Any, Any] = LazyType("Hold", "gateway.api.graphql.holds")

MAX_PAGE = 100


@strawberry.type(description="A partner's own customer id for a member.")
class Enrolment:
    partner_slug: strawberry.Private[str]
    partner_customer_id: str
    enrolled_at: datetime

    @strawberry.field
    def partner(self, info: Info) -> Partner:
        return Partner.of(info, self.partner_slug)


@strawberry.type
class TransferEdge:
    cursor: str
    node: Transfer


@strawberry.type(description="A page of transfers, newest first.")
class TransferConnection:
    edges: list[TransferEdge]
    page_info: relay.PageInfo


@strawberry.type(description="A sign-in (issuer and subject) a member proved and linked.")
class Identity:
    record: strawberry.Private[IdentityRecord]

    @classmethod
    def of(cls, record: IdentityRecord) -> Identity:
        return cls(record=record)

    @strawberry.field(description="Give this to `unlinkIdentity`.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(identity_id(self.record.issuer, self.record.subject))

    @strawberry.field(description="The partner's slug, or \"coalition\" for the coalition's own.")
    def provider(self) -> str:
        return self.record.provider

    @strawberry.field
    def issuer(self) -> str:
        return self.record.issuer

    @strawberry.field
    def subject(self) -> str:
        return self.record.subject

    @strawberry.field
    def linked_at(self) -> datetime:
        return self.record.linked_at


@strawberry.type(description="A coalition member, with their wallets at every partner.")
class Member(relay.Node):
    member_id: relay.NodeID[str]
    created_at: datetime
    erased_at: datetime | None = strawberry.field(
        default=None,
        description="When the member's personal data was erased (`eraseMember`); null if "
        "it was not. An erased member's customer ids, sign-ins and keys show as "
        "`erased:<random>`.",
    )

    @classmethod
    def of(cls, record: MemberRecord) -> Member:
        return cls(member_id=record.id, created_at=record.created_at, erased_at=record.erased_at)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Member | None]:
        ids = [member_uuid(node_id) or "" for node_id in node_ids]
        records = await info.context.loaders.members.load_many(ids)
        return [
            cls.of(record) if record and await info.context.sees_member(record.id) else None
            for record in records
        ]

    @strawberry.field(
        description="The partners' own customer ids for this member (a partner's app sees its own)."
    )
    async def enrolments(self, info: Info) -> list[Enrolment]:
        found = await info.context.loaders.enrolments.load(self.member_id)
        access = info.context.access
        return [
            Enrolment(
                partner_slug=e.partner, partner_customer_id=e.customer_id, enrolled_at=e.created_at
            )
            for e in found
            if access.sees_pool(e.partner)
        ]

    @strawberry.field(
        description="The sign-ins linked to this member. Shown to the member and to "
        "operators; empty for a partner's app."
    )
    async def identities(self, info: Info) -> list[Identity]:
        if not info.context.access.sees_member_wide():
            return []
        found = await info.context.loaders.identities.load(self.member_id)
        return [Identity.of(record) for record in found]

    async def _wallets(self, info: Info) -> dict[str, WalletRecord]:
        found = await info.context.loaders.wallets.load(self.member_id)
        wallets = {wallet.pool: wallet for wallet in found}
        service = info.context.service
        remote = [
            slug
            for slug, partner in service.coalition.partners.items()
            if partner.pool.remote and info.context.access.sees_pool(slug)
        ]
        if remote:
            # Remote pools: the balance the partner's system gives now. A partner that does
            # not answer leaves its wallet out rather than showing a number it did not give,
            # and so does one the member is not a customer of.
            enrolled = await info.context.loaders.enrolments.load(self.member_id)
            customers = {e.partner: e.customer_id for e in enrolled}
            for slug in remote:
                if slug not in customers:
                    wallets[slug] = WalletRecord(self.member_id, slug, _NOT_A_CUSTOMER)
            asked = [slug for slug in remote if slug in customers]
            answers = await asyncio.gather(
                *(service.remote.balance_of(slug, customers[slug]) for slug in asked),
                return_exceptions=True,
            )
            for slug, answer in zip(asked, answers, strict=True):
                if isinstance(answer, DomainError):
                    wallets[slug] = WalletRecord(self.member_id, slug, _UNANSWERED)
                elif isinstance(answer, BaseException):
                    raise answer
                elif answer is None:  # the partner does not know the customer (any more)
                    wallets[slug] = WalletRecord(self.member_id, slug, _NOT_A_CUSTOMER)
                else:
                    wallets[slug] = WalletRecord(self.member_id, slug, answer)
        return wallets

    @strawberry.field(
        description="One wallet per partner, with zero where none was used yet. A partner "
        "that keeps its points in its own system shows the balance it gives now, and only to "
        "its customers; if it does not answer, its wallet is left out. A partner's app sees "
        "only the wallet in its own pool."
    )
    async def wallets(self, info: Info) -> list[Wallet]:
        held = await self._wallets(info)
        access = info.context.access
        return [
            Wallet(record=held.get(slug) or WalletRecord(self.member_id, slug, 0))
            for slug in sorted(info.context.service.coalition.partners)
            if access.sees_pool(slug) and _known(held.get(slug))
        ]

    @strawberry.field(
        description="The member's coalition-wide tier, what the next one needs and when the "
        "tier is reviewed; null when the coalition has no tiers. Seen by whoever sees the "
        "member (a partner's app with members:read too)."
    )
    async def tier(self, info: Info) -> MemberTier | None:
        return await member_tier(info, self.member_id)

    @strawberry.field(
        description="The wallet at one partner; null for an unknown partner, or for another "
        "partner's pool when asked by a partner's app."
    )
    async def wallet(self, info: Info, partner: str) -> Wallet | None:
        if partner not in info.context.service.coalition.partners:
            return None
        if not info.context.access.sees_pool(partner):
            return None
        held = await self._wallets(info)
        if not _known(held.get(partner)):
            return None
        return Wallet(record=held.get(partner) or WalletRecord(self.member_id, partner, 0))

    @strawberry.field(
        description="The code this member gives friends: when a referred member makes a first "
        "qualifying purchase, both get the partner's referral bonus. Only the member and "
        "operators see it."
    )
    async def referral_code(self, info: Info) -> str | None:
        access = info.context.access
        if not (access.is_operator or access.member_id == self.member_id):
            return None
        from gateway.api.graphql.earning import programme

        return await programme(info).referral_code(self.member_id)

    @strawberry.field(
        description="The worth of all wallets together in the settlement currency; null for "
        "a partner's app."
    )
    async def total_value(self, info: Info) -> Money | None:
        if not info.context.access.sees_member_wide():
            return None
        partners = info.context.service.coalition.partners
        total = sum(
            (
                partners[w.pool].point_value * w.balance
                for w in (await self._wallets(info)).values()
                if w.pool in partners and _known(w)
            ),
            Decimal(0),
        )
        return money(info, total)

    @strawberry.field(
        description=(
            "The member's transfers, newest first. `partner` keeps those that touched that "
            "partner's pool; a partner's app always gets its own pool's. At most 100 per page."
        )
    )
    async def transfers(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        partner: str | None = None,
    ) -> TransferConnection:
        if not 0 <= first <= MAX_PAGE:
            raise ArgumentError(f"`first` must be between 0 and {MAX_PAGE}.")
        if partner is not None and partner not in info.context.service.coalition.partners:
            raise ArgumentError(f"No partner {shown(partner)}.")
        partner = info.context.access.partner or partner
        before = cursors.position("transfer", after)
        records = await info.context.service.history(self.member_id, partner, before, first + 1)
        page = records[:first]
        for record in page:
            info.context.loaders.transfers.prime(record.id, record)
        edges = [
            TransferEdge(cursor=cursors.cursor("transfer", r.id), node=Transfer.of(r)) for r in page
        ]
        return TransferConnection(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=len(records) > first,
                has_previous_page=before is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(
        description="The member's point-of-sale holds, newest first (a partner's app sees "
        "those at its own pool). At most 100."
    )
    async def holds(
        self, info: Info, status: HoldStatus | None = None, first: int = 20
    ) -> list[Annotated[Hold, strawberry.lazy("gateway.api.graphql.holds")]]:
        if not 0 <= first <= MAX_PAGE:
            raise ArgumentError(f"`first` must be between 0 and {MAX_PAGE}.")
        wanted = status.value if status is not None else None
        found = await info.context.holds.of_member(self.member_id, wanted, MAX_PAGE)
        access = info.context.access
        visible = [hold for hold in found if access.sees_pool(hold.partner)]
        hold_type: type[Hold] = HOLD.resolve_type()
        return [hold_type.of(hold) for hold in visible[:first]]

    @strawberry.field(
        description="The badges the member earned, newest first (a partner's app sees those "
        "of challenges counting at its own pool). At most 100."
    )
    async def badges(self, info: Info, first: int = 50) -> list[Badge]:
        return await member_badges(info, self.member_id, first)

    @strawberry.field(
        description="Progress in every challenge running now, in its current period (a "
        "partner's app sees the challenges counting at its own pool)."
    )
    async def challenges(self, info: Info) -> list[ChallengeProgress]:
        return await member_challenges(info, self.member_id)


# Placeholders for remote pools without a balance to show: the member is not the partner's
# customer, or the partner did not answer just now.
_NOT_A_CUSTOMER, _UNANSWERED = -1, -2


def _known(wallet: WalletRecord | None) -> bool:
    """False for a remote pool with no balance to show."""
    return wallet is None or wallet.balance >= 0
