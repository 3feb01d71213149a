// The probe page: per-layer statistics over steps (layer × step heat map, or one small chart
// per layer), health events, anomaly reports with each input's first divergent layer, and
// drift reports.
import { api, enc } from "../api.js";
import { LineChart } from "../chart.js";
import { h, fmt, link, empty, colour, statusBadge } from "../dom.js";
import { Heatmap, rampColour } from "../heatmap.js";
import { setQuery } from "../router.js";
import { eventsTable } from "./run.js";

/** Layers in the model's order where an anomaly report or drift report lists them. */
function modelOrder(probe) {
  const listed = probe.anomaly.length ? probe.anomaly[0].layers : probe.drift.length ? probe.drift[0].layers.map((l) => l.layer) : [];
  const index = new Map(listed.map((l, i) => [l, i]));
  const sorted = probe.layers.map((l) => l.layer);
  return (layer) => (index.has(layer) ? index.get(layer) : listed.length + sorted.indexOf(layer));
}

function statsSection(runId, probe, query, highlight, onLayer) {
  const stats = probe.stats;
  const statSel = h("select#probe-stat", { "aria-label": "statistic" }, stats.map((s) => h("option", { value: s }, s)));
  statSel.value = stats.includes(query.stat) ? query.stat : stats.includes("std") ? "std" : stats[0];
  const viewSel = h("div.chips.view-toggle", { role: "group" });
  const scaleSel = h("select#probe-scale", { "aria-label": "colour scale" }, h("option", { value: "global" }, "one colour scale"), h("option", { value: "row" }, "scale per layer"));
  let view = query.view === "small" ? "small" : "heatmap";
  const body = h("div.probe-stats-body");
  let heatmap = null;
  const views = [["heatmap", "Heat map"], ["small", "Small multiples"]].map(([id, label]) => {
    const b = h("button.chip", { type: "button", dataset: { view: id }, "aria-pressed": String(view === id), onclick: () => { view = id; views.forEach((x) => x.setAttribute("aria-pressed", String(x.dataset.view === view))); load(); } }, label);
    return b;
  });
  viewSel.append(...views);
  const legend = h("div.ramp-legend", h("span", "low"), h("span.ramp", { style: { background: `linear-gradient(90deg, ${[0, 0.25, 0.5, 0.75, 1].map(rampColour).join(",")})` } }), h("span", "high"),
    h("span.legend-item", h("i.event-dot"), "health event"), h("span.legend-item", h("i.nonfinite"), "non-finite"));
  async function load() {
    query.stat = statSel.value;
    query.view = view === "small" ? "small" : "";
    setQuery(query);
    scaleSel.hidden = view !== "heatmap";
    const data = await api.get(`runs/${enc(runId)}/probe/stats`, { stat: statSel.value, points: 400 });
    if (heatmap) { heatmap.destroy(); heatmap = null; }
    body.replaceChildren();
    if (!data.layers.length) { body.append(empty(`No layer logged ${statSel.value}.`)); return; }
    const order = modelOrder(probe);
    data.layers.sort((a, b) => order(a.layer) - order(b.layer));
    if (view === "heatmap") {
      heatmap = new Heatmap(body, { rows: data.layers, events: probe.events, scale: scaleSel.value, highlight: highlight(), onPick: onLayer });
      body.append(legend);
    } else {
      const grid = h("div.small-multiples");
      body.append(grid);
      data.layers.forEach((layer, i) => {
        const cell = h("div.chart-card.small", { dataset: { layer: layer.layer }, class: layer.layer === highlight() ? "chart-card small highlighted" : "chart-card small" },
          h("div.chart-head", h("h4", layer.layer), h("span.chart-info", `${fmt(layer.count)} pts`)));
        grid.append(cell);
        const chart = new LineChart(cell, { height: 120 });
        chart.setSeries([{ name: statSel.value, colour: colour(i % 1), x: layer.x, y: layer.y }]);
      });
    }
    body.dataset.stat = statSel.value;
    body.dataset.layers = data.layers.length;
  }
  statSel.addEventListener("change", load);
  scaleSel.addEventListener("change", () => heatmap && heatmap.setScale(scaleSel.value));
  load();
  return h("section.card.probe-stats", h("header.card-head", h("h2", "Per-layer statistics over steps"),
    h("div.tools", h("label.control", "statistic", statSel), viewSel, scaleSel)), h("div.card-body", body));
}

