"""Per-packet CPU cost of the SIP leg's media primitives, and of the Opus binding candidates.

Run: ``python loadtests/bench_rtp_media.py [--packets 2000] [--runs 5]
[--candidate MODULE[=PATH] ...]``

Each row is the time for one 20 ms packet or frame of one call, measured with
``time.perf_counter_ns`` over ``--packets`` operations and reported as the median of
``--runs`` runs. The rows cover RTP parse/serialise, SRTP protect/unprotect (PCMU and
Opus sizes, via ``realtime_voice.rtp.srtp``), and encode/decode of every codec in
``realtime_voice.rtp.codecs``.

``--candidate`` measures another Opus binding with the same opuslib-style API in a child
process: ``opuslib`` or ``opuslib_next``, imported from PATH when given (they cannot share
one environment: opuslib-next and opuslib-next-bundled install the same module). The row
names the libopus file the binding loaded and its version string. For example, after
``pip install --target /tmp/opuslib opuslib==3.0.1`` and
``pip install --no-deps --target /tmp/next opuslib-next==1.3.1`` (both need Debian's
libopus0): ``--candidate opuslib=/tmp/opuslib --candidate opuslib_next=/tmp/next``.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

__all__ = ["main"]

DISTINCT = 250  # frames cycled through, so the codecs see varied audio
SAMPLES_PER_FRAME = 320  # 20 ms at 16 kHz


def _speechlike(frames: int, seed: int = 7) -> list[np.ndarray]:
    """Tones that glide and noise bursts: enough variety to keep Opus honest."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames * SAMPLES_PER_FRAME) / 16000
    freq = 180 + 120 * np.sin(2 * np.pi * 0.7 * t)
    voiced = 6000 * np.sin(2 * np.pi * np.cumsum(freq) / 16000)
    noise = rng.normal(0, 1500, t.size) * (np.sin(2 * np.pi * 2.3 * t) > 0.6)
    pcm = np.clip(voiced + noise, -32768, 32767).astype(np.int16)
    return [pcm[i : i + SAMPLES_PER_FRAME] for i in range(0, pcm.size, SAMPLES_PER_FRAME)]


def _time_us(op: Callable[[int], object], n: int) -> float:
    start = time.perf_counter_ns()
    for i in range(n):
        op(i)
    return (time.perf_counter_ns() - start) / n / 1000


def _cases(frames: list[np.ndarray]) -> dict[str, Callable[[int], object]]:
    # Imported here, not at the top: a candidate's child process must load no libopus
    # but its own (a second CDLL of the same soname would silently reuse the first).
    from realtime_voice.rtp.codecs import OpusCodec, PcmuCodec
    from realtime_voice.rtp.packet import RtpPacket, parse_rtp
    from realtime_voice.rtp.srtp import SrtpContext, generate_key

    pcmu, opus16, opus48 = PcmuCodec(), OpusCodec(16000), OpusCodec(48000)
    opus_packets = [opus16.encode(f) for f in frames]
    pcmu_payloads = [pcmu.encode(f) for f in frames]
    ours, theirs = generate_key(), generate_key()
    tx, rx = SrtpContext(ours, theirs), SrtpContext(theirs, ours)
    pcmu_rtp = RtpPacket(0, 1, 160, 0x1234, pcmu_payloads[0]).to_bytes()
    # libsrtp refuses to protect, or accept, one packet index twice, so every call of
    # every run gets its own sequence number: one shared counter per stream, with the
    # packets built before the clock starts.
    total = 66000  # past one sequence wrap, so the rollover path is timed too
    plain_pcmu = [
        RtpPacket(0, i & 0xFFFF, i * 160 & 0xFFFFFFFF, 9, pcmu_payloads[0]).to_bytes()
        for i in range(total)
    ]
    plain_opus = [
        RtpPacket(109, i & 0xFFFF, i * 320 & 0xFFFFFFFF, 10, opus_packets[0]).to_bytes()
        for i in range(total)
    ]
    pre_tx = SrtpContext(theirs, ours)
    srtp_pcmu = [pre_tx.protect(p) for p in plain_pcmu]
    counters = {name: itertools.count() for name in ("pcmu", "opus", "rx")}

    def protect(stream: str, packets: list[bytes]) -> Callable[[int], object]:
        counter = counters[stream]
        return lambda i: tx.protect(packets[next(counter) % total])

    return {
        "rtp parse (172 B)": lambda i: parse_rtp(pcmu_rtp),
        "rtp serialise (172 B)": lambda i: RtpPacket(0, i & 0xFFFF, i, 9, b"x" * 160).to_bytes(),
        "srtp protect PCMU (172 B)": protect("pcmu", plain_pcmu),
        f"srtp protect Opus (12+{len(opus_packets[0])} B)": protect("opus", plain_opus),
        "srtp unprotect PCMU": lambda i: rx.unprotect(srtp_pcmu[next(counters["rx"]) % total]),
        "pcmu encode (16k->8k+ulaw)": lambda i: pcmu.encode(frames[i % DISTINCT]),
        "pcmu decode (ulaw+8k->16k)": lambda i: pcmu.decode(pcmu_payloads[i % DISTINCT]),
        "opus encode 16k mono": lambda i: opus16.encode(frames[i % DISTINCT]),
        "opus decode to 16k mono": lambda i: opus16.decode(opus_packets[i % DISTINCT]),
        "opus decode PLC": lambda i: opus48.decode(None),
    }


