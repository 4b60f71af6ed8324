"""One line's values (a CSV row's text, a JSON object's values) as a checked bulk earn: the
first problem is raised as the DomainError a rejected line reports."""

from __future__ import annotations

import uuid
from base64 import b64decode
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.earning import rules
from gateway.earning.bulk import BulkLine
from gateway.earning.rules import Line
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.validation import (
    MAX_CUSTOMER_ID_LENGTH,
    MAX_KEY_LENGTH,
    MAX_REASON_LENGTH,
    check_amount,
    check_points,
    clean_id,
    clean_text,
    invalid,
)
from gateway.ledger.records import MemberRef


def bulk_line(values: dict[str, Any], partner: str, now: datetime) -> BulkLine:
    """One earn of the file, checked; raises the first problem as a DomainError."""
    key = clean_id(_text(values, "idempotency_key"), "idempotency_key", MAX_KEY_LENGTH)
    customer_id, member_id = _text(values, "customer_id"), _text(values, "member_id")
    if (customer_id is None) == (member_id is None):
        raise invalid("member", "Give either customer_id or member_id.")
    if member_id is not None:
        found = member_of(member_id)
        if found is None:
            raise DomainError(ErrorCode.UNKNOWN_MEMBER, "No such member.", ("member_id",))
        member = MemberRef(id=found)
    else:
        customer = clean_id(customer_id, "customer_id", MAX_CUSTOMER_ID_LENGTH)
        member = MemberRef(partner=partner, customer_id=customer)
    if ("amount" in values) == ("points" in values):
        raise invalid("amount", "Give either amount or points.")
    points = amount = None
    lines: list[Line] = []
    if "points" in values:
        if "lines" in values:
            raise invalid("lines", "Lines go with an amount, not with points.")
        points = check_points(_integer(values["points"]))
    else:
        amount = check_amount(_decimal(values["amount"], "amount"), "amount")
        lines = _lines(values.get("lines", []))
    occurred = _text(values, "occurred_at")
    occurred_at = None if occurred is None else moment(occurred, now)
    reason = clean_text(_text(values, "reason"), "reason", MAX_REASON_LENGTH, False)
    return BulkLine(member, key, points, amount, lines, reason, occurred_at)


def _text(values: dict[str, Any], name: str) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, f"{name} must be text.")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid("points", "points must be a whole number.")
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit() or len(text) > 20:
            raise invalid("points", "points must be a whole number.")
        return int(text)
    return value


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise invalid(name, f"{name} must be a number.")
    try:
        return Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise invalid(name, f"{name} must be a number.") from None


def _lines(value: Any) -> list[Line]:
    if not isinstance(value, list):
        raise invalid("lines", "lines must be a JSON array.")
    if len(value) > rules.MAX_LINES:
        raise invalid("lines", f"At most {rules.MAX_LINES} lines per purchase.")
    found = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or set(item) - {"amount", "sku", "category"}:
            raise invalid("lines", f"lines[{index}] must be an object of amount, sku, category.")
        if "amount" not in item:
            raise invalid("lines", f"lines[{index}] has no amount.")
        sku, category = item.get("sku"), item.get("category")
        if not isinstance(sku, str | None) or not isinstance(category, str | None):
            raise invalid("lines", f"lines[{index}]: sku and category must be text.")
        found.append(
            Line(check_amount(_decimal(item["amount"], "amount"), "amount"), sku, category)
        )
    return found


def moment(text: str, now: datetime) -> datetime:
    """An ``occurred_at``: ISO 8601 with an offset, in the bounds earning allows
    (``earning.rules.occurred``: not in the future beyond the clocks' skew, not too old)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise invalid(
            "occurred_at", f"occurred_at is not an ISO 8601 moment: {shown(text)}."
        ) from None
    if value.tzinfo is None:
        raise invalid("occurred_at", "occurred_at needs an offset, e.g. 2026-05-01T10:00:00Z.")
    checked = rules.occurred(value, now)
    assert checked is not None
    return checked


def member_of(value: str) -> str | None:
    """A member's id: its UUID, or its global id (``Member.id``)."""
    text = value.strip()
    try:
        return str(uuid.UUID(text))
    except ValueError:
        pass
    try:
        kind, _, node = b64decode(text, validate=True).decode().partition(":")
        return str(uuid.UUID(node)) if kind == "Member" else None
    except (ValueError, UnicodeError):
        return None
