// Logged tables (run.log_table): sortable, filterable and paged; each key browsable by step on
// the run page, and one key and step of every run, one under another, on the compare page.
import { api, enc } from "./api.js";
import { h, fmt, empty, debounce } from "./dom.js";
import { commonStepPicker, keyBrowser } from "./step-nav.js";

const PAGE = 100;
const NON_FINITE = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };

function cellText(value, type) {
  if (value === null || value === undefined) return "";
  if (type === "json" && typeof value === "object") return JSON.stringify(value);
  return fmt(value, 6);
}

/** Sort order: numbers (NaN last) for number columns, text otherwise; empty cells last. */
function comparer(index, type, descending) {
  const sign = descending ? -1 : 1;
  const number = (v) => (typeof v === "string" ? NON_FINITE[v] : v);
  return (a, b) => {
    const x = a[index], y = b[index];
    const xMissing = x === null || x === undefined, yMissing = y === null || y === undefined;
    if (xMissing || yMissing) return xMissing - yMissing;
    if (type === "number") {
      const p = number(x), q = number(y);
      if (Number.isNaN(p) || Number.isNaN(q)) return Number.isNaN(p) - Number.isNaN(q);
      return sign * (p - q);
    }
    if (type === "bool") return sign * (Number(x) - Number(y));
    return sign * cellText(x, type).localeCompare(cellText(y, type), undefined, { numeric: true });
  };
}

/** One table: click a column to sort it (again: reverse), type to filter rows. */
export function tableView(table) {
  const state = { sort: null, desc: false, needle: "", page: 0 };
  const filter = h("input.search", { type: "search", placeholder: `Filter ${table.rows.length} rows…`, "aria-label": "filter rows" });
  const head = h("thead");
  const body = h("tbody");
  const pager = h("div.pager");
  const render = () => {
    let rows = table.rows;
    if (state.needle) rows = rows.filter((row) => row.some((v, i) => cellText(v, table.types[i]).toLowerCase().includes(state.needle)));
    if (state.sort !== null) rows = [...rows].sort(comparer(state.sort, table.types[state.sort], state.desc));
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    head.replaceChildren(h("tr", table.columns.map((name, i) => {
      const active = state.sort === i;
      const numeric = table.types[i] === "number";
      return h("th.sortable", { class: `sortable${numeric ? " num" : ""}${active ? " sorted" : ""}`, title: `Sort by ${name}`,
        dataset: { column: name }, "aria-sort": active ? (state.desc ? "descending" : "ascending") : undefined,
        onclick: () => { state.desc = active ? !state.desc : false; state.sort = i; render(); } },
      name, active ? h("span.sort-arrow", state.desc ? "↓" : "↑") : null);
    })));
    body.replaceChildren(...rows.slice(state.page * PAGE, (state.page + 1) * PAGE).map((row) => h("tr",
      row.map((v, i) => h(table.types[i] === "number" ? "td.num" : "td", cellText(v, table.types[i]))))));
    pager.replaceChildren(...[
      h("span.muted", rows.length === table.rows.length ? `${rows.length} rows` : `${rows.length} of ${table.rows.length} rows`),
      pages > 1 ? h("span.page-nav",
        h("button.btn.icon", { type: "button", title: "Previous page", disabled: state.page === 0, onclick: () => { state.page -= 1; render(); } }, "‹"),
        h("span", `page ${state.page + 1} of ${pages}`),
        h("button.btn.icon", { type: "button", title: "Next page", disabled: state.page >= pages - 1, onclick: () => { state.page += 1; render(); } }, "›")) : null,
    ].filter(Boolean));
  };
  filter.addEventListener("input", debounce(() => { state.needle = filter.value.trim().toLowerCase(); state.page = 0; render(); }, 120));
  render();
  return h("div.logged-table", { dataset: { key: table.key, step: table.step } },
    h("div.toolbar", table.rows.length > 10 ? filter : null, table.caption ? h("span.caption", table.caption) : null, pager),
    table.columns.length ? h("div.table-wrap", h("table.grid.compact", head, body)) : empty("The table has no columns."));
}

const cache = new Map();

function loadTable(runId, tableId) {
  const id = `${runId}|${tableId}`;
  if (!cache.has(id)) cache.set(id, api.get(`runs/${enc(runId)}/tables/${enc(tableId)}`));
  return cache.get(id);
}

/** The run page's Tables tab. */
export function tablesTab(run) {
  const count = run.tables ? run.tables.count : 0;
  return { id: "tables", label: "Tables", count, render: async () => {
    if (!count) return empty("No tables were logged (run.log_table).");
    const { tables } = await api.get(`runs/${enc(run.id)}/tables`);
    return keyBrowser(tables, async (atStep) => (await Promise.all(atStep.map((t) => loadTable(run.id, t.table_id)))).map(tableView));
  } };
}

/** The compare page's Tables tab: every run's table of one key at one step. */
export function tablesCompareTab(data, colours) {
  const entries = data.tables || [];
  return { id: "tables", label: "Tables", count: new Set(entries.map((a) => a.key)).size, render: () => {
    if (!entries.length) return empty("These runs have no table key and step in common.");
    const holder = h("div.table-compare");
    const picker = commonStepPicker(entries, "table", async (entry) => {
      const shown = await Promise.all(data.runs.map((r, i) => (entry.samples[i] === null ? null : loadTable(r.id, entry.samples[i]))));
      holder.replaceChildren(...data.runs.map((r, i) => h("section.media-key", { dataset: { run: r.id } },
        h("div.media-key-head", h("h3", h("i.swatch", { style: { background: colours[i] } }), r.name)),
        shown[i] ? tableView(shown[i]) : h("p.muted", `No ${entry.key} at step ${fmt(entry.step)}`))));
    });
    picker.show();
    return h("div.media-compare", picker.root, holder);
  } };
}
