"""Purchases: what one earns (quoted or posted), its replay, and the wallet it leaves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning import rules as earning
from gateway.earning.debts import Debts
from gateway.earning.pending import AVAILABLE, PENDING
from gateway.earning.promotions import in_force
from gateway.earning.referrals import Referrals
from gateway.earning.rules import Award, Line
from gateway.earning.tables import purchases
from gateway.holds.service import AUTHORIZED
from gateway.holds.tables import holds
from gateway.kernel.errors import DomainError
from gateway.kernel.validation import MAX_REASON_LENGTH, check_amount, clean_text
from gateway.ledger import store as repository
from gateway.ledger.records import Draft, MemberRef, Posting, WalletRecord
from gateway.ledger.rules import AccountCode, Leg, TransferKind, earn_legs
from gateway.ledger.tables import members
from partners.config.earning import Promotion


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


class Purchases(Debts, Referrals):
    """The purchases part of the earning service."""

    tiers: TierLookup | None

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
        occurred_at: datetime | None = None,
    ) -> Earned:
        """Earn for a purchase: its rules apply at ``occurred_at`` (when it happened; an
        import's lines say) or now; the points are posted now."""
        ledger = self.ledger
        config = ledger.partner(partner)
        reason = clean_text(reason, "reason", MAX_REASON_LENGTH, False)
        bought = self._purchase(amount, lines)
        occurred_at = earning.occurred(occurred_at, ledger.clock())
        request = {
            "member": member.canonical(),
            "purchase": {
                "amount": str(bought.amount),
                "lines": [[str(x.amount), x.sku, x.category] for x in bought.lines],
            },
            "reason": reason,
            **(_occurred(occurred_at) or {}),
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
            at = occurred_at or now
            extra = await in_force(connection, partner, at)
            context = await self._context(connection, live, partner, now, extra, at)
            awards = earning.breakdown(config, bought, context, at, extra)
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
            occurred = {"occurred_at": occurred_at.isoformat()} if occurred_at else None
            posting = await ledger.kernel.post(
                connection, claim, values, live, legs, None, occurred
            )
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
        at: datetime | None = None,
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
        at = at or now
        wanted = any(p.tier and p.in_force_at(at) for p in (*rules.promotions, *promotions))
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
                # A literal, so that the partial index of pending purchases serves it.
                purchases.c.status == sa.literal_column(f"'{PENDING}'"),
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


def _occurred(at: datetime | None) -> dict[str, str] | None:
    """When a purchase happened, as its request and its event record it (when given): in
    UTC, so that one moment written with another offset is the same request."""
    return {"occurred_at": at.astimezone(UTC).isoformat()} if at is not None else None


def _label(value: str | None, field: str) -> str | None:
    return clean_text(value, field, 64, False)
