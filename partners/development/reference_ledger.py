"""The reference partner's books: members, balances, transactions, keys; atomic operations."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from partners.remote.wire import (
    ALREADY_REVERSED,
    INSUFFICIENT_POINTS,
    INVALID_REQUEST,
    KEY,
    KEY_REUSED,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_POINTS,
    MAX_REFERENCE_LENGTH,
    NOT_REVERSIBLE,
    UNKNOWN_KEY,
    UNKNOWN_MEMBER,
    UNKNOWN_TRANSACTION,
    format_time,
    text_ok,
)

MAX_BODY = 16 * 1024

Body = dict[str, Any]


class Answer(NamedTuple):
    """What an operation answers: the HTTP status, the JSON body, and whether it replays
    the answer bound to the request's key."""

    status: int
    body: Body
    replayed: bool = False


@dataclass(frozen=True)
class _Outcome:
    """What a processed request bound to its key: the request's fingerprint and the answer."""

    fingerprint: tuple[object, ...]
    status: int
    body: Body
    transaction_id: str | None


class ReferenceLedger:
    """The partner's members and transactions, in memory.

    ``clock`` dates the transactions; with ``open_enrolment`` any customer id is a member
    with no points yet. The operations take the request's ``Idempotency-Key`` and answer as
    the contract says.
    """

    def __init__(self, clock: Callable[[], datetime], open_enrolment: bool) -> None:
        self._clock = clock
        self._open_enrolment = open_enrolment  # any customer id is a member
        self._lock = threading.Lock()
        self._balances: dict[str, int] = {}
        self._transactions: dict[str, Body] = {}  # id -> wire representation, in order
        self._reversed_by: dict[str, str] = {}  # transaction id -> id of its reversal
        self._by_key: dict[str, _Outcome] = {}

    def clear(self) -> None:
        """Forget every member, transaction and key."""
        with self._lock:
            self._balances.clear()
            self._transactions.clear()
            self._reversed_by.clear()
            self._by_key.clear()

    def add_member(self, customer_id: str, balance: int = 0) -> None:
        """Enrol a member (or set an existing member's balance) with whole points."""
        if not text_ok(customer_id, MAX_CUSTOMER_ID_LENGTH):
            raise ValueError(f"invalid customer id {customer_id!r}")
        if type(balance) is not int or balance < 0:
            raise ValueError("a balance is a whole number of points, zero or more")
        with self._lock:
            self._balances[customer_id] = balance

    def balance_of(self, customer_id: str) -> int:
        """The member's balance now; ``KeyError`` for an unknown member."""
        with self._lock:
            return self._balances[customer_id]

    def transactions(self) -> list[Body]:
        """Every transaction created, oldest first, as the API represents it."""
        with self._lock:
            return [dict(body) for body in self._transactions.values()]

    def read_balance(self, customer_id: str) -> Answer:
        with self._lock:
            balance = self._balances.get(customer_id)
        if balance is None and self._open_enrolment:
            balance = 0
        if balance is None:
            return Answer(404, {"error": UNKNOWN_MEMBER})
        return Answer(200, {"customer_id": customer_id, "balance": balance})

    def lookup(self, key: str) -> Answer:
        with self._lock:
            outcome = self._by_key.get(key)
            if outcome is None or outcome.transaction_id is None:
                return Answer(404, {"error": UNKNOWN_KEY})
            return Answer(200, dict(self._transactions[outcome.transaction_id]))

    def post_transaction(self, key: str | None, raw: bytes) -> Answer:
        parsed = _parse_transaction(raw)
        problem = _check_key(key) or (parsed if isinstance(parsed, str) else None)
        if problem is not None or key is None or isinstance(parsed, str):
            return Answer(400, {"error": INVALID_REQUEST, "detail": problem})
        kind, customer_id, points, reference = parsed
        fingerprint = ("transaction", kind, customer_id, points, reference)
        with self._lock:
            known = self._replay(key, fingerprint)
            if known is not None:
                return known
            balance = self._balances.get(customer_id)
            if balance is None and self._open_enrolment:
                balance = self._balances[customer_id] = 0
            if balance is None:
                return self._bind(key, fingerprint, 404, {"error": UNKNOWN_MEMBER})
            if kind == "debit" and points > balance:
                refusal: Body = {"error": INSUFFICIENT_POINTS, "balance": balance}
                return self._bind(key, fingerprint, 422, refusal)
            return self._create(key, fingerprint, kind, customer_id, points, reference, None)

    def post_reversal(self, key: str | None, original_id: str) -> Answer:
        problem = _check_key(key)
        if problem is not None or key is None:
            return Answer(400, {"error": INVALID_REQUEST, "detail": problem})
        fingerprint: tuple[object, ...] = ("reversal", original_id)
        with self._lock:
            known = self._replay(key, fingerprint)
            if known is not None:
                return known
            original = self._transactions.get(original_id)
            if original is None:
                return self._bind(key, fingerprint, 404, {"error": UNKNOWN_TRANSACTION})
            if original["reverses"] is not None:
                refusal: Body = {"error": NOT_REVERSIBLE, "detail": "a reversal cannot be reversed"}
                return self._bind(key, fingerprint, 422, refusal)
            if original_id in self._reversed_by:
                refusal = {"error": ALREADY_REVERSED, "reversal_id": self._reversed_by[original_id]}
                return self._bind(key, fingerprint, 409, refusal)
            kind = "credit" if original["type"] == "debit" else "debit"
            customer_id, points = original["customer_id"], original["points"]
            balance = self._balances[customer_id]
            if kind == "debit" and points > balance:
                refusal = {"error": INSUFFICIENT_POINTS, "balance": balance}
                return self._bind(key, fingerprint, 422, refusal)
            return self._create(
                key, fingerprint, kind, customer_id, points, original["reference"], original_id
            )

    def _replay(self, key: str, fingerprint: tuple[object, ...]) -> Answer | None:
        """The bound answer for a retry, 409 for another request under the key, else None."""
        outcome = self._by_key.get(key)
        if outcome is None:
            return None
        if outcome.fingerprint != fingerprint:
            return Answer(409, {"error": KEY_REUSED})
        status = 200 if outcome.status == 201 else outcome.status
        return Answer(status, dict(outcome.body), replayed=True)

    def _bind(
        self,
        key: str,
        fingerprint: tuple[object, ...],
        status: int,
        body: Body,
        transaction_id: str | None = None,
    ) -> Answer:
        self._by_key[key] = _Outcome(fingerprint, status, dict(body), transaction_id)
        return Answer(status, body)

    def _create(
        self,
        key: str,
        fingerprint: tuple[object, ...],
        kind: str,
        customer_id: str,
        points: int,
        reference: str,
        reverses: str | None,
    ) -> Answer:
        balance = self._balances[customer_id] + (points if kind == "credit" else -points)
        self._balances[customer_id] = balance
        transaction_id = f"tx_{uuid.uuid4().hex}"
        body: Body = {
            "id": transaction_id,
            "type": kind,
            "customer_id": customer_id,
            "points": points,
            "balance_after": balance,
            "created_at": format_time(self._clock()),
            "reference": reference,
            "idempotency_key": key,
            "reverses": reverses,
        }
        self._transactions[transaction_id] = body
        if reverses is not None:
            self._reversed_by[reverses] = transaction_id
        return self._bind(key, fingerprint, 201, dict(body), transaction_id)


