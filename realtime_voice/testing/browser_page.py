"""What a test or a benchmark adds to the console's pages in a headless Chromium.

Two init scripts (``context.add_init_script``) and the voice they speak with:

- `TAP_SPEAKERS` copies what the page sends to its speakers (16 kHz mono) into
  ``window.__played`` and keeps ``window.__loudAt``, the page clock at the last block of
  sound, and ``window.__firstLoud``, the first such moment after ``window.__armedAt``
  (which `SPEAK_INTO_MICROPHONE` sets when the caller's words end). Blocks are 512
  frames, about 11 ms at 48 kHz: that bounds the timing error.
- `SPEAK_INTO_MICROPHONE` mixes a second source into the microphone track the page opens
  (Chromium's fake device reading a WAV file), so the caller can speak at a moment the
  test chooses, such as while the bot is heard talking, rather than at a fixed time in
  the file. ``window.__say(base64 of 48 kHz PCM16)`` plays it and resolves with the page
  clock once the last sample has gone into the track.

Predicates for ``page.wait_for_function`` must be functions (``"() => ..."``): the
console's Content-Security-Policy forbids eval, which bare expressions need.
"""

from __future__ import annotations

import base64
import wave
from pathlib import Path

import numpy as np

from realtime_voice.audio.g711 import ulaw_to_pcm16
from realtime_voice.testing.speech import caller_audio
from realtime_voice.testing.wav import linear_resample

__all__ = [
    "CHROMIUM",
    "MIC_RATE",
    "SPEAK_INTO_MICROPHONE",
    "TAP_SPEAKERS",
    "caller_voice",
    "caller_voice_b64",
    "chromium_args",
    "write_microphone",
]

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium (``apt-get install chromium``)."""

MIC_RATE = 48_000
"""The rate of the fake microphone's WAV and of `SPEAK_INTO_MICROPHONE`'s mixer."""

TAP_SPEAKERS = """
(() => {
  window.__played = [];
  window.__loudAt = 0;
  window.__armedAt = Infinity;
  window.__firstLoud = null;
  const taps = new WeakMap();
  const connect = AudioNode.prototype.connect;
  AudioNode.prototype.connect = function (target, ...rest) {
    const result = connect.call(this, target, ...rest);
    if (target instanceof AudioDestinationNode) {
      const ctx = this.context;
      let tap = taps.get(ctx);
      if (!tap) {
        tap = ctx.createScriptProcessor(512, 1, 1);
        const step = ctx.sampleRate / 16000;
        tap.onaudioprocess = (event) => {
          const input = event.inputBuffer.getChannelData(0);
          let peak = 0;
          for (let i = 0; i < input.length; i += 1) peak = Math.max(peak, Math.abs(input[i]));
          for (let i = 0; i < input.length; i += step) {
            const v = Math.max(-1, Math.min(1, input[Math.floor(i)]));
            window.__played.push(Math.round(v * 32767));
          }
          if (peak > 0.03) {
            const now = performance.now();
            window.__loudAt = now;
            if (window.__firstLoud === null && now > window.__armedAt) window.__firstLoud = now;
          }
        };
        connect.call(tap, ctx.destination);
        taps.set(ctx, tap);
      }
      connect.call(this, tap);
    }
    return result;
  };
})();
"""

SPEAK_INTO_MICROPHONE = """
(() => {
  const devices = navigator.mediaDevices;
  const open = devices.getUserMedia.bind(devices);
  devices.getUserMedia = async (constraints) => {
    const stream = await open(constraints);
    const ctx = new AudioContext({ sampleRate: 48000 });
    const mixed = ctx.createMediaStreamDestination();
    ctx.createMediaStreamSource(stream).connect(mixed);
    window.__say = (b64) => new Promise((done) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const pcm = new Int16Array(bytes.buffer);
      const buffer = ctx.createBuffer(1, pcm.length, 48000);
      buffer.getChannelData(0).set(Float32Array.from(pcm, (v) => v / 32768));
      const source = ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(mixed);
      source.onended = () => {
        window.__firstLoud = null;
        window.__armedAt = performance.now();
        done(window.__armedAt);
      };
      source.start();
    });
    return mixed.stream;
  };
})();
"""


def chromium_args(microphone: Path) -> list[str]:
    """Headless Chromium with ``microphone`` (a WAV) as its fake microphone, the
    permission prompt answered yes and autoplay allowed."""
    return [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--autoplay-policy=no-user-gesture-required",
    ]


async def caller_voice(text: str) -> np.ndarray:
    """``text`` in the test caller's voice at `MIC_RATE`: the offline voice a tenth higher
    and faster, so the recogniser hears a voice that is not the bot's."""
    pcm8k = ulaw_to_pcm16(await caller_audio(text))
    return linear_resample(pcm8k, int(8000 * 1.1), MIC_RATE).astype(np.int16)


async def caller_voice_b64(text: str) -> str:
    """`caller_voice` as ``window.__say`` takes it."""
    return base64.b64encode((await caller_voice(text)).tobytes()).decode()


def write_microphone(path: Path, *parts: np.ndarray | float) -> None:
    """A WAV at `MIC_RATE` for the fake device: each part is speech (samples) or a
    number of seconds of silence. Chromium loops the file."""
    pcm = np.concatenate([
        np.zeros(int(MIC_RATE * part), dtype=np.int16) if isinstance(part, float | int)
        else part.astype(np.int16)
        for part in parts
    ])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MIC_RATE)
        out.writeframes(pcm.tobytes())
