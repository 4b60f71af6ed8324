"""Settlement between partners: closing a period, its statements, and reconciling them.

Obligations say what one partner owes another in the settlement currency: a cross-brand
reward redemption (gateway/rewards.py) and every conversion or reversed conversion
(gateway/service.py) record them as they post. An operator closes a period ending at *E*
(``SettlementService.close``), in one transaction:

1. Closes are serialised (a PostgreSQL advisory lock; SQLite has one writer). *E* equal
   to a closed period's end is a retry: that period is returned and nothing changes. *E*
   not after the last end is ``PERIOD_NOT_AFTER_LAST``; *E* still in the future is
   ``PERIOD_NOT_ENDED``.
2. One UPDATE puts every obligation created before *E* that no period holds yet into the
   new period. It is the only writer of ``obligations.statement_period``, so no obligation
   is in two periods; one committed while the close runs is either created at or after *E*
   (closes refuse future ends) or, created earlier but committed after the close's
   snapshot, is taken by the next close.
3. The operator's fees become obligations of the period (debtor the partner, creditor
   ``operator``). The transfers they are charged on are marked in ``settled_transfers``,
   each once: every ``earn`` and ``conversion`` transfer, and every ``reversal`` of one,
   created before *E* and not charged by an earlier period. Issuance fee per partner:
   ``fee_per_point_issued`` times the points of its earns minus the points of its
   reversed earns (a negative fee when reversals of earlier earns outweigh: a refund).
   Conversion fee per source partner: the fee points of its conversions at its point
   value (from the configuration at the close), minus those of reversed conversions.
4. A statement per partner, by aggregation in the database: gross payable (what it owes
   other partners), gross receivable (what they owe it), fees, and net = receivable -
   payable - fees, its multilateral position against the coalition. Bilateral pairs: per
   unordered pair of parties (the operator included, for fees) the net amount and who
   owes it. A partner's pairs add up to its net.
5. The period's row is written last (the other tables' keys to it are checked at commit).

A closed period never changes: database triggers refuse UPDATE and DELETE on periods,
statements, pairs, marks, and on an obligation once it is in a period. A correction is a
new obligation, which falls into the next period.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import outbox
from gateway.events.event import NewEvent
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.service import LedgerService
from gateway.ledger.tables import obligations
from gateway.settlement import export, reconciliation, statement_sql
from gateway.settlement import store as sql
from gateway.settlement.open_obligations import OpenObligations, open_obligations
from gateway.settlement.records import Finding, Period, Statement, positions_of
from gateway.settlement.tables import settlement_periods, statement_pairs, statements

MAX_PERIODS = 100


class SettlementError(DomainError):
    """A close refused; nothing changed."""

    def __init__(
        self, code: ErrorCode, message: str, field: tuple[str, ...] = ("period_end",)
    ) -> None:
        super().__init__(code, message, field)


def aware_utc(moment: datetime, field: str = "period_end") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise SettlementError(
            ErrorCode.INVALID_INPUT,
            "A period's end needs a time zone, e.g. 2026-12-01T00:00:00Z.",
            (field,),
        )
    return moment.astimezone(UTC)


class SettlementService:
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.uow = ledger.uow

    # Closing

    async def close(self, period_end: datetime, by: str) -> Period:
        """Close the period ending at ``period_end`` (exclusive); see the module's doc."""
        end = aware_utc(period_end)
        coalition = self.ledger.coalition

        async def work(connection: AsyncConnection) -> Period:
            await sql.lock(connection)
            same = (
                await connection.execute(
                    sa.select(settlement_periods).where(settlement_periods.c.closes_at == end)
                )
            ).first()
            if same is not None:
                return Period.from_row(same, replayed=True)
            last = (
                await connection.execute(
                    sa.select(settlement_periods)
                    .order_by(settlement_periods.c.closes_at.desc())
                    .limit(1)
                )
            ).first()
            if last is not None and end <= last.closes_at:
                raise SettlementError(
                    ErrorCode.PERIOD_NOT_AFTER_LAST,
                    f"The last period closed ends at {last.closes_at.isoformat()}; a new one "
                    "must end after it.",
                )
            now = self.ledger.clock()
            if end > now:
                raise SettlementError(
                    ErrorCode.PERIOD_NOT_ENDED,
                    f"The period has not ended yet (it is now {now.isoformat()}).",
                )
            top = await connection.scalar(sa.select(sa.func.max(settlement_periods.c.id)))
            period_id = int(top or 0) + 1
            claimed = await sql.claim_obligations(connection, period_id, end)
            await sql.mark_fee_transfers(connection, period_id, end)
            fees = await sql.charge_fees(
                connection,
                period_id,
                coalition.fee_per_point_issued,
                {slug: partner.point_value for slug, partner in coalition.partners.items()},
                now,
            )
            await statement_sql.write_statements(connection, period_id, sorted(coalition.partners))
            period = Period(
                id=period_id,
                opens_at=last.closes_at if last is not None else None,
                closes_at=end,
                closed_at=now,
                closed_by=by,
                currency=coalition.settlement_currency,
                obligation_count=claimed + fees,
            )
            values = {**period.__dict__}
            del values["replayed"]
            await sql.insert_period(connection, values)
            await outbox.append(connection, [_closed_event(period)])
            return period

        return await self.uow.write(work)

    # Reading

    async def open_obligations(self, until: datetime | None = None) -> OpenObligations:
        """Obligations no period holds yet (those created before ``until`` when given),
        per debtor and creditor: what a close ending at ``until`` would take."""
        moment = aware_utc(until, "until") if until is not None else None
        return await self.uow.read(lambda connection: open_obligations(connection, moment))

    async def periods(self, limit: int = MAX_PERIODS) -> list[Period]:
        """Closed periods, the latest first."""

        async def work(connection: AsyncConnection) -> list[Period]:
            result = await connection.execute(
                sa.select(settlement_periods)
                .order_by(settlement_periods.c.closes_at.desc())
                .limit(limit)
            )
            return [Period.from_row(row) for row in result]

        return await self.uow.read(work)

    async def period(self, period_id: int) -> Period | None:
        async def work(connection: AsyncConnection) -> Period | None:
            row = (
                await connection.execute(
                    sa.select(settlement_periods).where(settlement_periods.c.id == period_id)
                )
            ).first()
            return Period.from_row(row) if row is not None else None

        return await self.uow.read(work)

    async def statements(self, period_id: int, partner: str | None = None) -> list[Statement]:
        """A closed period's statements (only ``partner``'s when given), by partner."""

        async def work(connection: AsyncConnection) -> list[Statement]:
            query = sa.select(statements).where(statements.c.period_id == period_id)
            pairs_query = sa.select(statement_pairs).where(statement_pairs.c.period_id == period_id)
            if partner is not None:
                query = query.where(statements.c.partner == partner)
                pairs_query = pairs_query.where(
                    sa.or_(
                        statement_pairs.c.debtor == partner, statement_pairs.c.creditor == partner
                    )
                )
            rows = (await connection.execute(query.order_by(statements.c.partner))).all()
            pairs = [
                statement_sql.PairRow(row.debtor, row.creditor, row.amount)
                for row in await connection.execute(pairs_query)
            ]
            return [
                Statement(
                    period_id,
                    row.partner,
                    row.gross_payable,
                    row.gross_receivable,
                    row.fees,
                    row.net,
                    row.obligation_count,
                    positions_of(row.partner, pairs),
                )
                for row in rows
            ]

        return await self.uow.read(work)

    async def statement(self, period_id: int, partner: str) -> Statement | None:
        found = await self.statements(period_id, partner)
        return found[0] if found else None

    # Export

    async def csv_lines(self, period: Period, partner: str | None = None) -> AsyncIterator[str]:
        """The period's statements as CSV (only ``partner``'s when given), line by line;
        the obligations are streamed from the database. Columns: ``CSV_COLUMNS``."""
        yield export.csv_line(export.CSV_COLUMNS)
        for statement in await self.statements(period.id, partner):
            for line in export.summary_lines(period, statement):
                yield export.csv_line(line)
            async for line in self._obligation_lines(period, statement.partner):
                yield export.csv_line(line)

    async def _obligation_lines(
        self, period: Period, partner: str
    ) -> AsyncIterator[tuple[object, ...]]:
        query = (
            sa.select(obligations)
            .where(
                obligations.c.statement_period == period.id,
                sa.or_(obligations.c.debtor == partner, obligations.c.creditor == partner),
            )
            .order_by(obligations.c.id)
        )
        async with self.ledger.engine.connect() as connection:
            result = await connection.stream(query)
            async for row in result:
                amount = sql.counted(row.amount)
                owed_to_partner = row.creditor == partner
                yield (
                    period.id,
                    partner,
                    "obligation",
                    row.debtor if owed_to_partner else row.creditor,
                    row.kind,
                    amount if owed_to_partner else sql.ZERO - amount,
                    period.currency,
                    row.id,
                    row.created_at.isoformat(),
                    row.transfer_id or "",
                    row.redemption_id or "",
                )

    # Reconciliation

    async def reconcile(self) -> list[Finding]:
        """Every way the ledger and the statements disagree; empty when they agree.

        The ledger against its obligations: every conversion has its obligation, every
        reversed conversion the one giving the value back, every cross-brand reward
        redemption its reward obligation, and no movement is recorded twice. Obligations
        against periods: every obligation created before the last close is in a period
        (exactly one: ``statement_period`` holds one), only closed periods hold any, each
        period holds as many as it counted, every fee-bearing transfer before the last close
        was charged, and only in a closed period. Statements against their obligations:
        each period's statements and pairs equal what its obligations add up to now, and
        each partner's pairs add up to its net. Read in one snapshot (REPEATABLE READ on
        PostgreSQL)."""
        engine = self.ledger.engine
        async with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                await connection.execution_options(isolation_level="REPEATABLE READ")
            async with connection.begin():
                findings = [
                    Finding(*found) for found in await reconciliation.ledger_findings(connection)
                ]
                period_ids = (
                    await connection.scalars(
                        sa.select(settlement_periods.c.id).order_by(settlement_periods.c.id)
                    )
                ).all()
                by_check: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
                for period_id in period_ids:
                    for check, rows in (
                        await reconciliation.period_findings(connection, period_id)
                    ).items():
                        by_check[check] += rows
        findings += [
            Finding(check, len(rows), rows[: reconciliation.LISTED])
            for check, rows in by_check.items()
            if rows
        ]
        return findings


def _closed_event(period: Period) -> NewEvent:
    data = {
        "period_id": period.id,
        "opens_at": period.opens_at.isoformat() if period.opens_at else None,
        "closes_at": period.closes_at.isoformat(),
        "closed_by": period.closed_by,
        "obligation_count": period.obligation_count,
    }
    return outbox.settlement_closed(period.closed_at, data)
