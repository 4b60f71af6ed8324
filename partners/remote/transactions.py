"""A transaction in a remote partner's ledger, and how its answers are checked into one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from partners.remote.exceptions import malformed
from partners.remote.wire import MAX_POINTS, parse_time

__all__ = ["RemoteTransaction", "TransactionType", "expect", "read_transaction"]

TransactionType = Literal["credit", "debit"]


@dataclass(frozen=True, slots=True)
class RemoteTransaction:
    """A transaction in the partner's ledger, as the partner reported it.

    ``reverses`` is the id of the transaction this one reverses, None for a plain credit or
    debit; a reversal carries the reference of the transaction it reverses.
    """

    id: str
    type: TransactionType
    customer_id: str
    points: int
    balance_after: int
    created_at: datetime
    reference: str
    idempotency_key: str
    reverses: str | None = None


def read_transaction(body: dict[str, Any]) -> RemoteTransaction:
    """The transaction of an answer, every field of the right type, or ``malformed``."""
    fields: dict[str, str] = {}
    for name in ("id", "customer_id", "reference", "idempotency_key"):
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise malformed(f"{name} {value!r} is not a non-empty string")
        fields[name] = value
    kind = body.get("type")
    if kind not in ("credit", "debit"):
        raise malformed(f"type {kind!r} is not credit or debit")
    points, balance_after = body.get("points"), body.get("balance_after")
    if type(points) is not int or not 0 < points <= MAX_POINTS:
        raise malformed(f"points {points!r} is not a positive whole number")
    if type(balance_after) is not int or balance_after < 0:
        raise malformed(f"balance_after {balance_after!r} is not a whole number of points")
    created_at = parse_time(body.get("created_at"))
    if created_at is None:
        raise malformed(f"created_at {body.get('created_at')!r} is not an RFC 3339 time")
    reverses = body.get("reverses")
    if reverses is not None and (not isinstance(reverses, str) or not reverses):
        raise malformed(f"reverses {reverses!r} is not a transaction id")
    return RemoteTransaction(
        id=fields["id"],
        type="credit" if kind == "credit" else "debit",
        customer_id=fields["customer_id"],
        points=points,
        balance_after=balance_after,
        created_at=created_at,
        reference=fields["reference"],
        idempotency_key=fields["idempotency_key"],
        reverses=reverses,
    )


def expect(transaction: RemoteTransaction, **expected: object) -> None:
    """``malformed`` unless the transaction has each expected value: it answers our request."""
    for name, value in expected.items():
        actual = getattr(transaction, name)
        if actual != value:
            raise malformed(f"the answer's {name} {actual!r} does not match the request {value!r}")
