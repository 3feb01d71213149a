// The runs page: a filterable, sortable, paged table of runs with a column chooser, run
// selection for Compare, and a grouped view (mean ± 95% CI across seeds per config group).
import { api } from "../api.js";
import { showError } from "../banner.js";
import { h, fmt, fmtDuration, fmtAgo, fmtTime, statusBadge, debounce, link } from "../dom.js";
import { setQuery, navigate } from "../router.js";
import { state, onLeave, liveSeconds } from "../state.js";
import { columnChooser, popover } from "../widgets.js";
import { groupsView } from "./groups.js";
import { nestRuns, shownNested } from "../nesting.js";
import { exportMenu } from "../export-menu.js";
import { canWrite, editRunDialog, selectionActions, tagAdder, writeButton } from "../run-manage.js";
import { columnMenu, draggable, moved, placed, savedPins, savePins, stickPinned } from "../column-order.js";

const STATUSES = ["running", "finished", "failed", "crashed"];
const PAGE_SIZES = [50, 100, 250];
const FIXED = [
  { id: "name", label: "Name", sort: "name" },
  { id: "status", label: "Status", sort: "status" },
  { id: "started_at", label: "Started", sort: "started_at" },
  { id: "duration", label: "Duration", sort: "duration", num: true },
];

/** A key or value as the query language reads it back (docs/query.md): bare when it is one
 *  plain word, else double-quoted with backslash escapes. */
export function quoted(text) {
  text = String(text);
  if (/^[^\s"'()<>=!~,]+$/.test(text) && !["and", "in", "not", "has"].includes(text.toLowerCase())) return text;
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function parseWhere(text) {
  return (text || "").split(";").filter(Boolean).map((pair) => {
    const i = pair.indexOf("=");
    return { key: pair.slice(0, i), value: pair.slice(i + 1) };
  }).filter((w) => w.key);
}

function savedColumns() {
  try { return JSON.parse(localStorage.getItem(`tympan.columns.${state.project}`) || "null"); } catch { return null; }
}

/** The most telling config keys, at most n: keys most rows have that take more than one value
 * among them (encoder, lr, ...) come first; keys few rows have, or with a different value in
 * every row (paths, ids), come last; seeds and keys with one value never. */
function varyingKeys(runs, keys, n) {
  const scored = [];
  for (const key of keys) {
    if (/(^|\.)seed$/.test(key) || key.startsWith("probe.")) continue;  // probe jobs' own settings
    const present = runs.filter((r) => r.config[key] !== undefined && r.config[key] !== null);
    const values = new Set(present.map((r) => JSON.stringify(r.config[key])));
    if (values.size < 2) continue;
    const everyRowDiffers = values.size === present.length && present.length > 3;
    scored.push({ key, score: present.length / runs.length - (everyRowDiffers ? 1 : 0) });
  }
  scored.sort((a, b) => b.score - a.score || a.key.localeCompare(b.key));
  return scored.slice(0, n).map((s) => s.key);
}

/** Evaluation metrics first (val/, test/, eval/), then the rest; probe statistics and system
 *  metrics never. */
export function defaultMetrics(keys, n) {
  const visible = keys.filter((k) => !k.startsWith("probe/") && !k.startsWith("system/"));
  const rank = (k) => (/^(test|val|valid|eval)[/_]/.test(k) ? 0 : 1);
  return [...visible].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)).slice(0, n);
}

/** The metric to aggregate by default: an evaluation metric (test/, val/, eval/), the usual
 *  headline ones first (WER, then loss, accuracy, F1, EER, then the rest by name). */
export function preferredMetric(keys) {
  const visible = keys.filter((k) => !k.startsWith("probe/") && !k.startsWith("system/") && !/_(low|high)$/.test(k));
  const evals = visible.filter((k) => /^(test|val|valid|eval)[/_]/.test(k));
  const headline = ["wer", "loss", "acc", "f1", "eer", "cer"];
  const rank = (k) => { const i = headline.findIndex((h) => k.toLowerCase().includes(h)); return i < 0 ? headline.length : i; };
  const pick = (list) => [...list].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))[0];
  return pick(evals) || pick(visible) || keys[0] || "";
}

