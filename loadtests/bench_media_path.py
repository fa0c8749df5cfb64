"""Per-frame CPU cost of the media path: our numpy pipeline next to the stdlib ``audioop``.

Run: ``python loadtests/bench_media_path.py [--frames 20000] [--runs 5]``

Each row is the time for one 20 ms frame of one call, measured with
``time.perf_counter_ns`` over ``--frames`` frames and reported as the median of
``--runs`` runs (the rows are interleaved within each run so background load hits them
alike). The ``audioop`` column does the same job the way a classic implementation would
(``ulaw2lin`` + ``ratecv`` with its state carried + ``rms``, or ``lin2ulaw``), ending with
the same kind of result (an int16 array for the recogniser, wire frames for the pacer).
``audioop`` is deprecated (gone in Python 3.13); it is only the yardstick here.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import shlex
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np

from realtime_voice.audio import g711
from realtime_voice.audio.format import MULAW_8K
from realtime_voice.audio.framing import FrameChunker
from realtime_voice.audio.processor import AudioProcessor, OutboundEncoder
from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.providers.base import PCM16

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["main"]

FRAME_8K = 160
FRAME_16K = 320
DISTINCT_FRAMES = 500  # cycled through, so caches see varied audio, as on a real call
STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"

Case = Callable[[int], None]


def _speechlike(rate: int, frames: int, seed: int = 11) -> list[PCM16]:
    """Tones with a wandering pitch plus noise, cut into 20 ms frames of int16."""
    rng = np.random.default_rng(seed)
    n = frames * rate // 50
    t = np.arange(n) / rate
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    # A buzz with falling harmonics, roughly the spectrum of a voiced vowel.
    x = rng.normal(0, 300, n)
    for k in range(1, 12):
        x += 6000 / k * np.sin(k * phase)
    pcm = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return list(pcm.reshape(frames, -1))


def _twilio_inbound(payload: bytes, seq: int) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "media": {
                "track": "inbound",
                "chunk": str(seq),
                "timestamp": str(seq * 20),
                "payload": base64.b64encode(payload).decode("ascii"),
            },
            "streamSid": STREAM_SID,
        }
    )


def _twilio_outbound(payload: bytes) -> str:
    return json.dumps(
        {
            "event": "media",
            "streamSid": STREAM_SID,
            "media": {"payload": base64.b64encode(payload).decode("ascii")},
        }
    )


def build_cases() -> list[tuple[str, Case, Case]]:
    """Rows of (label, numpy pipeline, audioop pipeline), each timing ``n`` frames."""
    pcm8 = _speechlike(8000, DISTINCT_FRAMES)
    pcm16 = _speechlike(16000, DISTINCT_FRAMES, seed=12)
    pcm8_bytes = [p.tobytes() for p in pcm8]
    pcm16_bytes = [p.tobytes() for p in pcm16]
    ulaw = [g711.pcm16_to_ulaw(p) for p in pcm8]
    twilio_in = [_twilio_inbound(u, i) for i, u in enumerate(ulaw)]
    k = DISTINCT_FRAMES

    def rc_in_numpy(n: int) -> None:
        processor = AudioProcessor(MULAW_8K, target_rate=16000)
        for i in range(n):
            message = ulaw[i % k]  # a bridge binary frame is the audio itself
            processor.process(message)

    def rc_in_audioop(n: int) -> None:
        state = None
        for i in range(n):
            lin = audioop.ulaw2lin(ulaw[i % k], 2)
            out, state = audioop.ratecv(lin, 2, 1, 8000, 16000, state)
            audioop.rms(out, 2)
            np.frombuffer(out, dtype=np.int16)

    def rc_wire_numpy(n: int) -> None:
        processor = AudioProcessor(MULAW_8K, target_rate=16000)
        for i in range(n):
            processor.process_wire(ulaw[i % k])  # Deepgram takes the mu-law as it is

    def rc_wire_audioop(n: int) -> None:
        for i in range(n):
            audioop.rms(audioop.ulaw2lin(ulaw[i % k], 2), 2)

    def tw_in_numpy(n: int) -> None:
        processor = AudioProcessor(MULAW_8K, target_rate=16000)
        for i in range(n):
            message = json.loads(twilio_in[i % k])
            processor.process(base64.b64decode(message["media"]["payload"]))

    def tw_in_audioop(n: int) -> None:
        state = None
        for i in range(n):
            message = json.loads(twilio_in[i % k])
            lin = audioop.ulaw2lin(base64.b64decode(message["media"]["payload"]), 2)
            out, state = audioop.ratecv(lin, 2, 1, 8000, 16000, state)
            audioop.rms(out, 2)
            np.frombuffer(out, dtype=np.int16)

    def rc_out8_numpy(n: int) -> None:
        encoder = OutboundEncoder(MULAW_8K, source_rate=8000)
        chunker = FrameChunker(MULAW_8K.frame_bytes, 64_000)
        for i in range(n):
            chunker.push(encoder.encode(pcm8[i % k]))

    def rc_out8_audioop(n: int) -> None:
        chunker = FrameChunker(MULAW_8K.frame_bytes, 64_000)
        for i in range(n):
            chunker.push(audioop.lin2ulaw(pcm8_bytes[i % k], 2))

    def rc_out16_numpy(n: int) -> None:
        encoder = OutboundEncoder(MULAW_8K, source_rate=16000)
        chunker = FrameChunker(MULAW_8K.frame_bytes, 64_000)
        for i in range(n):
            chunker.push(encoder.encode(pcm16[i % k]))

    def rc_out16_audioop(n: int) -> None:
        chunker = FrameChunker(MULAW_8K.frame_bytes, 64_000)
        state = None
        for i in range(n):
            lin, state = audioop.ratecv(pcm16_bytes[i % k], 2, 1, 16000, 8000, state)
            chunker.push(audioop.lin2ulaw(lin, 2))

    def tw_out_numpy(n: int) -> None:
        encoder = OutboundEncoder(MULAW_8K, source_rate=8000)
        chunker = FrameChunker(MULAW_8K.frame_bytes, 64_000)
        for i in range(n):
            for frame in chunker.push(encoder.encode(pcm8[i % k])):
                _twilio_outbound(frame)

    def tw_out_audioop(n: int) -> None:
        chunker = FrameChunker(MULAW_8K.frame_bytes, 64_000)
        for i in range(n):
            for frame in chunker.push(audioop.lin2ulaw(pcm8_bytes[i % k], 2)):
                _twilio_outbound(frame)

    return [
        ("in   bridge binary  mulaw 8k -> 16k PCM", rc_in_numpy, rc_in_audioop),
        ("in   Twilio json+b64 mulaw 8k -> 16k PCM", tw_in_numpy, tw_in_audioop),
        ("out  bridge 8k PCM -> mulaw + chunker", rc_out8_numpy, rc_out8_audioop),
        ("out  bridge 16k PCM -> 8k mulaw + chunker", rc_out16_numpy, rc_out16_audioop),
        ("out  Twilio 8k PCM -> mulaw + chunker + b64+json", tw_out_numpy, tw_out_audioop),
        ("in   bridge binary  mulaw passthrough, level only", rc_wire_numpy, rc_wire_audioop),
    ]


def _image_db(upsample: Callable[[PCM16], PCM16], freq: int = 3000) -> float:
    """Level of the 8->16 kHz image of a ``freq`` tone (at 8000 - freq), dB re the tone."""
    n = np.arange(8800)
    pcm = np.round(10000 * np.sin(2 * np.pi * freq * n / 8000)).astype(np.int16)
    out = upsample(pcm)[1600:17600].astype(np.float64)  # 1 s after settling
    spectrum = np.abs(np.fft.rfft(out))  # 1 Hz bins: both tones sit on a bin
    return float(20 * np.log10(spectrum[8000 - freq] / spectrum[freq]))


def _ours_up(pcm: PCM16) -> PCM16:
    resampler = StreamingResampler(8000, 16000)
    return np.concatenate([resampler.process(pcm[i : i + 160]) for i in range(0, pcm.size, 160)])


def _audioop_up(pcm: PCM16) -> PCM16:
    state, pieces = None, []
    for i in range(0, pcm.size, 160):
        out, state = audioop.ratecv(pcm[i : i + 160].tobytes(), 2, 1, 8000, 16000, state)
        pieces.append(np.frombuffer(out, dtype=np.int16))
    return np.concatenate(pieces)


def _time_us_per_frame(case: Case, frames: int) -> float:
    start = time.perf_counter_ns()
    case(frames)
    return (time.perf_counter_ns() - start) / frames / 1000.0


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=20_000, help="frames per run")
    parser.add_argument("--runs", type=int, default=5, help="runs; the median is reported")
    args = parser.parse_args(argv)

    shown = sys.argv[1:] if argv is None else argv
    print(" ".join(["$ python loadtests/bench_media_path.py", shlex.join(shown)]).rstrip())
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()}, {args.frames} frames x {args.runs} runs, median"
    )
    cases = build_cases()
    for _, ours, theirs in cases:  # warm up imports, tables and allocator
        ours(200)
        theirs(200)
    results: dict[str, tuple[list[float], list[float]]] = {c[0]: ([], []) for c in cases}
    for _ in range(args.runs):
        for label, ours, theirs in cases:
            results[label][0].append(_time_us_per_frame(ours, args.frames))
            results[label][1].append(_time_us_per_frame(theirs, args.frames))

    print()
    print(f"{'µs per 20 ms frame (one call), median':<50} {'numpy':>7} {'audioop':>8} {'ratio':>6}")
    medians: dict[str, float] = {}
    for label, (ours_us, theirs_us) in results.items():
        ours_med, theirs_med = statistics.median(ours_us), statistics.median(theirs_us)
        medians[label] = ours_med
        print(
            f"{label:<50} {ours_med:7.2f} {theirs_med:8.2f} {ours_med / theirs_med:6.2f}"
            f"   (best {min(ours_us):.2f} / {min(theirs_us):.2f})"
        )

    labels = list(medians)
    per_call_us = medians[labels[0]] + medians[labels[2]]
    print()
    print(
        f"bridge call, inbound + outbound 8k: {per_call_us:.1f} µs per 20 ms "
        f"= {per_call_us / 20_000 * 100:.3f}% of one core per call"
    )
    passthrough_us = medians[labels[5]] + medians[labels[2]]
    print(
        f"bridge call on Deepgram (mu-law passed through) + outbound 8k: {passthrough_us:.1f} µs "
        f"per 20 ms = {passthrough_us / 20_000 * 100:.3f}% of one core per call"
    )
    resampler = StreamingResampler(8000, 16000)
    print(
        f"resampler group delay (mean over 300-3400 Hz): {resampler.group_delay_ms:.3f} ms; "
        f"{resampler.filter_taps.size}-tap prototype at 16 kHz; held back: nothing "
        f"(160 in -> {resampler.process(np.zeros(160, dtype=np.int16)).size} out)"
    )
    print(
        f"image of a 3 kHz tone at 5 kHz after 8->16 kHz: numpy {_image_db(_ours_up):.1f} dB, "
        f"audioop.ratecv {_image_db(_audioop_up):.1f} dB"
    )


if __name__ == "__main__":
    main()
