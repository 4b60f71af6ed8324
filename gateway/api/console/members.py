"""Members: find a member by id or by a partner's customer id; their wallets, sign-ins,
history (paged), holds, tier and badges; reverse a transfer after a confirmation step."""

from __future__ import annotations

from gateway.api.console.pages import Page, register

FRAME = """
<section aria-labelledby="find"><h2 id="find">Find a member</h2>
<form class="inline" id="by-id"><label>Member id <input name="id" required></label>
<button type="submit">Find</button></form>
<form class="inline" id="by-enrolment">
<label>Partner <select name="partner" required></select></label>
<label>Partner's customer id <input name="partnerCustomerId" required></label>
<button type="submit">Find</button></form></section>
<section id="member" aria-labelledby="member-title" hidden>
<h2 id="member-title">Member</h2><div id="member-summary" class="cards"></div>
<div class="scroll" id="wallets"></div><div class="scroll" id="identities"></div>
<div class="scroll" id="holds"></div><div class="scroll" id="badges"></div>
<form id="reversal" class="confirm" hidden aria-labelledby="reversal-title">
<h3 id="reversal-title">Reverse a transfer</h3><p id="reversal-what"></p>
<div class="inline"><label>Points (empty: all that is left)
<input name="points" inputmode="numeric"></label>
<label>Reason <input name="reason" required></label></div>
<p><button type="submit">Confirm the reversal</button>
<button type="button" class="secondary" id="reversal-cancel">Cancel</button></p></form>
<div class="scroll" id="history"></div>
<p><button type="button" class="secondary" id="more" hidden>Older transfers</button></p>
</section>
"""

PAGE = register(Page("members", "Members", "members.js", FRAME))
