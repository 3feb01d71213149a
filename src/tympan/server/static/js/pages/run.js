// The run page: header facts, summary tiles, and tabs for charts, audio, images, tables, config,
// environment, artifacts and health events.
import { api, apiUrl, enc } from "../api.js";
import { audioBrowser } from "../audio.js";
import { h, fmt, fmtDuration, fmtTime, fmtBytes, statusBadge, link, kvTable, empty, debounce, colour } from "../dom.js";
import { metricPanel } from "../metrics.js";
import { setQuery, navigate } from "../router.js";
import { onLeave, liveSeconds } from "../state.js";
import { tabs } from "../tabs.js";
import { defaultMetrics } from "./runs.js";
import { imagesTab } from "../images.js";
import { tablesTab } from "../tables.js";
import { consoleTab } from "../console.js";
import { runEditor, historyView } from "../run-manage.js";

const LIVE_SECONDS = 10;

export function configTable(flat) {
  const filter = h("input.search", { type: "search", placeholder: "Filter keys…", "aria-label": "filter config" });
  const body = h("tbody");
  const keys = Object.keys(flat).sort();
  const render = () => {
    const needle = filter.value.trim().toLowerCase();
    body.replaceChildren(...keys.filter((k) => !needle || k.toLowerCase().includes(needle) || String(flat[k]).toLowerCase().includes(needle))
      .map((k) => h("tr", h("th", k), h("td", typeof flat[k] === "object" && flat[k] !== null ? JSON.stringify(flat[k]) : fmt(flat[k], 8)))));
  };
  filter.addEventListener("input", debounce(render, 100));
  render();
  return h("div.config-view", keys.length > 8 ? h("div.toolbar", filter) : null,
    keys.length ? h("table.kv.config-table", body) : empty("This run has no config."));
}

function diffView(diff) {
  return h("pre.diff", diff.split("\n").map((line) => h("span", {
    class: line.startsWith("+++") || line.startsWith("---") ? "meta" : line.startsWith("+") ? "add"
      : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : line.startsWith("diff ") ? "meta" : "" }, `${line}\n`)));
}

function environmentView(run) {
  const env = run.environment;
  if (!env) return empty("No environment was captured for this run (TYMPAN_CAPTURE_ENV=0).");
  const git = env.git || {};
  const facts = [];
  if (git.commit) facts.push(["git commit", h("code", git.commit)]);
  if (git.branch) facts.push(["branch", git.branch]);
  if ("dirty" in git) facts.push(["working tree", git.dirty ? h("span.badge.status-failed", "dirty") : h("span.badge.status-finished", "clean")]);
  if (git.remote) facts.push(["remote", git.remote]);
  if (env.python) facts.push(["python", `${env.python.version || ""} ${env.python.executable ? `(${env.python.executable})` : ""}`]);
  if (env.os) facts.push(["os", typeof env.os === "object" ? Object.values(env.os).filter((v) => typeof v !== "object").join(" ") : env.os]);
  const describe = (obj) => (typeof obj === "object" && obj !== null ? Object.entries(obj)
    .filter(([, v]) => v !== null && v !== undefined && typeof v !== "object")
    .map(([k, v]) => (/bytes/.test(k) ? `${k.replace(/_?bytes/, "")} ${fmtBytes(v)}` : k === "model" || k === "name" ? v : `${k} ${v}`)).join(" · ") : String(obj));
  if (env.cpu) facts.push(["cpu", describe(env.cpu)]);
  if (env.gpu && env.gpu.length) facts.push(["gpu", env.gpu.map(describe).join("; ")]);
  if (env.command) facts.push(["command", h("code", [...(env.command.argv || [])].join(" "))], ["cwd", env.command.cwd || "–"]);
  const packages = Object.entries(env.packages || {}).sort();
  const pkgFilter = h("input.search", { type: "search", placeholder: `Filter ${packages.length} packages…`, "aria-label": "filter packages" });
  const pkgBody = h("tbody");
  const renderPkgs = () => {
    const needle = pkgFilter.value.trim().toLowerCase();
    pkgBody.replaceChildren(...packages.filter(([n]) => !needle || n.toLowerCase().includes(needle))
      .map(([n, v]) => h("tr", h("td", n), h("td.num", v))));
  };
  pkgFilter.addEventListener("input", debounce(renderPkgs, 100));
  renderPkgs();
  return h("div.env-grid",
    h("section.card", h("header.card-head", h("h2", "Code and machine")), h("div.card-body", kvTable(facts))),
    h("section.card.packages", h("header.card-head", h("h2", "Packages"), pkgFilter),
      h("div.card-body.scroll", packages.length ? h("table.grid.compact", h("thead", h("tr", h("th", "package"), h("th.num", "version"))), pkgBody) : empty("No packages recorded."))),
    h("section.card.wide", h("header.card-head", h("h2", "Uncommitted changes"),
      git.untracked && git.untracked.length ? h("span.muted", `${git.untracked.length} untracked file(s)`) : null),
    h("div.card-body", git.diff ? diffView(git.diff) : empty(git.commit ? "The working tree was clean." : "Not a git checkout."))));
}

