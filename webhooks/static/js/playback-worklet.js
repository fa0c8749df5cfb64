// The softphone's loudspeaker path, in the audio thread: the bot's 16 kHz PCM frames into
// a small jitter buffer, played out at the context's rate (docs/PROTOCOLS.md §8).
//
// - Playout starts once START_MS are buffered (the network's jitter is absorbed there),
//   or at once when a mark closes what is queued (the end of an utterance: nothing more
//   is coming to wait for). Running dry goes back to buffering.
// - Above MAX_MS (the page's clock ran slower than the server's, or a burst arrived) the
//   oldest audio is dropped back to START_MS: latency must stay conversational.
// - `clear` (barge-in) drops everything queued at once.
// - A mark sits at a position in the stream; when playout passes it, the page is told
//   (`played`), and sends it back to the server: that is how the bot knows what the
//   caller heard. Marks dropped by `clear` or by the drift control are told too, as a
//   phone gateway does, since that audio will never play.
// - Upsampling 16 kHz to the context's rate is a windowed-sinc interpolation from a
//   table of 64 phases (16 taps each), which keeps the images above 8 kHz out.

const IN_RATE = 16000;
const START_MS = 60;
const MAX_MS = 120;
const CAPACITY = IN_RATE * 4; // 4 s of ring buffer: far above MAX_MS
const HALF_TAPS = 8;
const PHASES = 64;
const CUTOFF = 0.45; // of 16 kHz: 7.2 kHz
const STATS_EVERY_S = 0.25;

function interpolationTable() {
  const taps = 2 * HALF_TAPS;
  const table = new Float32Array(PHASES * taps);
  for (let p = 0; p < PHASES; p++) {
    const frac = p / PHASES;
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      const t = j - (HALF_TAPS - 1) - frac; // distance from the output instant
      const x = 2 * CUTOFF * t;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const w = 0.42 + 0.5 * Math.cos((Math.PI * t) / HALF_TAPS) + 0.08 * Math.cos((2 * Math.PI * t) / HALF_TAPS);
      table[p * taps + j] = sinc * w;
      sum += table[p * taps + j];
    }
    for (let j = 0; j < taps; j++) table[p * taps + j] /= sum; // unity gain at DC
  }
  return table;
}

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ring = new Float32Array(CAPACITY);
    this.writeAbs = 0; // samples (16 kHz) ever written
    this.readPos = 0; // playout position, fractional, in the same count
    this.playing = false;
    this.marks = []; // [{at, name}] in stream order
    this.step = IN_RATE / sampleRate;
    this.table = interpolationTable();
    this.underruns = 0;
    this.droppedMs = 0;
    this.nextStats = 0;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  get buffered() {
    return this.writeAbs - this.readPos;
  }

  onMessage(data) {
    if (!data) return;
    if (data.type === "audio") {
      const samples = new Int16Array(data.buffer);
      for (let i = 0; i < samples.length; i++) {
        this.ring[(this.writeAbs + i) % CAPACITY] = samples[i] / 32768;
      }
      this.writeAbs += samples.length;
      if (this.buffered > CAPACITY - 2 * HALF_TAPS) this.skipTo(this.writeAbs - IN_RATE);
    } else if (data.type === "mark") {
      this.marks.push({ at: this.writeAbs, name: data.name });
    } else if (data.type === "clear") {
      this.skipTo(this.writeAbs);
      this.playing = false;
    } else if (data.type === "stop") {
      this.stopped = true;
    }
  }

  skipTo(position) {
    if (position > this.readPos) {
      this.droppedMs += ((position - this.readPos) * 1000) / IN_RATE;
      this.readPos = position;
    }
    this.passMarks();
  }

  passMarks() {
    while (this.marks.length && this.marks[0].at <= this.readPos) {
      this.port.postMessage({ type: "played", name: this.marks.shift().name });
    }
  }

  sample(k) {
    // Past the written end (an utterance's last samples) reads silence, never stale data.
    return k >= 0 && k < this.writeAbs && k >= this.writeAbs - CAPACITY ? this.ring[k % CAPACITY] : 0;
  }

  process(_inputs, outputs) {
    if (this.stopped) return false;
    const out = outputs[0];
    const first = out[0];
    const n = first.length;
    this.passMarks(); // a mark that came after its audio had already played out
    if (!this.playing) {
      const closed = this.marks.length > 0 && this.marks[this.marks.length - 1].at >= this.writeAbs;
      const ms = (this.buffered * 1000) / IN_RATE;
      this.playing = this.buffered > 0 && (ms >= START_MS || closed);
    } else if ((this.buffered * 1000) / IN_RATE > MAX_MS) {
      this.skipTo(this.writeAbs - (START_MS * IN_RATE) / 1000);
    }
    const taps = 2 * HALF_TAPS;
    for (let i = 0; i < n; i++) {
      if (!this.playing || this.readPos >= this.writeAbs) {
        if (this.playing) {
          this.playing = false;
          this.underruns++;
        }
        first[i] = 0;
        continue;
      }
      let k = Math.floor(this.readPos);
      let phase = Math.round((this.readPos - k) * PHASES);
      if (phase === PHASES) {
        k += 1;
        phase = 0;
      }
      const base = phase * taps;
      let acc = 0;
      for (let j = 0; j < taps; j++) acc += this.table[base + j] * this.sample(k - HALF_TAPS + 1 + j);
      first[i] = acc;
      this.readPos += this.step;
      if (this.marks.length && this.marks[0].at <= this.readPos) this.passMarks();
    }
    for (let c = 1; c < out.length; c++) out[c].set(first);
    if (currentTime >= this.nextStats) {
      this.nextStats = currentTime + STATS_EVERY_S;
      this.port.postMessage({
        type: "stats",
        bufferedMs: (Math.max(0, this.buffered) * 1000) / IN_RATE,
        underruns: this.underruns,
        droppedMs: this.droppedMs,
      });
    }
    return true;
  }
}

registerProcessor("softphone-playback", PlaybackProcessor);
