"""GraphiQL in a real browser (Debian's Chromium driven by Playwright) against `coalition
serve` on loopback, with every request that leaves 127.0.0.1 refused and recorded.

In CI (``CI=true``) a missing browser fails the run; elsewhere these tests are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.conftest import IN_CI
from tests.test_serve import free_port

CHROMIUM = Path(os.environ.get("COALITION_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",  # root in a container has no sandbox
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000


def _missing_browser() -> str | None:
    if not CHROMIUM.is_file():
        return (
            f"no Chromium at {CHROMIUM}: `make .venv/.installed` installs Debian's `chromium` "
            "as root, or `apt-get install chromium` (or set COALITION_CHROMIUM)"
        )
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    reason = _missing_browser()
    if reason:
        if IN_CI:
            pytest.fail(f"CI requires a browser: {reason}", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`coalition serve` with the demo (its development providers) on a free loopback port."""
    directory = tmp_path_factory.mktemp("graphiql-serve")
    port = free_port()
    environ = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'serve.db'}",
        "PORT": str(port),
        "COALITION_ENV": "development",
        "COALITION_GRAPHIQL": "on",
    }
    log = directory / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.api.cli", "serve", "--no-access-log"],
            env=environ,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the gateway did not start:\n{log.read_text()}"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


@dataclass
class Visit:
    """A fresh browser profile whose requests off 127.0.0.1 are aborted and recorded."""

    page: Page
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def visit(chromium: Browser) -> Iterator[Visit]:
    context = chromium.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    visit = Visit(page)

    def guard(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            visit.refused.append(url)
            route.abort()

    context.route("**/*", guard)
    page.on("pageerror", lambda error: visit.errors.append(str(error)))
    page.on(
        "console",
        lambda message: visit.errors.append(message.text) if message.type == "error" else None,
    )
    try:
        yield visit
    finally:
        context.close()


def test_an_anonymous_visitor_sees_the_editor_and_how_to_sign_in(server: str, visit: Visit):
    page = visit.page
    page.goto(f"{server}/graphql")
    expect(page.locator(".graphiql-container")).to_be_visible()
    expect(page.get_by_text("Loading GraphiQL")).to_have_count(0)
    expect(page.locator(".graphiql-query-editor")).to_contain_text("query Partners")
    help_ = page.locator("#sign-in")
    expect(help_).to_contain_text("Sign in to use the API")
    expect(help_.locator('a[href="/auth/login/coalition"]')).to_be_visible()
    expect(help_.locator('a[href="/auth/login/skyway"]')).to_be_visible()
    expect(help_).to_contain_text("/oauth/token")
    assert visit.refused == []
    # Only the schema's introspection, refused without credentials; no script or CSP error.
    assert all("status of 401" in error for error in visit.errors), visit.errors


def test_the_operator_signs_in_and_runs_the_first_query(server: str, visit: Visit):
    page = visit.page
    page.goto(f"{server}/graphql")
    page.locator('#sign-in a[href="/auth/login/coalition"]').click()
    page.get_by_role("button", name="Olivia").click()  # the development provider's page
    page.wait_for_url(f"{server}/graphql")
    visit.errors.clear()  # the visitor's page could not read the schema: 401
    expect(page.locator("#signed-in")).to_contain_text("Signed in as operator")
    expect(page.locator(".graphiql-query-editor")).to_contain_text("query Partners")
    expect(page.locator(".graphiql-doc-explorer")).to_contain_text("Query")  # the docs, open
    page.locator(".graphiql-execute-button").click()
    response = page.locator(".graphiql-response")
    expect(response).to_contain_text('"slug": "brewbar"')
    expect(response).to_contain_text('"name": "BrewBar Coffee"')
    assert visit.refused == []
    assert visit.errors == []


def test_a_partner_app_token_in_the_headers_tab(server: str, visit: Visit):
    grant = httpx.post(
        f"{server}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("skyway-app", "skyway-demo-secret"),
    )
    assert grant.status_code == 200, grant.text
    page = visit.page
    page.goto(f"{server}/graphql")
    headers = page.locator(".graphiql-editor-tool .graphiql-editor").last
    expect(headers).to_be_visible()  # the Headers tab is open for a visitor without a session
    bearer = f'{{"Authorization": "Bearer {grant.json()["access_token"]}"}}'
    # Typing would meet CodeMirror's bracket closing: set the editor's text as a paste does.
    headers.evaluate(
        "(editor, text) => editor.querySelector('.CodeMirror').CodeMirror.setValue(text)", bearer
    )
    page.locator(".graphiql-execute-button").click()
    expect(page.locator(".graphiql-response")).to_contain_text('"slug": "brewbar"')
    assert visit.refused == []
