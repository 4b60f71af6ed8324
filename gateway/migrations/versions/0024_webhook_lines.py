"""A delivery's place in line: ``webhook_deliveries.line_id``, the member whose line (at its
endpoint) it waits in, which a merge moves to the surviving member (``member_id`` stays the
event's member, for the payload). Filled from ``member_id``; the ordering index follows it.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("webhook_deliveries", sa.Column("line_id", sa.String(36), nullable=True))
    op.execute("UPDATE webhook_deliveries SET line_id = member_id")
    op.drop_index("ix_webhook_deliveries_order", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_order",
        "webhook_deliveries",
        ["endpoint_id", "line_id", "status", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_order", table_name="webhook_deliveries")
    op.create_index(
        "ix_webhook_deliveries_order",
        "webhook_deliveries",
        ["endpoint_id", "member_id", "status", "id"],
    )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("line_id")
