"""Pending points: a purchase's points waiting out its return window, then maturing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning.debts import Debts
from gateway.earning.tables import purchases, wallet_debts
from gateway.ledger import locks
from gateway.ledger.rules import AccountCode, Leg, TransferKind

PENDING, AVAILABLE = "pending", "available"


class PendingPoints(Debts):
    """The pending points part of the earning service."""

    async def mature_due(self, limit: int = 1000) -> int:
        """Move the points of purchases whose return window ended into the wallets. Safe to
        run twice or concurrently: each purchase flips from pending once."""
        now = self.ledger.clock()

        async def due(connection: AsyncConnection) -> list[Any]:
            result = await connection.execute(
                sa.select(purchases.c.id)
                .where(purchases.c.status == PENDING, purchases.c.matures_at <= now)
                .order_by(purchases.c.matures_at)
                .limit(limit)
            )
            return [row.id for row in result]

        matured = 0
        for purchase_id in await self.ledger.uow.read(due):

            async def mature(connection: AsyncConnection, purchase_id: int = purchase_id) -> bool:
                return await self._mature(connection, purchase_id)

            if await self.ledger.uow.write(mature):
                matured += 1
        return matured

    async def _mature(self, connection: AsyncConnection, purchase_id: int) -> bool:
        flipped = await connection.execute(
            sa.update(purchases)
            .where(purchases.c.id == purchase_id, purchases.c.status == PENDING)
            .values(status=AVAILABLE)
            .returning(
                purchases.c.member_id,
                purchases.c.partner,
                purchases.c.points,
                purchases.c.clawed_back,
            )
        )
        row = flipped.first()
        if row is None:
            return False
        remaining = row.points - row.clawed_back
        if remaining > 0:
            member_id = await locks.live_member(connection, row.member_id)
            claim = self.ledger.kernel.claim("mature", str(purchase_id), {"purchase": purchase_id})
            values = {
                "kind": TransferKind.MATURE.value,
                "partner": row.partner,
                "points": remaining,
                "reason": "return window ended",
            }
            legs = [
                Leg(row.partner, AccountCode.PENDING, -remaining),
                Leg(row.partner, AccountCode.WALLET, remaining),
            ]
            await self.ledger.kernel.post(connection, claim, values, member_id, legs)
            assert member_id is not None
            await self._repay(
                connection, member_id, row.partner, remaining, f"purchase {purchase_id}"
            )
        return True

    async def figures(self, member_ids: Sequence[str]) -> dict[str, dict[str, tuple[int, int]]]:
        """Per member and pool: (pending points, points owed), for those that have any."""

        async def work(connection: AsyncConnection) -> dict[str, dict[str, tuple[int, int]]]:
            found: dict[str, dict[str, tuple[int, int]]] = {m: {} for m in member_ids}
            pending = await connection.execute(
                sa.select(
                    purchases.c.member_id,
                    purchases.c.partner,
                    sa.func.sum(purchases.c.points - purchases.c.clawed_back).label("points"),
                )
                .where(purchases.c.member_id.in_(member_ids), purchases.c.status == PENDING)
                .group_by(purchases.c.member_id, purchases.c.partner)
            )
            for row in pending:
                found[row.member_id][row.partner] = (int(row.points or 0), 0)
            debts = await connection.execute(
                sa.select(wallet_debts).where(
                    wallet_debts.c.member_id.in_(member_ids), wallet_debts.c.owed > 0
                )
            )
            for row in debts:
                waiting, _ = found[row.member_id].get(row.pool, (0, 0))
                found[row.member_id][row.pool] = (waiting, int(row.owed))
            return found

        return await self.ledger.uow.read(work)
