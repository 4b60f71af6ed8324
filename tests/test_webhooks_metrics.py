"""Webhook tries counted by partner and outcome on /metrics."""

from __future__ import annotations

from tests.conftest import Gateway
from tests.test_expiry import earned, enrol
from tests.test_metrics import sample, scrape
from tests.webhook_receiver import receiver
from tests.webhooks_helpers import deliver, endpoint

NAME = "coalition_webhook_attempts_total"


async def test_tries_are_counted_by_outcome(gateway: Gateway):
    before = await scrape(gateway)
    async with receiver() as hooks:
        hooks.script["/hook"] = [500]
        await endpoint(gateway, hooks.url(), ["points.earned"])
        member = await enrol(gateway, "SKY-30")
        await earned(gateway, member, 5, "earn-30")
        await deliver(gateway)
        gateway.clock.now = gateway.clock.now.replace(minute=5)
        await deliver(gateway)
    after = await scrape(gateway)
    for outcome in ("retrying", "delivered"):
        counted = sample(after, NAME, partner="skyway", outcome=outcome)
        assert counted - sample(before, NAME, partner="skyway", outcome=outcome) == 1
