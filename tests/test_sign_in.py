"""The browser flow against real providers on loopback: sign in, link, merge, unlink,
log out, and the flow's defences."""

from __future__ import annotations

from tests.conftest import Gateway
from tests.sso import as_browser, brands, sign_in, sso  # noqa: F401

ME = "{ me { id wallets { partner { slug } balance } identities { provider subject } } }"


async def test_first_sign_in_creates_a_member_and_a_session(sso: Gateway):
    result = await sign_in(sso, "skyway", "bob")
    assert result.response.status_code == 303
    assert result.response.headers["location"] == "/graphql"
    cookie = result.response.headers["set-cookie"]
    assert "coalition_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    me = (await as_browser(sso, ME)).json()["data"]["me"]
    assert me["identities"] == [{"provider": "skyway", "subject": "bob"}]
