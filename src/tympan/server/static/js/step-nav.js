// A step navigator: previous/next buttons, a step menu and a slider over a key's steps.
import { h, fmt } from "./dom.js";

/** Steps (sorted numbers) browsable one at a time; `onShow(index)` draws the chosen one.
 *  Returns {root, show(index)}; call show() once to draw the first view. */
export function stepNav(steps, label, onShow) {
  const slider = h("input.step-slider", { type: "range", min: 0, max: steps.length - 1, step: 1,
    value: steps.length - 1, "aria-label": `step of ${label}` });
  const select = h("select.step-select", { "aria-label": `step of ${label}` },
    steps.map((s, i) => h("option", { value: i }, `step ${fmt(s)}`)));
  const position = h("span.step-label");
  const show = (i) => {
    slider.value = i;
    select.value = i;
    position.textContent = `${i + 1} of ${steps.length}`;
    onShow(i);
  };
  const prev = h("button.btn.icon", { type: "button", title: "Previous step",
    onclick: () => show(Math.max(0, Number(slider.value) - 1)) }, "‹");
  const next = h("button.btn.icon", { type: "button", title: "Next step",
    onclick: () => show(Math.min(steps.length - 1, Number(slider.value) + 1)) }, "›");
  slider.addEventListener("input", () => show(Number(slider.value)));
  select.addEventListener("change", () => show(Number(select.value)));
  return { root: h("div.step-nav", prev, select, slider, next, position), show };
}

/** Items ({key, step, ...}) grouped by key, each group's items sorted by step. */
export function byKey(items) {
  const groups = new Map();
  for (const item of items) {
    if (!groups.has(item.key)) groups.set(item.key, []);
    groups.get(item.key).push(item);
  }
  for (const list of groups.values()) list.sort((a, b) => a.step - b.step);
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
}

/** A run's items of one kind grouped by key, each key browsable by step: `draw(atStep)` returns
 *  the nodes (or a promise of them) that show the items of the chosen step. */
export function keyBrowser(items, draw) {
  return h("div.media-browser", byKey(items).map(([key, list]) => {
    const steps = [...new Set(list.map((i) => i.step))];
    const holder = h("div.media-holder");
    const section = h("section.media-key", { dataset: { key } });
    const nav = stepNav(steps, key, async (i) => {
      section.dataset.step = steps[i];
      const nodes = await draw(list.filter((item) => item.step === steps[i]));
      if (section.dataset.step === String(steps[i])) holder.replaceChildren(...nodes);  // still chosen
    });
    section.append(h("div.media-key-head", h("h3", key), nav.root), holder);
    nav.show(steps.length - 1);
    return section;
  }));
}

/** One (key, step) chosen from a compare result's list of common steps ({key, step, in_all,
 *  samples}); `onShow(entry)` draws it. */
export function commonStepPicker(entries, what, onShow) {
  const keys = [...new Set(entries.map((a) => a.key))];
  const keySel = h("select", { "aria-label": `${what} key`, dataset: { role: "key" } }, keys.map((k) => h("option", { value: k }, k)));
  const stepSel = h("select", { "aria-label": "step", dataset: { role: "step" } });
  let shown = [];
  const fill = () => {
    shown = entries.filter((a) => a.key === keySel.value);
    stepSel.replaceChildren(...shown.map((a, i) => h("option", { value: i }, `step ${fmt(a.step)}${a.in_all ? "" : " (not in all runs)"}`)));
    const last = shown.length - 1 - [...shown].reverse().findIndex((a) => a.in_all);
    stepSel.value = last < shown.length ? last : shown.length - 1;
  };
  const show = () => { const entry = shown[Number(stepSel.value)]; if (entry) onShow(entry); };
  keySel.addEventListener("change", () => { fill(); show(); });
  stepSel.addEventListener("change", show);
  fill();
  return { root: h("div.toolbar", h("label.control", "Key", keySel), h("label.control", "Step", stepSel)), show };
}
