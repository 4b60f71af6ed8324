"""An erasure reaches the partners through their webhooks: a `member.erased` event naming
the member, and no customer id in anything sent after it."""

from __future__ import annotations

import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from tests.conftest import Gateway
from tests.test_expiry import earned, enrol
from tests.test_privacy import ERASE, ok
from tests.webhook_receiver import receiver
from tests.webhooks_helpers import deliver, deliveries, endpoint


async def test_partners_are_told_of_an_erasure_without_the_erased_customer_id(gateway: Gateway):
    async with receiver() as hooks:
        hooks.script["/hook"] = [200]  # an answer with a body: kept with the attempt
        _, secret = await endpoint(
            gateway, hooks.url(), ["points.earned", "points.expired", "member.erased"]
        )
        member = await enrol(gateway, "SKY-ERASE-1")
        await earned(gateway, member, 300, "earn-erase-1")
        assert await deliver(gateway) == 1
        assert hooks.received[0].payload["data"]["partnerCustomerId"] == "SKY-ERASE-1"
        assert await answers(gateway) == [True]

        erased = await ok(gateway, ERASE, {"id": member})
        assert erased["forfeited"] == [{"partner": "skyway", "points": 300}]
        assert await deliver(gateway) == 2
        sent = [Webhook(secret).verify(r.body, r.headers) for r in hooks.received[1:]]
        assert [body["type"] for body in sent] == ["points.expired", "member.erased"]
        for body in sent:
            assert body["data"]["member"] == member
            assert body["data"]["partnerCustomerId"] is None
        assert sent[1]["data"]["pool"] == "skyway"
        assert "SKY-ERASE-1" not in "".join(r.body.decode() for r in hooks.received[1:])
        # What operators see of the deliveries holds no customer id either.
        listed = await deliveries(gateway)
        assert len(listed[hooks.url()]) == 3
        assert "SKY-ERASE-1" not in repr(listed)
        # The receiver's answers (often an echo of the payload) were cleared at erasure.
        assert await answers(gateway) == [False, False, False]


async def answers(gateway: Gateway) -> list[bool]:
    """Whether each webhook attempt, in order, still holds the receiver's answer."""
    async with gateway.service.engine.connect() as connection:
        found = await connection.scalars(
            sa.text("SELECT response FROM webhook_attempts ORDER BY id")
        )
        return [bool(value) for value in found]
