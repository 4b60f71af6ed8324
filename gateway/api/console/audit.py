"""Audit trail: who did what, on what, with which outcome and request id; filtered by
member, actor, kind of actor, action and time (query `auditTrail`), newest first, paged."""

from __future__ import annotations

from gateway.api.console.pages import Page, register

FRAME = """
<section aria-labelledby="filter"><h2 id="filter">Filter</h2>
<form class="inline" id="audit-filter">
<label>Member id <input name="memberId"></label>
<label>Actor <input name="actor" placeholder="partner:skyway"></label>
<label>Kind of actor <select name="actorKind"><option value="">any</option>
<option>MEMBER</option><option>PARTNER_CLIENT</option><option>OPERATOR</option>
<option>OPERATOR_CLIENT</option><option>JOB</option><option>ANONYMOUS</option></select></label>
<label>Action <input name="action" placeholder="transfer.reversed"></label>
<label>Since <input name="since" type="datetime-local"></label>
<label>Until <input name="until" type="datetime-local"></label>
<button type="submit">Show</button></form></section>
<div class="scroll" id="audit-table"></div>
<p><button type="button" class="secondary" id="audit-more" hidden>Older entries</button></p>
<p class="note">Effects (points earned, reversed, merges, closes, configuration changes)
appear once the <code>audit.events</code> consumer has applied their events; times are UTC.</p>
"""

PAGE = register(Page("audit", "Audit trail", "audit.js", FRAME))
