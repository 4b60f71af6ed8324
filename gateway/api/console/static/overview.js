// /console/overview: the coalition's liability and value per partner, redemption and breakage
// rates, and earn and burn over time, from the GraphQL API as the signed-in operator.
"use strict";
const Overview = (() => {
  const C = Console;
  const $ = (id) => document.getElementById(id);
  const PARTNERS = `{ partners { slug name currency { name } pointValue { amount currency }
    figures { pointsIssued pointsRedeemed pointsOutstanding liability { amount currency }
    conversionFees membersHoldingPoints } } }`;
  const breakageQuery = (slugs) => `{ ${slugs.map((slug, i) =>
    `b${i}: breakage(partner: ${JSON.stringify(slug)}) { points value { amount currency } }`).join(" ")} }`;
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
          C.percent(ratio(f.pointsRedeemed, f.pointsIssued)),
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
      partners.forEach((p, i) => { p.breakage = found[`b${i}`]; });
      show(partners);
      await Overview.activity();
    } catch (error) { C.status(error.message, "error"); }
  }

  // Earn and burn over time: filled once the analytics API gives time series.
  async function activity() { $("activity").hidden = true; }

  document.addEventListener("DOMContentLoaded", () => start());
  return {activity};
})();
