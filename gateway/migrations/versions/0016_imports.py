"""Imports of earn files (issue 12): ``imports`` (one per partner and file content, with its
counters and checkpoint), ``import_rejections`` (the lines not posted, once each) and
``import_chunks`` (the content of files uploaded for an import job).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("id", BigId, nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("uploaded", sa.Boolean(), nullable=False),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("lines_read", sa.BigInteger(), nullable=False),
        sa.Column("posted", sa.BigInteger(), nullable=False),
        sa.Column("replayed", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("byte_offset", sa.BigInteger(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        sa.Column("started_at", Moment, nullable=True),
        sa.Column("finished_at", Moment, nullable=True),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    live = sa.text("status NOT IN ('failed', 'uploading')")
    op.create_index(
        "ux_imports_file",
        "imports",
        ["partner", "digest"],
        unique=True,
        postgresql_where=live,
        sqlite_where=live,
    )
    op.create_index("ix_imports_status", "imports", ["status"])
    op.create_table(
        "import_rejections",
        sa.Column("import_id", BigId, sa.ForeignKey("imports.id"), nullable=False),
        sa.Column("line_number", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("message", sa.String(length=2000), nullable=False),
        sa.PrimaryKeyConstraint("import_id", "line_number"),
    )
    op.create_table(
        "import_chunks",
        sa.Column("import_id", BigId, sa.ForeignKey("imports.id"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("import_id", "seq"),
    )


def downgrade() -> None:
    op.drop_table("import_chunks")
    op.drop_table("import_rejections")
    op.drop_table("imports")