def _candidate_child(module: str, packets: int, runs: int) -> None:
    """Runs in the child: time one binding's 16 kHz mono encode/decode, print JSON."""
    mod = importlib.import_module(module)
    api = importlib.import_module(f"{module}.api")
    lib = api.libopus
    lib.opus_get_version_string.restype = ctypes.c_char_p
    frames = [f.tobytes() for f in _speechlike(DISTINCT)]
    enc = mod.Encoder(16000, 1, mod.APPLICATION_VOIP)
    dec = mod.Decoder(16000, 1)
    coded = [enc.encode(f, SAMPLES_PER_FRAME) for f in frames]
    enc_us = statistics.median(
        _time_us(lambda i: enc.encode(frames[i % DISTINCT], SAMPLES_PER_FRAME), packets)
        for _ in range(runs)
    )
    dec_us = statistics.median(
        _time_us(lambda i: dec.decode(coded[i % DISTINCT], SAMPLES_PER_FRAME), packets)
        for _ in range(runs)
    )
    print(json.dumps({
        "module": module, "file": getattr(mod, "__file__", "?"), "libopus": lib._name,
        "version": lib.opus_get_version_string().decode(), "encode_us": enc_us,
        "decode_us": dec_us, "bytes": statistics.mean(len(c) for c in coded),
    }))


def _run_candidate(spec: str, packets: int, runs: int) -> dict[str, object]:
    module, _, path = spec.partition("=")
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, __file__, "--_child", module, "--packets", str(packets),
         "--runs", str(runs)],
        env=env, capture_output=True, text=True, check=False, timeout=600,
    )
    if done.returncode:
        return {"module": spec, "error": done.stderr.strip().splitlines()[-1:]}
    result: dict[str, object] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    """Print the per-packet figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--candidate", action="append", default=[])
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        _candidate_child(args._child, args.packets, args.runs)
        return 0
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{args.packets} packets x {args.runs} runs, median us per 20 ms packet")
    cases = _cases(_speechlike(DISTINCT))
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, op in cases.items():  # interleaved, so background load hits all alike
            results[name].append(_time_us(op, args.packets))
    for name, values in results.items():
        print(f"{name:34s} {statistics.median(values):8.2f}")
    for spec in ["opuslib_next", *args.candidate]:
        row = _run_candidate(spec, args.packets, args.runs)
        if "error" in row:
            print(f"candidate {row['module']}: failed: {row['error']}")
            continue
        print(f"candidate {row['module']} ({row['libopus']}, {row['version']}): "
              f"encode {row['encode_us']:.1f} us, decode {row['decode_us']:.1f} us, "
              f"{row['bytes']:.0f} B/packet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
