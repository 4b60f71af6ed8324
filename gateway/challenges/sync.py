"""The configured challenges: coalition.toml's challenges kept in the table, synced at start."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.challenges import counters as challenge_counters
from gateway.challenges.tables import challenges
from gateway.kernel.schema import insert_for
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.ledger.service import LedgerService
from partners.config.challenges import Challenge, ChallengeKind, Period
from partners.config.coalition import ConfigError


def challenge_of(row: Any) -> Challenge:
    return Challenge(
        slug=row.slug,
        name=row.name,
        kind=ChallengeKind(row.kind),
        period=Period(row.period),
        target=row.target,
        badge=row.badge,
        partner=row.partner,
        bonus_points=row.bonus_points,
        bonus_partner=row.bonus_partner,
        description=row.description,
        owner=row.owner,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        active=row.active,
        configured=row.source == "config",
    )


def columns_of(challenge: Challenge) -> dict[str, Any]:
    return {
        "slug": challenge.slug,
        "source": "config" if challenge.configured else "api",
        "owner": challenge.owner,
        "kind": challenge.kind.value,
        "period": challenge.period.value,
        "target": challenge.target,
        "name": challenge.name,
        "badge": challenge.badge,
        "description": challenge.description,
        "partner": challenge.partner,
        "bonus_points": challenge.bonus_points,
        "bonus_partner": challenge.bonus_partner,
        "valid_from": challenge.valid_from,
        "valid_until": challenge.valid_until,
        "active": challenge.active,
    }


_COLUMNS = (
    "slug",
    "source",
    "owner",
    "kind",
    "period",
    "target",
    "name",
    "badge",
    "description",
    "partner",
    "bonus_points",
    "bonus_partner",
    "valid_from",
    "valid_until",
    "active",
)  # what columns_of gives


class Configured:
    """The configured challenges' part of the challenge service."""

    ledger: LedgerService
    uow: UnitOfWork
    _synced_with: object  # the configured challenges last written (a configuration change: anew)
    _sync_lock: asyncio.Lock

    @property
    def _synced(self) -> bool:
        return self._synced_with is self.ledger.coalition.challenges

    async def start(self) -> None:
        """Write coalition.toml's challenges into ``challenges`` (idempotent, safe in several
        processes at once); a configured challenge that left the file is deactivated, its
        badges kept. Raises ``ConfigError`` when a configured slug belongs to a challenge
        created through the API."""
        if self._synced:
            return
        async with self._sync_lock:
            if not self._synced:
                # Usually another process synced already: a read says so without taking
                # the rows' locks (many processes start at once).
                if not await self.uow.read(self._in_sync):
                    await self.uow.write(self._sync)
                self._synced_with = self.ledger.coalition.challenges

    async def prepare(self, connection: AsyncConnection) -> None:
        """``start`` inside a caller's write (the badge consumer's batch)."""
        if self._synced:
            return
        if await self._in_sync(connection):
            self._synced_with = self.ledger.coalition.challenges
        else:
            await self._sync(connection)

    async def _in_sync(self, connection: AsyncConnection) -> bool:
        configured = {c.slug: columns_of(c) for c in self.ledger.coalition.challenges}
        result = await connection.execute(
            sa.select(challenges).where(
                sa.or_(
                    challenges.c.slug.in_(list(configured)),
                    sa.and_(challenges.c.source == "config", challenges.c.active.is_(True)),
                )
            )
        )
        stored = {row.slug: {name: getattr(row, name) for name in _COLUMNS} for row in result}
        if stored != configured:
            return False
        unbuilt = await connection.scalar(
            sa.select(sa.func.count())
            .select_from(challenges)
            .where(challenges.c.active.is_(True), challenges.c.counted_at.is_(None))
        )
        return not unbuilt

    async def _sync(self, connection: AsyncConnection) -> None:
        now = self.ledger.clock()
        configured = self.ledger.coalition.challenges
        await challenge_counters.lock(connection)
        before = {
            row.slug: row
            for row in await connection.execute(
                sa.select(challenges).where(challenges.c.slug.in_([c.slug for c in configured]))
            )
        }
        for index, challenge in enumerate(configured):
            values = columns_of(challenge)
            insert = insert_for(connection, challenges).values(
                **values, created_at=now, updated_at=now
            )
            changed = {name: insert.excluded[name] for name in values if name != "slug"}
            statement = insert.on_conflict_do_update(
                index_elements=["slug"],
                set_={**changed, "updated_at": insert.excluded.updated_at},
                where=challenges.c.source == "config",
            ).returning(challenges.c.slug)
            if (await connection.execute(statement)).first() is None:
                raise ConfigError(
                    self._config_file(),
                    None,
                    f"challenges[{index}].slug",
                    f"'{challenge.slug}' is already the slug of a challenge created through "
                    "the API; give this one another slug",
                )
            if counts_differently(before.get(challenge.slug), challenge):
                await challenge_counters.rebuild(connection, challenge, now)
        await connection.execute(
            sa.update(challenges)
            .where(
                challenges.c.source == "config",
                challenges.c.active.is_(True),
                challenges.c.slug.not_in([c.slug for c in configured]),
            )
            .values(active=False, updated_at=now)
        )
        # Challenges whose counters were never built (created before counters existed).
        unbuilt = await connection.execute(
            sa.select(challenges).where(
                challenges.c.active.is_(True), challenges.c.counted_at.is_(None)
            )
        )
        for row in unbuilt.all():
            await challenge_counters.rebuild(connection, challenge_of(row), now)

    def _config_file(self) -> str:
        partners = self.ledger.coalition.partners.values()
        folder = next((Path(p.source_file).parent for p in partners), Path("."))
        return str(folder / "coalition.toml")


def counts_differently(row: Any, challenge: Challenge) -> bool:
    """Whether the counters of ``challenge`` must be built again: new, (re)activated, with
    another validity, or never built."""
    if row is None:
        return True
    return (
        (challenge.active and not row.active)
        or row.valid_from != challenge.valid_from
        or row.valid_until != challenge.valid_until
        or (challenge.active and row.counted_at is None)
    )
