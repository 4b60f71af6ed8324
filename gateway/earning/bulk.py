"""Point-of-sale batches: many purchases in one call, each earned on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from gateway.earning.purchases import Earned, Purchases
from gateway.earning.rules import Award, Line
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.validation import invalid
from gateway.ledger.records import MemberRef

MAX_BULK = 10_000


@dataclass(frozen=True)
class BulkLine:
    """One purchase of a point-of-sale batch: points, or a purchase (amount and lines)."""

    member: MemberRef
    idempotency_key: str
    points: int | None = None
    amount: Decimal | None = None
    lines: list[Line] = field(default_factory=list)
    reason: str | None = None
    # When the purchase happened (an import's ``occurred_at``); None: now.
    occurred_at: datetime | None = None


class Bulk(Purchases):
    """The batches part of the earning service."""

    async def earn_bulk(
        self, partner: str, lines: Sequence[BulkLine], concurrency: int | None = None
    ) -> list[Earned | DomainError]:
        """Each line earned on its own (its own key, its own transaction), so a bad line fails
        alone with its error; the answers are in the order of the lines."""
        self.ledger.partner(partner)
        if len(lines) > MAX_BULK:
            raise DomainError(
                ErrorCode.TOO_MANY_LINES,
                f"At most {MAX_BULK} purchases per call; this one has {len(lines)}.",
                ("lines",),
            )
        if concurrency is None:
            concurrency = 1 if self.ledger.engine.dialect.name == "sqlite" else 8
        gate = asyncio.Semaphore(concurrency)

        async def one(line: BulkLine) -> Earned | DomainError:
            async with gate:
                try:
                    if line.points is not None:
                        if line.amount is not None or line.lines:
                            raise invalid("points", "Give either points or a purchase.")
                        posting = await self.ledger.earn(
                            partner,
                            line.member,
                            line.idempotency_key,
                            points=line.points,
                            reason=line.reason,
                        )
                        return Earned(posting, (Award("points", "points given", line.points),))
                    return await self.earn(
                        partner,
                        line.member,
                        line.idempotency_key,
                        line.amount,
                        line.lines,
                        line.reason,
                    )
                except DomainError as error:
                    return error

        return list(await asyncio.gather(*(one(line) for line in lines)))
