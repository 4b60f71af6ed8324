// Audit trail: the `auditTrail` query with the form's filters, newest first, 50 at a time.
"use strict";
(() => {
  const {gql, status, el, table} = Console;
  const $ = (id) => document.getElementById(id);
  const when = (iso) => new Date(iso).toISOString().slice(0, 19).replace("T", " ");
  const QUERY = `query ConsoleAudit($filter: AuditTrailFilter, $after: String) {
    auditTrail(filter: $filter, first: 50, after: $after) {
      edges { node { occurredAt action outcome detail requestId memberId partner
        actor { kind id clientId } target { kind id } } }
      pageInfo { hasNextPage endCursor } } }`;
  let rows = [], filter = null, after = null;

  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  // A member's global id shown as the UUID inside it; the filter takes either.
  const uuidOf = (id) => { try { return atob(id).replace(/^Member:/, ""); } catch { return id; } };

  function filterOf(form) {
    const found = {};
    for (const [name, raw] of new FormData(form).entries()) {
      const value = raw.trim();
      if (!value) continue;
      if (["since", "until"].includes(name)) found[name] = new Date(`${value}Z`).toISOString();
      else if (name === "memberId" && UUID.test(value)) found[name] = btoa(`Member:${value.toLowerCase()}`);
      else found[name] = value;
    }
    return Object.keys(found).length ? found : null;
  }

  function row(e) {
    const actor = e.actor.clientId ? `${e.actor.id} (${e.actor.clientId})` : e.actor.id;
    const member = e.memberId ? uuidOf(e.memberId) : null;
    const target = !e.target ? "—" : e.target.kind === "member" && e.target.id === member ? "the member" : `${e.target.kind} ${e.target.id}`;
    const outcome = e.detail ? `${e.outcome.toLowerCase()}: ${e.detail}` : e.outcome.toLowerCase();
    return [when(e.occurredAt), e.action, actor, e.actor.kind.toLowerCase(), target,
      member || "—", e.partner || "—", outcome, e.requestId || "—"];
  }

  async function load(more) {
    status("Reading…");
    const page = (await gql(QUERY, {filter, after: more ? after : null})).auditTrail;
    rows = (more ? rows : []).concat(page.edges.map((edge) => row(edge.node)));
    after = page.pageInfo.endCursor;
    $("audit-more").hidden = !page.pageInfo.hasNextPage;
    $("audit-table").replaceChildren(Console.tableOrNone("Entries, newest first",
      ["Time (UTC)", "Action", "Actor", "Kind", "Target", "Member", "Partner", "Outcome", "Request id"], rows));
    status(`${rows.length} ${rows.length === 1 ? "entry" : "entries"}.`, "done");
  }

  const fail = (error) => status(error.message, "error");
  $("audit-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    filter = filterOf(event.target);
    load(false).catch(fail);
  });
  $("audit-more").addEventListener("click", () => load(true).catch(fail));
  load(false).catch(fail);
})();
