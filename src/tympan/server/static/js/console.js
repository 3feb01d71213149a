// The run page's Console tab: what the script printed (console.log), as a terminal showed it.
import { apiUrl, enc } from "./api.js";
import { h, empty, debounce } from "./dom.js";

export const CONSOLE_ARTIFACT = "console.log";
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;

/** Lines as a terminal leaves them: colour codes removed, and a line redrawn with carriage
 *  returns (progress bars) shown as it was last drawn. */
export function terminalLines(text) {
  return text.replace(ANSI, "").split("\n").map((line) => {
    const parts = line.split("\r").filter((p, i, all) => p !== "" || i === all.length - 1);
    return parts.length ? parts[parts.length - 1] : "";
  });
}

export function consoleTab(run) {
  const artifact = (run.artifacts || []).find((a) => a.path === CONSOLE_ARTIFACT);
  return { id: "console", label: "Console", render: async () => {
    if (!artifact) return empty("No console output was kept (it is off with TYMPAN_CONSOLE=0 or init(console=False)).");
    const href = apiUrl(`runs/${enc(run.id)}/artifacts/${CONSOLE_ARTIFACT}`);
    const response = await fetch(href, { credentials: "same-origin" });
    if (!response.ok) return empty(`The console output did not load (HTTP ${response.status}).`);
    const lines = terminalLines(await response.text());
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
    const filter = h("input.search", { type: "search", placeholder: `Filter ${lines.length} lines…`, "aria-label": "filter lines" });
    const count = h("span.muted");
    const body = h("pre.console-log");
    const render = () => {
      const needle = filter.value.trim().toLowerCase();
      const shown = needle ? lines.filter((l) => l.toLowerCase().includes(needle)) : lines;
      body.textContent = shown.join("\n");
      count.textContent = needle ? `${shown.length} of ${lines.length} lines` : `${lines.length} lines`;
    };
    filter.addEventListener("input", debounce(render, 120));
    render();
    const toEnd = h("button.btn.ghost.small", { type: "button", onclick: () => { body.scrollTop = body.scrollHeight; } }, "Jump to end");
    return h("div.console-view", h("div.toolbar", filter, count, toEnd,
      h("a.btn.ghost.small", { href, download: CONSOLE_ARTIFACT }, "Download")), body);
  } };
}
