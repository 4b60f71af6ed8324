"""The only code that reads and writes the configuration's tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.configuration.documents import Document, State, StoredRule, from_toml, to_toml
from gateway.configuration.plan import Plan
from gateway.configuration.tables import (
    ConfigurationChange,
    ConfigurationDocument,
    ConversionRuleRow,
)
from partners.config.conversions import ConversionRule

changes = ConfigurationChange.__table__  # type: ignore[attr-defined]
documents = ConfigurationDocument.__table__  # type: ignore[attr-defined]
rules = ConversionRuleRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Change:
    id: int
    changed_at: datetime
    changed_by: str
    source: str
    summary: str


LOCK = 7_301_913  # the advisory lock that makes changes one at a time (PostgreSQL)


async def version(connection: AsyncConnection) -> int:
    """The id of the last change: what every process polls to see a change."""
    return int(await connection.scalar(sa.select(sa.func.coalesce(sa.func.max(changes.c.id), 0))))


async def lock(connection: AsyncConnection) -> None:
    if connection.dialect.name == "postgresql":
        await connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})


async def load(connection: AsyncConnection) -> State:
    found = await connection.execute(
        sa.select(changes.c.id, changes.c.changed_at, changes.c.changed_by)
    )
    known = {row.id: (row.changed_at, row.changed_by) for row in found}
    docs = tuple(
        Document(row.name, row.effective_from, from_toml(row.body), row.id, row.change_id)
        for row in await connection.execute(sa.select(documents).order_by(documents.c.id))
    )
    stored = tuple(
        StoredRule(
            ConversionRule(
                source=row.source,
                target=row.target,
                rate=Decimal(row.rate),
                fee_percent=Decimal(row.fee_percent),
                fee_fixed=row.fee_fixed,
                min_points=row.min_points,
                max_points=row.max_points,
                enabled=row.enabled,
                effective_from=row.effective_from,
                effective_until=row.effective_until,
            ),
            row.id,
            row.change_id,
            row.ended_by,
            row.withdrawn_by,
        )
        for row in await connection.execute(sa.select(rules).order_by(rules.c.id))
    )
    return State(docs, stored, max(known, default=0), known)


async def write(
    connection: AsyncConnection, plan: Plan, at: datetime, by: str, source: str, summary: str
) -> int:
    """Record ``plan`` as one change; its id."""
    change = await connection.scalar(
        sa.insert(changes)
        .values(changed_at=at, changed_by=by[:200], source=source, summary=summary[:4000])
        .returning(changes.c.id)
    )
    assert change is not None
    if plan.documents:
        await connection.execute(
            sa.insert(documents),
            [
                {
                    "change_id": change,
                    "name": d.name,
                    "effective_from": d.effective_from,
                    "body": to_toml(d.table),
                }
                for d in plan.documents
            ],
        )
    if plan.rules:
        await connection.execute(
            sa.insert(rules),
            [
                {
                    "change_id": change,
                    "source": r.source,
                    "target": r.target,
                    "rate": str(r.rate),
                    "fee_percent": str(r.fee_percent),
                    "fee_fixed": r.fee_fixed,
                    "min_points": r.min_points,
                    "max_points": r.max_points,
                    "enabled": r.enabled,
                    "effective_from": r.effective_from,
                    "effective_until": r.effective_until,
                }
                for r in plan.rules
            ],
        )
    for rule_id, until in plan.ends.items():
        await connection.execute(
            sa.update(rules)
            .where(rules.c.id == rule_id)
            .values(effective_until=until, ended_by=change)
        )
    if plan.withdrawals:
        await connection.execute(
            sa.update(rules)
            .where(rules.c.id.in_(sorted(plan.withdrawals)))
            .values(withdrawn_by=change)
        )
    return int(change)


async def changes_since(connection: AsyncConnection, limit: int) -> list[Change]:
    """The last ``limit`` changes, newest first."""
    found = await connection.execute(sa.select(changes).order_by(changes.c.id.desc()).limit(limit))
    return [
        Change(row.id, row.changed_at, row.changed_by, row.source, row.summary) for row in found
    ]
