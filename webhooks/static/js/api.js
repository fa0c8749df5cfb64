// The console's one way to the operator API: same-origin fetch with the session cookie,
// the CSRF header on writes, and a 401 sending the operator to the login page.

let sessionPromise = null;

/** Send the browser to the login page, coming back to this page afterwards. */
export function toLogin() {
  const next = window.location.pathname + window.location.search;
  window.location.assign(`/login?next=${encodeURIComponent(next)}`);
}

/** An API refusal: `code` and `message` from the JSON error body. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** The console session ({authenticated, csrf_token}), fetched once per page. */
export function session() {
  if (sessionPromise === null) {
    sessionPromise = fetch("/api/console/session", { credentials: "same-origin" })
      .then(async (response) => {
        const body = response.ok ? await response.json() : { authenticated: false };
        if (!body.authenticated) toLogin();
        return body;
      });
  }
  return sessionPromise;
}

/** The token writes carry in the X-CSRF-Token header. */
export async function csrfToken() {
  return (await session()).csrf_token;
}

/**
 * Call the API: resolves with the parsed JSON body (null for an empty one).
 * Rejects with ApiError for a refusal; a 401 also goes to the login page.
 */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = await csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) toLogin();
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: "bad_response", message: text }; }
  }
  if (!response.ok) {
    throw new ApiError(response.status, data && data.error, data && data.message);
  }
  return data;
}

/**
 * Build an element: el("td", {class: "muted"}, "text", child). Text always goes in as
 * text (never HTML), so what callers said cannot inject markup.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** 75.4 -> "1:15". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

/** An ISO time or epoch seconds, in the operator's locale. */
export function formatTime(value) {
  if (value === null || value === undefined || value === "") return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

/** The logout button every page's nav bar has. */
export function wireLogout() {
  const button = document.getElementById("logout");
  if (!button) return;
  button.addEventListener("click", async () => {
    try {
      await fetch("/logout", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": await csrfToken() },
      });
    } finally {
      window.location.assign("/login");
    }
  });
}

/**
 * Subscribe to the live calls' events (Server-Sent Events; the cookie goes along).
 * `handlers` maps event names (snapshot, call_started, call_updated, transcript,
 * call_ended) to functions of the parsed data. Returns the EventSource.
 */
export function liveEvents(handlers, callId = null) {
  const url = callId
    ? `/api/calls/live/events?call_id=${encodeURIComponent(callId)}`
    : "/api/calls/live/events";
  const source = new EventSource(url, { withCredentials: true });
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  return source;
}
