"""Shared steps of the webhook tests: register an endpoint, run the fan-out and the sender,
read deliveries back over GraphQL."""

from __future__ import annotations

from typing import Any

from gateway.webhooks.service import WebhookService
from tests.conftest import Gateway
from tests.operations import ERRORS, payload

CREATE = f"""
mutation($input: CreateWebhookEndpointInput!) {{
  createWebhookEndpoint(input: $input) {{
    endpoint {{ id partner url eventTypes enabled }} secret {ERRORS}
  }}
}}"""
ENDPOINTS = """
query($partner: String, $status: WebhookDeliveryStatus, $first: Int!) {
  webhookEndpoints(partner: $partner) {
    id url
    deliveries(first: $first, status: $status) {
      edges { node { id webhookId eventType status nextAttemptAt finishedAt
        attempts { statusCode response error attemptedAt durationMs } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""


async def create(
    gateway: Gateway,
    url: str,
    types: list[str],
    partner: str = "skyway",
    token: str | None = None,
) -> dict[str, Any]:
    variables = {"input": {"partner": partner, "url": url, "eventTypes": types}}
    return payload(await gateway.gql(CREATE, variables, token))


async def endpoint(gateway: Gateway, url: str, types: list[str], partner: str = "skyway"):
    """A new endpoint's (id, secret)."""
    result = await create(gateway, url, types, partner)
    assert result["userErrors"] == [], result
    return result["endpoint"]["id"], result["secret"]


def webhooks(gateway: Gateway) -> WebhookService:
    service: WebhookService = gateway.app.state.webhooks
    return service


async def deliver(gateway: Gateway) -> int:
    """Fan the events out, then send what is due now: how many tries were made."""
    await gateway.settle_events()
    return await webhooks(gateway).send_due()


async def deliveries(
    gateway: Gateway, partner: str = "skyway", status: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Each endpoint's deliveries by its URL, oldest first."""
    variables = {"partner": partner, "status": status, "first": 100}
    body = await gateway.gql(ENDPOINTS, variables)
    return {
        found["url"]: [edge["node"] for edge in found["deliveries"]["edges"]][::-1]
        for found in body["data"]["webhookEndpoints"]
    }
