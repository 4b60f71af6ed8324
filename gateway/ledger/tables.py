"""The ledger's tables. Alembic migrations in ``gateway/migrations`` create them.

``transfers`` and ``entries`` are append-only: database triggers refuse UPDATE and DELETE.
Only a member wallet row carries a balance, kept equal to the sum of its entries.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment


class Member(SQLModel, table=True):
    """A coalition member. A member merged into another keeps its row, pointing at the
    survivor, so that its id (and its history) still resolves."""

    __tablename__ = "members"

    id: str = Field(primary_key=True, max_length=36)
    created_at: datetime = Field(sa_type=Moment)
    merged_into: str | None = Field(default=None, max_length=36)
    merged_at: datetime | None = Field(default=None, sa_type=Moment)


class Enrolment(SQLModel, table=True):
    """A partner's own customer id for a member. SSO identities get a table of their own."""

    __tablename__ = "enrolments"

    partner: str = Field(primary_key=True, max_length=32)
    customer_id: str = Field(primary_key=True, max_length=128)
    member_id: str = Field(foreign_key="members.id", index=True, max_length=36)
    created_at: datetime = Field(sa_type=Moment)


class Account(SQLModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = (
        sa.Index(
            "ux_accounts_wallet",
            "member_id",
            "pool",
            unique=True,
            postgresql_where=sa.text("member_id IS NOT NULL"),
            sqlite_where=sa.text("member_id IS NOT NULL"),
        ),
        sa.Index(
            "ux_accounts_system",
            "pool",
            "code",
            unique=True,
            postgresql_where=sa.text("member_id IS NULL"),
            sqlite_where=sa.text("member_id IS NULL"),
        ),
        sa.CheckConstraint("code <> 'wallet' OR balance >= 0", name="ck_wallet_not_negative"),
        sa.CheckConstraint(
            "(code = 'wallet') = (member_id IS NOT NULL)", name="ck_wallet_has_member"
        ),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    pool: str = Field(max_length=32)
    code: str = Field(max_length=16)
    member_id: str | None = Field(default=None, foreign_key="members.id", max_length=36)
    balance: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))


class Transfer(SQLModel, table=True):
    __tablename__ = "transfers"
    __table_args__ = (
        sa.UniqueConstraint(
            "idempotency_scope", "idempotency_key", name="ux_transfers_idempotency"
        ),
        sa.Index("ix_transfers_reverses", "reverses_id"),
        sa.Index("ix_transfers_member_created", "member_id", "created_at"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    kind: str = Field(max_length=16)
    member_id: str | None = Field(default=None, foreign_key="members.id", max_length=36)
    partner: str = Field(max_length=32)
    to_partner: str | None = Field(default=None, max_length=32)
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    received_points: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    purchase_amount: str | None = Field(default=None, max_length=40)
    rate: str | None = Field(default=None, max_length=40)
    fee: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    reason: str | None = Field(default=None, max_length=500)
    reverses_id: int | None = Field(
        default=None,
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=True),
    )
    idempotency_scope: str = Field(max_length=80)
    idempotency_key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=Moment)


class ReversedTotal(SQLModel, table=True):
    """How much of a transfer its reversals took back so far (a transfer may be reversed in
    parts that add up to it, never beyond): one row per reversed transfer, raised by each
    reversal in its transaction, so the next one reads one row, not every earlier reversal.
    ``last_reversal_id``: the latest of them (``reversedBy``)."""

    __tablename__ = "reversed_totals"
    __table_args__ = (sa.CheckConstraint("points > 0", name="ck_reversed_positive"),)

    transfer_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), primary_key=True)
    )
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    last_reversal_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=False)
    )


class Entry(SQLModel, table=True):
    __tablename__ = "entries"
    __table_args__ = (
        sa.Index("ix_entries_member_history", "member_id", "transfer_id"),
        sa.Index("ix_entries_member_pool_history", "member_id", "pool", "transfer_id"),
        sa.Index("ix_entries_account", "account_id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    transfer_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=False, index=True)
    )
    account_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("accounts.id"), nullable=False)
    )
    pool: str = Field(max_length=32)
    member_id: str | None = Field(default=None, max_length=36)
    amount: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    balance_after: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))


class Identity(SQLModel, table=True):
    """An (issuer, subject) a member has proven by signing in. Never an e-mail address.

    An unlinked identity keeps its row (``unlinked_at`` set), so that signing in with it
    again starts a new member instead of finding the old one through a customer id."""

    __tablename__ = "identities"

    issuer: str = Field(primary_key=True, max_length=255)
    subject: str = Field(primary_key=True, max_length=255)
    member_id: str = Field(foreign_key="members.id", index=True, max_length=36)
    provider: str = Field(max_length=32)  # a partner's slug, or "coalition"
    origin: str = Field(max_length=16)  # "sign_in": it made or found the member; "link"
    linked_at: datetime = Field(sa_type=Moment)
    unlinked_at: datetime | None = Field(default=None, sa_type=Moment)


class AuthFlow(SQLModel, table=True):
    """A sign-in or link in progress, used once. ``id`` is the SHA-256 of its state
    (browser flows) or of its nonce (links from native apps)."""

    __tablename__ = "auth_flows"

    id: str = Field(primary_key=True, max_length=64)
    purpose: str = Field(max_length=16)
    provider: str = Field(max_length=32)
    nonce: str = Field(max_length=128)
    code_verifier: str | None = Field(default=None, max_length=128)
    member_id: str | None = Field(default=None, foreign_key="members.id", max_length=36)
    return_to: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(sa_type=Moment)
    expires_at: datetime = Field(sa_type=Moment, index=True)
    consumed_at: datetime | None = Field(default=None, sa_type=Moment)


class Session(SQLModel, table=True):
    """A browser session. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "sessions"

    id: str = Field(primary_key=True, max_length=64)
    member_id: str | None = Field(default=None, foreign_key="members.id", max_length=36)
    operator: bool = Field(default=False)
    issuer: str = Field(max_length=255)
    subject: str = Field(max_length=255)
    mfa: bool = Field(default=False)
    step_up_from: datetime | None = Field(default=None, sa_type=Moment)
    created_at: datetime = Field(sa_type=Moment)
    expires_at: datetime = Field(sa_type=Moment)
    revoked_at: datetime | None = Field(default=None, sa_type=Moment)


class Client(SQLModel, table=True):
    """A partner app's (or an operator's) OAuth client. Only a hash of the secret is kept."""

    __tablename__ = "oauth_clients"

    client_id: str = Field(primary_key=True, max_length=64)
    partner: str | None = Field(default=None, max_length=32)  # None: an operator client
    scopes: str = Field(max_length=500)  # space-separated
    secret_hash: str = Field(max_length=255)
    created_at: datetime = Field(sa_type=Moment)
    rotated_at: datetime | None = Field(default=None, sa_type=Moment)
    disabled_at: datetime | None = Field(default=None, sa_type=Moment)


class SigningKey(SQLModel, table=True):
    """The gateway's own token-signing keys. The newest unretired key signs; retired keys
    stay published until every token they signed has expired."""

    __tablename__ = "signing_keys"

    kid: str = Field(primary_key=True, max_length=64)
    private_jwk: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(sa_type=Moment)
    retired_at: datetime | None = Field(default=None, sa_type=Moment)


class Hold(SQLModel, table=True):
    """Points set aside for a point-of-sale redemption until it is captured, voided or
    expires. The conditional update of ``status`` from ``authorized`` settles it once."""

    __tablename__ = "holds"
    __table_args__ = (
        sa.Index("ix_holds_open_expiry", "status", "expires_at"),
        sa.Index("ix_holds_member", "member_id", "partner"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    member_id: str = Field(foreign_key="members.id", max_length=36)
    partner: str = Field(max_length=32)
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    captured_points: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    status: str = Field(max_length=16)  # authorized | captured | voided | expired
    reason: str | None = Field(default=None, max_length=500)
    hold_transfer_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=False, unique=True)
    )
    settle_transfer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), unique=True)
    )
    created_at: datetime = Field(sa_type=Moment)
    expires_at: datetime = Field(sa_type=Moment)
    settled_at: datetime | None = Field(default=None, sa_type=Moment)


class RemoteOperation(SQLModel, table=True):
    """One earn, redeem or conversion that moves points in a partner's own system: a saga
    whose remote step is retried with ``remote_key`` until its outcome is known.

    ``status``: pending (the remote step's outcome is not known yet), completed, failed (the
    partner refused the first step: nothing happened) or compensated (the partner refused
    after the gateway's own step, which a reversal undid). Only one operation that has not
    failed may hold a caller's key, so a refused call leaves the key free for a retry.
    """

    __tablename__ = "remote_operations"
    __table_args__ = (
        sa.Index(
            "ux_remote_operations_key",
            "idempotency_scope",
            "idempotency_key",
            unique=True,
            postgresql_where=sa.text("status <> 'failed'"),
            sqlite_where=sa.text("status <> 'failed'"),
        ),
        sa.Index("ix_remote_operations_due", "status", "next_attempt_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=16)  # earn | redeem | conversion
    status: str = Field(max_length=16)
    member_id: str = Field(foreign_key="members.id", max_length=36)
    partner: str = Field(max_length=32)
    to_partner: str | None = Field(default=None, max_length=32)
    remote_partner: str = Field(max_length=32)
    customer_id: str = Field(max_length=128)
    movement: str = Field(max_length=8)  # credit | debit, at the remote partner
    remote_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    received_points: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    rate: str | None = Field(default=None, max_length=40)
    fee: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    purchase_amount: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=500)
    idempotency_scope: str = Field(max_length=80)
    idempotency_key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    remote_key: str = Field(max_length=80, unique=True)
    remote_transaction_id: str | None = Field(default=None, max_length=500)
    transfer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"))
    )
    compensation_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"))
    )
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=500)
    next_attempt_at: datetime = Field(sa_type=Moment)
    created_at: datetime = Field(sa_type=Moment)
    updated_at: datetime = Field(sa_type=Moment)


class Reward(SQLModel, table=True):
    """A reward a partner publishes, priced in its own points."""

    __tablename__ = "rewards"
    __table_args__ = (
        sa.CheckConstraint("stock IS NULL OR stock >= 0", name="ck_reward_stock"),
        sa.Index("ix_rewards_partner", "partner", "active"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    partner: str = Field(max_length=32)
    kind: str = Field(max_length=16)
    name: str = Field(max_length=120)
    description: str | None = Field(default=None, max_length=1000)
    price_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    value: str = Field(max_length=40)  # in the settlement currency, a decimal string
    charity: str | None = Field(default=None, max_length=120)
    valid_from: datetime = Field(sa_type=Moment)
    valid_until: datetime | None = Field(default=None, sa_type=Moment)
    stock: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    per_member_limit: int | None = Field(default=None)
    active: bool = Field(default=True)
    created_at: datetime = Field(sa_type=Moment)
    updated_at: datetime = Field(sa_type=Moment)


class RewardClaim(SQLModel, table=True):
    """How many times a member has redeemed a reward: the per-member limit's counter."""

    __tablename__ = "reward_claims"

    reward_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("rewards.id"), primary_key=True)
    )
    member_id: str = Field(primary_key=True, foreign_key="members.id", max_length=36)
    count: int = Field(default=0)


