"""Sending due deliveries: the sweep ``webhooks.send`` runs ``Sender.send_due``.

Endpoints with deliveries due take turns (round robin, starting elsewhere each sweep): at
most ``concurrency`` batches at once, each of up to ``per_endpoint`` deliveries of one
endpoint, after which the endpoint goes to the back of the line; so slow or failing
endpoints hold back only their own deliveries. At one endpoint a member's delivery waits
until every earlier one of that member there is delivered or failed (``queue``). A 2xx
answer delivers; anything else (another status, a timeout, a connection error, a refused
target) is retried after a growing pause with jitter, until the next try would fall more
than a day after the delivery was created (or resent): then the delivery is failed.

Connections are pooled per host name: a request goes to the checked IP address with the
host name only in TLS SNI and ``Host``, so a shared pool (keyed by address) could reuse a
connection verified for one host name for another host at the same address. Answers are
asked for and read without compression (``identity``, raw bytes), bounded.

Due times follow the service clock; the ``webhook-timestamp`` header is the real time of
sending, as receivers check it against their own clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit import store as audit_store
from gateway.audit.entries import Actor, Entry
from gateway.events import log as event_log
from gateway.events.event import Event
from gateway.kernel.sealing import Sealer
from gateway.kernel.unit_of_work import UnitOfWork
from gateway.ledger import store as ledger_store
from gateway.ledger.personal import is_erased
from gateway.webhooks import metrics, payloads, queue, secrets, signing, store, targets
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
KEEP_FINISHED = timedelta(days=30)  # delivered or failed deliveries, with their attempts
PRUNE_EVERY = timedelta(hours=1)
PRUNE_BATCH = 1000
EXCERPT_BYTES = 2048
LEASE = timedelta(minutes=2)
USER_AGENT = "coalition-webhooks/1"
JOB = "webhooks.send"  # the sweep's name, the actor of what it does on its own

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
        self.budget = budget  # seconds a sweep keeps sending before it lets the next run
        self._turns = itertools.count(random.randrange(1 << 16))
        self._pruned_at: datetime | None = None

    async def send_due(self) -> int:
        """Send what is due now; how many tries were made. Also, once an hour, forget
        deliveries finished more than ``KEEP_FINISHED`` ago."""
        now = self.clock()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            await self.prune(now)
        due = await self.uow.read(lambda c: queue.endpoints_due(c, now, 1000))
        if not due:
            return 0
        shift = next(self._turns) % len(due)
        line = deque(due[shift:] + due[:shift])
        started = time.monotonic()
        clients = Clients(self.timeout, self.per_endpoint)

        async def worker() -> int:
            tried = 0
            while line and time.monotonic() - started < self.budget:
                endpoint_id = line.popleft()
                try:
                    sent = await self._batch(clients, endpoint_id)
                except Exception:
                    # Its leases lapse and its deliveries are tried again by a later run.
                    log.exception("webhook endpoint %d: sending failed", endpoint_id)
                    continue
                tried += sent
                if sent:
                    line.append(endpoint_id)  # more may be due: after the others
            return tried

        try:
            counts = await asyncio.gather(
                *(worker() for _ in range(min(self.concurrency, len(line))))
            )
        finally:
            await clients.aclose()
        return sum(counts)

    async def prune(self, now: datetime) -> int:
        """Forget deliveries finished more than ``KEEP_FINISHED`` before ``now``."""
        forgotten = 0
        while True:
            count = await self.uow.write(lambda c: queue.prune(c, now - KEEP_FINISHED, PRUNE_BATCH))
            forgotten += count
            if count < PRUNE_BATCH:
                break
        self._pruned_at = now
        return forgotten

    async def _batch(self, clients: Clients, endpoint_id: int) -> int:
        """One batch of the endpoint's due deliveries: how many were tried."""
        claimed = await self._claim(endpoint_id)
        if not claimed:
            return 0
        endpoint = await self.uow.read(lambda c: store.endpoint(c, endpoint_id))
        if endpoint is None:
            return 0
        signing_with = await self._secrets(endpoint_id)
        bodies = await self._bodies(endpoint, claimed)
        await asyncio.gather(
            *(
                self._send(clients, endpoint, signing_with, item, bodies[item.id])
                for item in claimed
            )
        )
        return len(claimed)

    async def _claim(self, endpoint_id: int) -> list[DeliveryRecord]:
        now = self.clock()
        return await self.uow.write(
            lambda c: queue.claim(c, endpoint_id, now, now + LEASE, self.per_endpoint)
        )

    async def _secrets(self, endpoint_id: int) -> list[str]:
        """The secrets that sign now (two for a while after a rotation)."""
        now = self.clock()
        sealed = await self.uow.read(lambda c: secrets.signing_secrets(c, endpoint_id, now))
        context = secrets.secret_context(endpoint_id)
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
        clients: Clients,
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
                status_code, excerpt = await self._call(clients, endpoint.url, secrets, item, body)
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

        async def work(connection: AsyncConnection) -> datetime | None:
            await queue.record(connection, item, outcome, status, again)
            answered = status == DELIVERED
            since = await queue.note_health(connection, endpoint.id, answered, attempted_at)
            if since is not None:
                await audit_store.append(connection, _disabled(endpoint, since, attempted_at))
            return since

        disabled_since = await self.uow.write(work)
        shown = "retrying" if status == PENDING else status
        metrics.attempted(endpoint.partner, shown, outcome.duration_ms)
        if disabled_since is not None:
            metrics.disabled(endpoint.partner)
            log.warning(
                "webhook endpoint %s of %s disabled: every try since %s failed",
                endpoint.id,
                endpoint.partner,
                disabled_since.isoformat(),
            )

    async def _call(
        self,
        clients: Clients,
        url: str,
        secrets: list[str],
        item: DeliveryRecord,
        body: bytes,
    ) -> tuple[int, str]:
        """POST ``body`` to the checked target: the status and the answer's excerpt."""
        target = await targets.check(url, self.production)
        headers = signing.headers(secrets, item.message_id, int(time.time()), body)
        headers["user-agent"] = USER_AGENT
        headers["accept-encoding"] = "identity"
        extensions = {}
        if target.address is not None:  # the checked address, under the name for TLS and Host
            default = 443 if url.startswith("https:") else 80
            host = f"[{target.host}]" if ":" in target.host else target.host
            headers["host"] = host + (f":{target.port}" if target.port != default else "")
            extensions["sni_hostname"] = target.host
        client = clients.for_host(target.host)
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
        again = next_try(item.attempts + 1, outcome.attempted_at, random.uniform(-1, 1))
        if again > item.retries_from + GIVE_UP_AFTER:
            return FAILED, None
        return PENDING, again