/** The column a sort names, as the column chooser spells it (null: a run field). */
function sortColumn(sort, data) {
  if (!sort || FIXED.some((c) => c.sort === sort)) return null;
  if (sort.startsWith("config:") || sort.startsWith("metric:")) return sort;
  if (data.config_keys.includes(sort)) return `config:${sort}`;
  return `metric:${sort}`;
}

export async function runsPage({ query }) {
  document.title = "Runs · tympan";
  const q = {
    q: query.q || "", status: query.status ? query.status.split(",") : [],
    where: parseWhere(query.where), sort: query.sort || "", desc: query.desc === "1",
    group: query.group ? query.group.split(",") : [], metric: query.metric || "",
    limit: Number(query.limit) || 50, offset: Number(query.offset) || 0,
    tag: query.tag || "", study: query.study || "", archived: query.archived === "1",
  };
  const selected = new Set((query.sel || "").split(",").filter(Boolean));
  const expanded = new Set();  // parents whose child runs are shown
  let columns = query.cols ? query.cols.split(",") : savedColumns();
  let pins = savedPins(state.project);
  let data = null;

  const root = h("div.runs-page");
  const countEl = h("span.count-label");
  const table = h("div.table-wrap");
  const pager = h("div.pager");
  const compareBtn = h("button.btn.primary#compare-selected", { type: "button", disabled: true,
    onclick: () => navigate(`/compare?runs=${[...selected].join(",")}`) }, "Compare");
  const plotBtn = h("button.btn#plot-selected", { type: "button", disabled: true, title: "Parallel coordinates and a scatter of the selected runs",
    onclick: () => navigate(`/plots?runs=${[...selected].join(",")}`) }, "Plot");
  const manage = selectionActions(selected, () => data.runs, () => { syncUrl(); reload(); });
  const clearSel = h("button.btn.ghost.small", { type: "button", hidden: true,
    onclick: () => { selected.clear(); renderTable(); syncUrl(); } }, "Clear selection");

  function syncUrl() {
    setQuery({ project: state.project, q: q.q, status: q.status.join(","), where: q.where.map((w) => `${w.key}=${w.value}`).join(";"),
      sort: q.sort, desc: q.desc ? "1" : "", group: q.group.join(","), metric: q.group.length ? q.metric : "",
      limit: q.limit !== 50 ? q.limit : "", offset: q.offset || "", tag: q.tag, study: q.study,
      cols: query.cols && columns ? columns.join(",") : "", sel: [...selected].join(","), archived: q.archived ? "1" : "" });
  }

  function params() {  // the filter box is the query language: where= like the chips
    return { project: state.project, status: q.status.join(","), tag: q.tag || undefined, study: q.study || undefined,
      archived: q.archived ? "include" : undefined,
      where: [...q.where.map((w) => `${quoted(w.key)} = ${quoted(w.value)}`), ...(q.q ? [q.q] : [])] };
  }

  // ---- filter bar
  const search = h("input.search#run-search", { type: "search", placeholder: "Filter: test/wer.min < 0.1, encoder in (conv, gru), or a name…",
    title: "Filter runs with the query language (docs/query.md): config and metric predicates, tags has T, status != crashed, or words to search names and ids. Press / to jump here.",
    value: q.q, "aria-label": "filter runs", spellcheck: "false" });
  const queryError = h("div.query-error#query-error", { role: "alert", hidden: true });
  search.addEventListener("input", debounce(() => { q.q = search.value.trim(); q.offset = 0; reload(); }, 250));
  const slash = (event) => {  // "/" jumps to the search box
    if (event.key !== "/" || event.target.closest("input, select, textarea")) return;
    event.preventDefault();
    search.focus();
  };
  document.addEventListener("keydown", slash);
  onLeave(() => document.removeEventListener("keydown", slash));
  const statusChips = h("div.chips.status-filter", { role: "group", "aria-label": "status" },
    STATUSES.map((s) => {
      const chip = h("button.chip", { type: "button", dataset: { status: s },
        "aria-pressed": String(q.status.includes(s)) }, h("i.dot", { class: `dot status-${s}` }), s);
      chip.addEventListener("click", () => {
        q.status = q.status.includes(s) ? q.status.filter((x) => x !== s) : [...q.status, s];
        chip.setAttribute("aria-pressed", String(q.status.includes(s)));
        q.offset = 0;
        reload();
      });
      return chip;
    }));
  const archivedChip = h("button.chip#show-archived", { type: "button", "aria-pressed": String(q.archived),
    title: "Archived runs are hidden: show them too, marked archived" }, "Show archived");
  archivedChip.addEventListener("click", () => {
    q.archived = !q.archived;
    archivedChip.setAttribute("aria-pressed", String(q.archived));
    q.offset = 0;
    reload();
  });
  const whereChips = h("div.chips.where-chips");
  const filterSlot = h("span");
  const groupSlot = h("span");
  const columnsSlot = h("span");
  const exportSlot = h("span");

  function renderWhere() {
    const extra = [];
    if (q.study) {
      extra.push(h("span.chip.on.filter-chip", { dataset: { key: "study" } }, h("span", h("b", "study"), " = ", q.study),
        h("button.chip-x", { type: "button", title: "Remove filter", onclick: () => { q.study = ""; q.offset = 0; reload(); } }, "×")));
    }
    if (q.tag) {
      extra.push(h("span.chip.on.filter-chip", { dataset: { key: "tag" } }, h("span", h("b", "tag"), " = ", q.tag),
        h("button.chip-x", { type: "button", title: "Remove filter", onclick: () => { q.tag = ""; q.offset = 0; reload(); } }, "×")));
    }
    whereChips.replaceChildren(...extra, ...q.where.map((w, i) => h("span.chip.on.filter-chip", { dataset: { key: w.key } },
      h("span", h("b", w.key), " = ", w.value),
      h("button.chip-x", { type: "button", title: "Remove filter", "aria-label": `remove filter ${w.key}`,
        onclick: () => { q.where.splice(i, 1); q.offset = 0; reload(); } }, "×"))));
  }

  /** The metric summary the table is sorted by, if it is (the grouping's natural metric). */
  function sortedMetric() {
    const col = data && sortColumn(q.sort, data);
    return col && col.startsWith("metric:") && !/\.count$/.test(col) ? col.slice(7) : "";
  }

  function addWhere(key, value) {
    q.where = q.where.filter((w) => w.key !== key);
    q.where.push({ key, value: String(value) });
    q.offset = 0;
    reload();
  }

  function renderTools() {
    const configKeys = data.config_keys;
    const metricKeys = data.metric_keys;
    // add filter popover
    const keySel = h("select#filter-key", { "aria-label": "config key" }, configKeys.map((k) => h("option", { value: k }, k)));
    const valueIn = h("input#filter-value", { type: "text", placeholder: "value", "aria-label": "value" });
    const valueList = h("datalist#filter-values");
    valueIn.setAttribute("list", "filter-values");
    const fillValues = () => {
      const values = [...new Set(data.runs.map((r) => r.config[keySel.value]).filter((v) => v !== undefined && v !== null).map(String))];
      valueList.replaceChildren(...values.slice(0, 50).map((v) => h("option", { value: v })));
    };
    keySel.addEventListener("change", fillValues);
    fillValues();
    const filterPop = popover("+ Filter", h("form.pop-form", {
      onsubmit: (event) => { event.preventDefault(); if (keySel.value && valueIn.value !== "") { filterPop.close(); addWhere(keySel.value, valueIn.value.trim()); } } },
      h("label.field", h("span", "Config key"), keySel),
      h("label.field", h("span", "equals"), valueIn, valueList),
      h("button.btn.primary#filter-apply", { type: "submit" }, "Add filter")), { id: "add-filter", disabled: !configKeys.length });
    filterSlot.replaceChildren(filterPop.root);

    // group by popover
    const checks = configKeys.map((k) => h("label.check", h("input", { type: "checkbox", value: k, checked: q.group.includes(k) }), h("span", k)));
    if (!q.metric) q.metric = sortedMetric() || preferredMetric(metricKeys);
    const metricSel = h("select#group-metric", { "aria-label": "metric" },
      metricKeys.filter((k) => !k.startsWith("probe/")).flatMap((k) => ["last", "min", "max"].map((s) =>
        h("option", { value: s === "last" ? k : `${k}.${s}` }, s === "last" ? k : `${k} (${s})`))));
    metricSel.value = q.metric;
    const groupPop = popover(q.group.length ? `Grouped by ${q.group.join(", ")}` : "Group by", h("form.pop-form", {
      onsubmit: (event) => {
        event.preventDefault();
        q.group = checks.map((c) => c.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
        q.metric = metricSel.value;
        groupPop.close();
        reload();
      } },
      h("div.pop-title", "Group runs by config keys"),
      h("div.check-list", checks.length ? checks : h("p.muted", "No config keys.")),
      h("label.field", h("span", "Aggregate metric"), metricSel),
      h("div.pop-actions",
        h("button.btn.ghost", { type: "button", onclick: () => { q.group = []; groupPop.close(); reload(); } }, "Ungroup"),
        h("button.btn.primary#group-apply", { type: "submit" }, "Apply"))), { id: "group-by", active: q.group.length > 0 });
    groupSlot.replaceChildren(groupPop.root);

    // columns
    if (!columns) {
      columns = [...varyingKeys(data.runs, configKeys, 5).map((k) => `config:${k}`),
        ...defaultMetrics(metricKeys, 4).map((k) => `metric:${k}`)];
    }
    exportSlot.replaceChildren(exportMenu(() => ({ params: params(), sort: q.sort, desc: q.desc,
      columns, group: q.group, metric: q.metric })).root);
    columnsSlot.replaceChildren(columnChooser(configKeys, metricKeys, columns, (next) => {
      columns = next;
      localStorage.setItem(`tympan.columns.${state.project}`, JSON.stringify(columns));
      renderTable();
    }).root);
  }

  // ---- table
  function sortKeyOf(col) {
    if (col.startsWith("config:")) return col;
    if (col.startsWith("metric:")) return col;
    return col;
  }

  function header(label, sortKey, { num = false, title = label } = {}) {
    const active = sortKey && q.sort === sortKey;
    const th = h("th", { class: [num ? "num" : "", sortKey ? "sortable" : "", active ? "sorted" : ""].join(" "),
      title: sortKey ? `Sort by ${title}` : title, dataset: { sort: sortKey || "" },
      "aria-sort": active ? (q.desc ? "descending" : "ascending") : undefined },
      h("span.th-label", label), active ? h("span.sort-arrow", q.desc ? "↓" : "↑") : null);
    if (sortKey) {
      th.addEventListener("click", () => {
        if (q.sort === sortKey) q.desc = !q.desc; else { q.sort = sortKey; q.desc = sortKey === "started_at"; }
        q.offset = 0;
        reload();
      });
    }
    return th;
  }

  function metricCell(run, col) {
    const spec = col.slice("metric:".length);
    const m = spec.match(/^(.*)\.(last|min|max|count)$/);
    const key = m ? m[1] : spec, summary = m ? m[2] : "last";
    const s = run.metrics[key];
    return h("td.num", s ? fmt(s[summary]) : "–");
  }

  function configCell(run, col) {
    const key = col.slice("config:".length);
    const value = run.config[key];
    if (value === undefined) return h("td.muted", "–");
    const text = typeof value === "object" ? JSON.stringify(value) : fmt(value);
    return h("td", { class: typeof value === "number" ? "num" : "" },
      h("button.cell-filter", { type: "button", title: `Filter: ${key} = ${text}`, onclick: () => addWhere(key, value) }, text));
  }

  function colLabel(col) {
    if (col.startsWith("config:")) return col.slice(7);
    const spec = col.slice(7);
    const m = spec.match(/^(.*)\.(last|min|max|count)$/);
    return m ? `${m[1]} (${m[2]})` : spec;
  }

  /** Pin or unpin, reorder or hide columns: kept per project (column-order.js). */
  function setColumns(next) {
    columns = next;
    localStorage.setItem(`tympan.columns.${state.project}`, JSON.stringify(columns));
    syncUrl();
    renderTools();
    renderTable();
  }

  function setPins(next) {
    pins = next;
    savePins(state.project, pins);
    renderTable();
  }

  /** A config or metric column's header: sorts on click, ⋮ menu, draggable within its kind. */
  function columnHeader(c, group) {
    const label = colLabel(c);
    const th = header(label, sortKeyOf(c), { num: c.startsWith("metric:"), title: label });
    const pinned = pins.includes(c);
    if (pinned) th.classList.add("pinned");
    const step = (n) => { const next = moved(columns, group, c, n); return next === columns ? null : () => setColumns(next); };
    const left = step(-1), right = step(1);
    th.append(columnMenu(label, [
      { id: "pin", label: pinned ? "Unpin" : "Pin to the left",
        run: () => { if (!columns.includes(c)) setColumns([...columns, c]); setPins(pinned ? pins.filter((p) => p !== c) : [...pins, c]); } },
      { id: "left", label: "Move left", run: left, disabled: !left },
      { id: "right", label: "Move right", run: right, disabled: !right },
      { id: "hide", label: "Hide column", disabled: !columns.includes(c),
        run: () => { pins = pins.filter((p) => p !== c); savePins(state.project, pins); setColumns(columns.filter((x) => x !== c)); } },
    ]));
    if (columns.includes(c)) draggable(th, c, (from, to) => setColumns(placed(columns, from, to)));
    return th;
  }

  function fixedHeader(c) {
    const th = header(c.label, c.sort, { num: c.num });
    if (c.id !== "name") return th;
    const pinned = pins.includes("name");
    if (pinned) th.classList.add("pinned");
    th.append(columnMenu("Name", [{ id: "pin", label: pinned ? "Unpin" : "Pin to the left",
      run: () => setPins(pinned ? pins.filter((p) => p !== "name") : ["name", ...pins]) }]));
    return th;
  }

  function renderTable() {
    const runs = data.runs;
    const allOnPage = runs.length > 0 && runs.every((r) => selected.has(r.id));
    const selectAll = h("input#select-page", { type: "checkbox", checked: allOnPage, "aria-label": "select all on page",
      onchange: (event) => { runs.forEach((r) => (event.target.checked ? selected.add(r.id) : selected.delete(r.id))); renderTable(); syncUrl(); } });
    // pinned columns come right after the name; then the column the table is sorted by (in
    // view at any width, shown even when the column chooser left it out)
    const sorted = sortColumn(q.sort, data);
    const pinnedCols = columns.filter((c) => pins.includes(c));
    const isSorted = (c) => sorted && (c === sorted || c === sorted.replace(/\.last$/, ""));
    const rest = columns.filter((c) => !pins.includes(c) && !isSorted(c));
    const sortedCols = sorted && !pinnedCols.some(isSorted) ? [sorted] : [];
    const metricCols = rest.filter((c) => c.startsWith("metric:"));
    const configCols = rest.filter((c) => c.startsWith("config:"));
    const cell = (run, c) => (c.startsWith("config:") ? configCell(run, c) : metricCell(run, c));
    const [nameCol, ...otherFixed] = FIXED;
    const thead = h("thead",
      h("tr.group-row", h("th", { colspan: 2 }),
        pinnedCols.length ? h("th.col-group", { colspan: pinnedCols.length }, "Pinned") : null,
        h("th", { colspan: otherFixed.length + 1 }),
        sortedCols.length ? h("th.col-group", "Sorted by") : null,
        configCols.length ? h("th.col-group", { colspan: configCols.length }, "Config") : null,
        metricCols.length ? h("th.col-group.num", { colspan: metricCols.length }, "Metrics") : null),
      h("tr", h("th.check.pinned", selectAll),
        fixedHeader(nameCol),
        pinnedCols.map((c) => columnHeader(c, pinnedCols)),
        otherFixed.map(fixedHeader),
        h("th", "Tags"),
        sortedCols.map((c) => columnHeader(c, sortedCols)),
        configCols.map((c) => columnHeader(c, configCols)),
        metricCols.map((c) => columnHeader(c, metricCols))));
    const nested = nestRuns(runs);
    const byId = new Map(nested.map((e) => [e.run.id, e]));
    const tbody = h("tbody", nested.filter((e) => shownNested(e, byId, expanded)).map(({ run, depth, children }) => {
      const box = h("input.row-check", { type: "checkbox", checked: selected.has(run.id), "aria-label": `select ${run.name}`,
        onchange: (event) => { if (event.target.checked) selected.add(run.id); else selected.delete(run.id); updateSelection(); syncUrl(); tr.classList.toggle("selected", event.target.checked); } });
      const toggle = children ? h("button.nest-toggle", { type: "button", "aria-expanded": String(expanded.has(run.id)),
        title: `${expanded.has(run.id) ? "Hide" : "Show"} its ${children} child run${children === 1 ? "" : "s"}`,
        onclick: () => { if (expanded.has(run.id)) expanded.delete(run.id); else expanded.add(run.id); renderTable(); } },
        `${expanded.has(run.id) ? "▾" : "▸"} ${children}`) : null;
      const archived = run.archived_at !== null && run.archived_at !== undefined;
      const tr = h("tr", { dataset: { id: run.id, parent: depth ? run.parent_id : "" },
        class: [selected.has(run.id) ? "selected" : "", depth ? "child-row" : "", archived ? "archived" : ""].join(" ").trim() },
        h("td.check", box),
        h("td.name", { style: depth ? { paddingLeft: `${8 + depth * 18}px` } : undefined },
          depth ? h("span.child-mark", { title: "child run" }, "↳ ") : null,
          link(`/runs/${run.id}`, run.name), toggle, h("span.id", run.id.slice(0, 8)),
          archived ? h("span.badge.archived-badge", { title: `archived ${fmtTime(run.archived_at)}` }, "archived") : null,
          !state.project ? h("span.project", run.project) : null,
          writeButton("button.row-edit", "", () => editRunDialog(run.id, { onChange: reload }),
            { title: `Edit ${run.name}: name, tags, note, archive or delete`, "aria-label": `edit ${run.name}` })),
        pinnedCols.map((c) => cell(run, c)),
        h("td", statusBadge(run.status)),
        h("td.nowrap", { title: fmtTime(run.started_at) }, fmtAgo(run.started_at)),
        h("td.num", fmtDuration(run.duration)),
        h("td.tags", (run.tags || []).map((t) => h("button.tag", { type: "button", title: `Filter: tag ${t}`,
          onclick: () => { q.tag = t; q.offset = 0; reload(); } }, t)), canWrite() ? tagAdder(run, reload) : null),
        sortedCols.map((c) => cell(run, c)),
        configCols.map((c) => configCell(run, c)),
        metricCols.map((c) => metricCell(run, c)));
      return tr;
    }));
    const grid = h("table.grid.runs-table", thead, tbody);
    table.replaceChildren(runs.length ? grid
      : h("div.empty-state", h("p", data.total === 0 && !q.q && !q.where.length && !q.status.length
        ? "No runs yet. Log one with tympan.init(...)." : "No run matches these filters.")));
    if (runs.length) stickPinned(grid);
    countEl.textContent = `${fmt(data.total)} run${data.total === 1 ? "" : "s"}`;
    renderPager();
    updateSelection();
  }

  function updateSelection() {
    compareBtn.disabled = plotBtn.disabled = selected.size < 2;
    compareBtn.textContent = selected.size ? `Compare ${selected.size}` : "Compare";
    compareBtn.title = selected.size < 2 ? "Select at least two runs" : "";
    clearSel.hidden = selected.size === 0;
    manage.update();
  }

  function renderPager() {
    const from = data.total ? q.offset + 1 : 0, to = Math.min(q.offset + q.limit, data.total);
    const size = h("select.page-size", { "aria-label": "rows per page" }, PAGE_SIZES.map((n) => h("option", { value: n }, `${n} / page`)));
    size.value = q.limit;
    size.addEventListener("change", () => { q.limit = Number(size.value); q.offset = 0; reload(); });
    pager.replaceChildren(h("span.muted", `${fmt(from)}–${fmt(to)} of ${fmt(data.total)}`),
      h("button.btn.small", { type: "button", disabled: q.offset === 0, onclick: () => { q.offset = Math.max(0, q.offset - q.limit); reload(); } }, "‹ Prev"),
      h("button.btn.small", { type: "button", disabled: to >= data.total, onclick: () => { q.offset += q.limit; reload(); } }, "Next ›"),
      size);
    pager.hidden = data.total <= PAGE_SIZES[0] && q.offset === 0;
  }

  let ticket = 0;
  async function reload() {
    const mine = ++ticket;
    syncUrl();
    renderWhere();
    root.classList.add("busy");
    const sort = q.sort ? { sort: q.sort, desc: q.desc ? "true" : "false" } : {};
    const runsReq = api.get("runs", { ...params(), ...sort, limit: q.limit, offset: q.offset }, { quiet: true });
    let result, groups;
    try {
      if (q.group.length && !q.metric) {  // a linked grouping without a metric: the usual one
        result = await runsReq;
        q.metric = sortedMetric() || preferredMetric(result.metric_keys);
        syncUrl();
      }
      const groupsReq = q.group.length ? api.get("runs/groups", { ...params(), by: q.group.join(","), metric: q.metric || undefined }, { quiet: true }) : null;
      [result, groups] = await Promise.all([result ?? runsReq, groupsReq]);
    } catch (err) {
      if (mine !== ticket) return;
      if (err.status !== 400) { showError(err); throw err; }
      // a query that does not read, or names a key no run has: say so under the box, keep the table
      queryError.textContent = err.message;
      queryError.hidden = false;
      search.setAttribute("aria-invalid", "true");
      return;
    } finally {
      if (mine === ticket) root.classList.remove("busy");
    }
    if (mine !== ticket) return;
    queryError.hidden = true;
    search.removeAttribute("aria-invalid");
    data = result;
    manage.seen(data.runs);
    renderTools();
    if (groups) {
      groupsSection.hidden = false;
      groupsSection.replaceChildren(groupsView(groups, { selected, metricKeys: data.metric_keys, onSelect: () => { renderTable(); syncUrl(); } }));
    } else {
      groupsSection.hidden = true;
      groupsSection.replaceChildren();
    }
    renderTable();
    watch();
  }

  // Live: the table follows running runs (every 5 s), and new runs or projects appear
  // without a reload (the project list is asked every 15 s; the table reloads when it
  // changed). Nothing is asked while the tab is hidden or a menu is open.
  let liveTimer = null;
  let seen = null;
  const signature = (projects) => JSON.stringify(projects);
  api.get("projects", undefined, { quiet: true }).then(({ projects }) => { seen ??= signature(projects); }).catch(() => {});
  function watch() {
    clearTimeout(liveTimer);
    const running = data && data.runs.some((r) => r.status === "running");
    liveTimer = setTimeout(async () => {
      if (!document.body.contains(root)) return;
      if (document.hidden || document.querySelector(".pop-panel:not([hidden]), .col-menu, .dialog-backdrop, .runs-table .tag-add")) { watch(); return; }
      let projects;
      try { ({ projects } = await api.get("projects", undefined, { quiet: true })); } catch { watch(); return; }
      if (!document.body.contains(root)) return;
      const now = signature(projects);
      const changed = seen !== null && now !== seen;
      seen = now;
      if (changed) document.dispatchEvent(new CustomEvent("tympan:projects", { detail: projects }));
      if (changed || running) reload(); else watch();
    }, liveSeconds(running ? 5 : 15) * 1000);
  }

  onLeave(() => clearTimeout(liveTimer));
  const groupsSection = h("div.groups-section", { hidden: true });
  root.append(
    h("div.page-head",
      h("div.title-block", h("h1", "Runs"), countEl),
      h("div.head-actions", clearSel, manage.archive, manage.remove, plotBtn, compareBtn)),
    h("div.toolbar.filter-bar", search, statusChips, archivedChip, filterSlot, groupSlot, h("span.spacer"), columnsSlot, exportSlot),
    queryError,
    whereChips,
    groupsSection,
    table,
    pager);
  await reload();
  return root;
}
