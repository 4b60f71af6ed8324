"""The analytics aggregates. Migration 0019 creates them; only ``store`` touches them.

``analytics_daily``: per UTC day and partner, the net points issued, redeemed, expired and
converted out of and into the pool (a reversal takes back from its kind's column).
``analytics_active``: one row per day, partner and member with activity that day (counting
distinct members over any range stays exact). ``analytics_flows``: per day and pair of
partners, the points converted (source points out, target points in) and the points of
rewards paid with the source's points. ``analytics_progress``: when the last event applied
occurred (the figures' freshness).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.kernel.schema import Moment, metadata


def _points(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")


analytics_daily = sa.Table(
    "analytics_daily",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("partner", sa.String(32), primary_key=True),
    _points("issued"),
    _points("redeemed"),
    _points("expired"),
    _points("converted_out"),
    _points("converted_in"),
)

analytics_active = sa.Table(
    "analytics_active",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("partner", sa.String(32), primary_key=True),
    sa.Column("member_id", sa.String(36), primary_key=True),
)

analytics_flows = sa.Table(
    "analytics_flows",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("from_partner", sa.String(32), primary_key=True),
    sa.Column("to_partner", sa.String(32), primary_key=True),
    _points("points_out"),
    _points("points_in"),
    _points("reward_points"),
)

analytics_progress = sa.Table(
    "analytics_progress",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("as_of", Moment, nullable=False),
)
