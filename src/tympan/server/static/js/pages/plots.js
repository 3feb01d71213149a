// Plots of a selection of runs (the runs page's "Plot"): parallel coordinates over the config
// keys that differ and a metric, and a metric-vs-config scatter. Numeric keys get a linear
// (or, over decades, log) axis with ticks; anything else gets one labelled slot per value.
// Every line and point names its run on hover and opens it on click.
import { api } from "../api.js";
import { h, fmt, link, empty } from "../dom.js";
import { ticks } from "../chart.js";
import { navigate, setQuery } from "../router.js";
import { tabs } from "../tabs.js";
import { preferredMetric } from "./runs.js";

const NS = "http://www.w3.org/2000/svg";
const MAX_RUNS = 1000;
const NONE = "(none)";

/** svg("line", {x1: 0, ...}, ...children): an SVG element. */
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child);
  return el;
}

const text = (x, y, value, attrs = {}) => svg("text", { x, y, ...attrs }, String(value));

/** What a key's values look like on an axis: {kind, at(v) -> 0..1 | null, ticks: [{at, label}]}.
 *  Numbers get a scale (log when every value is positive and they span two decades or more);
 *  anything else (strings, booleans, lists, a mix) one evenly spaced slot per value. */
export function axisFor(label, values) {
  const known = values.filter((v) => v !== undefined && v !== null);
  const numeric = known.length > 0 && known.every((v) => typeof v === "number" && Number.isFinite(v));
  const missing = known.length < values.length;
  if (numeric) {
    let lo = Math.min(...known), hi = Math.max(...known);
    const log = lo > 0 && hi / lo >= 100;
    const f = log ? Math.log10 : (v) => v;
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    const pad = (f(hi) - f(lo)) * 0.05;  // the extreme runs stay off the plot's edges
    const a = f(lo) - pad, b = f(hi) + pad;
    const at = (v) => (typeof v === "number" && Number.isFinite(v) ? (f(v) - a) / (b - a) : null);
    const marks = log
      ? ticks(Math.ceil(a - 1e-9), Math.floor(b + 1e-9), 6).filter(Number.isInteger).map((e) => Math.pow(10, e))
      : ticks(lo, hi, 5);
    return { label, kind: log ? "log" : "linear", missing, at, ticks: marks.map((v) => ({ at: at(v), label: fmt(v, 3) })) };
  }
  const name = (v) => (v === undefined || v === null ? NONE : typeof v === "object" ? JSON.stringify(v) : String(v));
  const categories = [...new Set(known.map(name))].sort((x, y) => x.localeCompare(y, undefined, { numeric: true }));
  if (missing) categories.push(NONE);
  const slot = (i) => (i + 0.5) / categories.length;  // each value in the middle of its share
  return { label, kind: "category", missing: false, categories,
    at: (v) => slot(categories.indexOf(name(v))),
    ticks: categories.map((c, i) => ({ at: slot(i), label: c })) };
}

/** The config keys worth an axis: those with more than one value among the runs (seeds last). */
function varyingConfig(runs) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.config)))];
  const varying = keys.filter((k) => new Set(runs.map((r) => JSON.stringify(r.config[k] ?? null))).size > 1);
  const seedLast = (k) => (/(^|\.)seed$/.test(k) ? 1 : 0);
  return varying.sort((a, b) => seedLast(a) - seedLast(b) || a.localeCompare(b));
}

const metricValue = (run, spec) => {
  const m = spec.match(/^(.*)\.(last|min|max)$/);
  const s = run.metrics[m ? m[1] : spec];
  const v = s ? s[m ? m[2] : "last"] : null;
  return typeof v === "number" && Number.isFinite(v) ? v : null;
};

/** Blue (low) to orange (high): the colour of a run's line by its metric value. */
function ramp(t) {
  if (t === null || !Number.isFinite(t)) return "#adb5bd";
  const a = [37, 99, 235], b = [232, 89, 12];
  return `rgb(${a.map((c, i) => Math.round(c + (b[i] - c) * t)).join(", ")})`;
}

