"""Returns of purchases: the points taken back, owed or left uncollected."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.earning.debts import Debts
from gateway.earning.pending import PENDING
from gateway.earning.tables import purchase_returns, purchases
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.validation import check_amount
from gateway.ledger import locks
from gateway.ledger import store as repository
from gateway.ledger.posting import Claim
from gateway.ledger.records import Posting
from gateway.ledger.rules import AccountCode, Leg, TransferKind


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


class Returns(Debts):
    """The returns part of the earning service."""

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
