"""Partners & rates: the configuration in force and its history; changing a rate or a
partner's settings through the run-time management mutations (preview first, or apply)."""

from __future__ import annotations

from gateway.api.console.pages import Page, register

FRAME = """
<section aria-labelledby="in-force"><h2 id="in-force">In force now</h2>
<div class="scroll" id="partners-table"></div><div class="scroll" id="rules-table"></div></section>
<section aria-labelledby="set-rate"><h2 id="set-rate">Set a conversion rate</h2>
<form class="inline" id="rate-form">
<label>From <select name="fromPartner" required></select></label>
<label>To <select name="toPartner" required></select></label>
<label>Rate (target points per point) <input name="rate" inputmode="decimal" required></label>
<label>Fee % <input name="feePercent" inputmode="decimal" placeholder="unchanged"></label>
<label>From (UTC, empty: now) <input name="effectiveFrom" type="datetime-local"></label>
<button type="submit" class="secondary" name="preview" value="1">Preview</button>
<button type="submit" name="apply" value="1">Apply</button>
</form><ul class="lines" id="rate-lines"></ul></section>
<section aria-labelledby="settings"><h2 id="settings">Change a partner's settings</h2>
<form class="inline" id="partner-form">
<label>Partner <select name="partner" required></select></label>
<label>Name <input name="name" placeholder="unchanged"></label>
<label>Point value <input name="pointValue" inputmode="decimal" placeholder="unchanged"></label>
<label>Points per unit spent <input name="pointsPerUnit" inputmode="decimal"
 placeholder="unchanged"></label>
<button type="submit" class="secondary" name="preview" value="1">Preview</button>
<button type="submit" name="apply" value="1">Apply</button>
</form><ul class="lines" id="partner-lines"></ul></section>
<section aria-labelledby="history"><h2 id="history">History</h2>
<div class="scroll" id="history-table"></div><div class="scroll" id="changes-table"></div></section>
"""

PAGE = register(Page("partners", "Partners & rates", "partners.js", FRAME))
