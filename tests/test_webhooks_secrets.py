"""The store's hooks for ``coalition secrets rewrap``: every sealed webhook secret (current
and previous) listed with its context, and a re-wrapped value stored back in place."""

from __future__ import annotations

from gateway.api.graphql.scalars import decode_int_id
from gateway.api.settings import DEVELOPMENT_MASTER_KEY
from gateway.kernel.sealing import Sealer, new_master_key, parse_master_key
from gateway.webhooks import secrets
from tests.conftest import Gateway
from tests.operations import payload
from tests.test_webhooks_api import ROTATE
from tests.webhooks_helpers import endpoint


async def test_sealed_secrets_can_be_rewrapped_in_place(gateway: Gateway):
    hook_id, first = await endpoint(gateway, "http://127.0.0.1:9/hook", ["points.earned"])
    second = payload(await gateway.gql(ROTATE, {"input": {"id": hook_id}}))["secret"]
    number = decode_int_id(hook_id, "WebhookEndpoint")
    old_key, new_key = parse_master_key(DEVELOPMENT_MASTER_KEY), parse_master_key(new_master_key())
    moving = Sealer(new_key, [old_key])
    async with gateway.service.engine.begin() as connection:
        found = await secrets.sealed_secrets(connection)
        assert [(key, context) for key, context, _ in found] == [
            (f"{number}:secret", f"webhook_secret:{number}"),
            (f"{number}:previous_secret", f"webhook_secret:{number}"),
        ]
        for key, context, sealed in found:
            assert await secrets.replace_sealed(
                connection, key, sealed, moving.rewrap(sealed, context)
            )
            assert not await secrets.replace_sealed(connection, key, sealed, "changed meanwhile")
    async with gateway.service.engine.connect() as connection:
        again = await secrets.sealed_secrets(connection)
    only_new = Sealer(new_key)
    assert [only_new.open(sealed, context).decode() for _, context, sealed in again] == [
        second,
        first,
    ]
