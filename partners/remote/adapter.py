"""The gateway's client for a partner pool hosted elsewhere (the API of ``openapi.yaml``).

Every answer is checked against the request before it is believed: an answer of the wrong
shape, or about another member, key, amount or transaction, raises ``RemoteUnavailable``
with reason ``"malformed"``, exactly as a timeout does: the outcome is unknown.

Exceptions (``exceptions``) split in two: ``RemoteRefused`` (and its subclasses) means the
partner answered and nothing happened; ``RemoteUnavailable`` means the outcome is unknown and
the caller must find out with the same key (``find``, or the same call again) before it
concludes anything. What the partner reports is a ``transactions.RemoteTransaction``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from partners.remote.exceptions import (
    RemoteAlreadyReversed,
    RemoteError,
    RemoteInsufficientPoints,
    RemoteKeyReused,
    RemoteRejected,
    RemoteUnavailable,
    RemoteUnknownMember,
    malformed,
)
from partners.remote.transactions import (
    RemoteTransaction,
    TransactionType,
    expect,
    read_transaction,
)
from partners.remote.wire import (
    ALREADY_REVERSED,
    INSUFFICIENT_POINTS,
    KEY,
    KEY_REUSED,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_POINTS,
    MAX_REFERENCE_LENGTH,
    UNKNOWN_KEY,
    UNKNOWN_MEMBER,
    text_ok,
    token_from_environment,
)

__all__ = ["RemotePool"]

_TRANSIENT = frozenset({408, 425, 429})  # 4xx that mean "not processed, try again"
_MAX_DETAIL = 200


class RemotePool:
    """A partner's points pool reached over its HTTP API with a static bearer token.

    ``transport`` replaces the network (an ``httpx.MockTransport`` or ``ASGITransport``).
    ``credit``, ``debit`` and ``reverse`` retry once with the same key when the outcome is
    unknown, then look the key up; use the pool as an async context manager, or ``aclose``.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not token:
            raise ValueError("a remote pool needs its partner's bearer token")
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_environment(
        cls,
        slug: str,
        base_url: str,
        environ: Mapping[str, str] | None = None,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> RemotePool:
        """A pool whose token is ``COALITION_REMOTE_<SLUG>_TOKEN``; ``LookupError`` if unset."""
        token = token_from_environment(slug, os.environ if environ is None else environ)
        return cls(base_url, token, timeout=timeout, transport=transport)

    async def __aenter__(self) -> RemotePool:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    # ---- the operations --------------------------------------------------------------------

    async def balance(self, customer_id: str) -> int:
        """The member's balance at the partner; ``RemoteUnknownMember`` if it has none."""
        _check_customer(customer_id)
        response = await self._send("GET", f"/members/{quote(customer_id, safe='')}/balance")
        if response.status_code == 404 and _code(response) == UNKNOWN_MEMBER:
            raise RemoteUnknownMember(customer_id)
        body = _success(response, (200,))
        if body.get("customer_id") != customer_id:
            raise malformed(f"balance answer is for {body.get('customer_id')!r}")
        balance = body.get("balance")
        if type(balance) is not int or balance < 0:
            raise malformed(f"balance {balance!r} is not a whole number of points")
        return balance

    async def credit(
        self, customer_id: str, points: int, key: str, reference: str
    ) -> RemoteTransaction:
        """Add ``points`` to the member's balance, once per ``key``."""
        return await self._move("credit", customer_id, points, key, reference)

    async def debit(
        self, customer_id: str, points: int, key: str, reference: str
    ) -> RemoteTransaction:
        """Take ``points`` from the member's balance, once per ``key``;
        ``RemoteInsufficientPoints`` if the balance is short."""
        return await self._move("debit", customer_id, points, key, reference)

    async def reverse(self, transaction_id: str, key: str) -> RemoteTransaction:
        """Undo a credit or debit with the opposite movement, once per ``key``.

        ``RemoteAlreadyReversed`` if it was reversed under another key;
        ``RemoteInsufficientPoints`` if undoing a credit would overdraw.
        """
        if not text_ok(transaction_id, MAX_REFERENCE_LENGTH):
            raise ValueError(f"invalid transaction id {transaction_id!r}")
        _check_key(key)

        def check(transaction: RemoteTransaction) -> None:
            expect(transaction, idempotency_key=key, reverses=transaction_id)

        async def attempt() -> RemoteTransaction:
            path = f"/transactions/{quote(transaction_id, safe='')}/reversal"
            response = await self._send("POST", path, key=key)
            _refusal(response, key, transaction_id=transaction_id)
            transaction = read_transaction(_success(response, (200, 201)))
            check(transaction)
            return transaction

        return await self._settle(attempt, key, check)

    async def find(self, key: str) -> RemoteTransaction | None:
        """The transaction made with ``key``, or None if there is none (yet: a request still
        in flight may land later, so None alone does not prove it never will)."""
        _check_key(key)
        response = await self._send("GET", f"/transactions/by-key/{quote(key, safe='')}")
        if response.status_code == 404 and _code(response) == UNKNOWN_KEY:
            return None
        transaction = read_transaction(_success(response, (200,)))
        expect(transaction, idempotency_key=key)
        return transaction

    # ---- the machinery ---------------------------------------------------------------------

    async def _move(
        self, kind: TransactionType, customer_id: str, points: int, key: str, reference: str
    ) -> RemoteTransaction:
        _check_customer(customer_id)
        if type(points) is not int or not 0 < points <= MAX_POINTS:
            raise ValueError(f"points must be a whole number from 1 to {MAX_POINTS}")
        _check_key(key)
        if not text_ok(reference, MAX_REFERENCE_LENGTH):
            raise ValueError(f"reference must be 1 to {MAX_REFERENCE_LENGTH} characters")
        request: dict[str, object] = {
            "type": kind,
            "customer_id": customer_id,
            "points": points,
            "reference": reference,
        }

        def check(transaction: RemoteTransaction) -> None:
            expect(transaction, idempotency_key=key, reverses=None, **request)

        async def attempt() -> RemoteTransaction:
            response = await self._send("POST", "/transactions", key=key, body=request)
            if kind == "credit" and _code(response) == INSUFFICIENT_POINTS:
                raise malformed("a credit was refused for insufficient points")
            _refusal(response, key, customer_id=customer_id)
            transaction = read_transaction(_success(response, (200, 201)))
            check(transaction)
            return transaction

        return await self._settle(attempt, key, check)

    async def _settle(
        self,
        attempt: Callable[[], Awaitable[RemoteTransaction]],
        key: str,
        check: Callable[[RemoteTransaction], None],
    ) -> RemoteTransaction:
        """Run ``attempt``; on an unknown outcome once more, then look ``key`` up and return
        what it finds, provided it matches the request (``check``)."""
        try:
            return await attempt()
        except RemoteUnavailable:
            pass
        try:
            return await attempt()
        except RemoteUnavailable as failure:
            second = failure
        try:
            found = await self.find(key)
            if found is not None:
                check(found)
        except RemoteError as lookup:
            raise RemoteUnavailable(
                second.reason, f"{second.detail}; then the lookup by key failed: {lookup}"
            ) from second
        if found is None:
            raise RemoteUnavailable(
                second.reason, f"{second.detail}; the key is not known to the partner yet"
            ) from second
        return found

    async def _send(
        self, method: str, path: str, *, key: str | None = None, body: object = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key is not None else {}
        content = None if body is None else json.dumps(body).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._client.request(method, path, headers=headers, content=content)
        except httpx.TimeoutException as error:
            raise RemoteUnavailable(
                "timeout", f"{method} {path}: {type(error).__name__}"
            ) from error
        except httpx.RequestError as error:
            raise RemoteUnavailable("connection", f"{method} {path}: {error!r}") from error
        if response.status_code >= 500 or response.status_code in _TRANSIENT:
            raise RemoteUnavailable("status", f"{method} {path} answered {response.status_code}")
        return response


# ---- checking answers ----------------------------------------------------------------------


def _check_customer(customer_id: str) -> None:
    if not text_ok(customer_id, MAX_CUSTOMER_ID_LENGTH):
        raise ValueError(f"invalid customer id {customer_id!r}")


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise ValueError("an idempotency key is 1 to 255 characters from A-Z a-z 0-9 . _ ~ : -")


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _code(response: httpx.Response) -> str | None:
    body = _json(response)
    code = body.get("error") if body is not None else None
    return code if isinstance(code, str) else None


def _success(response: httpx.Response, statuses: tuple[int, ...]) -> dict[str, Any]:
    """The JSON object of an expected success; any other 4xx is ``RemoteRejected``."""
    if 400 <= response.status_code < 500:
        refusal = _json(response) or {}
        code = _code(response)
        detail = refusal.get("detail")
        text = detail if isinstance(detail, str) else code or response.text
        raise RemoteRejected(response.status_code, code, text[:_MAX_DETAIL])
    if response.status_code not in statuses:
        raise malformed(f"unexpected status {response.status_code}")
    body = _json(response)
    if body is None:
        raise malformed("the answer is not a JSON object")
    return body


def _refusal(
    response: httpx.Response,
    key: str,
    *,
    customer_id: str | None = None,
    transaction_id: str | None = None,
) -> None:
    """Raise the typed refusal a movement's answer carries, if it is one (for a credit or
    debit, ``customer_id`` is given; for a reversal, ``transaction_id``)."""
    status, body = response.status_code, _json(response) or {}
    code = body.get("error")
    if status == 404 and code == UNKNOWN_MEMBER and customer_id is not None:
        raise RemoteUnknownMember(customer_id)
    if status == 409 and code == KEY_REUSED:
        raise RemoteKeyReused(key)
    if status == 409 and code == ALREADY_REVERSED and transaction_id is not None:
        reversal_id = body.get("reversal_id")
        if not isinstance(reversal_id, str) or not reversal_id:
            raise malformed("already_reversed without a reversal_id")
        raise RemoteAlreadyReversed(transaction_id, reversal_id)
    if status == 422 and code == INSUFFICIENT_POINTS:
        balance = body.get("balance")
        if type(balance) is not int or balance < 0:
            raise malformed(f"insufficient_points with balance {balance!r}")
        raise RemoteInsufficientPoints(balance)
