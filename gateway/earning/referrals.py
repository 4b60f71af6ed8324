"""Referrals: members' codes, who referred whom, and the bonuses at the first purchase."""

from __future__ import annotations

import secrets
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning.rules import Award
from gateway.earning.tables import referral_codes, referrals
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.kernel.schema import insert_for
from gateway.kernel.validation import clean_text
from gateway.ledger import locks
from gateway.ledger.rules import TransferKind, earn_legs
from gateway.ledger.service import LedgerService

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


class Referrals:
    """The referrals part of the earning service."""

    ledger: LedgerService

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
                insert_for(connection, referral_codes)
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
            locks.check_not_erased(connection, live, ("member",))
            if live == referrer_live:
                raise DomainError(
                    ErrorCode.SELF_REFERRAL, "A member cannot refer themself.", ("code",)
                )
            result = await connection.execute(
                insert_for(connection, referrals)
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
