"""Domain events: the outbox every posting appends to in its own transaction, and the
position each consumer has reached (issue 11).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # The appending transaction's id, given by the database: see gateway/events/log.py.
    current = "(pg_current_xact_id()::text::bigint)" if postgres else "0"
    op.create_table(
        "outbox",
        sa.Column("id", BigId, nullable=False),
        sa.Column(
            "transaction_id", sa.BigInteger(), nullable=False, server_default=sa.text(current)
        ),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=True),
        sa.Column("partner", sa.String(length=32), nullable=True),
        sa.Column("transfer_id", sa.BigInteger(), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", Moment, nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_position", "outbox", ["transaction_id", "id"])
    op.create_table(
        "consumer_positions",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("consumer_positions")
    op.drop_index("ix_outbox_position", table_name="outbox")
    op.drop_table("outbox")
