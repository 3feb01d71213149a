// URL routing with the history API: every page is linkable, links work without reloads.

const routes = [];
let render = null;

/** route("/runs/:id/probe", page): page(params, query) -> Promise<Node>|Node. */
export function route(pattern, page) {
  const names = [];
  const regex = new RegExp("^" + pattern.replace(/:([a-z]+)/g, (_, name) => {
    names.push(name);
    return "([^/]+)";
  }) + "/?$");
  routes.push({ regex, names, page });
}

export function start(renderPage) {
  render = renderPage;
  window.addEventListener("popstate", () => dispatch());
  document.addEventListener("click", (event) => {
    const a = event.target.closest("a[href]");
    if (!a || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    if (a.target === "_blank" || a.hasAttribute("download")) return;
    const href = a.getAttribute("href");
    if (!href.startsWith("/") || href.startsWith("/api/")) return;
    event.preventDefault();
    navigate(href);
  });
  return dispatch();
}

export function navigate(href, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  return dispatch();
}

/** Change the query string without a new page render (filters, sort, selection). */
export function setQuery(params) {
  // readable links: commas, slashes and colons stay as they are
  const enc = (v) => encodeURIComponent(v).replace(/%2C/g, ",").replace(/%2F/g, "/").replace(/%3A/g, ":");
  const text = Object.entries(params)
    .filter(([, value]) => !(value === undefined || value === null || value === "" || value === false))
    .map(([key, value]) => `${enc(key)}=${enc(String(value))}`).join("&");
  history.replaceState(null, "", location.pathname + (text ? `?${text}` : ""));
}

function dispatch() {
  const path = location.pathname === "/" ? "/runs" : location.pathname;
  const query = Object.fromEntries(new URLSearchParams(location.search));
  for (const { regex, names, page } of routes) {
    const match = path.match(regex);
    if (!match) continue;
    const params = {};
    names.forEach((name, i) => { params[name] = decodeURIComponent(match[i + 1]); });
    return render(page, params, query, path);
  }
  return render(null, {}, query, path);
}
