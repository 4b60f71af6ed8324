"""Managing webhook endpoints over GraphQL, on SQLite and PostgreSQL: the secret shown once
and sealed at rest, who may manage which endpoints, bounded inputs, and in production the
URL rules (https only, no private or loopback target, at registration and at send time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.api.graphql.scalars import encode_id
from gateway.kernel.sealing import new_master_key
from gateway.webhooks.tables import webhook_endpoints
from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import ERRORS, payload
from tests.test_expiry import earned, enrol
from tests.webhook_receiver import receiver
from tests.webhooks_helpers import create, deliver, deliveries, endpoint

UPDATE = f"""
mutation($input: UpdateWebhookEndpointInput!) {{
  updateWebhookEndpoint(input: $input) {{ endpoint {{ id url eventTypes enabled }} {ERRORS} }}
}}"""
ROTATE = f"""
mutation($input: RotateWebhookEndpointSecretInput!) {{
  rotateWebhookEndpointSecret(input: $input) {{ endpoint {{ id }} secret {ERRORS} }}
}}"""
DELETE = f"""
mutation($input: WebhookEndpointInput!) {{
  deleteWebhookEndpoint(input: $input) {{ deletedId {ERRORS} }}
}}"""
PRODUCTION_CONFIG = {
    "coalition": 'name = "Webhook coalition"\nsettlement_currency = "EUR"\n',
    "skyway": """
