// The compare page's synchronized A/B player: N runs' clips of one key at one step, one
// transport, switching runs at the same moment, and "play all from t".
import { AudioView, fmtClock } from "./audio.js";
import { h, colour as paletteColour } from "./dom.js";

/**
 * N runs' clips of one key at one step with a single transport: play/pause, a position
 * shared by all, A/B switching that keeps the position, and "play all from t" (each run's
 * clip from the same moment, in turn).
 */
export class SyncPlayer {
  /** `active`: the run heard first (a link's A/B choice); `onSwitch(i)` hears every change. */
  constructor(entries, { segment = 3, active = 0, onSwitch = () => {} } = {}) {
    // entries: [{runId, name, sample, colour}]
    this.entries = entries;
    this.segment = segment;
    this.active = active >= 0 && active < entries.length ? active : 0;
    this.onSwitch = onSwitch;
    this.position = 0;
    this.sequence = null;
    this.views = entries.map((e, i) => new AudioView(e.runId, e.sample, {
      colour: e.colour || paletteColour(i), controls: false,
      label: h("div.sync-label", h("kbd", String.fromCharCode(65 + i)),
        h("i.swatch", { style: { background: e.colour || paletteColour(i) } }), h("span", e.name)),
    }));
    this.views.forEach((view, i) => {
      view.root.classList.add("sync-item");
      view.root.addEventListener("seek", (event) => { event.stopPropagation(); this.select(i); this.seek(event.detail); });
      view.audio.addEventListener("timeupdate", () => this.onTime(i));
      view.audio.addEventListener("ended", () => { if (i === this.active && !this.sequence) this.renderState(); });
      view.audio.addEventListener("play", () => this.follow());
    });
    this.playButton = h("button.btn.primary.play", { type: "button", onclick: () => this.toggle() }, "▶ Play");
    this.abButtons = entries.map((e, i) => h("button.btn.ab", { type: "button",
      title: `Listen to ${e.name} (key ${i + 1})`, onclick: () => this.switchTo(i) },
      String.fromCharCode(65 + i)));
    this.slider = h("input.sync-position", { type: "range", min: 0, max: 1000, value: 0, "aria-label": "position" });
    this.slider.addEventListener("input", () => this.seek((Number(this.slider.value) / 1000) * this.maxDuration()));
    this.clock = h("span.clock");
    this.segmentInput = h("input.segment", { type: "number", min: 0.5, max: 30, step: 0.5, value: segment,
      title: "Seconds each run plays in 'Play all from t'" });
    this.allButton = h("button.btn.play-all", { type: "button", onclick: () => this.playAllFrom(this.position) },
      "Play all from t");
    this.root = h("div.sync-player",
      h("div.transport",
        this.playButton,
        h("div.ab-group", { role: "group", "aria-label": "A/B" }, this.abButtons),
        this.slider, this.clock,
        h("label.segment-label", "each", this.segmentInput, "s"),
        this.allButton),
      h("div.sync-grid", { style: { gridTemplateColumns: `repeat(${Math.min(entries.length, 3)}, minmax(0, 1fr))` } },
        this.views.map((v) => v.root)));
    this.root.player = this;
    this.keyHandler = (event) => {
      if (!document.body.contains(this.root)) { document.removeEventListener("keydown", this.keyHandler); return; }
      if (event.target.closest("input, select, textarea")) return;
      if (event.key === " " && event.target.closest("button, a")) return;  // the focused button handles it
      const n = Number(event.key);
      if (n >= 1 && n <= this.entries.length) this.switchTo(n - 1);
      else if (event.key === " ") { event.preventDefault(); this.toggle(); }
    };
    document.addEventListener("keydown", this.keyHandler);
    this.renderState();
  }

