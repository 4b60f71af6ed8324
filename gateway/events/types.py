"""The event types: stable names, documented in the README ("Events and jobs")."""

from __future__ import annotations

POINTS_EARNED = "points.earned"
POINTS_REDEEMED = "points.redeemed"
POINTS_CONVERTED = "points.converted"
TRANSFER_REVERSED = "transfer.reversed"
POINTS_GIFTED = "points.gifted"
HOLD_PLACED = "hold.placed"
HOLD_CAPTURED = "hold.captured"
HOLD_RELEASED = "hold.released"
POINTS_EXPIRED = "points.expired"
POINTS_MATURED = "points.matured"
POINTS_CLAWED_BACK = "points.clawed_back"
MEMBER_MERGED = "member.merged"
REWARD_REDEEMED = "reward.redeemed"
SETTLEMENT_CLOSED = "settlement.closed"
MEMBER_ENROLLED = "member.enrolled"
MEMBER_ERASED = "member.erased"
CONFIGURATION_CHANGED = "configuration.changed"

# A ledger transfer's kind (``TransferKind.value``) -> the type of the event recording it.
BY_TRANSFER_KIND: dict[str, str] = {
    "earn": POINTS_EARNED,
    "redeem": POINTS_REDEEMED,
    "conversion": POINTS_CONVERTED,
    "reversal": TRANSFER_REVERSED,
    "merge": MEMBER_MERGED,
    "hold": HOLD_PLACED,
    "capture": HOLD_CAPTURED,
    "release": HOLD_RELEASED,
    "expiry": POINTS_EXPIRED,
    "gift": POINTS_GIFTED,
    "mature": POINTS_MATURED,
    "clawback": POINTS_CLAWED_BACK,
}

ALL = (
    POINTS_EARNED,
    POINTS_REDEEMED,
    POINTS_CONVERTED,
    TRANSFER_REVERSED,
    POINTS_GIFTED,
    HOLD_PLACED,
    HOLD_CAPTURED,
    HOLD_RELEASED,
    POINTS_EXPIRED,
    POINTS_MATURED,
    POINTS_CLAWED_BACK,
    MEMBER_MERGED,
    REWARD_REDEEMED,
    SETTLEMENT_CLOSED,
    MEMBER_ENROLLED,
    MEMBER_ERASED,
    CONFIGURATION_CHANGED,
)
