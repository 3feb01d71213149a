// Audio samples: waveform + log-mel spectrogram with a playhead, and a per-key step browser.
import { api, apiUrl, enc } from "./api.js";
import { h, fmt } from "./dom.js";
import { ticks } from "./chart.js";
import { byKey, stepNav } from "./step-nav.js";

export function fmtClock(seconds) {
  if (!Number.isFinite(seconds)) return "0:00.0";
  const m = Math.floor(seconds / 60);
  const s = seconds - m * 60;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

const peaksCache = new Map();

/** Waveform peaks as {min: number[], max: number[]} whatever shape the API sends. */
export async function loadPeaks(runId, sampleId) {
  const key = `${runId}/${sampleId}`;
  if (!peaksCache.has(key)) {
    peaksCache.set(key, api.get(`runs/${enc(runId)}/audio/${enc(sampleId)}/waveform.json`, {}, { quiet: true })
      .then(normalisePeaks).catch(() => null));
  }
  return peaksCache.get(key);
}

export function normalisePeaks(data) {
  if (!data) return null;
  if (Array.isArray(data.min) && Array.isArray(data.max)) return { min: data.min, max: data.max };
  const peaks = data.peaks || data.data || data;
  if (Array.isArray(peaks) && peaks.length && Array.isArray(peaks[0])) {
    return { min: peaks.map((p) => p[0]), max: peaks.map((p) => p[1]) };
  }
  if (Array.isArray(peaks)) {
    // either interleaved [min, max, min, max, ...] or absolute peaks
    if (data.interleaved || peaks.some((v) => v < 0)) {
      const min = [], max = [];
      for (let i = 0; i + 1 < peaks.length; i += 2) { min.push(peaks[i]); max.push(peaks[i + 1]); }
      return { min, max };
    }
    return { min: peaks.map((v) => -v), max: peaks };
  }
  return null;
}

function drawWaveform(canvas, peaks, colour) {
  const width = canvas.clientWidth, height = canvas.clientHeight;
  if (!width || !height) return;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const mid = height / 2;
  ctx.strokeStyle = "rgba(134, 142, 150, 0.5)";
  ctx.beginPath(); ctx.moveTo(0, mid + 0.5); ctx.lineTo(width, mid + 0.5); ctx.stroke();
  if (!peaks || !peaks.max.length) return;
  const n = peaks.max.length;
  let scale = 0;
  for (let i = 0; i < n; i++) scale = Math.max(scale, Math.abs(peaks.min[i]), Math.abs(peaks.max[i]));
  scale = scale > 1 ? scale : 1; // full scale = the box; louder clips are shown scaled
  ctx.fillStyle = colour;
  for (let px = 0; px < width; px++) {
    const from = Math.floor((px / width) * n), to = Math.max(from + 1, Math.floor(((px + 1) / width) * n));
    let lo = 0, hi = 0;
    for (let i = from; i < to && i < n; i++) { lo = Math.min(lo, peaks.min[i]); hi = Math.max(hi, peaks.max[i]); }
    const y0 = mid - (hi / scale) * (mid - 2), y1 = mid - (lo / scale) * (mid - 2);
    ctx.fillRect(px, y0, 1, Math.max(1, y1 - y0));
  }
}

const mel = (f) => 2595 * Math.log10(1 + f / 700);

/** kHz labels over the spectrogram at their mel-scale heights. */
function freqAxis(fmax) {
  if (!(fmax > 0)) return null;
  const marks = [500, 1000, 2000, 4000, 8000, 16000].filter((f) => f < fmax * 0.92);
  return h("div.freq-axis", { "aria-hidden": "true" }, marks.map((f) => h("span", {
    style: { bottom: `${((mel(f) / mel(fmax)) * 100).toFixed(2)}%` } }, f >= 1000 ? `${f / 1000}k` : `${f}`)));
}

let scale = null;  // the spectrograms' colour map, asked once

/** The spectrogram's dB colour bar: the server's own colour map, 0 dB (the clip's loudest
 *  cell) at the top down to its floor; labels in the page's colours, so either theme reads them. */
function dbBar() {
  const gradient = h("div.db-gradient");
  const labels = h("div.db-labels");
  const bar = h("div.db-bar", { title: "power in dB relative to the clip's loudest moment" }, gradient, labels);
  scale ??= api.get("spectrogram/scale", {}, { quiet: true });
  scale.then(({ floor_db: floor, top_db: top, colours }) => {
    gradient.style.background = `linear-gradient(to top, ${colours.join(", ")})`;
    const marks = ticks(floor, top, 4);
    labels.replaceChildren(...marks.map((v) => h("span", { style: { bottom: `${(((v - floor) / (top - floor)) * 100).toFixed(2)}%` } },
      `${fmt(v)}${v === top ? " dB" : ""}`)));
    bar.dataset.floor = floor;
  }).catch(() => { bar.hidden = true; });
  return bar;
}

/** Seconds under the picture, at round steps that fit its width. */
function drawTimeAxis(axis, duration) {
  const width = axis.clientWidth;
  if (!width || !(duration > 0)) return;
  const marks = ticks(0, duration, Math.max(2, Math.floor(width / 100)));
  axis.replaceChildren(...marks.map((v) => {
    const at = v / duration;
    return h("span", { class: at > 0.9 ? "end" : at === 0 ? "start" : "", style: { left: `${(at * 100).toFixed(3)}%` } },
      `${Number(v.toFixed(3))} s`);
  }));
}

/** One clip: waveform, spectrogram, a playhead over both; `audio` is its <audio> element. */
export class AudioView {
  constructor(runId, sample, { colour = "#2563eb", controls = true, label = null } = {}) {
    this.runId = runId;
    this.sample = sample;
    this.colour = colour;
    const src = apiUrl(`runs/${enc(runId)}/audio/${enc(sample.sample_id)}.wav`);
    this.audio = h("audio", { preload: "auto", controls, dataset: { sample: sample.sample_id, src } });
    // The clip is fetched whole and played from a blob: a blob is seekable to any moment,
    // which A/B switching needs, whatever the server does with Range requests.
    this.loaded = fetch(src, { credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) throw new Error(`the clip did not load (HTTP ${response.status})`);
        return response.blob();
      })
      .then((blob) => {
        if (this.destroyed) return;
        this.objectUrl = URL.createObjectURL(blob);
        this.audio.src = this.objectUrl;
      })
      .catch((error) => { this.root.classList.add("failed"); this.time.textContent = error.message; });
    this.waveform = h("canvas.waveform");
    this.playhead = h("div.playhead");
    this.spectrogram = h("img.spectrogram", {
      alt: `log-mel spectrogram of ${sample.key} at step ${sample.step}`,
      src: apiUrl(`runs/${enc(runId)}/audio/${enc(sample.sample_id)}/spectrogram.png`),
      draggable: false,
    });
    this.time = h("span.clock", `0:00.0 / ${fmtClock(sample.duration)}`);
    this.visual = h("div.audio-visual", { title: "Click to seek" },
      this.waveform, h("div.spec-wrap", this.spectrogram, freqAxis(sample.sample_rate / 2)), this.playhead);
    this.timeAxis = h("div.time-axis", { "aria-hidden": "true" });
    this.root = h("div.audio-view", { dataset: { run: runId, sample: sample.sample_id } },
      label,
      h("div.audio-figure", this.visual, dbBar(), this.timeAxis),
      h("div.audio-foot", this.audio, this.time,
        h("span.audio-meta", `${fmt(sample.sample_rate)} Hz · ${fmtClock(sample.duration)}`),
        sample.caption ? h("span.caption", { title: sample.caption }, sample.caption) : null));
    this.root.view = this;
    this.visual.addEventListener("click", (event) => {
      const rect = this.visual.getBoundingClientRect();
      const t = ((event.clientX - rect.left) / rect.width) * this.duration();
      this.seek(t);
      this.root.dispatchEvent(new CustomEvent("seek", { detail: t, bubbles: true }));
    });
    const tick = () => {
      this.update();
      if (!this.audio.paused) this.frame = requestAnimationFrame(tick);
    };
    this.audio.addEventListener("play", () => { cancelAnimationFrame(this.frame); tick(); });
    for (const type of ["pause", "seeked", "timeupdate", "loadedmetadata", "ended"]) {
      this.audio.addEventListener(type, () => this.update());
    }
    this.audio.addEventListener("loadedmetadata", () => this.redraw());
    this.peaks = null;
    loadPeaks(runId, sample.sample_id).then((peaks) => { this.peaks = peaks; this.redraw(); });
    this.resizer = new ResizeObserver(() => this.redraw());
    this.resizer.observe(this.waveform);
  }

  duration() {
    const d = this.audio.duration;
    return Number.isFinite(d) && d > 0 ? d : this.sample.duration || 1;
  }

  seek(t) {
    this.audio.currentTime = Math.max(0, Math.min(t, this.duration()));
    this.update();
  }

  /** Show position t (a synchronized player's shared clock) instead of this clip's own. */
  setPosition(t) { this.follow = t; this.update(); }

  ownClock() { this.follow = undefined; this.update(); }

  update() {
    const t = this.follow ?? this.audio.currentTime;
    const frac = Math.max(0, Math.min(1, t / this.duration()));
    this.playhead.style.left = `${(frac * 100).toFixed(3)}%`;
    this.playhead.classList.toggle("active", !this.audio.paused || t > 0);
    this.time.textContent = `${fmtClock(t)} / ${fmtClock(this.duration())}`;
  }

  redraw() {
    drawWaveform(this.waveform, this.peaks, this.colour);
    drawTimeAxis(this.timeAxis, this.duration());
  }

  destroy() {
    this.destroyed = true;
    this.resizer.disconnect();
    this.audio.pause();
    cancelAnimationFrame(this.frame);
    // The element lets go of the blob before it is revoked: revoked under a load still
    // reading it (preload), the load failed and the console said so.
    this.audio.removeAttribute("src");
    this.audio.load();
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
  }
}

/** Samples of one run grouped by key, each key browsable by step with a slider. `at`
 *  ({key, step}) opens that key at that step (the link's); `onStep(key, step)` hears the
 *  reader move a key to another step (the page keeps it in the URL). */
export function audioBrowser(runId, samples, { at = null, onStep = () => {} } = {}) {
  const root = h("div.audio-browser");
  for (const [key, list] of byKey(samples)) {
    const steps = [...new Set(list.map((s) => s.step))];
    const holder = h("div.audio-holder");
    const section = h("div.audio-key", { dataset: { key } });
    let views = [];
    let first = true;
    const nav = stepNav(steps, key, (i) => {
      views.forEach((v) => v.destroy());
      views = list.filter((s) => s.step === steps[i]).map((s) => new AudioView(runId, s));
      holder.replaceChildren(...views.map((v) => v.root));
      section.dataset.step = steps[i];
      if (!first) onStep(key, steps[i]);
      first = false;
    });
    section.append(h("div.audio-key-head", h("h3", key), nav.root), holder);
    root.append(section);
    const linked = at && at.key === key ? steps.indexOf(Number(at.step)) : -1;
    nav.show(linked >= 0 ? linked : steps.length - 1);
  }
  return root;
}
