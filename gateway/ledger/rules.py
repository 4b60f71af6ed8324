"""The double-entry ledger's rules, free of storage: which legs each movement posts.

Every partner has its own pool. A transfer's legs sum to zero within each pool it
touches. Member wallets are the only accounts whose balances are kept on a row; the
system accounts (issuance, redemption, the operator's liquidity and fees) are derived
from their entries, so no posting ever waits on a shared row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from gateway.kernel.errors import DomainError, ErrorCode
from gateway.ledger.exchange import Quote


class AccountCode(Enum):
    WALLET = "wallet"  # a member's points in one pool
    ISSUANCE = "issuance"  # the partner's: points it has issued (negative over time)
    REDEMPTION = "redemption"  # the partner's: points members spent with it
    LIQUIDITY = "liquidity"  # the operator's: the side of each pool a conversion passes through
    FEES = "fees"  # the operator's: conversion fees
    HOLDS = "holds"  # the partner's: points held for redemptions not yet captured
    # A remote pool's members keep their points in the partner's own system: this account
    # stands in for their wallets there, so it holds what the gateway moved in, less out.
    REMOTE = "remote"
    BREAKAGE = "breakage"  # the partner's: points that expired unspent
    PENDING = "pending"  # the partner's: points earned but not spendable until a return window ends


SYSTEM_ACCOUNTS = tuple(code for code in AccountCode if code is not AccountCode.WALLET)


class TransferKind(Enum):
    EARN = "earn"
    REDEEM = "redeem"
    CONVERSION = "conversion"
    REVERSAL = "reversal"
    MERGE = "merge"  # a retired member's points moved to the member it was merged into
    HOLD = "hold"  # points set aside for a point-of-sale redemption
    CAPTURE = "capture"  # a hold completed, in full or in part (the rest released)
    RELEASE = "release"  # a hold voided or expired: its points back in the wallet
    EXPIRY = "expiry"  # points that expired, from the wallet to the pool's breakage
    GIFT = "gift"  # points one member gave another, in the same pool
    MATURE = "mature"  # pending points whose return window ended, now in the wallet
    CLAWBACK = "clawback"  # points of a returned purchase taken back


@dataclass(frozen=True)
class Leg:
    pool: str
    account: AccountCode
    amount: int  # signed: positive credits the account, negative debits it
    member_id: str | None = None  # a wallet leg's member, when not the transfer's member

    @property
    def is_wallet(self) -> bool:
        return self.account is AccountCode.WALLET


def assert_balanced(legs: Iterable[Leg]) -> None:
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        if leg.amount == 0:
            raise ValueError(f"a zero leg in pool {leg.pool}")
        totals[leg.pool] += leg.amount
    unbalanced = {pool: total for pool, total in totals.items() if total}
    if unbalanced:
        raise ValueError(f"legs do not balance per pool: {unbalanced}")


def holder(remote: bool) -> AccountCode:
    """Where a member's points sit in a pool: their wallet, or the partner's own system."""
    return AccountCode.REMOTE if remote else AccountCode.WALLET


def earn_legs(pool: str, points: int, remote: bool = False) -> list[Leg]:
    return [Leg(pool, AccountCode.ISSUANCE, -points), Leg(pool, holder(remote), points)]


def redeem_legs(pool: str, points: int, remote: bool = False) -> list[Leg]:
    return [Leg(pool, holder(remote), -points), Leg(pool, AccountCode.REDEMPTION, points)]


def conversion_legs(
    quote: Quote, source_remote: bool = False, target_remote: bool = False
) -> list[Leg]:
    """The currency-exchange pattern: each pool passes through the operator's liquidity."""
    legs = [
        Leg(quote.source, holder(source_remote), -quote.points),
        Leg(quote.source, AccountCode.LIQUIDITY, quote.net_points),
        Leg(quote.target, AccountCode.LIQUIDITY, -quote.received),
        Leg(quote.target, holder(target_remote), quote.received),
    ]
    if quote.fee:
        legs.insert(2, Leg(quote.source, AccountCode.FEES, quote.fee))
    return legs


def merge_legs(pool: str, retired: str, survivor: str, points: int) -> list[Leg]:
    """Move a retired member's whole wallet to the surviving member, in the same pool."""
    return [
        Leg(pool, AccountCode.WALLET, -points, retired),
        Leg(pool, AccountCode.WALLET, points, survivor),
    ]


def hold_legs(pool: str, points: int) -> list[Leg]:
    """The wallet's points move to the pool's holds account: no longer available."""
    return [Leg(pool, AccountCode.WALLET, -points), Leg(pool, AccountCode.HOLDS, points)]


