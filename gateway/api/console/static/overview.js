// /console/overview: the coalition's liability and value per partner, redemption and breakage
// rates, and earn and burn over time, from the GraphQL API as the signed-in operator.
"use strict";
(() => {
  const C = Console;
  const $ = (id) => document.getElementById(id);
  const PARTNERS = `{ partners { slug name currency { name } pointValue { amount currency }
    figures { pointsIssued pointsRedeemed pointsOutstanding liability { amount currency }
    conversionFees membersHoldingPoints } } }`;
  // Per partner: its breakage, and its redemption rate over the last five years (redeemed ÷
  // issued and converted in: the analytics API's rule, from its monthly aggregates).
  const since = new Date(Date.now() - 5 * 366 * 86400000).toISOString();
  const until = new Date(Date.now() + 86400000).toISOString();
  const breakageQuery = (slugs) => `{ ${slugs.map((slug, i) =>
    `b${i}: breakage(partner: ${JSON.stringify(slug)}) { points value { amount currency } }
     r${i}: earnBurn(partner: ${JSON.stringify(slug)}, since: "${since}", until: "${until}",
                     granularity: MONTH) { redemptionRate }`).join(" ")} }`;
  const ratio = (part, whole) => (whole > 0 ? part / whole : null);

  function card(label, figure, note) {
    return C.el("div", {class: "card"}, C.el("div", {class: "label"}, label),
      C.el("div", {class: "figure"}, figure), note ? C.el("div", {class: "label"}, note) : null);
  }

  function rows(partners) {
    return partners.map((p) => {
      const value = Number(p.pointValue.amount);
      const f = p.figures;
      return {
        partner: p, unit: p.currency.name, value,
        issuedValue: f.pointsIssued * value, redeemedValue: f.pointsRedeemed * value,
        liability: Number(f.liability.amount), breakage: p.breakage,
      };
    });
  }

  function show(partners) {
    const currency = partners[0].pointValue.currency;
    const data = rows(partners);
    const sum = (key) => data.reduce((total, row) => total + row[key], 0);
    const breakageValue = data.reduce((t, r) => t + Number(r.breakage ? r.breakage.value.amount : 0), 0);
    $("totals").replaceChildren(
      card("Liability", C.money(sum("liability"), currency), "outstanding points at their value"),
      card("Value issued", C.money(sum("issuedValue"), currency), "points earned, at their value"),
      card("Value redeemed", C.money(sum("redeemedValue"), currency), "points spent, at their value"),
      card("Redemption rate", C.percent(ratio(sum("redeemedValue"), sum("issuedValue"))), "redeemed ÷ issued, by value"),
      card("Breakage", C.money(breakageValue, currency), `${C.percent(ratio(breakageValue, sum("issuedValue")))} of the value issued expired`));
    const table = C.table("Figures per partner",
      ["Partner", "Issued", "Redeemed", "Outstanding", "Liability", "Redemption rate", "Breakage", "Breakage value", "Conversion fees"],
      data.map((r) => {
        const f = r.partner.figures;
        return [r.partner.name, C.points(f.pointsIssued, r.unit), C.points(f.pointsRedeemed, r.unit),
          C.points(f.pointsOutstanding, r.unit), C.money(r.liability, currency),
          C.percent(r.partner.redemptionRate),
          r.breakage ? C.points(r.breakage.points, r.unit) : "—",
          r.breakage ? C.money(r.breakage.value.amount, currency) : "—",
          C.points(f.conversionFees, r.unit)];
      }), [1, 2, 3, 4, 5, 6, 7, 8]);
    table.id = "partners-table";
    $("partners").replaceChildren(table);
    const names = data.map((r) => r.partner.name);
    $("partner-charts").replaceChildren(
      C.chart(`Liability per partner (${currency})`, names, [{name: "Liability", values: data.map((r) => r.liability)}], currency),
      C.chart(`Value issued and redeemed per partner (${currency})`, names, [
        {name: "Issued", values: data.map((r) => r.issuedValue)},
        {name: "Redeemed", values: data.map((r) => r.redeemedValue)}], currency));
  }

  async function start() {
    try {
      const partners = (await C.gql(PARTNERS)).partners.filter((p) => p.figures);
      if (!partners.length) { C.status("No partner's figures are visible to this sign-in.", "error"); return; }
      const found = await C.gql(breakageQuery(partners.map((p) => p.slug)));
      partners.forEach((p, i) => {
        p.breakage = found[`b${i}`];
        p.redemptionRate = found[`r${i}`] ? found[`r${i}`].redemptionRate : null;
      });
      show(partners);
      await startActivity(partners);
    } catch (error) { C.status(error.message, "error"); }
  }

  // Earn and burn over time, from the analytics API's daily aggregates: the chosen partner's
  // points per bucket, and the whole coalition's liability at the end of each bucket.
  const EARN_BURN = `query EarnBurn($partner: String!, $since: DateTime!, $until: DateTime!,
      $granularity: AnalyticsGranularity!) {
    chosen: earnBurn(partner: $partner, since: $since, until: $until, granularity: $granularity) {
      buckets { start figures { issued redeemed convertedIn convertedOut } }
      totals { issued redeemed } breakagePoints breakageValue { amount currency } redemptionRate asOf }
    coalition: earnBurn(since: $since, until: $until, granularity: $granularity) {
      buckets { start liability { amount currency } } } }`;
  const PER = {DAY: "day", WEEK: "week", MONTH: "month"};
  let known = [];

  function range(granularity) {
    const now = new Date();
    const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    const dayMs = 86400000;
    const since = granularity === "MONTH"
      ? Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 11, 1)
      : today - (granularity === "WEEK" ? 83 : 29) * dayMs;
    return {since: new Date(since).toISOString(), until: new Date(today + dayMs).toISOString()};
  }

  async function activity(event) {
    if (event) event.preventDefault();
    const partner = known.find((p) => p.slug === $("activity-partner").value);
    const granularity = $("activity-granularity").value;
    C.status(`Reading ${partner.name}'s points per ${PER[granularity]}…`);
    let found;
    try {
      found = await C.gql(EARN_BURN, {partner: partner.slug, granularity, ...range(granularity)});
    } catch (error) { C.status(error.message, "error"); return; }
    const unit = partner.currency.name;
    const label = (b) => (granularity === "MONTH" ? b.start.slice(0, 7) : b.start.slice(5));
    const chosen = found.chosen, buckets = chosen.buckets;
    const series = [["Issued", "issued"], ["Redeemed", "redeemed"], ["Converted in", "convertedIn"],
      ["Converted out", "convertedOut"]].map(([name, key]) => ({name, values: buckets.map((b) => b.figures[key])}));
    const currency = found.coalition.buckets.length ? found.coalition.buckets[0].liability.currency : "";
    $("activity-charts").replaceChildren(
      C.chart(`${partner.name}: ${unit} per ${PER[granularity]}`, buckets.map(label), series, unit),
      C.chart(`The coalition's liability at the end of each ${PER[granularity]} (${currency})`,
        found.coalition.buckets.map(label),
        [{name: "Liability", values: found.coalition.buckets.map((b) => Number(b.liability.amount))}], currency));
    $("activity-summary").textContent =
      `${partner.name} over the range: ${C.points(chosen.totals.issued, unit)} issued, ` +
      `${C.points(chosen.totals.redeemed, unit)} redeemed (redemption rate ${C.percent(chosen.redemptionRate)}), ` +
      `${C.points(chosen.breakagePoints, unit)} expired unspent (${C.money(chosen.breakageValue.amount, chosen.breakageValue.currency)}). ` +
      (chosen.asOf ? `Figures as of ${C.day(chosen.asOf)} ${chosen.asOf.slice(11, 19)} UTC.` : "No activity recorded yet.");
    C.status(`Showing ${partner.name} per ${PER[granularity]}.`, "done");
  }

  function startActivity(partners) {
    known = partners;
    $("activity-partner").replaceChildren(...partners.map((p) => C.el("option", {value: p.slug}, p.name)));
    $("activity-form").addEventListener("submit", activity);
    return activity();
  }

  document.addEventListener("DOMContentLoaded", () => start());
})();
