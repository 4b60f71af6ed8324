"""Jobs & health: event consumers' lag, remote operations pending at partners that keep their
own points, the latest import jobs (query `operations`) and the partners' webhook endpoints
that fail or were disabled (query `webhookEndpoints`), as the database tells them."""

from __future__ import annotations

from gateway.api.console.pages import Page, register

FRAME = """
<p><button type="button" id="refresh">Refresh</button> <span id="checked"></span></p>
<div id="health-cards" class="cards"></div>
<section aria-labelledby="consumers"><h2 id="consumers">Event consumers</h2>
<div class="scroll" id="consumers-table"></div></section>
<section aria-labelledby="remote"><h2 id="remote">Remote operations</h2>
<div class="scroll" id="remote-table"></div></section>
<section aria-labelledby="imports"><h2 id="imports">Import jobs</h2>
<div class="scroll" id="imports-table"></div></section>
<section aria-labelledby="webhooks"><h2 id="webhooks">Webhook endpoints</h2>
<div class="scroll" id="webhooks-table"></div></section>
<p class="note">Sweeps' last runs and per-process figures are kept in each process's memory:
they are on <code>/metrics</code>, not here.</p>
"""

PAGE = register(Page("health", "Jobs & health", "health.js", FRAME))
