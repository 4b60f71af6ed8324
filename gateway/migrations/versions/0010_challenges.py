"""Challenges: tables of the programme (issue 5). Every challenge (configured or created
through the API) and the badges members earned, once per challenge, member and period.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "challenges",
        sa.Column("slug", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("owner", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("target", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("badge", sa.String(length=80), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("partner", sa.String(length=32), nullable=True),
        sa.Column("bonus_points", sa.BigInteger(), nullable=False),
        sa.Column("bonus_partner", sa.String(length=32), nullable=True),
        sa.Column("valid_from", Moment, nullable=True),
        sa.Column("valid_until", Moment, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.PrimaryKeyConstraint("slug"),
    )
    op.create_index("ix_challenges_active", "challenges", ["active"])
    op.create_table(
        "challenge_awards",
        sa.Column("id", BigId, nullable=False),
        sa.Column("challenge", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("period_start", Moment, nullable=False),
        sa.Column("period_end", Moment, nullable=False),
        sa.Column("badge", sa.String(length=80), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("bonus_points", sa.BigInteger(), nullable=False),
        sa.Column("bonus_partner", sa.String(length=32), nullable=True),
        sa.Column("bonus_transfer_id", BigId, nullable=True),
        sa.Column("awarded_at", Moment, nullable=False),
        sa.ForeignKeyConstraint(["challenge"], ["challenges.slug"]),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["bonus_transfer_id"], ["transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "challenge", "member_id", "period_start", name="ux_challenge_awards_once"
        ),
        sa.UniqueConstraint("bonus_transfer_id"),
    )
    op.create_index("ix_challenge_awards_member", "challenge_awards", ["member_id", "awarded_at"])


def downgrade() -> None:
    op.drop_index("ix_challenge_awards_member", table_name="challenge_awards")
    op.drop_table("challenge_awards")
    op.drop_index("ix_challenges_active", table_name="challenges")
    op.drop_table("challenges")