function tooltip() {
  const tip = h("div.plot-tooltip", { hidden: true, role: "tooltip" });
  tip.show = (event, run, rows) => {
    tip.replaceChildren(h("b.tip-run", run.name), h("span.muted", ` ${run.id.slice(0, 8)}`),
      ...rows.map(([k, v]) => h("div.tip-row", h("span.tip-name", k), h("b", v === null || v === undefined ? "–" : fmt(v)))),
      h("div.muted.tip-hint", "click to open the run"));
    tip.hidden = false;
    const box = tip.parentElement.getBoundingClientRect();
    const x = event.clientX - box.left, y = event.clientY - box.top;
    tip.style.left = `${Math.min(x + 14, box.width - tip.offsetWidth - 4)}px`;
    tip.style.top = `${Math.max(0, y - tip.offsetHeight - 10)}px`;
  };
  tip.hide = () => { tip.hidden = true; };
  return tip;
}

function drawAxis(axis, x, top, bottom, { side = "left" } = {}) {
  const y = (at) => bottom - at * (bottom - top);
  const anchor = side === "left" ? "end" : "start";
  const dx = side === "left" ? -7 : 7;
  return svg("g", { class: `plot-axis axis-${axis.kind}`, dataset: { key: axis.label } },
    svg("line", { x1: x, x2: x, y1: top, y2: bottom, class: "axis-line" }),
    axis.ticks.map((t) => svg("g", { class: "tick" },
      svg("line", { x1: x - 3, x2: x + 3, y1: y(t.at), y2: y(t.at), class: "axis-line" }),
      text(x + dx, y(t.at) + 4, t.label, { "text-anchor": anchor, class: "tick-label" }))),
    axis.missing ? text(x + dx, bottom + 22, NONE, { "text-anchor": anchor, class: "tick-label" }) : null);
}

/** Parallel coordinates: one vertical axis per varying config key and the metric last; one
 *  line per run, coloured by the metric. */
function parallelView(runs, state, save, metrics) {
  const configKeys = varyingConfig(runs);
  const metricSel = h("select#parallel-metric", { "aria-label": "metric" }, metrics.map((k) => h("option", { value: k }, k)));
  metricSel.value = metrics.includes(state.metric) ? state.metric : preferredMetric(metrics);
  const holder = h("div.plot-holder");
  const tip = tooltip();
  const frame = h("div.plot-frame", holder, tip);
  const draw = () => {
    const metric = metricSel.value;
    const keys = [...configKeys, metric];
    const axes = keys.map((k, i) => axisFor(k, runs.map((r) => (i < configKeys.length ? r.config[k] : metricValue(r, k)))));
    const width = Math.max(600, (frame.clientWidth || 1228) - 28), height = 440;
    const top = 44, bottom = height - 40, left = 120, right = width - 120;
    const xs = keys.map((_, i) => (keys.length === 1 ? (left + right) / 2 : left + (i * (right - left)) / (keys.length - 1)));
    const yOf = (axis, v) => { const at = axis.at(v); return at === null ? bottom + 18 : bottom - at * (bottom - top); };
    const metricAxis = axes[axes.length - 1];
    const lines = runs.map((run) => {
      const values = keys.map((k, i) => (i < configKeys.length ? run.config[k] : metricValue(run, k)));
      const points = axes.map((axis, i) => `${xs[i].toFixed(1)},${yOf(axis, values[i]).toFixed(1)}`).join(" ");
      const value = values[values.length - 1];
      return svg("polyline", { points, class: "run-line", stroke: ramp(value === null ? null : metricAxis.at(value)),
        dataset: { id: run.id, name: run.name },
        onmouseenter: (event) => { event.target.classList.add("hover"); event.target.parentNode.append(event.target);
          tip.show(event, run, keys.map((k, i) => [k, values[i]])); },
        onmousemove: (event) => tip.show(event, run, keys.map((k, i) => [k, values[i]])),
        onmouseleave: (event) => { event.target.classList.remove("hover"); tip.hide(); },
        onclick: () => navigate(`/runs/${run.id}`) });
    });
    const chart = svg("svg", { class: "plot parallel", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `parallel coordinates of ${runs.length} runs over ${keys.join(", ")}` },
      svg("g", { class: "lines" }, lines),
      axes.map((axis, i) => drawAxis(axis, xs[i], top, bottom, { side: i === axes.length - 1 ? "right" : "left" })),
      keys.map((k, i) => text(xs[i], top - 18, k, { "text-anchor": "middle", class: i === keys.length - 1 ? "axis-title metric" : "axis-title" })));
    holder.replaceChildren(chart);
    save({ metric });
  };
  metricSel.addEventListener("change", draw);
  const observer = new ResizeObserver(() => { if (frame.clientWidth && frame.clientWidth !== frame.drawnAt) { frame.drawnAt = frame.clientWidth; draw(); } });
  observer.observe(frame);
  return h("section.card.plot-card",
    h("header.card-head", h("h2", "Parallel coordinates"), h("label.control", "metric", metricSel),
      h("span.muted", configKeys.length ? `${configKeys.length} config key${configKeys.length === 1 ? "" : "s"} that differ · lines coloured by the metric (blue low, orange high)`
        : "the runs' configs are the same: only the metric differs")),
    frame);
}

