"""Identity: linked sign-ins, merged members, sign-in flows, sessions, OAuth clients and
the gateway's signing keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 21:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("members") as batch_op:
        batch_op.add_column(sa.Column("merged_into", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("merged_at", Moment, nullable=True))
    # Step-up sums what a member spent at a partner in the last day.
    op.create_index("ix_transfers_member_created", "transfers", ["member_id", "created_at"])
    op.create_table(
        "identities",
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("linked_at", Moment, nullable=False),
        sa.Column("unlinked_at", Moment, nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("issuer", "subject"),
    )
    op.create_index("ix_identities_member_id", "identities", ["member_id"])
    op.create_table(
        "auth_flows",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=True),
        sa.Column("member_id", sa.String(length=36), nullable=True),
        sa.Column("return_to", sa.String(length=500), nullable=True),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("expires_at", Moment, nullable=False),
        sa.Column("consumed_at", Moment, nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_auth_flows_expires_at", "auth_flows", ["expires_at"])
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=True),
        sa.Column("operator", sa.Boolean(), nullable=False),
        sa.Column("issuer", sa.String(length=255), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("mfa", sa.Boolean(), nullable=False),
        sa.Column("step_up_from", Moment, nullable=True),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("expires_at", Moment, nullable=False),
        sa.Column("revoked_at", Moment, nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=True),
        sa.Column("scopes", sa.String(length=500), nullable=False),
        sa.Column("secret_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("rotated_at", Moment, nullable=True),
        sa.Column("disabled_at", Moment, nullable=True),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("private_jwk", sa.Text(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("retired_at", Moment, nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_table("oauth_clients")
    op.drop_table("sessions")
    op.drop_index("ix_auth_flows_expires_at", table_name="auth_flows")
    op.drop_table("auth_flows")
    op.drop_index("ix_identities_member_id", table_name="identities")
    op.drop_table("identities")
    op.drop_index("ix_transfers_member_created", table_name="transfers")
    with op.batch_alter_table("members") as batch_op:
        batch_op.drop_column("merged_at")
        batch_op.drop_column("merged_into")
