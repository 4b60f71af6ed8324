"""A reference partner points service implementing ``openapi.yaml``, with fault injection.

For tests and development only: members, balances and transactions live in memory behind
one lock, so every request is processed atomically. ``ReferencePartner.faults`` scripts what
happens to the next matching requests (a 500 before or after the work, a slow answer before
or after the work, a request delivered twice, a stale answer), so that callers can be tested
against every way a partner's API can fail. ``serve_reference_in_thread`` serves it with
uvicorn on a free loopback port.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, get_args

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..serving import serve_on_loopback
from .wire import (
    ALREADY_REVERSED,
    INSUFFICIENT_POINTS,
    INVALID_REQUEST,
    KEY,
    KEY_REUSED,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_POINTS,
    MAX_REFERENCE_LENGTH,
    NOT_REVERSIBLE,
    UNAUTHORIZED,
    UNKNOWN_KEY,
    UNKNOWN_MEMBER,
    UNKNOWN_TRANSACTION,
    format_time,
    text_ok,
)

__all__ = [
    "BALANCE",
    "BY_KEY",
    "MODES",
    "REVERSAL",
    "ROUTES",
    "TRANSACTIONS",
    "Call",
    "Faults",
    "Mode",
    "ReferencePartner",
    "serve_reference_in_thread",
]

Mode = Literal[
    "error", "error_after", "timeout_before", "timeout_after", "duplicate", "replay_answer"
]
MODES: tuple[Mode, ...] = get_args(Mode)

BALANCE = "GET /members/{customer_id}/balance"
TRANSACTIONS = "POST /transactions"
REVERSAL = "POST /transactions/{id}/reversal"
BY_KEY = "GET /transactions/by-key/{idempotency_key}"
ROUTES = (BALANCE, TRANSACTIONS, REVERSAL, BY_KEY)
"""The names ``Faults.fail_next`` accepts: the contract's operations as method and template."""

MAX_BODY = 16 * 1024

Body = dict[str, Any]


class _Answer(NamedTuple):
    status: int
    body: Body
    replayed: bool = False


_FAILED = _Answer(500, {"error": "internal_error"})
Work = Callable[[str | None, bytes], _Answer]
"""An operation: given the ``Idempotency-Key`` (or None) and the body, its answer."""


class Call(NamedTuple):
    """A request the partner received: method, path (decoded) and ``Idempotency-Key``."""

    method: str
    path: str
    key: str | None


@dataclass(frozen=True)
class _Fault:
    mode: Mode
    delay: float


@dataclass(frozen=True)
class _Outcome:
    """What a processed request bound to its key: the request's fingerprint and the answer."""

    fingerprint: tuple[object, ...]
    status: int
    body: Body
    transaction_id: str | None


