"""/console/settlement: the open obligations as a matrix (who owes whom) with net
positions, closing a period after a preview of what it will take, and the closed periods'
statements with their CSV downloads (filled by static/settlement.js)."""

from __future__ import annotations

from gateway.api.console.pages import Page, register

FRAME = (
    '<section aria-labelledby="open-heading"><h2 id="open-heading">Open obligations</h2>'
    '<p id="open-summary"></p><div class="scroll" id="matrix"></div>'
    '<div class="scroll" id="positions"></div></section>'
    '<section aria-labelledby="close-heading"><h2 id="close-heading">Close a period</h2>'
    '<form class="inline" id="close-form">'
    '<label for="period-end">Period end (UTC, excluded)'
    '<input id="period-end" name="end" type="datetime-local" step="1" required></label>'
    '<button type="submit">Preview the close</button></form>'
    '<div id="preview" class="preview" hidden></div></section>'
    '<section aria-labelledby="periods-heading"><h2 id="periods-heading">Closed periods</h2>'
    '<div id="periods"></div></section>'
)

PAGE = register(Page("settlement", "Settlement", "settlement.js", FRAME))
