"""The tier rules, free of the database: where a member's tier stands at a moment, given
their qualifying value then.

- **Upgrade** as soon as the value reaches a higher tier: that tier from now, reviewed one
  window later.
- **Review** at ``review_at``: a value that still reaches the tier keeps it for another
  window; otherwise the member keeps it ``grace_days`` more (``downgrade_at``).
- **Grace**: reaching the tier's value again before ``downgrade_at`` keeps it (reviewed a
  window after the missed review); at ``downgrade_at`` the member drops to the tier the value
  reaches then.
- **Bought**: a tier-upgrade reward gives its tier for one window from now; a tier at or
  below the member's own never lowers it.

The first tier is everyone's and is never reviewed. A tier no longer in the configuration
counts as the first.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from partners.config.tiers import Tier, Tiers

MAX_STEPS = 1000  # each step moves a date forward; a member reviewed decades late still ends


@dataclass(frozen=True)
class TierState:
    tier: str  # a tier's slug
    since: datetime | None  # None: in the first tier from the start, never moved
    review_at: datetime | None = None  # None in the first tier
    downgrade_at: datetime | None = None  # the end of the grace after a failed review


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` moved by whole calendar months (negative: back), the day clamped to the
    month's last (31 January + 1 month = 28 or 29 February)."""
    total = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(total, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def window_start(tiers: Tiers, now: datetime) -> datetime:
    """The qualifying window is (start, now]: ``window_months`` back from now."""
    return add_months(now, -tiers.window_months)


def initial(tiers: Tiers) -> TierState:
    """A member who never left the first tier (no stored row)."""
    return TierState(tiers.base.slug, None)


def tier_of(tiers: Tiers, state: TierState) -> Tier:
    return tiers.tier(state.tier) or tiers.base


def advance(tiers: Tiers, state: TierState, value: Decimal, now: datetime) -> TierState:
    """The state at ``now`` for a qualifying value of ``value``, applying every upgrade,
    review and downgrade due by then, in order."""
    for _ in range(MAX_STEPS):
        following = _step(tiers, state, value, now)
        if following == state:
            return state
        state = following
    return state


def _step(tiers: Tiers, state: TierState, value: Decimal, now: datetime) -> TierState:
    tier, reached = tier_of(tiers, state), tiers.for_value(value)
    if reached.rank > tier.rank:
        return _hold(tiers, reached, now)
    if tier.rank == 0:
        return TierState(tier.slug, state.since)  # everyone's tier: never reviewed
    review_at = state.review_at or add_months(state.since or now, tiers.window_months)
    if reached.rank == tier.rank:
        if state.downgrade_at is not None or review_at <= now:
            # Requalified at the review, or during the grace after it.
            return replace(state, review_at=_next_review(tiers, review_at, now), downgrade_at=None)
        return replace(state, review_at=review_at)
    if state.downgrade_at is None:
        if review_at <= now:
            return replace(
                state, review_at=review_at, downgrade_at=review_at + timedelta(tiers.grace_days)
            )
        return replace(state, review_at=review_at)
    if state.downgrade_at <= now:
        if reached.rank == 0:
            return TierState(reached.slug, state.downgrade_at)
        return _hold(tiers, reached, state.downgrade_at)
    return state


def _hold(tiers: Tiers, tier: Tier, start: datetime) -> TierState:
    """``tier`` from ``start``, reviewed one window later."""
    return TierState(tier.slug, start, add_months(start, tiers.window_months))


def _next_review(tiers: Tiers, review_at: datetime, now: datetime) -> datetime:
    """The first anniversary of ``review_at`` (every ``window_months``) after ``now``."""
    following = add_months(review_at, tiers.window_months)
    for _ in range(MAX_STEPS):
        if following > now:
            break
        following = add_months(following, tiers.window_months)
    return following


def bought(tiers: Tiers, state: TierState, target: Tier, now: datetime) -> TierState | None:
    """The state after buying ``target`` for one window; None when the member's own tier is
    higher (buying it would change nothing)."""
    tier = tier_of(tiers, state)
    if target.rank == 0:
        return None  # everyone's tier: nothing to buy
    if target.rank > tier.rank:
        return _hold(tiers, target, now)
    if target.rank < tier.rank:
        return None
    ends = add_months(now, tiers.window_months)
    review_at = state.review_at if state.review_at and state.review_at > ends else ends
    return TierState(tier.slug, state.since or now, review_at)
