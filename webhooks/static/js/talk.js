// Talk to the bot: pick a flow, add custom parameters, call from the browser's microphone
// (helper module softphone.js), and follow both sides of the conversation live.
import { api, csrfToken, el, liveEvents, session, wireLogout } from "./api.js";

const flowSelect = document.getElementById("flow");
const params = document.getElementById("params");
const callButton = document.getElementById("call");
const hangupButton = document.getElementById("hangup");
const statusLine = document.getElementById("status");
const level = document.getElementById("level");
const transcript = document.getElementById("transcript");
const transcriptEmpty = document.getElementById("transcript-empty");

let phone = null;
let callId = null;
// Events of calls whose id this page does not know yet (the feed may be quicker than the
// answer to start()): kept until the id is known, then replayed.
let early = [];

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function addParamRow(key = "", value = "") {
  const row = el("div", { class: "params-row" },
    el("input", { "aria-label": "Parameter name", placeholder: "name", value: key, class: "param-key" }),
    el("input", { "aria-label": "Parameter value", placeholder: "value", value, class: "param-value" }),
    el("button", { type: "button", "aria-label": "Remove parameter", onclick: () => row.remove() }, "×"),
  );
  params.append(row);
}

function readParams() {
  const out = {};
  for (const row of params.querySelectorAll(".params-row")) {
    const key = row.querySelector(".param-key").value.trim();
    if (key) out[key] = row.querySelector(".param-value").value;
  }
  return out;
}

function showLine({ role, text, interrupted }) {
  // An answer cut before a word of it was heard still shows, as cut.
  if (!text && !interrupted) return;
  transcriptEmpty.hidden = true;
  const item = el("li", { class: role, "data-role": role },
    el("span", { class: "who" }, role === "caller" ? "You" : `Bot${interrupted ? " (interrupted)" : ""}`),
    text || "…");
  transcript.append(item);
  item.scrollIntoView({ block: "nearest" });
}

function onFeedEvent(kind, data) {
  if (callId === null) {
    if (phone !== null && early.length < 500) early.push([kind, data]);
    return;
  }
  if (data.call_id !== callId) return;
  if (kind === "transcript") showLine(data);
  if (kind === "call_updated" && data.state) setStatus(`Call ${data.state}.`);
  if (kind === "call_ended") setStatus(`Call ended: ${data.outcome}.`);
}

function adopt(id) {
  callId = id;
  const pending = early;
  early = [];
  for (const [kind, data] of pending) onFeedEvent(kind, data);
}

async function loadFlows() {
  try {
    const { flows } = await api("/api/flows");
    for (const flow of flows) {
      // The name is short enough for the picker; the description shows on hover.
      flowSelect.append(el("option", { value: flow.name, title: flow.title }, flow.name));
    }
  } catch (error) {
    setStatus(`Flows could not be listed: ${error.message}`, true);
  }
}

function detailOf(event, name) {
  const detail = event.detail;
  return detail !== null && typeof detail === "object" && name in detail ? detail[name] : detail;
}

async function startCall() {
  callButton.disabled = true;
  transcript.replaceChildren();
  transcriptEmpty.hidden = false;
  callId = null;
  early = [];
  setStatus("Connecting…");
  try {
    // Imported on first use: the page lists flows even where the softphone is missing.
    const { Softphone } = await import("./softphone.js");
    phone = new Softphone();
    phone.addEventListener("state", (event) => setStatus(`Call ${detailOf(event, "state")}.`));
    phone.addEventListener("error", (event) => setStatus(`Error: ${detailOf(event, "message")}`, true));
    phone.addEventListener("level", (event) => { level.value = Number(detailOf(event, "level")) || 0; });
    phone.addEventListener("ended", () => {
      hangupButton.disabled = true;
      callButton.disabled = false;
      level.value = 0;
      phone = null;
    });
    const flow = flowSelect.value || undefined;
    const started = await phone.start({ flow, params: readParams(), csrfToken: await csrfToken() });
    const id = (started && started.call_id) || phone.callId;
    if (id) adopt(id);
    hangupButton.disabled = false;
  } catch (error) {
    setStatus(`The call could not start: ${error.message}`, true);
    callButton.disabled = false;
    phone = null;
  }
}

function hangUp() {
  if (phone) phone.hangUp();
  hangupButton.disabled = true;
}

async function main() {
  wireLogout();
  await session();
  addParamRow();
  document.getElementById("add-param").addEventListener("click", () => addParamRow());
  callButton.addEventListener("click", startCall);
  hangupButton.addEventListener("click", hangUp);
  await loadFlows();
  liveEvents({
    transcript: (data) => onFeedEvent("transcript", data),
    call_updated: (data) => onFeedEvent("call_updated", data),
    call_ended: (data) => onFeedEvent("call_ended", data),
  });
  document.body.dataset.ready = "true";
}

main();
