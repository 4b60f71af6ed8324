"""Object types: wallets, transfers and their legs (partners are in ``partner_types``,
members in ``members``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay
from strawberry.types.lazy_type import LazyType

from gateway.api.graphql.audit_trail import MadeBy
from gateway.api.graphql.context import Info
from gateway.api.graphql.earning import pending_and_owed
from gateway.api.graphql.money import Money, money
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.scalars import Int64
from gateway.ledger.records import LegRecord, TransferRecord, WalletRecord
from gateway.ledger.rules import AccountCode as DomainAccountCode
from gateway.ledger.rules import TransferKind as DomainTransferKind

if TYPE_CHECKING:
    from gateway.api.graphql.members import Member

# The member type, which refers back to these: resolved when first used.
MEMBER: LazyType[Any, Any] = LazyType("Member", "gateway.api.graphql.members")

TransferKind = strawberry.enum(DomainTransferKind, description="What a transfer did.")
AccountCode = strawberry.enum(
    DomainAccountCode,
    description=(
        "The account a leg posted to: a member's WALLET, or a system account of the pool: "
        "the partner's ISSUANCE and REDEMPTION, the operator's LIQUIDITY and FEES."
    ),
)


@strawberry.enum(description="Where a point-of-sale hold stands.")
class HoldStatus(Enum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    EXPIRED = "expired"


@strawberry.type(description="A member's points in one partner's pool.")
class Wallet:
    record: strawberry.Private[WalletRecord]

    @strawberry.field
    def partner(self, info: Info) -> Partner:
        return Partner.of(info, self.record.pool)

    async def _held(self, info: Info) -> int:
        if self.record.held is not None:
            return self.record.held
        held = await info.context.loaders.held.load(self.record.member_id)
        return held.get(self.record.pool, 0)

    async def _owed(self, info: Info) -> int:
        if self.record.owed is not None:
            return self.record.owed
        return (await pending_and_owed(info, self.record.member_id, self.record.pool))[1]

    @strawberry.field(
        description="The member's points here, in the partner's currency: available plus "
        "held, less what the member owes after a return (so it can be below zero)."
    )
    async def balance(self, info: Info) -> Int64:
        return self.record.balance + await self._held(info) - await self._owed(info)

    @strawberry.field(
        description="Points earned but not spendable until the partner's return window ends; "
        "not in the balance."
    )
    async def pending(self, info: Info) -> Int64:
        if self.record.pending is not None:
            return self.record.pending
        return (await pending_and_owed(info, self.record.member_id, self.record.pool))[0]

    @strawberry.field(
        description="Points owed after a return whose points were spent; new earns here pay "
        "them back first."
    )
    async def owed(self, info: Info) -> Int64:
        return await self._owed(info)

    @strawberry.field(description="Points in open point-of-sale holds, not spendable.")
    async def held(self, info: Info) -> Int64:
        return await self._held(info)

    @strawberry.field(description="Points that can be spent now: the balance less what is held.")
    def available(self) -> Int64:
        return self.record.balance

    @strawberry.field(description="The balance's worth in the settlement currency.")
    async def value(self, info: Info) -> Money:
        point_value = info.context.service.coalition.partners[self.record.pool].point_value
        points = self.record.balance + await self._held(info) - await self._owed(info)
        return money(info, point_value * points)

    @strawberry.field(
        description="The available points by when they expire under the partner's policy, "
        "oldest first; empty where points never expire. Spending takes the oldest first."
    )
    async def expiring(self, info: Info) -> list[ExpiringPoints]:
        from gateway.expiry.service import ExpiryService

        found = await ExpiryService(info.context.service).upcoming(
            self.record.member_id, self.record.pool
        )
        return [ExpiringPoints(points=lot.points, expires_at=lot.expires_at) for lot in found]


@strawberry.type(description="Points of a wallet that expire at one moment.")
class ExpiringPoints:
    points: Int64
    expires_at: datetime


@strawberry.type(description="One posting of a transfer to one account.")
class Leg:
    record: strawberry.Private[LegRecord]

    @strawberry.field
    def partner(self, info: Info) -> Partner:
        return Partner.of(info, self.record.pool)

    @strawberry.field
    def account(self) -> AccountCode:  # type: ignore[valid-type]
        return self.record.account

    @strawberry.field(description="Signed points: positive credits the account.")
    def amount(self) -> Int64:
        return self.record.amount

    @strawberry.field(
        description="The wallet's balance right after this leg (wallet legs); null to a "
        "member for another member's wallet (the other side of a gift)."
    )
    async def balance_after(self, info: Info) -> Int64 | None:
        caller, owner = info.context.access.member_id, self.record.member_id
        if caller is not None and owner is not None and owner != caller:
            record = await info.context.loaders.members.load(owner)  # merged: the survivor
            if record is None or record.id != caller:
                return None
        return self.record.balance_after


@strawberry.type(
    description=(
        "A movement of points. Its legs sum to zero in each pool it touches. Transfers are "
        "never changed: a mistake is undone by a reversal that points at the original."
    )
)
class Transfer(relay.Node):
    transfer_id: relay.NodeID[int]
    record: strawberry.Private[TransferRecord]

    @classmethod
    def of(cls, record: TransferRecord) -> Transfer:
        return cls(transfer_id=record.id, record=record)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Transfer | None]:
        ids = [
            int(node_id) if node_id.isdigit() and len(node_id) < 19 else 0 for node_id in node_ids
        ]
        records = await info.context.loaders.transfers.load_many(ids)
        return [
            cls.of(record) if record and await info.context.sees_transfer(record) else None
            for record in records
        ]

    @strawberry.field
    def kind(self) -> TransferKind:  # type: ignore[valid-type]
        return self.record.kind

    @strawberry.field(description="The partner the transfer was made at (the source pool).")
    def partner(self, info: Info) -> Partner:
        return Partner.of(info, self.record.partner)

    @strawberry.field(description="For conversions: the partner whose points were received.")
    def to_partner(self, info: Info) -> Partner | None:
        return Partner.of(info, self.record.to_partner) if self.record.to_partner else None

    @strawberry.field
    async def member(
        self, info: Info
    ) -> Annotated[Member, strawberry.lazy("gateway.api.graphql.members")] | None:
        if self.record.member_id is None:
            return None
        record = await info.context.loaders.members.load(self.record.member_id)
        if record is None or not await info.context.sees_member(record.id):
            return None
        member: type[Member] = MEMBER.resolve_type()
        return member.of(record)

    @strawberry.field(description="Points earned, redeemed, converted (source points) or reversed.")
    def points(self) -> Int64:
        return self.record.points

    @strawberry.field(description="For conversions: target points received.")
    def received_points(self) -> Int64 | None:
        return self.record.received_points

    @strawberry.field(description="The purchase that earned the points, if given.")
    def purchase_amount(self) -> Decimal | None:
        return self.record.purchase_amount

    @strawberry.field(description="For conversions: the rate in force when it was posted.")
    def rate(self) -> Decimal | None:
        return self.record.rate

    @strawberry.field(description="For conversions: the fee in source points.")
    def fee(self) -> Int64 | None:
        return self.record.fee

    @strawberry.field
    def reason(self) -> str | None:
        return self.record.reason

    @strawberry.field
    def idempotency_key(self) -> str:
        return self.record.idempotency_key

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field(description="The postings; a partner's app sees those in its own pool.")
    async def legs(self, info: Info) -> list[Leg]:
        access = info.context.access
        return [
            Leg(record=leg)
            for leg in await info.context.loaders.legs.load(self.record.id)
            if access.sees_pool(leg.pool)
        ]

    @strawberry.field(description="For a reversal: the transfer it reverses.")
    async def reverses(self, info: Info) -> Transfer | None:
        if self.record.reverses_id is None:
            return None
        record = await info.context.loaders.transfers.load(self.record.reverses_id)
        return Transfer.of(record) if record and await info.context.sees_transfer(record) else None

    @strawberry.field(
        description="The latest reversal of this transfer, if it has been reversed (in full "
        "or in part: partial reversals add up to at most the transfer)."
    )
    async def reversed_by(self, info: Info) -> Transfer | None:
        reversal_id = await info.context.loaders.reversals.load(self.record.id)
        if reversal_id is None:
            return None
        record = await info.context.loaders.transfers.load(reversal_id)
        return Transfer.of(record) if record and await info.context.sees_transfer(record) else None

    @strawberry.field(
        description="Who made the transfer (member, partner app and client, operator, job) "
        "and in which request: from the audit trail, once its `audit.events` consumer "
        "recorded the transfer's event (normally within a second); null until then."
    )
    async def made_by(self, info: Info) -> MadeBy | None:
        entry = await info.context.loaders.made_by.load(self.record.id)
        return None if entry is None else MadeBy(entry=entry)
