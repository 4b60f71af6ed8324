"""What a member's dashboard ranks by: how much they use each partner, and which rewards
they can pay for now, the most interesting first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.kernel.errors import DomainError
from gateway.ledger import store as repository
from gateway.ledger.service import LedgerService
from gateway.ledger.tables import transfers
from gateway.rewards.records import RewardRecord
from gateway.rewards.service import RewardService


@dataclass(frozen=True)
class Suggestion:
    reward: RewardRecord
    pay_with: str
    cost: int  # points of ``pay_with``
    balance: int  # the member's balance there now


async def partner_usage(ledger: LedgerService, member_id: str, since: datetime) -> dict[str, int]:
    """How many transfers the member (and the members merged into them) made per partner."""

    async def work(connection: AsyncConnection) -> dict[str, int]:
        ids = [member_id, *await repository.merged_into(connection, member_id)]
        rows = await connection.execute(
            sa.select(transfers.c.partner, sa.func.count())
            .where(transfers.c.member_id.in_(ids), transfers.c.created_at >= since)
            .group_by(transfers.c.partner)
        )
        return {partner: int(count) for partner, count in rows}

    return await ledger.uow.read(work)


def suggest(
    rewards: RewardService,
    catalogue: Sequence[RewardRecord],
    balances: Mapping[str, int],
    usage: Mapping[str, int],
    now: datetime,
    limit: int,
) -> list[Suggestion]:
    """The rewards payable now from some pool, ordered by interest: rewards of the partners
    the member uses most first, then those whose cost comes closest to the balance they
    would use (a reward worth saving for beats small change). Each is paid preferably with
    the reward's own partner's points, else with the pool it takes the largest share of."""
    found: list[tuple[tuple[int, Decimal], Suggestion]] = []
    for reward in catalogue:
        best: Suggestion | None = None
        for pool, balance in balances.items():
            if balance <= 0:
                continue
            try:
                cost = rewards.cost(reward, pool, now)
            except DomainError:
                continue
            if cost > balance:
                continue
            option = Suggestion(reward, pool, cost, balance)
            if best is None or _prefer(option, best):
                best = option
        if best is not None:
            share = Decimal(best.cost) / Decimal(best.balance)
            found.append(((-usage.get(reward.partner, 0), -share), best))
    found.sort(key=lambda item: item[0])
    return [suggestion for _, suggestion in found[:limit]]


def _prefer(option: Suggestion, best: Suggestion) -> bool:
    own = option.pay_with == option.reward.partner
    if own != (best.pay_with == best.reward.partner):
        return own
    return option.cost * best.balance > best.cost * option.balance
