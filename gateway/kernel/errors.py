"""Expected business failures, with the stable codes clients branch on."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class ErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    UNKNOWN_PARTNER = "UNKNOWN_PARTNER"
    UNKNOWN_MEMBER = "UNKNOWN_MEMBER"
    UNKNOWN_TRANSFER = "UNKNOWN_TRANSFER"
    AMOUNT_NOT_POSITIVE = "AMOUNT_NOT_POSITIVE"
    AMOUNT_OUT_OF_BOUNDS = "AMOUNT_OUT_OF_BOUNDS"
    AMOUNT_TOO_SMALL = "AMOUNT_TOO_SMALL"
    INSUFFICIENT_POINTS = "INSUFFICIENT_POINTS"
    NO_CONVERSION_RULE = "NO_CONVERSION_RULE"
    SAME_PARTNER = "SAME_PARTNER"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    TRANSFER_ALREADY_REVERSED = "TRANSFER_ALREADY_REVERSED"
    NOT_REVERSIBLE = "NOT_REVERSIBLE"
    ACCESS_DENIED = "ACCESS_DENIED"
    STEP_UP_REQUIRED = "STEP_UP_REQUIRED"
    INVALID_TOKEN = "INVALID_TOKEN"
    LINK_INVALID = "LINK_INVALID"
    UNKNOWN_IDENTITY = "UNKNOWN_IDENTITY"
    LAST_IDENTITY = "LAST_IDENTITY"
    REAUTHENTICATION_REQUIRED = "REAUTHENTICATION_REQUIRED"
    UNKNOWN_HOLD = "UNKNOWN_HOLD"
    HOLD_NOT_OPEN = "HOLD_NOT_OPEN"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    UNKNOWN_REWARD = "UNKNOWN_REWARD"
    REWARD_UNAVAILABLE = "REWARD_UNAVAILABLE"
    OUT_OF_STOCK = "OUT_OF_STOCK"
    REWARD_LIMIT_REACHED = "REWARD_LIMIT_REACHED"
    PERIOD_NOT_AFTER_LAST = "PERIOD_NOT_AFTER_LAST"
    PERIOD_NOT_ENDED = "PERIOD_NOT_ENDED"
    PARTNER_UNAVAILABLE = "PARTNER_UNAVAILABLE"  # a remote pool's outcome is not known yet
    PARTNER_REFUSED = "PARTNER_REFUSED"  # a remote pool refused; nothing was kept
    NOT_AVAILABLE_AT_REMOTE_POOL = "NOT_AVAILABLE_AT_REMOTE_POOL"
    UNKNOWN_CUSTOMER = "UNKNOWN_CUSTOMER"  # a remote pool's partner has no such customer
    # The programme: earning rules, referrals, returns, bulk, tiers, gifting, challenges.
    UNKNOWN_PURCHASE = "UNKNOWN_PURCHASE"
    RETURN_EXCEEDS_PURCHASE = "RETURN_EXCEEDS_PURCHASE"
    ACTIVITY_CAP_REACHED = "ACTIVITY_CAP_REACHED"
    UNKNOWN_ACTIVITY = "UNKNOWN_ACTIVITY"
    UNKNOWN_PROMOTION = "UNKNOWN_PROMOTION"
    UNKNOWN_REFERRAL_CODE = "UNKNOWN_REFERRAL_CODE"
    SELF_REFERRAL = "SELF_REFERRAL"
    ALREADY_REFERRED = "ALREADY_REFERRED"
    TOO_MANY_LINES = "TOO_MANY_LINES"
    SAME_MEMBER = "SAME_MEMBER"
    GIFT_LIMIT_EXCEEDED = "GIFT_LIMIT_EXCEEDED"
    UNKNOWN_CHALLENGE = "UNKNOWN_CHALLENGE"
    UNKNOWN_TIER = "UNKNOWN_TIER"
    TIER_REQUIRED = "TIER_REQUIRED"  # a reward for a higher tier than the member's
    # Concurrent changes (deadlocks, merges) kept the operation from completing after the
    # gateway's own retries; nothing was written: retry with the same idempotency key.
    CONTENTION = "CONTENTION"
    # Members' data rights: the member's personal data was erased; nothing more is done
    # for them (their id stays, for the ledger's history).
    MEMBER_ERASED = "MEMBER_ERASED"
    # A configuration that does not load (the message names the document and field).
    INVALID_CONFIGURATION = "INVALID_CONFIGURATION"
    # Conversion rules through which a round trip returns more points than it took.
    RATES_ALLOW_ARBITRAGE = "RATES_ALLOW_ARBITRAGE"
    # Webhooks: a URL the gateway will not call (scheme, credentials, private address).
    WEBHOOK_URL_REFUSED = "WEBHOOK_URL_REFUSED"
    UNKNOWN_WEBHOOK_ENDPOINT = "UNKNOWN_WEBHOOK_ENDPOINT"
    UNKNOWN_WEBHOOK_DELIVERY = "UNKNOWN_WEBHOOK_DELIVERY"
    WEBHOOK_ENDPOINT_LIMIT = "WEBHOOK_ENDPOINT_LIMIT"


def shown(value: str, limit: int = 40) -> str:
    """A caller's value quoted in a message, cut short so a message stays a message."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


class DomainError(Exception):
    """A failure the caller can act on; it changes nothing in the ledger."""

    def __init__(self, code: ErrorCode, message: str, field: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # The field at fault, named as the operation that raised it names its arguments
        # (snake_case; list positions as digits). The API layer places it in its input.
        self.field = field

    def placed(self, where: Mapping[str, tuple[str, ...]]) -> DomainError:
        """The same error with its field's first part replaced by the path ``where`` gives
        for it (the same error when ``where`` has none)."""
        if not self.field or self.field[0] not in where:
            return self
        return DomainError(self.code, self.message, (*where[self.field[0]], *self.field[1:]))

    def within(self, *prefix: str) -> DomainError:
        """The same error with ``prefix`` in front of its field (none: it stays fieldless)."""
        if not self.field:
            return self
        return DomainError(self.code, self.message, (*prefix, *self.field))
