// The softphone's microphone path, in the audio thread: the context's rate (48 kHz on
// most machines, 44.1 kHz on some) down to the browser leg's 16 kHz, then 20 ms frames of
// 16-bit PCM posted to the page, which sends them as they are (docs/PROTOCOLS.md §8).
//
// Decimation needs a low-pass first: everything between 8 kHz (the new Nyquist) and the
// old one would fold back into the speech band and the recogniser would hear it. So the
// input goes through a windowed-sinc FIR (Blackman, cut-off 7 kHz) evaluated only at the
// output instants, and a non-integer ratio (44.1 kHz) takes the linear interpolation of
// two filtered neighbours; after a 7 kHz low-pass at 44.1 kHz that adds no audible error.

const OUT_RATE = 16000;
const FRAME_SAMPLES = 320; // 20 ms at 16 kHz: 640 bytes on the wire
const CUTOFF_HZ = 7000;

function lowPass(inRate) {
  // ~40 taps per output sample: a ~2 kHz transition band at any input rate.
  let taps = Math.round((inRate / OUT_RATE) * 40);
  if (taps % 2 === 0) taps += 1;
  const fc = CUTOFF_HZ / inRate; // cycles per input sample
  const mid = (taps - 1) / 2;
  const h = new Float32Array(taps);
  let sum = 0;
  for (let i = 0; i < taps; i++) {
    const t = i - mid;
    const sinc = t === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * t) / (Math.PI * t);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1));
    h[i] = sinc * w;
    sum += h[i];
  }
  for (let i = 0; i < taps; i++) h[i] /= sum; // unity gain at DC
  return h;
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.h = lowPass(sampleRate);
    this.step = sampleRate / OUT_RATE; // input samples per output sample
    // Input history: enough for the filter plus a few render quanta.
    this.buf = new Float32Array(this.h.length + 4096);
    this.len = 0;
    this.pos = this.h.length; // next output instant, in input samples from buf[0]
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.fill = 0;
    this.sumSquares = 0;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === "stop") this.stopped = true;
    };
  }

  filtered(k) {
    // The FIR's output for input sample k (causal: taps reach back from k).
    const h = this.h;
    const buf = this.buf;
    let acc = 0;
    for (let j = 0, n = h.length; j < n; j++) acc += h[j] * buf[k - j];
    return acc;
  }

  process(inputs) {
    if (this.stopped) return false;
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true; // no track connected yet
    if (this.len + channel.length > this.buf.length) return true; // cannot happen; stay safe
    this.buf.set(channel, this.len);
    this.len += channel.length;
    while (Math.floor(this.pos) + 1 < this.len) {
      const k = Math.floor(this.pos);
      const frac = this.pos - k;
      const a = this.filtered(k);
      const y = frac === 0 ? a : a + (this.filtered(k + 1) - a) * frac;
      this.push(y);
      this.pos += this.step;
    }
    // Keep only the history the filter still needs.
    const keepFrom = Math.floor(this.pos) - this.h.length;
    if (keepFrom > 0) {
      this.buf.copyWithin(0, keepFrom, this.len);
      this.len -= keepFrom;
      this.pos -= keepFrom;
    }
    return true;
  }

  push(sample) {
    const s = Math.max(-1, Math.min(1, sample));
    this.frame[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    this.sumSquares += s * s;
    if (this.fill === FRAME_SAMPLES) {
      const level = Math.sqrt(this.sumSquares / FRAME_SAMPLES);
      // The frame's buffer is handed over, not copied: a new one is made for the next.
      const buffer = this.frame.buffer;
      this.port.postMessage({ type: "frame", buffer, level }, [buffer]);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.fill = 0;
      this.sumSquares = 0;
    }
  }
}

registerProcessor("softphone-capture", CaptureProcessor);
