// A measuring tap for bench_browser_transport.py, in the audio thread: it times the onset
// of each tone burst on the context's own clock and keeps a 10 ms peak envelope.
//
// Both taps of a page (the microphone, and what the page plays) live in one AudioContext,
// so their times share one clock and their difference is the round trip. The onset is
// timed to the sample (currentTime is the start of this render quantum; the sample index
// within it adds the rest), far finer than the 128-frame quantum or a ScriptProcessor.
//
// An onset is the first sample above `threshold` after at least `holdoffS` without one:
// the bursts are 200 ms of tone 1.5 s apart, so a tone's own zero crossings (a fraction
// of a millisecond) never re-trigger it, and the next burst always does.

class BenchTap extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.threshold = o.threshold ?? 0.05;
    this.holdoff = o.holdoffS ?? 0.4;
    this.lastLoud = -Infinity;
    this.block = Math.max(1, Math.round(sampleRate * 0.01)); // 10 ms envelope blocks
    this.blockFill = 0;
    this.blockPeak = 0;
    this.blockStart = null;
    this.env = [];
    this.envStart = null;
    this.nextFlush = 0;
    this.stopped = false;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === "stop") this.stopped = true;
    };
  }

  process(inputs) {
    if (this.stopped) return false;
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true; // nothing connected yet (a remote track not flowing)
    const t0 = currentTime;
    for (let i = 0; i < channel.length; i++) {
      const v = Math.abs(channel[i]);
      const t = t0 + i / sampleRate;
      if (v > this.threshold) {
        if (t - this.lastLoud > this.holdoff) this.port.postMessage({ type: "onset", t, peak: v });
        this.lastLoud = t;
      }
      if (this.blockFill === 0) this.blockStart = t;
      if (v > this.blockPeak) this.blockPeak = v;
      if (++this.blockFill === this.block) {
        if (this.envStart === null) this.envStart = this.blockStart;
        this.env.push(this.blockPeak);
        this.blockFill = 0;
        this.blockPeak = 0;
      }
    }
    // The envelope goes to the page in batches: one message per 10 ms block would be
    // 100 messages a second per tap for nothing.
    if (t0 >= this.nextFlush && this.env.length) {
      this.nextFlush = t0 + 0.5;
      this.port.postMessage({ type: "env", start: this.envStart, step: this.block / sampleRate, values: this.env });
      this.envStart = null;
      this.env = [];
    }
    return true;
  }
}

registerProcessor("bench-tap", BenchTap);
