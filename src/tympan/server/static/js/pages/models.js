// The model registry: the models list, and one model's versions, aliases and alias history
// (a swimlane per alias over time, then every event with who, why and the evidence).
import { api, enc } from "../api.js";
import { h, fmtTime, fmtAgo, fmtBytes, link, empty, colour } from "../dom.js";
import { state } from "../state.js";

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function count(n) { return n === null || n === undefined ? "–" : n.toLocaleString("en-US"); }

export function aliasBadges(aliases, model, protectedAliases = []) {
  return aliases.map((alias) => h(`span.badge.alias${protectedAliases.includes(alias) ? ".protected" : ""}`,
    { title: protectedAliases.includes(alias) ? "protected: moved only by an admin or a passed gate" : "alias", dataset: { alias } },
    `@${alias}`));
}

export function evidenceLink(evidence) {
  if (!evidence) return h("span.muted", "–");
  if (evidence.kind === "url") return h("a", { href: evidence.url, target: "_blank", rel: "noopener noreferrer" }, evidence.url);
  if (evidence.kind === "study") return link(`/studies/${enc(evidence.name)}`, `study ${evidence.name}`);
  const label = `${evidence.kind} ${evidence.name || evidence.id}`;
  return link(`/runs/${enc(evidence.id)}`, label);
}

export function changeText(e) {
  if (e.action === "protect" || e.action === "unprotect") return `${e.action}ed`;
  if (e.action === "delete") return `deleted (was v${e.from_version})`;
  if (e.action === "set") return `set to v${e.to_version}`;
  return `v${e.from_version} → v${e.to_version}`;
}

export async function modelsPage() {
  document.title = "Models · tympan";
  const { models } = await api.get("models", { project: state.project });
  const body = models.length ? h("div.table-wrap", h("table.grid.models-table",
    h("thead", h("tr", h("th", "model"), h("th", "project"), h("th.num", "versions"), h("th.num", "latest"), h("th", "aliases"), h("th", "updated"))),
    h("tbody", models.map((m) => h("tr", { dataset: { name: m.name } },
      h("td.name", link(`/models/${enc(m.name)}`, m.name), m.description ? h("div.muted.desc", m.description) : null),
      h("td", m.project), h("td.num", String(m.versions)),
      h("td.num", m.latest ? link(`/models/${enc(m.name)}/versions/${m.latest}`, `v${m.latest}`) : "–"),
      h("td", Object.entries(m.aliases).map(([alias, v]) => h("span.alias-pair", aliasBadges([alias], m.name, m.protected), ` v${v}`))),
      h("td.nowrap", { title: fmtTime(m.updated_at) }, fmtAgo(m.updated_at)))))))
    : h("div.empty-state", h("p", "No models registered yet. Register a run's checkpoint with "), h("code", "tympan model register RUN --name NAME"), h("p", "."));
  return h("div.models-page", h("div.page-head", h("div.title-block", h("h1", "Models"), h("span.count-label", `${models.length}`))), body);
}

