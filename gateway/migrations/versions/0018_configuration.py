"""The coalition's configuration in the database (issue 13): ``configuration_changes`` (who
changed what, when), ``configuration_documents`` (versions of ``coalition.toml`` and of each
partner's file, with the moment each takes effect) and ``conversion_rules``.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)


def _change(name: str, nullable: bool) -> sa.Column[int]:
    return sa.Column(name, BigId, sa.ForeignKey("configuration_changes.id"), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "configuration_changes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("changed_at", Moment, nullable=False),
        sa.Column("changed_by", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.String(length=4000), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "configuration_documents",
        sa.Column("id", BigId, nullable=False),
        _change("change_id", False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("effective_from", Moment, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_configuration_documents_name", "configuration_documents", ["name", "effective_from"]
    )
    op.create_table(
        "conversion_rules",
        sa.Column("id", BigId, nullable=False),
        _change("change_id", False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=32), nullable=False),
        sa.Column("rate", sa.String(length=40), nullable=False),
        sa.Column("fee_percent", sa.String(length=40), nullable=False),
        sa.Column("fee_fixed", sa.BigInteger(), nullable=False),
        sa.Column("min_points", sa.BigInteger(), nullable=False),
        sa.Column("max_points", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("effective_from", Moment, nullable=False),
        sa.Column("effective_until", Moment, nullable=True),
        _change("ended_by", True),
        _change("withdrawn_by", True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_conversion_rules_pair", "conversion_rules", ["source", "target"])


def downgrade() -> None:
    op.drop_table("conversion_rules")
    op.drop_table("configuration_documents")
    op.drop_table("configuration_changes")
