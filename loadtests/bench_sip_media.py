"""CPU per call-second and send lateness of `RtpStream`: N streams pairwise on loopback.

Run: ``python loadtests/bench_sip_media.py [--calls 20] [--seconds 10] [--codec opus16]
[--plain]``

``--calls`` pairs of streams run on one `MediaClock` in this process, SRTP keys crossed,
each side playing a tone into the other (both directions encode, protect, send,
unprotect, buffer and decode every 20 ms), for ``--seconds``. A call is one pair: the
bench stands for both our leg and the far end, so a real call costs about half the
CPU reported per pair. Prints one JSON line: process CPU ms per call-second, the
clock's lateness p99 and max, late and skipped ticks, packets lost and SRTP failures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import numpy as np

from realtime_voice.legs.media_clock import MediaClock
from realtime_voice.legs.sip_media import RtpStream
from realtime_voice.sip.sdp_negotiation import (
    OPUS_16000,
    OPUS_48000,
    PCMU,
    Codec,
    answer,
    apply_answer,
    generate_key,
    offer,
)

__all__ = ["main"]

CODECS: dict[str, Codec] = {"pcmu": PCMU, "opus16": OPUS_16000, "opus48": OPUS_48000}
HOST = "127.0.0.1"


def _tone(frames: int) -> list[bytes]:
    t = np.arange(frames * 320) / 16000
    pcm = (6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return [pcm[i * 320 : (i + 1) * 320].tobytes() for i in range(frames)]


async def _drain(stream: RtpStream) -> None:
    while await stream.next_event() is not None:
        pass


async def _run(calls: int, seconds: float, codec: Codec, srtp: bool) -> dict[str, object]:
    clock = MediaClock()
    streams: list[RtpStream] = []
    for _ in range(calls):
        a = await RtpStream.open(host=HOST, clock=clock)
        b = await RtpStream.open(host=HOST, clock=clock)
        sdp = offer(address=HOST, port=a.local_port, key=generate_key(), codecs=(codec,),
                    srtp=srtp)
        result = answer(sdp, address=HOST, port=b.local_port, key=generate_key(),
                        codecs=(codec,), allow_plain_rtp=not srtp)
        a.start(apply_answer(sdp, result.sdp, codecs=(codec,)))
        b.start(result.media)
        streams += [a, b]
    drains = [asyncio.ensure_future(_drain(s)) for s in streams]
    frames = _tone(int(seconds * 50))
    for stream in streams:
        for frame in frames:
            stream.send_audio(frame)
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)  # the bench's own duration, not a test wait
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    stats = clock.stats
    per = [s.stats() for s in streams]
    for stream in streams:
        await stream.close()
    await asyncio.gather(*drains)
    return {
        "calls": calls,
        "codec": str(codec),
        "srtp": srtp,
        "seconds": round(wall, 2),
        "cpu_ms_per_call_second": round(1000 * cpu / (calls * wall), 3),
        "cpu_share": round(cpu / wall, 3),
        "lateness_p99_ms": round(stats.lateness_p99_ms, 2),
        "lateness_max_ms": round(stats.max_lateness_ms, 2),
        "late_ticks": stats.late_ticks,
        "skipped_ticks": stats.skipped_ticks,
        "packets_sent": sum(s.packets_sent for s in per),
        "packets_lost": sum(s.packets_lost for s in per),
        "srtp_auth_failures": sum(s.srtp_auth_failures for s in per),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the bench, print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20, help="stream pairs")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--codec", choices=sorted(CODECS), default="opus16")
    parser.add_argument("--plain", action="store_true", help="plain RTP instead of SRTP")
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args.calls, args.seconds, CODECS[args.codec], not args.plain))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
