// Tabs whose choice lives in the URL (?tab=...), rendered lazily on first open.
import { h } from "./dom.js";

export function tabs(items, { initial, onChange = () => {} } = {}) {
  // items: [{id, label, count?, render: () => Node|Promise<Node>}]
  const panels = new Map();
  const bar = h("div.tabs", { role: "tablist" });
  const body = h("div.tab-body");
  const buttons = new Map();
  async function show(id) {
    const item = items.find((t) => t.id === id) || items[0];
    for (const [tid, b] of buttons) {
      b.classList.toggle("active", tid === item.id);
      b.setAttribute("aria-selected", String(tid === item.id));
    }
    for (const [, panel] of panels) panel.hidden = true;
    if (!panels.has(item.id)) {
      const panel = h("div.tab-panel", { role: "tabpanel", dataset: { tab: item.id } }, h("div.loading-inline", "Loading…"));
      panels.set(item.id, panel);
      body.append(panel);
      Promise.resolve(item.render()).then((node) => panel.replaceChildren(node),
        (error) => panel.replaceChildren(h("p.empty", error.message)));
    }
    panels.get(item.id).hidden = false;
    onChange(item.id);
  }
  for (const item of items) {
    const b = h("button.tab", { type: "button", role: "tab", dataset: { tab: item.id }, onclick: () => show(item.id) },
      item.label, item.count !== undefined && item.count !== null ? h("span.tab-count", String(item.count)) : null);
    buttons.set(item.id, b);
    bar.append(b);
  }
  show(initial);
  return { root: h("div.tabbed", bar, body), show };
}
