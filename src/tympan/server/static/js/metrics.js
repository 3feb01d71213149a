// A grid of metric charts for one or more runs, with shared controls: smoothing (EMA),
// log scale, x = step or time, a key filter, and zoom that re-fetches the window at full
// fidelity from the API (long series come downsampled, keeping spikes).
import { api, enc, encKey } from "./api.js";
import { LineChart } from "./chart.js";
import { h, fmt, fmtDuration, debounce } from "./dom.js";
import { fetchBand, bandSeries } from "./seed-bands.js";

const POINTS = 1200;
const BAND_COLOUR = "#f08c00";  // a seed group's mean and band, apart from every run's colour

function fetchSeries(runId, key, xMode, range) {
  const params = { x: xMode, points: POINTS };
  if (range) { params.start = range[0]; params.end = range[1]; }
  return api.get(`runs/${enc(runId)}/metrics/${encKey(key)}`, params, { quiet: true })
    .catch((error) => ({ x: [], y: [], error }));
}

function groupOf(key) {
  const i = key.indexOf("/");
  return i > 0 ? key.slice(0, i) : "";
}

/**
 * sources: [{runId, name, colour}], keys: metric keys to chart. `seeds`: the sources are one
 * config's seeds, so each chart can draw their mean with its 95% band (on unless ?band=0).
 * Returns {root, charts} — root carries the toolbar and the chart grid.
 */
