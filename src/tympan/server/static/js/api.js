// The JSON API client: one place that turns HTTP errors into ApiError and shows them.
import { showError } from "./banner.js";

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

let onUnauthorized = null;

/** Called with no arguments when the server answers 401; returns a promise that resolves
 *  once the user entered a token (then the request is retried once). */
export function setUnauthorizedHandler(handler) { onUnauthorized = handler; }

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export function url(path, params) {
  return `/api/${path.replace(/^\/+/, "")}${query(params)}`;
}

async function request(method, path, { params, body, quiet = false, retry = true } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(url(path, params), init);
  } catch (err) {
    const error = new ApiError(0, "NetworkError", `The server did not answer (${err.message}).`);
    if (!quiet) showError(error);
    throw error;
  }
  if (response.status === 401 && retry && onUnauthorized && !path.startsWith("session")) {
    await onUnauthorized();
    return request(method, path, { params, body, quiet, retry: false });
  }
  const type = response.headers.get("content-type") || "";
  const payload = type.includes("json") ? await response.json().catch(() => null)
    : await response.text();
  if (!response.ok) {
    const detail = payload && payload.error ? payload.error : null;
    const error = new ApiError(response.status, detail ? detail.type : `HTTP ${response.status}`,
      detail ? detail.message : `${method} ${path} failed with HTTP ${response.status}.`);
    if (!quiet) showError(error);
    throw error;
  }
  return payload;
}

export const api = {
  get: (path, params, opts = {}) => request("GET", path, { params, ...opts }),
  post: (path, body, opts = {}) => request("POST", path, { body, ...opts }),
  patch: (path, body, opts = {}) => request("PATCH", path, { body, ...opts }),
  del: (path, opts = {}) => request("DELETE", path, opts),
};

/** A URL under /api for <img>/<audio> src (cookie auth covers them). */
export function apiUrl(path, params) { return url(path, params); }

export function enc(part) { return encodeURIComponent(part); }

/** A metric key in a URL path: keep its slashes (the route takes {key:path}). */
export function encKey(key) { return key.split("/").map(encodeURIComponent).join("/"); }
