"""Two-phase redemption for point-of-sale: authorize a hold, then capture or void it.

A hold moves points from the member's wallet to the pool's HOLDS account (so they are no
longer available) and records a row in ``holds``. Capturing posts HOLDS -> REDEMPTION for
the captured part and HOLDS -> wallet for the rest; voiding or expiry posts HOLDS -> wallet.
Each settlement is one transaction that flips ``status`` from ``authorized`` with a
conditional UPDATE, so racing captures, voids and the expiry sweep settle a hold once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.auth.step_up import StepUp
from gateway.holds.tables import holds
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.validation import MAX_REASON_LENGTH, check_points, clean_text, invalid
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.records import MemberRef, Posting, scope
from gateway.ledger.rules import TransferKind, capture_legs, hold_legs, release_legs
from gateway.ledger.service import LedgerService

log = logging.getLogger("gateway.holds.service")

DEFAULT_HOLD = timedelta(minutes=15)
MAX_HOLD = timedelta(days=7)
AUTHORIZED, CAPTURED, VOIDED, EXPIRED = "authorized", "captured", "voided", "expired"


@dataclass(frozen=True)
class HoldRecord:
    id: int
    member_id: str
    partner: str
    points: int
    captured_points: int | None
    status: str
    reason: str | None
    hold_transfer_id: int
    settle_transfer_id: int | None
    created_at: datetime
    expires_at: datetime
    settled_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> HoldRecord:
        return cls(
            row.id,
            row.member_id,
            row.partner,
            row.points,
            row.captured_points,
            row.status,
            row.reason,
            row.hold_transfer_id,
            row.settle_transfer_id,
            row.created_at,
            row.expires_at,
            row.settled_at,
        )


@dataclass(frozen=True)
class HoldPosting:
    hold: HoldRecord
    posting: Posting


def _not_open(hold: HoldRecord) -> DomainError:
    return DomainError(
        ErrorCode.HOLD_NOT_OPEN,
        f"This hold is {hold.status} already; a hold is captured or voided once.",
        ("hold_id",),
    )


class HoldService:
    def __init__(self, ledger: LedgerService) -> None:
        self.ledger = ledger
        self.uow = ledger.uow

    @property
    def clock(self) -> Any:
        return self.ledger.clock

    # Reads

    async def _by_id(self, connection: AsyncConnection, hold_id: int) -> HoldRecord | None:
        row = (await connection.execute(sa.select(holds).where(holds.c.id == hold_id))).first()
        return HoldRecord.from_row(row) if row else None

    async def _by_transfer(self, connection: AsyncConnection, transfer_id: int) -> HoldRecord:
        column = holds.c.hold_transfer_id
        row = (await connection.execute(sa.select(holds).where(column == transfer_id))).first()
        if row is None:
            settled = holds.c.settle_transfer_id == transfer_id
            row = (await connection.execute(sa.select(holds).where(settled))).one()
        return HoldRecord.from_row(row)

    async def holds(self, hold_ids: Sequence[int]) -> dict[int, HoldRecord]:
        async def work(connection: AsyncConnection) -> dict[int, HoldRecord]:
            result = await connection.execute(sa.select(holds).where(holds.c.id.in_(hold_ids)))
            return {row.id: HoldRecord.from_row(row) for row in result}

        return await self.uow.read(work)

    async def held(self, member_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per member and pool, the points in open holds (of merged members too)."""

        async def work(connection: AsyncConnection) -> dict[str, dict[str, int]]:
            found: dict[str, dict[str, int]] = defaultdict(dict)
            result = await connection.execute(
                sa.select(holds.c.member_id, holds.c.partner, sa.func.sum(holds.c.points))
                .where(holds.c.member_id.in_(member_ids), holds.c.status == AUTHORIZED)
                .group_by(holds.c.member_id, holds.c.partner)
            )
            for member_id, partner, total in result:
                found[member_id][partner] = int(total)
            return found

        return await self.uow.read(work)

    async def of_member(self, member_id: str, status: str | None, limit: int) -> list[HoldRecord]:
        async def work(connection: AsyncConnection) -> list[HoldRecord]:
            ids = [member_id, *await repository.merged_into(connection, member_id)]
            query = sa.select(holds).where(holds.c.member_id.in_(ids))
            if status is not None:
                query = query.where(holds.c.status == status)
            query = query.order_by(holds.c.id.desc()).limit(limit)
            return [HoldRecord.from_row(row) for row in await connection.execute(query)]

        return await self.uow.read(work)

    # Authorize

    async def authorize(
        self,
        partner: str,
        member: MemberRef,
        points: int,
        idempotency_key: str,
        lifetime: timedelta = DEFAULT_HOLD,
        reason: str | None = None,
        caller: str | None = None,
        step_up: StepUp | None = None,
    ) -> HoldPosting:
        """``step_up``: checked under the member's lock, in the hold's transaction."""
        ledger = self.ledger
        ledger.partner(partner)
        if ledger.coalition.is_remote(partner):
            raise DomainError(
                ErrorCode.NOT_AVAILABLE_AT_REMOTE_POOL,
                f"'{partner}' keeps its points in its own system, which offers no holds: "
                "redeem the points directly instead.",
                ("partner",),
            )
        reason = clean_text(reason, "reason", MAX_REASON_LENGTH, False)
        check_points(points)
        if not timedelta(seconds=1) <= lifetime <= MAX_HOLD:
            raise invalid("expires_in_seconds", "A hold lasts between 1 second and 7 days.")
        request = {
            "member": member.canonical(),
            "points": points,
            "lifetime": lifetime.total_seconds(),
            "reason": reason,
        }
        claim = ledger.kernel.claim(scope("hold", partner, caller), idempotency_key, request)

        async def work(connection: AsyncConnection) -> HoldPosting:
            member_id = await ledger.kernel.lock_member(connection, member)
            now = ledger.clock()

            async def record(connection: AsyncConnection, transfer_id: int) -> None:
                await connection.execute(
                    sa.insert(holds).values(
                        member_id=member_id,
                        partner=partner,
                        points=points,
                        status=AUTHORIZED,
                        reason=reason,
                        hold_transfer_id=transfer_id,
                        created_at=now,
                        expires_at=now + lifetime,
                    )
                )

            values = {
                "kind": TransferKind.HOLD.value,
                "partner": partner,
                "points": points,
                "reason": reason,
            }

            async def guard(connection: AsyncConnection, transfer_id: int) -> None:
                if step_up is not None:
                    await step_up.guard(member_id, now, claim)(connection, transfer_id)
                await record(connection, transfer_id)

            posting = await ledger.kernel.post(
                connection, claim, values, member_id, hold_legs(partner, points), guard
            )
            hold = await self._by_transfer(connection, posting.transfer.id)
            return HoldPosting(hold, posting)

        return await self.uow.write(work)

    # Settle: capture, void, expire

    async def _settle(
        self,
        hold_id: int,
        idempotency_key: str,
        status: str,
        points: int | None,
        scope_prefix: str,
    ) -> HoldPosting:
        ledger = self.ledger
        request = {"hold": hold_id, "status": status, "points": points}

        async def work(connection: AsyncConnection) -> HoldPosting:
            hold = await self._by_id(connection, hold_id)
            if hold is None:
                raise DomainError(ErrorCode.UNKNOWN_HOLD, "No such hold.", ("hold_id",))
            claim = ledger.kernel.claim(f"{scope_prefix}:{hold.partner}", idempotency_key, request)
            captured = hold.points if points is None else points
            if status == CAPTURED:
                if not 0 < captured <= hold.points:
                    raise DomainError(
                        ErrorCode.AMOUNT_OUT_OF_BOUNDS,
                        f"Capture between 1 and the {hold.points} points held.",
                        ("points",),
                    )
                legs = capture_legs(hold.partner, hold.points, captured)
            else:
                legs = release_legs(hold.partner, hold.points)
            now = ledger.clock()

            async def flip(connection: AsyncConnection, transfer_id: int) -> None:
                condition = [holds.c.id == hold_id, holds.c.status == AUTHORIZED]
                if status == CAPTURED:
                    condition.append(holds.c.expires_at > now)
                if status == EXPIRED:
                    condition.append(holds.c.expires_at <= now)
                result = await connection.execute(
                    sa.update(holds)
                    .where(*condition)
                    .values(
                        status=status,
                        captured_points=captured if status == CAPTURED else None,
                        settle_transfer_id=transfer_id,
                        settled_at=now,
                    )
                )
                if result.rowcount:
                    return
                current = await self._by_id(connection, hold_id)
                assert current is not None
                if current.status == AUTHORIZED and status == CAPTURED:
                    raise DomainError(
                        ErrorCode.HOLD_EXPIRED,
                        "This hold expired; its points go back to the member.",
                        ("hold_id",),
                    )
                raise _not_open(current)

            values = {
                "kind": (
                    TransferKind.CAPTURE if status == CAPTURED else TransferKind.RELEASE
                ).value,
                "partner": hold.partner,
                "points": captured if status == CAPTURED else hold.points,
                "reason": f"hold {hold_id} {status}",
            }
            member_id = await locks.live_member(connection, hold.member_id)
            rest = {"hold_id": hold_id, "released_points": hold.points - captured}
            posting = await ledger.kernel.post(
                connection, claim, values, member_id, legs, flip, rest
            )
            settled = await self._by_id(connection, hold_id)
            assert settled is not None
            if posting.replayed and settled.settle_transfer_id != posting.transfer.id:
                raise _not_open(settled)
            return HoldPosting(settled, posting)

        return await self.uow.write(work)

    async def capture(
        self, hold_id: int, idempotency_key: str, points: int | None = None
    ) -> HoldPosting:
        if points is not None:
            check_points(points)
        return await self._settle(hold_id, idempotency_key, CAPTURED, points, "capture")

    async def void(self, hold_id: int, idempotency_key: str) -> HoldPosting:
        return await self._settle(hold_id, idempotency_key, VOIDED, None, "void")

    async def expire_due(self, limit: int = 500) -> int:
        """Release every authorized hold past its expiry; safe to run twice or at once in
        several processes (each hold is settled once). Returns how many this call released."""
        now = self.ledger.clock()

        async def due(connection: AsyncConnection) -> list[int]:
            result = await connection.execute(
                sa.select(holds.c.id)
                .where(holds.c.status == AUTHORIZED, holds.c.expires_at <= now)
                .order_by(holds.c.expires_at)
                .limit(limit)
            )
            return [int(row.id) for row in result]

        released = 0
        for hold_id in await self.uow.read(due):
            try:
                done = await self._settle(hold_id, f"expire-{hold_id}", EXPIRED, None, "expire")
            except DomainError as error:
                if error.code is not ErrorCode.HOLD_NOT_OPEN:
                    raise
                continue  # captured or voided meanwhile
            if not done.posting.replayed:
                released += 1
        if released:
            log.info("released %d expired hold(s)", released)
        return released