function artifactsView(run) {
  const list = run.artifacts || [];
  if (!list.length) return empty("No artifacts.");
  const preview = h("div.artifact-preview");
  const show = async (a) => {
    const href = apiUrl(`runs/${enc(run.id)}/artifacts/${a.path.split("/").map(enc).join("/")}`);
    const type = a.media_type || "";
    if (type.startsWith("image/") && !type.includes("svg")) preview.replaceChildren(h("img", { src: href, alt: a.path }));
    else if (type.startsWith("audio/")) preview.replaceChildren(h("audio", { src: href, controls: true }));
    else if ((type.includes("json") || type.startsWith("text/")) && a.size < 512 * 1024) {
      const text = await fetch(href, { credentials: "same-origin" }).then((r) => r.text());
      let shown = text;
      if (type.includes("json")) { try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* keep as is */ } }
      preview.replaceChildren(h("div.preview-head", h("b", a.path), h("a", { href, target: "_blank", rel: "noopener" }, "open raw")), h("pre.code", shown));
    } else preview.replaceChildren(h("p.muted", `No preview for ${type || "this file"}: `, h("a", { href, download: a.path.split("/").pop() }, "download")));
  };
  return h("div.artifacts",
    h("div.table-wrap", h("table.grid.artifact-table", h("thead", h("tr", h("th", "path"), h("th", "type"), h("th.num", "size"), h("th", "logged"), h("th", ""))),
      h("tbody", list.map((a) => {
        const href = apiUrl(`runs/${enc(run.id)}/artifacts/${a.path.split("/").map(enc).join("/")}`);
        return h("tr", h("td", h("button.linklike", { type: "button", onclick: () => show(a) }, a.path)), h("td.muted", a.media_type),
          h("td.num", fmtBytes(a.size)), h("td.nowrap", fmtTime(a.created_at)),
          h("td", h("a.btn.ghost.small", { href, download: a.path.split("/").pop() }, "Download")));
      })))),
    preview);
}

export function eventsTable(events) {
  return h("table.grid.events-table", h("thead", h("tr", h("th.num", "step"), h("th", "layer"), h("th", "rule"), h("th.num", "value"), h("th", "phase"), h("th", "message"))),
    h("tbody", events.map((e) => h("tr", { dataset: { layer: e.layer, rule: e.rule } }, h("td.num", fmt(e.step)), h("td", h("code", e.layer)),
      h("td", h("span.badge.rule", e.rule)), h("td.num", fmt(e.value)), h("td.muted", e.phase || ""), h("td", e.message)))));
}

