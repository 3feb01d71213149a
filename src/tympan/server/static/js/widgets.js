// Small reusable widgets: a popover button and the runs table's column chooser.
import { h, debounce } from "./dom.js";

/** A button that opens a floating panel under it; closes on outside click or Escape. */
export function popover(label, content, { id, disabled = false, active = false, align = "left" } = {}) {
  const button = h("button.btn.pop-button", { type: "button", id, disabled, "aria-expanded": "false",
    class: active ? "btn pop-button active" : "btn pop-button" }, label, h("span.caret", "▾"));
  const panel = h("div.pop-panel", { hidden: true, class: `pop-panel align-${align}` }, content);
  const root = h("div.pop", button, panel);
  const onDoc = (event) => { if (!root.contains(event.target)) close(); };
  const onKey = (event) => { if (event.key === "Escape") close(); };
  function open() {
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    document.addEventListener("mousedown", onDoc);
    document.addEventListener("keydown", onKey);
    const first = panel.querySelector("input, select, button");
    if (first) first.focus();
  }
  function close() {
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    document.removeEventListener("mousedown", onDoc);
    document.removeEventListener("keydown", onKey);
  }
  button.addEventListener("click", () => (panel.hidden ? open() : close()));
  return { root, open, close, panel, button };
}

/** Choose which config and metric-summary columns the runs table shows. */
export function columnChooser(configKeys, metricKeys, columns, onChange) {
  const chosen = new Set(columns);
  const filter = h("input.search", { type: "search", placeholder: "Find a key…", "aria-label": "find a column" });
  const list = h("div.column-list");
  const summaries = ["last", "min", "max"];
  function render() {
    const needle = filter.value.trim().toLowerCase();
    const match = (k) => !needle || k.toLowerCase().includes(needle);
    const row = (id, text, extra) => h("label.check", { dataset: { column: id } },
      h("input", { type: "checkbox", checked: chosen.has(id), onchange: (event) => {
        if (event.target.checked) chosen.add(id); else chosen.delete(id);
        onChange(ordered());
      } }), h("span", text), extra);
    list.replaceChildren(
      h("div.pop-title", "Config"),
      ...configKeys.filter(match).map((k) => row(`config:${k}`, k)),
      h("div.pop-title", "Metrics"),
      ...metricKeys.filter(match).flatMap((k) => summaries.map((s) => {
        const id = s === "last" ? `metric:${k}` : `metric:${k}.${s}`;
        return row(id, s === "last" ? k : `${k}`, h("span.summary-tag", s));
      })));
  }
  function ordered() {
    // keep the current order, append newly chosen ones
    const kept = columns.filter((c) => chosen.has(c));
    const added = [...chosen].filter((c) => !columns.includes(c));
    columns = [...kept, ...added];
    return columns;
  }
  filter.addEventListener("input", debounce(render, 100));
  render();
  const pop = popover(`Columns (${columns.length})`, h("div.column-chooser", filter, list,
    h("div.pop-actions",
      h("button.btn.ghost.small", { type: "button", onclick: () => { chosen.clear(); onChange(ordered()); render(); } }, "None"))),
  { id: "columns", align: "right" });
  return pop;
}
