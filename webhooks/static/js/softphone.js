// The console's softphone: talk to the bot from the browser (docs/PROTOCOLS.md §8).
//
//   const phone = new Softphone();
//   phone.addEventListener("state", (e) => console.log(e.detail.state));
//   const { call_id } = await phone.start({ flow: "restaurant", params: { name: "Ana" }, csrfToken });
//   phone.hangUp();
//
// start() asks for the microphone (echo cancellation on: the bot must not hear itself
// through the speakers), mints a call on the HTTP plane (POST /api/browser/calls, with the
// session cookie and the CSRF token), opens the media WebSocket it names and says
// `start`. Once the server answers `started`, the capture worklet's 20 ms frames of 16 kHz
// PCM go out as binary messages, and the bot's frames play through the playback
// worklet's jitter buffer, which tells us when each mark has been *played* so that we can
// echo it. Events (all CustomEvents, details in brackets):
//
//   state    {state: "connecting" | "live" | "ending" | "ended", callId}
//   error    {code, message}            a refusal, a server error frame, a lost socket
//   level    {level}                    microphone RMS 0..1, every 20 ms (a meter)
//   buffer   {bufferedMs, underruns, droppedMs}   the jitter buffer, every 250 ms
//   transfer {to}                       the bot handed over: a phone call would go to `to`
//   ended    {reason, code}             the call is over; everything is released

const MINT_URL = "/api/browser/calls";
const HANGUP_GRACE_MS = 2000; // how long the server gets to say `end` after our hangup
const MIC_CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
};

export class Softphone extends EventTarget {
  /**
   * @param {object} [options]
   * @param {string} [options.mintUrl] where calls are minted (default /api/browser/calls)
   */
  constructor({ mintUrl = MINT_URL } = {}) {
    super();
    this.mintUrl = mintUrl;
    this.state = "idle";
    this.callId = null;
    this.stats = { bufferedMs: 0, underruns: 0, droppedMs: 0 };
    this.endReason = null;
    this._ws = null;
    this._context = null;
    this._stream = null;
    this._capture = null;
    this._playback = null;
    this._hangupTimer = null;
  }

  /**
   * Start a call. Resolves with {call_id} once the server has admitted it.
   * @param {object} [options]
   * @param {string} [options.flow] the flow to run (the server's default when left out)
   * @param {Object<string,string>} [options.params] custom parameters for the call
   * @param {string} [options.csrfToken] the console session's CSRF token
   */
  async start({ flow, params, csrfToken } = {}) {
    if (this.state !== "idle") throw new Error("this softphone has already been used");
    this._setState("connecting");
    try {
      // The microphone first: a refused permission must not leave a minted call behind.
      this._stream = await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
      await this._startAudio();
      const call = await this._mint(flow, params, csrfToken);
      this.callId = call.call_id;
      await this._connect(call);
      return { call_id: this.callId };
    } catch (error) {
      this._fail("start_failed", error.message || String(error));
      this._finish("start_failed", null);
      throw error;
    }
  }

