"""Promotions managed through the API: an operator (or the partner's app) adds, changes or
ends them at run time; the earning rules apply them after those in the partner's file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning.tables import promotions
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.validation import check_amount, clean_text, invalid
from gateway.ledger.service import LedgerService
from partners.config.coalition import MAX_POINTS
from partners.config.earning import Promotion


@dataclass(frozen=True)
class PromotionDraft:
    name: str
    starts: datetime
    ends: datetime
    multiplier: Decimal | None = None
    bonus: int | None = None
    tier: str | None = None
    new_at_partner: bool = False
    min_amount: Decimal = Decimal(0)
    active: bool = True


@dataclass(frozen=True)
class PromotionRecord:
    id: int | None  # None: from the partner's file
    partner: str
    promotion: Promotion
    active: bool

    @classmethod
    def from_row(cls, row: Any) -> PromotionRecord:
        return cls(
            row.id,
            row.partner,
            Promotion(
                name=row.name,
                starts=row.starts,
                ends=row.ends,
                multiplier=Decimal(row.multiplier) if row.multiplier else None,
                bonus=row.bonus,
                tier=row.tier,
                new_at_partner=row.new_at_partner,
                min_amount=Decimal(row.min_amount),
            ),
            row.active,
        )


class PromotionService:
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger

    def _check(self, draft: PromotionDraft) -> dict[str, Any]:
        name = clean_text(draft.name, "name", 200, True)
        if draft.starts.tzinfo is None or draft.ends.tzinfo is None:
            raise invalid("starts_at", "Give times with a UTC offset.")
        if draft.ends <= draft.starts:
            raise invalid("ends_at", "A promotion ends after it starts.")
        if (draft.multiplier is None) == (draft.bonus is None):
            raise invalid("multiplier", "Give either a multiplier or a bonus.")
        if draft.multiplier is not None and not Decimal(1) < draft.multiplier <= 100:
            raise invalid("multiplier", "A multiplier is above 1 and at most 100.")
        if draft.bonus is not None and not 0 < draft.bonus <= MAX_POINTS:
            raise invalid("bonus", f"A bonus is 1 to {MAX_POINTS} points.")
        tiers = self.ledger.coalition.tiers
        if draft.tier is not None:
            known = [t.slug for t in tiers.levels] if tiers is not None else []
            if draft.tier not in known:
                raise DomainError(
                    ErrorCode.UNKNOWN_TIER, f"No tier {shown(draft.tier)}.", ("tier",)
                )
        min_amount = (
            check_amount(draft.min_amount, "min_amount") if draft.min_amount else Decimal(0)
        )
        return {
            "name": name,
            "starts": draft.starts,
            "ends": draft.ends,
            "multiplier": str(draft.multiplier) if draft.multiplier is not None else None,
            "bonus": draft.bonus,
            "tier": draft.tier,
            "new_at_partner": draft.new_at_partner,
            "min_amount": str(min_amount),
            "active": draft.active,
        }

    async def create(self, partner: str, draft: PromotionDraft) -> PromotionRecord:
        self.ledger.partner(partner)
        values = self._check(draft)
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> PromotionRecord:
            row = (
                await connection.execute(
                    sa.insert(promotions)
                    .values(partner=partner, created_at=now, updated_at=now, **values)
                    .returning(*promotions.c)
                )
            ).one()
            return PromotionRecord.from_row(row)

        return await self.ledger.uow.write(work)

    async def update(self, promotion_id: int, draft: PromotionDraft) -> PromotionRecord:
        values = self._check(draft)

        async def work(connection: AsyncConnection) -> PromotionRecord:
            row = (
                await connection.execute(
                    sa.update(promotions)
                    .where(promotions.c.id == promotion_id)
                    .values(updated_at=self.ledger.clock(), **values)
                    .returning(*promotions.c)
                )
            ).first()
            if row is None:
                raise DomainError(
                    ErrorCode.UNKNOWN_PROMOTION, "No such promotion.", ("promotion_id",)
                )
            return PromotionRecord.from_row(row)

        return await self.ledger.uow.write(work)

    async def get(self, promotion_id: int) -> PromotionRecord | None:
        async def work(connection: AsyncConnection) -> PromotionRecord | None:
            row = (
                await connection.execute(
                    sa.select(promotions).where(promotions.c.id == promotion_id)
                )
            ).first()
            return None if row is None else PromotionRecord.from_row(row)

        return await self.ledger.uow.read(work)

    async def listed(self, partner: str | None, include_ended: bool) -> list[PromotionRecord]:
        """The file's promotions and the API's, by partner and start."""
        now = self.ledger.clock()
        found = [
            PromotionRecord(None, slug, promotion, True)
            for slug, config in self.ledger.coalition.partners.items()
            if partner in (None, slug)
            for promotion in config.earning.promotions
            if include_ended or promotion.ends > now
        ]

        async def work(connection: AsyncConnection) -> list[PromotionRecord]:
            query = sa.select(promotions)
            if partner is not None:
                query = query.where(promotions.c.partner == partner)
            if not include_ended:
                query = query.where(promotions.c.ends > now, promotions.c.active.is_(True))
            return [PromotionRecord.from_row(row) for row in await connection.execute(query)]

        found.extend(await self.ledger.uow.read(work))
        return sorted(found, key=lambda r: (r.partner, r.promotion.starts, r.id or 0))


async def in_force(connection: AsyncConnection, partner: str, at: datetime) -> list[Promotion]:
    """The API's promotions of ``partner`` in force at ``at``, oldest first."""
    return await in_force_during(connection, partner, at, at)


async def in_force_during(
    connection: AsyncConnection, partner: str, start: datetime, end: datetime
) -> list[Promotion]:
    """The API's promotions of ``partner`` in force at some moment from ``start`` to ``end``,
    oldest first (earning filters them per purchase: ``Promotion.in_force_at``)."""
    rows = await connection.execute(
        sa.select(promotions)
        .where(
            promotions.c.partner == partner,
            promotions.c.active.is_(True),
            promotions.c.starts <= end,
            promotions.c.ends > start,
        )
        .order_by(promotions.c.id)
    )
    return [PromotionRecord.from_row(row).promotion for row in rows]
