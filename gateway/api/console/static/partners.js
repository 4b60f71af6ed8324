// Partners & rates: what is in force, its history, and changes previewed (dryRun) or applied.
"use strict";
(() => {
  const {gql, status, el, table, day} = Console;
  const $ = (id) => document.getElementById(id);
  const RULE = `status setBy setAt fromPartner { slug } toPartner { slug } rate feePercent
    feeFixed minPoints maxPoints effectiveFrom effectiveUntil`;
  const LOAD = `query ConsolePartners {
    partners { slug name currency { code name } pointValue { amount currency }
      earnRate { pointsPerUnit purchaseCurrency rounding } conversionRules(history: true) { ${RULE} } }
    configurationChanges(first: 20) { number changedAt changedBy source lines } }`;
  const PAYLOAD = `change { number } lines userErrors { code field message }`;
  const when = (iso) => (iso ? `${day(iso)} ${new Date(iso).toISOString().slice(11, 16)} UTC` : "—");
  let partners = [];
  // A point is often worth less than a cent: up to 4 decimals.
  const pointValue = (m) => new Intl.NumberFormat("en", {style: "currency", currency: m.currency, maximumFractionDigits: 4}).format(Number(m.amount));
  // A long change (the bootstrap's) shows its first lines, the rest on demand.
  function lines(all) {
    const list = (some) => el("ul", {class: "lines"}, some.map((line) => el("li", {}, line)));
    if (all.length <= 4) return list(all);
    return el("div", {}, list(all.slice(0, 3)), el("details", {}, el("summary", {}, `${all.length - 3} more lines`), list(all.slice(3))));
  }

  async function load() {
    const data = await gql(LOAD);
    partners = data.partners;
    $("partners-table").replaceChildren(table("Partners", ["Partner", "Slug", "Points", "Point value", "Earning"],
      partners.map((p) => [p.name, p.slug, p.currency.name, pointValue(p.pointValue),
        `${p.earnRate.pointsPerUnit} ${p.currency.name} per ${p.earnRate.purchaseCurrency} (${p.earnRate.rounding.toLowerCase()})`])));
    const rules = partners.flatMap((p) => p.conversionRules);
    const row = (r) => [`${r.fromPartner.slug} → ${r.toPartner.slug}`, r.rate, `${r.feePercent} %`,
      r.feeFixed, `${r.minPoints}–${r.maxPoints}`, when(r.effectiveFrom), when(r.effectiveUntil)];
    $("rules-table").replaceChildren(Console.tableOrNone("Conversion rates in force",
      ["Conversion", "Rate", "Fee", "Fixed fee (points)", "Points per conversion", "Since", "Until"],
      rules.filter((r) => r.status === "IN_FORCE").map(row), [1, 3]));
    const history = rules.slice().sort((a, b) => (b.setAt || "").localeCompare(a.setAt || ""));
    $("history-table").replaceChildren(table("Conversion rules, latest set first",
      ["Conversion", "Rate", "Fee", "Fixed fee (points)", "Points per conversion", "From", "Until", "Status", "Set by", "Set at", ""],
      history.map((r) => [...row(r), r.status.replace("_", " ").toLowerCase(), r.setBy || "—", when(r.setAt),
        ["IN_FORCE", "SCHEDULED"].includes(r.status)
          ? el("button", {type: "button", class: "secondary", on: {click: () => endRule(r)}}, "End now") : ""]), [1, 3]));
    $("changes-table").replaceChildren(table("Configuration changes, newest first",
      ["Number", "When", "By", "Source", "What changed"],
      data.configurationChanges.map((c) => [String(c.number), when(c.changedAt), c.changedBy, c.source,
        lines(c.lines)])));
    for (const select of document.querySelectorAll("select")) {
      const kept = select.value;
      select.replaceChildren(...partners.map((p) => el("option", {value: p.slug}, `${p.name} (${p.slug})`)));
      if (kept) select.value = kept;
    }
  }

  // The answer of a configuration mutation: its lines, or its user errors (arbitrage among them).
  function show(answer, list, dryRun) {
    list.replaceChildren(...answer.lines.map((line) => el("li", {}, line)));
    if (answer.userErrors.length) {
      status(answer.userErrors.map((e) => `${e.message} (${e.code})`).join(" "), "error");
      return false;
    }
    if (dryRun) status(answer.lines.length ? "Preview: nothing changed yet. Apply to make it so." : "Preview: this changes nothing.", "info");
    else status(answer.change ? `Change ${answer.change.number} applied.` : "Nothing changed.", "done");
    return true;
  }

  const utc = (local) => (local ? `${local.length === 16 ? `${local}:00` : local}Z` : null);
  const orNull = (value) => (value.trim() === "" ? null : value.trim());

  async function submit(event, build, mutation, list) {
    event.preventDefault();
    const dryRun = event.submitter ? event.submitter.name === "preview" : true;
    const form = event.target;
    const data = new FormData(form);
    status(dryRun ? "Previewing…" : "Applying…");
    try {
      const answer = (await gql(`mutation($input: ${mutation.input}!) { ${mutation.name}(input: $input) { ${PAYLOAD} } }`,
        {input: {...build(data), dryRun}}))[mutation.name];
      if (show(answer, list, dryRun) && !dryRun) await load();
    } catch (error) {
      status(error.message, "error");
    }
  }

  $("rate-form").addEventListener("submit", (event) => submit(event, (d) => ({
    fromPartner: d.get("fromPartner"), toPartner: d.get("toPartner"), rate: d.get("rate").trim(),
    feePercent: orNull(d.get("feePercent")), effectiveFrom: utc(d.get("effectiveFrom")),
  }), {name: "setConversionRule", input: "SetConversionRuleInput"}, $("rate-lines")));

  $("partner-form").addEventListener("submit", (event) => submit(event, (d) => {
    const partner = partners.find((p) => p.slug === d.get("partner"));
    const perUnit = orNull(d.get("pointsPerUnit"));
    return {partner: d.get("partner"), settings: {
      name: orNull(d.get("name")), pointValue: orNull(d.get("pointValue")),
      earnRate: perUnit === null ? null : {pointsPerUnit: perUnit, rounding: partner.earnRate.rounding,
        purchaseCurrency: partner.earnRate.purchaseCurrency},
    }};
  }, {name: "updatePartner", input: "UpdatePartnerInput"}, $("partner-lines")));

  async function endRule(rule) {
    const name = `${rule.fromPartner.slug} → ${rule.toPartner.slug} from ${when(rule.effectiveFrom)}`;
    if (!window.confirm(`End the rule ${name} now?`)) return;
    try {
      const answer = (await gql(`mutation($input: EndConversionRuleInput!) { endConversionRule(input: $input) { ${PAYLOAD} } }`,
        {input: {fromPartner: rule.fromPartner.slug, toPartner: rule.toPartner.slug, effectiveFrom: rule.effectiveFrom}})).endConversionRule;
      if (show(answer, $("rate-lines"), false)) await load();
    } catch (error) {
      status(error.message, "error");
    }
  }

  load().catch((error) => status(error.message, "error"));
})();
