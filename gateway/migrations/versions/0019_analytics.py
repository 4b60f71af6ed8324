"""Analytics (issue 14): daily aggregates of the event log, kept by the ``analytics.daily``
consumer: ``analytics_daily`` (figures per day and partner), ``analytics_active`` (members
active per day and partner), ``analytics_flows`` (per day and pair of partners) and
``analytics_progress`` (when the last event applied occurred).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def _points(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "analytics_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        _points("issued"),
        _points("redeemed"),
        _points("expired"),
        _points("converted_out"),
        _points("converted_in"),
        sa.PrimaryKeyConstraint("day", "partner"),
    )
    op.create_table(
        "analytics_active",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("day", "partner", "member_id"),
    )
    op.create_table(
        "analytics_flows",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("from_partner", sa.String(length=32), nullable=False),
        sa.Column("to_partner", sa.String(length=32), nullable=False),
        _points("points_out"),
        _points("points_in"),
        _points("reward_points"),
        sa.PrimaryKeyConstraint("day", "from_partner", "to_partner"),
    )
    op.create_table(
        "analytics_progress",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("as_of", Moment, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("analytics_progress")
    op.drop_table("analytics_flows")
    op.drop_table("analytics_active")
    op.drop_table("analytics_daily")
