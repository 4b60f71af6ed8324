"""Settlement: closed periods, partners' statements, bilateral pairs, and the transfers whose
fees a period charged. Closed periods never change: triggers refuse UPDATE and DELETE on
them and on an obligation once it is in a statement.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)
# Exact money: NUMERIC in PostgreSQL; SQLite has no decimal type, so the decimal's text.
Amount = sa.Numeric(20, 6, asdecimal=True).with_variant(sa.String(40), "sqlite")

SETTLED = ("settlement_periods", "statements", "statement_pairs", "settled_transfers")


def _period_key() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["period_id"], ["settlement_periods.id"], deferrable=True, initially="DEFERRED"
    )


def _triggers() -> None:
    """Closed periods are immutable; so is an obligation once a period took it."""
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION settlement_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'closed settlement periods are immutable: % on %',
                    TG_OP, TG_TABLE_NAME;
            END $$
            """
        )
        for table in SETTLED:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION settlement_refuse_change()"
            )
        op.execute(
            "CREATE TRIGGER obligations_settled_immutable BEFORE UPDATE OR DELETE ON obligations "
            "FOR EACH ROW WHEN (OLD.statement_period IS NOT NULL) "
            "EXECUTE FUNCTION settlement_refuse_change()"
        )
        return
    for table in SETTLED:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                "BEGIN SELECT RAISE(ABORT, "
                f"'closed settlement periods are immutable: {action} on {table}'); END"
            )
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER obligations_settled_no_{action.lower()} BEFORE {action} "
            "ON obligations WHEN OLD.statement_period IS NOT NULL BEGIN SELECT RAISE(ABORT, "
            f"'closed settlement periods are immutable: {action} on obligations'); END"
        )


def upgrade() -> None:
    op.create_table(
        "settlement_periods",
        sa.Column("id", BigId, nullable=False, autoincrement=False),
        sa.Column("opens_at", Moment, nullable=True),
        sa.Column("closes_at", Moment, nullable=False),
        sa.Column("closed_at", Moment, nullable=False),
        sa.Column("closed_by", sa.String(length=255), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("obligation_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("closes_at"),
    )
    op.create_table(
        "statements",
        sa.Column("period_id", BigId, nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("gross_payable", Amount, nullable=False),
        sa.Column("gross_receivable", Amount, nullable=False),
        sa.Column("fees", Amount, nullable=False),
        sa.Column("net", Amount, nullable=False),
        sa.Column("obligation_count", sa.BigInteger(), nullable=False),
        _period_key(),
        sa.PrimaryKeyConstraint("period_id", "partner"),
    )
    op.create_table(
        "statement_pairs",
        sa.Column("period_id", BigId, nullable=False),
        sa.Column("debtor", sa.String(length=32), nullable=False),
        sa.Column("creditor", sa.String(length=32), nullable=False),
        sa.Column("amount", Amount, nullable=False),
        _period_key(),
        sa.PrimaryKeyConstraint("period_id", "debtor", "creditor"),
    )
    op.create_table(
        "settled_transfers",
        sa.Column("transfer_id", BigId, nullable=False, autoincrement=False),
        sa.Column("period_id", BigId, nullable=False),
        sa.Column("basis", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("transfer_id"),
    )
    op.create_index("ix_settled_transfers_period", "settled_transfers", ["period_id", "basis"])
    _triggers()


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS obligations_settled_immutable ON obligations")
        for table in SETTLED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
        op.execute("DROP FUNCTION IF EXISTS settlement_refuse_change()")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS obligations_settled_no_{action}")
    op.drop_index("ix_settled_transfers_period", table_name="settled_transfers")
    for table in reversed(SETTLED):
        op.drop_table(table)
