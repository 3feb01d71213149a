// Boot: theme, sign-in if the server wants a token, projects, then route to the page.
import { api, setUnauthorizedHandler } from "./api.js";
import { askForToken, setLaunchLink, signOut } from "./auth.js";
import { showError } from "./banner.js";
import { h, clear } from "./dom.js";
import { route, start, navigate } from "./router.js";
import { state, setProject, onProject, leavePage, adoptProject } from "./state.js";
import { runsPage } from "./pages/runs.js";
import { runPage } from "./pages/run.js";
import { comparePage } from "./pages/compare.js";
import { plotsPage } from "./pages/plots.js";
import { studiesPage, studyPage } from "./pages/studies.js";
import { findingsPage } from "./pages/findings.js";
import { listenPage } from "./pages/listen.js";
import { probePage } from "./pages/probe.js";
import { modelsPage, modelPage } from "./pages/models.js";
import { modelVersionPage } from "./pages/models-version.js";
import { loopPage } from "./pages/loop.js";
import { installShortcuts } from "./shortcuts.js";

const app = document.getElementById("app");

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("tympan.theme", theme);
}

applyTheme(localStorage.getItem("tympan.theme") ||
  (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
document.getElementById("theme").addEventListener("click", () =>
  applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));

installShortcuts();

setUnauthorizedHandler(() => askForToken("Your session ended or the token was revoked: sign in again."));

route("/runs", runsPage);
route("/runs/:id/probe", probePage);
route("/runs/:id", runPage);
route("/compare", comparePage);
route("/plots", plotsPage);
route("/studies", studiesPage);
route("/studies/:name", studyPage);
route("/studies/:name/listen", listenPage);
route("/findings", findingsPage);
route("/models", modelsPage);
route("/models/:name/versions/:version", modelVersionPage);
route("/models/:name/loop", loopPage);
route("/models/:name", modelPage);

let renderTicket = 0;

async function render(page, params, query, path) {
  const ticket = ++renderTicket;
  leavePage();
  if ("project" in query && query.project !== state.project) adoptProject(query.project);
  const section = path.split("/")[1] || "runs";
  for (const a of document.querySelectorAll(".nav a")) {
    a.classList.toggle("active", a.dataset.nav === (section === "runs" && params.id ? "runs" : section));
  }
  app.setAttribute("aria-busy", "true");
  document.body.classList.add("loading");
  let node;
  try {
    node = page ? await page({ params, query, path }) : notFound(path);
  } catch (error) {
    if (error.name !== "ApiError" && !("status" in error)) {
      console.error(error);
      showError({ type: error.name || "Error", message: error.message });
    }
    node = h("div.page-error", h("h1", error.status === 404 ? "Not found" : "Could not load this page"),
      h("p", error.message), h("p", h("a", { href: "/runs", "data-link": "" }, "Back to runs")));
  }
  if (ticket !== renderTicket) return;
  clear(app).append(node);
  app.removeAttribute("aria-busy");
  document.body.classList.remove("loading");
  app.dataset.page = page ? page.name : "none";
  window.scrollTo(0, 0);
}

function notFound(path) {
  document.title = "Not found · tympan";
  return h("div.page-error", h("h1", "Not found"), h("p", `There is no page at ${path}.`),
    h("p", h("a", { href: "/runs", "data-link": "" }, "Back to runs")));
}

async function loadProjects() {
  const select = document.getElementById("project");
  const { projects } = await api.get("projects");
  const fill = (list) => select.replaceChildren(h("option", { value: "" }, "All projects"),
    ...list.map((p) => h("option", { value: p.name }, `${p.name} (${p.runs})`)));
  fill(projects);
  // live pages that saw the project list change (a new project, new runs) hand it on
  document.addEventListener("tympan:projects", (event) => { fill(event.detail); select.value = state.project; });
  if (state.project && !projects.some((p) => p.name === state.project)) setProject("");
  if (!state.project && projects.length === 1) setProject(projects[0].name);
  select.value = state.project;
  select.addEventListener("change", () => setProject(select.value));
  onProject(() => {
    select.value = state.project;
    const path = location.pathname;
    if (path === "/" || path === "/runs" || path === "/studies" || path === "/findings" || path === "/models") {
      const search = new URLSearchParams(location.search);
      if (state.project) search.set("project", state.project); else search.delete("project");
      search.delete("offset");
      const text = search.toString().replace(/%2C/g, ",").replace(/%2F/g, "/").replace(/%3A/g, ":");
      navigate(text ? `${path}?${text}` : path, { replace: true });
    }
  });
}

function showWho(who) {
  const el = document.getElementById("who");
  el.replaceChildren(
    h("span.badge", { title: who.project ? `limited to project ${who.project}` : "all projects" },
      `${who.name || "token"} · ${who.scope}${who.project ? ` · ${who.project}` : ""}`),
    h("button.btn.ghost.small#sign-out", { type: "button", onclick: signOut }, "Sign out"));
}

async function boot() {
  let who;
  try {
    who = await api.get("whoami", {}, { quiet: true });
    setLaunchLink(who.launch_link);
  } catch (error) {
    clear(app).append(h("div.page-error", h("h1", "The server did not answer"), h("p", error.message)));
    return;
  }
  if (who.auth_required && !who.authenticated) {
    clear(app);
    await askForToken();
    who = await api.get("whoami");
  }
  state.who = who;
  showWho(who);
  await loadProjects().catch(() => {});
  document.documentElement.dataset.ready = "1";
  await start(render);
}

boot();
