"""An endpoint's health: ``failing_since`` (the first failed try since its last 2xx answer;
None while it answers) and ``disabled_reason`` (why the gateway disabled it; None when a
person did, or while it is enabled).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("webhook_endpoints", sa.Column("failing_since", Moment, nullable=True))
    op.add_column("webhook_endpoints", sa.Column("disabled_reason", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("disabled_reason")
        batch.drop_column("failing_since")