  /** While playing, move every playhead with the audible clip, frame by frame. */
  follow() {
    cancelAnimationFrame(this.frame);
    const tick = () => {
      if (!this.playing()) return;
      this.position = this.current().audio.currentTime;
      this.renderState();
      this.frame = requestAnimationFrame(tick);
    };
    tick();
  }

  maxDuration() { return Math.max(...this.views.map((v) => v.duration())); }
  current() { return this.views[this.active]; }
  playing() { return !this.current().audio.paused; }

  onTime(i) {
    if (i !== this.active) return;
    this.position = this.current().audio.currentTime;
    if (this.sequence && this.position >= this.sequence.until) this.sequenceNext();
    this.renderState();
  }

  select(i) {
    if (i !== this.active) this.onSwitch(i);
    this.active = i;
    this.renderState();
  }

  /** Switch the audible run, keeping the position (and playing if we were playing). */
  switchTo(i) {
    if (i === this.active) return;
    this.stopSequence();
    const wasPlaying = this.playing();
    const t = wasPlaying ? this.current().audio.currentTime : this.position;
    this.current().audio.pause();
    this.active = i;
    this.onSwitch(i);
    this.seek(t);
    if (wasPlaying) this.play();
    this.renderState();
  }

  seek(t) {
    this.position = Math.max(0, t);
    for (const view of this.views) {
      view.seek(Math.min(this.position, view.duration()));
    }
    this.renderState();
  }

  play() {
    const view = this.current();
    if (view.audio.ended || view.audio.currentTime >= view.duration() - 0.01) view.seek(0);
    for (const other of this.views) if (other !== view) other.audio.pause();
    return view.audio.play().catch(() => {});
  }

  pause() {
    this.stopSequence();
    for (const view of this.views) view.audio.pause();
    this.seek(this.current().audio.currentTime);  // every clip waits at the same moment
  }

  toggle() {
    if (this.playing()) this.pause(); else { this.stopSequence(); this.play(); }
    this.renderState();
  }

  /** Play each run's clip from `t` for the segment length, one after another. */
  playAllFrom(t) {
    this.stopSequence();
    const seg = Number(this.segmentInput.value) || this.segment;
    this.sequence = { start: t, index: 0, until: t + seg };
    this.root.classList.add("sequencing");
    // timeupdate comes every ~250 ms: watch the clock closely while a sequence plays
    this.sequence.timer = setInterval(() => this.onTime(this.active), 20);
    this.sequenceStart(0);
  }

  sequenceStart(i) {
    const seq = this.sequence;
    for (const view of this.views) view.audio.pause();
    this.active = i;
    seq.index = i;
    this.seek(seq.start);
    this.play();
    this.renderState();
  }

  sequenceNext() {
    const seq = this.sequence;
    const next = seq.index + 1;
    if (next >= this.views.length) {
      this.stopSequence();
      for (const view of this.views) view.audio.pause();
      this.seek(seq.start);
      return;
    }
    this.sequenceStart(next);
  }

  stopSequence() {
    if (!this.sequence) return;
    clearInterval(this.sequence.timer);
    this.sequence = null;
    this.root.classList.remove("sequencing");
  }

  renderState() {
    const playing = this.playing();
    this.playButton.textContent = playing ? "❚❚ Pause" : "▶ Play";
    this.abButtons.forEach((b, i) => b.classList.toggle("on", i === this.active));
    this.views.forEach((v, i) => {
      v.root.classList.toggle("audible", i === this.active);
      if (i === this.active) v.ownClock();
      else v.setPosition(Math.min(this.position, v.duration()));
    });
    const max = this.maxDuration();
    this.slider.value = Math.round((this.position / max) * 1000);
    this.clock.textContent = `${fmtClock(this.position)} / ${fmtClock(max)}`;
    this.root.dataset.active = this.active;
  }

  destroy() {
    this.stopSequence();
    cancelAnimationFrame(this.frame);
    this.views.forEach((v) => v.destroy());
    document.removeEventListener("keydown", this.keyHandler);
  }
}