export function metricPanel(sources, keys, { title = "Metrics", state = {}, onState = () => {}, seeds = false } = {}) {
  const settings = { smoothing: Number(state.smooth || 0), logY: state.log === "1",
    xMode: state.x === "time" ? "time" : "step", filter: state.filter || "", band: seeds && state.band !== "0" };
  const charts = new Map(); // key -> {chart, info, load}

  const smoothingValue = h("output.slider-value", settings.smoothing.toFixed(2));
  const smoothing = h("input.smoothing", { type: "range", min: 0, max: 0.99, step: 0.01,
    value: settings.smoothing, "aria-label": "smoothing" });
  smoothing.addEventListener("input", () => {
    settings.smoothing = Number(smoothing.value);
    smoothingValue.textContent = settings.smoothing.toFixed(2);
    save();
    for (const { chart } of charts.values()) chart.setSmoothing(settings.smoothing);
  });
  const logY = h("input.log-y", { type: "checkbox", checked: settings.logY });
  logY.addEventListener("change", () => {
    settings.logY = logY.checked;
    for (const { chart } of charts.values()) chart.setLogY(settings.logY);
    save();
  });
  const xMode = h("select.x-mode", { "aria-label": "x axis" },
    h("option", { value: "step" }, "step"), h("option", { value: "time" }, "time"));
  xMode.value = settings.xMode;
  xMode.addEventListener("change", () => {
    settings.xMode = xMode.value;
    for (const entry of charts.values()) { entry.chart.reset({ notify: false }); entry.load(null); }
    save();
  });
  const filter = h("input.search.key-filter", { type: "search", placeholder: "Filter metrics…",
    value: settings.filter, "aria-label": "filter metrics" });
  filter.addEventListener("input", debounce(() => { settings.filter = filter.value; layout(); save(); }, 150));
  const resetAll = h("button.btn", { type: "button", onclick: () => {
    for (const { chart } of charts.values()) chart.reset();
  } }, "Reset zoom");

  const band = h("input.seed-band", { type: "checkbox", checked: settings.band });
  band.addEventListener("change", () => {
    settings.band = band.checked;
    root.querySelector(".band-legend").hidden = !settings.band;
    for (const entry of charts.values()) if (entry.loaded) entry.load(entry.chart.view);
    save();
  });

  function save() {
    onState({ smooth: settings.smoothing || "", log: settings.logY ? "1" : "",
      x: settings.xMode === "time" ? "time" : "", filter: settings.filter, band: seeds && !settings.band ? "0" : "" });
  }

  const grid = h("div.chart-groups");
  const toolbar = h("div.toolbar.metric-toolbar",
    filter,
    h("label.control", "Smoothing", smoothing, smoothingValue),
    h("label.control", logY, "Log scale"),
    h("label.control", "x", xMode),
    seeds ? h("label.control", { title: "The runs differ only by seed: draw their mean at each step, shaded with the 95% CI (Student t, as the group table)" },
      band, `Mean ± 95% band of ${sources.length} seeds`) : null,
    resetAll);
  const legend = sources.length > 1 ? h("div.legend", sources.map((s) =>
    h("span.legend-item", h("i.swatch", { style: { background: s.colour } }), s.name)),
  seeds ? h("span.legend-item.band-legend", { hidden: !settings.band }, h("i.swatch", { style: { background: BAND_COLOUR } }),
    `mean ± 95% CI of the ${sources.length} seeds`) : null) : null;
  const root = h("div.metric-panel", toolbar, legend, grid);

  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      const item = charts.get(entry.target.dataset.key);
      if (item && !item.loaded) item.load(null);
    }
  }, { rootMargin: "300px" });

  function makeChart(key) {
    const info = h("span.chart-info");
    const body = h("div.chart-body");
    const cardEl = h("div.chart-card", { dataset: { key } },
      h("div.chart-head", h("h4", { title: key }, key), info,
        h("button.btn.ghost.small.reset", { type: "button", title: "Reset zoom (or double-click the chart)",
          onclick: () => entry.chart.reset() }, "Reset")),
      body);
    let origin = null;
    const formatX = (v) => (settings.xMode === "time" ? fmtDuration(v - (origin ?? 0)) : fmt(v, 6));
    const entry = {
      card: cardEl, info, loaded: false, requests: 0,
      chart: new LineChart(body, { height: 210, smoothing: settings.smoothing, logY: settings.logY,
        formatX, onZoom: (range) => entry.load(range),
        onHover: (x, source) => {  // one crosshair across the panel's charts
          for (const other of charts.values()) if (other.chart !== source && other.loaded) other.chart.showHover(x);
        } }),
    };
    entry.load = async (range) => {
      entry.loaded = true;
      const ticket = ++entry.requests;
      cardEl.classList.add("loading");
      const withBand = settings.band && settings.xMode === "step";  // steps are what seeds share
      const [results, seedBand] = await Promise.all([
        Promise.all(sources.map((s) => fetchSeries(s.runId, key, settings.xMode, range))),
        withBand ? fetchBand(sources.map((s) => s.runId), key).then((b) => (b.runs.length > 1 ? b : null), () => null) : null]);
      if (ticket !== entry.requests) return;
      cardEl.classList.remove("loading");
      if (settings.xMode === "time" && !range) {
        const firsts = results.filter((r) => r.x && r.x.length).map((r) => r.x[0]);
        origin = firsts.length ? Math.min(...firsts) : 0;
        if (origin < 1e8) origin = 0; // already relative seconds
      }
      const runs = results.map((r, i) => ({
        name: sources[i].name, colour: sources[i].colour, x: r.x || [], y: r.y || [], faint: Boolean(seedBand),
      }));
      entry.chart.setSeries(seedBand ? [...runs, bandSeries(seedBand, `mean of ${seedBand.runs.length} seeds`, BAND_COLOUR)] : runs);
      cardEl.dataset.band = seedBand ? "1" : "";
      const downsampled = results.some((r) => r.downsampled);
      const total = results.reduce((n, r) => n + (r.total || (r.x ? r.x.length : 0)), 0);
      const shown = results.reduce((n, r) => n + (r.x ? r.x.length : 0), 0);
      info.textContent = downsampled ? `${fmt(shown)} of ${fmt(total)} pts` : `${fmt(total)} pts${range ? " · full fidelity" : ""}`;
      info.title = downsampled ? "Downsampled for display (min/max buckets keep spikes); zoom in for full fidelity" : "";
      cardEl.dataset.downsampled = downsampled ? "1" : "0";
      cardEl.dataset.points = shown;
      const failed = results.find((r) => r.error);
      if (failed && results.every((r) => !r.x || !r.x.length)) info.textContent = failed.error.message;
    };
    charts.set(key, entry);
    return entry;
  }

  function layout() {
    const needle = settings.filter.trim().toLowerCase();
    const visible = keys.filter((k) => !needle || k.toLowerCase().includes(needle));
    const groups = new Map();
    for (const key of visible) {
      const g = groupOf(key);
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(key);
    }
    grid.replaceChildren();
    if (!visible.length) {
      grid.append(h("p.empty", keys.length ? "No metric matches the filter." : "No metrics were logged."));
      return;
    }
    const lastly = (g) => (g === "system" ? 1 : 0);  // the machine's metrics after the model's
    for (const [group, list] of [...groups.entries()].sort(([a], [b]) => lastly(a) - lastly(b) || a.localeCompare(b))) {
      const cards = list.map((key) => {
        const entry = charts.get(key) || makeChart(key);
        if (!entry.loaded) observer.observe(entry.card);
        return entry.card;
      });
      grid.append(h("div.chart-group", group ? h("h3.group-title", group, h("span.count", list.length)) : null,
        h("div.chart-grid", cards)));
    }
  }
  layout();
  /** Re-fetch what every loaded chart shows (a running run keeps logging). */
  const refresh = () => {
    for (const entry of charts.values()) if (entry.loaded) entry.load(entry.chart.view);
  };
  return { root, charts, settings, refresh };
}
