"""Coalition-wide tiers: a member's tier, their qualifying value, and the jobs that keep
the stored tier up to date. The rules themselves are in ``tier_rules``.

**Qualifying value**: the points a member earned at every partner within the rolling window
(members merged into them included), each point valued at its partner's ``point_value`` in
the settlement currency. A clawback takes its points off when it happens; a reversal of an
earn takes them off the window of the earn it reverses (so a reversal never reaches into
another window). Conversions, redemptions, gifts and merges do not count. The points per
partner are kept running in each posting's transaction (``tier_values``: no rescan of
history); the valuation is exact decimal arithmetic here.

**Stored state**: ``member_tiers`` (no row: the first tier). What a member is shown is the
stored state advanced to now, so it is right even before a job has run. Every posting that
changes the value stores it in its own transaction (``programme_observer``), and so do
``refresh`` and ``review_due`` (a job). Every write is conditional on the row read,
so concurrent refreshes and jobs never lose or double an update: the loser reads again,
locked, and finds the work done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger import store as repository
from gateway.ledger.service import LedgerService
from gateway.ledger.tables import members
from gateway.tiers import values as tier_values
from gateway.tiers.reward_rules import UPGRADE_KIND, RewardTiers, needs_tier, upgrade_target
from gateway.tiers.rules import TierState, advance, bought, initial, tier_of, window_start
from gateway.tiers.tables import member_tiers
from partners.config.coalition import Partner
from partners.config.tiers import Tier, Tiers

REVIEW_BATCH = 500


@dataclass(frozen=True)
class TierStatus:
    """Where a member stands: their tier now, and what the next one or keeping this one
    takes. Values are in the settlement currency."""

    member_id: str
    tier: Tier
    since: datetime | None  # None: in the first tier from the start
    review_at: datetime | None  # None in the first tier
    downgrade_at: datetime | None  # set after a review the value did not pass
    qualifying_value: Decimal
    window_start: datetime  # the value counts earns after this moment, up to now
    next_tier: Tier | None
    value_needed: Decimal | None  # more value that reaches ``next_tier`` now
    value_to_keep: Decimal  # more value the tier needs by its review (0: it qualifies)


class TierService:
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.uow = ledger.uow

    @property
    def tiers(self) -> Tiers | None:
        return self.ledger.coalition.tiers

    # Reading

    async def status(self, member_id: str) -> TierStatus | None:
        """The member's tier now (a merged member's id gives the survivor's); None when the
        coalition has no tiers. UNKNOWN_MEMBER for an unknown id.

        A read, unless the stored tier is behind (an upgrade, review or downgrade no job or
        refresh stored yet): then it is stored first, so that ``since`` and ``review_at``
        are fixed when first seen rather than moving with the clock."""
        if self.tiers is None:
            return None
        now = self.ledger.clock()

        async def read(connection: AsyncConnection) -> tuple[TierStatus | None, bool]:
            survivor = await _survivor(connection, member_id)
            return await self._evaluate(connection, survivor, now)

        status, behind = await self.uow.read(read)
        if not behind:
            return status
        assert status is not None

        async def store(connection: AsyncConnection) -> TierStatus | None:
            return (await self.settle(connection, status.member_id, now))[0]

        return await self.uow.write(store)

    async def tier_name(self, member_id: str) -> str | None:
        """The slug of the member's tier now (what promotions name); None without tiers."""
        status = await self.status(member_id)
        return status.tier.slug if status else None

    async def earn_multiplier(self, member_id: str, partner: str) -> Decimal:
        """The member's tier's earn multiplier at ``partner`` now; 1 without tiers or benefit."""
        tiers = self.tiers
        if tiers is None or not tiers.has_benefit_at(partner):
            return Decimal(1)
        status = await self.status(member_id)
        return status.tier.multiplier_at(partner) if status else Decimal(1)

    async def current(
        self, connection: AsyncConnection, member_id: str, now: datetime
    ) -> TierStatus | None:
        """Inside a caller's transaction: the member's tier at ``now``, without storing it
        (``settle`` stores it)."""
        return (await self._evaluate(connection, member_id, now))[0]

    async def _evaluate(
        self, connection: AsyncConnection, member_id: str, now: datetime
    ) -> tuple[TierStatus | None, bool]:
        """The status at ``now``, and whether it differs from the stored state."""
        tiers = self.tiers
        if tiers is None:
            return None, False
        value = await self.qualifying_value(connection, member_id, now)
        state = await _stored(connection, member_id) or initial(tiers)
        following = advance(tiers, state, value, now)
        return self._status(tiers, member_id, following, value, now), following != state

    async def qualifying_value(
        self, connection: AsyncConnection, member_id: str, now: datetime
    ) -> Decimal:
        """What the member (and those merged into them) earned in the window ending at
        ``now``, in the settlement currency: read from the running sums (``tier_values``),
        never from the member's history."""
        tiers = self.tiers
        if tiers is None:
            return Decimal(0)
        points = await tier_values.read(connection, member_id, window_start(tiers, now))
        return valuation(self.ledger.coalition.partners, points)

    # Storing

    async def refresh(self, member_id: str) -> TierStatus | None:
        """Store the member's tier at now: an upgrade their value reached, and any review or
        downgrade that fell due. None when the coalition has no tiers."""
        if self.tiers is None:
            return None
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> TierStatus | None:
            survivor = await _survivor(connection, member_id)
            return (await self.settle(connection, survivor, now))[0]

        return await self.uow.write(work)

    async def review_due(self, limit: int = REVIEW_BATCH) -> int:
        """Store the reviews and downgrades due now, for at most ``limit`` members (merged
        members left out); how many members' tiers changed. Safe to run twice or in
        parallel: a member another run already settled counts there, not here."""
        if self.tiers is None:
            return 0
        now = self.ledger.clock()
        due = sa.or_(
            sa.and_(member_tiers.c.downgrade_at.is_(None), member_tiers.c.review_at <= now),
            member_tiers.c.downgrade_at <= now,
        )
        query = (
            sa.select(member_tiers.c.member_id)
            .join(members, members.c.id == member_tiers.c.member_id)
            .where(due, members.c.merged_into.is_(None))
            .order_by(sa.func.coalesce(member_tiers.c.downgrade_at, member_tiers.c.review_at))
            .limit(limit)
        )

        async def find(connection: AsyncConnection) -> list[str]:
            return [str(row.member_id) for row in await connection.execute(query)]

        changed = 0
        for member_id in await self.uow.read(find):

            async def work(connection: AsyncConnection, member_id: str = member_id) -> bool:
                return (await self.settle(connection, member_id, now))[1]

            changed += await self.uow.write(work)
        return changed

    async def settle(
        self,
        connection: AsyncConnection,
        member_id: str,
        now: datetime,
        value: Decimal | None = None,
    ) -> tuple[TierStatus | None, bool]:
        """Inside a caller's write: store the member's tier at ``now`` (``value``: their
        qualifying value then, when the caller knows it). The status, and whether this
        call changed the stored state."""
        tiers = self.tiers
        if tiers is None:
            return None, False
        if value is None:
            value = await self.qualifying_value(connection, member_id, now)

        def change(state: TierState) -> TierState:
            return advance(tiers, state, value, now)

        state, changed = await self._store(connection, member_id, change, now)
        return self._status(tiers, member_id, state, value, now), changed

    async def redeemed(
        self, connection: AsyncConnection, member_id: str, settings: RewardTiers, now: datetime
    ) -> TierStatus | None:
        """Inside a reward's redemption: the member's tier, stored at ``now`` (None when the
        reward's tier settings do not matter: see ``needs_tier``). The caller checks it with
        ``tier_refusal``, then ``bought`` gives a tier upgrade's tier."""
        if not needs_tier(self.tiers, settings):
            return None
        return (await self.settle(connection, member_id, now))[0]

    async def bought(
        self,
        connection: AsyncConnection,
        member_id: str,
        settings: RewardTiers,
        status: TierStatus | None,
        now: datetime,
    ) -> None:
        """Inside a tier upgrade's redemption that ``tier_refusal`` passed: its tier (or the
        next one up) for one window."""
        tiers = self.tiers
        if tiers is None or status is None or settings.kind != UPGRADE_KIND:
            return  # without tiers a tier upgrade is recorded and gives nothing
        target = upgrade_target(tiers, status, settings.tier)
        assert target is not None

        def buy(state: TierState) -> TierState:
            return bought(tiers, state, target, now) or state

        await self._store(connection, member_id, buy, now)

    async def _store(
        self,
        connection: AsyncConnection,
        member_id: str,
        change: Callable[[TierState], TierState],
        now: datetime,
    ) -> tuple[TierState, bool]:
        """Apply ``change`` to the stored state and write it if it differs, conditionally on
        the row read. A lost race reads the row again, locked, so the second try holds."""
        tiers = self.tiers
        assert tiers is not None
        for lock in (False, True):
            stored = await _stored(connection, member_id, lock)
            state = stored or initial(tiers)
            following = change(state)
            if following == state:
                return state, False
            if await _write(connection, member_id, stored, following, now):
                return following, True
        raise RuntimeError(f"the tier of member {member_id} changed under a row lock")

    def _status(
        self, tiers: Tiers, member_id: str, state: TierState, value: Decimal, now: datetime
    ) -> TierStatus:
        tier = tier_of(tiers, state)
        following = tiers.above(tier)
        return TierStatus(
            member_id=member_id,
            tier=tier,
            since=state.since,
            review_at=state.review_at,
            downgrade_at=state.downgrade_at,
            qualifying_value=value,
            window_start=window_start(tiers, now),
            next_tier=following,
            value_needed=max(following.qualifying_value - value, Decimal(0)) if following else None,
            value_to_keep=max(tier.qualifying_value - value, Decimal(0)),
        )