const SVG = "http://www.w3.org/2000/svg";

// The z profile of one input as a small bar plot: a bar per stage (layers, then the model's
// output scores), its height the calibrated z (floored at 0), the stage where the divergence
// enters in red; the dashed line is z = 3.
function zPlot(stages, z, entry) {
  const w = 8, gap = 2, height = 28, values = stages.map((s) => (z && typeof z[s] === "number" ? z[s] : (z && s in z ? Infinity : 0)));
  const top = Math.max(3, ...values.filter(Number.isFinite));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "z-plot");
  svg.setAttribute("width", String(stages.length * (w + gap)));
  svg.setAttribute("height", String(height));
  const title = document.createElementNS(SVG, "title");
  title.textContent = stages.map((s, i) => `${s}: z ${Number.isFinite(values[i]) ? values[i].toFixed(1) : "inf"}`).join("\n");
  svg.appendChild(title);
  stages.forEach((s, i) => {
    const v = Number.isFinite(values[i]) ? Math.max(0, values[i]) : top;
    const bh = Math.max(1, (v / top) * (height - 2));
    const bar = document.createElementNS(SVG, "rect");
    bar.setAttribute("x", String(i * (w + gap)));
    bar.setAttribute("y", String(height - bh));
    bar.setAttribute("width", String(w));
    bar.setAttribute("height", String(bh));
    bar.setAttribute("fill", s === entry ? "#e03131" : "#868e96");
    bar.dataset.stage = s;
    svg.appendChild(bar);
  });
  const line = document.createElementNS(SVG, "line");
  const y = String(height - (3 / top) * (height - 2));
  line.setAttribute("x1", "0"); line.setAttribute("x2", String(stages.length * (w + gap)));
  line.setAttribute("y1", y); line.setAttribute("y2", y);
  line.setAttribute("stroke", "#adb5bd"); line.setAttribute("stroke-dasharray", "2,2");
  svg.appendChild(line);
  return svg;
}

function anomalyReport(report, onLayer) {
  const layers = report.layers;
  const stages = report.stages || layers;
  const entryOf = (r) => r.entry_layer !== undefined ? r.entry_layer : r.first_divergent_layer;
  const score = (r) => (r.anomaly_score === null || r.anomaly_score === undefined ? Infinity : r.anomaly_score);
  const rows = [...report.inputs].sort((a, b) => (b.flagged - a.flagged) || (a.p_value - b.p_value) || (score(b) - score(a)));
  const firsts = rows.filter((r) => r.flagged && entryOf(r)).map(entryOf);
  const counts = firsts.reduce((m, l) => m.set(l, (m.get(l) || 0) + 1), new Map());
  const top = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
  const floor = report.n_calibration ? ` · smallest p-value 1/${report.n_calibration + 1} = ${fmt(1 / (report.n_calibration + 1), 3)}` : "";
  return h("section.card.anomaly", { dataset: { label: report.label } },
    h("header.card-head", h("h2", `Anomaly report: ${report.label}`),
      h("span.muted", `α = ${fmt(report.alpha)} · ${report.flagged} of ${report.inputs.length} inputs flagged${floor}`),
      top ? h("span.badge.first-layer", { title: "the stage where most flagged inputs' divergence enters (largest rise of the z profile)" }, `divergence most often enters at: ${top[0]} (${top[1]})`) : null),
    h("div.card-body.table-wrap",
      h("table.grid.anomaly-table",
        h("thead", h("tr", h("th", "input"), h("th.num", { title: "combined anomaly score: the largest calibrated z of any layer or output score" }, "score"), h("th.num", "p-value"), h("th", "flagged"), h("th", "enters at"),
          h("th", { title: `calibrated z by stage: ${stages.join(" → ")}` }, "z profile"),
          layers.map((l) => h("th.layer-col", { title: l }, h("span", l))))),
        h("tbody", rows.map((inp) => h("tr", { class: inp.flagged ? "flagged" : "", dataset: { input: inp.id, first: entryOf(inp) || "" } },
          h("td", h("code", inp.id)), h("td.num.anomaly-score", Number.isFinite(score(inp)) ? fmt(score(inp), 3) : "∞"), h("td.num", fmt(inp.p_value, 3)),
          h("td", inp.flagged ? h("span.badge.status-failed", "flagged") : h("span.muted", "–")),
          h("td", entryOf(inp) ? h("button.linklike.first-layer-link", { type: "button", onclick: () => onLayer(entryOf(inp)) }, entryOf(inp)) : h("span.muted", "–")),
          h("td.z-cell", inp.z ? zPlot(stages, inp.z, entryOf(inp)) : h("span.muted", "–")),
          layers.map((l) => {
            const p = inp.p_values ? inp.p_values[l] : undefined;
            const first = l === entryOf(inp);
            const strength = typeof p === "number" ? Math.min(1, -Math.log10(Math.max(p, 1e-6)) / 4) : 0;
            const z = inp.z ? inp.z[l] : undefined;
            return h("td.layer-cell", { class: first ? "layer-cell first-divergent" : "layer-cell",
              title: `${l}: score ${fmt(inp.scores ? inp.scores[l] : undefined)}, z ${fmt(z, 3)}, p ${fmt(p, 3)}${first ? " — the divergence enters here" : ""}`,
              style: { background: `rgba(224, 49, 49, ${(strength * 0.85).toFixed(3)})` } }, fmt(p, 2));
          })))))));
}

