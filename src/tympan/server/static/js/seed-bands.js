// Seed groups as curves: each group's mean across its runs at every step, shaded with the
// same 95% Student t interval as the group table (GET /api/metrics/band).
import { api } from "./api.js";
import { LineChart } from "./chart.js";
import { h, fmt, colour } from "./dom.js";

/** The band of `key` across these runs: {x, mean, low, high, n, runs, bucketed}. */
export function fetchBand(runIds, key) {
  return api.get("metrics/band", { runs: runIds.join(","), key, points: 1000 }, { quiet: true });
}

/** A chart series drawing a band: the mean as its line, the interval shaded. */
export function bandSeries(band, name, seriesColour) {
  return { name, colour: seriesColour, x: band.x, y: band.mean, low: band.low, high: band.high, n: band.n };
}

const MAX_CURVES = 12;  // more lines than this are no longer told apart by colour

const metricOf = (spec) => (spec || "").replace(/\.(last|min|max|count)$/, "");

/** The groups page's curves: one chart of a metric (a menu picks it), one mean line and band
 *  per group (the first MAX_CURVES in the table's order), in the group's colour, with its
 *  values as the legend. */
export function groupCurves(groups, metricKeys, metric) {
  const drawnGroups = groups.groups.slice(0, MAX_CURVES);
  const partial = drawnGroups.filter((g) => (g.size ?? g.runs.length) > g.runs.length).length;
  const limits = [
    groups.groups.length > MAX_CURVES ? `the first ${MAX_CURVES} of ${groups.groups.length} groups` : "",
    partial ? `${partial} group${partial === 1 ? "" : "s"} over their first ${Math.max(...drawnGroups.map((g) => g.runs.length))} runs by seed` : "",
  ].filter(Boolean).join(" · ");
  const keys = metricKeys.filter((k) => !k.startsWith("probe/"));
  const chosen = keys.includes(metricOf(metric)) ? metricOf(metric) : keys[0];
  const label = (g) => Object.entries(g.values).map(([k, v]) => `${k}=${v === null || v === undefined ? "(none)" : fmt(v)}`).join(", ");
  const select = h("select#curve-metric", { "aria-label": "metric of the curves" }, keys.map((k) => h("option", { value: k }, k)));
  select.value = chosen;
  const note = h("span.muted.curve-note");
  const body = h("div.chart-body");
  const legend = h("div.legend");
  const card = h("section.card.seed-curves",
    h("header.card-head", h("h2", "Curves"), h("label.control", "metric", select),
      h("span.muted", `mean of each group's runs at every step · shaded: ${Math.round((groups.confidence || 0.95) * 100)}% CI (Student t, as in the table)`),
      note),
    legend, body);
  const chart = new LineChart(body, { height: 280 });
  let ticket = 0;
  const load = async () => {
    const mine = ++ticket;
    const key = select.value;
    card.dataset.loaded = "";
    const bands = await Promise.all(drawnGroups.map((g) => {
      const ids = g.runs.map((r) => r.id);
      return ids.length ? fetchBand(ids, key).catch(() => null) : null;
    }));
    if (mine !== ticket) return;
    const drawn = (band) => band && band.runs.length;
    chart.setSeries(bands.flatMap((band, i) => (drawn(band) ? [bandSeries(band, label(drawnGroups[i]), colour(i))] : [])));
    legend.replaceChildren(...drawnGroups.map((g, i) => (drawn(bands[i])
      ? h("span.legend-item", h("i.swatch", { style: { background: colour(i) } }), label(g)) : null)).filter(Boolean));
    const missing = bands.filter((b) => !drawn(b)).length;
    note.textContent = [limits, missing ? `${missing} group${missing === 1 ? "" : "s"} never logged ${key}` : ""].filter(Boolean).join(" · ");
    card.dataset.key = key;
    card.dataset.loaded = "1";
  };
  select.addEventListener("change", load);
  if (chosen) load(); else body.replaceChildren(h("p.empty", "No metrics were logged."));
  return card;
}