def valuation(partners: Mapping[str, Partner], points: Mapping[str, int]) -> Decimal:
    """Qualifying points per partner valued at each partner's ``point_value`` (a partner no
    longer in the coalition counts nothing)."""
    return sum(
        (
            partners[partner].point_value * amount
            for partner, amount in points.items()
            if partner in partners
        ),
        Decimal(0),
    )


async def _survivor(connection: AsyncConnection, member_id: str) -> str:
    found = await repository.members_by_id(connection, [member_id])
    if member_id not in found:
        raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member", "id"))
    return found[member_id].id


async def _stored(
    connection: AsyncConnection, member_id: str, lock: bool = False
) -> TierState | None:
    query = sa.select(member_tiers).where(member_tiers.c.member_id == member_id)
    if lock:
        query = query.with_for_update()
    row = (await connection.execute(query)).first()
    if row is None:
        return None
    return TierState(row.tier, row.since, row.review_at, row.downgrade_at)


async def _write(
    connection: AsyncConnection,
    member_id: str,
    stored: TierState | None,
    state: TierState,
    now: datetime,
) -> bool:
    """Insert the first row, or update the row still as ``stored``; False when another
    transaction wrote first."""
    values = {
        "tier": state.tier,
        "since": state.since or now,
        "review_at": state.review_at,
        "downgrade_at": state.downgrade_at,
        "updated_at": now,
    }
    if stored is None:
        insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(
            member_tiers
        )
        statement: Any = insert.values(member_id=member_id, **values).on_conflict_do_nothing(
            index_elements=["member_id"]
        )
    else:
        columns = member_tiers.c
        statement = (
            sa.update(member_tiers)
            .where(
                columns.member_id == member_id,
                columns.tier == stored.tier,
                columns.since == stored.since,
                columns.review_at.is_not_distinct_from(stored.review_at),
                columns.downgrade_at.is_not_distinct_from(stored.downgrade_at),
            )
            .values(**values)
        )
    return bool((await connection.execute(statement)).rowcount)
