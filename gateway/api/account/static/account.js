// The member's account page: fills the server's frame from /graphql with the session cookie.
// No framework, no build step; every action says what it did, or the gateway's reason why not.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const integer = new Intl.NumberFormat("en", {maximumFractionDigits: 0});
  const state = {me: null, partners: {}, after: null, quote: null};

  const el = Pages.el;
  // A session that ended sends the member to sign in again, back to this page.
  const gql = (query, variables = {}) =>
    Pages.gql(query, variables, () => window.location.assign("/account/sign-in"));

  const unit = (slug) => (state.partners[slug] ? state.partners[slug].currency.name : "points");
  const brand = (slug) => (state.partners[slug] ? state.partners[slug].name : slug);
  const points = (n, slug) => `${integer.format(Number(n))} ${unit(slug)}`;
  const money = (m) =>
    new Intl.NumberFormat("en", {style: "currency", currency: m.currency}).format(Number(m.amount));
  const when = (iso) =>
    new Date(iso).toLocaleString("en-GB", {dateStyle: "medium", timeStyle: "short"});
  const problems = (errors) => errors.map((e) => e.message).join(" ");

  function notice(text, kind = "ok") {
    const box = $("notice");
    box.replaceChildren(...[text].flat().map((line) => el("p", {}, line)));
    box.dataset.kind = kind;
    box.hidden = false;
  }

  function result(id, text, kind) {
    const line = $(id);
    line.textContent = text;
    line.dataset.kind = kind;
  }

  const WALLETS = `wallets { partner { slug } balance available pending held
    value { amount currency } }`;
  const ACCOUNT = `query Account {
    partners { slug name currency { code name } }
    me { id ${WALLETS} totalValue { amount currency }
      identities { id provider linkedAt }
      enrolments { partner { slug } partnerCustomerId } }
  }`;

  async function load() {
    const data = await gql(ACCOUNT);
    if (!data.me) throw new Error("This sign-in is not a member's.");
    for (const partner of data.partners) state.partners[partner.slug] = partner;
    state.me = data.me;
    showWallets(data.me.wallets, data.me.totalValue);
    showIdentities(data.me.identities, data.me.enrolments);
    fillConvert(data.me.wallets);
  }

  function showWallets(wallets, total) {
    $("wallets").replaceChildren(...wallets.map((w) => {
      const slug = w.partner.slug;
      const extra = [];
      if (Number(w.held)) extra.push(`${points(w.held, slug)} held`);
      if (Number(w.pending)) extra.push(`${points(w.pending, slug)} pending`);
      return el("li", {"class": "wallet", "data-partner": slug},
        el("span", {"class": "name"}, brand(slug)),
        el("strong", {"class": "balance"}, points(w.balance, slug)),
        el("span", {"class": "value"}, `worth ${money(w.value)}`),
        extra.length ? el("span", {"class": "extra"}, extra.join(" · ")) : null);
    }));
    $("total").textContent = total ? `All together worth ${money(total)}` : "";
  }

  function showIdentities(identities, enrolments) {
    const ids = Object.fromEntries(enrolments.map((e) => [e.partner.slug, e.partnerCustomerId]));
    const linked = new Set(identities.map((i) => i.provider));
    $("who").textContent = Object.entries(ids).map(([slug, id]) => `${brand(slug)} ${id}`)
      .join(" · ");
    $("identities").replaceChildren(...identities.map((identity) => {
      const name = identity.provider === "coalition" ? "The coalition" : brand(identity.provider);
      const confirm = el("span", {"class": "confirm", hidden: true},
        `Unlink ${name}? You will no longer sign in with it here. `,
        el("button", {type: "button", "class": "danger", on: {click: () => unlink(identity, name)}},
          `Yes, unlink ${name}`),
        el("button", {type: "button", on: {click: () => { confirm.hidden = true; ask.hidden = false; ask.focus(); }}},
          "Keep it"));
      const ask = el("button", {type: "button", on: {click: () => {
        ask.hidden = true;
        confirm.hidden = false;
        confirm.querySelector("button").focus();
      }}}, `Unlink ${name}`);
      return el("li", {"data-provider": identity.provider},
        el("span", {}, `${name}`, el("small", {}, ` linked ${when(identity.linkedAt)}`)),
        ask, confirm);
    }));
    for (const item of $("links").children) item.hidden = linked.has(item.dataset.provider);
  }

  async function unlink(identity, name) {
    try {
      const data = await gql(`mutation Unlink($input: UnlinkIdentityInput!) {
        unlinkIdentity(input: $input) { userErrors { message }
          member { identities { id provider linkedAt } enrolments { partner { slug } partnerCustomerId } } } }`,
        {input: {identityId: identity.id}});
      const answer = data.unlinkIdentity;
      if (answer.userErrors.length) {
        result("unlink-result", `Not unlinked: ${problems(answer.userErrors)}`, "error");
        await load();
        return;
      }
      showIdentities(answer.member.identities, answer.member.enrolments);
      result("unlink-result", `${name} is unlinked: you can no longer sign in with it here.`, "ok");
    } catch (error) {
      result("unlink-result", `Not unlinked: ${error.message}`, "error");
    }
  }

  function fillConvert(wallets) {
    const from = $("convert-from");
    const to = $("convert-to");
    const options = (select, chosen) => {
      select.replaceChildren(...wallets.map((w) => el("option",
        {value: w.partner.slug, selected: w.partner.slug === chosen},
        `${brand(w.partner.slug)} (${points(w.available, w.partner.slug)})`)));
    };
    const richest = [...wallets].sort((a, b) => Number(b.available) - Number(a.available));
    const keepFrom = from.value || (richest[0] && richest[0].partner.slug);
    const keepTo = to.value || (wallets.find((w) => w.partner.slug !== keepFrom) || {partner: {}}).partner.slug;
    options(from, keepFrom);
    options(to, keepTo);
  }

  const QUOTE = `query Quote($input: QuoteConversionInput!) { quoteConversion(input: $input) {
    userErrors { message }
    quote { points fee rate receivedPoints sufficientBalance sourceBalance
      fromPartner { slug } toPartner { slug } valueGiven { amount currency }
      valueReceived { amount currency } } } }`;

  async function askQuote(event) {
    event.preventDefault();
    const box = $("quote");
    box.hidden = true;
    result("convert-result", "", "");
    const input = {
      memberId: state.me.id,
      fromPartner: $("convert-from").value,
      toPartner: $("convert-to").value,
      points: $("convert-points").value.trim(),
    };
    if (input.fromPartner === input.toPartner) {
      result("convert-result", "Pick two different brands to convert between.", "error");
      return;
    }
    if (!/^[1-9][0-9]{0,17}$/.test(input.points)) {
      result("convert-result", "Enter a whole number of points, 1 or more.", "error");
      return;
    }
    try {
      const answer = (await gql(QUOTE, {input})).quoteConversion;
      if (answer.userErrors.length) {
        result("convert-result", `No quote: ${problems(answer.userErrors)}`, "error");
        return;
      }
      showQuote(input, answer.quote);
    } catch (error) {
      result("convert-result", `No quote: ${error.message}`, "error");
    }
  }

  function key() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return `account-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }

  function showQuote(input, quote) {
    const from = quote.fromPartner.slug;
    const to = quote.toPartner.slug;
    // One key per quote: a repeated click or a retry posts the conversion once.
    state.quote = {input: {...input, idempotencyKey: key()}, quote};
    const rows = [
      ["You give", `${points(quote.points, from)} (worth ${money(quote.valueGiven)})`],
      ["Fee", `${points(quote.fee, from)}, included`],
      ["Rate", `${quote.rate} ${unit(to)} per ${unit(from).replace(/s$/, "")}`],
      ["You receive", `${points(quote.receivedPoints, to)} (worth ${money(quote.valueReceived)})`],
    ];
    const box = $("quote");
    const confirm = el("button", {type: "button", on: {click: convert}}, "Confirm conversion");
    box.replaceChildren(...[
      el("h3", {}, `Quote: ${brand(from)} to ${brand(to)}`),
      el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      quote.sufficientBalance ? null : el("p", {"class": "warning"},
        `You have ${points(quote.sourceBalance, from)}: not enough for this conversion.`),
      el("div", {"class": "actions"}, confirm,
        el("button", {type: "button", on: {click: () => { box.hidden = true; state.quote = null; }}},
          "Cancel")),
    ].filter(Boolean));
    box.hidden = false;
    confirm.disabled = !quote.sufficientBalance;
    (quote.sufficientBalance ? confirm : box.querySelector("button:last-child")).focus();
  }

  async function convert(event) {
    const button = event.currentTarget;
    const pending = state.quote;
    if (!pending) return;
    button.disabled = true;
    try {
      const data = await gql(`mutation Convert($input: ConvertPointsInput!) {
        convertPoints(input: $input) { userErrors { message }
          transfer { points receivedPoints fee }
          fromWallet { partner { slug } balance } toWallet { partner { slug } balance } } }`,
        {input: pending.input});
      const answer = data.convertPoints;
      if (answer.userErrors.length) {
        result("convert-result", `Not converted: ${problems(answer.userErrors)}`, "error");
        button.disabled = false;
        return;
      }
      const from = answer.fromWallet.partner.slug;
      const to = answer.toWallet.partner.slug;
      state.quote = null;
      $("quote").hidden = true;
      result("convert-result",
        `Converted ${points(answer.transfer.points, from)} into ` +
        `${points(answer.transfer.receivedPoints, to)}. You now have ` +
        `${points(answer.fromWallet.balance, from)} and ${points(answer.toWallet.balance, to)}.`,
        "ok");
      $("convert-points").value = "";
      await Promise.all([load(), loadHistory(true), rewards()]);
    } catch (error) {
      result("convert-result", `Not converted: ${error.message}`, "error");
      button.disabled = false;
    }
  }

  const KINDS = {
    EARN: "Earned", REDEEM: "Redeemed", CONVERSION: "Converted", REVERSAL: "Reversed",
    MERGE: "Moved over from a merged account", HOLD: "Held at a till", CAPTURE: "Spent at a till",
    RELEASE: "Hold released", EXPIRY: "Expired", GIFT: "Gift", MATURE: "Became spendable",
    CLAWBACK: "Taken back after a return",
  };
  const HISTORY = `query History($after: String) { me { transfers(first: 10, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id kind points receivedPoints fee reason createdAt
      partner { slug } toPartner { slug } } } } } }`;

  function describe(t) {
    const slug = t.partner.slug;
    if (t.kind === "CONVERSION" && t.toPartner) {
      return `${points(t.points, slug)} → ${points(t.receivedPoints, t.toPartner.slug)}`;
    }
    return `${points(t.points, slug)} at ${brand(slug)}`;
  }

  async function loadHistory(fresh = false) {
    if (fresh) state.after = null;
    const data = await gql(HISTORY, {after: state.after});
    const page = data.me.transfers;
    const items = page.edges.map(({node}) => el("li", {"data-kind": node.kind},
      el("span", {"class": "kind"}, KINDS[node.kind] || node.kind),
      el("span", {"class": "what"}, describe(node)),
      el("time", {datetime: node.createdAt}, when(node.createdAt))));
    if (fresh) $("history").replaceChildren(...items);
    else $("history").append(...items);
    if (fresh && !items.length) $("history").append(el("li", {}, "Nothing yet."));
    state.after = page.pageInfo.endCursor;
    $("more").hidden = !page.pageInfo.hasNextPage;
    return page.edges.map((e) => e.node);
  }

  async function rewards() {
    const data = await gql(`query Rewards($id: ID!) { rewards(affordableFor: $id, first: 20) {
      id name kind pricePoints description partner { slug } } }`, {id: state.me.id});
    const list = data.rewards.map((r) => el("li", {},
      el("strong", {}, r.name),
      el("span", {"class": "price"}, `${points(r.pricePoints, r.partner.slug)} at ${brand(r.partner.slug)}`),
      r.description ? el("span", {"class": "extra"}, r.description) : null));
    $("rewards").replaceChildren(...(list.length ? list
      : [el("li", {}, "None yet: earn or convert points to afford a reward.")]));
  }

  function linkedNotice(latest) {
    const params = new URLSearchParams(location.search);
    const linked = params.get("linked");
    window.history.replaceState(null, "", "/account");  // a reload does not say it again
    // Only a sign-in this member holds: a crafted address cannot make up a confirmation.
    if (!linked || !state.me.identities.some((i) => i.provider === linked)) return;
    const lines = [`${brand(linked)} is linked: you can sign in with it and its points are yours.`];
    if (params.get("merged")) {
      // The merge's transfers are the newest: one per wallet that had points.
      const moved = [];
      for (const t of latest) {
        if (t.kind !== "MERGE") break;
        moved.push(points(t.points, t.partner.slug));
      }
      lines.push(moved.length
        ? `${brand(linked)} knew you as another member: that account was merged into yours and ` +
          `its points moved over: ${moved.join(", ")}.`
        : `${brand(linked)} knew you as another member: that account was merged into yours ` +
          "(it had no points to move).");
    }
    notice(lines);
  }

  async function start() {
    $("convert").addEventListener("submit", askQuote);
    $("convert").addEventListener("input", () => { // a quote is for what the form said then
      $("quote").hidden = true;
      state.quote = null;
    });
    $("more").addEventListener("click", () => loadHistory().catch((e) => notice(e.message, "error")));
    try {
      await load();
      const latest = await loadHistory(true);
      linkedNotice(latest);
      await rewards();
    } catch (error) {
      notice(`The page could not load your account: ${error.message}`, "error");
    }
  }

  start();
})();
