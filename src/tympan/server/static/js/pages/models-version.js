// One model version: its card (what it is, data, metrics with intervals, findings, probe,
// export and latency) and its lineage as a small graph: data -> run -> version -> aliases.
import { api, apiUrl, enc } from "../api.js";
import { h, fmt, fmtSigned, fmtTime, fmtBytes, link, empty, kvTable } from "../dom.js";
import { navigate } from "../router.js";
import { verdictBadge } from "./studies.js";
import { svg, count, aliasBadges, eventsTable } from "./models.js";

function section(title, note, ...body) {
  return h("section.card", h("header.card-head", h("h2", title), note ? h("span.muted", note) : null), h("div.card-body", ...body));
}

/** Columns of boxes joined left to right; each box may link somewhere in the UI. */
function lineageGraph(card, model) {
  const data = card.data.map((d) => ({ label: d.path.split("/").slice(-2).join("/"), sub: `sha256 ${d.sha256.slice(0, 10)}`, title: d.path }));
  const run = card.lineage.run || {};
  const study = card.lineage.study;
  const columns = [
    [...(data.length ? data : [{ label: "no manifest recorded", sub: "" }]), ...(study ? [{ label: `study ${study.name}`, sub: study.trial ? `${study.trial.arm}, seed ${study.trial.seed}` : "", href: `/studies/${enc(study.name)}` }] : [])],
    [{ label: `run ${run.name || run.id}`, sub: run.id, href: `/runs/${enc(run.id)}` },
      ...(card.lineage.parent ? [{ label: `parent ${card.lineage.parent.replace("models:/", "")}`, sub: "fine-tuned from", href: `/models/${enc(model)}/versions/${card.lineage.parent.split("/").pop()}` }] : [])],
    [{ label: `${model} v${card.version}`, sub: `${count(card.what.parameters)} parameters`, current: true }],
    card.aliases.length ? card.aliases.map((a) => ({ label: `@${a}`, sub: "alias", href: `/models/${enc(model)}` })) : [{ label: "no alias", sub: "" }],
  ];
  const boxW = 190, boxH = 42, gapX = 60, gapY = 14;
  const height = Math.max(...columns.map((c) => c.length)) * (boxH + gapY) + gapY;
  const width = columns.length * boxW + (columns.length - 1) * gapX + 2;
  const place = columns.map((col, i) => col.map((node, j) => ({ ...node, x: 1 + i * (boxW + gapX), y: gapY + j * (boxH + gapY) + (height - col.length * (boxH + gapY) - gapY) / 2 })));
  const curve = (a, b) => svg("path", { class: "edge", d: `M${a.x + boxW},${a.y + boxH / 2} C${a.x + boxW + gapX / 2},${a.y + boxH / 2} ${b.x - gapX / 2},${b.y + boxH / 2} ${b.x},${b.y + boxH / 2}` });
  const [sources, makers, [current], aliases] = place;
  const edges = [...sources.map((a) => curve(a, makers[0])), ...makers.map((a) => curve(a, current)),
    ...aliases.map((b) => curve(current, b))];
  const nodes = place.flat().map((n) => {
    const box = svg("g", { class: `node${n.current ? " current" : ""}${n.href ? " linked" : ""}`, "data-label": n.label },
      svg("rect", { x: n.x, y: n.y, width: boxW, height: boxH, rx: 6 }),
      svg("text", { x: n.x + 10, y: n.y + 17, class: "node-label" }, n.label.length > 26 ? `${n.label.slice(0, 25)}…` : n.label),
      svg("text", { x: n.x + 10, y: n.y + 33, class: "node-sub" }, n.sub || ""),
      svg("title", n.title || n.label));
    if (n.href) box.addEventListener("click", () => navigate(n.href));
    return box;
  });
  return h("div.lineage-wrap", svg("svg", { class: "lineage-graph", viewBox: `0 0 ${width} ${height}`, width: Math.min(width, 1100), role: "img", "aria-label": "lineage: data, run, version, aliases" }, edges, nodes));
}

function metricsTable(metrics) {
  if (!metrics.length) return empty("The training run logged no evaluation metrics.");
  return h("table.grid.metrics-table",
    h("thead", h("tr", h("th", "split"), h("th", "metric"), h("th.num", "value"), h("th.num", "95% interval"))),
    h("tbody", metrics.map((m) => h("tr", { dataset: { key: `${m.split}/${m.metric}` } },
      h("td", m.split), h("td", m.metric), h("td.num", fmt(m.value)),
      h("td.num", m.low !== null && m.high !== null ? `[${fmt(m.low)}, ${fmt(m.high)}]` : h("span.muted", "not recorded"))))));
}

function dataTables(data) {
  if (!data.length) return empty("No data manifest was recorded with this version.");
  return data.map((d) => h("div.manifest", h("p", h("code", d.path), h("span.muted", ` sha256 ${d.sha256.slice(0, 16)}`)),
    h("table.grid", h("thead", h("tr", h("th", "split"), h("th.num", "utterances"), h("th.num", "hours"), h("th.num", "speakers"), h("th", "languages"))),
      h("tbody", Object.entries(d.splits).map(([name, s]) => h("tr", h("td", name), h("td.num", String(s.utterances)),
        h("td.num", fmt(s.hours, 3)), h("td.num", String(s.speakers)), h("td", s.languages.join(", ") || "–")))))));
}

