"""Webhooks over GraphQL: endpoints (operators: any partner's; a partner's app: its own,
with the scope ``webhooks:manage``), their deliveries, resend and test events."""

from __future__ import annotations

import strawberry

from gateway.api.graphql.context import Info
from gateway.api.graphql.payloads import UserError
from gateway.api.graphql.scalars import decode_int_id
from gateway.api.graphql.webhook_types import WebhookDelivery, WebhookEndpoint
from gateway.kernel.errors import DomainError, ErrorCode
from gateway.webhooks.service import EVENT_TYPES

EVENT_TYPES_HELP = "Event types to receive: " + ", ".join(EVENT_TYPES) + "."
SECRET_HELP = "The signing secret (`whsec_...`), shown this once: keep it to verify signatures."


def _endpoint_number(value: strawberry.ID) -> int:
    number = decode_int_id(str(value), "WebhookEndpoint")
    if number is None:
        raise DomainError(ErrorCode.UNKNOWN_WEBHOOK_ENDPOINT, "No such webhook endpoint.", ("id",))
    return number


@strawberry.input
class CreateWebhookEndpointInput:
    partner: str
    url: str = strawberry.field(
        description="Where to POST events: https (http only in development), at most 2,048 "
        "characters; in production never a private or loopback address."
    )
    event_types: list[str] = strawberry.field(description=EVENT_TYPES_HELP)
    enabled: bool = True


@strawberry.type
class CreateWebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = None
    secret: str | None = strawberry.field(default=None, description=SECRET_HELP)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateWebhookEndpointInput:
    id: strawberry.ID
    url: str | None = None
    event_types: list[str] | None = strawberry.field(default=None, description=EVENT_TYPES_HELP)
    enabled: bool | None = None


@strawberry.type
class WebhookEndpointPayload:
    endpoint: WebhookEndpoint | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class WebhookEndpointInput:
    id: strawberry.ID


@strawberry.input
class RotateWebhookEndpointSecretInput:
    id: strawberry.ID
    keep_previous_hours: int = strawberry.field(
        default=24,
        description="Hours the current secret keeps signing too (both signatures are sent), "
        "so that receivers can switch without losing a message; 0 to 168. 0: it stops at "
        "once (a leaked secret).",
    )


@strawberry.type
class RotateWebhookEndpointSecretPayload:
    endpoint: WebhookEndpoint | None = None
    secret: str | None = strawberry.field(default=None, description=SECRET_HELP)
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DeleteWebhookEndpointPayload:
    deleted_id: strawberry.ID | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class ResendWebhookDeliveryInput:
    id: strawberry.ID = strawberry.field(description="A `WebhookDelivery` id.")


@strawberry.type
class WebhookDeliveryPayload:
    delivery: WebhookDelivery | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class WebhookQueries:
    @strawberry.field(
        description="Webhook endpoints: a partner's app sees its own; an operator a "
        "partner's, or every partner's when `partner` is not given."
    )
    async def webhook_endpoints(
        self, info: Info, partner: str | None = None
    ) -> list[WebhookEndpoint]:
        found = await info.context.webhooks.endpoints(info.context.access, partner)
        return [WebhookEndpoint(record=record) for record in found]


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        description="Register a partner's webhook endpoint; answers its signing secret once."
    )
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointPayload | None:
        try:
            created = await info.context.webhooks.create(
                info.context.access, input.partner, input.url, input.event_types, input.enabled
            )
        except DomainError as error:
            return CreateWebhookEndpointPayload(user_errors=UserError.of(error))
        return CreateWebhookEndpointPayload(
            endpoint=WebhookEndpoint(record=created.endpoint), secret=created.secret
        )

    @strawberry.mutation(description="Change an endpoint's URL, event types or whether it is on.")
    async def update_webhook_endpoint(
        self, info: Info, input: UpdateWebhookEndpointInput
    ) -> WebhookEndpointPayload | None:
        try:
            record = await info.context.webhooks.update(
                info.context.access,
                _endpoint_number(input.id),
                input.url,
                input.event_types,
                input.enabled,
            )
        except DomainError as error:
            return WebhookEndpointPayload(user_errors=UserError.of(error))
        return WebhookEndpointPayload(endpoint=WebhookEndpoint(record=record))

    @strawberry.mutation(
        description="A new signing secret, in force at once and answered this once; the "
        "current one also signs for `keepPreviousHours`."
    )
    async def rotate_webhook_endpoint_secret(
        self, info: Info, input: RotateWebhookEndpointSecretInput
    ) -> RotateWebhookEndpointSecretPayload | None:
        try:
            created = await info.context.webhooks.rotate(
                info.context.access, _endpoint_number(input.id), input.keep_previous_hours
            )
        except DomainError as error:
            return RotateWebhookEndpointSecretPayload(user_errors=UserError.of(error))
        return RotateWebhookEndpointSecretPayload(
            endpoint=WebhookEndpoint(record=created.endpoint), secret=created.secret
        )

    @strawberry.mutation(description="Delete an endpoint with its deliveries.")
    async def delete_webhook_endpoint(
        self, info: Info, input: WebhookEndpointInput
    ) -> DeleteWebhookEndpointPayload | None:
        try:
            await info.context.webhooks.delete(info.context.access, _endpoint_number(input.id))
        except DomainError as error:
            return DeleteWebhookEndpointPayload(user_errors=UserError.of(error))
        return DeleteWebhookEndpointPayload(deleted_id=input.id)

    @strawberry.mutation(
        description=(
            "Send a delivered or failed delivery again (same `webhook-id`), with a fresh "
            "schedule and a day of retries; a pending one is left as it is."
        )
    )
    async def resend_webhook_delivery(
        self, info: Info, input: ResendWebhookDeliveryInput
    ) -> WebhookDeliveryPayload | None:
        try:
            number = decode_int_id(str(input.id), "WebhookDelivery")
            if number is None:
                raise DomainError(
                    ErrorCode.UNKNOWN_WEBHOOK_DELIVERY, "No such webhook delivery.", ("id",)
                )
            record = await info.context.webhooks.resend(info.context.access, number)
        except DomainError as error:
            return WebhookDeliveryPayload(user_errors=UserError.of(error))
        return WebhookDeliveryPayload(delivery=WebhookDelivery(record=record))

    @strawberry.mutation(description="Send a `webhook.test` event to the endpoint.")
    async def send_test_webhook(
        self, info: Info, input: WebhookEndpointInput
    ) -> WebhookDeliveryPayload | None:
        try:
            record = await info.context.webhooks.send_test(
                info.context.access, _endpoint_number(input.id)
            )
        except DomainError as error:
            return WebhookDeliveryPayload(user_errors=UserError.of(error))
        return WebhookDeliveryPayload(delivery=WebhookDelivery(record=record))
