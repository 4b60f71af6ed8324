"""Earning: purchases with their breakdown, activity caps, referrals, debts after returns.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "purchases",
        sa.Column("id", BigId, nullable=False),
        sa.Column("transfer_id", BigId, nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("receipt", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("breakdown", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("matures_at", Moment, nullable=True),
        sa.Column("returned_amount", sa.String(length=40), nullable=False),
        sa.Column("clawed_back", sa.BigInteger(), nullable=False),
        sa.Column("uncollected", sa.BigInteger(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transfer_id"),
    )
    op.create_index("ix_purchases_member", "purchases", ["member_id", "partner", "created_at"])
    op.create_index("ix_purchases_pending", "purchases", ["status", "matures_at"])
    op.create_table(
        "purchase_returns",
        sa.Column("id", BigId, nullable=False),
        sa.Column("purchase_id", BigId, nullable=False),
        sa.Column("idempotency_scope", sa.String(length=80), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("taken", sa.BigInteger(), nullable=False),
        sa.Column("owed", sa.BigInteger(), nullable=False),
        sa.Column("uncollected", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", BigId, nullable=True),
        sa.Column("created_at", Moment, nullable=False),
        sa.ForeignKeyConstraint(["purchase_id"], ["purchases.id"]),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_scope", "idempotency_key"),
    )
    op.create_table(
        "activity_claims",
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period_start", Moment, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("member_id", "partner", "kind", "period_start"),
    )
    op.create_table(
        "referral_codes",
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("member_id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "referrals",
        sa.Column("referred_id", sa.String(length=36), nullable=False),
        sa.Column("referrer_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("rewarded_at", Moment, nullable=True),
        sa.Column("rewarded_partner", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(["referred_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["referrer_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("referred_id"),
    )
    op.create_table(
        "wallet_debts",
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("pool", sa.String(length=32), nullable=False),
        sa.Column("owed", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("member_id", "pool"),
    )


def downgrade() -> None:
    for table in (
        "wallet_debts",
        "referrals",
        "referral_codes",
        "activity_claims",
        "purchase_returns",
    ):
        op.drop_table(table)
    op.drop_index("ix_purchases_pending", table_name="purchases")
    op.drop_index("ix_purchases_member", table_name="purchases")
    op.drop_table("purchases")