function findingsTable(findings) {
  if (!findings.length) return empty("No finding in the knowledge base is about a component level this model uses.");
  return h("table.grid.findings-table",
    h("thead", h("tr", h("th", "component"), h("th", "this model"), h("th", "compared with"), h("th", "metric"), h("th.num", "pooled effect [95% CI]"), h("th", "verdict"), h("th", "studies"))),
    h("tbody", findings.map((f) => {
      const [mine, other] = f.role === "uses the level" ? [f.level, f.baseline] : [f.baseline, f.level];
      return h("tr", { dataset: { component: f.component } }, h("td", f.component), h("td", h("b", mine)), h("td", other), h("td", f.metric),
        h("td.num", `${fmtSigned(f.estimate)} [${fmtSigned(f.low)}, ${fmtSigned(f.high)}]`, h("div.muted", `${f.level} vs ${f.baseline}`)),
        h("td", verdictBadge(f.verdict), f.contradiction ? h("span.badge.hurts", "contradicted") : null),
        h("td", f.contexts.studies.map((s, i) => [i ? ", " : "", link(`/studies/${enc(s)}`, s)])));
    })));
}

function probeBlock(probe, runId) {
  if (!probe) return empty("The training run is not in this store.");
  return h("div.probe-summary",
    h("p", `Training health: ${probe.events.length} event${probe.events.length === 1 ? "" : "s"}`, probe.events.length ? ":" : " (none fired).",
      " ", link(`/runs/${enc(runId)}/probe`, "probe page →")),
    probe.events.length ? h("ul", probe.events.slice(0, 10).map((e) => h("li", `step ${e.step}: ${e.rule} on ${e.layer || "the model"} — ${e.message}`))) : null,
    probe.profiles.length ? h("ul", probe.profiles.map((p) => h("li", "Reference profile ", link(`/runs/${enc(p.run)}`, p.run), `: ${count(p.layers)} layers, ${p.detector}, fitted on ${p.data}`)))
      : h("p.muted", "No reference profile yet (tympan probe fit on this model)."),
    probe.anomaly.length ? h("ul", probe.anomaly.map((a) => h("li", `Anomaly ${a.label}: ${a.flagged} of ${a.inputs} flagged at α ${a.alpha} `, link(`/runs/${enc(a.run)}`, "run")))) : null,
    probe.drift.length ? h("ul", probe.drift.map((d) => h("li", `Drift ${d.label}: ${d.drifted} of ${d.layers} layers drifted`))) : null);
}

function reportsBlock(reports) {
  if (!reports.length) return empty("Not measured yet.");
  return h("table.grid.reports-table", h("thead", h("tr", h("th", "kind"), h("th", "name"), h("th", "measured"), h("th", "when"), h("th", "evidence"))),
    h("tbody", reports.map((r) => h("tr", { dataset: { kind: r.kind, name: r.name } }, h("td", r.kind), h("td", r.name),
      h("td", Object.entries(r.data).map(([k, v]) => h("div", h("span.fact-key", k), typeof v === "number" ? fmt(v) : typeof v === "string" ? v : JSON.stringify(v)))),
      h("td.nowrap", fmtTime(r.created_at)), h("td", r.run_id ? link(`/runs/${enc(r.run_id)}`, r.run_id) : "–")))));
}

export async function modelVersionPage({ params }) {
  const { name, version } = params;
  const { card, markdown } = await api.get(`models/${enc(name)}/versions/${enc(version)}/card`);
  document.title = `${name} v${version} · tympan`;
  const what = card.what;
  const front = Object.entries(what.front_end).filter(([k, v]) => v !== null && k !== "output").map(([k, v]) => `${k} ${v}`).join(", ");
  return h("div.model-version-page",
    h("div.page-head", h("div.title-block",
      h("div.crumbs", link("/models", "Models"), h("span", "/"), link(`/models/${enc(name)}`, name)),
      h("h1", `${name} v${card.version}`, aliasBadges(card.aliases, name)),
      h("p.lead", h("code", card.uri), card.description ? ` · ${card.description}` : "")),
    h("div.head-actions",
      h("a.btn", { href: apiUrl(`models/${enc(name)}/versions/${enc(version)}/files/weights`) }, "Weights"),
      link(`/runs/${enc(card.lineage.run.id)}`, h("span.btn", "Training run")))),
    section("Lineage", "data → run → version → aliases", lineageGraph(card, name)),
    h("div.card-grid",
      section("What it is", null, kvTable([
        ["recipe", h("code", what.recipe || "–")], ["front end", front || "–"], ["output", what.front_end.output || "–"],
        ["input", `mono, ${what.audio.sample_rate} Hz`],
        ["tensors", `${what.inputs.map((s) => `${s.dtype}[${s.shape.join(", ")}]`).join(", ")} → ${what.outputs.map((s) => `${s.dtype}[${s.shape.join(", ")}]`).join(", ")}`],
        ["parameters", count(what.parameters)], ["weights", `${what.artifact}, ${fmtBytes(what.size)}`],
        ["git", (card.lineage.git.commit || "not recorded").slice(0, 12) + (card.lineage.git.dirty ? " (dirty)" : "")],
        ["registered", `${fmtTime(card.created_at)} by ${card.created_by}`]])),
      section("Metrics", "95% intervals per evaluation split", metricsTable(card.metrics))),
    section("Data", "manifests it trained on", dataTables(card.data)),
    section("What studies found about its components", "pooled across studies", findingsTable(card.findings)),
    h("div.card-grid", section("Probe", null, probeBlock(card.probe, card.lineage.run.id)),
      section("Export and latency", null, reportsBlock(card.reports))),
    card.alias_history.length ? section("Alias history of this version", null, h("div.table-wrap", eventsTable(card.alias_history, name))) : null,
    section("Model card (Markdown)", "generated, never edited", h("details", h("summary", "Show"), h("pre.markdown-card", markdown))));
}
