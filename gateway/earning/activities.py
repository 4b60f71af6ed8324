"""Points for engagement activities (surveys, reviews, shares), capped per period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning.tables import activity_claims
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.schema import insert_for
from gateway.ledger.records import MemberRef, Posting
from gateway.ledger.rules import TransferKind, earn_legs
from gateway.ledger.service import LedgerService


class Activities:
    """The activities part of the earning service."""

    ledger: LedgerService

    async def record_activity(
        self, partner: str, member: MemberRef, kind: str, idempotency_key: str
    ) -> Posting:
        """Points for an engagement activity (survey, review, social share), at most ``cap``
        times per member and period."""
        ledger = self.ledger
        config = ledger.partner(partner)
        rule = config.earning.activity(kind)
        if rule is None:
            offered = ", ".join(a.kind for a in config.earning.activities) or "none"
            raise DomainError(
                ErrorCode.UNKNOWN_ACTIVITY,
                f"'{partner}' pays no points for {shown(kind)} (offered: {offered}).",
                ("activity",),
            )
        if config.pool.remote:
            raise DomainError(
                ErrorCode.NOT_AVAILABLE_AT_REMOTE_POOL,
                f"'{partner}' keeps its points in its own system: record activities there.",
                ("partner",),
            )
        request = {"member": member.canonical(), "activity": kind}
        claim = ledger.kernel.claim(f"activity:{partner}", idempotency_key, request)

        async def work(connection: AsyncConnection) -> Posting:
            replay = await ledger.kernel.replay(connection, claim)
            if replay is not None:
                return replay
            live = await ledger.kernel.lock_member(connection, member)
            period = rule.period.start(ledger.clock())

            async def take_one(connection: AsyncConnection, transfer_id: int) -> None:
                await self._count_activity(connection, live, partner, kind, period, rule.cap)

            values = {
                "kind": TransferKind.EARN.value,
                "partner": partner,
                "points": rule.points,
                "reason": f"activity: {kind}",
            }
            return await ledger.kernel.post(
                connection, claim, values, live, earn_legs(partner, rule.points), take_one
            )

        return await ledger.uow.write(work)

    async def _count_activity(
        self,
        connection: AsyncConnection,
        member_id: str,
        partner: str,
        kind: str,
        period: datetime,
        cap: int,
    ) -> None:
        statement = insert_for(connection, activity_claims).values(
            member_id=member_id, partner=partner, kind=kind, period_start=period, count=1
        )
        result = await connection.execute(
            statement.on_conflict_do_update(
                index_elements=["member_id", "partner", "kind", "period_start"],
                set_={"count": activity_claims.c.count + 1},
                where=activity_claims.c.count < cap,
            )
        )
        if not result.rowcount:
            raise DomainError(
                ErrorCode.ACTIVITY_CAP_REACHED,
                f"'{partner}' pays for {kind} at most {cap} times per period; try again in the "
                "next one.",
                ("activity",),
            )
