"""/console/overview: liability and value per partner, breakage and redemption rates, and
the earn and burn charts (filled by static/overview.js from the GraphQL API)."""

from __future__ import annotations

from gateway.api.console.pages import Page, register

FRAME = (
    '<section aria-labelledby="totals-heading"><h2 id="totals-heading">The coalition now</h2>'
    '<div class="cards" id="totals"></div></section>'
    '<section aria-labelledby="partners-heading"><h2 id="partners-heading">Per partner</h2>'
    '<div class="scroll" id="partners"></div><div id="partner-charts" class="chart-pair"></div>'
    "</section>"
    '<section aria-labelledby="activity-heading" id="activity">'
    '<h2 id="activity-heading">Earn and burn over time</h2>'
    '<form class="inline" id="activity-form">'
    '<label for="activity-partner">Partner<select id="activity-partner" name="partner">'
    "</select></label>"
    '<label for="activity-granularity">Per<select id="activity-granularity" name="granularity">'
    '<option value="DAY">day, the last 30 days</option>'
    '<option value="WEEK">week, the last 12 weeks</option>'
    '<option value="MONTH">month, the last 12 months</option></select></label>'
    '<button type="submit">Show</button></form>'
    '<p id="activity-summary"></p><div id="activity-charts" class="chart-pair"></div>'
    "</section>"
)

PAGE = register(Page("overview", "Overview", "overview.js", FRAME))
