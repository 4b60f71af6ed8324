"""Rewards, their per-member counters and receipts, and the obligations between partners.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rewards",
        sa.Column("id", BigId, nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("price_points", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.String(length=40), nullable=False),
        sa.Column("charity", sa.String(length=120), nullable=True),
        sa.Column("valid_from", Moment, nullable=False),
        sa.Column("valid_until", Moment, nullable=True),
        sa.Column("stock", sa.BigInteger(), nullable=True),
        sa.Column("per_member_limit", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.CheckConstraint("stock IS NULL OR stock >= 0", name="ck_reward_stock"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rewards_partner", "rewards", ["partner", "active"])
    op.create_table(
        "reward_claims",
        sa.Column("reward_id", BigId, nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["reward_id"], ["rewards.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("reward_id", "member_id"),
    )
    op.create_table(
        "reward_redemptions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("reward_id", BigId, nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("paid_with", sa.String(length=32), nullable=False),
        sa.Column("price_points", sa.BigInteger(), nullable=False),
        sa.Column("paid_points", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.String(length=40), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=True),
        sa.Column("conversion_transfer_id", BigId, nullable=True),
        sa.Column("redeem_transfer_id", BigId, nullable=False),
        sa.Column("gift_code", sa.String(length=64), nullable=True),
        sa.Column("charity", sa.String(length=120), nullable=True),
        sa.Column("created_at", Moment, nullable=False),
        sa.ForeignKeyConstraint(["reward_id"], ["rewards.id"]),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["conversion_transfer_id"], ["transfers.id"]),
        sa.ForeignKeyConstraint(["redeem_transfer_id"], ["transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("redeem_transfer_id"),
    )
    op.create_index("ix_reward_redemptions_member_id", "reward_redemptions", ["member_id"])
    op.create_table(
        "obligations",
        sa.Column("id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("debtor", sa.String(length=32), nullable=False),
        sa.Column("creditor", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("transfer_id", BigId, nullable=True),
        sa.Column("redemption_id", BigId, nullable=True),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("statement_period", BigId, nullable=True),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"]),
        sa.ForeignKeyConstraint(["redemption_id"], ["reward_redemptions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_obligations_open", "obligations", ["statement_period", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_obligations_open", table_name="obligations")
    op.drop_table("obligations")
    op.drop_index("ix_reward_redemptions_member_id", table_name="reward_redemptions")
    op.drop_table("reward_redemptions")
    op.drop_table("reward_claims")
    op.drop_index("ix_rewards_partner", table_name="rewards")
    op.drop_table("rewards")
