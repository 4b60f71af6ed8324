"""An endpoint every try at which fails for five days is disabled by the gateway: it says why
and since when, the audit trail says the sender did it, nothing more is made or sent for it,
and enabling it again sends what waited. One answer in between starts the count again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import Gateway
from tests.operations import ERRORS, payload
from tests.test_expiry import earned, enrol
from tests.test_metrics import sample, scrape
from tests.webhook_receiver import Received, receiver
from tests.webhooks_helpers import deliver, deliveries, endpoint

HEALTH = """
query { webhookEndpoints(partner: "skyway") { url enabled failingSince disabledReason } }"""
ENABLE = f"""
mutation($id: ID!, $enabled: Boolean!) {{
  updateWebhookEndpoint(input: {{id: $id, enabled: $enabled}}) {{
    endpoint {{ enabled failingSince disabledReason }} {ERRORS}
  }}
}}"""
DISABLED = """
query {
  auditTrail(filter: {action: "webhook_endpoint.disable"}) {
    edges { node { actor { kind id } target { kind id } partner outcome detail } }
  }
}"""
COUNTER = "coalition_webhook_endpoints_disabled_total"


async def health(gateway: Gateway) -> dict[str, dict[str, Any]]:
    found = (await gateway.gql(HEALTH))["data"]["webhookEndpoints"]
    return {endpoint.pop("url").rsplit("/", 1)[1]: endpoint for endpoint in found}


async def test_five_days_of_failures_disable_the_endpoint_and_say_why(gateway: Gateway):
    before = await scrape(gateway)
    async with receiver() as hooks:
        hooks.answer["/down"] = lambda _: 503
        down, _ = await endpoint(gateway, hooks.url("/down"), ["points.earned"])
        await endpoint(gateway, hooks.url("/up"), ["points.earned"])
        member = await enrol(gateway, "SKY-H1")
        start = gateway.clock.now
        await earned(gateway, member, 5, "h-1")
        await deliver(gateway)
        first_failure = (await health(gateway))["down"]["failingSince"]
        assert first_failure is not None
        assert (await health(gateway))["up"]["failingSince"] is None

        gateway.clock.now = start + timedelta(days=4, hours=23)
        await earned(gateway, member, 5, "h-2")
        await deliver(gateway)
        assert (await health(gateway))["down"] == {
            "enabled": True,
            "failingSince": first_failure,
            "disabledReason": None,
        }

        gateway.clock.now = start + timedelta(days=5, minutes=1)
        await earned(gateway, member, 5, "h-3")
        await deliver(gateway)
        now = await health(gateway)
        assert now["down"]["enabled"] is False
        assert now["down"]["failingSince"] == first_failure
        assert "5 days" in now["down"]["disabledReason"]
        assert now["up"] == {"enabled": True, "failingSince": None, "disabledReason": None}
        assert len(hooks.at("/up")) == 3

        (entry,) = [e["node"] for e in (await gateway.gql(DISABLED))["data"]["auditTrail"]["edges"]]
        assert entry["actor"] == {"kind": "JOB", "id": "system:webhooks.send"}
        assert entry["target"]["kind"] == "webhook_endpoint"
        assert entry["partner"] == "skyway" and entry["outcome"] == "OK"
        assert entry["detail"].startswith("failing since ")

        # Disabled: no delivery is made for a new event, and none waiting is tried.
        tried = len(hooks.at("/down"))
        made = len((await deliveries(gateway))[hooks.url("/down")])
        await earned(gateway, member, 5, "h-4")
        for hours in (1, 12, 30):
            gateway.clock.now = start + timedelta(days=5, hours=hours)
            await deliver(gateway)
        assert len(hooks.at("/down")) == tried
        assert len((await deliveries(gateway))[hooks.url("/down")]) == made
        assert len(hooks.at("/up")) == 4
    after = await scrape(gateway)
    disabled = sample(after, COUNTER, partner="skyway") - sample(before, COUNTER, partner="skyway")
    assert disabled == 1
    assert down.startswith("V2Vi")  # a global id


async def test_an_answer_in_between_starts_the_count_again(gateway: Gateway):
    async with receiver() as hooks:
        answers = iter([500, 204, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500])
        hooks.answer["/flaky"] = lambda _: next(answers)
        await endpoint(gateway, hooks.url("/flaky"), ["points.earned"])
        member = await enrol(gateway, "SKY-H2")
        start = gateway.clock.now
        await earned(gateway, member, 5, "f-1")
        await deliver(gateway)  # 500
        gateway.clock.now = start + timedelta(days=3)
        await deliver(gateway)  # the retry: 204
        assert (await health(gateway))["flaky"]["failingSince"] is None
        gateway.clock.now = start + timedelta(days=3, hours=1)
        await earned(gateway, member, 5, "f-2")
        await deliver(gateway)  # 500: failing from now
        gateway.clock.now = start + timedelta(days=5, minutes=1)
        await deliver(gateway)  # 500, five days after the first failure, two after the answer
        flaky = (await health(gateway))["flaky"]
        assert flaky["enabled"] is True and flaky["disabledReason"] is None
        assert flaky["failingSince"].startswith(
            (start + timedelta(days=3, hours=1)).date().isoformat()
        )


async def test_enabling_it_again_clears_the_reason_and_sends_what_waited(gateway: Gateway):
    async with receiver() as hooks:
        up = False

        def answer(_: Received) -> int:
            return 204 if up else 502

        hooks.answer["/back"] = answer
        back, _ = await endpoint(gateway, hooks.url("/back"), ["points.earned"])
        member = await enrol(gateway, "SKY-H3")
        start = gateway.clock.now
        await earned(gateway, member, 5, "b-1")
        await deliver(gateway)
        gateway.clock.now = start + timedelta(days=5, minutes=1)
        await earned(gateway, member, 7, "b-2")
        await deliver(gateway)
        assert (await health(gateway))["back"]["enabled"] is False

        up = True
        enabled = payload(await gateway.gql(ENABLE, {"id": back, "enabled": True}))
        assert enabled == {
            "endpoint": {"enabled": True, "failingSince": None, "disabledReason": None},
            "userErrors": [],
        }
        await earned(gateway, member, 9, "b-3")  # made again now that it is enabled
        gateway.clock.now += timedelta(hours=11)  # past the waiting one's next try
        await deliver(gateway)
        statuses = [d["status"] for d in (await deliveries(gateway))[hooks.url("/back")]]
        # The first gave up after a day of failures; the second waited and goes out now.
        assert statuses == ["FAILED", "DELIVERED", "DELIVERED"]
        sent = [r.payload["data"]["points"] for r in hooks.at("/back")]
        assert sent[-2:] == [7, 9]  # in order: the member's waiting one first

        # A person disabling it leaves no reason: the gateway did not.
        disabled = payload(await gateway.gql(ENABLE, {"id": back, "enabled": False}))
        assert disabled["endpoint"]["disabledReason"] is None
