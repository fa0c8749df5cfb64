// The page side of bench_browser_transport.py: one call over one transport, with the
// microphone and what is played both tapped on the same AudioContext clock.
//
//   await window.bench.start({ variant: "websocket", url: "ws://…" })
//   await window.bench.start({ variant: "webrtc", url: "http://…/offer" })
//   window.bench.state       "idle" | "starting" | "live" | "failed"
//   window.bench.collect()   onsets, envelopes, transport stats (for Python to analyse)
//
// The WebSocket variant is the product's own path: the real capture-worklet.js and
// playback-worklet.js (served from webhooks/static/js), 20 ms frames of 16 kHz PCM16 as
// binary messages, the echo's frames posted to the playback worklet exactly as
// softphone.js does. The WebRTC variant is the browser's own stack: the getUserMedia
// track into an RTCPeerConnection (Opus), the echoed remote track played by an <audio>
// element (Chrome plays remote WebRTC audio only through a media element) and tapped
// through WebAudio for the measurement.

// softphone.js's constraints, unchanged: both variants must hear the same processed track.
const MIC_CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
};

const bench = {
  state: "idle",
  error: null,
  variant: null,
  liveAt: null, // context time when media started flowing both ways
  onsets: { mic: [], played: [] },
  env: { mic: [], played: [] },
  playbackStats: null,
  trackSettings: null,
  trackCapabilities: null,
  _ctx: null,
  _pc: null,
  _ws: null,
  _nodes: [],
};
window.bench = bench;

function tapNode(ctx, name, threshold) {
  const node = new AudioWorkletNode(ctx, "bench-tap", {
    numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit",
    processorOptions: { threshold, holdoffS: 0.4 },
  });
  node.port.onmessage = (event) => {
    const d = event.data;
    if (d.type === "onset") bench.onsets[name].push(d.t);
    else if (d.type === "env") bench.env[name].push({ start: d.start, step: d.step, values: d.values });
  };
  bench._nodes.push(node);
  return node;
}

async function openMicrophone() {
  const stream = await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
  const track = stream.getAudioTracks()[0];
  bench.trackSettings = track.getSettings();
  bench.trackCapabilities = track.getCapabilities ? track.getCapabilities() : null;
  const ctx = new AudioContext({ latencyHint: "interactive" });
  bench._ctx = ctx;
  return { stream, ctx };
}

async function startWebSocket(url, threshold) {
  const { stream, ctx } = await openMicrophone();
  await Promise.all([
    ctx.audioWorklet.addModule("/js/capture-worklet.js"),
    ctx.audioWorklet.addModule("/js/playback-worklet.js"),
    ctx.audioWorklet.addModule("/bench/tap-worklet.js"),
  ]);
  if (ctx.state === "suspended") await ctx.resume();
  const source = ctx.createMediaStreamSource(stream);
  // The same node options as softphone.js's _startAudio.
  const capture = new AudioWorkletNode(ctx, "softphone-capture", {
    numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit",
  });
  const playback = new AudioWorkletNode(ctx, "softphone-playback", {
    numberOfInputs: 0, numberOfOutputs: 1,
    outputChannelCount: [ctx.destination.channelCount > 1 ? 2 : 1],
  });
  bench._nodes.push(capture, playback);
  source.connect(capture);
  source.connect(tapNode(ctx, "mic", threshold));
  playback.connect(ctx.destination);
  playback.connect(tapNode(ctx, "played", threshold));
  playback.port.onmessage = (event) => {
    if (event.data.type === "stats") bench.playbackStats = event.data;
  };
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  bench._ws = ws;
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("the echo WebSocket failed to open"));
  });
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") {
      playback.port.postMessage({ type: "audio", buffer: event.data }, [event.data]);
    }
  };
  capture.port.onmessage = (event) => {
    if (event.data.type === "frame" && ws.readyState === WebSocket.OPEN) ws.send(event.data.buffer);
  };
  bench.liveAt = ctx.currentTime;
}