function driftReport(report) {
  return h("section.card.drift", h("header.card-head", h("h2", `Drift: ${report.label}`), h("span.muted", `${report.a} vs ${report.b}`)),
    h("div.card-body.table-wrap", h("table.grid.compact", h("thead", h("tr", h("th", "layer"), h("th.num", "MMD"), h("th.num", "p-value"), h("th", ""))),
      h("tbody", report.layers.map((l) => h("tr", { class: l.drifted ? "flagged" : "" }, h("td", h("code", l.layer)), h("td.num", fmt(l.mmd, 4)), h("td.num", fmt(l.p_value, 3)),
        h("td", l.drifted ? h("span.badge.status-failed", "drifted") : h("span.muted", "–"))))))));
}

export async function probePage({ params, query }) {
  const [run, probe] = await Promise.all([api.get(`runs/${enc(params.id)}`), api.get(`runs/${enc(params.id)}/probe`)]);
  document.title = `Probe · ${run.name} · tympan`;
  let highlighted = query.layer || null;
  if (!highlighted) {
    for (const report of probe.anomaly) {
      const first = report.inputs.find((i) => i.flagged && (i.entry_layer || i.first_divergent_layer));
      if (first) { highlighted = first.entry_layer || first.first_divergent_layer; break; }
    }
  }
  const head = h("div.page-head", h("div.title-block",
    h("div.crumbs", link("/runs", "Runs"), h("span", "/"), link(`/runs/${run.id}`, run.name), h("span", "/"), h("span", "Probe")),
    h("h1", `Probe · ${run.name}`, statusBadge(run.status)),
    h("div.facts", h("span.fact", h("span.fact-key", "layers"), String(probe.layers.length)), h("span.fact", h("span.fact-key", "events"), String(probe.events.length)),
      h("span.fact", h("span.fact-key", "anomaly reports"), String(probe.anomaly.length)), h("span.fact", h("span.fact-key", "profile"), probe.profile ? "yes" : "no"),
      h("span.fact.highlight-fact", { hidden: !highlighted }, h("span.fact-key", "highlighted"), h("code", highlighted || "")))));
  if (!probe.layers.length && !probe.events.length && !probe.anomaly.length && !probe.drift.length) {
    return h("div.probe-page", head, h("div.empty-state", h("p", "This run has no probe data. Attach one with tympan.probe.")));
  }
  const statsHolder = h("div");
  const renderStats = () => statsHolder.replaceChildren(statsSection(run.id, probe, query, () => highlighted, (layer) => onLayer(layer)));
  const onLayer = (layer) => {
    highlighted = layer;
    const fact = head.querySelector(".highlight-fact");
    fact.hidden = false;
    fact.querySelector("code").textContent = layer;
    setQuery({ ...query, layer });
    query.layer = layer;
    renderStats();
    statsHolder.scrollIntoView({ behavior: "smooth" });
  };
  if (probe.stats.length) renderStats();
  return h("div.probe-page", head, statsHolder,
    h("section.card", h("header.card-head", h("h2", `Health events (${probe.events.length})`)),
      h("div.card-body.table-wrap", probe.events.length ? eventsTable(probe.events) : empty("No health event was raised."))),
    probe.anomaly.map((r) => anomalyReport(r, onLayer)),
    probe.drift.map(driftReport));
}