class RewardRedemption(SQLModel, table=True):
    """A member's receipt: what was paid, from which pool, at which rate."""

    __tablename__ = "reward_redemptions"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    reward_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("rewards.id"), nullable=False))
    member_id: str = Field(foreign_key="members.id", index=True, max_length=36)
    partner: str = Field(max_length=32)  # the reward's partner
    paid_with: str = Field(max_length=32)  # the pool the member paid from
    price_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    paid_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    value: str = Field(max_length=40)
    rate: str | None = Field(default=None, max_length=40)
    conversion_transfer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"))
    )
    redeem_transfer_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=False, unique=True)
    )
    gift_code: str | None = Field(default=None, max_length=64)
    charity: str | None = Field(default=None, max_length=120)
    created_at: datetime = Field(sa_type=Moment)


class Obligation(SQLModel, table=True):
    """What one partner owes another (or the operator) in the settlement currency; each
    goes into exactly one settlement statement when its period is closed."""

    __tablename__ = "obligations"
    __table_args__ = (sa.Index("ix_obligations_open", "statement_period", "created_at"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    kind: str = Field(max_length=16)  # reward | conversion | issuance_fee
    debtor: str = Field(max_length=32)
    creditor: str = Field(max_length=32)  # a partner, or "operator"
    amount: str = Field(max_length=40)  # decimal string, settlement currency
    transfer_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"))
    )
    redemption_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("reward_redemptions.id"))
    )
    created_at: datetime = Field(sa_type=Moment)
    statement_period: int | None = Field(default=None, sa_column=sa.Column(BigId))


MICRO = Decimal("0.000001")


class Amount(sa.TypeDecorator[Decimal]):
    """An exact amount of money to 6 decimal places (rounded half away from zero):
    NUMERIC(20, 6) in PostgreSQL; in SQLite, which has no decimal type and would keep a
    float, the decimal's text."""

    impl = sa.Numeric(20, 6, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(20, 6, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> Any:
        if value is None:
            return None
        exact = Decimal(value).quantize(MICRO, ROUND_HALF_UP)
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))


