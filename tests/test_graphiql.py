"""GraphiQL from the gateway's own files: the page, its assets, who it opens for, and off."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.api.graphiql import ANONYMOUS_QUERY, MEMBER_QUERY, OPERATOR_QUERY
from gateway.auth.providers import COALITION
from tests.conftest import Clock, Gateway, start_gateway
from tests.sso import as_browser, sign_in

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CDNS = tuple(
    f"//{host}"
    for host in (
        "unpkg.com",
        "cdn.jsdelivr.net",
        "cdnjs.cloudflare.com",
        "esm.sh",
        "fonts.googleapis.com",
        "cdn.skypack.dev",
    )
)


async def page(gateway: Gateway) -> str:
    response = await gateway.client.get("/graphql", headers={"accept": BROWSER})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self' 'nonce-" in response.headers["content-security-policy"]
    return response.text


def config(html: str) -> dict[str, object]:
    found = re.search(r"const config = (\{.*?\});\n", html)
    assert found, html
    value: dict[str, object] = json.loads(found.group(1))
    return value


async def test_the_page_and_its_files_come_from_the_gateway(sso: Gateway):
    html = await page(sso)
    loaded = re.findall(r'<(?:script|link)[^>]* (?:src|href)="([^"]+)"', html)
    assert len(loaded) == 4 and all(url.startswith("/graphiql/static/") for url in loaded)
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    for url in loaded:
        asset = await sso.client.get(url)
        assert asset.status_code == 200, url
        expected = "text/javascript" if url.endswith(".js") else "text/css"
        assert asset.headers["content-type"] == f"{expected}; charset=utf-8"
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert not any(cdn in asset.text for cdn in CDNS), url
        if url.endswith(".css"):
            assert "@import" not in asset.text
            assert set(re.findall(r"url\((\w+):", asset.text)) == {"data"}  # fonts inline
    licence = await sso.client.get("/graphiql/static/graphiql-3.8.3/LICENSE")
    assert licence.status_code == 200 and "MIT License" in licence.text


@pytest.mark.parametrize(
    "path",
    ["/graphiql/static/nothing.js", "/graphiql/static/../graphiql.py", "/graphiql/static/"],
)
async def test_other_paths_under_static_are_not_found(sso: Gateway, path: str):
    assert (await sso.client.get(path)).status_code == 404


async def test_an_anonymous_visitor_is_shown_how_to_sign_in(sso: Gateway):
    html = await page(sso)
    help_ = html[html.index('id="sign-in"') : html.index("</header>")]
    for provider in (COALITION, "skyway", "brewbar", "freshmart", "harbour"):
        assert f'href="/auth/login/{provider}"' in help_
    assert "grant_type=client_credentials http://gateway/oauth/token" in help_
    assert "Headers" in help_ and "Authorization" in help_
    assert config(html) == {
        "url": "/graphql",
        "query": ANONYMOUS_QUERY,
        "docs": False,
        "headers": True,
        "storage": "coalition-anonymous",
    }


async def test_a_signed_in_operator_opens_on_the_partners_with_the_docs(sso: Gateway):
    await sign_in(sso, COALITION, "olivia")
    html = await page(sso)
    assert "Signed in as operator" in html and 'id="sign-in"' not in html
    opened = config(html)
    assert opened["query"] == OPERATOR_QUERY and opened["docs"] is True
    answer = (await as_browser(sso, OPERATOR_QUERY)).json()
    assert "errors" not in answer and {p["slug"] for p in answer["data"]["partners"]} >= {
        "skyway",
        "brewbar",
    }


async def test_a_signed_in_member_opens_on_their_points(sso: Gateway):
    await sign_in(sso, "skyway", "alice")
    html = await page(sso)
    assert "Signed in as member" in html
    assert config(html)["query"] == MEMBER_QUERY
    answer = (await as_browser(sso, MEMBER_QUERY)).json()
    assert "errors" not in answer, answer
    assert [e["partnerCustomerId"] for e in answer["data"]["me"]["enrolments"]] == ["SKY-1001"]


@pytest.fixture
async def without_graphiql(tmp_path: Path) -> AsyncIterator[Gateway]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    async for gateway in start_gateway(database, Clock(), graphiql=False):
        yield gateway


async def test_when_off_a_browser_gets_the_endpoints_plain_answer(without_graphiql: Gateway):
    client = without_graphiql.client
    response = await client.get("/graphql", headers={"accept": BROWSER})
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    only_html = await client.get("/graphql", headers={"accept": "text/html"})
    assert only_html.status_code == 406 and only_html.json()["errors"]
    assert (await client.get("/graphiql/static/graphiql-3.8.3/graphiql.min.css")).status_code == 404
