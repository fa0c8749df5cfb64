// One call: summary (outcome, cost), transcript with per-turn latency, events, its
// recording, a plot of turn latency through the call and the server's latency
// distribution (Chart.js, vendored: window.Chart from /static/vendor/chart.umd.min.js).
import { api, el, formatDuration, formatTime, session, wireLogout } from "./api.js";

const callId = decodeURIComponent(window.location.pathname.split("/").pop());
const statusLine = document.getElementById("call-status");

function fact(list, name, value) {
  if (value === null || value === undefined || value === "") return;
  list.append(el("dt", {}, name), el("dd", {}, value));
}

/**
 * Each bot answer's latency. The record's per-turn latency when it has one; else the
 * call's metrics list the answered turns' latencies in order, one per bot turn that
 * follows a caller turn.
 */
function turnLatencies(call) {
  const measured = (call.metrics && call.metrics.response_latencies_ms) || [];
  let next = 0;
  let previous = null;
  return call.turns.map((turn) => {
    let latency = turn.latency_ms;
    if (turn.speaker === "bot" && previous === "caller" && (latency === null || latency === undefined)) {
      latency = next < measured.length ? measured[next] : null;
      next += 1;
    }
    previous = turn.speaker;
    return turn.speaker === "bot" ? latency : null;
  });
}

function showTranscript(call, latencies) {
  const list = document.getElementById("transcript");
  list.replaceChildren(...call.turns.map((turn, i) => {
    const notes = [];
    if (latencies[i] !== null && latencies[i] !== undefined) notes.push(`${Math.round(latencies[i])} ms`);
    if (turn.interrupted) notes.push("interrupted");
    if (turn.intent) notes.push(turn.intent);
    return el("li", { class: turn.speaker, "data-role": turn.speaker },
      el("span", { class: "who" }, [turn.speaker, ...notes].join(" · ")), turn.text);
  }));
  if (!call.turns.length) list.append(el("li", { class: "empty" }, "No turns recorded."));
}

function showFacts(call) {
  const list = document.getElementById("facts");
  fact(list, "From", call.from_number);
  fact(list, "To", call.to_number);
  fact(list, "Carrier", call.protocol);
  fact(list, "Flow", call.flow);
  fact(list, "State", call.state);
  fact(list, "Outcome", call.outcome);
  fact(list, "End reason", call.end_reason);
  fact(list, "Started", formatTime(call.started_at));
  fact(list, "Duration", formatDuration(call.duration_s));
  fact(list, "Transferred to", call.transfer_target);
  if (call.cost_usd !== null && call.cost_usd !== undefined) fact(list, "Cost", `$${call.cost_usd.toFixed(4)}`);
}

function showEvents(call) {
  const tbody = document.querySelector("#events tbody");
  tbody.replaceChildren(...call.events.map((event) => el("tr", {},
    el("td", {}, formatTime(event.at)), el("td", {}, event.kind),
    el("td", {}, Object.keys(event.data).length ? JSON.stringify(event.data) : ""))));
}

function showRecording(call) {
  const box = document.getElementById("recording-box");
  const recording = call.recording;
  if (!recording) return;
  const seconds = recording.duration_s ? ` · ${formatDuration(recording.duration_s)}` : "";
  box.replaceChildren(
    el("audio", { controls: true, preload: "metadata", src: recording.url, id: "recording" }),
    el("p", { class: "muted" }, `${Math.round(recording.bytes / 1024)} KiB${seconds} · `,
      el("a", { href: recording.url, download: `${callId}.wav` }, "download")),
  );
}

function latencyChart(latencies) {
  const points = latencies.filter((value) => value !== null && value !== undefined);
  return new window.Chart(document.getElementById("latency-chart"), {
    type: "line",
    data: {
      labels: points.map((_, i) => `turn ${i + 1}`),
      datasets: [{ label: "answer latency (ms)", data: points.map(Math.round), borderColor: "#1f5fbf", tension: 0.2 }],
    },
    options: {
      maintainAspectRatio: false,
      animation: false, // drawn once, complete: what is shown (and screenshotted) is final
      scales: { y: { beginAtZero: true, title: { display: true, text: "ms" } } },
    },
  });
}

function distributionChart(stats) {
  const turn = stats.histograms.turn || { buckets: [] };
  let lower = 0;
  const labels = turn.buckets.map((bucket) => {
    const label = bucket.le === null ? `> ${lower} s` : `${lower}–${bucket.le} s`;
    if (bucket.le !== null) lower = bucket.le;
    return label;
  });
  return new window.Chart(document.getElementById("latency-dist"), {
    type: "bar",
    data: {
      labels,
      datasets: [{ label: `turns answered by this server (${turn.count})`, data: turn.buckets.map((b) => b.count), backgroundColor: "#6b9bd8" }],
    },
    options: { maintainAspectRatio: false, animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
}

async function main() {
  wireLogout();
  await session();
  document.getElementById("call-id").textContent = callId;
  let call;
  try {
    call = await api(`/api/calls/${encodeURIComponent(callId)}`);
  } catch (error) {
    statusLine.textContent = error.status === 404 ? `No call ${callId}.` : error.message;
    statusLine.classList.add("error");
    return;
  }
  statusLine.textContent = "";
  const latencies = turnLatencies(call);
  showFacts(call);
  showTranscript(call, latencies);
  showEvents(call);
  showRecording(call);
  latencyChart(latencies);
  try {
    distributionChart(await api("/api/stats/latency"));
  } catch (error) {
    statusLine.textContent = `Latency distribution unavailable: ${error.message}`;
  }
  document.body.dataset.ready = "true";
}

main();
