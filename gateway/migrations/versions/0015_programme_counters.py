"""Tiers and challenges without rescanning history (issue 11): the contributions to each
member's qualifying value and its running sum (``tier_contributions``, ``tier_values``), and
per member, challenge, period and partner the progress counters (``challenge_counters``).

Existing earns, clawbacks and reversals become contributions here (keyed by the member their
points live with now); running sums are built from them when first needed, and counters of
the challenges running are built by the gateway at start (``challenges.counted_at``).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)

BACKFILL = """
INSERT INTO tier_contributions (member_id, partner, effective_at, points, transfer_id)
SELECT COALESCE(m.merged_into, t.member_id), t.partner,
       COALESCE(o.created_at, t.created_at),
       CASE
         WHEN t.kind = 'earn' THEN t.points
         WHEN t.kind = 'clawback' THEN -t.points
         WHEN o.kind = 'earn' THEN -t.points
         ELSE t.points
       END,
       t.id
FROM transfers t
JOIN members m ON m.id = t.member_id
LEFT JOIN transfers o ON o.id = t.reverses_id
WHERE t.kind IN ('earn', 'clawback')
   OR (t.kind = 'reversal' AND o.kind IN ('earn', 'clawback'))
ORDER BY t.id
"""


def upgrade() -> None:
    op.create_table(
        "tier_contributions",
        sa.Column("id", BigId, nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("effective_at", Moment, nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", BigId, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_tier_contributions_member", "tier_contributions", ["member_id", "effective_at"]
    )
    op.create_table(
        "tier_values",
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("through", Moment, nullable=True),
        sa.Column("next_leave", Moment, nullable=True),
        sa.Column("points", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("member_id"),
    )
    op.create_table(
        "challenge_counters",
        sa.Column("challenge", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=36), nullable=False),
        sa.Column("period_start", Moment, nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=False),
        sa.Column("visits", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("challenge", "member_id", "period_start", "partner"),
    )
    op.create_index(
        "ix_challenge_counters_period", "challenge_counters", ["challenge", "period_start"]
    )
    op.add_column("challenges", sa.Column("counted_at", Moment, nullable=True))
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("challenges") as batch:
        batch.drop_column("counted_at")
    op.drop_table("challenge_counters")
    op.drop_table("tier_values")
    op.drop_table("tier_contributions")
