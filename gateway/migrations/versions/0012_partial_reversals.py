"""Partial reversals that add up to the original: a transfer may have several reversals
(the unique ``ux_transfers_reverses`` becomes a plain index), and ``reversed_totals`` keeps
how much of each transfer its reversals took back so far.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SQLITE_TRIGGERS = ("UPDATE", "DELETE")


def _sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def _sqlite_triggers(create: bool) -> None:
    """SQLite rebuilds the table to change a constraint: its immutability triggers (see
    0001) go with the old table and are made again on the new one."""
    for action in SQLITE_TRIGGERS:
        name = f"transfers_no_{action.lower()}"
        if create:
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {action} ON transfers "
                "BEGIN SELECT RAISE(ABORT, "
                f"'ledger rows are immutable: {action} on transfers'); END"
            )
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _unique_reverses(unique: bool) -> None:
    if _sqlite():
        # The rebuild drops ``transfers`` and renames its copy: ``gateway.database.migrate``
        # runs SQLite's migrations with foreign keys off and checks them at the end.
        _sqlite_triggers(create=False)
    with op.batch_alter_table("transfers", recreate="always" if _sqlite() else "auto") as batch:
        if unique:
            batch.drop_index("ix_transfers_reverses")
            batch.create_unique_constraint("ux_transfers_reverses", ["reverses_id"])
        else:
            batch.drop_constraint("ux_transfers_reverses", type_="unique")
            batch.create_index("ix_transfers_reverses", ["reverses_id"])
    if _sqlite():
        _sqlite_triggers(create=True)


def upgrade() -> None:
    _unique_reverses(unique=False)
    op.create_table(
        "reversed_totals",
        sa.Column("transfer_id", BigId, nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("last_reversal_id", BigId, nullable=False),
        sa.CheckConstraint("points > 0", name="ck_reversed_positive"),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"]),
        sa.ForeignKeyConstraint(["last_reversal_id"], ["transfers.id"]),
        sa.PrimaryKeyConstraint("transfer_id"),
    )
    # Reversals posted before: each transfer was reversed at most once.
    op.execute(
        "INSERT INTO reversed_totals (transfer_id, points, last_reversal_id) "
        "SELECT reverses_id, SUM(points), MAX(id) FROM transfers "
        "WHERE reverses_id IS NOT NULL GROUP BY reverses_id"
    )


def downgrade() -> None:
    op.drop_table("reversed_totals")
    _unique_reverses(unique=True)
