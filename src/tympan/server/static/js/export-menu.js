// The runs page's Export menu: the runs table (every run the filters match, with the shown
// columns) and, when grouped, the groups with their intervals, as CSV or JSON downloads.
import { apiUrl } from "./api.js";
import { h } from "./dom.js";
import { popover } from "./widgets.js";

/** ``current()`` gives { params, sort, desc, columns, group, metric } at the moment a link is
 *  clicked, so the download is what the page shows then. */
export function exportMenu(current) {
  const item = (id, label, href) => {
    const a = h("a.pop-link", { id, href: "#", download: "" }, label);
    a.addEventListener("click", () => { a.href = href(current()); setTimeout(() => menu.close()); });
    return a;
  };
  const runsHref = (format) => (c) => apiUrl("runs/export", { ...c.params, format, sort: c.sort || undefined,
    desc: c.sort ? String(c.desc) : undefined, columns: c.columns.join(",") });
  const groupsHref = (format) => (c) => apiUrl("runs/groups/export", { ...c.params, format,
    by: c.group.join(","), metric: c.metric || undefined });
  const grouped = current().group.length > 0;
  const menu = popover("Export", h("div.pop-form.export-menu",
    h("div.pop-title", "Runs table (every matching run)"),
    h("div.pop-actions", item("export-runs-csv", "CSV", runsHref("csv")), item("export-runs-json", "JSON", runsHref("json"))),
    grouped ? h("div.pop-title", "Groups (mean, 95% interval)") : null,
    grouped ? h("div.pop-actions", item("export-groups-csv", "CSV", groupsHref("csv")), item("export-groups-json", "JSON", groupsHref("json"))) : null),
  { id: "export", align: "right" });
  return menu;
}
