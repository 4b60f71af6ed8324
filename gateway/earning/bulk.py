"""Point-of-sale batches and imports: many purchases in one call, each earned on its own
terms (its own key, its own answer), posted together.

On PostgreSQL a batch is posted in rounds of set-based statements (``batch.BatchEarning``):
one round for the lines whose keys are distinct, another for a key repeated later in the
batch (it then finds the first posting: a replay, or a key reused for another request), and
so on. A member whose earn needs more than a round does (a debt to repay, a referral bonus
due) has their lines earned one by one after the rounds, in order. On SQLite, and for a
partner whose pool is remote, every line is earned one by one.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from gateway.earning import rules
from gateway.earning.batch import SLOW, BatchEarning, Prepared
from gateway.earning.purchases import Earned, _occurred
from gateway.earning.rules import Award, Line
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.validation import MAX_REASON_LENGTH, check_points, clean_text, invalid
from gateway.ledger.records import MemberRef

MAX_BULK = 10_000
# A round of more than GROUP_LINES lines is posted as up to GROUPS concurrent transactions.
GROUPS = 4
GROUP_LINES = 1_000


@dataclass(frozen=True)
class BulkLine:
    """One purchase of a point-of-sale batch: points, or a purchase (amount and lines)."""

    member: MemberRef
    idempotency_key: str
    points: int | None = None
    amount: Decimal | None = None
    lines: list[Line] = field(default_factory=list)
    reason: str | None = None
    # When the purchase happened (an import's ``occurred_at``): its earning rules (the
    # promotions in force) apply then; None: now. Points given ignore it.
    occurred_at: datetime | None = None


class Bulk(BatchEarning):
    """The batches part of the earning service."""

    async def earn_bulk(
        self, partner: str, lines: Sequence[BulkLine], concurrency: int | None = None
    ) -> list[Earned | DomainError]:
        """Each line earned on its own terms, so a bad line fails alone with its error; the
        answers are in the order of the lines. A member's lines compose in their order."""
        config = self.ledger.partner(partner)
        if len(lines) > MAX_BULK:
            raise DomainError(
                ErrorCode.TOO_MANY_LINES,
                f"At most {MAX_BULK} purchases per call; this one has {len(lines)}.",
                ("lines",),
            )
        if self.ledger.engine.dialect.name != "postgresql" or config.pool.remote:
            return await self._one_by_one(partner, lines, concurrency)
        outcomes: list[Earned | DomainError | None] = [None] * len(lines)
        prepared: dict[int, Prepared] = {}
        now = self.ledger.clock()
        for index, line in enumerate(lines):
            try:
                prepared[index] = self._prepare(partner, line, now)
            except DomainError as error:
                outcomes[index] = error
        waiting = sorted(prepared)
        slow: list[int] = []
        slow_members: set[str] = set()
        while waiting:
            chosen, later = _round_of(waiting, prepared)
            for index in chosen:
                if _who(prepared[index]) in slow_members:
                    slow.append(index)
            chosen = [i for i in chosen if _who(prepared[i]) not in slow_members]
            groups = _groups(chosen, prepared)
            rounds = [self._round(partner, [prepared[i] for i in group]) for group in groups]
            answered = await asyncio.gather(*rounds)
            for index, answer in zip(
                [i for group in groups for i in group],
                [a for answers in answered for a in answers],
                strict=True,
            ):
                if isinstance(answer, str):
                    assert answer == SLOW
                    slow.append(index)
                    slow_members.add(_who(prepared[index]))
                else:
                    outcomes[index] = answer
            waiting = later
        for index in sorted(slow):
            outcomes[index] = await self._one(partner, lines[index])
        assert all(outcome is not None for outcome in outcomes)
        return outcomes  # type: ignore[return-value]

    def _prepare(self, partner: str, line: BulkLine, now: datetime) -> Prepared:
        """A line checked as ``earn`` (a purchase) or ``LedgerService.earn`` (points) check
        it, in the same order, with its claim."""
        if line.points is not None:
            if line.amount is not None or line.lines:
                raise invalid("points", "Give either points or a purchase.")
            reason = clean_text(line.reason, "reason", MAX_REASON_LENGTH, False)
            points = check_points(line.points)
            request = {
                "member": line.member.canonical(),
                "points": points,
                "purchase_amount": None,
                "reason": reason,
            }
            claim = self.ledger.kernel.claim(f"earn:{partner}", line.idempotency_key, request)
            return Prepared(line.member, claim, None, points, reason, line.occurred_at)
        reason = clean_text(line.reason, "reason", MAX_REASON_LENGTH, False)
        bought = self._purchase(line.amount, line.lines)
        occurred_at = rules.occurred(line.occurred_at, now)
        request = {
            "member": line.member.canonical(),
            "purchase": {
                "amount": str(bought.amount),
                "lines": [[str(x.amount), x.sku, x.category] for x in bought.lines],
            },
            "reason": reason,
            **(_occurred(occurred_at) or {}),
        }
        claim = self.ledger.kernel.claim(f"earn:{partner}", line.idempotency_key, request)
        return Prepared(line.member, claim, bought, None, reason, occurred_at)

    async def _one_by_one(
        self, partner: str, lines: Sequence[BulkLine], concurrency: int | None
    ) -> list[Earned | DomainError]:
        if concurrency is None:
            concurrency = 1 if self.ledger.engine.dialect.name == "sqlite" else 8
        gate = asyncio.Semaphore(concurrency)

        async def one(line: BulkLine) -> Earned | DomainError:
            async with gate:
                return await self._one(partner, line)

        return list(await asyncio.gather(*(one(line) for line in lines)))

    async def _one(self, partner: str, line: BulkLine) -> Earned | DomainError:
        """One line earned on its own, in its own transaction."""
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
                line.occurred_at,
            )
        except DomainError as error:
            return error


def _who(line: Prepared) -> str:
    """The member a line names, as given (lines naming one member alike group together)."""
    ref = line.member
    return ref.id if ref.id is not None else f"{ref.partner}\x00{ref.customer_id}"


def _groups(chosen: list[int], prepared: dict[int, Prepared]) -> list[list[int]]:
    """The round's lines in groups of members (each member's lines in one group, in order),
    posted in concurrent transactions: one group's rules run in Python while another's
    statements run in the database. One group for a small round."""
    count = min(GROUPS, -(-len(chosen) // GROUP_LINES))
    if count <= 1:
        return [chosen]
    groups: list[list[int]] = [[] for _ in range(count)]
    for index in chosen:
        groups[zlib.crc32(_who(prepared[index]).encode()) % count].append(index)
    return [group for group in groups if group]


def _round_of(waiting: list[int], prepared: dict[int, Prepared]) -> tuple[list[int], list[int]]:
    """The lines of the next round (keys distinct), and those for later: a line repeating
    an earlier line's key, and every later line of its member (to keep their order)."""
    keys: set[tuple[str, str]] = set()
    deferred: set[str] = set()
    now, later = [], []
    for index in waiting:
        line = prepared[index]
        who, key = _who(line), (line.claim.scope, line.claim.key)
        if key in keys or who in deferred:
            later.append(index)
            deferred.add(who)
            continue
        keys.add(key)
        now.append(index)
    return now, later
