// Small DOM and formatting helpers shared by every page.

/** h("div.card#id", {onclick, title, ...}, ...children): build an element. */
export function h(tag, attrs, ...children) {
  const [name, ...rest] = tag.split(/(?=[.#])/);
  const el = document.createElement(name || "div");
  for (const part of rest) {
    if (part.startsWith(".")) el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** A number for display: tabular, short, never "NaN" surprises. */
export function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "string") {
    if (value === "nan" || value === "NaN") return "NaN";
    if (value === "inf" || value === "Infinity") return "∞";
    if (value === "-inf" || value === "-Infinity") return "−∞";
    return value;
  }
  if (typeof value === "boolean") return String(value);
  if (typeof value !== "number") return String(value);
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
  if (Number.isInteger(value) && Math.abs(value) < 1e9) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(Math.max(1, digits - 2));
  return Number(value.toPrecision(digits)).toString();
}

export function fmtSigned(value, digits = 3) {
  const text = fmt(value, digits);
  return typeof value === "number" && value > 0 ? `+${text}` : text.replace(/^-/, "−");
}

/** Seconds -> "1h 02m", "3m 05s", "12.3s". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
  if (m < 60) return `${m}m ${String(s).padStart(2, "0")}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

/** Unix seconds (or ISO string) -> "2026-11-23 14:46". */
export function fmtTime(value) {
  if (value === null || value === undefined || value === "") return "–";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** Seconds since now, e.g. "5 min ago". */
export function fmtAgo(value) {
  if (value === null || value === undefined) return "";
  const t = typeof value === "number" ? value * 1000 : Date.parse(value);
  const s = (Date.now() - t) / 1000;
  if (!Number.isFinite(s)) return "";
  if (s < 90) return "just now";
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function statusBadge(status) {
  return h(`span.badge.status-${status || "unknown"}`, { title: status }, status || "unknown");
}

/** Colours for series: distinguishable, colour-blind friendly first (Okabe–Ito / Tableau). */
export const PALETTE = ["#2563eb", "#e8590c", "#0ca678", "#d6336c", "#7048e8", "#a07a00",
  "#1098ad", "#e03131", "#5c940d", "#862e9c", "#495057", "#f08c00"];

export function colour(i) { return PALETTE[i % PALETTE.length]; }

export function empty(text) { return h("p.empty", text); }

/** Escape-free key/value table. */
export function kvTable(entries, cls = "kv") {
  return h(`table.${cls}`, h("tbody", entries.map(([k, v]) =>
    h("tr", h("th", k), h("td", v instanceof Node ? v : fmt(v))))));
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

export function link(href, ...children) {
  return h("a", { href, "data-link": "" }, ...children);
}
