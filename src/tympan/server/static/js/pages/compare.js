// The compare page: N runs' metrics overlaid (one colour per run), their config diff, a
// summary table, their audio at the same step with one synchronized A/B transport, and their
// images and tables at the same step. While one of the runs is running the page follows them
// (status, duration, charts, summary) and stops asking once none is.
import { api, enc } from "../api.js";
import { SyncPlayer } from "../sync-player.js";
import { h, fmt, fmtDuration, statusBadge, link, empty, colour } from "../dom.js";
import { metricPanel } from "../metrics.js";
import { setQuery, navigate } from "../router.js";
import { onLeave, liveSeconds } from "../state.js";
import { tabs } from "../tabs.js";
import { imagesCompareTab } from "../images.js";
import { tablesCompareTab } from "../tables.js";

const LIVE_SECONDS = 5;

function configDiff(data, colours) {
  const { runs, config_diff: diff } = data;
  const showAll = h("input#diff-all", { type: "checkbox" });
  const body = h("tbody");
  const allKeys = [...new Set(runs.flatMap((r) => Object.keys(r.config)))].sort();
  const render = () => {
    const keys = showAll.checked ? allKeys : diff.keys;
    const differs = new Set(diff.keys);
    body.replaceChildren(...keys.map((k) => {
      const values = diff.values[k] || runs.map((r) => (k in r.config ? r.config[k] : null));
      const first = JSON.stringify(values[0] ?? null);
      return h("tr", { class: differs.has(k) ? "differs" : "", dataset: { key: k } }, h("th", k),
        values.map((v, i) => h("td", { class: i > 0 && JSON.stringify(v ?? null) !== first ? "changed" : "",
          title: i > 0 && JSON.stringify(v ?? null) !== first ? `differs from ${runs[0].name}` : "" },
        v === null || v === undefined ? h("span.muted", "—") : typeof v === "object" ? JSON.stringify(v) : fmt(v, 8))));
    }));
  };
  showAll.addEventListener("change", render);
  render();
  return h("section.card",
    h("header.card-head", h("h2", `Config diff · ${diff.keys.length} differ, ${diff.same} the same`),
      h("label.control", showAll, "show identical keys")),
    h("div.card-body.table-wrap", diff.keys.length || showAll.checked ? h("table.grid.diff-table",
      h("thead", h("tr", h("th", "key"), runs.map((r, i) => h("th", h("i.swatch", { style: { background: colours[i] } }), r.name)))),
      body) : empty("The runs' configs are identical.")));
}

function summaryTable(data, colours, directionOf) {
  const keys = data.metric_keys.shared.filter((k) => !k.startsWith("probe/"));
  if (!keys.length) return empty("The runs share no metric.");
  return h("div.table-wrap", h("table.grid.summary-table",
    h("thead", h("tr", h("th", "metric"), data.runs.map((r, i) => h("th.num", h("i.swatch", { style: { background: colours[i] } }), r.name)))),
    h("tbody", keys.map((k) => {
      const values = data.runs.map((r) => (r.metrics[k] ? r.metrics[k].last : null));
      const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v));
      const best = finite.length > 1 ? (directionOf(k) === "higher" ? Math.max(...finite) : Math.min(...finite)) : null;
      return h("tr", h("th", k), values.map((v) => h("td.num", { class: v === best ? "num best" : "num" }, fmt(v))));
    }))));
}

/** The A/B letter of run i, as the player's buttons and the URL (?ab=B) say it. */
const abLetter = (i) => String.fromCharCode(65 + i);

