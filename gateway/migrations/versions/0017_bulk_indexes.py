"""Indexes that bulk earning (issue 12) reads by, which single earns read by too: the members
merged into a member (``members.merged_into``, until now a scan of every member), and a
member's purchases still pending at a partner (until now all their purchases there).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_members_merged_into",
        "members",
        ["merged_into"],
        postgresql_where=sa.text("merged_into IS NOT NULL"),
        sqlite_where=sa.text("merged_into IS NOT NULL"),
    )
    op.create_index(
        "ix_purchases_member_pending",
        "purchases",
        ["member_id", "partner"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_purchases_member_pending", table_name="purchases")
    op.drop_index("ix_members_merged_into", table_name="members")
