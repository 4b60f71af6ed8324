"""The account page in a real browser (Debian's Chromium driven by Playwright) against `coalition
serve` with the demo on loopback; every request that leaves 127.0.0.1 is refused and recorded.
The fixtures are GraphiQL's (tests/test_graphiql_browser.py). In CI a missing browser fails.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.test_graphiql_browser import Visit, chromium, server, visit  # noqa: F401

SCREENSHOTS = Path(__file__).parent.parent / "docs" / "screenshots"


def sign_in_as_alice(server: str, visit: Visit) -> None:
    page = visit.page
    page.goto(f"{server}/account")
    page.get_by_role("link", name="Sign in with SkyWay").click()
    page.get_by_role("button", name="Alice").click()  # the development provider's page
    page.wait_for_url(f"{server}/account")


def test_alice_links_brewbar_sees_the_merge_and_converts_miles(server: str, visit: Visit):
    page = visit.page
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in_as_alice(server, visit)
    wallets = page.locator("#wallets")
    expect(wallets.locator('[data-partner="skyway"]')).to_contain_text("840 miles")
    expect(page.locator("#who")).to_contain_text("SkyWay Airlines SKY-1001")

    page.get_by_role("link", name="Link BrewBar Coffee").click()
    page.get_by_role("button", name="Alice").click()  # a fresh sign-in at BrewBar
    page.wait_for_url(f"{server}/account")  # the confirmation's parameters are dropped
    notice = page.locator("#notice")
    expect(notice).to_contain_text("BrewBar Coffee is linked")
    expect(notice).to_contain_text("merged into yours")
    expect(notice).to_contain_text("stars")
    stars = wallets.locator('[data-partner="brewbar"] .balance')
    expect(stars).not_to_have_text("0 stars")
    before = int(stars.inner_text().split()[0].replace(",", ""))
    expect(notice).to_contain_text(f"{before:,} stars")
    expect(page.get_by_role("link", name="Link BrewBar Coffee")).to_be_hidden()
    expect(page.locator("#identities")).to_contain_text("BrewBar Coffee")
    expect(page.locator("#history")).to_contain_text("Moved over from a merged account")

    page.get_by_label("From", exact=True).select_option("skyway")
    page.get_by_label("To", exact=True).select_option("brewbar")
    page.get_by_label("Points", exact=True).fill("300")
    page.get_by_role("button", name="Get a quote").click()
    quote = page.locator("#quote")
    expect(quote).to_contain_text("300 miles")
    expect(quote).to_contain_text("6 miles, included")  # 2 %, rounded up
    expect(quote).to_contain_text("0.25 stars per mile")
    expect(quote).to_contain_text("73 stars")  # (300 - 6) * 0.25, rounded down
    expect(wallets.locator('[data-partner="skyway"]')).to_contain_text("840 miles")  # a quote
    page.get_by_role("button", name="Confirm conversion").click()
    after = before + 73
    expect(page.locator("#convert-result")).to_have_text(
        f"Converted 300 miles into 73 stars. You now have 540 miles and {after:,} stars."
    )
    expect(quote).to_be_hidden()
    expect(wallets.locator('[data-partner="skyway"]')).to_contain_text("540 miles")
    expect(stars).to_have_text(f"{after:,} stars")
    expect(page.locator("#history li").first).to_contain_text("300 miles → 73 stars")
    page.screenshot(path=str(SCREENSHOTS / "account.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    expect(wallets).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "account-phone.png"), full_page=True)
    assert visit.refused == []
    assert visit.errors == []


def test_unlinking_asks_first_and_the_last_sign_in_stays(server: str, visit: Visit):
    page = visit.page
    sign_in_as_alice(server, visit)  # BrewBar is linked (the test above)
    page.goto(f"{server}/account?linked=freshmart&merged=1")  # not a link Alice made
    expect(page.locator("#history li").first).to_be_visible()
    expect(page).to_have_url(f"{server}/account")
    expect(page.locator("#notice")).to_be_hidden()
    identities = page.locator("#identities")
    page.get_by_role("button", name="Unlink BrewBar Coffee").click()
    expect(identities).to_contain_text("You will no longer sign in with it here")
    page.get_by_role("button", name="Keep it").click()
    expect(page.get_by_role("button", name="Yes, unlink BrewBar Coffee")).to_be_hidden()
    page.get_by_role("button", name="Unlink BrewBar Coffee").click()
    page.get_by_role("button", name="Yes, unlink BrewBar Coffee").click()
    result = page.locator("#unlink-result")
    expect(result).to_have_text(
        "BrewBar Coffee is unlinked: you can no longer sign in with it here."
    )
    expect(page.get_by_role("link", name="Link BrewBar Coffee")).to_be_visible()
    page.get_by_role("button", name="Unlink SkyWay Airlines").click()
    page.get_by_role("button", name="Yes, unlink SkyWay Airlines").click()
    expect(result).to_contain_text("Not unlinked:")
    page.get_by_label("Points", exact=True).fill("200")
    page.get_by_role("button", name="Get a quote").click()
    expect(page.locator("#quote")).to_contain_text("You receive")
    page.get_by_label("Points", exact=True).fill("50")  # SkyWay converts 100 miles or more
    expect(page.locator("#quote")).to_be_hidden()  # the quote was for 200
    page.get_by_role("button", name="Get a quote").click()
    expect(page.locator("#convert-result")).to_contain_text("No quote:")
    expect(page.locator("#quote")).to_be_hidden()
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{server}/account")
    expect(page).to_have_url(f"{server}/account/sign-in")
    assert visit.refused == []
    assert visit.errors == []


def test_a_session_that_ended_leads_back_to_the_sign_in(server: str, visit: Visit):
    page = visit.page
    sign_in_as_alice(server, visit)
    # The rewards are the page's last request: one still on its way when the cookie goes
    # would send the page to the sign-in before the form is used.
    expect(page.locator("#rewards li").first).to_be_visible()
    page.context.clear_cookies()  # as when the session expires
    page.get_by_label("Points", exact=True).fill("200")
    page.get_by_role("button", name="Get a quote").click()
    page.wait_for_url(f"{server}/account/sign-in")
    expect(page.get_by_role("link", name="Sign in with SkyWay")).to_be_visible()
    assert visit.refused == []
    assert all("status of 401" in error for error in visit.errors), visit.errors