async function healthView(run) {
  const parts = [];
  if (run.error) parts.push(h("section.card.error-card", h("header.card-head", h("h2", `Run ${run.status}`)), h("div.card-body", h("pre.traceback", run.error))));
  const nonFinite = Object.entries(run.metrics).filter(([, s]) => s.nan_count || s.inf_count);
  if (nonFinite.length) {
    parts.push(h("section.card", h("header.card-head", h("h2", "Non-finite values")), h("div.card-body",
      h("table.grid.compact", h("thead", h("tr", h("th", "metric"), h("th.num", "NaN"), h("th.num", "±Inf"), h("th.num", "of points"))),
        h("tbody", nonFinite.map(([k, s]) => h("tr", h("td", k), h("td.num", fmt(s.nan_count)), h("td.num", fmt(s.inf_count)), h("td.num", fmt(s.count)))))))));
  }
  if (run.probe && run.probe.available) {
    const probe = await api.get(`runs/${enc(run.id)}/probe`);
    parts.push(h("section.card", h("header.card-head", h("h2", `Health events (${probe.events.length})`),
      link(`/runs/${run.id}/probe`, "Open the probe page →")),
    h("div.card-body", probe.events.length ? eventsTable(probe.events) : empty("The probe raised no health event."))));
  }
  if (!parts.length) parts.push(empty("No health events: the run has no error, no non-finite metric value, and no probe."));
  return h("div.health", parts);
}

function summaryTiles(run) {
  // interval bounds (KEY_low / KEY_high) go with their metric, not in a tile of their own
  const keys = Object.keys(run.metrics).filter((k) => !/_(low|high|lo|hi)$/.test(k));
  const ordered = defaultMetrics(keys, 6);
  return h("div.tiles", ordered.map((k) => {
    const s = run.metrics[k];
    return h("div.tile", h("div.tile-label", { title: k }, k), h("div.tile-value", fmt(s.last)),
      h("div.tile-sub", `min ${fmt(s.min)} @ ${fmt(s.min_step)} · max ${fmt(s.max)}`));
  }));
}

function gitFact(run) {
  const facts = run.environment_facts;
  if (!facts || !facts["git.commit"]) return null;
  const dirty = facts["git.dirty"];
  return ["commit", h("span", h("code", { title: facts["git.commit"] }, String(facts["git.commit"]).slice(0, 10)),
    facts["git.branch"] ? h("span.muted", ` ${facts["git.branch"]}`) : null,
    dirty ? h("span.badge.status-crashed", { title: `${facts["git.diff_lines"] || 0} changed lines: see Environment` }, "dirty") : null)];
}

