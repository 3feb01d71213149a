// Application-wide state: the chosen project and page clean-up hooks.

const listeners = new Set();
const cleanups = [];

export const state = {
  project: localStorage.getItem("tympan.project") || "",
  who: null,
};

export function setProject(name) {
  state.project = name || "";
  localStorage.setItem("tympan.project", state.project);
  listeners.forEach((fn) => fn(state.project));
}

/** Take the project a link names (?project=...) without re-rendering. */
export function adoptProject(name) {
  state.project = name || "";
  localStorage.setItem("tympan.project", state.project);
  const select = document.getElementById("project");
  if (select && [...select.options].some((o) => o.value === state.project)) select.value = state.project;
}

export function onProject(fn) { listeners.add(fn); }

/** Register something to undo when the page changes (timers, audio, observers). */
export function onLeave(fn) { cleanups.push(fn); }

export function leavePage() {
  while (cleanups.length) {
    try { cleanups.pop()(); } catch (err) { console.error(err); }
  }
}

/** How often a live page asks again, in seconds (window.tympanLiveSeconds overrides it). */
export function liveSeconds(fallback) { return Number(window.tympanLiveSeconds) || fallback; }