function audioCompare(data, colours, state, save) {
  if (!data.audio.length) return empty("These runs have no audio key and step in common.");
  const keys = [...new Set(data.audio.map((a) => a.key))];
  const keySel = h("select#audio-key", { "aria-label": "audio key" }, keys.map((k) => h("option", { value: k }, k)));
  const stepSel = h("select#audio-step", { "aria-label": "step" });
  const slider = h("input.step-slider#audio-step-slider", { type: "range", min: 0, step: 1, "aria-label": "step" });
  const holder = h("div.sync-holder");
  const cache = new Map();
  let player = null;
  onLeave(() => player && player.destroy());
  const samplesOf = (runId, key) => {
    const id = `${runId}|${key}`;
    if (!cache.has(id)) cache.set(id, api.get(`runs/${enc(runId)}/audio`, { key }).then((r) => r.samples));
    return cache.get(id);
  };
  let entries = [];
  // the key, the step and the audible run live in the URL (?akey=&astep=&ab=B)
  if (keys.includes(state.akey)) keySel.value = state.akey;
  let linkedStep = state.astep;
  const fillSteps = () => {
    entries = data.audio.filter((a) => a.key === keySel.value);
    stepSel.replaceChildren(...entries.map((a, i) => h("option", { value: i }, `step ${fmt(a.step)}${a.in_all ? "" : " (not in all runs)"}`)));
    slider.max = entries.length - 1;
    const last = entries.length - 1 - [...entries].reverse().findIndex((a) => a.in_all);
    const linked = entries.findIndex((a) => String(a.step) === String(linkedStep));
    linkedStep = undefined;
    stepSel.value = slider.value = linked >= 0 ? linked : last < entries.length ? last : entries.length - 1;
  };
  const show = async () => {
    const entry = entries[Number(stepSel.value)];
    if (!entry) return;
    slider.value = stepSel.value;
    const perRun = await Promise.all(data.runs.map((r) => samplesOf(r.id, entry.key)));
    const items = [];
    data.runs.forEach((r, i) => {
      const sampleId = entry.samples[i];
      if (sampleId === null || sampleId === undefined) return;
      const sample = perRun[i].find((s) => String(s.sample_id) === String(sampleId));
      if (sample) items.push({ runId: r.id, name: r.name, sample, colour: colours[i] });
    });
    const heard = player ? player.active : Math.max(0, (state.ab || "A").charCodeAt(0) - 65);
    if (player) player.destroy();
    player = new SyncPlayer(items, { active: heard,
      onSwitch: (i) => save({ ab: i ? abLetter(i) : "" }) });
    save({ akey: entry.key, astep: String(entry.step), ab: player.active ? abLetter(player.active) : "" });
    const missing = data.runs.filter((_, i) => entry.samples[i] === null || entry.samples[i] === undefined);
    holder.replaceChildren(player.root);
    if (missing.length) holder.append(h("p.muted", `No sample at this step for: ${missing.map((r) => r.name).join(", ")}`));
  };
  keySel.addEventListener("change", () => { fillSteps(); show(); });
  stepSel.addEventListener("change", show);
  slider.addEventListener("input", () => { stepSel.value = slider.value; show(); });
  fillSteps();
  show();
  return h("div.audio-compare",
    h("div.toolbar", h("label.control", "Key", keySel), h("label.control", "Step", stepSel), slider,
      h("span.muted.hint", "Keys 1–9 switch runs (A/B) at the same moment · space plays/pauses")),
    holder);
}