def _period_key() -> sa.ForeignKey:
    """Checked at commit: a close writes its period's row last, once everything is in."""
    return sa.ForeignKey("settlement_periods.id", deferrable=True, initially="DEFERRED")


class SettlementPeriod(SQLModel, table=True):
    """A closed settlement period: the obligations created before ``closes_at`` that no
    earlier period took. Written once, by the close, and never changed (triggers refuse
    UPDATE and DELETE)."""

    __tablename__ = "settlement_periods"

    id: int = Field(sa_column=sa.Column(BigId, primary_key=True, autoincrement=False))
    opens_at: datetime | None = Field(default=None, sa_type=Moment)  # the previous end
    closes_at: datetime = Field(sa_column=sa.Column(Moment, nullable=False, unique=True))
    closed_at: datetime = Field(sa_type=Moment)
    closed_by: str = Field(max_length=255)
    currency: str = Field(max_length=3)
    obligation_count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class Statement(SQLModel, table=True):
    """A partner's position in a closed period, in the settlement currency."""

    __tablename__ = "statements"

    period_id: int = Field(sa_column=sa.Column(BigId, _period_key(), primary_key=True))
    partner: str = Field(primary_key=True, max_length=32)
    gross_payable: Decimal = Field(sa_column=sa.Column(Amount, nullable=False))
    gross_receivable: Decimal = Field(sa_column=sa.Column(Amount, nullable=False))
    fees: Decimal = Field(sa_column=sa.Column(Amount, nullable=False))
    net: Decimal = Field(sa_column=sa.Column(Amount, nullable=False))
    obligation_count: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))


class StatementPair(SQLModel, table=True):
    """The bilateral net between two parties in a period: ``debtor`` owes ``creditor``
    ``amount`` (zero when they are even). One row per unordered pair."""

    __tablename__ = "statement_pairs"

    period_id: int = Field(sa_column=sa.Column(BigId, _period_key(), primary_key=True))
    debtor: str = Field(primary_key=True, max_length=32)
    creditor: str = Field(primary_key=True, max_length=32)
    amount: Decimal = Field(sa_column=sa.Column(Amount, nullable=False))


class SettledTransfer(SQLModel, table=True):
    """A ledger transfer whose operator fee a period charged (earns, conversions and their
    reversals): each is charged once, by the first close after it was committed. Only the
    close writes these, from ``transfers`` itself, so they carry no foreign keys (a
    million checks a close would spend time on); ``coalition reconcile`` checks them."""

    __tablename__ = "settled_transfers"
    __table_args__ = (sa.Index("ix_settled_transfers_period", "period_id", "basis"),)

    transfer_id: int = Field(sa_column=sa.Column(BigId, primary_key=True, autoincrement=False))
    period_id: int = Field(sa_column=sa.Column(BigId, nullable=False))
    basis: str = Field(max_length=24)  # earn | earn_reversal | conversion | conversion_reversal


members = Member.__table__  # type: ignore[attr-defined]
enrolments = Enrolment.__table__  # type: ignore[attr-defined]
accounts = Account.__table__  # type: ignore[attr-defined]
transfers = Transfer.__table__  # type: ignore[attr-defined]
entries = Entry.__table__  # type: ignore[attr-defined]
reversed_totals = ReversedTotal.__table__  # type: ignore[attr-defined]
identities = Identity.__table__  # type: ignore[attr-defined]
auth_flows = AuthFlow.__table__  # type: ignore[attr-defined]
sessions = Session.__table__  # type: ignore[attr-defined]
clients = Client.__table__  # type: ignore[attr-defined]
signing_keys = SigningKey.__table__  # type: ignore[attr-defined]
holds = Hold.__table__  # type: ignore[attr-defined]
remote_operations = RemoteOperation.__table__  # type: ignore[attr-defined]
rewards = Reward.__table__  # type: ignore[attr-defined]
reward_claims = RewardClaim.__table__  # type: ignore[attr-defined]
reward_redemptions = RewardRedemption.__table__  # type: ignore[attr-defined]
obligations = Obligation.__table__  # type: ignore[attr-defined]
settlement_periods = SettlementPeriod.__table__  # type: ignore[attr-defined]
statements = Statement.__table__  # type: ignore[attr-defined]
statement_pairs = StatementPair.__table__  # type: ignore[attr-defined]
settled_transfers = SettledTransfer.__table__  # type: ignore[attr-defined]
