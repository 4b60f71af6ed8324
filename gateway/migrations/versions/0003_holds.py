"""Holds for point-of-sale redemptions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 22:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("id", BigId, nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("captured_points", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("hold_transfer_id", BigId, nullable=False),
        sa.Column("settle_transfer_id", BigId, nullable=True),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("expires_at", Moment, nullable=False),
        sa.Column("settled_at", Moment, nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["hold_transfer_id"], ["transfers.id"]),
        sa.ForeignKeyConstraint(["settle_transfer_id"], ["transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hold_transfer_id"),
        sa.UniqueConstraint("settle_transfer_id"),
    )
    op.create_index("ix_holds_open_expiry", "holds", ["status", "expires_at"])
    op.create_index("ix_holds_member", "holds", ["member_id", "partner"])


def downgrade() -> None:
    op.drop_index("ix_holds_member", table_name="holds")
    op.drop_index("ix_holds_open_expiry", table_name="holds")
    op.drop_table("holds")
