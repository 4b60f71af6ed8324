"""Analytics reports from the daily aggregates: earn and burn per period, liability over
time, breakage, the redemption rate, active members and cross-brand flows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.analytics import store
from gateway.analytics.rules import FIGURES, Granularity, buckets, days, net
from gateway.ledger.service import LedgerService


@dataclass(frozen=True)
class Figures:
    issued: int
    redeemed: int
    expired: int
    converted_out: int
    converted_in: int
    active_members: int

    @staticmethod
    def of(row: dict[str, int], active: int) -> Figures:
        return Figures(**{name: row[name] for name in FIGURES}, active_members=active)


@dataclass(frozen=True)
class Bucket:
    start: date
    end: date  # the last day, included
    figures: Figures
    outstanding: int  # at the end of the bucket
    liability: Decimal  # the outstanding points at the partners' point values


@dataclass(frozen=True)
class Report:
    partners: tuple[str, ...]
    first: date
    last: date
    buckets: list[Bucket]
    totals: Figures
    outstanding: int
    liability: Decimal
    breakage: Decimal  # the expired points' value
    as_of: datetime | None


@dataclass(frozen=True)
class Flow:
    source: str
    target: str
    points_out: int
    points_in: int
    reward_points: int


class AnalyticsService:
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger

    def value(self, partner: str, points: int) -> Decimal:
        found = self.ledger.coalition.partners.get(partner)
        return found.point_value * points if found is not None else Decimal(0)

    async def earn_burn(
        self,
        partners: Sequence[str] | None,
        since: datetime,
        until: datetime,
        granularity: Granularity,
    ) -> Report:
        """``partners`` None: the whole coalition. Raises ``RangeError``."""
        first, last = days(since, until)
        periods = buckets(first, last, granularity)

        async def read(connection: AsyncConnection) -> Report:
            before = await store.totals_before(connection, partners, first)
            rows = await store.daily(connection, partners, first, last)
            active = await store.active_members(connection, partners, periods)
            overall = await store.active_members(connection, partners, [(first, last)])
            at = await store.as_of(connection)
            return self._report(partners, periods, before, rows, active, overall[0], at)

        return await self.ledger.uow.read(read)

    def _report(
        self,
        partners: Sequence[str] | None,
        periods: list[tuple[date, date]],
        before: dict[str, dict[str, int]],
        rows: dict[tuple[date, str], dict[str, int]],
        active: list[int],
        overall: int,
        at: datetime | None,
    ) -> Report:
        outstanding = {partner: net(row) for partner, row in before.items()}
        totals = dict.fromkeys(FIGURES, 0)
        expired_value = Decimal(0)
        by_day = sorted(rows.items())
        index = 0
        found: list[Bucket] = []
        for (start, end), members in zip(periods, active, strict=True):
            figures = dict.fromkeys(FIGURES, 0)
            while index < len(by_day) and by_day[index][0][0] <= end:
                (_, partner), row = by_day[index]
                for name in FIGURES:
                    figures[name] += row[name]
                    totals[name] += row[name]
                outstanding[partner] = outstanding.get(partner, 0) + net(row)
                expired_value += self.value(partner, row["expired"])
                index += 1
            found.append(
                Bucket(
                    start=start,
                    end=end,
                    figures=Figures.of(figures, members),
                    outstanding=sum(outstanding.values()),
                    liability=self._liability(outstanding),
                )
            )
        return Report(
            partners=tuple(partners) if partners is not None else (),
            first=periods[0][0],
            last=periods[-1][1],
            buckets=found,
            totals=Figures.of(totals, overall),
            outstanding=sum(outstanding.values()),
            liability=self._liability(outstanding),
            breakage=expired_value,
            as_of=at,
        )

    def _liability(self, outstanding: dict[str, int]) -> Decimal:
        return sum(
            (self.value(partner, points) for partner, points in outstanding.items()), Decimal(0)
        )

    async def flows(
        self, partner: str | None, since: datetime, until: datetime
    ) -> tuple[list[Flow], datetime | None]:
        """Cross-brand flows in the range (``partner``: only those it is in)."""
        first, last = days(since, until)

        async def read(connection: AsyncConnection) -> tuple[list[Flow], datetime | None]:
            rows = await store.flows(connection, partner, first, last)
            return [Flow(s, t, **row) for s, t, row in rows], await store.as_of(connection)

        return await self.ledger.uow.read(read)