/** A metric against a config key (or another metric): one point per run. */
function scatterView(runs, state, save, metrics) {
  const configKeys = [...new Set(runs.flatMap((r) => Object.keys(r.config)))].sort();
  const varying = varyingConfig(runs);
  const xSel = h("select#scatter-x", { "aria-label": "x" },
    h("optgroup", { label: "config" }, configKeys.map((k) => h("option", { value: `config:${k}` }, k))),
    h("optgroup", { label: "metric" }, metrics.map((k) => h("option", { value: `metric:${k}` }, k))));
  const ySel = h("select#scatter-y", { "aria-label": "y" }, metrics.map((k) => h("option", { value: k }, k)));
  const xDefault = varying.length ? `config:${varying[0]}` : configKeys.length ? `config:${configKeys[0]}` : `metric:${metrics[0]}`;
  xSel.value = [...xSel.querySelectorAll("option")].some((o) => o.value === state.x) ? state.x : xDefault;
  ySel.value = metrics.includes(state.y) ? state.y : preferredMetric(metrics);
  const holder = h("div.plot-holder");
  const tip = tooltip();
  const frame = h("div.plot-frame", holder, tip);
  const draw = () => {
    const xKey = xSel.value, yKey = ySel.value;
    const xOf = (r) => (xKey.startsWith("config:") ? r.config[xKey.slice(7)] : metricValue(r, xKey.slice(7)));
    const xAxis = axisFor(xKey.replace(/^(config|metric):/, ""), runs.map(xOf));
    const yAxis = axisFor(yKey, runs.map((r) => metricValue(r, yKey)));
    const width = Math.max(500, (frame.clientWidth || 1028) - 28), height = 420;
    const left = 90, right = width - 30, top = 20, bottom = height - 60;
    // a category's points spread a little sideways, so runs with the same value stay apart
    const spread = xAxis.kind === "category" ? Math.min(40, (right - left) / (xAxis.categories.length * 3)) : 0;
    const seen = new Map();
    const points = runs.map((run) => {
      const xv = xOf(run), yv = metricValue(run, yKey);
      const xa = xAxis.at(xv), ya = yAxis.at(yv);
      if (ya === null || (xa === null && !xAxis.missing)) return null;
      const slot = `${xa}`;
      const k = seen.get(slot) || 0;
      seen.set(slot, k + 1);
      const jitter = spread ? ((k % 5) - 2) * (spread / 4) : 0;
      const cx = xa === null ? left - 18 : left + xa * (right - left) + jitter;
      const cy = bottom - ya * (bottom - top);
      return svg("circle", { cx: cx.toFixed(1), cy: cy.toFixed(1), r: 5, class: "run-point", dataset: { id: run.id, name: run.name },
        onmouseenter: (event) => { event.target.classList.add("hover"); tip.show(event, run, [[xAxis.label, xv], [yKey, yv]]); },
        onmouseleave: (event) => { event.target.classList.remove("hover"); tip.hide(); },
        onclick: () => navigate(`/runs/${run.id}`) });
    });
    const shown = points.filter(Boolean).length;
    const xTicks = xAxis.ticks.map((t) => svg("g", { class: "tick" },
      svg("line", { x1: left + t.at * (right - left), x2: left + t.at * (right - left), y1: top, y2: bottom, class: "grid-line" }),
      text(left + t.at * (right - left), bottom + 18, t.label, { "text-anchor": "middle", class: "tick-label" })));
    const yTicks = yAxis.ticks.map((t) => svg("g", { class: "tick" },
      svg("line", { x1: left, x2: right, y1: bottom - t.at * (bottom - top), y2: bottom - t.at * (bottom - top), class: "grid-line" }),
      text(left - 8, bottom - t.at * (bottom - top) + 4, t.label, { "text-anchor": "end", class: "tick-label" })));
    holder.replaceChildren(svg("svg", { class: "plot scatter", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `${yKey} against ${xAxis.label} for ${shown} runs` },
      svg("g", { class: "plot-axis x-axis", dataset: { key: xAxis.label, kind: xAxis.kind } }, xTicks),
      svg("g", { class: "plot-axis y-axis", dataset: { key: yKey, kind: yAxis.kind } }, yTicks),
      svg("line", { x1: left, x2: right, y1: bottom, y2: bottom, class: "axis-line" }),
      svg("line", { x1: left, x2: left, y1: top, y2: bottom, class: "axis-line" }),
      text((left + right) / 2, height - 14, xAxis.label, { "text-anchor": "middle", class: "axis-title x-title" }),
      text(18, (top + bottom) / 2, yKey, { "text-anchor": "middle", class: "axis-title y-title", transform: `rotate(-90 18 ${(top + bottom) / 2})` }),
      svg("g", { class: "points" }, points.filter(Boolean))));
    save({ x: xKey, y: yKey });
  };
  xSel.addEventListener("change", draw);
  ySel.addEventListener("change", draw);
  const observer = new ResizeObserver(() => { if (frame.clientWidth && frame.clientWidth !== frame.drawnAt) { frame.drawnAt = frame.clientWidth; draw(); } });
  observer.observe(frame);
  return h("section.card.plot-card",
    h("header.card-head", h("h2", "Scatter"), h("label.control", "x", xSel), h("label.control", "y", ySel),
      h("span.muted", "one point per run; runs with the same value are spread sideways")),
    frame);
}

