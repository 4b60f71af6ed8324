"""What the service layer hands to its callers: plain, immutable records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from gateway.ledger.exchange import Quote
from gateway.ledger.rules import AccountCode, TransferKind

if TYPE_CHECKING:
    from gateway.ledger.posting import Claim


def scope(operation: str, owner: str, caller: str | None = None) -> str:
    """An idempotency key's scope: per operation and partner (or member), and per member
    when a member calls for themself (so their keys live apart from the partner's)."""
    return f"{operation}:{owner}" + (f":member:{caller}" if caller else "")


@dataclass(frozen=True)
class MemberRecord:
    id: str
    created_at: datetime
    erased_at: datetime | None = None  # the member's personal data was erased then


@dataclass(frozen=True)
class EnrolmentRecord:
    partner: str
    customer_id: str
    member_id: str
    created_at: datetime


@dataclass(frozen=True)
class WalletRecord:
    member_id: str
    pool: str
    balance: int  # available points: the wallet account's balance
    # Set on an answer's snapshot of the wallet as a call left it (and as its replays show
    # it): the figures then, rather than those at the time of reading.
    owed: int | None = None
    pending: int | None = None
    held: int | None = None


@dataclass(frozen=True)
class LegRecord:
    transfer_id: int
    pool: str
    account: AccountCode
    member_id: str | None
    amount: int
    balance_after: int | None


@dataclass(frozen=True)
class TransferRecord:
    id: int
    kind: TransferKind
    member_id: str | None
    partner: str
    to_partner: str | None
    points: int
    received_points: int | None
    purchase_amount: Decimal | None
    rate: Decimal | None
    fee: int | None
    reason: str | None
    reverses_id: int | None
    idempotency_key: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> TransferRecord:
        return cls(
            id=row.id,
            kind=TransferKind(row.kind),
            member_id=row.member_id,
            partner=row.partner,
            to_partner=row.to_partner,
            points=row.points,
            received_points=row.received_points,
            purchase_amount=Decimal(row.purchase_amount) if row.purchase_amount else None,
            rate=Decimal(row.rate) if row.rate else None,
            fee=row.fee,
            reason=row.reason,
            reverses_id=row.reverses_id,
            idempotency_key=row.idempotency_key,
            created_at=row.created_at,
        )


@dataclass(frozen=True)
class Posting:
    """The answer to a call that moves points; a retry with its key gets it again."""

    transfer: TransferRecord
    legs: tuple[LegRecord, ...]
    replayed: bool
    remote_balance: tuple[str, int] | None = None  # a remote pool's balance, as it answered
    # The wallet the posting credited, as it left it (held and owed then), where it was read.
    wallet: WalletRecord | None = None

    def balance_after(self, pool: str) -> int | None:
        for leg in self.legs:
            if leg.account is AccountCode.WALLET and leg.pool == pool:
                return leg.balance_after
        if self.remote_balance is not None and self.remote_balance[0] == pool:
            return self.remote_balance[1]
        return None


@dataclass(frozen=True)
class Enrolled:
    member: MemberRecord
    enrolment: EnrolmentRecord
    created: bool


@dataclass(frozen=True)
class MemberRef:
    """A member named by their id, or by a partner's own customer id for them."""

    id: str | None = None
    partner: str | None = None
    customer_id: str | None = None

    def canonical(self) -> dict[str, str]:
        if self.id is not None:
            return {"id": self.id}
        return {"partner": self.partner or "", "customer_id": self.customer_id or ""}


@dataclass(frozen=True)
class Draft:
    """A call to forward, as the service validated it."""

    kind: TransferKind  # EARN, REDEEM or CONVERSION
    claim: Claim  # the caller's idempotency scope, key and request fingerprint
    partner: str  # where points are earned or redeemed; a conversion's source
    points: int
    to_partner: str | None = None
    quote: Quote | None = None
    purchase_amount: Decimal | None = None
    reason: str | None = None
