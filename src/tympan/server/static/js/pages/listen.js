// The blind preference test of a study: two clips of the same text, one from an arm and one
// from the baseline (same seed), as "1" and "2" in an order the server draws per listener.
// The page never learns which clip is which arm: it only knows pair ids and positions.
import { api, apiUrl, enc } from "../api.js";
import { h, link, empty } from "../dom.js";
import { setQuery } from "../router.js";
import { onLeave } from "../state.js";

const LISTENER_KEY = "tympan.listener";
const pct = (x) => (typeof x === "number" && Number.isFinite(x) ? `${Math.round(x * 100)}%` : "–");

/** The arm's preference rate with its interval, on a 0..100% axis with chance marked. */
function resultView(result) {
  if (!result.judgements) return h("p.muted.listen-result", "No judgements yet.");
  const bar = h("div.pref-axis", { title: "preference for the arm; the line is chance (50%)" },
    h("div.pref-ci", { style: { left: pct(result.low), width: `${Math.max(0.5, (result.high - result.low) * 100)}%` } }),
    h("div.pref-dot", { style: { left: pct(result.rate) } }), h("div.pref-chance"));
  return h("div.listen-result", { dataset: { rate: String(result.rate) } },
    h("p", h("b.pref-rate", pct(result.rate)), ` of ${result.judgements} judgement${result.judgements === 1 ? "" : "s"} `,
      `by ${result.listeners} listener${result.listeners === 1 ? "" : "s"} preferred the arm; `,
      h("span.pref-interval", `${Math.round(result.confidence * 100)}% interval ${pct(result.low)} – ${pct(result.high)}`)),
    bar);
}

function pairView(ctx, index) {
  const { data, study, arm, listener } = ctx;
  const pair = data.pairs[index];
  const audio = h("audio.listen-audio", { preload: "auto" });
  const heard = new Set();
  const src = (position) => apiUrl(`studies/${enc(study)}/listening/${enc(arm)}/clip.wav`, { listener, pair: pair.id, position });
  const choose = [1, 2].map((position) => h(`button.btn.primary.choose`, {
    type: "button", disabled: true, dataset: { position: String(position) },
    onclick: () => ctx.judge(pair, position),
  }, `I prefer ${position}`));
  const plays = [1, 2].map((position) => h("button.btn.play", {
    type: "button", dataset: { position: String(position) },
    onclick: () => {
      audio.src = src(position);
      audio.play().catch(() => {}); // a browser without audio output still counts the listen
      heard.add(position);
      plays.forEach((b) => b.classList.toggle("active", b === plays[position - 1]));
      if (heard.size === 2) choose.forEach((b) => { b.disabled = false; });
    },
  }, `▶ Clip ${position}`));
  onLeave(() => audio.pause());
  if (pair.choice) choose.forEach((b) => b.classList.toggle("chosen", Number(b.dataset.position) === pair.choice));
  return h("section.card.listen-pair", { dataset: { pair: pair.id } },
    h("header.card-head", h("h2", `Pair ${index + 1} of ${data.pairs.length}`),
      pair.choice ? h("span.badge.muted", `you chose ${pair.choice}`) : null),
    h("div.card-body",
      pair.text ? h("p.listen-text", "“", pair.text, "”") : h("p.muted", "(no text shown for this pair)"),
      h("div.listen-controls", plays, audio),
      h("p.muted.hint", "Play both clips (keys 1 and 2 play them), then choose the one you prefer."),
      h("div.listen-choose", choose)));
}

