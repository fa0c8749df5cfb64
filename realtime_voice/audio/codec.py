"""Stateless conversion between wire bytes and mono PCM16 at the wire rate, plus RMS level.

Rate conversion is not done here (it needs state across frames: see `resample`), so
everything in this module is a pure function of its arguments.
"""

from __future__ import annotations

import numpy as np

from realtime_voice.audio import g711
from realtime_voice.audio.format import PCM16, AudioEncoding, AudioFormat

__all__ = ["decode", "encode", "rms", "silence_byte", "wire_rms"]

_FULL_SCALE = 32768.0

# Byte values that decode to (near) zero, for padding a partial frame with silence.
# A-law has no exact zero code; 0xD5 (+8) is the conventional idle pattern.
_SILENCE_BYTE = {
    AudioEncoding.MULAW: 0xFF,
    AudioEncoding.ALAW: 0xD5,
    AudioEncoding.PCM16: 0x00,
}


def silence_byte(encoding: AudioEncoding) -> int:
    """The byte value that repeats to make silence in ``encoding``.

    Useful as the ``pad_byte`` of `FrameChunker.flush` on the outbound path.
    """
    return _SILENCE_BYTE[encoding]


def decode(payload: bytes | bytearray | memoryview, fmt: AudioFormat) -> PCM16:
    """Decode wire bytes to mono PCM16 at the wire sample rate.

    Args:
        payload: whole samples for every channel, interleaved when ``fmt.channels`` is 2.
        fmt: the call's wire format.

    Returns:
        A new int16 array; stereo is mixed down by averaging the two channels.

    Raises:
        ValueError: ``payload`` does not hold a whole number of samples × channels.
    """
    unit = fmt.encoding.bytes_per_sample * fmt.channels
    if len(payload) % unit:
        raise ValueError(
            f"{len(payload)} bytes is not a whole number of {unit}-byte samples "
            f"({fmt.encoding.value}, {fmt.channels} channel(s))"
        )
    if fmt.encoding is AudioEncoding.MULAW:
        pcm = g711.ulaw_to_pcm16(payload)
    elif fmt.encoding is AudioEncoding.ALAW:
        pcm = g711.alaw_to_pcm16(payload)
    else:
        # The wire is little endian whatever the host is; astype also copies the
        # read-only buffer view into an array the caller owns.
        pcm = np.frombuffer(payload, dtype="<i2").astype(np.int16)
    if fmt.channels == 2:
        pairs = pcm.reshape(-1, 2).astype(np.int32)
        # Floor of the mean stays within int16 for any pair of int16 values.
        pcm = ((pairs[:, 0] + pairs[:, 1]) >> 1).astype(np.int16)
    return pcm


def encode(pcm: PCM16, fmt: AudioFormat) -> bytes:
    """Encode mono PCM16 at the wire rate to wire bytes.

    Args:
        pcm: mono int16 samples (already at ``fmt.sample_rate``).
        fmt: the call's wire format; for 2 channels the signal goes to both.

    Returns:
        The wire bytes (little endian for pcm16).

    Raises:
        TypeError: ``pcm`` is not int16.
    """
    if pcm.dtype != np.int16:
        raise TypeError(f"expected int16 samples, got {pcm.dtype}")
    if fmt.channels == 2:
        pcm = np.repeat(pcm, 2)
    if fmt.encoding is AudioEncoding.MULAW:
        return g711.pcm16_to_ulaw(pcm)
    if fmt.encoding is AudioEncoding.ALAW:
        return g711.pcm16_to_alaw(pcm)
    return pcm.astype("<i2", copy=False).tobytes()


def rms(pcm: PCM16) -> float:
    """Root-mean-square level relative to full scale.

    Args:
        pcm: int16 samples.

    Returns:
        0.0 for silence or empty input, 1.0 for a full-scale (-32768) square wave.
    """
    if pcm.size == 0:
        return 0.0
    x = pcm.astype(np.float64).ravel()
    return float(np.sqrt(np.dot(x, x) / x.size)) / _FULL_SCALE


def wire_rms(payload: bytes | bytearray | memoryview, fmt: AudioFormat) -> float:
    """Root-mean-square level of wire bytes, relative to full scale, without decoding.

    For G.711 this is a table lookup per byte (the squared value of every code), a
    fraction of the cost of decoding; for PCM16 the bytes are read in place. All
    channels count alike.

    Args:
        payload: whole samples of ``fmt``.
        fmt: the wire format.

    Returns:
        The same value as `rms` of the decoded mono-per-channel samples: 0.0 for
        silence or empty input.
    """
    if fmt.encoding is AudioEncoding.MULAW:
        energy, n = g711.ulaw_energy(payload), len(payload)
    elif fmt.encoding is AudioEncoding.ALAW:
        energy, n = g711.alaw_energy(payload), len(payload)
    else:
        x = np.frombuffer(payload, dtype="<i2", count=len(payload) // 2).astype(np.float64)
        energy, n = float(np.dot(x, x)), x.size
    if n == 0:
        return 0.0
    return float(np.sqrt(energy / n)) / _FULL_SCALE
