"""Webhook endpoints and deliveries: who may manage what, bounded inputs, sealed secrets.

An operator manages any partner's endpoints; a partner's app only its own, with the scope
``webhooks:manage`` (another partner's endpoint is unknown to it). Secrets are shown once,
when an endpoint is created or its secret rotated, and stored sealed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.auth.policy import Access
from gateway.events import types
from gateway.kernel.errors import DomainError, ErrorCode, shown
from gateway.kernel.sealing import Sealer
from gateway.ledger.service import LedgerService
from gateway.webhooks import payloads, secrets, signing, store, targets
from gateway.webhooks.delivery import Sender
from gateway.webhooks.store import (
    PENDING,
    AttemptRecord,
    DeliveryRecord,
    EndpointRecord,
    NewDelivery,
)

SCOPE = "webhooks:manage"
EVENT_TYPES = (*types.ALL, payloads.TEST)
MAX_ENDPOINTS = 20  # per partner
MAX_PAGE = 100
MAX_PENDING_TESTS = 5  # per endpoint
MAX_KEEP_PREVIOUS_HOURS = 7 * 24


@dataclass(frozen=True)
class Created:
    endpoint: EndpointRecord
    secret: str  # shown this once


def _unknown_endpoint() -> DomainError:
    return DomainError(ErrorCode.UNKNOWN_WEBHOOK_ENDPOINT, "No such webhook endpoint.", ("id",))


def _event_types(given: Sequence[str]) -> tuple[str, ...]:
    if not given:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "Subscribe to one event type or more.", ("event_types",)
        )
    if len(given) > len(EVENT_TYPES):
        raise DomainError(ErrorCode.INVALID_INPUT, "Too many event types listed.", ("event_types",))
    for name in given:
        if name not in EVENT_TYPES:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"Unknown event type {shown(name)}; known: {', '.join(EVENT_TYPES)}.",
                ("event_types",),
            )
    return tuple(dict.fromkeys(given))


class WebhookService:
    def __init__(self, ledger: LedgerService, sealer: Sealer, production: bool) -> None:
        self.ledger = ledger
        self.sealer = sealer
        self.production = production
        self.sender = Sender(ledger.uow, ledger.clock, sealer, production)

    async def send_due(self) -> int:
        return await self.sender.send_due()

    # Endpoints

    def _may_manage(self, access: Access, partner: str) -> None:
        access.act_at(partner, SCOPE)

    async def _own(self, access: Access, endpoint_id: int) -> EndpointRecord:
        found = await self.ledger.uow.read(lambda c: store.endpoint(c, endpoint_id))
        if found is None or (access.partner is not None and access.partner != found.partner):
            raise _unknown_endpoint()
        self._may_manage(access, found.partner)
        return found

    async def _url(self, url: str) -> str:
        cleaned = url.strip()
        await targets.check(cleaned, self.production)
        return cleaned

    def _seal(self, endpoint_id: int, secret: str) -> str:
        return self.sealer.seal(secret.encode(), secrets.secret_context(endpoint_id))

    async def create(
        self, access: Access, partner: str, url: str, event_types: Sequence[str], enabled: bool
    ) -> Created:
        self._may_manage(access, partner)
        if partner not in self.ledger.coalition.partners:
            raise DomainError(
                ErrorCode.UNKNOWN_PARTNER, f"No partner {shown(partner)}.", ("partner",)
            )
        subscribed = _event_types(event_types)
        cleaned = await self._url(url)
        secret = signing.new_secret()
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> EndpointRecord:
            await store.lock_endpoints(connection, partner)
            if await store.count_endpoints(connection, partner) >= MAX_ENDPOINTS:
                raise DomainError(
                    ErrorCode.WEBHOOK_ENDPOINT_LIMIT,
                    f"A partner has at most {MAX_ENDPOINTS} webhook endpoints.",
                    ("partner",),
                )
            endpoint_id = await store.add_endpoint(
                connection, partner, cleaned, subscribed, enabled, now
            )
            await secrets.set_secret(connection, endpoint_id, self._seal(endpoint_id, secret))
            found = await store.endpoint(connection, endpoint_id)
            assert found is not None
            return found

        return Created(await self.ledger.uow.write(work), secret)

    async def update(
        self,
        access: Access,
        endpoint_id: int,
        url: str | None,
        event_types: Sequence[str] | None,
        enabled: bool | None,
    ) -> EndpointRecord:
        await self._own(access, endpoint_id)
        values: dict[str, object] = {}
        if url is not None:
            values["url"] = await self._url(url)
        if event_types is not None:
            values["event_types"] = _event_types(event_types)
        if enabled is not None:
            # Enabled again, it starts afresh: the days of failures are behind it.
            values.update(enabled=enabled, disabled_reason=None)
            if enabled:
                values["failing_since"] = None
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> EndpointRecord:
            if values:
                await store.update_endpoint(connection, endpoint_id, now, **values)
            found = await store.endpoint(connection, endpoint_id)
            if found is None:
                raise _unknown_endpoint()
            return found

        return await self.ledger.uow.write(work)

    async def rotate(self, access: Access, endpoint_id: int, keep_previous_hours: int) -> Created:
        """A new secret, signing at once; the current one also signs for
        ``keep_previous_hours`` more (0: it stops at once, as for a leaked secret)."""
        if not 0 <= keep_previous_hours <= MAX_KEEP_PREVIOUS_HOURS:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"keepPreviousHours is between 0 and {MAX_KEEP_PREVIOUS_HOURS}.",
                ("keep_previous_hours",),
            )
        await self._own(access, endpoint_id)
        secret = signing.new_secret()
        now = self.ledger.clock()
        until = now + timedelta(hours=keep_previous_hours) if keep_previous_hours else None

        async def work(connection: AsyncConnection) -> EndpointRecord:
            sealed = self._seal(endpoint_id, secret)
            await secrets.rotate_secret(connection, endpoint_id, sealed, until, now)
            found = await store.endpoint(connection, endpoint_id)
            if found is None:
                raise _unknown_endpoint()
            return found

        return Created(await self.ledger.uow.write(work), secret)

    async def delete(self, access: Access, endpoint_id: int) -> None:
        await self._own(access, endpoint_id)
        await self.ledger.uow.write(lambda c: store.delete_endpoint(c, endpoint_id))

    async def endpoints(self, access: Access, partner: str | None) -> list[EndpointRecord]:
        """The partner's endpoints (an operator: every partner's when ``partner`` is None)."""
        if access.partner is not None:
            partner = partner or access.partner
        if partner is not None:
            self._may_manage(access, partner)
        else:
            access.require_operator()
        return await self.ledger.uow.read(lambda c: store.endpoints(c, partner))

    # Deliveries

    async def deliveries(
        self, endpoint_id: int, status: str | None, before: int | None, limit: int
    ) -> list[DeliveryRecord]:
        """Of an endpoint the caller was allowed to list (``endpoints``)."""
        return await self.ledger.uow.read(
            lambda c: store.deliveries(c, endpoint_id, status, before, limit)
        )

    async def attempts(self, delivery_ids: Sequence[int]) -> dict[int, list[AttemptRecord]]:
        return await self.ledger.uow.read(lambda c: store.attempts_of(c, delivery_ids))

    async def resend(self, access: Access, delivery_id: int) -> DeliveryRecord:
        """Send a delivered or failed delivery again (same ``webhook-id``), with a fresh
        schedule and day of retries; a pending one is left as it is (it will be sent)."""
        found = await self.ledger.uow.read(lambda c: store.delivery(c, delivery_id))
        if found is None:
            raise DomainError(
                ErrorCode.UNKNOWN_WEBHOOK_DELIVERY, "No such webhook delivery.", ("id",)
            )
        try:
            await self._own(access, found.endpoint_id)
        except DomainError as error:
            if error.code is ErrorCode.UNKNOWN_WEBHOOK_ENDPOINT:
                raise DomainError(
                    ErrorCode.UNKNOWN_WEBHOOK_DELIVERY, "No such webhook delivery.", ("id",)
                ) from None
            raise
        now = self.ledger.clock()

        async def work(connection: AsyncConnection) -> DeliveryRecord:
            await store.requeue(connection, delivery_id, now)
            again = await store.delivery(connection, delivery_id)
            assert again is not None
            return again

        return await self.ledger.uow.write(work)

    async def send_test(self, access: Access, endpoint_id: int) -> DeliveryRecord:
        """A ``webhook.test`` delivery to the endpoint, sent like any other."""
        endpoint = await self._own(access, endpoint_id)
        now = self.ledger.clock()
        new = NewDelivery(endpoint.id, None, payloads.TEST, None, now)

        async def work(connection: AsyncConnection) -> DeliveryRecord:
            await store.lock_endpoints(connection, endpoint.partner)
            if await store.pending_tests(connection, endpoint.id) >= MAX_PENDING_TESTS:
                raise DomainError(
                    ErrorCode.WEBHOOK_TEST_LIMIT,
                    f"At most {MAX_PENDING_TESTS} test events wait to be sent to an endpoint.",
                    ("id",),
                )
            (delivery_id,) = await store.add_deliveries(connection, [new], now)
            found = await store.delivery(connection, delivery_id)
            assert found is not None and found.status == PENDING
            return found

        return await self.ledger.uow.write(work)
