// The grouped runs view: one row per config group, with n, mean ± half-width of the 95% CI
// (Student t across seeds), an interval plot on a shared axis, and the member runs.
import { h, fmt, link, statusBadge, colour } from "../dom.js";
import { groupCurves } from "../seed-bands.js";

function halfWidth(g) {
  return g.low !== null && g.high !== null && g.low !== undefined ? (g.high - g.low) / 2 : null;
}

function intervalBar(g, lo, hi) {
  if (g.mean === null || g.mean === undefined || !(hi > lo)) return h("div.ci-bar.no-value");
  // the axis may start at 0 for a metric that never goes below it (WER, loss): an interval
  // reaching past the axis is drawn to its end (the numbers beside it stay exact)
  const pos = (v) => `${(((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * 100).toFixed(2)}%`;
  const bar = h("div.ci-bar");
  if (g.low !== null && g.high !== null) {
    bar.append(h("span.ci-range", { style: { left: pos(g.low), width: `calc(${pos(g.high)} - ${pos(g.low)})` } }));
  }
  for (const r of g.runs) {
    if (typeof r.value === "number") bar.append(h("span.ci-point", { style: { left: pos(r.value) }, title: `${r.name}: ${fmt(r.value)}` }));
  }
  bar.append(h("span.ci-mean", { style: { left: pos(g.mean) }, title: `mean ${fmt(g.mean)}` }));
  return bar;
}

/** The group table, and under it the groups' curves with their bands (`metricKeys`: what
 *  the curves may show). */
export function groupsView(data, { selected, onSelect, metricKeys = [] }) {
  const groups = data.groups;
  let lo = Infinity, hi = -Infinity;
  for (const g of groups) {
    for (const v of [g.low, g.high, g.mean, ...g.runs.map((r) => r.value)]) {
      if (typeof v === "number" && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
  }
  const pad = (hi - lo) * 0.06 || Math.abs(hi) * 0.05 || 1;
  const nonNegative = groups.every((g) => g.runs.every((r) => typeof r.value !== "number" || r.value >= 0));
  lo = nonNegative ? Math.max(0, lo - pad) : lo - pad;
  hi += pad;
  const metricLabel = data.metric ? `${data.metric}${data.summary && data.summary !== "last" ? ` (${data.summary})` : ""}` : null;
  const level = Math.round((data.confidence || 0.95) * 100);
  const rows = [];
  groups.forEach((g, gi) => {
    const hw = halfWidth(g);
    const ids = g.runs.map((r) => r.id);
    const allSelected = ids.length > 0 && ids.every((id) => selected.has(id));
    const members = h("tr.group-members", { hidden: true },
      h("td", { colspan: 5 + data.by.length },
        h("div.member-list", g.runs.map((r) => h("span.member", statusBadge(r.status), link(`/runs/${r.id}`, r.name),
          r.seed !== null && r.seed !== undefined ? h("span.muted", `seed ${r.seed}`) : null,
          h("b.num", fmt(r.value)))))));
    const toggle = h("button.btn.ghost.small.expand", { type: "button", "aria-expanded": "false", title: "Show runs",
      onclick: () => { members.hidden = !members.hidden; toggle.setAttribute("aria-expanded", String(!members.hidden)); toggle.textContent = members.hidden ? "▸" : "▾"; } }, "▸");
    const check = h("input.group-check", { type: "checkbox", checked: allSelected, "aria-label": "select the group's runs",
      onchange: (event) => { ids.forEach((id) => (event.target.checked ? selected.add(id) : selected.delete(id))); onSelect(); } });
    rows.push(h("tr.group", { dataset: { group: gi, n: g.n, mean: g.mean ?? "", low: g.low ?? "", high: g.high ?? "" } },
      h("td.check", check, toggle, h("i.swatch", { style: { background: colour(gi) }, title: "the group's colour in the curves" })),
      data.by.map((k) => h("td.group-value", g.values[k] === null || g.values[k] === undefined ? h("span.muted", "(none)") : fmt(g.values[k]))),
      h("td.num.n", `${g.n}`, (g.size ?? g.runs.length) !== g.n ? h("span.muted", ` / ${g.size ?? g.runs.length}`) : null),
      h("td.num.mean-ci", g.mean === null || g.mean === undefined ? "–"
        : [h("b.mean", fmt(g.mean)), hw !== null ? h("span.pm", ` ± ${fmt(hw, 3)}`) : h("span.muted.pm", " (n < 2)")]),
      h("td.num.interval", g.low !== null && g.low !== undefined ? `[${fmt(g.low)}, ${fmt(g.high)}]` : "–"),
      h("td.ci-cell", intervalBar(g, lo, hi))));
    rows.push(members);
  });
  const table = h("section.card.groups-card",
    h("header.card-head",
      h("h2", `${groups.length} group${groups.length === 1 ? "" : "s"} by ${data.by.join(" × ")}`),
      metricLabel ? h("span.muted", `${metricLabel}: mean ± ${level}% CI (Student t across seeds) · ${data.total} runs`) : null),
    h("div.table-wrap.groups-wrap", h("table.grid.groups-table",
      h("thead", h("tr", h("th.check", ""), data.by.map((k) => h("th", k)), h("th.num", "n"),
        h("th.num", metricLabel ? `${metricLabel} mean ± CI` : "mean"), h("th.num", `${level}% CI`),
        h("th.ci-head", h("div.ci-scale", h("span", fmt(lo, 3)), h("span", fmt(hi, 3)))))),
      h("tbody", rows))));
  return h("div.groups-view", table, metricKeys.length ? groupCurves(data, metricKeys, data.metric) : null);
}
