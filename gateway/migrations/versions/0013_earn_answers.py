"""An earn for a purchase keeps the wallet as it left it, so that its replays answer the
same (``purchases.wallet``, JSON).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("purchases", sa.Column("wallet", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("purchases") as batch:
        batch.drop_column("wallet")
