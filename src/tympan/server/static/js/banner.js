// A non-intrusive banner for errors: stacks at the top right, dismissable, fades out.
import { h } from "./dom.js";

function region() {
  let el = document.getElementById("banners");
  if (!el) {
    el = h("div#banners", { role: "status", "aria-live": "polite" });
    document.body.append(el);
  }
  return el;
}

/** A short note that something the user asked for was done (green edge, fades out). */
export function showNotice(message, { timeout = 9000 } = {}) {
  const close = h("button.banner-close", { type: "button", title: "Dismiss", "aria-label": "Dismiss" }, "×");
  const el = h("div.banner.banner-notice", { dataset: { message } }, h("span", message), close);
  close.addEventListener("click", () => el.remove());
  region().append(el);
  if (timeout) setTimeout(() => el.remove(), timeout);
  return el;
}

export function showError(error, { timeout = 9000 } = {}) {
  const type = error.type || "Error";
  const message = error.message || String(error);
  const holder = region();
  // the same message twice in a row is shown once
  for (const existing of holder.children) {
    if (existing.dataset.message === message) return existing;
  }
  const close = h("button.banner-close", { type: "button", title: "Dismiss", "aria-label": "Dismiss" }, "×");
  const el = h("div.banner.banner-error", { dataset: { message, type } },
    h("strong", type), h("span", message), close);
  close.addEventListener("click", () => el.remove());
  holder.append(el);
  if (timeout) setTimeout(() => el.remove(), timeout);
  return el;
}
