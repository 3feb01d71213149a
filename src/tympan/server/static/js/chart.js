// A small canvas line chart: several series, drag to zoom (x), double-click or reset() to
// zoom out, EMA smoothing, log y, hover tooltip with every series' value at that x.
import { h, fmt } from "./dom.js";

const FONT = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const PAD = { top: 10, right: 14, bottom: 24 };

export function niceStep(range, count) {
  const raw = range / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

export function ticks(min, max, count) {
  if (!(max > min)) return [min];
  const step = niceStep(max - min, count);
  // a range below the numbers' resolution (an EMA of a constant wobbles by an ulp) has no
  // steps to take: v += step would never move, and the array would grow until it throws
  if (!(step > 0) || min + step === min || max - step === max) return [min];
  const out = [];
  const first = Math.ceil(min / step);
  for (let i = 0; i <= count * 4 + 2; i++) {
    const v = (first + i) * step;
    if (v > max + step * 1e-9) break;
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out;
}

function logTicks(min, max) {
  const out = [];
  const lo = Math.floor(Math.log10(min)), hi = Math.ceil(Math.log10(max));
  const every = Math.max(1, Math.ceil((hi - lo) / 6));
  for (let e = lo; e <= hi; e += every) {
    const v = Math.pow(10, e);
    if (v >= min * 0.999 && v <= max * 1.001) out.push(v);
  }
  if (out.length < 2) {
    for (let e = lo; e <= hi; e++) {
      for (const m of [2, 5]) {
        const v = m * Math.pow(10, e);
        if (v >= min && v <= max) out.push(v);
      }
    }
    out.sort((a, b) => a - b);
  }
  return out;
}

/** Debiased exponential moving average (as TensorBoard does); non-finite values pass through. */
export function ema(values, weight) {
  if (!weight) return values;
  const out = new Float64Array(values.length);
  let last = 0, n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) { out[i] = v; continue; }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

function lowerBound(xs, x) {
  let lo = 0, hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

export class LineChart {
  /**
   * options: height, logY, smoothing (0..0.99), formatX(v) -> text, xLabel,
   * onZoom(range|null) — called after the user zooms (range = [x0, x1]) or resets (null).
   */
  constructor(container, options = {}) {
    this.options = { height: 220, smoothing: 0, logY: false, formatX: (v) => fmt(v), ...options };
    this.series = [];
    this.view = null; // [x0, x1] when zoomed
    this.hoverX = null;
    this.drag = null;
    this.canvas = h("canvas.chart-canvas");
    this.tooltip = h("div.chart-tooltip", { hidden: true });
    this.root = h("div.chart", { style: { height: `${this.options.height}px` } },
      this.canvas, this.tooltip);
    this.root.chart = this;
    container.append(this.root);
    this.ctx = this.canvas.getContext("2d");
    this.resizer = new ResizeObserver(() => this.draw());
    this.resizer.observe(this.root);
    this.bindEvents();
  }

  /** series: [{name, colour, x: number[], y: number[], dashed?, faint?, low?, high?}] — x
   *  ascending; low/high (null where unknown) draw a shaded band around y (a seed group's
   *  interval); a faint series is drawn thin and pale (a group's own runs behind its mean). */
  setSeries(series) {
    this.series = series.map((s) => ({ ...s, x: Array.from(s.x), y: Array.from(s.y),
      low: s.low ? Array.from(s.low) : null, high: s.high ? Array.from(s.high) : null }));
    this.smooth();
    this.draw();
  }

  setSmoothing(weight) { this.options.smoothing = weight; this.smooth(); this.draw(); }
  setLogY(on) { this.options.logY = on; this.draw(); }
  setFormatX(formatX) { this.options.formatX = formatX; this.draw(); }

  zoom(x0, x1, { notify = true } = {}) {
    this.view = [Math.min(x0, x1), Math.max(x0, x1)];
    this.draw();
    this.root.dataset.zoomed = "1";
    if (notify && this.options.onZoom) this.options.onZoom(this.view);
  }

  reset({ notify = true } = {}) {
    const was = this.view;
    this.view = null;
    delete this.root.dataset.zoomed;
    this.draw();
    if (notify && was && this.options.onZoom) this.options.onZoom(null);
  }

  /** Show the crosshair at x because another chart of the panel is hovered (no tooltip). */
  showHover(x) {
    if (this.hoverX === x && this.synced) return;
    this.hoverX = x;
    this.synced = true;
    if (x === null) this.tooltip.hidden = true;
    this.draw();
  }

  destroy() { this.resizer.disconnect(); this.root.remove(); }

  smooth() {
    for (const s of this.series) {
      s.ys = ema(s.y, this.options.smoothing);
      if (s.low) { s.lows = ema(s.low, this.options.smoothing); s.highs = ema(s.high, this.options.smoothing); }
    }
  }

  fullRange() {
    let x0 = Infinity, x1 = -Infinity;
    for (const s of this.series) {
      if (!s.x.length) continue;
      x0 = Math.min(x0, s.x[0]);
      x1 = Math.max(x1, s.x[s.x.length - 1]);
    }
    if (!Number.isFinite(x0)) return [0, 1];
    if (x0 === x1) return [x0 - 1, x1 + 1];
    return [x0, x1];
  }

  yRange([x0, x1]) {
    let lo = Infinity, hi = -Infinity;
    const logY = this.options.logY;
    for (const s of this.series) {
      const from = Math.max(0, lowerBound(s.x, x0) - 1);
      const to = Math.min(s.x.length, lowerBound(s.x, x1) + 1);
      for (let i = from; i < to; i++) {
        for (const v of s.low ? [s.y[i], s.ys[i], s.lows[i], s.highs[i]] : [s.y[i], s.ys[i]]) {
          if (!Number.isFinite(v) || (logY && v <= 0)) continue;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
    }
    if (!Number.isFinite(lo)) return logY ? [0.1, 10] : [0, 1];
    if (hi - lo <= Math.max(Math.abs(lo), Math.abs(hi)) * 1e-9) hi = lo;  // constant, bar rounding
    if (logY) {
      if (lo === hi) return [lo / 2, hi * 2];
      const span = Math.log10(hi) - Math.log10(lo);
      return [lo / Math.pow(10, span * 0.05), hi * Math.pow(10, span * 0.05)];
    }
    if (lo === hi) return [lo - (Math.abs(lo) || 1) * 0.1, hi + (Math.abs(hi) || 1) * 0.1];
    const pad = (hi - lo) * 0.06;
    return [lo - pad, hi + pad];
  }

  layout() {
    const width = this.root.clientWidth, height = this.root.clientHeight;
    const xr = this.view || this.fullRange();
    const yr = this.yRange(xr);
    const logY = this.options.logY;
    const yTicks = logY ? logTicks(yr[0], yr[1]) : ticks(yr[0], yr[1], Math.max(2, Math.floor(height / 45)));
    this.ctx.font = FONT;
    const labelWidth = Math.max(24, ...yTicks.map((v) => this.ctx.measureText(fmt(v, 3)).width));
    const left = Math.ceil(labelWidth) + 12;
    const plot = { left, top: PAD.top, right: width - PAD.right, bottom: height - PAD.bottom };
    const ly = (v) => (logY ? Math.log10(v) : v);
    const y0 = ly(yr[0]), y1 = ly(yr[1]);
    const sx = (x) => plot.left + ((x - xr[0]) / (xr[1] - xr[0])) * (plot.right - plot.left);
    const sy = (v) => plot.bottom - ((ly(v) - y0) / (y1 - y0)) * (plot.bottom - plot.top);
    const invx = (px) => xr[0] + ((px - plot.left) / (plot.right - plot.left)) * (xr[1] - xr[0]);
    return { width, height, xr, yr, yTicks, plot, sx, sy, invx };
  }

  draw() {
    const dpr = window.devicePixelRatio || 1;
    const width = this.root.clientWidth, height = this.root.clientHeight;
    if (!width || !height) return;
    if (this.canvas.width !== Math.round(width * dpr) || this.canvas.height !== Math.round(height * dpr)) {
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(height * dpr);
      this.canvas.style.width = `${width}px`;
      this.canvas.style.height = `${height}px`;
    }
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const L = (this.geometry = this.layout());
    const { plot, sx, sy, xr, yTicks } = L;
    const style = getComputedStyle(this.root);
    const grid = style.getPropertyValue("--chart-grid").trim() || "#e9ecef";
    const axis = style.getPropertyValue("--chart-axis").trim() || "#868e96";
    ctx.font = FONT;
    ctx.lineWidth = 1;
    // grid and y labels
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of yTicks) {
      const y = Math.round(sy(v)) + 0.5;
      ctx.strokeStyle = grid;
      ctx.beginPath(); ctx.moveTo(plot.left, y); ctx.lineTo(plot.right, y); ctx.stroke();
      ctx.fillStyle = axis;
      ctx.fillText(fmt(v, 3), plot.left - 6, y);
    }
    // x labels
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const xTicks = ticks(xr[0], xr[1], Math.max(2, Math.floor((plot.right - plot.left) / 90)));
    for (const v of xTicks) {
      const x = Math.round(sx(v)) + 0.5;
      ctx.strokeStyle = grid;
      ctx.beginPath(); ctx.moveTo(x, plot.top); ctx.lineTo(x, plot.bottom); ctx.stroke();
      ctx.fillStyle = axis;
      ctx.fillText(this.options.formatX(v), x, plot.bottom + 6);
    }
    ctx.strokeStyle = axis;
    ctx.beginPath(); ctx.moveTo(plot.left, plot.bottom + 0.5); ctx.lineTo(plot.right, plot.bottom + 0.5); ctx.stroke();
    // series
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.left, plot.top - 2, plot.right - plot.left, plot.bottom - plot.top + 4);
    ctx.clip();
    const smoothing = this.options.smoothing > 0;
    for (const s of this.series) if (s.low) this.band(s, L);
    for (const s of this.series) {
      if (s.faint) { this.path(s.x, smoothing ? s.ys : s.y, L, s.colour, 0.45, s.dashed); continue; }
      if (smoothing) this.path(s.x, s.y, L, s.colour, 0.22, s.dashed);
      this.path(s.x, smoothing ? s.ys : s.y, L, s.colour, 1, s.dashed);
      if (s.x.length === 1) {
        ctx.fillStyle = s.colour;
        ctx.beginPath(); ctx.arc(sx(s.x[0]), sy(s.y[0]), 3, 0, Math.PI * 2); ctx.fill();
      }
    }
    ctx.restore();
    // drag selection
    if (this.drag && this.drag.moved) {
      const a = Math.min(this.drag.from, this.drag.to), b = Math.max(this.drag.from, this.drag.to);
      ctx.fillStyle = "rgba(37, 99, 235, 0.12)";
      ctx.fillRect(a, plot.top, b - a, plot.bottom - plot.top);
      ctx.strokeStyle = "rgba(37, 99, 235, 0.6)";
      ctx.strokeRect(a + 0.5, plot.top + 0.5, b - a, plot.bottom - plot.top);
    }
    // hover crosshair and points
    if (this.hoverX !== null && !this.drag) this.drawHover(L);
    this.canvas.dataset.x0 = xr[0];
    this.canvas.dataset.x1 = xr[1];
  }

  /** The shaded interval of a series, one polygon per stretch where both ends are known. */
  band(s, L) {
    const ctx = this.ctx;
    const { sx, sy, xr } = L;
    const lows = s.lows, highs = s.highs;
    const ok = (i) => Number.isFinite(lows[i]) && Number.isFinite(highs[i])
      && !(this.options.logY && lows[i] <= 0);
    const from = Math.max(0, lowerBound(s.x, xr[0]) - 1);
    const to = Math.min(s.x.length, lowerBound(s.x, xr[1]) + 2);
    ctx.globalAlpha = 0.18;
    ctx.fillStyle = s.colour;
    for (let i = from; i < to;) {
      if (!ok(i)) { i++; continue; }
      let j = i;
      while (j + 1 < to && ok(j + 1)) j++;
      ctx.beginPath();
      for (let k = i; k <= j; k++) ctx.lineTo(sx(s.x[k]), sy(highs[k]));
      for (let k = j; k >= i; k--) ctx.lineTo(sx(s.x[k]), sy(lows[k]));
      if (i === j) { ctx.rect(sx(s.x[i]) - 1.5, sy(highs[i]), 3, sy(lows[i]) - sy(highs[i])); }
      ctx.closePath();
      ctx.fill();
      i = j + 1;
    }
    ctx.globalAlpha = 1;
  }

  path(xs, ys, L, colour, alpha, dashed) {
    const ctx = this.ctx;
    const { sx, sy, xr } = L;
    const logY = this.options.logY;
    ctx.globalAlpha = alpha;
    ctx.strokeStyle = colour;
    ctx.lineWidth = alpha < 1 ? 1 : 1.6;
    ctx.setLineDash(dashed ? [5, 4] : []);
    ctx.lineJoin = "round";
    ctx.beginPath();
    let pen = false;
    const from = Math.max(0, lowerBound(xs, xr[0]) - 1);
    const to = Math.min(xs.length, lowerBound(xs, xr[1]) + 2);
    for (let i = from; i < to; i++) {
      const v = ys[i];
      if (!Number.isFinite(v) || (logY && v <= 0)) { pen = false; continue; }
      const x = sx(xs[i]), y = sy(v);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    }
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;
  }

  nearest(s, x) {
    if (!s.x.length) return -1;
    const i = lowerBound(s.x, x);
    if (i <= 0) return 0;
    if (i >= s.x.length) return s.x.length - 1;
    return x - s.x[i - 1] <= s.x[i] - x ? i - 1 : i;
  }

  drawHover(L) {
    const ctx = this.ctx;
    const { plot, sx, sy } = L;
    const rows = [];
    let anchorX = null;
    for (const s of this.series) {
      const i = this.nearest(s, this.hoverX);
      if (i < 0) continue;
      const x = s.x[i];
      if (s.faint) continue;  // the mean speaks for its group
      const shown = this.options.smoothing > 0 ? s.ys[i] : s.y[i];
      if (anchorX === null || Math.abs(x - this.hoverX) < Math.abs(anchorX - this.hoverX)) anchorX = x;
      rows.push({ s, x, raw: s.y[i], shown, low: s.low ? s.low[i] : null, high: s.high ? s.high[i] : null });
      if (Number.isFinite(shown) && !(this.options.logY && shown <= 0)) {
        ctx.fillStyle = s.colour;
        ctx.beginPath(); ctx.arc(sx(x), sy(shown), 3.2, 0, Math.PI * 2); ctx.fill();
      }
    }
    if (anchorX === null) return;
    const px = Math.round(sx(anchorX)) + 0.5;
    ctx.strokeStyle = "rgba(73, 80, 87, 0.45)";
    ctx.setLineDash([3, 3]);
    ctx.beginPath(); ctx.moveTo(px, plot.top); ctx.lineTo(px, plot.bottom); ctx.stroke();
    ctx.setLineDash([]);
    if (this.synced) this.tooltip.hidden = true;
    else this.renderTooltip(rows, anchorX, px, L);
  }

  renderTooltip(rows, anchorX, px, L) {
    const tip = this.tooltip;
    tip.replaceChildren(h("div.tip-x", this.options.formatX(anchorX)),
      ...rows.slice(0, 12).map(({ s, raw, shown, low, high }) => h("div.tip-row",
        h("i", { style: { background: s.colour } }),
        h("span.tip-name", s.name || ""),
        h("b", fmt(shown, 5)),
        Number.isFinite(low) ? h("span.tip-raw", `[${fmt(low, 4)}, ${fmt(high, 4)}]`) : null,
        this.options.smoothing > 0 ? h("span.tip-raw", `(${fmt(raw, 4)})`) : null)));
    if (rows.length > 12) tip.append(h("div.tip-more", `+${rows.length - 12} more`));
    tip.hidden = false;
    const width = tip.offsetWidth;
    const left = px + 12 + width > L.width ? px - 12 - width : px + 12;
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${L.plot.top + 4}px`;
  }

  bindEvents() {
    const pos = (event) => {
      const rect = this.canvas.getBoundingClientRect();
      return { x: event.clientX - rect.left, y: event.clientY - rect.top };
    };
    this.canvas.addEventListener("mousedown", (event) => {
      if (event.button !== 0 || !this.geometry) return;
      const { x } = pos(event);
      const { plot } = this.geometry;
      if (x < plot.left || x > plot.right) return;
      this.drag = { from: x, to: x, moved: false };
      event.preventDefault();
    });
    window.addEventListener("mousemove", (event) => {
      if (!this.drag) return;
      const { plot } = this.geometry;
      this.drag.to = Math.min(plot.right, Math.max(plot.left, pos(event).x));
      this.drag.moved = Math.abs(this.drag.to - this.drag.from) > 3;
      this.draw();
    });
    window.addEventListener("mouseup", () => {
      if (!this.drag) return;
      const drag = this.drag;
      this.drag = null;
      if (drag.moved && Math.abs(drag.to - drag.from) > 4) {
        const { invx } = this.geometry;
        this.zoom(invx(drag.from), invx(drag.to));
      } else this.draw();
    });
    this.canvas.addEventListener("mousemove", (event) => {
      if (!this.geometry || this.drag) return;
      const { x } = pos(event);
      const { plot, invx } = this.geometry;
      this.hoverX = x >= plot.left && x <= plot.right ? invx(x) : null;
      this.synced = false;
      this.tooltip.hidden = this.hoverX === null;
      this.draw();
      if (this.options.onHover) this.options.onHover(this.hoverX, this);
    });
    this.canvas.addEventListener("mouseleave", () => {
      this.hoverX = null;
      this.tooltip.hidden = true;
      this.draw();
      if (this.options.onHover) this.options.onHover(null, this);
    });
    this.canvas.addEventListener("dblclick", () => this.reset());
  }
}