def capture_legs(pool: str, held: int, captured: int) -> list[Leg]:
    """A hold of ``held`` points completed for ``captured``; the rest goes back."""
    legs = [Leg(pool, AccountCode.HOLDS, -held), Leg(pool, AccountCode.REDEMPTION, captured)]
    if held > captured:
        legs.append(Leg(pool, AccountCode.WALLET, held - captured))
    return legs


def release_legs(pool: str, held: int) -> list[Leg]:
    return [Leg(pool, AccountCode.HOLDS, -held), Leg(pool, AccountCode.WALLET, held)]


def expiry_legs(pool: str, points: int) -> list[Leg]:
    """Expired points leave the wallet for the partner's breakage account."""
    return [Leg(pool, AccountCode.WALLET, -points), Leg(pool, AccountCode.BREAKAGE, points)]


# The transfers no reversal undoes, and what to do instead (NOT_REVERSIBLE).
_NOT_REVERSIBLE = {
    TransferKind.REVERSAL: "A reversal cannot be reversed; post a new transfer instead.",
    TransferKind.MERGE: "Moving points between merged members cannot be reversed.",
    TransferKind.HOLD: "A hold is undone with voidRedemption, not reversed.",
    TransferKind.RELEASE: "A hold is undone with voidRedemption, not reversed.",
    # Two members' wallets: the receiver may have spent the points already.
    TransferKind.GIFT: "A gift cannot be reversed; the receiver can gift the points back.",
}


def check_reversible(kind: TransferKind) -> None:
    """Refuse (NOT_REVERSIBLE) to reverse a transfer of ``kind`` that no reversal undoes."""
    why = _NOT_REVERSIBLE.get(kind)
    if why is not None:
        raise DomainError(ErrorCode.NOT_REVERSIBLE, why, ("transfer_id",))


def reversal_legs(
    kind: TransferKind,
    legs: Sequence[Leg],
    total: int,
    points: int | None,
    reversed_before: int = 0,
) -> list[Leg]:
    """Legs that undo ``points`` more of ``legs`` (a transfer of ``total`` points of which
    earlier reversals took back ``reversed_before``); ``points`` None: all that is left.

    Partial reversals add up to the original, never beyond it. A conversion is undone in
    proportion: the member gets ``points`` source points back and returns the target
    points and the operator the fee in the same proportion, both counted on the running
    total so the parts add up exactly, rounded in the house's favour (target points up,
    the fee refund down); each pool's liquidity leg balances the pool.
    """
    check_reversible(kind)
    left = total - reversed_before
    if left <= 0:
        raise DomainError(
            ErrorCode.TRANSFER_ALREADY_REVERSED,
            "This transfer has already been reversed in full.",
            ("transfer_id",),
        )
    if points is None:
        points = left
    if points <= 0:
        raise DomainError(
            ErrorCode.AMOUNT_NOT_POSITIVE, "Points must be a positive whole number.", ("points",)
        )
    if points > left:
        raise DomainError(
            ErrorCode.AMOUNT_OUT_OF_BOUNDS,
            f"At most {left} points of this transfer can be reversed"
            + (f" ({reversed_before} of its {total} already were)." if reversed_before else "."),
            ("points",),
        )
    if points == total:
        return [Leg(leg.pool, leg.account, -leg.amount, leg.member_id) for leg in legs]
    if kind is TransferKind.CONVERSION:
        return _conversion_part(legs, total, reversed_before, reversed_before + points)
    sign = 1 if kind is TransferKind.EARN else -1
    return [
        Leg(
            leg.pool, leg.account, -sign * points if leg.is_wallet else sign * points, leg.member_id
        )
        for leg in legs
    ]


def _conversion_part(legs: Sequence[Leg], total: int, before: int, after: int) -> list[Leg]:
    """The legs undoing a conversion from ``before`` to ``after`` of its ``total`` source
    points: every leg but liquidity takes its share of the running total, rounded for the
    house; liquidity balances each pool."""

    def share(leg: Leg, reversed_points: int) -> int:
        # What of the leg the running total undoes, as a magnitude: a wallet credit (the
        # target points received) is taken back rounded up; a debit (the source points
        # paid, exact) and the fee are given back rounded down.
        magnitude = abs(leg.amount) * reversed_points
        up = leg.is_wallet and leg.amount > 0
        return -(-magnitude // total) if up else magnitude // total

    undone: list[Leg] = []
    for leg in legs:
        if leg.account is AccountCode.LIQUIDITY:
            continue
        amount = share(leg, after) - share(leg, before)
        if amount:
            sign = -1 if leg.amount > 0 else 1
            undone.append(Leg(leg.pool, leg.account, sign * amount, leg.member_id))
    for leg in legs:
        if leg.account is AccountCode.LIQUIDITY:
            rest = -sum(other.amount for other in undone if other.pool == leg.pool)
            if rest:
                undone.append(Leg(leg.pool, leg.account, rest, leg.member_id))
    return undone
