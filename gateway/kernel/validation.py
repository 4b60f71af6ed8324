"""Checks on what callers send: each failure is a typed error that changes nothing."""

from __future__ import annotations

import unicodedata
from decimal import Decimal, InvalidOperation

from gateway.kernel.errors import DomainError, ErrorCode
from partners.config.coalition import MAX_POINTS

MAX_KEY_LENGTH = 255
MAX_REASON_LENGTH = 500
MAX_CUSTOMER_ID_LENGTH = 128
MAX_PURCHASE_AMOUNT = Decimal("1000000000")
# What an erasure puts before the random tokens that replace personal values
# (gateway.ledger.personal): a caller's customer id or key may not start with it, in any
# case, or erasure and the webhooks would take it for one.
ERASED_PREFIX = "erased:"


def invalid(field: str, message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, (field,))


def _label(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def clean_text(value: str | None, field: str, limit: int, required: bool) -> str | None:
    name = _label(field)
    if value is None or value == "":
        if required:
            raise invalid(field, f"{name} is required.")
        return None
    if len(value) > limit:
        raise invalid(field, f"{name} is longer than {limit} characters.")
    plain = value.isascii() and value.isprintable()  # the usual case, at C speed
    if not plain and any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise invalid(field, f"{name} contains control characters.")
    if required and not value.strip():
        raise invalid(field, f"{name} is blank.")
    return value


def clean_id(value: str | None, field: str, limit: int) -> str:
    """A caller's customer id or idempotency key: required, checked as ``clean_text``
    checks it, and not starting with the prefix erasure reserves (INVALID_INPUT)."""
    cleaned = clean_text(value, field, limit, True)
    assert cleaned is not None
    if cleaned[: len(ERASED_PREFIX)].lower() == ERASED_PREFIX:
        raise invalid(field, f"{_label(field)} may not start with {ERASED_PREFIX!r} (reserved).")
    return cleaned


def check_points(points: int, field: str = "points") -> int:
    if points <= 0:
        raise DomainError(
            ErrorCode.AMOUNT_NOT_POSITIVE, "Points must be a positive whole number.", (field,)
        )
    if points > MAX_POINTS:
        raise DomainError(
            ErrorCode.AMOUNT_OUT_OF_BOUNDS,
            f"At most {MAX_POINTS} points can move in one transfer.",
            (field,),
        )
    return points


def check_amount(amount: Decimal, field: str) -> Decimal:
    """An amount of money: positive, bounded, at most 4 decimals, normalised."""
    name = _label(field)
    try:
        if not amount.is_finite():
            raise InvalidOperation
        normalised = amount.normalize()
    except InvalidOperation:
        raise invalid(field, f"{name} must be a number.") from None
    if amount <= 0:
        raise DomainError(
            ErrorCode.AMOUNT_NOT_POSITIVE, f"{name} must be greater than zero.", (field,)
        )
    if amount > MAX_PURCHASE_AMOUNT:
        raise DomainError(
            ErrorCode.AMOUNT_OUT_OF_BOUNDS,
            f"{name} can be at most {MAX_PURCHASE_AMOUNT}.",
            (field,),
        )
    exponent = normalised.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise invalid(field, f"{name} has more than 4 decimal places.")
    if isinstance(exponent, int) and exponent > 0:
        normalised = normalised.quantize(Decimal(1))
    return normalised
