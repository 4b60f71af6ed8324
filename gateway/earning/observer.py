"""Tiers and challenge counters, followed in each posting's own transaction.

The composition root gives ``ProgrammeObserver`` to the ledger (``LedgerService.observers``).
For every new posting of a member it does O(1) work (amortised), never a rescan:

- an earn, a clawback, or a reversal of either: the member's qualifying value changes
  (``tier_values``) and their tier is stored at once (an upgrade it reached, a review that
  fell due), so the next earn's multiplier already sees it;
- an earn other than a challenge bonus, or a reversal of one: the counters of the
  challenges it counts for (``challenge_counters``).

Badges and bonuses are not given here: the ``challenge_awards`` consumer gives them from
the events, shortly after the earn commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges import counters as challenge_counters
from gateway.ledger.records import TransferRecord
from gateway.ledger.rules import TransferKind
from gateway.ledger.service import LedgerService
from gateway.ledger.tables import transfers
from gateway.tiers import batch as tier_batch
from gateway.tiers import values as tier_values
from gateway.tiers.rules import window_start
from gateway.tiers.service import TierService, valuation


class ProgrammeObserver:
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.tiers = TierService(ledger)

    async def posted(
        self, connection: AsyncConnection, transfer: TransferRecord, scope: str
    ) -> None:
        member_id = transfer.member_id
        if member_id is None:
            return
        kind, points = transfer.kind, transfer.points
        if kind is TransferKind.EARN:
            await self._value(connection, member_id, transfer, points, transfer.created_at)
            if not challenge_counters.is_bonus(scope):
                await challenge_counters.count_earn(
                    connection, member_id, transfer.partner, points, transfer.created_at
                )
        elif kind is TransferKind.CLAWBACK:
            await self._value(connection, member_id, transfer, -points, transfer.created_at)
        elif kind is TransferKind.REVERSAL and transfer.reverses_id is not None:
            await self._reversal(connection, member_id, transfer)

    async def posted_batch(
        self, connection: AsyncConnection, posted: Sequence[tuple[TransferRecord, str]]
    ) -> None:
        """A batch's earns, all at one moment: the same as ``posted`` for each, set-based
        (``tiers.batch``, ``challenges.counters.count_earns``)."""
        earns = []
        for transfer, scope in posted:
            if transfer.kind is TransferKind.EARN and transfer.member_id is not None:
                earns.append((transfer, scope))
            else:
                await self.posted(connection, transfer, scope)
        if not earns:
            return
        at = earns[0][0].created_at
        assert all(t.created_at == at for t, _ in earns), "a batch is posted at one moment"
        await tier_batch.store(
            connection,
            self.tiers,
            [(str(t.member_id), t.partner, t.points, t.id) for t, _ in earns],
            at,
        )
        await challenge_counters.count_earns(
            connection,
            [
                (str(t.member_id), t.partner, t.points)
                for t, scope in earns
                if not challenge_counters.is_bonus(scope)
            ],
            at,
        )

    async def _reversal(
        self, connection: AsyncConnection, member_id: str, transfer: TransferRecord
    ) -> None:
        t = transfers.c
        original = (
            await connection.execute(
                sa.select(t.id, t.kind, t.points, t.created_at, t.idempotency_scope).where(
                    t.id == transfer.reverses_id
                )
            )
        ).first()
        if original is None:
            return
        if original.kind == TransferKind.CLAWBACK.value:
            await self._value(connection, member_id, transfer, transfer.points, original.created_at)
        if original.kind != TransferKind.EARN.value:
            return
        await self._value(connection, member_id, transfer, -transfer.points, original.created_at)
        if challenge_counters.is_bonus(original.idempotency_scope):
            return
        taken = await connection.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(t.points), 0)).where(
                t.reverses_id == original.id
            )
        )
        await challenge_counters.count_reversal(
            connection,
            member_id,
            transfer.partner,
            transfer.points,
            original.created_at,
            int(taken or 0) >= original.points,
        )

    async def _value(
        self,
        connection: AsyncConnection,
        member_id: str,
        transfer: TransferRecord,
        points: int,
        effective_at: datetime,
    ) -> None:
        tiers = self.ledger.coalition.tiers
        if tiers is None:
            await tier_values.add(
                connection, member_id, transfer.partner, points, effective_at, transfer.id
            )
            return
        now = self.ledger.clock()
        summed = await tier_values.contribute(
            connection,
            member_id,
            transfer.partner,
            points,
            effective_at,
            transfer.id,
            window_start(tiers, now),
        )
        value = valuation(self.ledger.coalition.partners, summed)
        await self.tiers.settle(connection, member_id, now, value)

    async def merging(self, connection: AsyncConnection, retired: str, survivor: str) -> None:
        await tier_values.fold(connection, retired, survivor)
        await challenge_counters.fold(connection, retired, survivor)
        if self.ledger.coalition.tiers is not None:
            await self.tiers.settle(connection, survivor, self.ledger.clock())


def observe_programme(ledger: LedgerService) -> LedgerService:
    """Give the ledger the programme's observer (once); the ledger, for chaining."""
    if not any(isinstance(o, ProgrammeObserver) for o in ledger.observers):
        ledger.observers.append(ProgrammeObserver(ledger))
    return ledger
