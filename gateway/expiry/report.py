"""The breakage report: a partner's points that expired unspent in a period, and their worth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.expiry.schedule import Schedules
from gateway.kernel.validation import invalid
from gateway.ledger.rules import AccountCode, TransferKind
from gateway.ledger.tables import accounts, entries, transfers
from partners.config.expiry import ExpiryPolicy


@dataclass(frozen=True)
class Breakage:
    """A partner's points that expired unspent in a period, and their worth."""

    partner: str
    points: int  # net of expiries undone by a reversal
    value: Decimal  # in the settlement currency, at the partner's point value
    currency: str
    expiries: int  # EXPIRY transfers in the period
    since: datetime | None
    until: datetime | None
    policy: ExpiryPolicy | None


class Report(Schedules):
    """The report part of the expiry service."""

    async def breakage(
        self, partner: str, since: datetime | None = None, until: datetime | None = None
    ) -> Breakage:
        """Points of ``partner`` that expired in [since, until), net of expiries undone."""
        config = self.ledger.partner(partner)
        for name, moment in (("since", since), ("until", until)):
            if moment is not None and moment.utcoffset() is None:
                raise invalid(name, f"{name} needs a UTC offset.")
        if since is not None and until is not None and until <= since:
            raise invalid("until", "until must be after since.")

        async def work(connection: AsyncConnection) -> tuple[int, int]:
            query = (
                sa.select(
                    sa.func.coalesce(sa.func.sum(entries.c.amount), 0),
                    sa.func.count(transfers.c.id).filter(
                        transfers.c.kind == TransferKind.EXPIRY.value
                    ),
                )
                .select_from(entries)
                .join(accounts, accounts.c.id == entries.c.account_id)
                .join(transfers, transfers.c.id == entries.c.transfer_id)
                .where(
                    entries.c.pool == partner,
                    accounts.c.code == AccountCode.BREAKAGE.value,
                    accounts.c.member_id.is_(None),
                )
            )
            if since is not None:
                query = query.where(transfers.c.created_at >= since)
            if until is not None:
                query = query.where(transfers.c.created_at < until)
            points, count = (await connection.execute(query)).one()
            return int(points), int(count)

        points, count = await self.uow.read(work)
        return Breakage(
            partner=partner,
            points=points,
            value=config.point_value * points,
            currency=self.ledger.coalition.settlement_currency,
            expiries=count,
            since=since,
            until=until,
            policy=self.policy(partner),
        )
