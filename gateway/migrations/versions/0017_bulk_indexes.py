"""Indexes for bulk earning (issue 12), which single earns gain from too.

Read by: the members merged into a member (``members.merged_into``, until now a scan of
every member), and a member's purchases still pending at a partner (until now all their
purchases there). Written less: the entries' member indexes and the transfers' reversal
index leave out the rows without one (system accounts' entries, transfers that reverse
nothing), which are half the entries and most transfers. (Rebuilding those indexes locks
writes to the table while it runs.)

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


PARTIAL = (
    ("ix_entries_member_history", "entries", ["member_id", "transfer_id"], "member_id"),
    (
        "ix_entries_member_pool_history",
        "entries",
        ["member_id", "pool", "transfer_id"],
        "member_id",
    ),
    ("ix_transfers_reverses", "transfers", ["reverses_id"], "reverses_id"),
)


def upgrade() -> None:
    for name, table, columns, column in PARTIAL:
        op.drop_index(name, table_name=table)
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)
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
    for name, table, columns, _ in PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
    op.drop_index("ix_purchases_member_pending", table_name="purchases")
    op.drop_index("ix_members_merged_into", table_name="members")
