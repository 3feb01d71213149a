// A layer × step heat map on canvas: one row per layer, one column per step bucket, colour
// by value (per-row or global scale), event markers, hover tooltip.
import { h, fmt } from "./dom.js";

// a perceptually ordered ramp (dark blue -> teal -> yellow), interpolated
const STOPS = [[0, [36, 30, 78]], [0.25, [41, 88, 140]], [0.5, [34, 146, 140]], [0.75, [121, 196, 92]], [1, [247, 228, 74]]];

export function rampColour(t) {
  if (!Number.isFinite(t)) return "rgb(222,226,230)";
  t = Math.max(0, Math.min(1, t));
  for (let i = 1; i < STOPS.length; i++) {
    if (t <= STOPS[i][0]) {
      const [t0, c0] = STOPS[i - 1], [t1, c1] = STOPS[i];
      const f = (t - t0) / (t1 - t0);
      return `rgb(${c0.map((c, k) => Math.round(c + (c1[k] - c) * f)).join(",")})`;
    }
  }
  return `rgb(${STOPS[STOPS.length - 1][1].join(",")})`;
}

export class Heatmap {
  /** rows: [{layer, x: [], y: []}], events: [{step, layer, rule}], highlight: layer name */
  constructor(container, { rows, events = [], scale = "row", highlight = null, onPick = null }) {
    this.rows = rows;
    this.events = events;
    this.scale = scale;
    this.highlight = highlight;
    this.onPick = onPick;
    this.canvas = h("canvas.heatmap-canvas");
    this.tooltip = h("div.chart-tooltip", { hidden: true });
    const labelWidth = Math.min(220, Math.max(80, ...rows.map((r) => r.layer.length * 6.6 + 16)));
    this.labelWidth = labelWidth;
    const height = Math.max(120, rows.length * 22 + 30);
    this.root = h("div.heatmap", { style: { height: `${height}px` } }, this.canvas, this.tooltip);
    container.append(this.root);
    this.steps = [...new Set(rows.flatMap((r) => r.x))].sort((a, b) => a - b);
    this.resizer = new ResizeObserver(() => this.draw());
    this.resizer.observe(this.root);
    this.canvas.addEventListener("mousemove", (e) => this.hover(e));
    this.canvas.addEventListener("mouseleave", () => { this.tooltip.hidden = true; });
    this.canvas.addEventListener("click", (e) => {
      const cell = this.cellAt(e);
      if (cell && this.onPick) this.onPick(cell.row.layer);
    });
  }

  setScale(scale) { this.scale = scale; this.draw(); }

  range(row) {
    let lo = Infinity, hi = -Infinity;
    const rows = this.scale === "row" ? [row] : this.rows;
    for (const r of rows) for (const v of r.y) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return [lo, hi];
  }

  geometry() {
    const width = this.root.clientWidth, height = this.root.clientHeight;
    const plot = { left: this.labelWidth, top: 4, right: width - 8, bottom: height - 22 };
    const rowH = (plot.bottom - plot.top) / Math.max(1, this.rows.length);
    const n = this.steps.length;
    const colW = (plot.right - plot.left) / Math.max(1, n);
    return { width, height, plot, rowH, colW };
  }

  draw() {
    const { width, height, plot, rowH, colW } = (this.g = this.geometry());
    if (!width) return;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(height * dpr);
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const style = getComputedStyle(this.root);
    const text = style.getPropertyValue("--text").trim() || "#212529";
    const axis = style.getPropertyValue("--chart-axis").trim() || "#868e96";
    ctx.font = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    const index = new Map(this.steps.map((s, i) => [s, i]));
    this.rows.forEach((row, r) => {
      const [lo, hi] = this.range(row);
      const y = plot.top + r * rowH;
      for (let i = 0; i < row.x.length; i++) {
        const c = index.get(row.x[i]);
        const v = row.y[i];
        ctx.fillStyle = v === null || !Number.isFinite(v) ? "rgb(224, 49, 49)" : rampColour(hi > lo ? (v - lo) / (hi - lo) : 0.5);
        ctx.fillRect(plot.left + c * colW, y, Math.ceil(colW) + 0.5, Math.max(1, rowH - 1));
      }
      ctx.fillStyle = row.layer === this.highlight ? "#e03131" : text;
      ctx.font = row.layer === this.highlight ? "600 11px system-ui, sans-serif" : "11px system-ui, sans-serif";
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      ctx.fillText(row.layer, plot.left - 8, y + rowH / 2, plot.left - 12);
      if (row.layer === this.highlight) {
        ctx.strokeStyle = "#e03131";
        ctx.lineWidth = 2;
        ctx.strokeRect(plot.left + 1, y + 0.5, plot.right - plot.left - 2, rowH - 2);
        ctx.lineWidth = 1;
      }
    });
    // events
    const rowOf = new Map(this.rows.map((r, i) => [r.layer, i]));
    for (const e of this.events) {
      if (!rowOf.has(e.layer) || !this.steps.length) continue;
      let c = this.steps.findIndex((s) => s >= e.step);
      if (c < 0) c = this.steps.length - 1;
      const cx = plot.left + (c + 0.5) * colW, cy = plot.top + (rowOf.get(e.layer) + 0.5) * rowH;
      ctx.fillStyle = "#fff";
      ctx.strokeStyle = "#e03131";
      ctx.lineWidth = 2;
      ctx.beginPath(); ctx.arc(cx, cy, Math.min(5, rowH / 2 - 1), 0, Math.PI * 2); ctx.fill(); ctx.stroke();
      ctx.lineWidth = 1;
    }
    // step axis
    ctx.fillStyle = axis;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const every = Math.max(1, Math.ceil(this.steps.length / Math.max(2, (plot.right - plot.left) / 80)));
    for (let i = 0; i < this.steps.length; i += every) {
      ctx.fillText(fmt(this.steps[i]), plot.left + (i + 0.5) * colW, plot.bottom + 6);
    }
  }

  cellAt(event) {
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left, y = event.clientY - rect.top;
    const { plot, rowH, colW } = this.g || this.geometry();
    if (x < plot.left || x > plot.right || y < plot.top || y > plot.bottom) return null;
    const r = Math.floor((y - plot.top) / rowH), c = Math.floor((x - plot.left) / colW);
    const row = this.rows[r];
    if (!row) return null;
    const step = this.steps[c];
    const i = row.x.indexOf(step);
    return { row, step, value: i >= 0 ? row.y[i] : undefined, x, y };
  }

  hover(event) {
    const cell = this.cellAt(event);
    if (!cell) { this.tooltip.hidden = true; return; }
    const events = this.events.filter((e) => e.layer === cell.row.layer && Math.abs(e.step - cell.step) <= (this.steps[1] - this.steps[0] || 1));
    this.tooltip.replaceChildren(h("div.tip-x", `${cell.row.layer} · step ${fmt(cell.step)}`),
      h("div.tip-row", h("b", cell.value === null ? "non-finite" : fmt(cell.value, 5))),
      ...events.map((e) => h("div.tip-row.tip-event", `${e.rule}: ${e.message || fmt(e.value)}`)));
    this.tooltip.hidden = false;
    const w = this.tooltip.offsetWidth;
    this.tooltip.style.left = `${cell.x + 14 + w > this.g.width ? cell.x - 14 - w : cell.x + 14}px`;
    this.tooltip.style.top = `${Math.max(0, cell.y - 10)}px`;
  }

  destroy() { this.resizer.disconnect(); }
}
