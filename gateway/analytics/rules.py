"""What each event adds to the daily aggregates, and the periods a report is cut into;
free of storage.

A pool's outstanding points move by: issued (earns, less clawbacks) - redeemed (redeems and
captured holds) - expired - converted out + converted in. A reversal takes back from its
kind's figures (``data.reverses_kind``). Holds placed or released, gifts, maturing and merges
move points inside a pool: they change no figure (held and pending points stay outstanding).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum
from typing import Any

from gateway.events import types
from gateway.events.event import Event

FIGURES = ("issued", "redeemed", "expired", "converted_out", "converted_in")
FLOWS = ("points_out", "points_in", "reward_points")
MAX_BUCKETS = 750  # two years of days; weeks and months reach further

# A transfer kind -> the figure it adds to in its partner's pool (sign: +1 adds, -1 takes).
_BY_KIND: dict[str, tuple[str, int]] = {
    "earn": ("issued", 1),
    "clawback": ("issued", -1),
    "redeem": ("redeemed", 1),
    "capture": ("redeemed", 1),
    "expiry": ("expired", 1),
}
# Who did something that day: the member of these events (both pools of a conversion).
ACTIVE = frozenset(
    {
        types.POINTS_EARNED,
        types.POINTS_REDEEMED,
        types.POINTS_CONVERTED,
        types.POINTS_GIFTED,
        types.HOLD_PLACED,
        types.HOLD_CAPTURED,
        types.REWARD_REDEEMED,
    }
)


class Granularity(Enum):
    DAY = "day"
    WEEK = "week"  # ISO weeks, from Monday
    MONTH = "month"


class RangeError(ValueError):
    """A report's range or granularity refused (the message says why)."""


@dataclass
class Batch:
    """What a batch of events adds: per (day, partner) figures, (day, partner, member)
    activity, per (day, from, to) flows, and when its latest event occurred."""

    daily: dict[tuple[date, str], dict[str, int]] = field(default_factory=dict)
    active: set[tuple[date, str, str]] = field(default_factory=set)
    flows: dict[tuple[date, str, str], dict[str, int]] = field(default_factory=dict)
    latest: datetime | None = None

    def add(self, day: date, partner: str, figure: str, points: int) -> None:
        row = self.daily.setdefault((day, partner), dict.fromkeys(FIGURES, 0))
        row[figure] += points

    def flow(self, day: date, source: str, target: str, name: str, points: int) -> None:
        row = self.flows.setdefault((day, source, target), dict.fromkeys(FLOWS, 0))
        row[name] += points


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def fold(events: Iterable[Event]) -> Batch:
    batch = Batch()
    for event in events:
        at = event.occurred_at
        batch.latest = at if batch.latest is None else max(batch.latest, at)
        if event.partner is None:
            continue
        day = utc_day(at)
        if event.type in ACTIVE and event.member_id is not None:
            batch.active.add((day, event.partner, event.member_id))
            target = event.data.get("to_partner")
            if event.type == types.POINTS_CONVERTED and isinstance(target, str):
                batch.active.add((day, target, event.member_id))
        if event.type == types.REWARD_REDEEMED:
            _reward(batch, day, event.partner, event.data)
            continue
        if event.points is None:
            continue
        kind = str(event.data.get("kind", ""))
        if kind == "reversal":
            _apply(
                batch,
                day,
                event.partner,
                str(event.data.get("reverses_kind", "")),
                event.points,
                event.data,
                -1,
            )
        else:
            _apply(batch, day, event.partner, kind, event.points, event.data, 1)
    return batch


def _apply(
    batch: Batch,
    day: date,
    partner: str,
    kind: str,
    points: int,
    data: Mapping[str, Any],
    sign: int,
) -> None:
    if kind == "conversion":
        target = data.get("to_partner")
        received = int(data.get("received_points") or 0)
        batch.add(day, partner, "converted_out", sign * points)
        if isinstance(target, str):
            batch.add(day, target, "converted_in", sign * received)
            batch.flow(day, partner, target, "points_out", sign * points)
            batch.flow(day, partner, target, "points_in", sign * received)
        return
    found = _BY_KIND.get(kind)
    if found is not None:
        figure, direction = found
        batch.add(day, partner, figure, sign * direction * points)


def _reward(batch: Batch, day: date, partner: str, data: Mapping[str, Any]) -> None:
    """A reward paid with another partner's points: a flow from the payer to the reward's
    partner (its conversion is a flow of its own too)."""
    paid_with = data.get("paid_with")
    if isinstance(paid_with, str) and paid_with != partner:
        batch.flow(day, paid_with, partner, "reward_points", int(data.get("paid_points") or 0))


def net(row: Mapping[str, int]) -> int:
    """How much a day's figures moved the pool's outstanding points."""
    return (
        row["issued"]
        - row["redeemed"]
        - row["expired"]
        - row["converted_out"]
        + row["converted_in"]
    )


def days(since: datetime, until: datetime) -> tuple[date, date]:
    """The UTC days [first, last] that [since, until) touches (whole days are counted)."""
    for name, moment in (("since", since), ("until", until)):
        if moment.utcoffset() is None:
            raise RangeError(f"`{name}` needs a UTC offset, e.g. 2026-01-01T00:00:00Z.")
    if until <= since:
        raise RangeError("`until` must be after `since`.")
    return utc_day(since), utc_day(until - timedelta(microseconds=1))


def period_start(day: date, granularity: Granularity) -> date:
    if granularity is Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    if granularity is Granularity.MONTH:
        return day.replace(day=1)
    return day


def next_period(start: date, granularity: Granularity) -> date:
    if granularity is Granularity.WEEK:
        return start + timedelta(days=7)
    if granularity is Granularity.MONTH:
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=1)


def count_buckets(first: date, last: date, granularity: Granularity) -> int:
    if granularity is Granularity.DAY:
        return (last - first).days + 1
    if granularity is Granularity.WEEK:
        return (period_start(last, granularity) - period_start(first, granularity)).days // 7 + 1
    return (last.year - first.year) * 12 + last.month - first.month + 1


def buckets(first: date, last: date, granularity: Granularity) -> list[tuple[date, date]]:
    """The periods (start, end inclusive) of [first, last]: calendar days, ISO weeks or
    months, the first and last cut to the range. At most ``MAX_BUCKETS``."""
    count = count_buckets(first, last, granularity)
    if count > MAX_BUCKETS:
        raise RangeError(
            f"That range has {count} {granularity.value}s; at most {MAX_BUCKETS} buckets: "
            "ask for a shorter range or a coarser granularity."
        )
    found: list[tuple[date, date]] = []
    start = first
    while start <= last:
        end = min(next_period(period_start(start, granularity), granularity), last + timedelta(1))
        found.append((start, end - timedelta(days=1)))
        start = end
    return found


def redemption_rate(
    redeemed: int, issued: int, converted_in: int, one_pool: bool
) -> Decimal | None:
    """Points redeemed ÷ points that came into the pool, 4 decimals: those issued and, for
    one partner's pool, those converted in from other pools (a pool whose members spend
    converted-in points would otherwise redeem more than 100 %). For the coalition as a whole
    conversions only move points between its pools: issued alone. None when none came in."""
    came_in = issued + (converted_in if one_pool else 0)
    if came_in <= 0:
        return None
    return (Decimal(redeemed) / Decimal(came_in)).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)
