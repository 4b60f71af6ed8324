// Jobs & health: the `operations` and `webhookEndpoints` queries as cards and tables,
// refreshed on demand.
"use strict";
(() => {
  const {gql, status, el, table, percent} = Console;
  const $ = (id) => document.getElementById(id);
  const when = (iso) => (iso ? new Date(iso).toISOString().slice(0, 19).replace("T", " ") + " UTC" : "—");
  const count = new Intl.NumberFormat("en", {maximumFractionDigits: 0});
  const seconds = (s) => (s < 90 ? `${count.format(s)} s` : s < 5400 ? `${count.format(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
  const QUERY = `query ConsoleHealth { operations(first: 20) { checkedAt
    consumers { name lagEvents lagSeconds oldestWaitingAt }
    remoteOperations { status count }
    pendingRemoteOperations { id kind remotePartner remotePoints attempts lastError lastAttemptAt nextAttemptAt createdAt }
    imports { updatedAt job { id partner { slug } source status linesRead posted rejected progress startedAt finishedAt error } } }
    webhookEndpoints { partner url enabled failingSince disabledReason
      deliveries(first: 5) { edges { node { attempts { attemptedAt statusCode error } } } } } }`;

  // Disabled first, then failing (longest first), then the ones that answer.
  const rank = (e) => (!e.enabled ? 0 : e.failingSince ? 1 : 2);
  const state = (e) => (e.enabled ? (e.failingSince ? "failing" : "ok")
    : e.disabledReason ? `disabled by the gateway: ${e.disabledReason}` : "disabled");
  // The latest try among the endpoint's newest deliveries (a newer one may be waiting untried).
  function latestTry(endpoint) {
    const tries = endpoint.deliveries.edges.flatMap(({node}) => node.attempts);
    const last = tries.sort((a, b) => a.attemptedAt.localeCompare(b.attemptedAt)).pop();
    if (!last) return "—";
    return `${when(last.attemptedAt)}: ${last.statusCode ? `HTTP ${last.statusCode}` : last.error || "no answer"}`;
  }

  async function load() {
    status("Reading…");
    const data = await gql(QUERY);
    const o = data.operations;
    const endpoints = [...data.webhookEndpoints].sort((a, b) =>
      rank(a) - rank(b) || String(a.failingSince).localeCompare(String(b.failingSince)));
    $("checked").textContent = `Checked ${when(o.checkedAt)}`;
    const pending = o.remoteOperations.find((r) => r.status === "pending");
    const worst = Math.max(0, ...o.consumers.map((c) => c.lagSeconds));
    const card = (label, figure) => el("div", {class: "card"}, el("div", {class: "label"}, label), el("div", {class: "figure"}, figure));
    $("health-cards").replaceChildren(
      card("Longest consumer wait", seconds(worst)),
      card("Remote operations pending", count.format(pending ? pending.count : 0)),
      card("Imports running or queued", count.format(o.imports.filter((i) => ["RUNNING", "QUEUED"].includes(i.job.status)).length)),
      card("Webhook endpoints failing or disabled", count.format(endpoints.filter((e) => rank(e) < 2).length)));
    $("consumers-table").replaceChildren(table("Consumers", ["Consumer", "Behind (events)", "Oldest waiting for", "Oldest waiting event"],
      o.consumers.map((c) => [c.name, `${count.format(c.lagEvents)} events`, seconds(c.lagSeconds), when(c.oldestWaitingAt)]), [1, 2]));
    $("remote-table").replaceChildren(
      Console.tableOrNone("Remote operations by status", ["Status", "Operations"], o.remoteOperations.map((r) => [r.status, count.format(r.count)]), [1]),
      Console.tableOrNone("Pending, longest waiting first", ["Operation", "Kind", "Partner", "Points", "Attempts", "Last attempt", "Next attempt", "Last error"],
        o.pendingRemoteOperations.map((p) => [p.id, p.kind, p.remotePartner, `${count.format(p.remotePoints)} points`,
          String(p.attempts), when(p.lastAttemptAt), when(p.nextAttemptAt), p.lastError || "—"]), [3, 4]));
    $("imports-table").replaceChildren(Console.tableOrNone("Imports, latest moved first", ["File", "Partner", "Status", "Done", "Lines read", "Posted", "Rejected", "Last moved", "Error"],
      o.imports.map((i) => [i.job.source, i.job.partner.slug, i.job.status.toLowerCase(), percent(i.job.progress),
        count.format(i.job.linesRead), count.format(i.job.posted), count.format(i.job.rejected), when(i.updatedAt), i.job.error || "—"]), [3, 4, 5, 6]));
    $("webhooks-table").replaceChildren(Console.tableOrNone("Endpoints, disabled and failing first", ["URL", "Partner", "State", "Failing since", "Latest try (newest 5 deliveries)"],
      endpoints.map((e) => [e.url, e.partner, state(e), when(e.failingSince), latestTry(e)])));
    status("Up to date.", "done");
  }

  $("refresh").addEventListener("click", () => load().catch((error) => status(error.message, "error")));
  load().catch((error) => status(error.message, "error"));
})();
