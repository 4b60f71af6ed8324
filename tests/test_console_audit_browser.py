"""The console's Audit trail page in a real browser (Debian's Chromium) against `coalition
serve` with the demo: Olivia signs in, sees her own sign-in in the trail, filters it by
action and kind of actor; the page fits a phone. Every request off 127.0.0.1 is aborted and
none is made."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.test_console_browser_2 import operator_opens
from tests.test_graphiql_browser import Visit, chromium, server, visit  # noqa: F401

SHOTS = Path(__file__).parent.parent / "docs" / "screenshots"


def test_olivia_reads_and_filters_the_audit_trail(server: str, visit: Visit):
    page = visit.page
    operator_opens(page, server, "audit")
    expect(page.get_by_role("status")).to_contain_text("entr")
    table = page.locator("#audit-table")
    expect(table).to_contain_text("sign_in")
    expect(table).to_contain_text("operator:olivia")
    earned = table.locator("tbody tr", has_text="points.earned").first
    member = earned.locator("td").nth(4).inner_text()  # shown as the member's UUID
    assert len(member) == 36, member
    form = page.locator("#audit-filter")
    form.get_by_label("Action").fill("sign_in")
    form.get_by_label("Kind of actor").select_option("OPERATOR")
    form.get_by_role("button", name="Show").click()
    expect(page.get_by_role("status")).to_contain_text("1 entry.")
    expect(table).to_contain_text("operator:olivia")
    form.get_by_label("Action").fill("")
    form.get_by_label("Kind of actor").select_option("")
    form.get_by_label("Member id").fill(member)
    form.get_by_role("button", name="Show").click()
    expect(page.get_by_role("status")).to_contain_text("2 entries.")  # enrolled, earned
    form.get_by_label("Member id").fill("")
    form.get_by_label("Action").fill("no.such.action")
    form.get_by_role("button", name="Show").click()
    expect(table).to_contain_text("None.")
    form.get_by_label("Action").fill("")
    form.get_by_label("Kind of actor").select_option("")
    form.get_by_role("button", name="Show").click()
    expect(table).to_contain_text("sign_in")
    page.screenshot(path=str(SHOTS / "console-audit.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth")
    assert visit.refused == [] and visit.errors == []
