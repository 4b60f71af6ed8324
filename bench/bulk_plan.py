"""bench/bulk_sql.py's Python side: what each line of a batch of purchases earns and what it
leaves of the member's tier, before the batch is written set-based.

It follows the gateway's earn line by line (gateway/earning/purchases.py ``earn``, then
``ProgrammeObserver.posted``): the member's context (bought here before, purchases in the
frequency bonus's period, tier multiplier) read once per member at the start of the batch
and carried forward in batch order, the pure earning rules (``gateway.earning.rules``), and
the running qualifying value with the tier rules (``gateway.tiers.rules``) after each line,
so that a member reaching a tier in the middle of a batch earns its multiplier from their
next line on, as one earn at a time would.

Promotions created through the API are not read (the bench creates none); the config's
are applied by ``breakdown``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from gateway.earning import rules as earning
from gateway.kernel.errors import DomainError
from gateway.ledger.posting import fingerprint
from gateway.tiers.rules import TierState, advance, initial, tier_of
from gateway.tiers.service import valuation
from partners.config.coalition import Coalition


@dataclass(frozen=True)
class DirectLine:
    """One purchase to post: the member (by id), the caller's key, the amount."""

    member_id: str
    key: str
    amount: Decimal
    reason: str | None = None


@dataclass(frozen=True)
class Window:
    """A member's ``tier_values`` row as of the batch's window start (see
    gateway/tiers/values.py): the contributions after ``through``, per partner."""

    through: datetime
    next_leave: datetime | None
    points: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MemberState:
    """What the batch reads of a member once, under the member lock."""

    earned_here_before: bool = False
    purchases_in_period: int = 0
    tier: TierState | None = None  # the stored ``member_tiers`` row; None: the first tier
    window: Window | None = None  # None: the coalition has no tiers
    owed: int = 0
    held: int = 0
    pending: int = 0


@dataclass(frozen=True)
class PlannedLine:
    index: int  # the line's place in the batch
    member_id: str
    key: str
    amount: Decimal
    reason: str | None
    points: int
    breakdown: str  # the purchase's breakdown, JSON as the gateway stores it
    request_hash: str


@dataclass
class Plan:
    lines: list[PlannedLine] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (index, error code)
    tiers: dict[str, TierState] = field(default_factory=dict)  # members whose tier changes
    windows: dict[str, Window] = field(default_factory=dict)  # the new tier_values rows


def request_hash(member_id: str, amount: Decimal, reason: str | None) -> str:
    """The request fingerprint the gateway stores for an earn of a purchase by member id."""
    request = {
        "member": {"id": member_id},
        "purchase": {"amount": str(amount), "lines": []},
        "reason": reason,
    }
    return fingerprint(request)


def plan(
    coalition: Coalition,
    partner: str,
    lines: list[DirectLine],
    states: dict[str, MemberState],
    now: datetime,
) -> Plan:
    """Each line's points and breakdown, in batch order; members missing from ``states``
    are unknown (their lines fail)."""
    config = coalition.partners[partner]
    tiers = coalition.tiers
    wanted = any(p.tier and p.in_force_at(now) for p in config.earning.promotions)
    tiered = tiers is not None and (tiers.has_benefit_at(partner) or wanted)
    result = Plan()
    current = dict(states)
    # The tier each member holds before their next line: after their first line, the state
    # their last line left (advancing it again at the same value and moment changes nothing).
    holding: dict[str, TierState] = {}
    for index, line in enumerate(lines):
        state = current.get(line.member_id)
        if state is None:
            result.failed.append((index, "UNKNOWN_MEMBER"))
            continue
        tier_slug, multiplier = None, Decimal(1)
        if tiers is not None and tiered:
            held = holding.get(line.member_id)
            if held is None:
                assert state.window is not None
                value = valuation(coalition.partners, state.window.points)
                held = advance(tiers, state.tier or initial(tiers), value, now)
            tier = tier_of(tiers, held)
            tier_slug, multiplier = tier.slug, tier.multiplier_at(partner)
        context = earning.Member(
            tier=tier_slug,
            tier_multiplier=multiplier,
            earned_here_before=state.earned_here_before,
            purchases_in_period=state.purchases_in_period if state.earned_here_before else 0,
        )
        try:
            awards = earning.breakdown(config, earning.purchase(line.amount, []), context, now)
            points = earning.total(awards)
        except DomainError as error:
            result.failed.append((index, error.code.value))
            continue
        breakdown = json.dumps([[a.rule, a.description, a.points] for a in awards])
        result.lines.append(
            PlannedLine(
                index,
                line.member_id,
                line.key,
                line.amount,
                line.reason,
                points,
                breakdown,
                request_hash(line.member_id, line.amount, line.reason),
            )
        )
        window, tier_state = state.window, state.tier
        if tiers is not None:
            assert window is not None
            window = contributed(window, partner, points, now)
            value = valuation(coalition.partners, window.points)
            stored = state.tier or initial(tiers)
            tier_state = advance(tiers, stored, value, now)
            if tier_state != stored:
                result.tiers[line.member_id] = tier_state
            holding[line.member_id] = tier_state
            result.windows[line.member_id] = window
        current[line.member_id] = MemberState(
            True,
            state.purchases_in_period + 1,
            tier_state,
            window,
            state.owed,
            state.held,
            state.pending,
        )
    return result


def contributed(window: Window, partner: str, points: int, at: datetime) -> Window:
    """``window`` with a contribution of ``points`` at ``partner`` effective at ``at``
    (gateway/tiers/values.py ``contribute``)."""
    if at <= window.through:
        return window
    summed = dict(window.points)
    summed[partner] = summed.get(partner, 0) + points
    following = at if window.next_leave is None else min(window.next_leave, at)
    return Window(window.through, following, plain(summed))


def plain(points: dict[str, int]) -> dict[str, int]:
    return {partner: amount for partner, amount in sorted(points.items()) if amount}


def wallet_json(member_id: str, pool: str, balance: int, state: MemberState) -> str:
    """The purchase's ``wallet`` column: the wallet as the earn left it."""
    return json.dumps(
        {
            "member": member_id,
            "pool": pool,
            "balance": balance,
            "owed": state.owed,
            "pending": state.pending,
            "held": state.held,
        }
    )
