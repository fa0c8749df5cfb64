"""The audio codecs of the SIP leg: PCMU and Opus, all meeting the pipeline at 16 kHz.

Every codec takes and gives mono int16 PCM at 16 kHz in 20 ms frames (320 samples), the
rate of the rest of the media path, and knows its RTP clock and timestamp step:

=================  ==========  ====  ===============================================
rtpmap             RTP clock   step  inside
=================  ==========  ====  ===============================================
``PCMU/8000``      8000        160   G.711 tables of ``audio.g711``, resampled 2:1
``OPUS/16000``     16000       320   RingCentral's non-standard name (its PT 109)
``opus/48000/2``   48000       960   RFC 7587; decoded straight to 16 kHz mono
=================  ==========  ====  ===============================================

Opus needs no resampling at either clock: an Opus packet does not depend on the RTP
clock (RFC 7587 §4.1 counts timestamps at 48 kHz whatever the audio bandwidth, and any
Opus decoder decodes any packet), so one libopus encoder at 16 kHz mono serves both
names (RingCentral's 16 kHz clock only changes the step), and the decoder
is created at 16 kHz mono and lets libopus fold stereo and 48 kHz packets down. Sending
mono under ``opus/48000/2`` is allowed (the ``/2`` is a receiver capability; signal
``sprop-stereo=0`` in SDP).

`decode` with None conceals one lost frame: Opus runs its packet-loss concealment; PCMU
(which has none) gives silence, keeping the resampler's history continuous.

Opus binding: ``opuslib-next-bundled`` 0.1.1 (BSD-3; import name ``opuslib_next``).
Chosen by measurement (``python loadtests/bench_rtp_media.py --candidate ...``, 2-core
x86_64, 20 ms of speech-like audio at 16 kHz mono, three runs): encode 130-135 µs
against 190-235 µs for ``opuslib`` 3.0.1 and ``opuslib-next`` 1.3.1, both on Debian's
libopus 1.3.1; decode 20-26 µs for all three. Encoding is the heaviest per-call step,
so that is a third less CPU per call. And by maintenance: ``opuslib`` has had no
release since 2018; this 2026 fork ships its own libopus (1.5 or later: it exports the
1.5 DRED calls; its version string says "unknown"), so no apt package is needed. It
keeps the ``opuslib-next`` API, so ``OPUSLIB_NEXT_USE_SYSTEM_LIB=1`` (or installing
``opuslib-next`` instead) moves to Debian's libopus and its security updates without a
code change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import opuslib_next  # type: ignore[import-untyped]

from realtime_voice.audio import g711
from realtime_voice.audio.format import PCM16
from realtime_voice.audio.resample import StreamingResampler

__all__ = [
    "PIPELINE_RATE",
    "SAMPLES_PER_FRAME",
    "CodecSpec",
    "OpusCodec",
    "PcmuCodec",
    "RtpCodec",
    "UnsupportedCodecError",
    "make_codec",
]

PIPELINE_RATE = 16000
"""Sample rate of the PCM every codec takes and gives."""

SAMPLES_PER_FRAME = PIPELINE_RATE // 50
"""Samples in one 20 ms frame at the pipeline rate (320)."""

_OPUS_MAX_FRAME = PIPELINE_RATE * 120 // 1000  # the longest Opus packet is 120 ms
_OPUS_MAX_PACKET = 1275  # RFC 6716 §3.2.1: the largest frame libopus writes


class UnsupportedCodecError(ValueError):
    """An rtpmap we do not speak."""


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """A codec as SDP names it.

    Attributes:
        name: the rtpmap encoding name as the peer wrote it ("PCMU", "OPUS", "opus").
        clock_rate: the rtpmap clock rate.
        channels: the rtpmap channel count (1 when absent).
    """

    name: str
    clock_rate: int
    channels: int = 1


class RtpCodec(Protocol):
    """What the leg needs of a codec."""

    @property
    def clock_rate(self) -> int:
        """RTP clock rate in Hz."""
        ...

    @property
    def timestamp_step(self) -> int:
        """RTP timestamp units per 20 ms packet."""
        ...

    @property
    def decode_errors(self) -> int:
        """Payloads that could not be decoded and were concealed instead."""
        ...

    def encode(self, pcm: PCM16) -> bytes:
        """Encode 20 ms of 16 kHz mono PCM into one payload."""
        ...

    def decode(self, payload: bytes | None) -> PCM16:
        """Decode one payload (None: conceal a lost one) to 16 kHz mono PCM."""
        ...


def _check_frame(pcm: PCM16) -> PCM16:
    if pcm.dtype != np.int16:
        raise TypeError(f"expected int16 samples, got {pcm.dtype}")
    if pcm.shape != (SAMPLES_PER_FRAME,):
        raise ValueError(f"expected {SAMPLES_PER_FRAME} mono samples (20 ms), got {pcm.shape}")
    return pcm


class PcmuCodec:
    """G.711 mu-law at 8 kHz (``PCMU/8000``, static payload type 0).

    One instance per call direction pair: the resamplers carry filter history across
    frames, so one stream must not share it with another.
    """

    __slots__ = ("_down", "_up", "decode_errors")

    clock_rate = 8000
    timestamp_step = 160

    def __init__(self) -> None:
        self._down = StreamingResampler(PIPELINE_RATE, 8000)
        self._up = StreamingResampler(8000, PIPELINE_RATE)
        self.decode_errors = 0

    def encode(self, pcm: PCM16) -> bytes:
        """Encode one 20 ms frame.

        Args:
            pcm: 320 int16 samples at 16 kHz.

        Returns:
            160 mu-law bytes.

        Raises:
            TypeError: ``pcm`` is not int16.
            ValueError: ``pcm`` is not 320 mono samples.
        """
        return g711.pcm16_to_ulaw(self._down.process(_check_frame(pcm)))

    def decode(self, payload: bytes | None) -> PCM16:
        """Decode one payload, or conceal a lost one with silence.

        Args:
            payload: mu-law bytes (160 for 20 ms), or None for a lost packet.

        Returns:
            Twice as many int16 samples at 16 kHz (320 for 20 ms; 320 of silence for
            None).
        """
        if payload is None:
            return self._up.process(np.zeros(self.timestamp_step, dtype=np.int16))
        return self._up.process(g711.ulaw_to_pcm16(payload))


class OpusCodec:
    """Opus under either RTP clock: RingCentral's ``OPUS/16000`` or ``opus/48000/2``.

    Args:
        clock_rate: 16000 or 48000: the rtpmap clock, which sets only the timestamp step.
        bitrate: encoder bits per second (None: libopus's choice for 16 kHz VoIP).
    """

    __slots__ = ("_clock_rate", "_decoder", "_encoder", "_last_samples", "decode_errors")

    def __init__(self, clock_rate: int = 16000, *, bitrate: int | None = None) -> None:
        if clock_rate not in (16000, 48000):
            raise UnsupportedCodecError(f"Opus RTP clock {clock_rate} (expected 16000 or 48000)")
        self._clock_rate = clock_rate
        self._encoder = opuslib_next.Encoder(PIPELINE_RATE, 1, opuslib_next.APPLICATION_VOIP)
        if bitrate is not None:
            self._encoder.bitrate = bitrate
        self._decoder = opuslib_next.Decoder(PIPELINE_RATE, 1)
        self._last_samples = SAMPLES_PER_FRAME
        self.decode_errors = 0

    @property
    def clock_rate(self) -> int:
        """RTP clock rate in Hz."""
        return self._clock_rate

    @property
    def timestamp_step(self) -> int:
        """RTP timestamp units per 20 ms packet: 320 or 960."""
        return self._clock_rate // 50

    def encode(self, pcm: PCM16) -> bytes:
        """Encode one 20 ms frame.

        Args:
            pcm: 320 int16 samples at 16 kHz.

        Returns:
            One Opus packet (20 ms, mono, up to wideband).

        Raises:
            TypeError: ``pcm`` is not int16.
            ValueError: ``pcm`` is not 320 mono samples.
        """
        data = _check_frame(pcm)
        return bytes(self._encoder.encode(data.tobytes(), SAMPLES_PER_FRAME))

    def decode(self, payload: bytes | None) -> PCM16:
        """Decode one Opus packet of any mode, rate or channel count; or conceal.

        Args:
            payload: an Opus packet, or None for a lost one.

        Returns:
            int16 mono samples at 16 kHz: the packet's duration (320 for 20 ms), or for
            None as long as the last good packet. A packet libopus rejects is concealed
            the same way and counted in ``decode_errors``.
        """
        if payload:
            try:
                pcm = self._decoder.decode(bytes(payload), _OPUS_MAX_FRAME)
            except opuslib_next.OpusError:
                self.decode_errors += 1
            else:
                out = np.frombuffer(pcm, dtype=np.int16).copy()
                if out.size:
                    self._last_samples = out.size
                return out
        # An empty payload makes libopus run its packet-loss concealment.
        return np.frombuffer(self._decoder.decode(b"", self._last_samples), dtype=np.int16).copy()


def make_codec(spec: CodecSpec) -> PcmuCodec | OpusCodec:
    """The codec for an rtpmap line.

    Args:
        spec: encoding name, clock rate and channels as SDP gives them (the name is
            matched without regard to case: RingCentral writes "OPUS").

    Returns:
        A new codec object for one call.

    Raises:
        UnsupportedCodecError: anything but PCMU/8000, OPUS/16000 and opus/48000/2.
    """
    name = spec.name.upper()
    if name == "PCMU" and spec.clock_rate == 8000 and spec.channels == 1:
        return PcmuCodec()
    if name == "OPUS" and (spec.clock_rate, spec.channels) in ((16000, 1), (48000, 2)):
        return OpusCodec(spec.clock_rate)
    raise UnsupportedCodecError(
        f"{spec.name}/{spec.clock_rate}/{spec.channels} (expected PCMU/8000, OPUS/16000 "
        "or opus/48000/2)"
    )
