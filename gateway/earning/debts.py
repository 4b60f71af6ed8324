"""Points owed after a return (a wallet below zero), and paying them back from new points."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning.tables import wallet_debts
from gateway.kernel.schema import insert_for
from gateway.ledger.rules import AccountCode, Leg, TransferKind
from gateway.ledger.service import LedgerService


class Debts:
    """The debts part of the earning service."""

    ledger: LedgerService

    async def _debt(self, connection: AsyncConnection, member_id: str, pool: str) -> int:
        value = await connection.scalar(
            sa.select(wallet_debts.c.owed).where(
                wallet_debts.c.member_id == member_id, wallet_debts.c.pool == pool
            )
        )
        return int(value or 0)

    async def _add_debt(
        self, connection: AsyncConnection, member_id: str, pool: str, points: int
    ) -> None:
        statement = insert_for(connection, wallet_debts).values(
            member_id=member_id, pool=pool, owed=points
        )
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=["member_id", "pool"],
                set_={"owed": wallet_debts.c.owed + points},
            )
        )

    async def _repay(
        self, connection: AsyncConnection, member_id: str, pool: str, earned: int, what: str
    ) -> None:
        """Points just credited pay back first what the member owes the pool. Only a partner
        whose returns go below zero has debts (one switched to "cap" since keeps its old
        debts, unpaid, until it switches back)."""
        if self.ledger.coalition.partners[pool].earning.returns.when_spent != "negative":
            return
        query = sa.select(wallet_debts.c.owed).where(
            wallet_debts.c.member_id == member_id, wallet_debts.c.pool == pool
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        paid = min(int(await connection.scalar(query) or 0), earned)
        if paid <= 0:
            return
        await connection.execute(
            sa.update(wallet_debts)
            .where(wallet_debts.c.member_id == member_id, wallet_debts.c.pool == pool)
            .values(owed=wallet_debts.c.owed - paid)
        )
        request = {"member": member_id, "points": paid}
        claim = self.ledger.kernel.claim("repay", f"{pool}:{what}", request)
        values = {
            "kind": TransferKind.CLAWBACK.value,
            "partner": pool,
            "points": paid,
            "reason": f"paying back points owed after a return ({what})",
        }
        legs = [Leg(pool, AccountCode.WALLET, -paid), Leg(pool, AccountCode.ISSUANCE, paid)]
        await self.ledger.kernel.post(connection, claim, values, member_id, legs)