/** One lane per alias: which version it named from each event to the next (or now). */
function aliasTimeline(events) {
  const moves = events.filter((e) => ["set", "move", "delete"].includes(e.action));
  if (!moves.length) return empty("No alias has been set yet.");
  const aliases = [...new Set(moves.map((e) => e.alias))];
  const start = moves[0].at;
  const end = Math.max(Date.now() / 1000, moves[moves.length - 1].at + 1);
  const width = 900, lane = 30, left = 110, right = 16, top = 8;
  const x = (t) => left + ((t - start) / (end - start)) * (width - left - right);
  const versions = [...new Set(moves.map((e) => e.to_version).filter((v) => v !== null))].sort((a, b) => a - b);
  const fill = (v) => colour(versions.indexOf(v));
  const lanes = aliases.map((alias, i) => {
    const own = moves.filter((e) => e.alias === alias);
    const y = top + i * lane;
    const segments = own.map((e, j) => {
      if (e.to_version === null) return null;
      const until = j + 1 < own.length ? own[j + 1].at : end;
      const x0 = x(e.at), x1 = Math.max(x(until), x0 + 3);
      return svg("g", { class: "segment", "data-version": e.to_version },
        svg("rect", { x: x0, y: y + 4, width: x1 - x0, height: lane - 10, rx: 3, fill: fill(e.to_version) },
          svg("title", `@${alias} = v${e.to_version} from ${fmtTime(e.at)}${j + 1 < own.length ? ` to ${fmtTime(until)}` : " (now)"}: ${e.reason || "no reason given"} (${e.actor}, ${e.authority})`)),
        x1 - x0 > 28 ? svg("text", { x: x0 + 6, y: y + lane / 2 + 4, class: "segment-label" }, `v${e.to_version}`) : null);
    });
    return svg("g", { class: "lane", "data-alias": alias },
      svg("text", { x: 0, y: y + lane / 2 + 4, class: "lane-label" }, `@${alias}`),
      svg("line", { x1: left, x2: width - right, y1: y + lane / 2, y2: y + lane / 2, class: "lane-axis" }), segments);
  });
  const height = top + aliases.length * lane + 22;
  const axis = svg("g", { class: "time-axis" },
    svg("text", { x: left, y: height - 4 }, fmtTime(start)), svg("text", { x: width - right, y: height - 4, "text-anchor": "end" }, "now"));
  return h("div.timeline-wrap", svg("svg", { class: "alias-timeline", viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": "alias history timeline" }, lanes, axis));
}

export function eventsTable(events, model) {
  return h("table.grid.events-table",
    h("thead", h("tr", h("th", "when"), h("th", "alias"), h("th", "change"), h("th", "by"), h("th", "authority"), h("th", "reason"), h("th", "evidence"))),
    h("tbody", [...events].reverse().map((e) => h("tr", { dataset: { action: e.action, alias: e.alias } },
      h("td.nowrap", fmtTime(e.at)), h("td", h("span.badge.alias", `@${e.alias}`)),
      h("td", e.to_version ? link(`/models/${enc(model)}/versions/${e.to_version}`, changeText(e)) : changeText(e)),
      h("td", e.actor), h("td", h(`span.badge.authority-${e.authority}`, e.authority)),
      h("td", e.reason || h("span.muted", "no reason given")), h("td", evidenceLink(e.evidence))))));
}

export async function modelPage({ params }) {
  const name = params.name;
  const [model, { events }] = await Promise.all([api.get(`models/${enc(name)}`), api.get(`models/${enc(name)}/history`)]);
  document.title = `${model.name} · tympan`;
  const versions = h("table.grid.versions-table",
    h("thead", h("tr", h("th.num", "version"), h("th", "aliases"), h("th", "run"), h("th.num", "parameters"), h("th.num", "size"), h("th", "registered"), h("th", "by"), h("th", "description"))),
    h("tbody", model.versions.map((v) => h("tr", { dataset: { version: v.version } },
      h("td.num", link(`/models/${enc(name)}/versions/${v.version}`, `v${v.version}`)),
      h("td", aliasBadges(v.aliases, name, model.protected)),
      h("td", link(`/runs/${enc(v.run_id)}`, (v.lineage.run || {}).name || v.run_id)),
      h("td.num", count(v.parameters)), h("td.num", fmtBytes(v.size)),
      h("td.nowrap", { title: fmtTime(v.created_at) }, fmtAgo(v.created_at)), h("td", v.created_by),
      h("td", v.description || h("span.muted", "–"))))));
  return h("div.model-page",
    h("div.page-head", h("div.title-block",
      h("div.crumbs", link("/models", "Models"), h("span", "/"), h("span", model.project)),
      h("h1", model.name, h("span.count-label", ` ${model.versions.length} version${model.versions.length === 1 ? "" : "s"}`)),
      h("p.lead", "Aliases: ", Object.keys(model.aliases).length ? Object.entries(model.aliases).map(([a, v]) =>
        h("span.alias-pair", aliasBadges([a], name, model.protected), " → ", link(`/models/${enc(name)}/versions/${v}`, `v${v}`), " ")) : "none",
        model.protected.length ? h("span.muted", ` · protected: ${model.protected.map((a) => `@${a}`).join(", ")}`) : null)),
      h("div.head-actions", link(`/models/${enc(name)}/loop`, h("span.btn#loop-link", "Continuous training")))),
    h("section.card", h("header.card-head", h("h2", "Versions")), h("div.card-body.table-wrap", versions)),
    h("section.card", h("header.card-head", h("h2", "Alias history"), h("span.muted", "every change, append-only")),
      h("div.card-body", aliasTimeline(events), h("div.table-wrap", events.length ? eventsTable(events, name) : null))));
}
