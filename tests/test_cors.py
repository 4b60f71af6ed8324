"""CORS for partner web apps: listed origins only, with credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Clock, Gateway, start_gateway

SHOP = "https://shop.skyway.example"


@pytest.fixture
async def gateway(tmp_path: Path, clock: Clock) -> AsyncIterator[Gateway]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    async for gateway in start_gateway(url, clock, cors_origins=(SHOP,)):
        yield gateway


def preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-request-id",
    }


async def test_a_listed_origin_is_allowed_with_credentials(gateway: Gateway):
    allowed = await gateway.client.options("/graphql", headers=preflight(SHOP))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert allowed.headers["access-control-allow-credentials"] == "true"
    headers = allowed.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "x-request-id"} <= {
        h.strip() for h in headers.split(",")
    }
    assert "POST" in allowed.headers["access-control-allow-methods"]
    token = await gateway.partner_token("skyway")
    answer = await gateway.client.post(
        "/graphql",
        json={"query": "{ partners { slug } }"},
        headers={"origin": SHOP, "authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()


async def test_an_unlisted_origin_gets_no_cors_headers(gateway: Gateway):
    refused = await gateway.client.options("/graphql", headers=preflight("https://evil.example"))
    assert refused.status_code == 400
    assert not [name for name in refused.headers if name.startswith("access-control-")]
    token = await gateway.partner_token("skyway")
    answer = await gateway.client.post(
        "/graphql",
        json={"query": "{ partners { slug } }"},
        headers={"origin": "https://evil.example", "authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200  # the browser, not the server, withholds the answer
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-credentials" not in answer.headers
