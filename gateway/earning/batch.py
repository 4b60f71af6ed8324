"""A batch of earns in one transaction (PostgreSQL): each line's earning rules in Python, the
postings in a handful of set-based statements (``ledger.batch``).

One round (``BatchEarning._round``), for lines whose keys are distinct:

1. the members resolved (customer ids: one query) and locked (one statement);
2. the keys already taken (one query): a line whose key answered the same request is a
   replay, answered as the first time (``_replays``); another request is
   IDEMPOTENCY_KEY_REUSED;
3. what the rules need of every member (a handful of grouped queries): purchases at the
   partner before and in the frequency bonus's period, tier standings, and for the
   answer's wallet the balance, points pending, held and owed;
4. each line's awards in the batch's order, the member's context moving on after each
   (first purchase, frequency count, tier), as single earns would see it;
5. the postings (``ledger.batch.post_credits``), then the purchases (one insert).

A member whose earn needs more than that (a debt to repay first, a referral bonus due) is
left out of the round: ``Bulk`` earns their lines one by one afterwards.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning import batch_sql
from gateway.earning import rules as earning
from gateway.earning.pending import AVAILABLE, PENDING
from gateway.earning.promotions import in_force_during
from gateway.earning.purchases import Earned, Purchases, _occurred, _wallet_json, _wallet_of
from gateway.earning.rules import Award
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.unit_of_work import Contention
from gateway.ledger import batch as ledger_batch
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.batch import Credit, KeysTaken
from gateway.ledger.posting import Claim
from gateway.ledger.records import MemberRef, Posting, WalletRecord
from gateway.ledger.rules import AccountCode, Leg, earn_legs
from gateway.tiers import batch as tier_batch
from partners.config.coalition import Partner
from partners.config.earning import Promotion


@dataclass(frozen=True)
class Prepared:
    """A line checked without the database: its claim, and a purchase or points."""

    member: MemberRef
    claim: Claim
    bought: earning.Purchase | None  # None: points given
    points: int | None
    reason: str | None
    occurred_at: datetime | None = None


SLOW = "slow"  # a line ``Bulk`` earns on its own (see the module's docstring)


@dataclass
class _Member:
    """What the rules and the answer need of one member, moving on line by line."""

    before: bool = False
    in_period: int = 0
    balance: int = 0
    pending: int = 0
    held: int = 0
    owed: int = 0
    standing: tier_batch.Standing | None = None
    lines: list[int] = field(default_factory=list)


Outcome = Earned | DomainError | str  # str: SLOW


class BatchEarning(Purchases):
    """The batch part of the earning service."""

    async def _round(self, partner: str, lines: Sequence[Prepared]) -> list[Outcome]:
        """Earn ``lines`` (distinct keys) in one transaction; one outcome per line. The
        first attempt takes every key to be new; when one is not, the round runs again
        checking them first (and again while another transaction keeps taking them)."""
        check = False
        for _ in range(self.ledger.uow.attempts):

            async def work(connection: AsyncConnection, check: bool = check) -> list[Outcome]:
                return await self._post_round(connection, partner, lines, check)

            try:
                return await self.ledger.uow.write(work)
            except KeysTaken:
                check = True
        raise Contention()

    async def _post_round(
        self,
        connection: AsyncConnection,
        partner: str,
        lines: Sequence[Prepared],
        check: bool,
    ) -> list[Outcome]:
        ledger = self.ledger
        config = ledger.partner(partner)
        now = ledger.clock()
        outcomes: list[Outcome | None] = [None] * len(lines)
        # 1. The members, resolved and locked.
        member_of = await self._members(connection, partner, lines, outcomes)
        live = await locks.lock_members(connection, sorted(set(member_of.values())))
        gone = locks.erased(connection)
        for index, given in member_of.items():
            if given not in live:
                outcomes[index] = DomainError(
                    ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member", "id")
                )
            elif live[given] in gone:
                outcomes[index] = DomainError(
                    ErrorCode.MEMBER_ERASED, "This member was erased.", ("member", "id")
                )
        # 2. Keys taken: replays, or keys reused for another request.
        open_lines = [i for i, outcome in enumerate(outcomes) if outcome is None]
        claims = [lines[i].claim for i in open_lines]
        taken = await ledger_batch.taken(connection, claims) if check else {}
        replayed: dict[int, int] = {}
        for index in open_lines:
            claim = lines[index].claim
            found = taken.get((claim.scope, claim.key))
            if found is None:
                continue
            if found.fingerprint != claim.fingerprint:
                outcomes[index] = DomainError(
                    ErrorCode.IDEMPOTENCY_KEY_REUSED,
                    "This idempotency key was used for a different request.",
                    ("idempotency_key",),
                )
            else:
                replayed[index] = found.transfer_id
        if replayed:
            answers = await self._replays(connection, sorted(set(replayed.values())))
            for index, transfer_id in replayed.items():
                outcomes[index] = answers[transfer_id]
        # 3. What the rules need of each member.
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        members: dict[str, _Member] = defaultdict(_Member)
        for index in todo:
            members[live[member_of[index]]].lines.append(index)
        slow = await self._read_members(connection, partner, members, now)
        for member_id in slow:
            for index in members.pop(member_id).lines:
                outcomes[index] = SLOW
        # 4. Each line's awards, in order.
        # Each purchase's rules apply at the moment it happened (``occurred_at``), or now.
        earliest = min((lines[i].occurred_at or now for i in todo), default=now)
        extra = await in_force_during(connection, partner, min(earliest, now), now)
        window = config.earning.return_window
        pending = window.total_seconds() > 0
        credits: list[Credit] = []
        placed: list[tuple[int, str, list[Award], int]] = []  # line, member, awards, points
        for index in todo:
            if outcomes[index] is not None:
                continue
            line, member_id = lines[index], live[member_of[index]]
            state = members[member_id]
            try:
                awards, points = self._awards(config, line, state, now, extra)
            except DomainError as error:
                outcomes[index] = error
                continue
            purchase = line.bought is not None
            legs = (
                [
                    Leg(partner, AccountCode.ISSUANCE, -points),
                    Leg(partner, AccountCode.PENDING, points),
                ]
                if pending and purchase
                else earn_legs(partner, points)
            )
            occurred = _occurred(line.occurred_at) if purchase else None
            values = {
                "kind": "earn",
                "partner": partner,
                "points": points,
                "purchase_amount": str(line.bought.amount) if line.bought is not None else None,
                "reason": line.reason,
            }
            credits.append(Credit(line.claim, values, member_id, legs, occurred))
            placed.append((index, member_id, awards, points))
            if purchase:
                state.before, state.in_period = True, state.in_period + 1
            if state.standing is not None:
                state.standing.add(
                    ledger.coalition.tiers, ledger.coalition.partners, partner, points, now
                )
        # 5. The postings, then the purchases.
        postings = await ledger.kernel.post_batch(connection, credits, now)
        rows: dict[str, list[Any]] = defaultdict(list)
        for (index, member_id, awards, points), posting in zip(placed, postings, strict=True):
            line, state = lines[index], members[member_id]
            if line.bought is None:
                state.balance += points
                outcomes[index] = Earned(posting, tuple(awards))
                continue
            held_back = pending
            if held_back:
                state.pending += points
            else:
                state.balance += points
            wallet = WalletRecord(
                member_id,
                partner,
                state.balance,
                owed=state.owed,
                pending=state.pending,
                held=state.held,
            )
            outcomes[index] = Earned(posting, tuple(awards), held_back, wallet)
            rows["transfers"].append(posting.transfer.id)
            rows["members"].append(member_id)
            rows["partners"].append(partner)
            rows["receipts"].append(line.claim.key)
            rows["amounts"].append(str(line.bought.amount))
            rows["points"].append(points)
            rows["breakdowns"].append(
                json.dumps([[a.rule, a.description, a.points] for a in awards])
            )
            rows["wallets"].append(json.dumps(_wallet_json(wallet)))
            rows["statuses"].append(PENDING if held_back else AVAILABLE)
            rows["matures"].append(now + window if held_back else None)
        if rows:
            await connection.execute(batch_sql.PURCHASES, {"at": now, **rows})
        assert all(outcome is not None for outcome in outcomes)
        return outcomes  # type: ignore[return-value]

    async def _members(
        self,
        connection: AsyncConnection,
        partner: str,
        lines: Sequence[Prepared],
        outcomes: list[Outcome | None],
    ) -> dict[int, str]:
        """Each line's member as given (an id, or the id a customer id is enrolled as)."""
        by_customer: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        found: dict[int, str] = {}
        for index, line in enumerate(lines):
            ref = line.member
            if ref.id is not None:
                found[index] = ref.id
            else:
                assert ref.partner is not None and ref.customer_id is not None
                by_customer[ref.partner][ref.customer_id].append(index)
        for at, customers in by_customer.items():
            result = await connection.execute(
                batch_sql.RESOLVE, {"partner": at, "customers": sorted(customers)}
            )
            enrolled = {str(customer): str(member) for customer, member in result}
            for customer, indexes in customers.items():
                for index in indexes:
                    if customer in enrolled:
                        found[index] = enrolled[customer]
                    else:
                        outcomes[index] = DomainError(
                            ErrorCode.UNKNOWN_MEMBER,
                            f"No member is enrolled at '{at}' as {shown(customer)}.",
                            ("member", "partner_customer_id"),
                        )
        return found

    async def _read_members(
        self,
        connection: AsyncConnection,
        partner: str,
        members: Mapping[str, _Member],
        now: datetime,
    ) -> list[str]:
        """Fill in each member's context; the members to earn for one line at a time."""
        if not members:
            return []
        ids = sorted(members)
        rules = self.ledger.coalition.partners[partner].earning
        frequency = rules.frequency_bonus
        since = frequency.period.start(now) if frequency is not None else now
        for member_id, before, in_period in await connection.execute(
            batch_sql.HISTORY,
            {"partner": partner, "members": ids, "since": since, "count": frequency is not None},
        ):
            state = members[str(member_id)]
            state.before = bool(before)
            state.in_period = int(in_period or 0) if frequency is not None and before else 0
        slow = []
        debts = rules.returns.when_spent == "negative"
        result = await connection.execute(batch_sql.WALLETS, {"partner": partner, "members": ids})
        for member_id, balance, pending, held, owed, referred in result:
            state = members[str(member_id)]
            state.balance, state.pending = int(balance or 0), int(pending or 0)
            state.held, state.owed = int(held or 0), int(owed or 0)
            if (debts and state.owed > 0) or (referred and rules.referral is not None):
                slow.append(str(member_id))
        tiers = self.ledger.coalition.tiers
        if self.tiers is not None and tiers is not None:
            standings = await tier_batch.load(
                connection, ids, tiers, self.ledger.coalition.partners, now
            )
            for member_id, standing in standings.items():
                members[member_id].standing = standing
        return slow

    def _awards(
        self,
        config: Partner,
        line: Prepared,
        state: _Member,
        now: datetime,
        extra: list[Promotion],
    ) -> tuple[list[Award], int]:
        """A line's awards and points (a purchase by the rules, or points given)."""
        if line.bought is None:
            assert line.points is not None
            return [Award("points", "points given", line.points)], line.points
        at = line.occurred_at or now
        tier, multiplier = None, Decimal(1)
        tiers = self.ledger.coalition.tiers
        if state.standing is not None and tiers is not None:
            rules = config.earning
            wanted = any(p.tier and p.in_force_at(at) for p in (*rules.promotions, *extra))
            if tiers.has_benefit_at(config.slug) or wanted:
                reached = state.standing.status(tiers, now)
                tier, multiplier = reached.slug, reached.multiplier_at(config.slug)
        context = earning.Member(
            tier=tier,
            tier_multiplier=multiplier,
            earned_here_before=state.before,
            purchases_in_period=state.in_period,
        )
        awards = earning.breakdown(config, line.bought, context, at, extra)
        return awards, earning.total(awards)

    async def _replays(
        self, connection: AsyncConnection, transfer_ids: list[int]
    ) -> dict[int, Earned]:
        """The first answers of these transfers, as ``Purchases._earned`` gives one."""
        transfers = await repository.transfers_by_id(connection, transfer_ids)
        legs = await repository.legs_of(connection, transfer_ids)
        kept = {
            int(row.transfer_id): row
            for row in await connection.execute(batch_sql.REPLAYED, {"transfers": transfer_ids})
        }
        answers = {}
        for transfer_id in transfer_ids:
            transfer = transfers[transfer_id]
            posting = Posting(transfer, tuple(legs[transfer_id]), replayed=True)
            row = kept.get(transfer_id)
            if row is None:
                answers[transfer_id] = Earned(
                    posting, (Award("points", "points given", transfer.points),)
                )
                continue
            awards = tuple(Award(r, text, p) for r, text, p in json.loads(row.breakdown))
            wallet = _wallet_of(json.loads(row.wallet)) if row.wallet else None
            answers[transfer_id] = Earned(posting, awards, row.matures_at is not None, wallet)
        return answers
