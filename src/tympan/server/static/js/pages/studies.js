// Studies: the list, and one study's ablation report (forest plot, verdicts, trials).
import { api, apiUrl, enc } from "../api.js";
import { h, fmt, fmtSigned, fmtTime, fmtAgo, fmtDuration, statusBadge, link, empty, kvTable } from "../dom.js";
import { state } from "../state.js";

export function verdictBadge(verdict) {
  const cls = verdict === "improves" ? "improves" : verdict === "hurts" ? "hurts" : "undecided";
  return h(`span.badge.verdict.verdict-${cls}`, verdict);
}

function progress(trials) {
  const total = trials.total || 1;
  const part = (n, cls) => (n ? h(`span.seg.${cls}`, { style: { width: `${(n / total) * 100}%` }, title: `${n} ${cls}` }) : null);
  return h("div.progress-cell", h("div.progress", part(trials.finished, "finished"), part(trials.failed + (trials.timed_out || 0) + (trials.crashed || 0), "failed"),
    part(trials.running, "running")), h("span.muted", `${trials.finished}/${trials.total}`));
}

export async function studiesPage() {
  document.title = "Studies · tympan";
  const { studies } = await api.get("studies", { project: state.project });
  const body = studies.length ? h("div.table-wrap", h("table.grid.studies-table",
    h("thead", h("tr", h("th", "study"), h("th", "project"), h("th", "design"), h("th", "factors"), h("th", "metrics"), h("th", "seeds"), h("th", "trials"), h("th", "updated"))),
    h("tbody", studies.map((s) => h("tr", { dataset: { name: s.name } },
      h("td.name", link(`/studies/${encodeURIComponent(s.name)}${studies.filter((o) => o.name === s.name).length > 1 ? `?project=${encodeURIComponent(s.project)}` : ""}`, s.name),
        s.running ? h("span.badge.status-running", "running") : null, s.description ? h("div.muted.desc", s.description) : null),
      h("td", s.project), h("td", s.design),
      h("td", Object.entries(s.factors).map(([f, v]) => h("div.factor", h("b", f), ": ", v.levels.map((l) => (l === v.baseline ? h("u", { title: "baseline" }, l) : l)).flatMap((x, i) => (i ? [", ", x] : [x]))))),
      h("td", s.metrics.join(", ")), h("td.num", String(s.seeds.length)), h("td", progress(s.trials)),
      h("td.nowrap", { title: fmtTime(s.updated_at) }, fmtAgo(s.updated_at)))))))
    : h("div.empty-state", h("p", "No studies yet. Run one with "), h("code", "tympan study run STUDY.yaml"), h("p", "."));
  return h("div.studies-page", h("div.page-head", h("div.title-block", h("h1", "Studies"), h("span.count-label", `${studies.length}`)),
    h("div.head-actions", link("/findings", "Findings →"))), body);
}

function comparisonsTable(comparisons) {
  return h("table.grid.verdicts-table",
    h("thead", h("tr", h("th", "comparison"), h("th", "metric"), h("th.num", "effect"), h("th.num", "95% CI"), h("th.num", "p (Holm)"),
      h("th.num", { title: "probability that the level is better than the baseline" }, "P(better)"), h("th.num", "n"), h("th", "verdict"), h("th.num", { title: "for undecided comparisons: the seed count that would likely decide them" }, "seeds needed"))),
    h("tbody", comparisons.map((c) => h("tr", { dataset: { verdict: c.verdict, label: c.label } },
      h("td", h("b", c.label), h("span.muted", ` vs ${c.baseline}`), c.kind !== "level" ? h("span.badge.muted", c.kind) : null),
      h("td", c.metric, h("span.muted", c.direction === "lower" ? " ↓" : " ↑")),
      h("td.num", fmtSigned(c.estimate, 3)), h("td.num", `[${fmtSigned(c.low, 3)}, ${fmtSigned(c.high, 3)}]`),
      h("td.num", fmt(c.p_adjusted, 3)), h("td.num", fmt(c.prob_improvement, 3)), h("td.num", { title: (c.dropped || []).map((d) => `seed ${d.seed} (${d.arm}: ${d.why})`).join("\n") }, c.seeds_total && c.n < c.seeds_total ? `${c.n} of ${c.seeds_total}` : String(c.n)),
      h("td", verdictBadge(c.verdict)), h("td.num", c.verdict === "no detectable effect" ? (c.seeds_needed ? String(c.seeds_needed) : "> 64") : "")))));
}

