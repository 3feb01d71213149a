// The token prompt: shown when the server wants a token (GET /api/whoami) or answers 401.
import { api } from "./api.js";
import { h } from "./dom.js";

let pending = null;
let launchLink = false;

/** Whether the server is a `tympan ui` whose printed link carries the token (whoami says). */
export function setLaunchLink(value) { launchLink = Boolean(value); }

function hint() {
  if (launchLink) {
    return h("p.hint", h("code", "tympan ui"), " printed a link with this launch's token (",
      h("code", "…/?token=…"), "): open it again, or paste the token from it here.");
  }
  return h("p.hint", "Create one on the server with ", h("code", "tympan token create --scope read"),
    ". It is kept in a cookie for this browser.");
}

/** Resolves once a token was accepted by POST /api/session (the cookie is then set). */
export function askForToken(reason) {
  if (pending) return pending;
  pending = new Promise((resolve) => {
    const input = h("input#token-input", { type: "password", autocomplete: "current-password",
      placeholder: "tympan token", "aria-label": "Token", required: true, spellcheck: false });
    const error = h("p.form-error", { role: "alert", hidden: true });
    const submit = h("button.btn.primary#token-submit", { type: "submit" }, "Sign in");
    const form = h("form.token-form", { autocomplete: "on" },
      h("div.token-logo", h("img", { src: "/static/favicon.svg", alt: "", width: 36, height: 36 })),
      h("h1", "Sign in to tympan"),
      h("p.muted", reason || "This server needs an access token."),
      h("label.field", h("span", "Token"), input),
      error,
      submit,
      hint());
    const overlay = h("div.token-overlay#token-prompt", h("div.token-dialog", { role: "dialog",
      "aria-modal": "true", "aria-label": "Sign in" }, form));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      submit.disabled = true;
      error.hidden = true;
      try {
        await api.post("session", { token: input.value.trim() }, { quiet: true });
        overlay.remove();
        pending = null;
        resolve();
      } catch (err) {
        error.textContent = err.status === 401 ? "That token is not valid (or was revoked)." : err.message;
        error.hidden = false;
        submit.disabled = false;
        input.select();
      }
    });
    document.body.append(overlay);
    input.focus();
  });
  return pending;
}

export async function signOut() {
  await api.del("session", { quiet: true }).catch(() => {});
  location.reload();
}
