// /console/settlement: the open obligations as a debtor × creditor matrix with net positions,
// closing a period after a preview of what it takes, and the closed periods' statements.
"use strict";
(() => {
  const C = Console;
  const $ = (id) => document.getElementById(id);
  const OPEN = `query Open($until: DateTime) { openObligations(until: $until) {
    since until currency obligationCount total { amount currency }
    pairs { debtor creditor amount { amount currency } obligationCount firstCreatedAt lastCreatedAt }
    positions { partner payable { amount currency } receivable { amount currency } net { amount currency } } } }`;
  const PERIODS = `{ settlementPeriods(first: 20) { id number opensAt closesAt closedAt closedBy currency
    obligationCount statements { partner obligationCount grossPayable { amount currency }
    grossReceivable { amount currency } fees { amount currency } net { amount currency } csvPath } } }`;
  const CLOSE = `mutation Close($end: DateTime!) { closeSettlementPeriod(input: {periodEnd: $end}) {
    period { number closesAt obligationCount } idempotentReplay userErrors { code message } } }`;
  const cash = (m) => C.money(m.amount, m.currency);
  const count = (n, thing) => `${n === 0 ? "no" : n} ${thing}${n === 1 ? "" : "s"}`;
  const moment = (iso) => iso ? iso.replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, " UTC") : "the beginning";

  function matrix(open) {
    const parties = open.positions.map((p) => p.partner);
    const owed = new Map(open.pairs.map((p) => [`${p.debtor}→${p.creditor}`, p]));
    const rows = parties.map((debtor) => {
      const position = open.positions.find((p) => p.partner === debtor);
      return [debtor, ...parties.map((creditor) => {
        const pair = owed.get(`${debtor}→${creditor}`);
        return pair ? cash(pair.amount) : "—";
      }), cash(position.payable)];
    });
    const totals = ["Owed to them", ...open.positions.map((p) => cash(p.receivable)), cash(open.total)];
    const numeric = parties.map((_, i) => i + 1).concat([parties.length + 1]);
    const table = C.table("Who owes whom (row owes column)", ["Owes ↓ / to →", ...parties, "Owes in total"],
      [...rows, totals], numeric);
    table.id = "matrix-table";
    return table;
  }

  function positions(open) {
    return C.table("Net positions (positive: the partner is owed)",
      ["Partner", "Payable", "Receivable", "Net"],
      open.positions.map((p) => [p.partner, cash(p.payable), cash(p.receivable), cash(p.net)]),
      [1, 2, 3]);
  }

  async function showOpen() {
    const open = (await C.gql(OPEN)).openObligations;
    $("open-summary").textContent = open.obligationCount === 0
      ? `No open obligation since ${moment(open.since)}.`
      : `${count(open.obligationCount, "open obligation")} since ${moment(open.since)}, ${cash(open.total)} in all. ` +
        "The operator's fees are charged when a period closes.";
    $("matrix").replaceChildren(open.obligationCount ? matrix(open) : "");
    $("positions").replaceChildren(open.obligationCount ? positions(open) : "");
  }

  function statements(period) {
    const rows = period.statements.map((s) => [
      s.partner, String(s.obligationCount), cash(s.grossPayable), cash(s.grossReceivable), cash(s.fees),
      cash(s.net), C.el("a", {href: s.csvPath, download: ""}, `CSV (${s.partner})`)]);
    return C.table(
      `Period ${period.number}: ${moment(period.opensAt)} to ${moment(period.closesAt)}, ` +
      `${count(period.obligationCount, "obligation")}, closed by ${period.closedBy}`,
      ["Partner", "Obligations", "Payable", "Receivable", "Fees", "Net", "Statement"], rows, [1, 2, 3, 4, 5]);
  }

  async function showPeriods() {
    const periods = (await C.gql(PERIODS)).settlementPeriods;
    $("periods").replaceChildren(periods.length
      ? C.el("div", {class: "scroll"}, periods.map(statements))
      : C.el("p", {}, "No period has been closed yet."));
  }

  function endValue() {
    const value = $("period-end").value;
    if (!value) return null;
    return `${value.length === 16 ? `${value}:00` : value}Z`;
  }

  async function preview(event) {
    event.preventDefault();
    const end = endValue();
    const box = $("preview");
    if (!end) { C.status("Choose the period's end first.", "error"); return; }
    C.status("Reading what the close would take…");
    let open;
    try {
      open = (await C.gql(OPEN, {until: end})).openObligations;
    } catch (error) { C.status(error.message, "error"); return; }
    const pairs = open.pairs.map((p) => [p.debtor, p.creditor, String(p.obligationCount), cash(p.amount)]);
    box.replaceChildren(
      C.el("h3", {}, "Confirm the close"),
      C.el("p", {}, `Closing the period from ${moment(open.since)} up to ${moment(end)} (excluded) takes ` +
        `${count(open.obligationCount, "open obligation")}, ${cash(open.total)} in all, ` +
        "and charges the operator's fees on the points issued and converted in it. A closed period never changes."),
      pairs.length ? C.el("div", {class: "scroll"}, C.table("Obligations the period will hold",
        ["Debtor", "Creditor", "Obligations", "Amount"], pairs, [2, 3])) : "",
      C.el("div", {class: "actions"},
        C.el("button", {type: "button", id: "confirm-close", on: {click: () => confirm(end)}}, "Close the period"),
        C.el("button", {type: "button", class: "secondary", on: {click: cancel}}, "Cancel")));
    box.hidden = false;
    C.status(`Check what closing up to ${moment(end)} takes, then confirm.`);
    $("confirm-close").focus();
  }

  function cancel() {
    $("preview").hidden = true;
    C.status("Nothing was closed.");
    $("period-end").focus();
  }

  async function confirm(end) {
    C.status("Closing…");
    try {
      const result = (await C.gql(CLOSE, {end})).closeSettlementPeriod;
      if (result.userErrors.length) {
        C.status(result.userErrors.map((e) => `${e.message} [${e.code}]`).join(" "), "error");
        return;
      }
      const p = result.period;
      $("preview").hidden = true;
      C.status(result.idempotentReplay
        ? `Period ${p.number} had already been closed at ${moment(p.closesAt)}: nothing changed.`
        : `Closed period ${p.number} up to ${moment(p.closesAt)}: ${count(p.obligationCount, "obligation")}, fees included.`, "done");
      await Promise.all([showOpen(), showPeriods()]);
    } catch (error) { C.status(error.message, "error"); }
  }

  async function start() {
    $("period-end").value = new Date().toISOString().slice(0, 19);
    $("close-form").addEventListener("submit", preview);
    try {
      await Promise.all([showOpen(), showPeriods()]);
    } catch (error) { C.status(error.message, "error"); }
  }
  start();
})();
