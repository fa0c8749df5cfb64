// History: the calls API's filters (state, outcome, number, since, until) and its pages
// (next_cursor), newest first; each call links to its own page.
import { api, el, formatDuration, formatTime, session, wireLogout } from "./api.js";

const form = document.getElementById("filters");
const tbody = document.querySelector("#calls tbody");
const more = document.getElementById("more");
const noCalls = document.getElementById("no-calls");
const statusLine = document.getElementById("list-status");
const FIELDS = ["state", "outcome", "number", "since", "until"];

let cursor = null;

function query() {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const value = form.elements[name].value.trim();
    if (!value) continue;
    // datetime-local has no zone: send the operator's local time as an absolute one.
    params.set(name, name === "since" || name === "until" ? new Date(value).toISOString() : value);
  }
  return params;
}

function row(call) {
  return el("tr", { "data-call-id": call.call_id },
    el("td", {}, formatTime(call.started_at)),
    el("td", {}, el("a", { href: `/calls/${encodeURIComponent(call.call_id)}` }, call.call_id)),
    el("td", {}, call.from_number || ""),
    el("td", {}, call.to_number || ""),
    el("td", {}, call.protocol || ""),
    el("td", {}, call.flow || ""),
    el("td", {}, call.state || ""),
    el("td", {}, call.outcome || ""),
    el("td", {}, formatDuration(call.duration_s)),
    el("td", {}, call.cost_usd === null || call.cost_usd === undefined ? "" : `$${call.cost_usd.toFixed(4)}`),
  );
}

async function load(append) {
  const params = query();
  if (append && cursor) params.set("cursor", cursor);
  statusLine.textContent = "Loading…";
  statusLine.classList.remove("error");
  try {
    const page = await api(`/api/calls?${params}`);
    if (!append) tbody.replaceChildren();
    tbody.append(...page.calls.map(row));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    noCalls.hidden = tbody.children.length > 0;
    statusLine.textContent = `${tbody.children.length} call(s) shown.`;
  } catch (error) {
    statusLine.textContent = error.message;
    statusLine.classList.add("error");
  }
}

async function main() {
  wireLogout();
  await session();
  // The filters live in the address bar too, so a filtered view can be shared or reloaded.
  const initial = new URLSearchParams(window.location.search);
  for (const name of FIELDS) {
    if (!initial.has(name)) continue;
    const input = form.elements[name];
    const value = initial.get(name);
    input.value = input.type === "datetime-local" ? value.slice(0, 16) : value;
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    window.history.replaceState(null, "", `/calls?${query()}`);
    load(false);
  });
  form.addEventListener("reset", () => setTimeout(() => form.requestSubmit(), 0));
  more.addEventListener("click", () => load(true));
  await load(false);
  document.body.dataset.ready = "true";
}

main();