  /** Hang up: the server ends the call and says `end`; we close if it does not. */
  hangUp() {
    const ws = this._ws;
    if (this.state === "ended" || this.state === "ending") return;
    this._setState("ending");
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ event: "hangup" }));
      this._hangupTimer = setTimeout(() => ws.close(1000, "caller hung up"), HANGUP_GRACE_MS);
    } else {
      this._finish("caller_hangup", null);
    }
  }

  /** Press a key (0-9, *, #, A-D). */
  sendDigit(digit) {
    if (this._ws && this._ws.readyState === WebSocket.OPEN && this.state === "live") {
      this._ws.send(JSON.stringify({ event: "dtmf", digit: String(digit) }));
    }
  }

  // -- set-up ------------------------------------------------------------------------

  async _startAudio() {
    // The context runs at the device's rate; the worklets convert to and from 16 kHz.
    const context = new AudioContext({ latencyHint: "interactive" });
    this._context = context;
    await Promise.all([
      context.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url)),
      context.audioWorklet.addModule(new URL("./playback-worklet.js", import.meta.url)),
    ]);
    if (context.state === "suspended") await context.resume();
    const source = context.createMediaStreamSource(this._stream);
    this._capture = new AudioWorkletNode(context, "softphone-capture", {
      numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit",
    });
    source.connect(this._capture);
    this._playback = new AudioWorkletNode(context, "softphone-playback", {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [context.destination.channelCount > 1 ? 2 : 1],
    });
    this._playback.connect(context.destination);
    this._capture.port.onmessage = (event) => this._onCapture(event.data);
    this._playback.port.onmessage = (event) => this._onPlayback(event.data);
  }

  async _mint(flow, params, csrfToken) {
    const body = {};
    if (flow) body.flow = flow;
    if (params && Object.keys(params).length) body.params = params;
    const headers = { "Content-Type": "application/json" };
    if (csrfToken) headers["X-CSRF-Token"] = csrfToken;
    const response = await fetch(this.mintUrl, {
      method: "POST", credentials: "same-origin", headers, body: JSON.stringify(body),
    });
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    if (response.status !== 201 || !answer || !answer.url) {
      const message = (answer && (answer.message || answer.error)) || `HTTP ${response.status}`;
      throw new Error(`the call was refused: ${message}`);
    }
    return answer;
  }

  _connect(call) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(call.url);
      ws.binaryType = "arraybuffer";
      this._ws = ws;
      let admitted = false;
      ws.onopen = () => {
        ws.send(JSON.stringify({ event: "start", call_id: call.call_id, sample_rate: 16000 }));
      };
      ws.onmessage = (event) => {
        if (typeof event.data !== "string") {
          // The bot's voice: handed to the audio thread without a copy.
          this._playback.port.postMessage({ type: "audio", buffer: event.data }, [event.data]);
          return;
        }
        const message = parse(event.data);
        if (message.event === "started" && !admitted) {
          admitted = true;
          this._setState("live");
          resolve();
        } else {
          this._onServer(message);
        }
      };
      ws.onclose = (event) => {
        const reason = this.endReason || event.reason || (event.code === 1000 ? "completed" : `closed_${event.code}`);
        if (!admitted) {
          // 1008: a bad or reused token; 1013: the server is full. The upgrade's own
          // refusals (403 for a foreign page) reach us only as a close.
          reject(new Error(`the media connection closed (${event.code} ${event.reason || "refused"})`));
        }
        this._finish(reason, event.code);
      };
      ws.onerror = () => {
        if (admitted) this._fail("connection", "the media connection failed");
      };
    });
  }

  // -- messages ----------------------------------------------------------------------

  _onServer(message) {
    switch (message.event) {
      case "mark":
        this._playback.port.postMessage({ type: "mark", name: message.name });
        break;
      case "clear":
        this._playback.port.postMessage({ type: "clear" });
        break;
      case "transfer":
        this._emit("transfer", { to: message.to });
        break;
      case "end":
        this.endReason = message.reason;
        this._setState("ending");
        break;
      case "error":
        this._fail(message.code || "error", message.message || "the server refused a message");
        break;
      default:
        this._fail("unexpected", `unexpected message from the server: ${String(message.event)}`);
    }
  }

  _onCapture(data) {
    if (data.type !== "frame") return;
    this._emit("level", { level: data.level });
    const ws = this._ws;
    if (ws && ws.readyState === WebSocket.OPEN && this.state === "live") ws.send(data.buffer);
  }

  _onPlayback(data) {
    if (data.type === "played") {
      // The caller heard everything before this mark: tell the server.
      const ws = this._ws;
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ event: "mark", name: data.name }));
    } else if (data.type === "stats") {
      this.stats = { bufferedMs: data.bufferedMs, underruns: data.underruns, droppedMs: data.droppedMs };
      this._emit("buffer", this.stats);
    }
  }

  // -- the end -----------------------------------------------------------------------

  _finish(reason, code) {
    if (this.state === "ended") return;
    clearTimeout(this._hangupTimer);
    for (const node of [this._capture, this._playback]) {
      if (node) {
        node.port.postMessage({ type: "stop" });
        node.disconnect();
      }
    }
    if (this._stream) for (const track of this._stream.getTracks()) track.stop();
    if (this._context) this._context.close().catch(() => {});
    if (this._ws && this._ws.readyState <= WebSocket.OPEN) this._ws.close(1000, "caller hung up");
    this._capture = this._playback = this._stream = this._context = null;
    this._setState("ended");
    this._emit("ended", { reason, code });
  }

  _fail(code, message) {
    this._emit("error", { code, message });
  }

  _setState(state) {
    this.state = state;
    this._emit("state", { state, callId: this.callId });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

function parse(text) {
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" ? value : {};
  } catch {
    return {};
  }
}