function trialsTable(trials, metrics) {
  const keys = metrics.map((m) => m.key);
  return h("table.grid.trials-table",
    h("thead", h("tr", h("th.num", "#"), h("th", "arm"), h("th.num", "seed"), h("th", "status"), h("th", "run"), keys.map((k) => h("th.num", k)), h("th.num", "time"), h("th", "error"))),
    h("tbody", trials.map((t) => h("tr", { dataset: { status: t.status } },
      h("td.num", String(t.id)), h("td", t.arm), h("td.num", String(t.seed)), h("td", statusBadge(t.status)),
      h("td", t.run_id ? link(`/runs/${t.run_id}`, t.run_name || t.run_id.slice(0, 8)) : h("span.muted", "–")),
      keys.map((k) => h("td.num", fmt(t.values[k]))),
      h("td.num", t.started_at && t.ended_at ? fmtDuration(t.ended_at - t.started_at) : "–"),
      h("td.error-cell", t.error ? h("details", h("summary", t.error.split("\n").filter(Boolean).pop().slice(0, 80)), h("pre.traceback", t.error)) : "")))));
}

export async function studyPage({ params, query }) {
  const name = params.name;
  const study = await api.get(`studies/${enc(name)}`, { project: query.project });
  document.title = `${study.name} · tympan`;
  const counts = study.comparisons.reduce((acc, c) => ({ ...acc, [c.verdict]: (acc[c.verdict] || 0) + 1 }), {});
  const forest = h("img.forest", { src: apiUrl(`studies/${enc(study.id)}/forest.svg`), alt: "forest plot of the comparisons" });
  return h("div.study-page",
    h("div.page-head", h("div.title-block",
      h("div.crumbs", link("/studies", "Studies"), h("span", "/"), h("span", study.project)),
      h("h1", study.name, h("span.badge.muted", study.design)),
      study.description ? h("p.lead", study.description) : null),
    h("div.head-actions",
      h("a.btn", { href: apiUrl(`studies/${enc(study.id)}/report.html`), target: "_blank", rel: "noopener" }, "Standalone report"),
      study.design === "learning_curve" ? h("a.btn#quantify-link", { href: apiUrl(`studies/${enc(study.id)}/quantify.html`), target: "_blank", rel: "noopener" }, "How much data") : null,
      h("a.btn", { href: `/runs?project=&study=${encodeURIComponent(study.id)}`, "data-link": "" }, "Runs"),
      h("a.btn#listen-link", { href: `/studies/${enc(study.name)}/listen${query.project ? `?project=${enc(query.project)}` : ""}`, "data-link": "" }, "Listening test"))),
    (study.warnings || []).length ? h("section.card.notes.warnings", h("header.card-head", h("h2", "⚠ Warnings")), h("div.card-body", h("ul", study.warnings.map((w) => h("li", w))))) : null,
    h("div.verdict-strip", ["improves", "hurts", "no detectable effect"].map((v) => h("div.verdict-count", verdictBadge(v), h("b", String(counts[v] || 0)))),
      h("span.muted", study.summary)),
    h("div.study-grid",
      h("div.study-main",
        h("section.card.forest-card", h("header.card-head", h("h2", "Forest plot"), h("span.muted", "effect vs baseline, 95% CI")), h("div.card-body", forest)),
        h("section.card", h("header.card-head", h("h2", "Verdicts"), h("span.muted", "seed-paired comparisons, Holm-adjusted p-values")),
          h("div.card-body.table-wrap", study.comparisons.length ? comparisonsTable(study.comparisons) : empty("Nothing could be compared yet.")))),
      h("section.card.context-card", h("header.card-head", h("h2", "Context")), h("div.card-body", kvTable(study.context_rows.map(([k, v]) => [k, String(v)]))))),
    study.notes.length ? h("section.card.notes", h("header.card-head", h("h2", "Notes")), h("div.card-body", h("ul", study.notes.map((n) => h("li", n))))) : null,
    h("section.card", h("header.card-head", h("h2", `Trials (${study.trials.length})`)),
      h("div.card-body.table-wrap", trialsTable(study.trials, study.metrics))));
}
