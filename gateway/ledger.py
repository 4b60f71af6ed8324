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

from .errors import DomainError, ErrorCode
from .exchange import Quote


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


def reversal_legs(
    kind: TransferKind, legs: Sequence[Leg], total: int, points: int | None
) -> list[Leg]:
    """Legs that undo ``legs`` (a transfer of ``total`` points) in full, or ``points`` of it.

    A conversion is reversed in full only: its two pools moved different amounts
    and any part of it would need a new rate.
    """
    if kind is TransferKind.REVERSAL:
        raise DomainError(
            ErrorCode.NOT_REVERSIBLE,
            "A reversal cannot be reversed; post a new transfer instead.",
            ("transfer_id",),
        )
    if kind is TransferKind.MERGE:
        raise DomainError(
            ErrorCode.NOT_REVERSIBLE,
            "Moving points between merged members cannot be reversed.",
            ("transfer_id",),
        )
    if kind in (TransferKind.HOLD, TransferKind.RELEASE):
        raise DomainError(
            ErrorCode.NOT_REVERSIBLE,
            "A hold is undone with voidRedemption, not reversed.",
            ("transfer_id",),
        )
    if points is None or points == total:
        return [Leg(leg.pool, leg.account, -leg.amount, leg.member_id) for leg in legs]
    if points <= 0:
        raise DomainError(
            ErrorCode.AMOUNT_NOT_POSITIVE, "Points must be a positive whole number.", ("points",)
        )
    if kind is TransferKind.CONVERSION:
        raise DomainError(
            ErrorCode.NOT_REVERSIBLE,
            "A conversion can only be reversed in full; leave out points.",
            ("points",),
        )
    if points > total:
        raise DomainError(
            ErrorCode.AMOUNT_OUT_OF_BOUNDS,
            f"At most {total} points of this transfer can be reversed.",
            ("points",),
        )
    sign = 1 if kind is TransferKind.EARN else -1
    return [
        Leg(
            leg.pool, leg.account, -sign * points if leg.is_wallet else sign * points, leg.member_id
        )
        for leg in legs
    ]
