"""Sign-in through a provider we did not write: the PyPI package oidc-provider-mock, served
by werkzeug on loopback, stands in for a partner brand's real identity provider."""

from __future__ import annotations

import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import oidc_provider_mock
import pytest
import werkzeug.serving

from gateway.ledger.service import utcnow
from tests.conftest import Gateway, start_gateway
from tests.sso import Brands

ME = "{ me { id wallets { partner { slug } balance } identities { provider subject } } }"


@pytest.fixture(scope="module")
def mock_issuer() -> Iterator[str]:
    users = [oidc_provider_mock.User(sub="alice", claims={"skyway_member": "SKY-1001"})]
    app = oidc_provider_mock.app(require_nonce=True, user_claims=users)
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
async def gateway(
    database_url: str, brands: Brands, mock_issuer: str, tmp_path: Path
) -> AsyncIterator[Gateway]:
    config = tmp_path / "config"
    shutil.copytree(brands.config_dir, config)
    skyway = config / "skyway.toml"
    text = skyway.read_text()
    old = brands.providers["skyway"].issuer
    skyway.write_text(text.replace(f'issuer = "{old}"', f'issuer = "{mock_issuer}"'))
    # The mock accepts any client; its tokens carry real time, so the gateway does too.
    async for gateway in start_gateway(
        database_url, utcnow, config_dir=config, oidc_credentials=brands.credentials
    ):
        yield gateway


async def test_sign_in_at_a_third_party_provider_attaches_the_enrolled_member(gateway: Gateway):
    enrolled = await gateway.gql(
        'mutation { enrolMember(input: {partner: "skyway", partnerCustomerId: "SKY-1001"})'
        " { member { id } } }"
    )
    member_id = enrolled["data"]["enrolMember"]["member"]["id"]
    start = await gateway.client.get("/auth/login/skyway")
    assert start.status_code == 302
    authorize = start.headers["location"]
    assert "code_challenge_method=S256" in authorize and "nonce=" in authorize
    async with httpx.AsyncClient() as browser:
        answer = await browser.post(authorize, data={"sub": "alice"})
    assert answer.status_code in (302, 303), answer.text
    callback = urlsplit(answer.headers["location"])
    done = await gateway.client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 303, done.text
    me = await gateway.client.post("/graphql", json={"query": ME})
    body = me.json()["data"]["me"]
    assert body["id"] == member_id
    assert body["identities"] == [{"provider": "skyway", "subject": "alice"}]
    replayed = await gateway.client.get(f"{callback.path}?{callback.query}")
    assert replayed.status_code == 400
