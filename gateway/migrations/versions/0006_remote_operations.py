"""Remote operations: earns, redeems and conversions at partners that keep their own pools.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "remote_operations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("to_partner", sa.String(length=32), nullable=True),
        sa.Column("remote_partner", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("movement", sa.String(length=8), nullable=False),
        sa.Column("remote_points", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("received_points", sa.BigInteger(), nullable=True),
        sa.Column("rate", sa.String(length=40), nullable=True),
        sa.Column("fee", sa.BigInteger(), nullable=True),
        sa.Column("purchase_amount", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("idempotency_scope", sa.String(length=80), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("remote_key", sa.String(length=80), nullable=False),
        sa.Column("remote_transaction_id", sa.String(length=500), nullable=True),
        sa.Column("transfer_id", BigId, nullable=True),
        sa.Column("compensation_id", BigId, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("next_attempt_at", Moment, nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"]),
        sa.ForeignKeyConstraint(["compensation_id"], ["transfers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("remote_key"),
    )
    op.create_index(
        "ux_remote_operations_key",
        "remote_operations",
        ["idempotency_scope", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("status <> 'failed'"),
        sqlite_where=sa.text("status <> 'failed'"),
    )
    op.create_index("ix_remote_operations_due", "remote_operations", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_remote_operations_due", table_name="remote_operations")
    op.drop_index("ux_remote_operations_key", table_name="remote_operations")
    op.drop_table("remote_operations")