async function startWebRtc(url, threshold) {
  const { stream, ctx } = await openMicrophone();
  await ctx.audioWorklet.addModule("/bench/tap-worklet.js");
  if (ctx.state === "suspended") await ctx.resume();
  ctx.createMediaStreamSource(stream).connect(tapNode(ctx, "mic", threshold));
  // No STUN/TURN: both ends are on this machine, host candidates suffice.
  const pc = new RTCPeerConnection({ iceServers: [] });
  bench._pc = pc;
  pc.addTrack(stream.getAudioTracks()[0], stream);
  const remote = new Promise((resolve) => {
    pc.ontrack = (event) => resolve(event.streams[0] || new MediaStream([event.track]));
  });
  const connected = new Promise((resolve, reject) => {
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") resolve();
      else if (pc.connectionState === "failed") reject(new Error("the peer connection failed"));
    };
  });
  await pc.setLocalDescription(await pc.createOffer());
  // aiortc takes no trickled candidates: the offer goes once gathering is complete.
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => {
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
    });
  }
  // A string body is text/plain: a "simple" cross-origin request, no CORS preflight.
  const response = await fetch(url, {
    method: "POST", body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
  });
  if (!response.ok) throw new Error(`signalling answered HTTP ${response.status}`);
  await pc.setRemoteDescription(await response.json());
  const remoteStream = await remote;
  const audio = document.createElement("audio");
  audio.autoplay = true;
  audio.srcObject = remoteStream;
  document.body.append(audio);
  await audio.play();
  ctx.createMediaStreamSource(remoteStream).connect(tapNode(ctx, "played", threshold));
  await connected;
  bench.liveAt = ctx.currentTime;
}

bench.start = async ({ variant, url, threshold = 0.05 }) => {
  bench.variant = variant;
  bench.state = "starting";
  try {
    if (variant === "websocket") await startWebSocket(url, threshold);
    else if (variant === "webrtc") await startWebRtc(url, threshold);
    else throw new Error(`unknown variant ${variant}`);
    bench.state = "live";
  } catch (error) {
    bench.error = String((error && error.message) || error);
    bench.state = "failed";
  }
  return bench.state;
};

async function rtcStats() {
  if (!bench._pc) return null;
  const out = {};
  const report = await bench._pc.getStats();
  const codecs = {};
  report.forEach((s) => { if (s.type === "codec") codecs[s.id] = s; });
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.inbound = {
        packetsReceived: s.packetsReceived, packetsLost: s.packetsLost, jitterMs: (s.jitter || 0) * 1000,
        // The receiver's jitter buffer (NetEq): the average time a sample waited in it.
        jitterBufferMs: s.jitterBufferEmittedCount ? (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount : null,
        concealedSamples: s.concealedSamples, totalSamplesReceived: s.totalSamplesReceived,
        codec: codecs[s.codecId] ? `${codecs[s.codecId].mimeType} ${codecs[s.codecId].sdpFmtpLine || ""}`.trim() : null,
      };
    } else if (s.type === "outbound-rtp" && s.kind === "audio") {
      out.outbound = {
        packetsSent: s.packetsSent, bytesSent: s.bytesSent,
        codec: codecs[s.codecId] ? `${codecs[s.codecId].mimeType} ${codecs[s.codecId].sdpFmtpLine || ""}`.trim() : null,
      };
    } else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
      out.rttMs = s.currentRoundTripTime != null ? s.currentRoundTripTime * 1000 : null;
    }
  });
  return out;
}

// Microphone bursts since media flowed both ways (what the Python side waits for).
bench.burstsSinceLive = () => bench.onsets.mic.filter((t) => bench.liveAt !== null && t >= bench.liveAt).length;

bench.collect = async () => ({
  variant: bench.variant,
  state: bench.state,
  error: bench.error,
  sampleRate: bench._ctx ? bench._ctx.sampleRate : null,
  baseLatency: bench._ctx ? bench._ctx.baseLatency : null,
  outputLatency: bench._ctx ? bench._ctx.outputLatency : null,
  liveAt: bench.liveAt,
  onsets: bench.onsets,
  env: bench.env,
  playbackStats: bench.playbackStats,
  rtc: await rtcStats(),
  trackSettings: bench.trackSettings,
  trackCapabilities: bench.trackCapabilities,
});

bench.stop = () => {
  for (const node of bench._nodes) {
    node.port.postMessage({ type: "stop" });
    node.disconnect();
  }
  if (bench._ws) bench._ws.close(1000, "bench done");
  if (bench._pc) bench._pc.close();
  if (bench._ctx) bench._ctx.close().catch(() => {});
};

document.body.dataset.ready = "1";