export async function comparePage({ query }) {
  document.title = "Compare · tympan";
  const ids = (query.runs || "").split(",").filter(Boolean);
  if (ids.length < 2) {
    return h("div.compare-page", h("div.page-head", h("h1", "Compare")),
      h("div.empty-state", h("p", "Select two or more runs on the "), link("/runs", "runs page"), h("p", " and press Compare.")));
  }
  const data = await api.get("compare", { runs: ids.join(",") });
  const colours = data.runs.map((_, i) => colour(i));
  const state = { ...query };
  const save = (patch) => { Object.assign(state, patch); setQuery(state); };
  const lowerIsBetter = (k) => !/(acc|accuracy|f1|precision|recall|auc|bleu|mos|snr|pesq|stoi|score)/i.test(k);
  const remove = (id) => navigate(`/compare?runs=${data.runs.map((r) => r.id).filter((r) => r !== id).join(",")}`);
  const chips = h("div.run-chips");
  const renderChips = () => chips.replaceChildren(...data.runs.map((r, i) => h("span.run-chip", { dataset: { id: r.id, status: r.status } },
    h("i.swatch", { style: { background: colours[i] } }), link(`/runs/${r.id}`, r.name), statusBadge(r.status),
    r.status === "running" ? h("span.live", { title: `the page follows the running runs: it asks again every ${liveSeconds(LIVE_SECONDS)} s` }, "live") : null,
    h("span.muted.duration", fmtDuration(r.duration)),
    data.runs.length > 2 ? h("button.chip-x", { type: "button", title: "Remove from comparison", onclick: () => remove(r.id) }, "×") : null)));
  renderChips();
  const chartKeys = (d) => [...d.metric_keys.shared, ...d.metric_keys.all.filter((k) => !d.metric_keys.shared.includes(k))]
    .filter((k) => !k.startsWith("probe/"));
  let keys = chartKeys(data);
  const sources = data.runs.map((r, i) => ({ runId: r.id, name: r.name, colour: colours[i] }));
  // runs whose configs differ only by seed are one config's seeds: charts draw their band
  const seeds = data.config_diff.keys.every((k) => /(^|\.)seed$/.test(k));
  // the charts and the summary, once their tab was opened, follow running runs
  let panel = null;
  const metricsHolder = h("div.metrics-holder");
  const showMetrics = () => { panel = metricPanel(sources, keys, { state, onState: save, seeds }); metricsHolder.replaceChildren(panel.root); };
  const summaryHolder = h("div.summary-holder");
  const showSummary = () => summaryHolder.replaceChildren(summaryTable(data, colours, (k) => (lowerIsBetter(k) ? "lower" : "higher")));
  const items = [
    { id: "metrics", label: "Metrics", count: keys.length, render: () => { showMetrics(); return metricsHolder; } },
    { id: "audio", label: "Audio", count: new Set(data.audio.map((a) => a.key)).size, render: () => audioCompare(data, colours, state, save) },
    imagesCompareTab(data, colours),
    tablesCompareTab(data, colours),
    { id: "config", label: "Config diff", count: data.config_diff.keys.length, render: () => configDiff(data, colours) },
    { id: "summary", label: "Summary", render: () => { showSummary(); return summaryHolder; } },
  ];
  const tabbed = tabs(items, { initial: query.tab || "metrics", onChange: (id) => save({ tab: id === "metrics" ? "" : id }) });
  const root = h("div.compare-page",
    h("div.page-head", h("div.title-block", h("div.crumbs", link("/runs", "Runs"), h("span", "/"), h("span", "Compare")),
      h("h1", `Compare ${data.runs.length} runs`)), chips),
    tabbed.root);

  // Live: while a run is running, ask again (status, durations, metric keys, charts, the
  // summary) until none is; nothing is asked while the tab is hidden.
  let timer = null;
  onLeave(() => clearTimeout(timer));
  const running = () => data.runs.filter((r) => r.status === "running").length;
  const follow = () => {
    timer = setTimeout(async () => {
      if (!document.body.contains(root)) return;
      if (document.hidden) { follow(); return; }
      let fresh;
      try { fresh = await api.get("compare", { runs: ids.join(",") }, { quiet: true }); } catch { follow(); return; }
      if (!document.body.contains(root)) return;
      data.runs = fresh.runs;
      data.metric_keys = fresh.metric_keys;
      renderChips();
      const now = chartKeys(fresh);
      if (panel && now.join("\n") !== keys.join("\n")) { keys = now; showMetrics(); } else if (panel) panel.refresh();
      keys = now;
      if (summaryHolder.isConnected) showSummary();
      root.dataset.running = String(running());
      if (running()) follow();
    }, liveSeconds(LIVE_SECONDS) * 1000);
  };
  root.dataset.running = String(running());
  if (running()) follow();
  return root;
}
