"""Tiers: each member's tier and its review dates; rewards' tier target and tier floor.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "member_tiers",
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("since", Moment, nullable=False),
        sa.Column("review_at", Moment, nullable=True),
        sa.Column("downgrade_at", Moment, nullable=True),
        sa.Column("updated_at", Moment, nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("member_id"),
    )
    op.create_index("ix_member_tiers_review", "member_tiers", ["review_at"])
    op.create_index("ix_member_tiers_downgrade", "member_tiers", ["downgrade_at"])
    # Plain ADD COLUMN of nullable columns: no table rebuild, also on SQLite.
    op.add_column("rewards", sa.Column("tier", sa.String(length=32), nullable=True))
    op.add_column("rewards", sa.Column("min_tier", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rewards") as batch:
        batch.drop_column("min_tier")
        batch.drop_column("tier")
    op.drop_index("ix_member_tiers_downgrade", table_name="member_tiers")
    op.drop_index("ix_member_tiers_review", table_name="member_tiers")
    op.drop_table("member_tiers")
