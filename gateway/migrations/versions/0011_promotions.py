"""Promotions managed through the API, next to those in the partners' files.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 00:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "promotions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("starts", Moment, nullable=False),
        sa.Column("ends", Moment, nullable=False),
        sa.Column("multiplier", sa.String(length=40), nullable=True),
        sa.Column("bonus", sa.BigInteger(), nullable=True),
        sa.Column("tier", sa.String(length=32), nullable=True),
        sa.Column("new_at_partner", sa.Boolean(), nullable=False),
        sa.Column("min_amount", sa.String(length=40), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_promotions_partner", "promotions", ["partner", "ends"])


def downgrade() -> None:
    op.drop_index("ix_promotions_partner", table_name="promotions")
    op.drop_table("promotions")