def _disabled(endpoint: EndpointRecord, since: datetime, at: datetime) -> Entry:
    """The audit entry of the gateway disabling ``endpoint`` (by the sender's job)."""
    return Entry(
        occurred_at=at,
        actor=Actor("job", f"system:{JOB}"),
        action="webhook_endpoint.disable",
        outcome="ok",
        target_kind="webhook_endpoint",
        target_id=str(endpoint.id),
        partner=endpoint.partner,
        detail=f"failing since {since.isoformat()}",
        source="job",
    )


class Clients:
    """HTTP clients of one sweep, one per host name (see the module's text)."""

    def __init__(
        self, timeout: float, connections: int, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.timeout = timeout
        self.connections = connections
        self.transport = transport
        self.clients: dict[str, httpx.AsyncClient] = {}

    def for_host(self, host: str) -> httpx.AsyncClient:
        client = self.clients.get(host)
        if client is None:
            client = httpx.AsyncClient(
                timeout=self.timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=self.connections),
                trust_env=False,
                transport=self.transport,
            )
            self.clients[host] = client
        return client

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()


async def _excerpt(response: httpx.Response) -> str:
    """The answer's first ``EXCERPT_BYTES`` bytes as sent (never decompressed), as text
    (undecodable bytes and NUL replaced); the rest is not read."""
    kept = b""
    async for chunk in response.aiter_raw():
        kept += chunk
        if len(kept) >= EXCERPT_BYTES:
            break
    text = kept[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    return text.replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL
