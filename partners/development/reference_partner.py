"""A reference partner points service implementing ``openapi.yaml``, with fault injection.

For tests and development only: members, balances and transactions live in memory behind
one lock, so every request is processed atomically. ``ReferencePartner.faults`` scripts what
happens to the next matching requests (a 500 before or after the work, a slow answer before
or after the work, a request delivered twice, a stale answer), so that callers can be tested
against every way a partner's API can fail. ``serve_reference_in_thread`` serves it with
uvicorn on a free loopback port. The books are ``reference_ledger``'s, the faults
``reference_faults``'s; this module holds the HTTP application.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NamedTuple

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from partners.development.reference_faults import BALANCE, BY_KEY, REVERSAL, TRANSACTIONS, Faults
from partners.development.reference_ledger import Answer, Body, ReferenceLedger
from partners.development.serving import serve_on_loopback
from partners.remote.wire import UNAUTHORIZED

__all__ = ["Call", "ReferencePartner", "serve_reference_in_thread"]

_FAILED = Answer(500, {"error": "internal_error"})
Work = Callable[[str | None, bytes], Answer]
"""An operation: given the ``Idempotency-Key`` (or None) and the body, its answer."""


class Call(NamedTuple):
    """A request the partner received: method, path (decoded) and ``Idempotency-Key``."""

    method: str
    path: str
    key: str | None


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
        self._ledger = ReferenceLedger(clock, open_enrolment)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
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
        self._ledger.clear()
        with self._lock:
            self._last_success.clear()
            self._calls.clear()
        for customer_id, balance in (members or {}).items():
            self.add_member(customer_id, balance)

    def add_member(self, customer_id: str, balance: int = 0) -> None:
        """Enrol a member (or set an existing member's balance) with whole points."""
        self._ledger.add_member(customer_id, balance)

    def balance_of(self, customer_id: str) -> int:
        """The member's balance now; ``KeyError`` for an unknown member."""
        return self._ledger.balance_of(customer_id)

    @property
    def calls(self) -> list[Call]:
        """Every request received so far, in order, also those refused or failed by a fault."""
        with self._lock:
            return list(self._calls)

    @property
    def transactions(self) -> list[Body]:
        """Every transaction created, oldest first, as the API represents it."""
        return self._ledger.transactions()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until no request is being handled (a delayed one may still land); False if
        ``timeout`` seconds pass first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)

    # ---- HTTP ------------------------------------------------------------------------------

    async def _balance(self, request: Request) -> Response:
        customer_id = request.path_params["customer_id"]
        return await self._handle(
            BALANCE, request, lambda _k, _b: self._ledger.read_balance(customer_id)
        )

    async def _transaction(self, request: Request) -> Response:
        return await self._handle(TRANSACTIONS, request, self._ledger.post_transaction)

    async def _reversal(self, request: Request) -> Response:
        original = request.path_params["id"]
        return await self._handle(
            REVERSAL, request, lambda k, _b: self._ledger.post_reversal(k, original)
        )

    async def _by_key_lookup(self, request: Request) -> Response:
        key = request.path_params["key"]
        return await self._handle(BY_KEY, request, lambda _k, _b: self._ledger.lookup(key))

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

    async def _with_fault(self, route: str, work: Callable[[], Answer]) -> Answer:
        fault = self.faults.take(route)
        if fault is None:
            return self._run(route, work)
        if fault.mode == "error":
            return _FAILED
        if fault.mode == "replay_answer":
            with self._lock:
                stale = self._last_success.get(route)
            return _FAILED if stale is None else Answer(200, dict(stale))
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

    def _run(self, route: str, work: Callable[[], Answer]) -> Answer:
        answer = work()
        if 200 <= answer.status < 300:
            with self._lock:
                self._last_success[route] = dict(answer.body)
        return answer


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
