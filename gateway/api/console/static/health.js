// Jobs & health: the `operations` query as cards and tables, refreshed on demand.
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
    imports { updatedAt job { id partner { slug } source status linesRead posted rejected progress startedAt finishedAt error } } } }`;

  async function load() {
    status("Reading…");
    const o = (await gql(QUERY)).operations;
    $("checked").textContent = `Checked ${when(o.checkedAt)}`;
    const pending = o.remoteOperations.find((r) => r.status === "pending");
    const worst = Math.max(0, ...o.consumers.map((c) => c.lagSeconds));
    const card = (label, figure) => el("div", {class: "card"}, el("div", {class: "label"}, label), el("div", {class: "figure"}, figure));
    $("health-cards").replaceChildren(
      card("Longest consumer wait", seconds(worst)),
      card("Remote operations pending", count.format(pending ? pending.count : 0)),
      card("Imports running or queued", count.format(o.imports.filter((i) => ["RUNNING", "QUEUED"].includes(i.job.status)).length)));
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
    status("Up to date.", "done");
  }

  $("refresh").addEventListener("click", () => load().catch((error) => status(error.message, "error")));
  load().catch((error) => status(error.message, "error"));
})();
