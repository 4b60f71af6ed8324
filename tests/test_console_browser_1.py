"""The console's Overview and Settlement pages in a real browser (Debian's Chromium, as in
tests/test_graphiql_browser.py) against `coalition serve` with the demo: the operator signs
in, sees the overview's charts after some demo activity, opens the settlement matrix,
closes a period after its preview and downloads a statement's CSV. Nothing leaves
127.0.0.1. Screenshots go to docs/screenshots/console-{overview,settlement}.png."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import expect

from tests.test_graphiql_browser import Visit, chromium, server, visit  # noqa: F401

SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"

# Alice converts 300 SkyWay miles into BrewBar stars: SkyWay now owes BrewBar their worth.
ACTIVITY = """async () => {
  const alice = await Console.gql(`{ memberByEnrolment(partner: "skyway",
    partnerCustomerId: "SKY-1001") { id } }`);
  const converted = await Console.gql(`mutation($id: ID!) { convertPoints(input: {memberId: $id,
    fromPartner: "skyway", toPartner: "brewbar", points: 300, idempotencyKey: "console-1"}) {
    transfer { receivedPoints } userErrors { code message } } }`, {id: alice.memberByEnrolment.id});
  const rewards = await Console.gql(`{ rewards(partner: "brewbar") { id pricePoints } }`);
  const cappuccino = rewards.rewards.find((r) => r.pricePoints === 60);
  const redeemed = await Console.gql(`mutation($reward: ID!, $id: ID!) { redeemReward(input: {
    rewardId: $reward, member: {id: $id}, payWith: "brewbar", idempotencyKey: "console-2"}) {
    userErrors { code message } } }`, {reward: cappuccino.id, id: alice.memberByEnrolment.id});
  return {...converted.convertPoints, redeemErrors: redeemed.redeemReward.userErrors};
}"""


def test_the_operator_sees_the_overview_settles_a_period_and_downloads_its_csv(
    server: str, visit: Visit
):
    page = visit.page
    page.goto(f"{server}/console/overview")
    page.get_by_role("button", name="Olivia").click()  # the development provider's page
    page.wait_for_url(f"{server}/console/overview")
    expect(page.locator("#partners-table")).to_contain_text("SkyWay")
    converted = page.evaluate(ACTIVITY)
    assert converted["userErrors"] == [] and converted["transfer"]["receivedPoints"] > 0
    assert converted["redeemErrors"] == []

    page.reload()
    totals = page.locator("#totals")
    expect(totals).to_contain_text("Liability")
    expect(totals).to_contain_text("€")
    expect(totals).to_contain_text("Redemption rate")
    expect(page.locator("#partners-table")).to_contain_text("miles")
    charts = page.locator("#partner-charts figure")
    expect(charts).to_have_count(2)
    expect(charts.first).to_contain_text("Liability per partner (EUR)")
    assert page.locator("#partner-charts rect").count() > 4  # bars, not an empty frame
    # The analytics' daily aggregates take the postings within a second or so.
    summary = page.locator("#activity-summary")
    for _ in range(20):
        if "60 stars redeemed" in (summary.text_content() or ""):
            break
        time.sleep(0.5)
        page.get_by_role("button", name="Show").click()
    expect(summary).to_contain_text("BrewBar Coffee over the range")
    expect(summary).to_contain_text("60 stars redeemed")
    activity = page.locator("#activity-charts figure")
    expect(activity).to_have_count(2)
    expect(activity.first).to_contain_text("BrewBar Coffee: stars per day")
    expect(activity.last).to_contain_text("liability at the end of each day (EUR)")
    assert page.locator("#activity-charts rect").count() > 0
    page.screenshot(path=str(SCREENSHOTS / "console-overview.png"), full_page=True)

    time.sleep(1.1)  # the period's end defaults to the current second: after the conversion
    page.get_by_role("link", name="Settlement", exact=True).click()
    page.wait_for_url(f"{server}/console/settlement")
    matrix = page.locator("#matrix-table")
    expect(matrix).to_contain_text("Owes in total")
    skyway_row = matrix.locator("tbody tr", has=page.locator("th", has_text="skyway"))
    expect(skyway_row).to_contain_text("€")
    expect(page.locator("#positions")).to_contain_text("brewbar")
    expect(page.locator("#periods")).to_contain_text("No period has been closed yet.")

    page.get_by_role("button", name="Preview the close").click()
    preview = page.locator("#preview")
    expect(preview).to_be_visible()
    expect(preview).to_contain_text("takes 1 open obligation, €")
    expect(preview.locator("table")).to_contain_text("skyway")
    expect(page.locator("#confirm-close")).to_be_focused()
    page.screenshot(path=str(SCREENSHOTS / "console-settlement.png"), full_page=True)

    page.keyboard.press("Enter")  # the focused "Close the period" button
    status = page.locator(".status")
    expect(status).to_contain_text("Closed period 1")
    expect(status).to_have_attribute("data-kind", "done")
    expect(preview).to_be_hidden()
    expect(page.locator("#open-summary")).to_contain_text("No open obligation since")
    periods = page.locator("#periods")
    expect(periods).to_contain_text("Period 1")
    with page.expect_download() as download:
        periods.get_by_role("link", name="CSV (skyway)").click()
    path = download.value.path()
    text = Path(path).read_text()
    assert download.value.suggested_filename == "settlement-1-skyway.csv"
    assert text.startswith("period_id,partner,line,") and ",conversion," in text

    page.get_by_role("button", name="Preview the close").click()  # the same end again
    page.locator("#confirm-close").click()
    expect(status).to_contain_text("already been closed")

    page.locator("#period-end").fill("2099-01-01T00:00:00")
    page.get_by_role("button", name="Preview the close").click()
    expect(preview).to_contain_text("takes no open obligation")
    page.get_by_role("button", name="Cancel").click()
    expect(status).to_contain_text("Nothing was closed")
    page.get_by_role("button", name="Preview the close").click()
    page.locator("#confirm-close").click()
    expect(status).to_contain_text("has not ended yet")
    expect(status).to_contain_text("PERIOD_NOT_ENDED")
    expect(status).to_have_attribute("data-kind", "error")
    assert visit.refused == []
    assert visit.errors == []


def test_both_pages_fit_a_phone(server: str, visit: Visit):
    page = visit.page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server}/console/overview")
    page.get_by_role("button", name="Olivia").click()
    page.wait_for_url(f"{server}/console/overview")
    expect(page.locator("#partner-charts figure")).to_have_count(2)
    # The closed periods, or the line saying there are none (another test may have closed one).
    for path, ready in (("overview", "#partners-table"), ("settlement", "#periods > *")):
        page.goto(f"{server}/console/{path}")
        expect(page.locator(ready).first).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"/console/{path} is {width}px wide at a phone's 390px"
    assert visit.refused == []
    assert visit.errors == []
