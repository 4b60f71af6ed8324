"""The erasures made (migration 0022): which member, when, by whom (an actor as events
name it: ``operator:<subject>`` or ``member:<id>``), and what it did to the ledger. No
personal data of the member erased."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.kernel.schema import Moment, metadata

privacy_erasures = sa.Table(
    "privacy_erasures",
    metadata,
    sa.Column("member_id", sa.String(36), sa.ForeignKey("members.id"), primary_key=True),
    sa.Column("erased_at", Moment, nullable=False),
    sa.Column("erased_by", sa.String(300), nullable=False),
    sa.Column("policy", sa.String(16), nullable=False),
    sa.Column("forfeited_points", sa.BigInteger, nullable=False),
    sa.Column("released_holds", sa.Integer, nullable=False),
)
