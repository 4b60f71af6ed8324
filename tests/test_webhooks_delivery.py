"""Webhook deliveries over HTTP, on SQLite and PostgreSQL, to a real receiver on loopback
(development mode): signatures checked with the reference ``standardwebhooks`` package,
payloads, retries with growing pauses, failure after a day, order per member, a failing or
slow endpoint not holding back another, resend and the test event."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.api.graphql.scalars import encode_id
from gateway.kernel.sealing import Sealer
from gateway.webhooks import signing
from gateway.webhooks.delivery import Sender
from gateway.webhooks.store import DeliveryRecord
from gateway.webhooks.targets import Refused
from tests.conftest import Gateway
from tests.operations import ERRORS, payload
from tests.test_api import convert
from tests.test_expiry import earned, enrol
from tests.webhook_receiver import Received, receiver
from tests.webhooks_helpers import deliver, deliveries, endpoint

RESEND = f"""
mutation($input: ResendWebhookDeliveryInput!) {{
  resendWebhookDelivery(input: $input) {{ delivery {{ id status webhookId }} {ERRORS} }}
}}"""
TEST = f"""
mutation($input: WebhookEndpointInput!) {{
  sendTestWebhook(input: $input) {{ delivery {{ id eventType status }} {ERRORS} }}
}}"""


def verified(secret: str, received: Received) -> dict:
    return Webhook(secret).verify(received.body, received.headers)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_signed_delivery_verifies_and_a_tampered_one_does_not(gateway: Gateway):
    async with receiver() as hooks:
        _, secret = await endpoint(gateway, hooks.url(), ["points.earned"])
        member = await enrol(gateway, "SKY-1")
        transfer = await earned(gateway, member, 120, "earn-1")
        assert await deliver(gateway) == 1
        (got,) = hooks.received
        assert secret.startswith("whsec_")
        body = verified(secret, got)
        assert got.headers["webhook-id"].startswith("msg_")
        assert got.headers["content-type"] == "application/json"
        assert body["type"] == "points.earned"
        assert body["timestamp"] == "2026-06-01T12:00:00Z"
        data = body["data"]
        assert data["member"] == member
        assert data["partnerCustomerId"] == "SKY-1"
        assert data["pool"] == "skyway" and data["points"] == 120
        assert data["transfer"] == transfer["id"]
        assert data["kind"] == "earn"
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(got.body.replace(b"120", b"999"), got.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(got.body, {**got.headers, "webhook-id": "msg_other"})
        (delivery,) = (await deliveries(gateway))[hooks.url()]
        assert delivery["status"] == "DELIVERED" and delivery["eventType"] == "points.earned"
        assert delivery["webhookId"] == got.headers["webhook-id"]
        assert [a["statusCode"] for a in delivery["attempts"]] == [204]
        assert await deliver(gateway) == 0  # delivered once


async def test_a_conversion_reaches_both_partners_each_with_its_own_customer_id(
    gateway: Gateway,
):
    async with receiver() as hooks:
        _, sky_secret = await endpoint(gateway, hooks.url("/sky"), ["points.converted"])
        _, brew_secret = await endpoint(
            gateway, hooks.url("/brew"), ["points.converted", "member.enrolled"], "brewbar"
        )
        await endpoint(gateway, hooks.url("/fresh"), ["points.converted"], "freshmart")
        member = await enrol(gateway, "SKY-2")
        await earned(gateway, member, 1000, "earn-2")
        await enrol(gateway, "BREW-2", "brewbar")  # another member: not this one's id
        converted = await convert(gateway, member, 400, "convert-2")
        assert converted["userErrors"] == [], converted
        await deliver(gateway)
        (sky,) = [verified(sky_secret, r) for r in hooks.at("/sky")]
        brew = [verified(brew_secret, r) for r in hooks.at("/brew")]
        assert hooks.at("/fresh") == []  # not its pools
        assert sky["data"]["partnerCustomerId"] == "SKY-2"
        assert sky["data"]["toPartner"] == "brewbar" and sky["data"]["pool"] == "skyway"
        assert [b["type"] for b in brew] == ["member.enrolled", "points.converted"]
        assert brew[0]["data"]["partnerCustomerId"] == "BREW-2"
        # Not enrolled at BrewBar: no customer id there (SkyWay's is never passed on).
        assert brew[1]["data"]["partnerCustomerId"] is None
        assert brew[1]["data"]["member"] == member
        assert brew[1]["data"]["transfer"] == converted["transfer"]["id"]


async def test_failures_are_retried_with_growing_pauses_then_delivered(gateway: Gateway):
    async with receiver() as hooks:
        hooks.script["/hook"] = [500, 503]
        _, secret = await endpoint(gateway, hooks.url(), ["points.earned"])
        member = await enrol(gateway, "SKY-3")
        await earned(gateway, member, 10, "earn-3")
        assert await deliver(gateway) == 1
        (first,) = (await deliveries(gateway))[hooks.url()]
        assert first["status"] == "PENDING"
        assert first["attempts"][0]["statusCode"] == 500
        assert first["attempts"][0]["response"].startswith("answer 500")
        assert len(first["attempts"][0]["response"]) == 2048  # a bounded excerpt
        pause = at(first["nextAttemptAt"]) - gateway.clock.now
        assert timedelta(seconds=4) <= pause <= timedelta(seconds=6)
        assert await deliver(gateway) == 0  # not due yet
        gateway.clock.now += pause
        assert await deliver(gateway) == 1
        (second,) = (await deliveries(gateway))[hooks.url()]
        pause = at(second["nextAttemptAt"]) - gateway.clock.now
        assert timedelta(minutes=4) <= pause <= timedelta(minutes=6)
        gateway.clock.now += pause
        assert await deliver(gateway) == 1
        (done,) = (await deliveries(gateway))[hooks.url()]
        assert done["status"] == "DELIVERED" and done["nextAttemptAt"] is None
        assert [a["statusCode"] for a in done["attempts"]] == [500, 503, 204]
        ids = {r.headers["webhook-id"] for r in hooks.received}
        assert len(ids) == 1 and len(hooks.received) == 3  # the same message each time
        for got in hooks.received:
            verified(secret, got)


async def test_a_delivery_is_failed_once_a_day_has_passed(gateway: Gateway):
    async with receiver() as hooks:
        hooks.answer["/hook"] = lambda _: 500
        await endpoint(gateway, hooks.url(), ["points.earned"])
        member = await enrol(gateway, "SKY-4")
        await earned(gateway, member, 10, "earn-4")
        start = gateway.clock.now
        for _ in range(20):
            await deliver(gateway)
            (found,) = (await deliveries(gateway))[hooks.url()]
            if found["status"] != "PENDING":
                break
            gateway.clock.now = at(found["nextAttemptAt"])
        assert found["status"] == "FAILED"
        assert 6 <= len(found["attempts"]) <= 8
        assert gateway.clock.now - start <= timedelta(days=1)
        assert at(found["finishedAt"]) == gateway.clock.now
        gateway.clock.now += timedelta(days=2)
        assert await deliver(gateway) == 0


async def test_order_per_member_one_member_stuck_while_another_flows(gateway: Gateway):
    async with receiver() as hooks:
        stuck = await enrol(gateway, "SKY-5A")
        flowing = await enrol(gateway, "SKY-5B")
        refusing = {"on": True}

        def answer(got: Received) -> int:
            return 500 if refusing["on"] and got.payload["data"]["member"] == stuck else 204

        hooks.answer["/hook"] = answer
        await endpoint(gateway, hooks.url(), ["points.earned"])
        for n in range(3):
            await earned(gateway, stuck, 10 + n, f"a-{n}")
            await earned(gateway, flowing, 20 + n, f"b-{n}")
        await deliver(gateway)

        def points_of(member: str) -> list[int]:
            return [
                r.payload["data"]["points"]
                for r in hooks.received
                if r.payload["data"]["member"] == member
            ]

        assert points_of(flowing) == [20, 21, 22]
        assert points_of(stuck) == [10]  # its later events wait for the first
        found = (await deliveries(gateway))[hooks.url()]
        assert [len(d["attempts"]) for d in found] == [1, 1, 0, 1, 0, 1]
        refusing["on"] = False
        gateway.clock.now += timedelta(minutes=1)
        await deliver(gateway)
        assert points_of(stuck) == [10, 10, 11, 12]
        assert {d["status"] for d in (await deliveries(gateway))[hooks.url()]} == {"DELIVERED"}


async def test_a_slow_or_failing_endpoint_does_not_hold_back_another(gateway: Gateway):
    async with receiver() as hooks:
        fast_done = asyncio.Event()

        async def slow(_: Received) -> int:
            # Answers only once the other endpoint received everything (else after 5 s).
            try:
                async with asyncio.timeout(5):
                    await fast_done.wait()
            except TimeoutError:
                return 599
            return 500

        def fast(_: Received) -> int:
            if len(hooks.at("/fast")) == 3:
                fast_done.set()
            return 204

        hooks.answer["/slow"] = slow
        hooks.answer["/fast"] = fast
        await endpoint(gateway, hooks.url("/slow"), ["points.earned"])
        await endpoint(gateway, hooks.url("/fast"), ["points.earned"])
        member = await enrol(gateway, "SKY-6")
        for n in range(3):
            await earned(gateway, member, 30 + n, f"c-{n}")
        await deliver(gateway)
        assert [r.payload["data"]["points"] for r in hooks.at("/fast")] == [30, 31, 32]
        found = await deliveries(gateway)
        slow_tries = [a["statusCode"] for d in found[hooks.url("/slow")] for a in d["attempts"]]
        assert slow_tries == [500]  # answered after the fast endpoint got all three


async def test_resend_and_the_test_event(gateway: Gateway):
    async with receiver() as hooks:
        hook_id, secret = await endpoint(gateway, hooks.url(), ["points.earned"])
        sent = payload(await gateway.gql(TEST, {"input": {"id": hook_id}}))
        assert sent["userErrors"] == [] and sent["delivery"]["eventType"] == "webhook.test"
        assert await deliver(gateway) == 1
        (got,) = hooks.received
        body = verified(secret, got)
        assert body["type"] == "webhook.test"
        assert body["data"] == {"endpoint": hook_id, "partner": "skyway"}
        again = payload(await gateway.gql(RESEND, {"input": {"id": sent["delivery"]["id"]}}))
        assert again["userErrors"] == [] and again["delivery"]["status"] == "PENDING"
        assert again["delivery"]["webhookId"] == got.headers["webhook-id"]
        assert await deliver(gateway) == 1
        assert hooks.received[1].headers["webhook-id"] == got.headers["webhook-id"]
        assert verified(secret, hooks.received[1]) == body
        (delivery,) = (await deliveries(gateway))[hooks.url()]
        assert len(delivery["attempts"]) == 2 and delivery["status"] == "DELIVERED"
        unknown = encode_id("WebhookDelivery", 999)
        refused = payload(await gateway.gql(RESEND, {"input": {"id": unknown}}))
        assert refused["userErrors"][0]["code"] == "UNKNOWN_WEBHOOK_DELIVERY"
        bad = payload(await gateway.gql(RESEND, {"input": {"id": "nonsense"}}))
        assert bad["userErrors"][0]["code"] == "UNKNOWN_WEBHOOK_DELIVERY"


async def test_in_production_the_request_goes_to_the_checked_address(gateway: Gateway):
    """No public host is reachable from the tests: the request is captured before the
    network (the one stand-in here), to show where it would go and under which name."""
    seen: list[httpx.Request] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    sender = Sender(gateway.service.uow, gateway.clock, Sealer(b"k" * 32), production=True)
    item = DeliveryRecord(
        1, 1, "msg_x", None, "webhook.test", None, gateway.clock.now, "pending", 0,
        gateway.clock.now, None, None, None,
    )  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.MockTransport(capture)) as client:
        found = await sender._call(
            client, "https://93.184.216.34:8443/in?x=1", [signing.new_secret()], item, b"{}"
        )
        assert found == (204, "")
        with pytest.raises(Refused):
            await sender._call(client, "https://localhost/in", [signing.new_secret()], item, b"{}")
    (request,) = seen
    assert str(request.url) == "https://93.184.216.34:8443/in?x=1"
    assert request.headers["host"] == "93.184.216.34:8443"
    assert request.extensions["sni_hostname"] == "93.184.216.34"
    assert request.headers["webhook-id"] == "msg_x"


async def test_two_senders_at_once_send_each_delivery_once(gateway: Gateway):
    async with receiver() as hooks:
        await endpoint(gateway, hooks.url(), ["member.enrolled"])
        for n in range(12):
            await enrol(gateway, f"SKY-40-{n}")
        await gateway.settle_events()
        service = gateway.app.state.webhooks
        other = Sender(gateway.service.uow, gateway.clock, service.sealer, production=False)
        counts = await asyncio.gather(service.send_due(), other.send_due())
        assert sum(counts) == 12
        ids = [r.headers["webhook-id"] for r in hooks.received]
        assert len(ids) == len(set(ids)) == 12
