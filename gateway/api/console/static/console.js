// What every console page shares: the GraphQL call, number formats, small DOM builders and
// charts drawn as SVG with axes and units. Pages use `Console` (no framework, no build step).
"use strict";
const Console = (() => {
  const main = () => document.getElementById("main");

  const gql = Pages.gql;

  function status(text, kind = "info") {
    const line = main().querySelector(".status");
    if (!line) return;
    line.textContent = text;
    line.dataset.kind = kind;
  }

  const integer = new Intl.NumberFormat("en", {maximumFractionDigits: 0});
  const points = (n, unit = "points") => `${integer.format(n)} ${unit}`;
  function money(amount, currency) {
    const value = Number(amount);
    return new Intl.NumberFormat("en", {style: "currency", currency}).format(value);
  }
  const percent = (ratio) =>
    ratio === null || ratio === undefined ? "—" : `${(Number(ratio) * 100).toFixed(1)} %`;
  const day = (iso) => new Date(iso).toISOString().slice(0, 10);

  const el = Pages.el;

  function table(caption, headings, rows, numeric = []) {
    const head = el("tr", {}, headings.map((h, i) =>
      el("th", {scope: "col", class: numeric.includes(i) ? "num" : null}, h)));
    const body = rows.map((row) => el("tr", {}, row.map((cell, i) =>
      i === 0 ? el("th", {scope: "row"}, cell) : el("td", {class: numeric.includes(i) ? "num" : null}, cell))));
    return el("table", {}, el("caption", {}, caption), el("thead", {}, head), el("tbody", {}, body));
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attributes = {}, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    for (const child of children.flat()) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A chart of one or more series over the same x labels: bars side by side, an x axis of
  // labels, a y axis from 0 with rounded ticks and the unit. series: [{name, values, kind}].
  function chart(title, labels, series, unit) {
    const width = 640, height = 260, left = 64, bottom = 40, top = 16, right = 12;
    const values = series.flatMap((s) => s.values);
    const highest = Math.max(1, ...values.map(Math.abs));
    const step = niceStep(highest / 4);
    const ceiling = Math.ceil(highest / step) * step;
    const y = (v) => top + (height - top - bottom) * (1 - v / ceiling);
    const band = (width - left - right) / Math.max(1, labels.length);
    const bar = Math.max(1, (band * 0.8) / series.length);
    const parts = [];
    for (let tick = 0; tick <= ceiling; tick += step) {
      parts.push(svg("line", {x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "grid"}));
      parts.push(svg("text", {x: left - 6, y: y(tick) + 4, class: "tick", "text-anchor": "end"}, integer.format(tick)));
    }
    parts.push(svg("text", {x: 4, y: top - 4, class: "unit"}, unit));
    const every = Math.ceil(labels.length / 8);
    labels.forEach((label, i) => {
      if (i % every === 0) {
        parts.push(svg("text", {x: left + band * i + band / 2, y: height - bottom + 16, class: "tick", "text-anchor": "middle"}, label));
      }
    });
    series.forEach((s, n) => {
      s.values.forEach((v, i) => {
        const x = left + band * i + band * 0.1 + bar * n;
        const h = Math.max(0, y(0) - y(Math.max(0, v)));
        parts.push(svg("rect", {x, y: y(0) - h, width: bar, height: h, class: `series-${n}`},
          svg("title", {}, `${s.name}, ${labels[i]}: ${integer.format(v)} ${unit}`)));
      });
    });
    parts.push(svg("line", {x1: left, x2: width - right, y1: y(0), y2: y(0), class: "axis"}));
    parts.push(svg("line", {x1: left, x2: left, y1: top, y2: y(0), class: "axis"}));
    const legend = el("ul", {class: "legend"}, series.map((s, n) =>
      el("li", {class: `series-${n}`}, s.name)));
    const figure = el("figure", {class: "chart"},
      svg("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title}, parts),
      el("figcaption", {}, title), legend);
    return figure;
  }

  function niceStep(raw) {
    const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  return {gql, status, points, money, percent, day, el, table, chart, main};
})();

// A table, or its caption and a line saying there is nothing to list.
Console.tableOrNone = (caption, headings, rows, numeric = [], none = "None.") =>
  rows.length
    ? Console.table(caption, headings, rows, numeric)
    : Console.el("div", {class: "none"}, Console.el("p", {class: "caption"}, caption), Console.el("p", {}, none));
