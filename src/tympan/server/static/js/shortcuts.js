// The "?" key: a dialog listing every keyboard shortcut of the UI (Esc or ? again closes it).
import { h } from "./dom.js";

export const SHORTCUTS = [
  { keys: ["?"], what: "show or hide this list of shortcuts", where: "every page" },
  { keys: ["/"], what: "jump to the filter box", where: "runs" },
  { keys: ["Space"], what: "play or pause the selected clip", where: "compare · audio" },
  { keys: ["1", "…", "9"], what: "switch the clip you hear (A, B, C…) at the same moment", where: "compare · audio" },
  { keys: ["Double-click"], what: "zoom a chart back out", where: "charts" },
  { keys: ["Esc"], what: "close this list or an open menu", where: "every page" },
];

let dialog = null;

function close() {
  if (!dialog) return;
  dialog.remove();
  dialog = null;
}

function open() {
  dialog = h("div.shortcuts-backdrop#shortcuts", { onclick: (event) => { if (event.target === dialog) close(); } },
    h("div.shortcuts-panel", { role: "dialog", "aria-modal": "true", "aria-labelledby": "shortcuts-title" },
      h("div.shortcuts-head", h("h2#shortcuts-title", "Keyboard shortcuts"),
        h("button.btn.ghost.small", { type: "button", "aria-label": "close", onclick: close }, "×")),
      h("table.grid.shortcuts-table", h("tbody", SHORTCUTS.map((s) => h("tr",
        h("td.keys", s.keys.map((k) => (k === "…" ? h("span.muted", " … ") : h("kbd", k)))),
        h("td", s.what), h("td.muted", s.where)))))));
  document.body.append(dialog);
  dialog.querySelector("button").focus();
}

/** Listen for "?" (outside text fields) and Esc on the whole document, once. */
export function installShortcuts() {
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && dialog) { close(); return; }
    if (event.key !== "?" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest && event.target.closest("input, select, textarea, [contenteditable]")) return;
    event.preventDefault();
    if (dialog) close(); else open();
  });
}
