"""Sending due deliveries: the sweep ``webhooks.send`` runs ``Sender.send_due``.

Each endpoint with deliveries due is drained by a task of its own (at most
``concurrency`` endpoints at once), so a slow or failing endpoint holds back only its own
deliveries. At one endpoint a member's delivery waits until every earlier one of that
member there is delivered or failed (``queue``). A 2xx answer delivers; anything else
(another status, a timeout, a connection error, a refused target) is retried after a
growing pause with jitter, until the next try would fall more than a day after the first:
then the delivery is failed. Due times follow the service clock; the ``webhook-timestamp``
header is the real time of sending, as receivers check it against their own clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.events import log as event_log
from gateway.events.event import Event
from gateway.kernel.sealing import Sealer
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.ledger import store as ledger_store
from gateway.ledger.personal import is_erased
from gateway.webhooks import metrics, payloads, queue, signing, store, targets
from gateway.webhooks.queue import Outcome
from gateway.webhooks.store import DELIVERED, FAILED, PENDING, DeliveryRecord, EndpointRecord

# Pauses after the 1st, 2nd, ... failed try (the last repeats), each ±20 %.
SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
GIVE_UP_AFTER = timedelta(days=1)
EXCERPT_BYTES = 2048
LEASE = timedelta(minutes=2)
USER_AGENT = "coalition-webhooks/1"

log = logging.getLogger("gateway.webhooks")


def next_try(attempts: int, now: datetime, jitter: float) -> datetime:
    """When to try again after the ``attempts``-th failed try; ``jitter`` in [-1, 1]."""
    pause = SCHEDULE[min(attempts, len(SCHEDULE)) - 1]
    return now + pause * (1 + 0.2 * jitter)


class Sender:
    def __init__(
        self,
        uow: UnitOfWork,
        clock: Callable[[], datetime],
        sealer: Sealer,
        production: bool,
        *,
        timeout: float = 10.0,
        concurrency: int = 32,
        per_endpoint: int = 8,
        budget: float = 50.0,
    ) -> None:
        self.uow = uow
        self.clock = clock
        self.sealer = sealer
        self.production = production
        self.timeout = timeout
        self.concurrency = concurrency
        self.per_endpoint = per_endpoint
        self.budget = budget  # seconds a sweep keeps draining before it lets the next run

    async def send_due(self) -> int:
        """Send what is due now; how many tries were made."""
        now = self.clock()
        due = await self.uow.read(lambda c: queue.endpoints_due(c, now, 1000))
        if not due:
            return 0
        started = time.monotonic()
        gate = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency * self.per_endpoint)
        async with httpx.AsyncClient(
            timeout=self.timeout, follow_redirects=False, limits=limits, trust_env=False
        ) as client:
            counts = await asyncio.gather(
                *(self._drain(client, gate, endpoint_id, started) for endpoint_id in due),
                return_exceptions=True,
            )
        for endpoint_id, count in zip(due, counts, strict=True):
            if isinstance(count, BaseException):
                # Its leases lapse and its deliveries are tried again by a later run.
                log.error("webhook endpoint %d: sending failed", endpoint_id, exc_info=count)
        return sum(count for count in counts if isinstance(count, int))

    async def _drain(
        self, client: httpx.AsyncClient, gate: asyncio.Semaphore, endpoint_id: int, started: float
    ) -> int:
        tried = 0
        async with gate:
            while time.monotonic() - started < self.budget:
                claimed = await self._claim(endpoint_id)
                if not claimed:
                    break
                endpoint = await self.uow.read(lambda c: store.endpoint(c, endpoint_id))
                if endpoint is None:
                    break
                secrets = await self._secrets(endpoint_id)
                bodies = await self._bodies(endpoint, claimed)
                await asyncio.gather(
                    *(
                        self._send(client, endpoint, secrets, item, bodies[item.id])
                        for item in claimed
                    )
                )
                tried += len(claimed)
        return tried

    async def _claim(self, endpoint_id: int) -> list[DeliveryRecord]:
        now = self.clock()
        return await self.uow.write(
            lambda c: queue.claim(c, endpoint_id, now, now + LEASE, self.per_endpoint)
        )

    async def _secrets(self, endpoint_id: int) -> list[str]:
        """The secrets that sign now (two for a while after a rotation)."""
        now = self.clock()
        sealed = await self.uow.read(lambda c: store.signing_secrets(c, endpoint_id, now))
        context = store.secret_context(endpoint_id)
        return [self.sealer.open(value, context).decode() for value in sealed]

    async def _bodies(
        self, endpoint: EndpointRecord, claimed: list[DeliveryRecord]
    ) -> dict[int, bytes]:
        """Each delivery's body, rendered from its event as it is now."""
        event_ids = [item.event_id for item in claimed if item.event_id is not None]
        members = sorted({item.member_id for item in claimed if item.member_id is not None})

        async def read(connection: AsyncConnection) -> tuple[dict[int, Event], dict[str, str]]:
            events = await event_log.by_ids(connection, event_ids)
            enrolled = await ledger_store.enrolments_of(connection, members)
            customers = {
                member: record.customer_id
                for member, records in enrolled.items()
                for record in records
                # an erased member's customer id is a random token: no use to the partner
                if record.partner == endpoint.partner and not is_erased(record.customer_id)
            }
            return events, customers

        events, customers = await self.uow.read(read)
        bodies: dict[int, bytes] = {}
        for item in claimed:
            if item.event_id is None:
                data = payloads.test_data(endpoint.id, endpoint.partner)
            else:
                event = events.get(item.event_id)
                customer = customers.get(item.member_id or "")
                data = {} if event is None else payloads.event_data(event, customer)
            body = payloads.body(item.event_type, item.occurred_at, data)
            bodies[item.id] = json.dumps(body, separators=(",", ":")).encode()
        return bodies

    async def _send(
        self,
        client: httpx.AsyncClient,
        endpoint: EndpointRecord,
        secrets: list[str],
        item: DeliveryRecord,
        body: bytes,
    ) -> None:
        attempted_at = self.clock()
        started = time.perf_counter()
        status_code: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            # The whole try, name lookup included: a server dripping bytes cannot hold it.
            async with asyncio.timeout(self.timeout):
                status_code, excerpt = await self._call(client, endpoint.url, secrets, item, body)
        except targets.Refused as refused:
            error = f"refused: {refused.message}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"timeout after {self.timeout:g} s"
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}"[:500]
        outcome = Outcome(
            attempted_at, status_code, excerpt, error, int((time.perf_counter() - started) * 1000)
        )
        status, again = self._after(item, outcome)
        await self.uow.write(lambda c: queue.record(c, item, outcome, status, again))
        shown = "retrying" if status == PENDING else status
        metrics.attempted(endpoint.partner, shown, outcome.duration_ms)

    async def _call(
        self,
        client: httpx.AsyncClient,
        url: str,
        secrets: list[str],
        item: DeliveryRecord,
        body: bytes,
    ) -> tuple[int, str]:
        """POST ``body`` to the checked target: the status and the answer's excerpt."""
        target = await targets.check(url, self.production)
        headers = signing.headers(secrets, item.message_id, int(time.time()), body)
        headers["user-agent"] = USER_AGENT
        extensions = {}
        if target.address is not None:  # the checked address, under the name for TLS and Host
            default = 443 if url.startswith("https:") else 80
            host = f"[{target.host}]" if ":" in target.host else target.host
            headers["host"] = host + (f":{target.port}" if target.port != default else "")
            extensions["sni_hostname"] = target.host
        request = client.build_request(
            "POST", target.request_url(), content=body, headers=headers, extensions=extensions
        )
        response = await client.send(request, stream=True)
        try:
            return response.status_code, await _excerpt(response)
        finally:
            await response.aclose()

    def _after(self, item: DeliveryRecord, outcome: Outcome) -> tuple[str, datetime | None]:
        """The delivery's status after ``outcome``, and when to try again."""
        if outcome.status_code is not None and 200 <= outcome.status_code < 300:
            return DELIVERED, None
        first = item.first_attempt_at or outcome.attempted_at
        again = next_try(item.attempts + 1, outcome.attempted_at, random.uniform(-1, 1))
        if again > first + GIVE_UP_AFTER:
            return FAILED, None
        return PENDING, again


async def _excerpt(response: httpx.Response) -> str:
    """The answer's first ``EXCERPT_BYTES`` bytes, as text; the rest is not read."""
    kept = b""
    async for chunk in response.aiter_bytes():
        kept += chunk
        if len(kept) >= EXCERPT_BYTES:
            break
    return kept[:EXCERPT_BYTES].decode("utf-8", errors="replace")