class Faults:
    """Scripted failures for the next requests of a route, taken in the order they were added.

    Modes, each applying to one request (``times`` queues several):

    - ``error``: answer 500 without doing anything.
    - ``error_after``: do the work, then answer 500 (the caller cannot know it happened).
    - ``timeout_before``: wait ``delay`` seconds, then do the work and answer; a caller with a
      shorter timeout has given up, and the work lands while it retries or looks the key up.
    - ``timeout_after``: do the work, then wait ``delay`` seconds before answering.
    - ``duplicate``: the request is delivered twice (as by a retrying proxy): it is processed
      twice and the second answer, a replay, is returned.
    - ``replay_answer``: a buggy partner: do nothing and answer 200 with the body of the last
      successful answer on the same route, whatever request it was for (500 if there is none).
    """

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = delay
        """Seconds the ``timeout_*`` modes wait unless ``fail_next`` gives another delay."""
        self._lock = threading.Lock()
        self._queued: dict[str, deque[_Fault]] = {route: deque() for route in ROUTES}

    def fail_next(
        self, route: str, mode: Mode, *, times: int = 1, delay: float | None = None
    ) -> None:
        """Apply ``mode`` to the next ``times`` requests of ``route`` (one of ``ROUTES``)."""
        if route not in self._queued:
            raise ValueError(f"unknown route {route!r}; one of {', '.join(ROUTES)}")
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {', '.join(MODES)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = _Fault(mode, self.delay if delay is None else delay)
        with self._lock:
            self._queued[route].extend([fault] * times)

    def pending(self) -> list[tuple[str, Mode]]:
        """The faults not yet applied, as (route, mode), in the order they will apply."""
        with self._lock:
            return [(route, f.mode) for route, queue in self._queued.items() for f in queue]

    def clear(self) -> None:
        """Drop every fault not yet applied."""
        with self._lock:
            for queue in self._queued.values():
                queue.clear()

    def _take(self, route: str) -> _Fault | None:
        with self._lock:
            queue = self._queued[route]
            return queue.popleft() if queue else None


class ReferencePartner:
    """An in-memory partner points service behind one bearer ``token``.

    ``members`` maps customer ids to opening balances; with ``open_enrolment``
    any other customer id is a member with no points yet. ``app`` is the Starlette application;
    ``faults`` (and the shortcut ``fail_next``) script failures; ``calls`` lists the requests
    received; ``balance_of`` and ``transactions`` show what the partner actually did.
    """

    def __init__(
        self,
        token: str,
        members: dict[str, int] | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        open_enrolment: bool = False,
    ) -> None:
        if not token:
            raise ValueError("the reference partner needs a token")
        self._token = token.encode()
        self._clock = clock
        self._open_enrolment = open_enrolment  # any customer id is a member
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._balances: dict[str, int] = {}
        self._transactions: dict[str, Body] = {}  # id -> wire representation, in order
        self._reversed_by: dict[str, str] = {}  # transaction id -> id of its reversal
        self._by_key: dict[str, _Outcome] = {}
        self._last_success: dict[str, Body] = {}  # route -> body, for "replay_answer"
        self._calls: list[Call] = []
        for customer_id, balance in (members or {}).items():
            self.add_member(customer_id, balance)
        self.faults = Faults()
        self.fail_next = self.faults.fail_next
        self.app = Starlette(
            routes=[
                Route("/members/{customer_id:path}/balance", self._balance, methods=["GET"]),
                Route("/transactions", self._transaction, methods=["POST"]),
                Route("/transactions/{id:path}/reversal", self._reversal, methods=["POST"]),
                Route("/transactions/by-key/{key:path}", self._by_key_lookup, methods=["GET"]),
            ],
            exception_handlers={HTTPException: _http_error, Exception: _server_error},
        )

    @property
    def token(self) -> str:
        """The bearer token it accepts."""
        return self._token.decode()

    # ---- inspection, for tests -----------------------------------------------------------

    def reset(self, members: dict[str, int] | None = None) -> None:
        """Forget everything (members, transactions, keys, calls, faults) and enrol
        ``members`` afresh, so that one served partner can be reused test after test."""
        self.faults.clear()
        with self._lock:
            self._balances.clear()
            self._transactions.clear()
            self._reversed_by.clear()
            self._by_key.clear()
            self._last_success.clear()
            self._calls.clear()
        for customer_id, balance in (members or {}).items():
            self.add_member(customer_id, balance)

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

    @property
    def calls(self) -> list[Call]:
        """Every request received so far, in order, also those refused or failed by a fault."""
        with self._lock:
            return list(self._calls)

    @property
    def transactions(self) -> list[Body]:
        """Every transaction created, oldest first, as the API represents it."""
        with self._lock:
            return [dict(body) for body in self._transactions.values()]

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until no request is being handled (a delayed one may still land); False if
        ``timeout`` seconds pass first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # ---- HTTP ------------------------------------------------------------------------------

    async def _balance(self, request: Request) -> Response:
        customer_id = request.path_params["customer_id"]
        return await self._handle(BALANCE, request, lambda _k, _b: self._read_balance(customer_id))

    async def _transaction(self, request: Request) -> Response:
        return await self._handle(TRANSACTIONS, request, self._post_transaction)

    async def _reversal(self, request: Request) -> Response:
        original = request.path_params["id"]
        return await self._handle(REVERSAL, request, lambda k, _b: self._post_reversal(k, original))

    async def _by_key_lookup(self, request: Request) -> Response:
        key = request.path_params["key"]
        return await self._handle(BY_KEY, request, lambda _k, _b: self._lookup(key))

    async def _handle(self, route: str, request: Request, work: Work) -> Response:
        """Record the call, authenticate, then run ``work`` under the fault for ``route``."""
        key = request.headers.get("idempotency-key")
        with self._lock:
            self._calls.append(Call(request.method, request.url.path, key))
            self._in_flight += 1
        try:
            if not self._authorised(request):
                return JSONResponse(
                    {"error": UNAUTHORIZED}, 401, headers={"WWW-Authenticate": "Bearer"}
                )
            raw = await request.body()
            answer = await self._with_fault(route, lambda: work(key, raw))
            headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
            return JSONResponse(answer.body, answer.status, headers=headers)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _authorised(self, request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self._token
        )

    async def _with_fault(self, route: str, work: Callable[[], _Answer]) -> _Answer:
        fault = self.faults._take(route)
        if fault is None:
            return self._run(route, work)
        if fault.mode == "error":
            return _FAILED
        if fault.mode == "replay_answer":
            with self._lock:
                stale = self._last_success.get(route)
            return _FAILED if stale is None else _Answer(200, dict(stale))
        if fault.mode == "timeout_before":
            await asyncio.sleep(fault.delay)
        answer = self._run(route, work)
        if fault.mode == "duplicate":
            answer = self._run(route, work)
        elif fault.mode == "timeout_after":
            await asyncio.sleep(fault.delay)
        elif fault.mode == "error_after":
            return _FAILED
        return answer

    def _run(self, route: str, work: Callable[[], _Answer]) -> _Answer:
        answer = work()
        if 200 <= answer.status < 300:
            with self._lock:
                self._last_success[route] = dict(answer.body)
        return answer

    # ---- the operations, each atomic under the lock ----------------------------------------

    def _read_balance(self, customer_id: str) -> _Answer:
        with self._lock:
            balance = self._balances.get(customer_id)
        if balance is None and self._open_enrolment:
            balance = 0
        if balance is None:
            return _Answer(404, {"error": UNKNOWN_MEMBER})
        return _Answer(200, {"customer_id": customer_id, "balance": balance})

    def _lookup(self, key: str) -> _Answer:
        with self._lock:
            outcome = self._by_key.get(key)
            if outcome is None or outcome.transaction_id is None:
                return _Answer(404, {"error": UNKNOWN_KEY})
            return _Answer(200, dict(self._transactions[outcome.transaction_id]))

    def _post_transaction(self, key: str | None, raw: bytes) -> _Answer:
        parsed = _parse_transaction(raw)
        problem = _check_key(key) or (parsed if isinstance(parsed, str) else None)
        if problem is not None or key is None or isinstance(parsed, str):
            return _Answer(400, {"error": INVALID_REQUEST, "detail": problem})
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

    def _post_reversal(self, key: str | None, original_id: str) -> _Answer:
        problem = _check_key(key)
        if problem is not None or key is None:
            return _Answer(400, {"error": INVALID_REQUEST, "detail": problem})
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

    def _replay(self, key: str, fingerprint: tuple[object, ...]) -> _Answer | None:
        """The bound answer for a retry, 409 for another request under the key, else None."""
        outcome = self._by_key.get(key)
        if outcome is None:
            return None
        if outcome.fingerprint != fingerprint:
            return _Answer(409, {"error": KEY_REUSED})
        status = 200 if outcome.status == 201 else outcome.status
        return _Answer(status, dict(outcome.body), replayed=True)

    def _bind(
        self,
        key: str,
        fingerprint: tuple[object, ...],
        status: int,
        body: Body,
        transaction_id: str | None = None,
    ) -> _Answer:
        self._by_key[key] = _Outcome(fingerprint, status, dict(body), transaction_id)
        return _Answer(status, body)

    def _create(
        self,
        key: str,
        fingerprint: tuple[object, ...],
        kind: str,
        customer_id: str,
        points: int,
        reference: str,
        reverses: str | None,
    ) -> _Answer:
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


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")
    return JSONResponse({"error": code}, status)


async def _server_error(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "internal_error"}, 500)


@contextmanager
def serve_reference_in_thread(partner: ReferencePartner) -> Iterator[str]:
    """Serve ``partner.app`` under uvicorn on a free 127.0.0.1 port in a daemon thread.

    Yields the base URL (``http://127.0.0.1:<port>``) once the server is up; on exit the
    server stops after the requests in flight (delayed ones included) have been answered.
    """
    with serve_on_loopback(lambda _: partner.app, "partner") as base_url:
        yield base_url