def _check_key(key: str | None) -> str | None:
    if key is None:
        return "the Idempotency-Key header is required"
    if not KEY.fullmatch(key):
        return "Idempotency-Key must be 1 to 255 characters from A-Z a-z 0-9 . _ ~ : -"
    return None


def _parse_transaction(raw: bytes) -> tuple[str, str, int, str] | str:
    """The (type, customer_id, points, reference) of a request body, or what is wrong."""
    if len(raw) > MAX_BODY:
        return f"the body is larger than {MAX_BODY} bytes"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "the body is not JSON"
    if not isinstance(data, dict):
        return "the body must be a JSON object"
    fields = {"type", "customer_id", "points", "reference"}
    if set(data) != fields:
        missing, extra = fields - set(data), set(data) - fields
        return "; ".join(
            [f"missing: {', '.join(sorted(missing))}"] * bool(missing)
            + [f"unknown: {', '.join(sorted(extra))}"] * bool(extra)
        )
    kind, customer_id, points, reference = (
        data["type"],
        data["customer_id"],
        data["points"],
        data["reference"],
    )
    if kind not in ("credit", "debit"):
        return "type must be 'credit' or 'debit'"
    if not text_ok(customer_id, MAX_CUSTOMER_ID_LENGTH):
        return f"customer_id must be 1 to {MAX_CUSTOMER_ID_LENGTH} characters, no controls"
    if type(points) is not int or not 0 < points <= MAX_POINTS:
        return f"points must be a whole number from 1 to {MAX_POINTS}"
    if not text_ok(reference, MAX_REFERENCE_LENGTH):
        return f"reference must be 1 to {MAX_REFERENCE_LENGTH} characters, no controls"
    return kind, customer_id, points, reference
