"""The GraphQL types of webhooks: endpoints, their deliveries and each delivery's attempts."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from gateway.api.graphql import cursors
from gateway.api.graphql.context import Info
from gateway.api.graphql.errors import ArgumentError
from gateway.api.graphql.scalars import encode_id
from gateway.webhooks.queue import DISABLE_AFTER
from gateway.webhooks.service import MAX_PAGE
from gateway.webhooks.store import AttemptRecord, DeliveryRecord, EndpointRecord


def endpoint_id(number: int) -> strawberry.ID:
    return strawberry.ID(encode_id("WebhookEndpoint", number))


def delivery_id(number: int) -> strawberry.ID:
    return strawberry.ID(encode_id("WebhookDelivery", number))


@strawberry.enum(description="Where a webhook delivery stands.")
class WebhookDeliveryStatus(Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@strawberry.type(description="One try at sending a delivery, and the endpoint's answer.")
class WebhookAttempt:
    record: strawberry.Private[AttemptRecord]

    @strawberry.field
    def attempted_at(self) -> datetime:
        return self.record.attempted_at

    @strawberry.field(description="The HTTP status answered; null when there was no answer.")
    def status_code(self) -> int | None:
        return self.record.status_code

    @strawberry.field(description="The answer's body, its first 2 KB.")
    def response(self) -> str | None:
        return self.record.response

    @strawberry.field(
        description="Why there was no answer: a timeout, a connection error, a refused target."
    )
    def error(self) -> str | None:
        return self.record.error

    @strawberry.field
    def duration_ms(self) -> int:
        return self.record.duration_ms


@strawberry.type(description="An event sent, or to be sent, to one endpoint.")
class WebhookDelivery:
    record: strawberry.Private[DeliveryRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return delivery_id(self.record.id)

    @strawberry.field(description="The `webhook-id` header: the same on every retry and resend.")
    def webhook_id(self) -> str:
        return self.record.message_id

    @strawberry.field
    def event_type(self) -> str:
        return self.record.event_type

    @strawberry.field(description="When the event occurred (the payload's `timestamp`).")
    def occurred_at(self) -> datetime:
        return self.record.occurred_at

    @strawberry.field
    def status(self) -> WebhookDeliveryStatus:
        return WebhookDeliveryStatus(self.record.status)

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field(
        description=(
            "When a pending delivery is tried next; null while it waits for an earlier "
            "delivery of its member to this endpoint to be delivered or failed."
        )
    )
    def next_attempt_at(self) -> datetime | None:
        return self.record.next_attempt_at if self.record.status == "pending" else None

    @strawberry.field(description="When it was delivered or marked failed.")
    def finished_at(self) -> datetime | None:
        return self.record.finished_at

    @strawberry.field(description="Its tries, oldest first.")
    async def attempts(self, info: Info) -> list[WebhookAttempt]:
        found = await info.context.webhook_attempts.load(self.record.id)
        return [WebhookAttempt(record=record) for record in found]


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type(description="A page of an endpoint's deliveries, newest first.")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: relay.PageInfo


@strawberry.type(description="Where a partner receives signed webhooks (see the README).")
class WebhookEndpoint:
    record: strawberry.Private[EndpointRecord]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return endpoint_id(self.record.id)

    @strawberry.field(description="The partner's slug.")
    def partner(self) -> str:
        return self.record.partner

    @strawberry.field
    def url(self) -> str:
        return self.record.url

    @strawberry.field
    def event_types(self) -> list[str]:
        return list(self.record.event_types)

    @strawberry.field
    def enabled(self) -> bool:
        return self.record.enabled

    @strawberry.field(
        description="Since when every try at it has failed (the first failed try after its "
        f"last 2xx answer); null while it answers. After {DISABLE_AFTER.days} days of "
        "failures the gateway disables it."
    )
    def failing_since(self) -> datetime | None:
        return self.record.failing_since

    @strawberry.field(
        description="Why the gateway disabled it; null while it is enabled, or when a person "
        "disabled it. Enabling it again (`updateWebhookEndpoint`) clears it."
    )
    def disabled_reason(self) -> str | None:
        return self.record.disabled_reason

    @strawberry.field
    def created_at(self) -> datetime:
        return self.record.created_at

    @strawberry.field
    def updated_at(self) -> datetime:
        return self.record.updated_at

    @strawberry.field(description=f"Its deliveries, newest first (at most {MAX_PAGE} a page).")
    async def deliveries(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        status: WebhookDeliveryStatus | None = None,
    ) -> WebhookDeliveryConnection:
        if not 0 <= first <= MAX_PAGE:
            raise ArgumentError(f"`first` must be between 0 and {MAX_PAGE}.")
        before = cursors.position("delivery", after)
        found = await info.context.webhooks.deliveries(
            self.record.id, status.value if status else None, before, first + 1
        )
        edges = [
            WebhookDeliveryEdge(
                cursor=cursors.cursor("delivery", record.id), node=WebhookDelivery(record=record)
            )
            for record in found[:first]
        ]
        return WebhookDeliveryConnection(
            edges=edges,
            page_info=relay.PageInfo(
                has_next_page=len(found) > first,
                has_previous_page=before is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )
