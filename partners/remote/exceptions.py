"""What can go wrong calling a remote pool: an unknown outcome, or a typed refusal."""

from __future__ import annotations

from partners.remote.wire import ALREADY_REVERSED, INSUFFICIENT_POINTS, KEY_REUSED, UNKNOWN_MEMBER

__all__ = [
    "RemoteAlreadyReversed",
    "RemoteError",
    "RemoteInsufficientPoints",
    "RemoteKeyReused",
    "RemoteRefused",
    "RemoteRejected",
    "RemoteUnavailable",
    "RemoteUnknownMember",
    "malformed",
]


class RemoteError(Exception):
    """Anything that went wrong calling a remote pool."""


class RemoteUnavailable(RemoteError):
    """No trustworthy answer: the outcome is unknown (the operation may or may not have
    happened). ``reason`` is ``"timeout"``, ``"connection"``, ``"status"`` (5xx, 408, 425,
    429) or ``"malformed"``; ``detail`` says more."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class RemoteRefused(RemoteError):
    """The partner answered with a refusal: the operation did not happen.

    ``status`` is the HTTP status and ``code`` the contract's ``error`` code (None when the
    body did not carry one).
    """

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RemoteUnknownMember(RemoteRefused):
    """The partner has no member with this customer id."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(404, UNKNOWN_MEMBER, f"the partner has no member {customer_id!r}")
        self.customer_id = customer_id


class RemoteInsufficientPoints(RemoteRefused):
    """A debit (or the debit reversing a credit) would overdraw; ``balance`` is the
    member's balance the partner reported with the refusal."""

    def __init__(self, balance: int) -> None:
        super().__init__(422, INSUFFICIENT_POINTS, f"insufficient points: balance {balance}")
        self.balance = balance


class RemoteKeyReused(RemoteRefused):
    """The idempotency key was already used for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__(409, KEY_REUSED, f"idempotency key {key!r} was used for another request")
        self.key = key


class RemoteAlreadyReversed(RemoteRefused):
    """The transaction was already reversed, under another key, by ``reversal_id``."""

    def __init__(self, transaction_id: str, reversal_id: str) -> None:
        message = f"transaction {transaction_id!r} was already reversed by {reversal_id!r}"
        super().__init__(409, ALREADY_REVERSED, message)
        self.transaction_id = transaction_id
        self.reversal_id = reversal_id


class RemoteRejected(RemoteRefused):
    """Any other refusal (4xx): bad request, bad token (401), unknown transaction,
    not reversible. ``detail`` is the partner's explanation, or its error code."""

    def __init__(self, status: int, code: str | None, detail: str) -> None:
        super().__init__(status, code, f"rejected ({status} {code or 'no code'}): {detail}")
        self.detail = detail


def malformed(detail: str) -> RemoteUnavailable:
    """An answer not to be believed (wrong shape, or not about the request): the outcome
    is unknown."""
    return RemoteUnavailable("malformed", detail)
