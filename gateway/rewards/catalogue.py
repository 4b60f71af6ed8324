"""The rewards catalogue: partners create and change rewards; members' offers and prices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.kernel.validation import check_amount, check_points, clean_text, invalid
from gateway.ledger import exchange
from gateway.ledger import store as repository
from gateway.ledger.service import LedgerService
from gateway.rewards.records import Receipt, RewardKind, RewardRecord, claims, refusal, reward_error
from gateway.rewards.tables import reward_redemptions, rewards
from gateway.tiers.reward_rules import check_reward_tiers, needs_tier
from gateway.tiers.service import TierService


@dataclass(frozen=True)
class RewardDraft:
    """A reward's settings as a partner gives them; None leaves a setting as it is."""

    kind: str | None = None
    name: str | None = None
    description: str | None = None
    price_points: int | None = None
    value: Decimal | None = None
    charity: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    stock: int | None = None
    per_member_limit: int | None = None
    active: bool | None = None
    tier: str | None = None  # a tier upgrade's tier, by slug
    min_tier: str | None = None  # the lowest tier that may redeem it, by slug
    clear: frozenset[str] = field(default_factory=frozenset)  # settings to set to null


class Catalogue:
    """The catalogue part of the reward service."""

    ledger: LedgerService
    uow: UnitOfWork
    tiers: TierService

    def _values(self, draft: RewardDraft, creating: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if draft.kind is not None:
            try:
                values["kind"] = RewardKind(draft.kind).value
            except ValueError:
                raise invalid("kind", f"No reward kind {shown(draft.kind)}.") from None
        if draft.name is not None:
            values["name"] = clean_text(draft.name, "name", 120, True)
        if draft.description is not None:
            values["description"] = clean_text(draft.description, "description", 1000, False)
        if draft.price_points is not None:
            check_points(draft.price_points, "price_points")
            values["price_points"] = draft.price_points
        if draft.value is not None:
            values["value"] = str(check_amount(draft.value, "value"))
        if draft.charity is not None:
            values["charity"] = clean_text(draft.charity, "charity", 120, True)
        for name in ("valid_from", "valid_until"):
            moment = getattr(draft, name)
            if moment is not None:
                values[name] = moment
        if draft.stock is not None:
            if draft.stock < 0 or draft.stock > 10**9:
                raise invalid("stock", "Stock is between 0 and 1,000,000,000.")
            values["stock"] = draft.stock
        if draft.per_member_limit is not None:
            if not 1 <= draft.per_member_limit <= 10**6:
                raise invalid("per_member_limit", "A limit per member is at least 1.")
            values["per_member_limit"] = draft.per_member_limit
        if draft.active is not None:
            values["active"] = draft.active
        for name in ("tier", "min_tier"):  # tier slugs, checked in _check_whole
            if getattr(draft, name) is not None or name in draft.clear:
                values[name] = getattr(draft, name)
        for name in draft.clear & {"description", "valid_until", "stock", "per_member_limit"}:
            values[name] = None
        if creating:
            for name in ("kind", "name", "price_points", "value"):
                if name not in values:
                    raise invalid(name, f"A new reward needs {name}.")
        return values

    def _check_whole(self, reward: dict[str, Any]) -> None:
        if reward["kind"] == RewardKind.DONATION.value and not reward.get("charity"):
            raise invalid("charity", "A donation names the charity it goes to.")
        until = reward.get("valid_until")
        if until is not None and until <= reward["valid_from"]:
            raise invalid("valid_until", "A reward's validity must end after it starts.")
        check_reward_tiers(self.ledger.coalition.tiers, reward)

    async def create(self, partner: str, draft: RewardDraft) -> RewardRecord:
        self.ledger.partner(partner)
        values = self._values(draft, creating=True)
        now = self.ledger.clock()
        values = {
            "valid_from": now,
            "active": True,
            **values,
            "partner": partner,
            "created_at": now,
            "updated_at": now,
        }
        self._check_whole(values)

        async def work(connection: AsyncConnection) -> RewardRecord:
            statement = sa.insert(rewards).values(**values).returning(*rewards.c)
            return RewardRecord.from_row((await connection.execute(statement)).one())

        return await self.uow.write(work)

    async def update(self, reward_id: int, draft: RewardDraft) -> RewardRecord:
        values = self._values(draft, creating=False)

        async def work(connection: AsyncConnection) -> RewardRecord:
            current = await self._reward(connection, reward_id, lock=True)
            whole = {
                "kind": current.kind.value,
                "charity": current.charity,
                "valid_from": current.valid_from,
                "valid_until": current.valid_until,
                "tier": current.tier,
                "min_tier": current.min_tier,
                **values,
            }
            self._check_whole(whole)
            statement = (
                sa.update(rewards)
                .where(rewards.c.id == reward_id)
                .values(**values, updated_at=self.ledger.clock())
                .returning(*rewards.c)
            )
            return RewardRecord.from_row((await connection.execute(statement)).one())

        return await self.uow.write(work)

    async def _reward(
        self, connection: AsyncConnection, reward_id: int, lock: bool = False
    ) -> RewardRecord:
        query = sa.select(rewards).where(rewards.c.id == reward_id)
        if lock:
            query = query.with_for_update()
        row = (await connection.execute(query)).first()
        if row is None:
            raise reward_error(ErrorCode.UNKNOWN_REWARD, "No such reward.")
        return RewardRecord.from_row(row)

    # Reading

    async def rewards(self, reward_ids: Sequence[int]) -> dict[int, RewardRecord]:
        async def work(connection: AsyncConnection) -> dict[int, RewardRecord]:
            result = await connection.execute(
                sa.select(rewards).where(rewards.c.id.in_(reward_ids))
            )
            return {row.id: RewardRecord.from_row(row) for row in result}

        return await self.uow.read(work)

    async def catalogue(
        self, partner: str | None, kind: str | None, include_unavailable: bool, limit: int
    ) -> list[RewardRecord]:
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> list[RewardRecord]:
            query = sa.select(rewards)
            if partner is not None:
                query = query.where(rewards.c.partner == partner)
            if kind is not None:
                query = query.where(rewards.c.kind == kind)
            result = await connection.execute(query.order_by(rewards.c.price_points, rewards.c.id))
            found = [RewardRecord.from_row(row) for row in result]
            if not include_unavailable:
                found = [reward for reward in found if reward.available_at(now)]
            return found[:limit]

        return await self.uow.read(work)

    def payer(self, pay_with: str) -> None:
        """Refuse a pool that cannot pay for rewards: an unknown partner, or one that keeps
        its points in its own system."""
        self.ledger.partner(pay_with, "pay_with")
        if self.ledger.coalition.is_remote(pay_with):
            raise DomainError(
                ErrorCode.NOT_AVAILABLE_AT_REMOTE_POOL,
                f"'{pay_with}' keeps its points in its own system: rewards cannot be paid "
                "with them through the gateway yet. Pay with another pool.",
                ("pay_with",),
            )

    async def redeemable(
        self, member_id: str, catalogue: Sequence[RewardRecord]
    ) -> list[RewardRecord]:
        """``catalogue`` less the rewards the member cannot redeem now (``refusal``): the
        member's tier and their uses of limited rewards are read once for the whole list."""
        now = self.ledger.clock()
        tiers = self.ledger.coalition.tiers
        status = None
        if any(needs_tier(tiers, reward.tier_settings) for reward in catalogue):
            status = await self.tiers.status(member_id)

        async def work(connection: AsyncConnection) -> dict[int, int]:
            found = await repository.members_by_id(connection, [member_id])
            survivor = found[member_id].id if member_id in found else member_id
            return await claims(connection, survivor, catalogue)

        used = await self.uow.read(work)
        return [
            reward
            for reward in catalogue
            if refusal(reward, now, tiers, status, used.get(reward.id, 0)) is None
        ]

    def cost(self, reward: RewardRecord, pay_with: str, at: datetime) -> int:
        """Points of ``pay_with`` the reward costs now (the price, or a conversion);
        a DomainError when that pool cannot pay for it."""
        self.payer(pay_with)
        if pay_with == reward.partner:
            return reward.price_points
        return exchange.quote_to_receive(
            self.ledger.coalition, pay_with, reward.partner, reward.price_points, at
        ).points

    async def receipts(self, member_id: str, limit: int) -> list[Receipt]:
        async def work(connection: AsyncConnection) -> list[Receipt]:
            result = await connection.execute(
                sa.select(reward_redemptions)
                .where(reward_redemptions.c.member_id == member_id)
                .order_by(reward_redemptions.c.id.desc())
                .limit(limit)
            )
            return [Receipt.from_row(row) for row in result]

        return await self.uow.read(work)
