"""`coalition settlement` (close periods, list them, export statements) and `coalition
reconcile`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gateway.api.cli_database import with_database
from gateway.api.configured import configured_ledger
from gateway.api.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from gateway.settlement.records import Finding, Period, Statement
    from gateway.settlement.service import SettlementService


async def _settlement_service(engine: AsyncEngine, settings: Settings) -> SettlementService:
    from gateway.settlement.service import SettlementService

    return SettlementService(await configured_ledger(engine, settings))


def _print_statements(found: list[Statement], currency: str) -> None:
    print(f"  {'partner':<12} {'payable':>16} {'receivable':>16} {'fees':>14} {'net':>16}")
    for s in found:
        print(
            f"  {s.partner:<12} {s.gross_payable:>16} {s.gross_receivable:>16} {s.fees:>14} "
            f"{s.net:>16}"
        )
    print(f"  (amounts in {currency}; net = receivable - payable - fees)")


def _settlement_close(settings: Settings, end: datetime, by: str) -> int:
    async def work(engine: AsyncEngine) -> tuple[Period, list[Statement]]:
        service = await _settlement_service(engine, settings)
        period = await service.close(end, by)
        return period, await service.statements(period.id)

    period, found = with_database(settings, work)
    since = f"from {period.opens_at.isoformat()} " if period.opens_at else ""
    if period.replayed:
        print(
            f"Period {period.id} ending {period.closes_at.isoformat()} was closed already "
            f"(at {period.closed_at.isoformat()} by {period.closed_by}): nothing changed."
        )
    else:
        print(
            f"Closed period {period.id}: obligations {since}until {period.closes_at.isoformat()}"
            f" (exclusive), {period.obligation_count} with the operator's fees."
        )
    _print_statements(found, period.currency)
    return 0


def _settlement_export(
    settings: Settings, period_id: int, partner: str | None, output: str | None
) -> int:
    """Streams the CSV to stdout, or to ``output`` through a ``.part`` file renamed once
    complete (so a failed export leaves no half file)."""
    target = Path(output) if output else None
    partial = target.with_name(target.name + ".part") if target else None

    async def work(engine: AsyncEngine, stream: TextIO) -> str | None:
        service = await _settlement_service(engine, settings)
        period = await service.period(period_id)
        if period is None:
            return f"no settlement period {period_id}"
        if partner is not None and await service.statement(period_id, partner) is None:
            return f"period {period_id} has no statement for {partner!r}"
        async for line in service.csv_lines(period, partner):
            stream.write(line)
        return None

    opened = (
        partial.open("w", encoding="utf-8", newline="")
        if partial
        else contextlib.nullcontext(sys.stdout)
    )
    with opened as stream:
        try:
            problem = with_database(settings, lambda engine: work(engine, stream))
        except BaseException:
            if partial:
                partial.unlink(missing_ok=True)
            raise
    if problem is not None:
        if partial:
            partial.unlink(missing_ok=True)
        print(f"error: {problem}", file=sys.stderr)
        return 1
    if target and partial:
        partial.replace(target)
        print(f"Wrote {target}", file=sys.stderr)
    return 0


def _settlement_list(settings: Settings) -> int:
    async def work(engine: AsyncEngine) -> list[Period]:
        return await (await _settlement_service(engine, settings)).periods()

    periods = with_database(settings, work)
    if not periods:
        print("No settlement period has been closed.")
    for period in periods:
        since = period.opens_at.isoformat() if period.opens_at else "the start"
        print(
            f"{period.id}  [{since}, {period.closes_at.isoformat()})  "
            f"{period.obligation_count} obligation(s)  closed {period.closed_at.isoformat()} "
            f"by {period.closed_by}"
        )
    return 0


def settlement(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.settlement.service import SettlementError

    try:
        if args.action == "close":
            return _settlement_close(settings, args.period_end, args.by)
        if args.action == "export":
            return _settlement_export(settings, args.period_id, args.partner, args.output)
        return _settlement_list(settings)
    except SettlementError as error:
        print(f"error: {error.code.value}: {error.message}", file=sys.stderr)
        return 1


def reconcile(settings: Settings) -> int:
    from gateway.settlement.reconciliation import report

    async def work(engine: AsyncEngine) -> list[Finding]:
        return await (await _settlement_service(engine, settings)).reconcile()

    findings = with_database(settings, work)
    print(report(findings))
    return 1 if findings else 0
