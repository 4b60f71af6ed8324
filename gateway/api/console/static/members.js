// Members: look a member up, show what the gateway knows of them, reverse a transfer.
"use strict";
(() => {
  const {gql, status, el, table, money, points, day} = Console;
  const $ = (id) => document.getElementById(id);
  const when = (iso) => (iso ? `${day(iso)} ${new Date(iso).toISOString().slice(11, 16)} UTC` : "—");
  const MEMBER = `id createdAt totalValue { amount currency }
    enrolments { partnerCustomerId enrolledAt partner { slug name } }
    identities { provider issuer subject linkedAt }
    wallets { partner { slug name currency { name } } balance available held pending owed value { amount currency } }
    tier { tier { name } since reviewAt nextTier { name } valueNeeded { amount currency } }
    holds(first: 20) { partner { slug currency { name } } points capturedPoints status reason createdAt expiresAt }
    badges(first: 50) { name awardedAt bonusPoints bonusPartner { slug } }`;
  const TRANSFERS = `transfers(first: 20, after: $after) { pageInfo { hasNextPage endCursor }
    edges { node { id kind points receivedPoints reason createdAt idempotencyKey
      partner { slug currency { name } } toPartner { slug currency { name } }
      reverses { id } reversedBy { id } } } }`;
  let member = null;
  let cursor = null;
  let rows = [];
  let pending = null; // the transfer being reversed, and the key of this confirmation

  async function find(query, variables) {
    status("Looking the member up…");
    const data = await gql(query, variables);
    const found = data.member || data.memberByEnrolment;
    if (!found) {
      $("member").hidden = true;
      status("No member found for that.", "error");
      return;
    }
    member = found;
    show();
    rows = [];
    cursor = null;
    await history();
    status(`Member ${member.id} found.`, "done");
  }

  function show() {
    $("member").hidden = false;
    $("member-title").textContent = `Member ${member.id}`;
    const card = (label, figure) => el("div", {class: "card"}, el("div", {class: "label"}, label), el("div", {class: "figure"}, figure));
    const t = member.tier;
    $("member-summary").replaceChildren(
      card("Worth of all wallets", member.totalValue ? money(member.totalValue.amount, member.totalValue.currency) : "—"),
      card("Tier", t ? t.tier.name : "No tiers"),
      card("Next tier", t && t.nextTier ? `${t.nextTier.name}: ${money(t.valueNeeded.amount, t.valueNeeded.currency)} to go` : "—"),
      card("Member since", day(member.createdAt)));
    $("wallets").replaceChildren(table("Wallets", ["Partner", "Balance", "Available", "Held", "Pending", "Owed", "Worth"],
      member.wallets.map((w) => {
        const u = w.partner.currency.name;
        return [w.partner.name, points(w.balance, u), points(w.available, u), points(w.held, u), points(w.pending, u),
          points(w.owed, u), money(w.value.amount, w.value.currency)];
      }), [1, 2, 3, 4, 5, 6]));
    $("identities").replaceChildren(table("Sign-ins and enrolments", ["Where", "Who", "Since"], [
      ...member.identities.map((i) => [`Sign-in: ${i.provider}`, i.subject, when(i.linkedAt)]),
      ...member.enrolments.map((e) => [`Enrolled at ${e.partner.name}`, e.partnerCustomerId, when(e.enrolledAt)])]));
    $("holds").replaceChildren(Console.tableOrNone("Holds, newest first", ["Partner", "Points", "Status", "Reason", "Made", "Expires"],
      member.holds.map((h) => [h.partner.slug, points(h.points, h.partner.currency.name), h.status.toLowerCase(),
        h.reason || "—", when(h.createdAt), when(h.expiresAt)]), [1]));
    $("badges").replaceChildren(Console.tableOrNone("Badges, newest first", ["Badge", "Awarded", "Bonus"],
      member.badges.map((b) => [b.name, when(b.awardedAt), b.bonusPartner ? `${b.bonusPoints} at ${b.bonusPartner.slug}` : "—"])));
  }

  async function history() {
    const query = `query($id: ID!, $after: String) { member(id: $id) { ${TRANSFERS} } }`;
    const page = (await gql(query, {id: member.id, after: cursor})).member.transfers;
    rows.push(...page.edges.map((edge) => edge.node));
    cursor = page.pageInfo.endCursor;
    $("more").hidden = !page.pageInfo.hasNextPage;
    $("history").replaceChildren(Console.tableOrNone("History, newest first", ["When", "Kind", "Partner", "Points", "Reason", ""],
      rows.map((t) => [when(t.createdAt), t.kind.toLowerCase(),
        t.toPartner ? `${t.partner.slug} → ${t.toPartner.slug}` : t.partner.slug,
        points(t.points, t.partner.currency.name) + (t.receivedPoints ? ` → ${points(t.receivedPoints, t.toPartner.currency.name)}` : ""),
        t.reason || (t.reversedBy ? "reversed" : "—"),
        t.kind === "REVERSAL" ? "" : el("button", {type: "button", class: "secondary",
          "aria-label": `Reverse the ${t.kind.toLowerCase()} of ${when(t.createdAt)}`, on: {click: () => confirmReversal(t)}}, "Reverse…")]),
      [3]));
  }

  function confirmReversal(transfer) {
    pending = {transfer, key: `console-${crypto.randomUUID()}`};
    const form = $("reversal");
    form.reset();
    $("reversal-what").textContent = `The ${transfer.kind.toLowerCase()} of ${points(transfer.points, transfer.partner.currency.name)} ` +
      `at ${transfer.partner.slug} on ${when(transfer.createdAt)}. Nothing is posted until you confirm.`;
    form.hidden = false;
    form.elements.reason.focus();
  }

  $("reversal-cancel").addEventListener("click", () => {
    pending = null;
    $("reversal").hidden = true;
    status("Reversal cancelled: nothing posted.", "info");
  });

  $("reversal").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!pending) return;
    const data = new FormData(event.target);
    const amount = data.get("points").trim();
    const input = {transferId: pending.transfer.id, idempotencyKey: pending.key, reason: data.get("reason").trim(),
      points: amount === "" ? null : amount};
    status("Posting the reversal…");
    try {
      const answer = (await gql(`mutation($input: ReverseTransferInput!) { reverseTransfer(input: $input) {
        reversal { id points } idempotentReplay userErrors { code message } } }`, {input})).reverseTransfer;
      if (answer.userErrors.length) {
        status(answer.userErrors.map((e) => `${e.message} (${e.code})`).join(" "), "error");
        return;
      }
      const unit = pending.transfer.partner.currency.name;
      pending = null;
      $("reversal").hidden = true;
      await find(`query($id: ID!) { member(id: $id) { ${MEMBER} } }`, {id: member.id});
      status(`Reversed ${points(answer.reversal.points, unit)}${answer.idempotentReplay ? " (already posted before)" : ""}.`, "done");
    } catch (error) {
      status(error.message, "error");
    }
  });

  $("more").addEventListener("click", () => history().catch((error) => status(error.message, "error")));
  $("by-id").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = new FormData(event.target).get("id").trim();
    find(`query($id: ID!) { member(id: $id) { ${MEMBER} } }`, {id}).catch((error) => status(error.message, "error"));
  });
  $("by-enrolment").addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    find(`query($partner: String!, $customer: String!) { memberByEnrolment(partner: $partner, partnerCustomerId: $customer) { ${MEMBER} } }`,
      {partner: data.get("partner"), customer: data.get("partnerCustomerId").trim()}).catch((error) => status(error.message, "error"));
  });
  gql("{ partners { slug name } }").then((data) => {
    $("by-enrolment").elements.partner.replaceChildren(...data.partners.map((p) => el("option", {value: p.slug}, `${p.name} (${p.slug})`)));
  }).catch((error) => status(error.message, "error"));
})();