export async function listenPage({ params, query }) {
  const study = params.name;
  document.title = `Listening test · ${study} · tympan`;
  const tests = await api.get(`studies/${enc(study)}/listening`);
  const head = h("div.page-head", h("div.title-block",
    h("div.crumbs", link("/studies", "Studies"), h("span", "/"), link(`/studies/${enc(study)}`, study), h("span", "/"), h("span", "Listen")),
    h("h1", "Blind preference test"),
    h("p.lead", "Two renderings of the same text: one by the arm, one by the baseline with the same seed, in an order drawn for you. ",
      "Pick the one you prefer; your choices are stored under your name and become the study's listen/preference metric.")));
  if (!tests.tests.length) {
    return h("div.listen-page", head, empty(tests.design === "one-at-a-time"
      ? "This study has no arm to compare with its baseline yet."
      : "Preference tests compare one arm with the baseline: they need a one-at-a-time study."));
  }
  const arm = query.arm && tests.tests.some((t) => t.arm === query.arm) ? query.arm : tests.tests[0].arm;
  const nameInput = h("input#listener", { type: "text", placeholder: "your name", value: query.listener || localStorage.getItem(LISTENER_KEY) || "", maxlength: 200, "aria-label": "listener" });
  const armSelect = h("select#listen-arm", { "aria-label": "arm" },
    tests.tests.map((t) => h("option", { value: t.arm, selected: t.arm === arm }, `${t.arm} vs baseline (${t.pairs} pairs)`)));
  const holder = h("div.listen-body");
  const ctx = { study, arm, listener: "", data: null };
  // the pair on screen lives in the URL (?pair=N, from 1): a reload or a shared link opens it
  let linkedPair = Number(query.pair) || 0;
  const showPair = (i) => {
    const view = pairView(ctx, i);
    const shown = holder.querySelector(".listen-pair, .listen-done");
    if (shown) shown.replaceWith(view);
    setQuery({ arm: ctx.arm, pair: i + 1 });
  };

  const render = () => {
    const { data } = ctx;
    const judged = data.pairs.filter((p) => p.choice).length;
    const next = data.pairs.findIndex((p) => !p.choice);
    const dots = h("div.listen-progress", { title: `${judged} of ${data.pairs.length} judged` },
      data.pairs.map((p, i) => h("button.dot", { type: "button", class: p.choice ? "dot done" : "dot", title: `pair ${i + 1}`,
        onclick: () => showPair(i) })));
    const linked = linkedPair >= 1 && linkedPair <= data.pairs.length ? linkedPair - 1 : -1;
    linkedPair = 0;
    const at = linked >= 0 ? linked : next;
    const done = at < 0;
    setQuery({ arm: ctx.arm, pair: done ? "" : at + 1 });
    holder.replaceChildren(
      h("div.listen-status", h("span", `${judged} of ${data.pairs.length} pairs judged`), dots),
      data.pairs.length ? (done ? h("section.card.listen-done", h("div.card-body", h("p", "You have judged every pair. Thank you!"),
        h("p.muted", "Click a dot above to hear a pair again and change your choice."))) : pairView(ctx, at))
        : empty("This arm and the baseline share no clip yet (their runs logged no audio under the same key)."),
      h("section.card.listen-results", h("header.card-head", h("h2", `${arm} vs baseline`)),
        h("div.card-body", next < 0 ? resultView(data.result)
          : h("p.muted", "The result shows once you have judged every pair, so that it cannot sway you."))));
  };

  ctx.judge = async (pair, position) => {
    await api.post(`studies/${enc(study)}/listening/${enc(ctx.arm)}`, { listener: ctx.listener, pair: pair.id, choice: position });
    await load();
  };

  const load = async () => {
    ctx.arm = armSelect.value;
    ctx.listener = nameInput.value.trim();
    setQuery({ arm: ctx.arm, pair: linkedPair || "" });
    if (!ctx.listener) { holder.replaceChildren(h("p.muted", "Enter your name to start: each listener's choices are kept apart.")); return; }
    localStorage.setItem(LISTENER_KEY, ctx.listener);
    ctx.data = await api.get(`studies/${enc(study)}/listening/${enc(ctx.arm)}`, { listener: ctx.listener });
    render();
  };

  const onKey = (event) => {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
    if (event.key === "1" || event.key === "2") holder.querySelector(`.play[data-position="${event.key}"]`)?.click();
  };
  document.addEventListener("keydown", onKey);
  onLeave(() => document.removeEventListener("keydown", onKey));
  nameInput.addEventListener("change", load);
  armSelect.addEventListener("change", load);
  await load();
  return h("div.listen-page", head,
    h("div.toolbar", h("label.control", "Listener", nameInput), h("label.control", "Test", armSelect),
      h("button.btn#listen-start", { type: "button", onclick: load }, "Start")),
    holder);
}