export async function plotsPage({ query }) {
  document.title = "Plots · tympan";
  const ids = (query.runs || "").split(",").filter(Boolean);
  const head = (title) => h("div.page-head", h("div.title-block",
    h("div.crumbs", link("/runs", "Runs"), h("span", "/"), h("span", "Plots")), h("h1", title)));
  if (ids.length < 2) {
    return h("div.plots-page", head("Plots"),
      h("div.empty-state", h("p", "Select two or more runs on the "), link("/runs", "runs page"), h("p", " and press Plot.")));
  }
  if (ids.length > MAX_RUNS) throw new Error(`plot at most ${MAX_RUNS} runs at once (this link names ${ids.length})`);
  const data = await api.get("runs", { where: `id in (${ids.join(", ")})`, archived: "include", limit: MAX_RUNS });
  const runs = data.runs;
  const logged = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();  // by these runs
  const metrics = logged.filter((k) => !k.startsWith("probe/") && !k.startsWith("system/") && !/_(low|high)$/.test(k));
  const state = { ...query };
  const save = (patch) => { Object.assign(state, patch); setQuery(state); };
  const missing = ids.length - runs.length;
  if (!metrics.length) return h("div.plots-page", head(`Plots of ${runs.length} runs`), empty("These runs logged no metric."));
  const tabbed = tabs([
    { id: "parallel", label: "Parallel coordinates", render: () => parallelView(runs, state, save, metrics) },
    { id: "scatter", label: "Scatter", render: () => scatterView(runs, state, save, metrics) },
  ], { initial: query.tab || "parallel", onChange: (id) => save({ tab: id === "parallel" ? "" : id }) });
  return h("div.plots-page", head(`Plots of ${runs.length} runs`),
    missing ? h("p.muted", `${missing} of the linked runs no longer exist or are not visible to you.`) : null,
    h("div.toolbar", h("a.btn", { href: `/compare?runs=${runs.slice(0, 50).map((r) => r.id).join(",")}`, "data-link": "" }, "Compare these runs")),
    tabbed.root);
}