slug = "skyway"
name = "SkyWay"
point_value = "0.012"
[currency]
code = "SKM"
name = "miles"
[earn]
points_per_unit = "2"
""",
}
SEND_TEST = f"""
mutation($input: WebhookEndpointInput!) {{
  sendTestWebhook(input: $input) {{ delivery {{ id }} {ERRORS} }}
}}"""
RESEND = f"""
mutation($input: ResendWebhookDeliveryInput!) {{
  resendWebhookDelivery(input: $input) {{ delivery {{ id }} {ERRORS} }}
}}"""
LIST = "query($partner: String) { webhookEndpoints(partner: $partner) { id partner url } }"


def codes(result: dict[str, Any]) -> list[str]:
    return [error["code"] for error in result["userErrors"]]


async def raw_secrets(gateway: Gateway, column: str = "secret") -> list[str]:
    async with gateway.service.engine.connect() as connection:
        rows = await connection.execute(sa.select(webhook_endpoints.c[column]))
        return [row[0] for row in rows]


async def test_the_secret_is_shown_once_and_stored_sealed(gateway: Gateway):
    async with receiver() as hooks:
        hook_id, secret = await endpoint(gateway, hooks.url(), ["points.earned"])
        (stored,) = await raw_secrets(gateway)
        assert stored.startswith("sealed:v1:")
        assert secret not in stored and secret.removeprefix("whsec_") not in stored
        listed = await gateway.gql(LIST, {"partner": "skyway"})
        assert secret not in str(listed)
        rotated = payload(
            await gateway.gql(ROTATE, {"input": {"id": hook_id, "keepPreviousHours": 0}})
        )
        assert rotated["userErrors"] == [] and rotated["secret"] != secret
        assert rotated["secret"].startswith("whsec_")
        (again,) = await raw_secrets(gateway)
        assert again != stored and rotated["secret"] not in again
        member = await enrol(gateway, "SKY-10")
        await earned(gateway, member, 5, "earn-10")
        await deliver(gateway)
        (got,) = hooks.received
        Webhook(rotated["secret"]).verify(got.body, got.headers)  # the new secret signs
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(got.body, got.headers)


async def test_after_a_rotation_the_previous_secret_signs_for_a_while(gateway: Gateway):
    async with receiver() as hooks:
        hook_id, old = await endpoint(gateway, hooks.url(), ["points.earned"])
        rotated = payload(await gateway.gql(ROTATE, {"input": {"id": hook_id}}))  # 24 h
        new = rotated["secret"]
        stored = await raw_secrets(gateway, "previous_secret")
        assert stored[0].startswith("sealed:v1:") and old not in stored[0]
        member = await enrol(gateway, "SKY-13")
        await earned(gateway, member, 5, "earn-13")
        await deliver(gateway)
        for secret in (old, new):
            Webhook(secret).verify(hooks.received[0].body, hooks.received[0].headers)
        gateway.clock.now += timedelta(hours=24)
        await earned(gateway, member, 6, "earn-13b")
        await deliver(gateway)
        Webhook(new).verify(hooks.received[1].body, hooks.received[1].headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(old).verify(hooks.received[1].body, hooks.received[1].headers)
        too_long = {"id": hook_id, "keepPreviousHours": 169}
        assert codes(payload(await gateway.gql(ROTATE, {"input": too_long}))) == ["INVALID_INPUT"]


async def test_updating_disabling_and_deleting_an_endpoint(gateway: Gateway):
    async with receiver() as hooks:
        hook_id, _ = await endpoint(gateway, hooks.url(), ["points.earned"])
        off = {"id": hook_id, "enabled": False, "eventTypes": ["points.earned", "hold.placed"]}
        updated = payload(await gateway.gql(UPDATE, {"input": off}))
        assert updated["userErrors"] == []
        assert updated["endpoint"]["enabled"] is False
        assert updated["endpoint"]["eventTypes"] == ["points.earned", "hold.placed"]
        member = await enrol(gateway, "SKY-11")
        await earned(gateway, member, 5, "earn-11")
        await deliver(gateway)
        assert hooks.received == []  # a disabled endpoint gets nothing
        moved = {"id": hook_id, "url": hooks.url("/moved"), "enabled": True}
        assert payload(await gateway.gql(UPDATE, {"input": moved}))["userErrors"] == []
        await earned(gateway, member, 6, "earn-11b")
        await deliver(gateway)
        assert [r.path for r in hooks.received] == ["/moved"]
        deleted = payload(await gateway.gql(DELETE, {"input": {"id": hook_id}}))
        assert deleted == {"deletedId": hook_id, "userErrors": []}
        assert await deliveries(gateway) == {}
        again = payload(await gateway.gql(DELETE, {"input": {"id": hook_id}}))
        assert codes(again) == ["UNKNOWN_WEBHOOK_ENDPOINT"]


async def test_a_partner_app_manages_only_its_own_endpoints(gateway: Gateway):
    skyway = await gateway.partner_token("skyway")
    mine = await create(gateway, "http://127.0.0.1:9/sky", ["points.earned"], "skyway", skyway)
    assert mine["userErrors"] == [] and mine["endpoint"]["partner"] == "skyway"
    theirs = await create(gateway, "http://127.0.0.1:9/brew", ["points.earned"], "brewbar", skyway)
    assert codes(theirs) == ["ACCESS_DENIED"]
    brew_id, _ = await endpoint(gateway, "http://127.0.0.1:9/brew", ["points.earned"], "brewbar")
    for query, variables in (
        (UPDATE, {"id": brew_id, "enabled": False}),
        (ROTATE, {"id": brew_id}),
        (DELETE, {"id": brew_id}),
    ):
        refused = payload(await gateway.gql(query, {"input": variables}, skyway))
        assert codes(refused) == ["UNKNOWN_WEBHOOK_ENDPOINT"]
    test = await gateway.gql(SEND_TEST, {"input": {"id": brew_id}})
    brew_delivery = payload(test)["delivery"]["id"]
    refused = payload(await gateway.gql(SEND_TEST, {"input": {"id": brew_id}}, skyway))
    assert codes(refused) == ["UNKNOWN_WEBHOOK_ENDPOINT"]
    refused = payload(await gateway.gql(RESEND, {"input": {"id": brew_delivery}}, skyway))
    assert codes(refused) == ["UNKNOWN_WEBHOOK_DELIVERY"]
    own = await gateway.gql(LIST, {}, skyway)
    assert [e["partner"] for e in own["data"]["webhookEndpoints"]] == ["skyway"]
    other = await gateway.gql(LIST, {"partner": "brewbar"}, skyway, errors=True)
    assert other["errors"][0]["extensions"]["code"] == "ACCESS_DENIED"
    everyone = await gateway.gql(LIST, {})
    assert sorted(e["partner"] for e in everyone["data"]["webhookEndpoints"]) == [
        "brewbar",
        "skyway",
    ]
    unscoped = await gateway.partner_token("skyway", "points:earn")
    lacking = await create(gateway, "http://127.0.0.1:9/x", ["points.earned"], "skyway", unscoped)
    assert codes(lacking) == ["ACCESS_DENIED"]


@pytest.mark.parametrize(
    ("url", "types", "code"),
    [
        ("ftp://example.com/hook", ["points.earned"], "WEBHOOK_URL_REFUSED"),
        ("http://user:pw@example.com/hook", ["points.earned"], "WEBHOOK_URL_REFUSED"),
        ("http://example.com/" + "a" * 2048, ["points.earned"], "WEBHOOK_URL_REFUSED"),
        ("http://exa mple.com/", ["points.earned"], "WEBHOOK_URL_REFUSED"),
        ("not a url", ["points.earned"], "WEBHOOK_URL_REFUSED"),
        ("http://example.com:99999/", ["points.earned"], "WEBHOOK_URL_REFUSED"),
        ("http://example.com/", [], "INVALID_INPUT"),
        ("http://example.com/", ["points.stolen"], "INVALID_INPUT"),
        ("http://example.com/", ["points.earned"] * 40, "INVALID_INPUT"),
    ],
)
async def test_bad_input_is_a_user_error(gateway: Gateway, url: str, types: list[str], code: str):
    assert codes(await create(gateway, url, types)) == [code]


async def test_unknown_partner_ids_and_the_endpoint_limit(gateway: Gateway):
    assert codes(await create(gateway, "http://e.example/", ["points.earned"], "nobody")) == [
        "UNKNOWN_PARTNER"
    ]
    for bad in ("nonsense", encode_id("Member", 1), encode_id("WebhookEndpoint", 12345)):
        refused = payload(await gateway.gql(ROTATE, {"input": {"id": bad}}))
        assert codes(refused) == ["UNKNOWN_WEBHOOK_ENDPOINT"]
    for n in range(20):
        await endpoint(gateway, f"http://e.example/{n}", ["points.earned"])
    assert codes(await create(gateway, "http://e.example/21", ["points.earned"])) == [
        "WEBHOOK_ENDPOINT_LIMIT"
    ]
    query = (
        '{ webhookEndpoints(partner: "skyway") { deliveries(first: 101) { edges { cursor } } } }'
    )
    assert "between 0 and 100" in str(await gateway.gql(query, errors=True))
    query = (
        '{ webhookEndpoints(partner: "skyway") { deliveries(after: "x") { edges { cursor } } } }'
    )
    assert "not a cursor" in str(await gateway.gql(query, errors=True))


@pytest.fixture
async def production(database_url: str, clock: Clock, tmp_path: Path) -> AsyncIterator[Gateway]:
    """A production gateway (a small coalition: no development sign-in or pool)."""
    directory = tmp_path / "config"
    directory.mkdir()
    for name, text in PRODUCTION_CONFIG.items():
        (directory / f"{name}.toml").write_text(text)
    async for gateway in start_gateway(
        database_url,
        clock,
        config_dir=str(directory),
        environment="production",
        session_secret="s" * 32,
        master_key=new_master_key(),
    ):
        yield gateway


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://[fd00::1]/hook",
        "https://localhost/hook",
        "https://224.0.0.1/hook",
    ],
)
async def test_production_refuses_http_and_private_targets(production: Gateway, url: str):
    result = await create(production, url, ["points.earned"])
    assert codes(result) == ["WEBHOOK_URL_REFUSED"], url
    assert result["userErrors"][0]["field"] == ["input", "url"]


async def test_production_refuses_a_private_target_at_send_time(production: Gateway):
    async with receiver() as hooks:
        await endpoint(production, "https://93.184.216.34/hook", ["points.earned"])
        # As if its name now resolved to loopback: the sender checks again.
        async with production.service.engine.begin() as connection:
            await connection.execute(
                sa.update(webhook_endpoints).values(url=hooks.url().replace("http:", "https:"))
            )
        member = await enrol(production, "SKY-12")
        await earned(production, member, 5, "earn-12")
        assert await deliver(production) == 1
        assert hooks.received == []
        (delivery,) = next(iter((await deliveries(production)).values()))
        (attempt,) = delivery["attempts"]
        assert attempt["statusCode"] is None and attempt["error"].startswith("refused:")
        assert delivery["status"] == "PENDING"
