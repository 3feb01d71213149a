// Findings: what studies taught, pooled across studies (random effects), with each study's
// evidence on one axis, contradictions flagged.
import { api } from "../api.js";
import { h, fmt, fmtSigned, link, empty } from "../dom.js";
import { navigate, setQuery } from "../router.js";
import { verdictBadge } from "./studies.js";
import { ticks } from "../chart.js";

function forestRows(f) {
  const values = [f.low, f.high, f.estimate, 0, ...f.evidence.flatMap((e) => [e.low, e.high])].filter((v) => typeof v === "number" && Number.isFinite(v));
  let lo = Math.min(...values), hi = Math.max(...values);
  const pad = (hi - lo) * 0.08 || 1;
  lo -= pad; hi += pad;
  const pos = (v) => `${(((v - lo) / (hi - lo)) * 100).toFixed(2)}%`;
  const row = (label, e, cls) => h(`div.forest-row.${cls}`, { dataset: { verdict: e.verdict || "" } },
    h("span.forest-label", label),
    h("div.forest-track",
      h("span.zero", { style: { left: pos(0) } }),
      typeof e.low === "number" ? h("span.ci-range", { style: { left: pos(e.low), width: `calc(${pos(e.high)} - ${pos(e.low)})` } }) : null,
      h(cls === "pooled" ? "span.diamond" : "span.ci-mean", { style: { left: pos(e.effect ?? e.estimate) } })),
    h("span.forest-num", `${fmtSigned(e.effect ?? e.estimate, 3)} [${fmtSigned(e.low, 3)}, ${fmtSigned(e.high, 3)}]`),
    e.verdict ? verdictBadge(e.verdict) : h("span"));
  // the shared axis under the rows: tick marks with their values (effect vs the baseline)
  const axis = h("div.forest-row.forest-axis", { "aria-hidden": "true" }, h("span"),
    h("div.forest-ticks", ticks(lo, hi, 5).map((v) => h("span.forest-tick", { style: { left: pos(v) } }, fmt(v, 3)))),
    h("span.muted.forest-axis-label", `effect on ${f.metric}`), h("span"));
  return h("div.forest-mini",
    f.evidence.map((e) => row(h("span", link(`/studies/${encodeURIComponent(e.study)}`, e.study), e.flipped ? h("span.muted", " (flipped)") : null, h("span.muted", ` n=${e.n}`)), e, "study")),
    row(h("b", "pooled"), { ...f, verdict: f.pooled_verdict }, "pooled"),
    axis);
}

export async function findingsPage({ query }) {
  document.title = "Findings · tympan";
  const all = await api.get("findings");
  const filtered = query.component || query.metric || query.contradictions;
  const data = filtered
    ? await api.get("findings", { component: query.component, metric: query.metric, contradictions: query.contradictions ? "true" : undefined })
    : all;
  const components = [...new Set(all.findings.map((f) => f.component))].sort();
  const metrics = [...new Set(all.findings.map((f) => f.metric))].sort();
  const current = { component: query.component || "", metric: query.metric || "", contradictions: query.contradictions || "" };
  const go = () => { setQuery(current); navigate(location.pathname + location.search, { replace: true }); };
  const compSel = h("select#finding-component", { "aria-label": "component", onchange: (e) => { current.component = e.target.value; go(); } },
    h("option", { value: "" }, "All components"), components.map((c) => h("option", { value: c }, c)));
  compSel.value = current.component;
  const metricSel = h("select#finding-metric", { "aria-label": "metric", onchange: (e) => { current.metric = e.target.value; go(); } },
    h("option", { value: "" }, "All metrics"), metrics.map((c) => h("option", { value: c }, c)));
  metricSel.value = current.metric;
  const contra = h("input#finding-contradictions", { type: "checkbox", checked: !!current.contradictions,
    onchange: (e) => { current.contradictions = e.target.checked ? "1" : ""; go(); } });
  const cards = data.findings.map((f) => h("section.card.finding", { dataset: { component: f.component, contradiction: f.contradiction ? "1" : "0" } },
    h("header.card-head", h("h2", f.label), h("span.muted", `${f.metric} (${f.direction} is better)`),
      h("span.spacer"),
      f.contradiction ? h("span.badge.contradiction", "studies disagree") : null, verdictBadge(f.pooled_verdict)),
    h("div.card-body",
      h("p.finding-summary", f.summary),
      forestRows(f),
      h("div.finding-stats",
        h("span", `${f.studies} stud${f.studies === 1 ? "y" : "ies"}: ${f.improves} improve, ${f.hurts} hurt, ${f.undecided} undecided`),
        h("span", `pooled ${fmtSigned(f.estimate, 3)} [${fmtSigned(f.low, 3)}, ${fmtSigned(f.high, 3)}]`),
        f.i_squared !== null && f.i_squared !== undefined ? h("span", { title: "share of variation between studies" }, `I² ${fmt(f.i_squared * 100, 3)}%`) : null,
        f.contexts && f.contexts.recipes ? h("span.muted", `recipes: ${f.contexts.recipes.join(", ")}`) : null))));
  return h("div.findings-page",
    h("div.page-head", h("div.title-block", h("h1", "Findings"), h("span.count-label", `${data.findings.length}`)),
      h("div.head-actions", link("/studies", "Studies →"))),
    h("div.toolbar", compSel, metricSel, h("label.control", contra, "only contradictions")),
    data.findings.length ? h("div.finding-list", cards) : empty(all.findings.length ? "No finding matches." : "No findings yet: run a study; its verdicts become findings."));
}