export async function runPage({ params, query }) {
  const run = await api.get(`runs/${enc(params.id)}`);
  document.title = `${run.name} · tympan`;
  const metricKeys = Object.keys(run.metrics).sort();
  const chartKeys = metricKeys.filter((k) => !k.startsWith("probe/"));
  const probeKeys = metricKeys.length - chartKeys.length;
  const audioCount = run.audio ? run.audio.count : 0;
  const state = { ...query };
  let panel = null;  // the charts, once their tab was opened
  const save = (patch) => { Object.assign(state, patch); setQuery(state); };

  const durationEl = h("span.duration", fmtDuration(run.duration));
  const facts = [
    ["id", h("code", run.id)],
    ["project", run.project],
    ["started", fmtTime(run.started_at)],
    ["duration", durationEl],
    gitFact(run),
    run.host ? ["host", `${run.host}${run.pid ? ` · pid ${run.pid}` : ""}`] : null,
    run.seed !== null && run.seed !== undefined ? ["seed", String(run.seed)] : null,
    run.study ? ["study", h("span", link(`/studies/${encodeURIComponent(run.study.name)}`, run.study.name),
      run.study.trial ? h("span.muted", ` · ${run.study.trial.arm} · seed ${run.study.trial.seed}`) : null)] : null,
    run.parent_id ? ["parent", link(`/runs/${run.parent_id}`, run.parent_id.slice(0, 8))] : null,
  ].filter(Boolean);
  const statusSlot = h("span.status-slot");
  const showStatus = (r) => statusSlot.replaceChildren(statusBadge(r.status),
    ...(r.status === "running" ? [h("span.live", { title: `the page follows the run: it asks again every ${liveSeconds(LIVE_SECONDS)} s` }, "live")] : []));
  showStatus(run);
  // the audit trail, once its tab was opened, is read again after every change made here
  const historySlot = h("div.history-slot");
  const showHistory = async () => historySlot.replaceChildren(await historyView(run.id));
  const editor = runEditor(run, {
    onChange: (now) => { document.title = `${now.name} · tympan`; if (historySlot.isConnected) showHistory(); },
    onDeleted: () => navigate("/runs"),
  });
  const head = h("div.run-head",
    h("div.title-block",
      h("div.crumbs", link("/runs", "Runs"), h("span", "/"), h("span", run.project)),
      h("h1", editor.name, statusSlot, editor.archived),
      h("div.facts", facts.map(([k, v]) => h("span.fact", h("span.fact-key", k), v))),
      editor.tags,
      h("p.note", editor.note)),
    h("div.head-actions",
      run.probe && run.probe.available ? h("a.btn", { href: `/runs/${run.id}/probe`, "data-link": "" }, "Probe") : null,
      h("a.btn", { href: "/runs", "data-link": "" }, "All runs"),
      editor.actions));

  const items = [
    { id: "charts", label: "Charts", count: chartKeys.length, render: () => {
      panel = metricPanel([{ runId: run.id, name: run.name, colour: colour(0) }], chartKeys, { state, onState: save });
      return h("div", panel.root, probeKeys ? h("p.muted.small-note", `${probeKeys} probe statistics are on the `, link(`/runs/${run.id}/probe`, "probe page"), ".") : null);
    } },
    { id: "audio", label: "Audio", count: audioCount, render: async () => {
      if (!audioCount) return empty("No audio samples were logged (run.log_audio).");
      const { samples } = await api.get(`runs/${enc(run.id)}/audio`);
      const view = audioBrowser(run.id, samples, { at: { key: state.akey, step: state.astep },
        onStep: (akey, astep) => save({ akey, astep }) });
      onLeave(() => view.querySelectorAll("audio").forEach((a) => a.pause()));
      return view;
    } },
    imagesTab(run),
    tablesTab(run),
    { id: "config", label: "Config", count: Object.keys(run.config_flat).length, render: () => configTable(run.config_flat) },
    { id: "environment", label: "Environment", render: () => environmentView(run) },
    consoleTab(run),
    { id: "artifacts", label: "Artifacts", count: (run.artifacts || []).length, render: () => artifactsView(run) },
    { id: "health", label: "Health", count: (run.probe && run.probe.events) || (run.error ? 1 : null), render: () => healthView(run) },
    { id: "history", label: "History", render: async () => { await showHistory(); return historySlot; } },
  ];
  const initial = query.tab || (chartKeys.length ? "charts" : audioCount ? "audio"
    : run.images && run.images.count ? "images" : run.tables && run.tables.count ? "tables" : "config");
  const tabbed = tabs(items, { initial, onChange: (id) => save({ tab: id === "charts" ? "" : id }) });
  const tilesSlot = h("div.tiles-slot", chartKeys.length ? summaryTiles(run) : null);
  const root = h("div.run-page", head, tilesSlot, tabbed.root);

  // A running run: status, duration, tiles and charts follow it until it ends (finished,
  // failed, or crashed when its process is gone), then the page stops asking.
  let timer = null;
  onLeave(() => clearTimeout(timer));
  const follow = () => {
    timer = setTimeout(async () => {
      if (!document.body.contains(root)) return;
      if (document.hidden) { follow(); return; }
      let fresh;
      try { fresh = await api.get(`runs/${enc(run.id)}`, undefined, { quiet: true }); } catch { follow(); return; }
      if (!document.body.contains(root)) return;
      showStatus(fresh);
      durationEl.textContent = fmtDuration(fresh.duration);
      if (Object.keys(fresh.metrics).some((k) => !k.startsWith("probe/"))) tilesSlot.replaceChildren(summaryTiles(fresh));
      if (panel) panel.refresh();
      root.dataset.status = fresh.status;
      if (fresh.status === "running") follow();
    }, liveSeconds(LIVE_SECONDS) * 1000);
  };
  root.dataset.status = run.status;
  if (run.status === "running") follow();
  return root;
}
