"""Earning for purchases and activities, pending points, returns and referrals.

Each call is one unit of work on top of the ledger service's posting machinery, so the
ledger's rules hold: idempotency keys, balanced legs, no hot rows. A purchase earns one EARN
transfer whose points are the sum of the rules' awards (see ``gateway/earning.py``); the
awards are kept on the purchase so a retry answers with the same breakdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning import rules as earning
from gateway.earning.promotions import in_force
from gateway.earning.rules import Award, Line
from gateway.earning.tables import (
    activity_claims,
    purchase_returns,
    purchases,
    referral_codes,
    referrals,
    wallet_debts,
)
from gateway.holds.service import AUTHORIZED
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.validation import MAX_REASON_LENGTH, check_amount, clean_text, invalid
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.posting import Claim
from gateway.ledger.records import Draft, MemberRef, Posting, WalletRecord
from gateway.ledger.rules import AccountCode, Leg, TransferKind, earn_legs
from gateway.ledger.service import LedgerService
from gateway.ledger.tables import holds, members
from partners.config.earning import Promotion

log = logging.getLogger("gateway.earning.service")

PENDING, AVAILABLE = "pending", "available"
MAX_BULK = 10_000
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


class TierLookup(Protocol):
    """What earning needs of the tiers: the member's tier now, inside the caller's
    transaction (``gateway.tiers.service.TierService.current``)."""

    async def current(
        self, connection: AsyncConnection, member_id: str, now: datetime
    ) -> Any | None: ...


@dataclass(frozen=True)
class Earned:
    """An earn's answer. ``awards``: every award the call paid (a referral bonus paid in
    the same transaction too, posted as its own transfer); ``wallet``: the member's wallet
    as the call left it, after every posting it made (a debt repaid, a referral bonus)."""

    posting: Posting
    awards: tuple[Award, ...]
    pending: bool = False
    wallet: WalletRecord | None = None


@dataclass(frozen=True)
class BulkLine:
    """One purchase of a point-of-sale batch: points, or a purchase (amount and lines)."""

    member: MemberRef
    idempotency_key: str
    points: int | None = None
    amount: Decimal | None = None
    lines: list[Line] = field(default_factory=list)
    reason: str | None = None


@dataclass(frozen=True)
class Returned:
    """What a return took back: from the wallet (or pending points), into the member's debt
    (a wallet below zero), or nothing (capped: recorded as uncollected)."""

    purchase_points: int
    taken: int
    owed: int
    uncollected: int
    transfer: Posting | None
    replayed: bool


def _insert(connection: AsyncConnection, table: sa.Table) -> Any:
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)


class EarningService:
    def __init__(self, ledger: LedgerService, tiers: TierLookup | None = None) -> None:
        self.ledger = ledger
        self.tiers = tiers

    # ---- purchases -------------------------------------------------------------------------

    async def quote(
        self, partner: str, member: MemberRef | None, amount: Decimal | None, lines: list[Line]
    ) -> list[Award]:
        """What the purchase would earn now, rule by rule; nothing is posted."""
        config = self.ledger.partner(partner)
        bought = self._purchase(amount, lines)
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> tuple[earning.Member, list[Promotion]]:
            extra = await in_force(connection, partner, now)
            if member is None:
                return earning.Member(), extra
            member_id = await self.ledger.kernel.resolve(connection, member)
            context = await self._context(connection, member_id, partner, now, extra)
            return context, extra

        context, extra = await self.ledger.uow.read(work)
        awards = earning.breakdown(config, bought, context, now, extra)
        earning.total(awards)
        return awards

    async def earn(
        self,
        partner: str,
        member: MemberRef,
        idempotency_key: str,
        amount: Decimal | None,
        lines: list[Line],
        reason: str | None = None,
    ) -> Earned:
        ledger = self.ledger
        config = ledger.partner(partner)
        reason = clean_text(reason, "reason", MAX_REASON_LENGTH, False)
        bought = self._purchase(amount, lines)
        request = {
            "member": member.canonical(),
            "purchase": {
                "amount": str(bought.amount),
                "lines": [[str(x.amount), x.sku, x.category] for x in bought.lines],
            },
            "reason": reason,
        }
        claim = ledger.kernel.claim(f"earn:{partner}", idempotency_key, request)
        if config.pool.remote:
            awards = await self.quote(partner, member, bought.amount, list(bought.lines))
            draft = Draft(
                TransferKind.EARN,
                claim,
                partner,
                earning.total(awards),
                purchase_amount=bought.amount,
                reason=reason,
            )
            return Earned(await ledger.remote.run(draft, member), tuple(awards))

        async def work(connection: AsyncConnection) -> Earned:
            # No read of the key first: the transfer insert claims it (see LedgerService.earn).
            live = await ledger.kernel.lock_member(connection, member)
            now = ledger.clock()
            extra = await in_force(connection, partner, now)
            context = await self._context(connection, live, partner, now, extra)
            awards = earning.breakdown(config, bought, context, now, extra)
            points = earning.total(awards)
            window = config.earning.return_window
            pending = window.total_seconds() > 0
            legs = (
                [
                    Leg(partner, AccountCode.ISSUANCE, -points),
                    Leg(partner, AccountCode.PENDING, points),
                ]
                if pending
                else earn_legs(partner, points)
            )
            values = {
                "kind": TransferKind.EARN.value,
                "partner": partner,
                "points": points,
                "purchase_amount": str(bought.amount),
                "reason": reason,
            }
            posting = await ledger.kernel.post(connection, claim, values, live, legs)
            if posting.replayed:
                return await self._earned(connection, posting)
            if not pending:
                await self._repay(
                    connection, live, partner, points, f"purchase {posting.transfer.id}"
                )
            referral = await self._reward_referral(connection, live, partner, bought.amount)
            if referral is not None:
                awards.append(referral)
            wallet = await self._wallet(connection, live, partner, points if pending else 0)
            await connection.execute(
                sa.insert(purchases).values(
                    transfer_id=posting.transfer.id,
                    member_id=live,
                    partner=partner,
                    receipt=claim.key,
                    amount=str(bought.amount),
                    points=points,
                    breakdown=json.dumps([[a.rule, a.description, a.points] for a in awards]),
                    wallet=json.dumps(_wallet_json(wallet)),
                    status=PENDING if pending else AVAILABLE,
                    matures_at=now + window if pending else None,
                    returned_amount="0",
                    clawed_back=0,
                    uncollected=0,
                    created_at=now,
                )
            )
            return Earned(posting, tuple(awards), pending, wallet)

        return await ledger.uow.write(work)

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

    def _purchase(self, amount: Decimal | None, lines: list[Line]) -> earning.Purchase:
        """The purchase, checked; errors name ``amount``, ``lines.<i>.<field>`` or the whole
        ``purchase``."""
        checked = []
        for index, x in enumerate(lines):
            try:
                sku, category = _label(x.sku, "sku"), _label(x.category, "category")
                checked.append(Line(check_amount(x.amount, "amount"), sku, category))
            except DomainError as error:
                raise error.within("lines", str(index)) from None
        total = check_amount(amount, "amount") if amount is not None else None
        return earning.purchase(total, checked)

    async def _context(
        self,
        connection: AsyncConnection,
        member_id: str,
        partner: str,
        now: datetime,
        promotions: list[Promotion],
    ) -> earning.Member:
        """What the rules need of the member: whether they bought at ``partner`` before
        (bonuses do not count), how often in the frequency bonus's period, and their tier
        (only read when a tier multiplier or a tier's promotion could apply)."""
        ids = sa.select(members.c.id).where(
            sa.or_(members.c.id == member_id, members.c.merged_into == member_id)
        )
        mine = sa.and_(purchases.c.member_id.in_(ids), purchases.c.partner == partner)
        before = await connection.scalar(sa.select(sa.exists().where(mine)))
        count: int | None = 0
        rules = self.ledger.coalition.partners[partner].earning
        if rules.frequency_bonus is not None and before:
            since = rules.frequency_bonus.period.start(now)
            count = await connection.scalar(
                sa.select(sa.func.count())
                .select_from(purchases)
                .where(mine, purchases.c.created_at >= since)
            )
        tier, multiplier = None, Decimal(1)
        tiers = self.ledger.coalition.tiers
        wanted = any(p.tier and p.in_force_at(now) for p in (*rules.promotions, *promotions))
        if (
            self.tiers is not None
            and tiers is not None
            and (tiers.has_benefit_at(partner) or wanted)
        ):
            status = await self.tiers.current(connection, member_id, now)
            if status is not None:
                tier, multiplier = status.tier.slug, status.tier.multiplier_at(partner)
        return earning.Member(
            tier=tier,
            tier_multiplier=multiplier,
            earned_here_before=bool(before),
            purchases_in_period=int(count or 0),
        )

    async def _earned(self, connection: AsyncConnection, posting: Posting) -> Earned:
        """A replay's answer: the first one, as the purchase kept it. (Its ``pending`` says
        whether the points were pending when earned, as the first answer did.)"""
        row = (
            await connection.execute(
                sa.select(purchases.c.breakdown, purchases.c.wallet, purchases.c.matures_at).where(
                    purchases.c.transfer_id == posting.transfer.id
                )
            )
        ).first()
        if row is None:  # an earn of plain points under this key
            return Earned(posting, (Award("points", "points given", posting.transfer.points),))
        awards = tuple(
            Award(rule, text, points) for rule, text, points in json.loads(row.breakdown)
        )
        wallet = _wallet_of(json.loads(row.wallet)) if row.wallet else None
        return Earned(posting, awards, row.matures_at is not None, wallet)

    async def _wallet(
        self, connection: AsyncConnection, member_id: str, pool: str, pending_now: int
    ) -> WalletRecord:
        """The member's wallet in ``pool`` now, inside the caller's transaction, with
        ``pending_now`` pending points not yet recorded on a purchase."""
        balance = await repository.wallet_balance(connection, member_id, pool)
        pending = await connection.scalar(
            sa.select(sa.func.sum(purchases.c.points - purchases.c.clawed_back)).where(
                purchases.c.member_id == member_id,
                purchases.c.partner == pool,
                purchases.c.status == PENDING,
            )
        )
        held = await connection.scalar(
            sa.select(sa.func.sum(holds.c.points)).where(
                holds.c.member_id == member_id,
                holds.c.partner == pool,
                holds.c.status == AUTHORIZED,
            )
        )
        return WalletRecord(
            member_id,
            pool,
            balance,
            owed=await self._debt(connection, member_id, pool),
            pending=int(pending or 0) + pending_now,
            held=int(held or 0),
        )

    # ---- pending points --------------------------------------------------------------------

    async def mature_due(self, limit: int = 1000) -> int:
        """Move the points of purchases whose return window ended into the wallets. Safe to
        run twice or concurrently: each purchase flips from pending once."""
        now = self.ledger.clock()

        async def due(connection: AsyncConnection) -> list[Any]:
            result = await connection.execute(
                sa.select(purchases.c.id)
                .where(purchases.c.status == PENDING, purchases.c.matures_at <= now)
                .order_by(purchases.c.matures_at)
                .limit(limit)
            )
            return [row.id for row in result]

        matured = 0
        for purchase_id in await self.ledger.uow.read(due):

            async def mature(connection: AsyncConnection, purchase_id: int = purchase_id) -> bool:
                return await self._mature(connection, purchase_id)

            if await self.ledger.uow.write(mature):
                matured += 1
        return matured

    async def _mature(self, connection: AsyncConnection, purchase_id: int) -> bool:
        flipped = await connection.execute(
            sa.update(purchases)
            .where(purchases.c.id == purchase_id, purchases.c.status == PENDING)
            .values(status=AVAILABLE)
            .returning(
                purchases.c.member_id,
                purchases.c.partner,
                purchases.c.points,
                purchases.c.clawed_back,
            )
        )
        row = flipped.first()
        if row is None:
            return False
        remaining = row.points - row.clawed_back
        if remaining > 0:
            member_id = await locks.live_member(connection, row.member_id)
            claim = self.ledger.kernel.claim("mature", str(purchase_id), {"purchase": purchase_id})
            values = {
                "kind": TransferKind.MATURE.value,
                "partner": row.partner,
                "points": remaining,
                "reason": "return window ended",
            }
            legs = [
                Leg(row.partner, AccountCode.PENDING, -remaining),
                Leg(row.partner, AccountCode.WALLET, remaining),
            ]
            await self.ledger.kernel.post(connection, claim, values, member_id, legs)
            assert member_id is not None
            await self._repay(
                connection, member_id, row.partner, remaining, f"purchase {purchase_id}"
            )
        return True

    async def figures(self, member_ids: Sequence[str]) -> dict[str, dict[str, tuple[int, int]]]:
        """Per member and pool: (pending points, points owed), for those that have any."""

        async def work(connection: AsyncConnection) -> dict[str, dict[str, tuple[int, int]]]:
            found: dict[str, dict[str, tuple[int, int]]] = {m: {} for m in member_ids}
            pending = await connection.execute(
                sa.select(
                    purchases.c.member_id,
                    purchases.c.partner,
                    sa.func.sum(purchases.c.points - purchases.c.clawed_back).label("points"),
                )
                .where(purchases.c.member_id.in_(member_ids), purchases.c.status == PENDING)
                .group_by(purchases.c.member_id, purchases.c.partner)
            )
            for row in pending:
                found[row.member_id][row.partner] = (int(row.points or 0), 0)
            debts = await connection.execute(
                sa.select(wallet_debts).where(
                    wallet_debts.c.member_id.in_(member_ids), wallet_debts.c.owed > 0
                )
            )
            for row in debts:
                waiting, _ = found[row.member_id].get(row.pool, (0, 0))
                found[row.member_id][row.pool] = (waiting, int(row.owed))
            return found

        return await self.ledger.uow.read(work)

    # ---- returns ---------------------------------------------------------------------------

    async def return_purchase(
        self, partner: str, receipt: str, amount: Decimal, idempotency_key: str
    ) -> Returned:
        """Take back the points of ``amount`` of a purchase (``receipt``: its earn's key).

        The points taken are ``floor(points * returned / amount)`` less what earlier returns
        took, so returning everything in parts takes back every point. Pending points are
        cancelled; spent ones are owed (a wallet below zero, down to the partner's limit, paid
        back by the next earns there) or, beyond it or with ``when_spent = "cap"``, recorded
        as uncollected.
        """
        ledger = self.ledger
        config = ledger.partner(partner)
        amount = check_amount(amount, "amount")
        request = {"receipt": receipt, "amount": str(amount)}
        claim = ledger.kernel.claim(f"return:{partner}", idempotency_key, request)

        async def work(connection: AsyncConnection) -> Returned:
            done = await self._returned(connection, claim)
            if done is not None:
                return done
            query = sa.select(purchases).where(
                purchases.c.partner == partner, purchases.c.receipt == receipt
            )
            if connection.dialect.name == "postgresql":
                query = query.with_for_update()
            bought = (await connection.execute(query)).first()
            if bought is None:
                raise DomainError(
                    ErrorCode.UNKNOWN_PURCHASE,
                    f"No purchase with receipt {shown(receipt)} earned at '{partner}'.",
                    ("receipt",),
                )
            returned = Decimal(bought.returned_amount) + amount
            if returned > Decimal(bought.amount):
                raise DomainError(
                    ErrorCode.RETURN_EXCEEDS_PURCHASE,
                    f"Only {Decimal(bought.amount) - Decimal(bought.returned_amount)} of this "
                    "purchase is left to return.",
                    ("amount",),
                )
            target = int(
                (Decimal(bought.points) * returned / Decimal(bought.amount)).quantize(
                    Decimal(1), ROUND_FLOOR
                )
            )
            due = target - bought.clawed_back
            member_id = await locks.live_member(connection, bought.member_id)
            assert member_id is not None
            taken, owed, uncollected = 0, 0, 0
            account = AccountCode.WALLET
            if bought.status == PENDING:
                taken, account = due, AccountCode.PENDING
            else:
                balance = await repository.wallet_balance(connection, member_id, partner)
                taken = min(due, balance)
                short = due - taken
                policy = config.earning.returns
                if policy.when_spent == "negative" and short:
                    debt = await self._debt(connection, member_id, partner)
                    owed = max(0, min(short, policy.negative_limit - debt))
                uncollected = short - owed
            posting = None
            if taken:
                values = {
                    "kind": TransferKind.CLAWBACK.value,
                    "partner": partner,
                    "points": taken,
                    "reason": f"return of {amount} of purchase {bought.transfer_id}",
                }
                legs = [Leg(partner, account, -taken), Leg(partner, AccountCode.ISSUANCE, taken)]
                posting = await ledger.kernel.post(connection, claim, values, member_id, legs)
            if owed:
                await self._add_debt(connection, member_id, partner, owed)
            await connection.execute(
                sa.update(purchases)
                .where(purchases.c.id == bought.id)
                .values(
                    returned_amount=str(returned),
                    clawed_back=target,
                    uncollected=purchases.c.uncollected + uncollected,
                )
            )
            await connection.execute(
                sa.insert(purchase_returns).values(
                    purchase_id=bought.id,
                    **claim.columns(),
                    amount=str(amount),
                    taken=taken,
                    owed=owed,
                    uncollected=uncollected,
                    transfer_id=posting.transfer.id if posting else None,
                    created_at=ledger.clock(),
                )
            )
            return Returned(bought.points, taken, owed, uncollected, posting, False)

        try:
            return await ledger.uow.write(work)
        except IntegrityError:
            # A racing retry with the same key recorded its return first: answer as it did.
            found = await ledger.uow.read(lambda c: self._returned(c, claim))
            if found is None:
                raise
            return found

    async def _returned(self, connection: AsyncConnection, claim: Claim) -> Returned | None:
        row = (
            await connection.execute(
                sa.select(purchase_returns, purchases.c.points)
                .join(purchases, purchases.c.id == purchase_returns.c.purchase_id)
                .where(
                    purchase_returns.c.idempotency_scope == claim.scope,
                    purchase_returns.c.idempotency_key == claim.key,
                )
            )
        ).first()
        if row is None:
            return None
        if row.request_hash != claim.fingerprint:
            raise DomainError(
                ErrorCode.IDEMPOTENCY_KEY_REUSED,
                "This idempotency key was used for a different request.",
                ("idempotency_key",),
            )
        posting = None
        if row.transfer_id is not None:
            transfer = (await repository.transfers_by_id(connection, [row.transfer_id]))[
                row.transfer_id
            ]
            legs = await repository.legs_of(connection, [row.transfer_id])
            posting = Posting(transfer, tuple(legs[row.transfer_id]), replayed=True)
        return Returned(row.points, row.taken, row.owed, row.uncollected, posting, True)

    async def _debt(self, connection: AsyncConnection, member_id: str, pool: str) -> int:
        value = await connection.scalar(
            sa.select(wallet_debts.c.owed).where(
                wallet_debts.c.member_id == member_id, wallet_debts.c.pool == pool
            )
        )
        return int(value or 0)

    async def _add_debt(
        self, connection: AsyncConnection, member_id: str, pool: str, points: int
    ) -> None:
        statement = _insert(connection, wallet_debts).values(
            member_id=member_id, pool=pool, owed=points
        )
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=["member_id", "pool"],
                set_={"owed": wallet_debts.c.owed + points},
            )
        )

    async def _repay(
        self, connection: AsyncConnection, member_id: str, pool: str, earned: int, what: str
    ) -> None:
        """Points just credited pay back first what the member owes the pool. Only a partner
        whose returns go below zero has debts (one switched to "cap" since keeps its old
        debts, unpaid, until it switches back)."""
        if self.ledger.coalition.partners[pool].earning.returns.when_spent != "negative":
            return
        query = sa.select(wallet_debts.c.owed).where(
            wallet_debts.c.member_id == member_id, wallet_debts.c.pool == pool
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        paid = min(int(await connection.scalar(query) or 0), earned)
        if paid <= 0:
            return
        await connection.execute(
            sa.update(wallet_debts)
            .where(wallet_debts.c.member_id == member_id, wallet_debts.c.pool == pool)
            .values(owed=wallet_debts.c.owed - paid)
        )
        request = {"member": member_id, "points": paid}
        claim = self.ledger.kernel.claim("repay", f"{pool}:{what}", request)
        values = {
            "kind": TransferKind.CLAWBACK.value,
            "partner": pool,
            "points": paid,
            "reason": f"paying back points owed after a return ({what})",
        }
        legs = [Leg(pool, AccountCode.WALLET, -paid), Leg(pool, AccountCode.ISSUANCE, paid)]
        await self.ledger.kernel.post(connection, claim, values, member_id, legs)

    # ---- activities ------------------------------------------------------------------------

    async def record_activity(
        self, partner: str, member: MemberRef, kind: str, idempotency_key: str
    ) -> Posting:
        """Points for an engagement activity (survey, review, social share), at most ``cap``
        times per member and period."""
        ledger = self.ledger
        config = ledger.partner(partner)
        rule = config.earning.activity(kind)
        if rule is None:
            offered = ", ".join(a.kind for a in config.earning.activities) or "none"
            raise DomainError(
                ErrorCode.UNKNOWN_ACTIVITY,
                f"'{partner}' pays no points for {shown(kind)} (offered: {offered}).",
                ("activity",),
            )
        if config.pool.remote:
            raise DomainError(
                ErrorCode.NOT_AVAILABLE_AT_REMOTE_POOL,
                f"'{partner}' keeps its points in its own system: record activities there.",
                ("partner",),
            )
        request = {"member": member.canonical(), "activity": kind}
        claim = ledger.kernel.claim(f"activity:{partner}", idempotency_key, request)

        async def work(connection: AsyncConnection) -> Posting:
            replay = await ledger.kernel.replay(connection, claim)
            if replay is not None:
                return replay
            live = await ledger.kernel.lock_member(connection, member)
            period = rule.period.start(ledger.clock())

            async def take_one(connection: AsyncConnection, transfer_id: int) -> None:
                await self._count_activity(connection, live, partner, kind, period, rule.cap)

            values = {
                "kind": TransferKind.EARN.value,
                "partner": partner,
                "points": rule.points,
                "reason": f"activity: {kind}",
            }
            return await ledger.kernel.post(
                connection, claim, values, live, earn_legs(partner, rule.points), take_one
            )

        return await ledger.uow.write(work)

    async def _count_activity(
        self,
        connection: AsyncConnection,
        member_id: str,
        partner: str,
        kind: str,
        period: datetime,
        cap: int,
    ) -> None:
        statement = _insert(connection, activity_claims).values(
            member_id=member_id, partner=partner, kind=kind, period_start=period, count=1
        )
        result = await connection.execute(
            statement.on_conflict_do_update(
                index_elements=["member_id", "partner", "kind", "period_start"],
                set_={"count": activity_claims.c.count + 1},
                where=activity_claims.c.count < cap,
            )
        )
        if not result.rowcount:
            raise DomainError(
                ErrorCode.ACTIVITY_CAP_REACHED,
                f"'{partner}' pays for {kind} at most {cap} times per period; try again in the "
                "next one.",
                ("activity",),
            )

    # ---- referrals -------------------------------------------------------------------------

    async def referral_code(self, member_id: str) -> str:
        """The member's referral code, made on first use."""

        async def work(connection: AsyncConnection) -> str:
            found = await connection.scalar(
                sa.select(referral_codes.c.code).where(referral_codes.c.member_id == member_id)
            )
            if found is not None:
                return str(found)
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
            await connection.execute(
                _insert(connection, referral_codes)
                .values(member_id=member_id, code=code)
                .on_conflict_do_nothing(index_elements=["member_id"])
            )
            stored = await connection.scalar(
                sa.select(referral_codes.c.code).where(referral_codes.c.member_id == member_id)
            )
            return str(stored)

        return await self.ledger.uow.write(work)

    async def apply_referral(self, member_id: str, code: str) -> str:
        """Record that ``code``'s owner referred the member; the referrer's member id."""
        cleaned = clean_text(code, "code", 16, True)
        assert cleaned is not None

        async def work(connection: AsyncConnection) -> str:
            referrer = await connection.scalar(
                sa.select(referral_codes.c.member_id).where(
                    referral_codes.c.code == cleaned.upper()
                )
            )
            if referrer is None:
                raise DomainError(
                    ErrorCode.UNKNOWN_REFERRAL_CODE, "No member has this referral code.", ("code",)
                )
            locked = await locks.lock_members(connection, [member_id, referrer])
            live, referrer_live = locked.get(member_id), locked.get(referrer)
            if live is None or referrer_live is None:
                raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member",))
            if live == referrer_live:
                raise DomainError(
                    ErrorCode.SELF_REFERRAL, "A member cannot refer themself.", ("code",)
                )
            result = await connection.execute(
                _insert(connection, referrals)
                .values(referred_id=live, referrer_id=referrer_live, created_at=self.ledger.clock())
                .on_conflict_do_nothing(index_elements=["referred_id"])
            )
            if not result.rowcount:
                raise DomainError(
                    ErrorCode.ALREADY_REFERRED,
                    "This member was already referred; a referral is recorded once.",
                    ("code",),
                )
            return referrer_live

        return await self.ledger.uow.write(work)

    async def _reward_referral(
        self, connection: AsyncConnection, member_id: str, partner: str, amount: Decimal
    ) -> Award | None:
        """At the referred member's first qualifying purchase: both bonuses, once; the
        referred member's award (None when none was paid)."""
        rule = self.ledger.coalition.partners[partner].earning.referral
        if rule is None or amount < rule.min_purchase:
            return None
        claimed = await connection.execute(
            sa.update(referrals)
            .where(referrals.c.referred_id == member_id, referrals.c.rewarded_at.is_(None))
            .values(rewarded_at=self.ledger.clock(), rewarded_partner=partner)
            .returning(referrals.c.referrer_id)
        )
        row = claimed.first()
        if row is None:
            return None
        referrer = await locks.live_member(connection, row.referrer_id)
        for who, points, role in (
            (member_id, rule.referred_points, "referred"),
            (referrer, rule.referrer_points, "referrer"),
        ):
            assert who is not None
            claim = self.ledger.kernel.claim(f"referral:{partner}", f"{role}:{member_id}", {})
            values = {
                "kind": TransferKind.EARN.value,
                "partner": partner,
                "points": points,
                "reason": f"referral bonus ({role})",
            }
            await self.ledger.kernel.post(
                connection, claim, values, who, earn_legs(partner, points)
            )
        return Award("referral", "referral bonus (referred)", rule.referred_points)


def _wallet_json(wallet: WalletRecord) -> dict[str, Any]:
    return {
        "member": wallet.member_id,
        "pool": wallet.pool,
        "balance": wallet.balance,
        "owed": wallet.owed,
        "pending": wallet.pending,
        "held": wallet.held,
    }


def _wallet_of(data: dict[str, Any]) -> WalletRecord:
    return WalletRecord(
        data["member"],
        data["pool"],
        data["balance"],
        owed=data["owed"],
        pending=data["pending"],
        held=data["held"],
    )


def _label(value: str | None, field: str) -> str | None:
    return clean_text(value, field, 64, False)
