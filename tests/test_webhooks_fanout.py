"""The fan-out consumer over HTTP, on SQLite and PostgreSQL: which endpoints an event
reaches (subscribed type, the event's partners, coalition-wide events to all), from an
endpoint's registration on; and sending driven by the gateway's own job runner."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.conftest import Clock, Gateway, start_gateway
from tests.operations import payload
from tests.test_configuration import UPDATE_PARTNER
from tests.test_expiry import earned, enrol
from tests.webhook_receiver import receiver
from tests.webhooks_helpers import deliver, endpoint


async def test_events_reach_subscribed_endpoints_of_the_partners_they_concern(gateway: Gateway):
    async with receiver() as hooks:
        member = await enrol(gateway, "SKY-20")
        await earned(gateway, member, 5, "before")  # before any endpoint: sent to none
        gateway.clock.now += timedelta(seconds=1)
        await endpoint(gateway, hooks.url("/sky"), ["points.earned", "configuration.changed"])
        await endpoint(gateway, hooks.url("/sky-holds"), ["hold.placed"])
        await endpoint(
            gateway, hooks.url("/brew"), ["points.earned", "configuration.changed"], "brewbar"
        )
        await earned(gateway, member, 6, "after")
        changed = payload(
            await gateway.gql(
                UPDATE_PARTNER,
                {"input": {"partner": "skyway", "settings": {"pointValue": "0.013"}}},
            )
        )
        assert changed["userErrors"] == []
        await deliver(gateway)
        sky = {r.payload["type"]: r.payload["data"] for r in hooks.at("/sky")}
        assert len(hooks.at("/sky")) == 2  # events without a member have no order
        assert sky["points.earned"]["points"] == 6
        assert set(sky["configuration.changed"]) == {"change", "source"}
        assert [r.payload["type"] for r in hooks.at("/brew")] == ["configuration.changed"]
        assert hooks.at("/sky-holds") == []


async def test_the_job_runner_fans_out_and_sends_by_itself(database_url: str, clock: Clock):
    async with receiver() as hooks:
        async for gateway in start_gateway(
            database_url,
            clock,
            jobs=True,
            hold_sweep_seconds=3600,
            webhook_poll_seconds=0.05,
            events_poll_seconds=0.05,
        ):
            await endpoint(gateway, hooks.url(), ["member.enrolled"])
            await enrol(gateway, "SKY-21")
            async with asyncio.timeout(20):
                while not hooks.received:  # noqa: ASYNC110 (the runner's own pace)
                    await asyncio.sleep(0.05)
            (got,) = hooks.received
            assert got.payload["type"] == "member.enrolled"
            assert got.payload["data"]["partnerCustomerId"] == "SKY-21"
