"""Members' data rights (issue 15): ``members.erased_at``, the ``privacy_erasures`` record
(who erased which member when; no personal data), and the transfers' immutability narrowed
to leave ``idempotency_key``, ``request_hash`` and ``reason`` writable, so that erasure can
replace a caller's key (often a receipt number) and the request's fingerprint (a hash of a
request naming the customer id) with random values and clear a gift's message (a member's
own words). Every other column of a transfer stays immutable.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 22:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)

# Every column of ``transfers`` but ``idempotency_key``, ``request_hash`` and ``reason``:
# an UPDATE naming one of these is refused.
FROZEN = (
    "id, kind, member_id, partner, to_partner, points, received_points, purchase_amount, "
    "rate, fee, reverses_id, idempotency_scope, created_at"
)
MESSAGE = "'ledger rows are immutable: UPDATE on transfers'"


def _triggers(narrow: bool) -> None:
    columns = f"OF {FROZEN} " if narrow else ""
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS transfers_immutable ON transfers")
        op.execute(
            f"CREATE TRIGGER transfers_immutable BEFORE DELETE OR UPDATE {columns}"
            "ON transfers FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
    else:
        op.execute("DROP TRIGGER IF EXISTS transfers_no_update")
        op.execute(
            f"CREATE TRIGGER transfers_no_update BEFORE UPDATE {columns}ON transfers "
            f"BEGIN SELECT RAISE(ABORT, {MESSAGE}); END"
        )


def upgrade() -> None:
    op.add_column("members", sa.Column("erased_at", Moment, nullable=True))
    op.create_table(
        "privacy_erasures",
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("erased_at", Moment, nullable=False),
        sa.Column("erased_by", sa.String(length=300), nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("forfeited_points", sa.BigInteger(), nullable=False),
        sa.Column("released_holds", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"]),
        sa.PrimaryKeyConstraint("member_id"),
    )
    _triggers(narrow=True)


def downgrade() -> None:
    _triggers(narrow=False)
    op.drop_table("privacy_erasures")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("erased_at")
