// Live calls: every call under way, updated by the server's push (Server-Sent Events),
// with the selected call's transcript and buttons to end or transfer a call.
import { api, el, formatDuration, liveEvents, session, wireLogout } from "./api.js";

const tbody = document.querySelector("#live-calls tbody");
const noCalls = document.getElementById("no-calls");
const feedStatus = document.getElementById("feed-status");
const transcript = document.getElementById("transcript");
const transcriptEmpty = document.getElementById("transcript-empty");
const selectedLabel = document.getElementById("selected-call");

const MAX_LINES = 200; // per call, so a long call cannot grow the page without bound
const calls = new Map(); // call_id -> call (as /api/calls/live shows it)
const lines = new Map(); // call_id -> transcript lines
let selected = null;

function speakingBadge(who) {
  if (!who) return el("span", { class: "muted" }, "—");
  return el("span", { class: `badge ${who}` }, who);
}

async function act(callId, action, body) {
  try {
    await api(`/api/calls/${encodeURIComponent(callId)}/${action}`, { method: "POST", body });
    feedStatus.textContent = `${action === "end" ? "Ending" : "Transferring"} call ${callId}…`;
  } catch (error) {
    feedStatus.textContent = `Could not ${action} call ${callId}: ${error.message}`;
  }
}

function row(call) {
  const transferTo = el("input", {
    type: "tel", placeholder: "default number", "aria-label": `Transfer ${call.call_id} to`,
    class: "transfer-to", size: 14,
  });
  const tr = el("tr", { "data-call-id": call.call_id, class: call.call_id === selected ? "selected" : null },
    el("td", {}, el("button", {
      type: "button", class: "select", "aria-label": `Follow call ${call.call_id}`,
      onclick: () => select(call.call_id),
    }, call.call_id)),
    el("td", {}, call.carrier || ""),
    el("td", { class: "flow" }, call.flow || ""),
    el("td", { class: "state" }, call.state),
    el("td", { class: "duration" }, formatDuration(call.duration_s)),
    el("td", { class: "speaking" }, speakingBadge(call.speaking)),
    el("td", {}, call.from_number || ""),
    el("td", {}, call.to_number || ""),
    el("td", { class: "row" },
      el("button", { type: "button", class: "danger end", onclick: () => act(call.call_id, "end") }, "End"),
      transferTo,
      el("button", {
        type: "button", class: "transfer",
        onclick: () => act(call.call_id, "transfer", transferTo.value.trim() ? { to: transferTo.value.trim() } : {}),
      }, "Transfer")),
  );
  return tr;
}

function render() {
  const ordered = [...calls.values()].sort((a, b) => a.started_at - b.started_at);
  tbody.replaceChildren(...ordered.map(row));
  noCalls.hidden = ordered.length > 0;
}

function updateRow(call) {
  // In place: rebuilding the row would wipe a transfer number being typed.
  const tr = tbody.querySelector(`tr[data-call-id="${CSS.escape(call.call_id)}"]`);
  if (!tr) { render(); return; }
  tr.querySelector(".state").textContent = call.state;
  tr.querySelector(".flow").textContent = call.flow || "";
  tr.querySelector(".speaking").replaceChildren(speakingBadge(call.speaking));
}

function renderTranscript() {
  const shown = selected === null ? [] : lines.get(selected) || [];
  selectedLabel.textContent = selected === null ? "" : `(${selected})`;
  transcript.replaceChildren(...shown.map((line) => el("li", { class: line.role, "data-role": line.role },
    el("span", { class: "who" }, `${line.role}${line.interrupted ? " (interrupted)" : ""}`), line.text)));
  transcriptEmpty.hidden = shown.length > 0;
}

function select(callId) {
  selected = callId;
  render();
  renderTranscript();
}

function tick() {
  // Durations advance between pushes without asking the server.
  const now = Date.now() / 1000;
  for (const call of calls.values()) call.duration_s = now - call.started_at;
  for (const cell of tbody.querySelectorAll("tr")) {
    const call = calls.get(cell.dataset.callId);
    if (call) cell.querySelector(".duration").textContent = formatDuration(call.duration_s);
  }
}

function onSnapshot({ calls: live }) {
  calls.clear();
  for (const call of live) calls.set(call.call_id, call);
  if (selected === null && live.length) selected = live[0].call_id;
  feedStatus.textContent = "Live: updates arrive as they happen.";
  render();
  renderTranscript();
}

function onTranscript(data) {
  const list = lines.get(data.call_id) || [];
  list.push(data);
  if (list.length > MAX_LINES) list.shift();
  lines.set(data.call_id, list);
  if (data.call_id === selected) renderTranscript();
}

async function main() {
  wireLogout();
  await session();
  const source = liveEvents({
    snapshot: onSnapshot,
    call_started: (call) => {
      calls.set(call.call_id, call);
      if (selected === null) selected = call.call_id;
      render();
      renderTranscript();
    },
    call_updated: (update) => {
      const call = calls.get(update.call_id);
      if (!call) return;
      for (const [key, value] of Object.entries(update)) {
        if (value !== null && value !== undefined) call[key] = value;
      }
      if ("speaking" in update) call.speaking = update.speaking;
      updateRow(call);
    },
    transcript: onTranscript,
    call_ended: ({ call_id: callId, outcome }) => {
      calls.delete(callId);
      feedStatus.textContent = `Call ${callId} ended (${outcome}).`;
      render();
    },
  });
  source.addEventListener("error", () => {
    // EventSource reconnects by itself (and gets a fresh snapshot); a closed one was
    // refused (logged out, or too many watchers).
    feedStatus.textContent = source.readyState === EventSource.CLOSED
      ? "Live updates stopped: reload the page." : "Reconnecting…";
  });
  setInterval(tick, 1000);
  document.body.dataset.ready = "true";
}

main();
