// A model's continuous training (docs/loop.md): each loop iteration with the data it added,
// the challenger against the champion on the same gold utterances (the paired interval of the
// difference, every seed), each gate check, the verdict and the alias change it made.
import { api, enc } from "../api.js";
import { h, fmtSigned, fmtTime, link, empty } from "../dom.js";
import { svg } from "./models.js";

const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);
// Differences of error rates, in percentage points.
const pts = (v) => (v === null || v === undefined ? "–" : fmtSigned(100 * v));
const base = (path) => path.split("/").slice(-2).join("/");

/** One row per iteration: the difference challenger − champion with its interval, the line
 * at 0 and the gate's bound, so a glance shows which intervals cleared it. */
function effectChart(rows) {
  const shown = rows.filter((r) => r.low !== null && r.high !== null);
  if (!shown.length) return null;
  const bounds = shown.map((r) => r.must_be_below ?? 0);
  const lo = Math.min(0, ...shown.map((r) => r.low), ...bounds), hi = Math.max(0, ...shown.map((r) => r.high), ...bounds);
  const pad = (hi - lo) * 0.08 || 0.01;
  const width = 1300, left = 150, right = 24, row = 30, top = 24;
  const x = (v) => left + ((v - (lo - pad)) / (hi - lo + 2 * pad)) * (width - left - right);
  const interval = (r) => `${pts(r.effect)} points [${pts(r.low)}, ${pts(r.high)}]`;
  const height = top + shown.length * row + 28;
  const marks = shown.map((r, i) => {
    const y = top + i * row + row / 2;
    const cls = r.passed ? "passed" : "failed";
    return svg("g", { class: `iteration-mark ${cls}`, "data-run": r.run },
      svg("text", { x: 0, y: y + 4, class: "lane-label" }, `#${rows.indexOf(r) + 1} ${fmtTime(r.started_at).slice(0, 16)}`),
      svg("line", { x1: x(r.low), x2: x(r.high), y1: y, y2: y, class: "ci" }),
      svg("line", { x1: x(r.low), x2: x(r.low), y1: y - 6, y2: y + 6, class: "ci" }),
      svg("line", { x1: x(r.high), x2: x(r.high), y1: y - 6, y2: y + 6, class: "ci" }),
      svg("circle", { cx: x(r.effect), cy: y, r: 5, class: "estimate" },
        svg("title", `${r.metric}: ${interval(r)} (${pct(r.confidence)} CI); must be below ${pts(r.must_be_below)}`)));
  });
  const bound = [...new Set(bounds)].map((b) => svg("g", { class: "gate-bound" },
    svg("line", { x1: x(b), x2: x(b), y1: top - 6, y2: height - 24 }),
    svg("text", { x: x(b) + 4, y: top - 10 }, b === 0 ? "0 (no change)" : `gate bound ${pts(b)} points`)));
  const zero = bounds.includes(0) ? null : svg("line", { x1: x(0), x2: x(0), y1: top - 6, y2: height - 24, class: "zero" });
  const axis = svg("g", { class: "time-axis" },
    svg("text", { x: left, y: height - 6 }, pts(lo - pad)),
    svg("text", { x: width - right, y: height - 6, "text-anchor": "end" }, pts(hi + pad)),
    svg("text", { x: (left + width - right) / 2, y: height - 6, "text-anchor": "middle" }, "challenger − champion on the gold set, percentage points (lower is better)"));
  return h("div.timeline-wrap", svg("svg", { class: "loop-effects", viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": "challenger minus champion per iteration, with intervals" }, zero, bound, marks, axis));
}

function checkList(checks) {
  return h("ul.gate-checks", checks.map((c) => {
    let text = c.name;
    if (c.name.startsWith("gold/")) text = `${c.rule}: upper end ${pts(c.high)} ${c.passed ? "<" : "≥"} ${pts(c.must_be_below)} points`;
    else if (c.name === "health") text = `health: ${Object.values(c.events || {}).reduce((a, b) => a + b, 0)} probe events (at most ${c.max_events})`;
    else if (c.name === "probe_drift") text = `probe drift: ${pct(c.flagged_fraction)} of gold flagged at α ${c.alpha} (at most ${pct(c.max_flagged)})`;
    return h("li", { dataset: { check: c.name, passed: String(c.passed) } }, h(`span.badge.verdict.verdict-${c.passed ? "improves" : "hurts"}`, c.passed ? "pass" : "fail"), " ", text);
  }));
}

function iterationsTable(rows, name) {
  return h("table.grid.loop-table",
    h("thead", h("tr", h("th.num", "#"), h("th", "when"), h("th", "trigger"), h("th", "data added"), h("th", "champion"), h("th", "challenger"),
      h("th.num", "difference [CI]"), h("th", "gate"), h("th", "promotion"))),
    h("tbody", rows.map((r, i) => h("tr", { dataset: { run: r.run, passed: String(r.passed), effect: r.effect, low: r.low, high: r.high } },
      h("td.num", String(i + 1)),
      h("td.nowrap", link(`/runs/${enc(r.run)}`, fmtTime(r.started_at))),
      h("td", r.trigger),
      h("td", r.data_added.map((d) => h("div", { title: d.path }, h("code", base(d.path)), d.utterances !== null ? h("span.muted", ` ${d.utterances} utt.`) : null))),
      h("td", link(`/models/${enc(name)}/versions/${r.champion}`, `v${r.champion}`), h("div", `${r.metric || ""} ${pct(r.champion_value)}`)),
      h("td", r.challenger ? link(`/models/${enc(name)}/versions/${r.challenger}`, `v${r.challenger}`) : h("span.muted", "not registered"),
        h("div", pct(r.challenger_value)),
        h("div.muted", `${r.trainings.length} seeds: `, r.challenger_seeds.map((v, j) => [j ? ", " : "", link(`/runs/${enc(r.trainings[j] || "")}`, pct(v))]))),
      h("td.num", r.effect === null ? "–" : `${pts(r.effect)} [${pts(r.low)}, ${pts(r.high)}] points`,
        r.confidence ? h("div.muted", `${pct(r.confidence)} paired CI`) : null),
      h("td", h(`span.badge.verdict.verdict-${r.passed ? "improves" : "hurts"}`, r.passed ? "passed" : "rejected"), checkList(r.checks)),
      h("td", r.promotion ? [h("span.badge.alias", `@${r.promotion.alias}`), " → ", link(`/models/${enc(name)}/versions/${r.promotion.to_version}`, `v${r.promotion.to_version}`),
        h("div.muted", fmtTime(r.promotion.at))] : h("span.muted", r.passed ? "not moved" : "none"))))));
}

export async function loopPage({ params }) {
  const name = params.name;
  const { iterations } = await api.get(`models/${enc(name)}/loop`);
  document.title = `${name} continuous training · tympan`;
  const promoted = iterations.filter((r) => r.promotion).length;
  const pipelines = [...new Set(iterations.map((r) => r.pipeline).filter(Boolean))];
  return h("div.loop-page",
    h("div.page-head", h("div.title-block",
      h("div.crumbs", link("/models", "Models"), h("span", "/"), link(`/models/${enc(name)}`, name), h("span", "/"), h("span", "continuous training")),
      h("h1", `${name}: continuous training`),
      h("p.lead", `${iterations.length} iteration${iterations.length === 1 ? "" : "s"}, ${promoted} promotion${promoted === 1 ? "" : "s"}`,
        pipelines.length ? [" · pipeline ", pipelines.map((p, i) => [i ? ", " : "", h("code", base(p))])] : null))),
    iterations.length ? [
      h("section.card", h("header.card-head", h("h2", "Challenger against champion"), h("span.muted", "difference on the same gold utterances, paired over seeds and utterances")),
        h("div.card-body", effectChart(iterations))),
      h("section.card", h("header.card-head", h("h2", "Iterations"), h("span.muted", "oldest first; each is a gate run")),
        h("div.card-body.table-wrap", iterationsTable(iterations, name)))]
      : h("section.card", h("div.card-body", empty(`No loop iteration has judged a challenger of ${name} yet: tympan loop run PIPELINE.`))));
}
