"""The console's Partners & rates, Members and Jobs & health pages in a real browser (Debian's
Chromium) against `coalition serve` with the demo: Olivia, the demo's operator, changes a rate
and sees it in the history, finds a member and reverses a transfer; a member's session cannot
open the console. Every request off 127.0.0.1 is aborted and none is made."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.test_graphiql_browser import Visit, chromium, server, visit  # noqa: F401

SHOTS = Path(__file__).parent.parent / "docs" / "screenshots"


def operator_opens(page: Page, server: str, slug: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{server}/console/{slug}")
    page.get_by_role("button", name="Olivia").click()  # the development provider's page
    page.wait_for_url(f"{server}/console/{slug}")


def test_olivia_changes_a_rate_and_sees_it_in_the_history(server: str, visit: Visit):
    page = visit.page
    operator_opens(page, server, "partners")
    expect(page.locator("#rules-table")).to_contain_text("skyway → brewbar")
    form = page.locator("#rate-form")
    form.locator("select[name=fromPartner]").select_option("skyway")
    form.locator("select[name=toPartner]").select_option("brewbar")
    form.get_by_label("Rate (target points per point)").fill("0.3")
    form.get_by_role("button", name="Preview").click()
    status = page.get_by_role("status")
    expect(status).to_contain_text("Preview: nothing changed yet")
    expect(page.locator("#rate-lines")).to_contain_text("0.3")
    form.get_by_role("button", name="Apply").click()
    expect(status).to_contain_text(re.compile(r"Change \d+ applied"))
    history = page.locator("#history-table")
    newest = history.locator("tbody tr").first
    expect(newest).to_contain_text("skyway → brewbar")
    expect(newest).to_contain_text("0.3")
    expect(newest).to_contain_text("in force")
    expect(newest).to_contain_text("olivia")
    expect(page.locator("#changes-table tbody tr").first).to_contain_text("api")
    # A round trip that gives back more than it took: refused, with the check's answer.
    form.locator("select[name=fromPartner]").select_option("brewbar")
    form.locator("select[name=toPartner]").select_option("skyway")
    form.get_by_label("Rate (target points per point)").fill("50")
    form.get_by_label("Fee %").fill("0")
    form.get_by_role("button", name="Apply").click()
    expect(status).to_contain_text("RATES_ALLOW_ARBITRAGE")
    expect(status).to_have_attribute("data-kind", "error")
    page.screenshot(path=str(SHOTS / "console-partners.png"), full_page=True)
    # Ending the rule just set, after the browser's confirmation.
    page.once("dialog", lambda dialog: dialog.accept())
    newest.get_by_role("button", name="End now").click()
    expect(status).to_contain_text(re.compile(r"Change \d+ applied"))
    expect(history.locator("tbody tr", has_text="0.3").first).to_contain_text("ended")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")
    assert visit.refused == [] and visit.errors == []


def test_olivia_finds_a_member_and_reverses_a_transfer(server: str, visit: Visit):
    page = visit.page
    operator_opens(page, server, "members")
    find = page.locator("#by-enrolment")
    expect(find.locator("select[name=partner]").locator("option[value=skyway]")).to_have_count(1)
    find.locator("select[name=partner]").select_option("skyway")
    find.get_by_label("Partner's customer id").fill("SKY-1001")
    find.get_by_role("button", name="Find").click()
    status = page.get_by_role("status")
    expect(status).to_contain_text("found")
    wallets = page.locator("#wallets")
    expect(wallets).to_contain_text("SkyWay")
    expect(page.locator("#identities")).to_contain_text("SKY-1001")
    earned = page.locator("#history tbody tr", has_text="earn").first
    expect(earned).to_contain_text("Flight AMS-LIS")
    earned.get_by_role("button", name=re.compile("Reverse the earn")).click()
    confirm = page.locator("#reversal")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("Nothing is posted until you confirm")
    expect(page.locator("#history tbody tr", has_text="reversal")).to_have_count(0)
    confirm.get_by_label("Reason").fill("Flight cancelled")
    confirm.get_by_role("button", name="Confirm the reversal").click()
    expect(status).to_contain_text(re.compile(r"Reversed [\d,]+ "))
    expect(status).to_have_attribute("data-kind", "done")
    expect(confirm).to_be_hidden()
    reversal = page.locator("#history tbody tr", has_text="reversal")
    expect(reversal).to_have_count(1)
    expect(reversal).to_contain_text("Flight cancelled")
    expect(wallets.locator("tr", has_text="SkyWay").locator("td").first).to_have_text("0 miles")
    page.screenshot(path=str(SHOTS / "console-members.png"), full_page=True)
    # Once all is reversed, another reversal is refused, and the page says why.
    earned.get_by_role("button", name=re.compile("Reverse the earn")).click()
    confirm.get_by_label("Reason").fill("Twice")
    confirm.get_by_role("button", name="Confirm the reversal").click()
    expect(status).to_contain_text("TRANSFER_ALREADY_REVERSED")
    expect(status).to_have_attribute("data-kind", "error")
    confirm.get_by_role("button", name="Cancel").click()
    expect(status).to_contain_text("nothing posted")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: only tables scroll sideways
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")
    assert visit.refused == [] and visit.errors == []


def _a_failing_endpoint(server: str, token: str) -> str:
    """Register a skyway endpoint nobody listens at, earn once, and wait for the gateway's
    sender (every second in `coalition serve`) to fail at it: its ``failingSince``."""

    def ask(query: str) -> dict[str, Any]:
        answer = httpx.post(
            f"{server}/graphql",
            json={"query": query},
            headers={"authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200 and "errors" not in answer.json(), answer.text
        found: dict[str, Any] = answer.json()["data"]
        return found

    ask(
        'mutation { createWebhookEndpoint(input: {partner: "skyway", url: '
        '"http://127.0.0.1:9/down", eventTypes: ["points.earned"]}) { userErrors { code } } }'
    )
    ask(
        'mutation { earnPoints(input: {partner: "skyway", member: {partnerCustomerId: '
        '"SKY-1001"}, points: 5, idempotencyKey: "health-hook"}) { userErrors { code } } }'
    )
    deadline = time.monotonic() + 30
    while True:
        (endpoint,) = ask('{ webhookEndpoints(partner: "skyway") { failingSince } }')[
            "webhookEndpoints"
        ]
        if endpoint["failingSince"]:
            return str(endpoint["failingSince"])
        assert time.monotonic() < deadline, "the sender did not try the endpoint"
        time.sleep(0.2)


def test_the_health_page_shows_consumers_remote_operations_and_imports(server: str, visit: Visit):
    grant = httpx.post(
        f"{server}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("skyway-app", "skyway-demo-secret"),
    )
    assert grant.status_code == 200, grant.text
    uploaded = httpx.post(
        f"{server}/imports/earns?partner=skyway&name=night.csv",
        content=b"customer_id,idempotency_key,points\nSKY-1001,night-1,25\n",
        headers={
            "content-type": "text/csv",
            "authorization": f"Bearer {grant.json()['access_token']}",
        },
    )
    assert uploaded.status_code == 202, uploaded.text
    failing_since = _a_failing_endpoint(server, grant.json()["access_token"])
    page = visit.page
    operator_opens(page, server, "health")
    expect(page.get_by_role("status")).to_contain_text("Up to date")
    expect(page.locator("#consumers-table")).to_contain_text("challenges.awards")
    expect(page.locator("#health-cards")).to_contain_text("Remote operations pending")
    expect(page.locator("#imports-table")).to_contain_text("night.csv")
    expect(page.locator("#remote-table")).to_contain_text("None.")
    hooks = page.locator("#webhooks-table")
    expect(hooks).to_contain_text("http://127.0.0.1:9/down")
    expect(hooks).to_contain_text("failing")
    expect(hooks).to_contain_text(failing_since[:19].replace("T", " ") + " UTC")
    expect(hooks).to_contain_text("ConnectError")
    expect(page.locator("#health-cards")).to_contain_text("Webhook endpoints failing or disabled")
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_role("status")).to_contain_text("Up to date")
    page.screenshot(path=str(SHOTS / "console-health.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")
    assert visit.refused == [] and visit.errors == []


def test_a_members_session_cannot_open_the_console(server: str, visit: Visit):
    page = visit.page
    page.goto(f"{server}/auth/login/skyway")
    page.get_by_role("button", name=re.compile("Alice")).first.click()
    page.wait_for_url(re.compile(f"^{re.escape(server)}"))
    answer = page.goto(f"{server}/console/members")
    assert answer is not None and answer.status == 403
    expect(page.locator("main")).to_contain_text("for coalition operators")
    assert visit.refused == []
