"""G.711 mu-law and A-law codecs as numpy lookup tables.

Decoding indexes a 256-entry table with the code bytes; encoding indexes a 65,536-entry
table with the samples reinterpreted as ``uint16``. The tables are computed once at import
from the G.711 segment/quantisation rules (no ``audioop``: it is deprecated and gone in
Python 3.13), and match ``audioop.ulaw2lin``/``lin2ulaw``/``alaw2lin``/``lin2alaw`` with
width 2 bit for bit, which the unit tests check over every code and every sample.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from realtime_voice.audio.format import PCM16

__all__ = [
    "alaw_energy",
    "alaw_to_pcm16",
    "pcm16_to_alaw",
    "pcm16_to_ulaw",
    "ulaw_energy",
    "ulaw_to_pcm16",
]

_I32 = npt.NDArray[np.int32]


def _ulaw_decode_table() -> PCM16:
    # Codes are stored bit-inverted so that an idle line (0xFF) decodes to zero.
    code = (~np.arange(256, dtype=np.int32)) & 0xFF
    exponent = (code >> 4) & 0x7
    mantissa = code & 0xF
    # 0x84 (132) is the bias that makes every segment start on a power of two.
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> PCM16:
    # A-law inverts the even bits (0x55) so that an idle line has plenty of 1 bits.
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code >> 4) & 0x7
    step = (code & 0xF) << 4
    # Segment 0 is linear with half a step of offset; higher segments double each time.
    magnitude = np.where(
        segment == 0,
        step + 0x8,
        (step + 0x108) << np.maximum(segment - 1, 0),
    )
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


def _all_samples() -> _I32:
    """Every int16 value, ordered by its uint16 bit pattern (the encode-table index)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _ulaw_encode_table() -> npt.NDArray[np.uint8]:
    # mu-law works on 14-bit magnitudes: drop the 2 low bits first (arithmetic shift, so
    # negative values round towards minus infinity before the sign is taken off).
    value = _all_samples() >> 2
    negative = value < 0
    magnitude = np.minimum(np.where(negative, -value, value), 8159) + 0x21
    # Segment = position of the top set bit above bit 5; a clipped magnitude lands in 8.
    segment = np.searchsorted(1 << np.arange(6, 14), magnitude, side="right")
    quant = (magnitude >> (segment + 1)) & 0xF
    code = np.where(segment >= 8, 0x7F, (segment << 4) | quant)
    # Bit inversion; positive samples also get the sign bit set.
    return (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)


def _alaw_encode_table() -> npt.NDArray[np.uint8]:
    # A-law works on 13-bit values; negative ones use the one's-complement magnitude.
    value = _all_samples() >> 3
    negative = value < 0
    magnitude = np.where(negative, -value - 1, value)
    segment = np.searchsorted(1 << np.arange(5, 12), magnitude, side="right")
    # Segments 0 and 1 share the same step size (the linear part of the curve).
    quant = (magnitude >> np.maximum(segment, 1)) & 0xF
    code = (segment << 4) | quant
    return (code ^ np.where(negative, 0x55, 0xD5)).astype(np.uint8)


_ULAW_DECODE = _ulaw_decode_table()
_ALAW_DECODE = _alaw_decode_table()
_ULAW_ENCODE = _ulaw_encode_table()
_ALAW_ENCODE = _alaw_encode_table()
# Squared decoded value per code: the level of G.711 audio without decoding it (exact in
# float64: every square is below 2**30 and a frame sums well under 2**53 of them).
_ULAW_ENERGY = np.square(_ULAW_DECODE.astype(np.float64))
_ALAW_ENERGY = np.square(_ALAW_DECODE.astype(np.float64))


def _codes(data: bytes | bytearray | memoryview) -> npt.NDArray[np.uint8]:
    return np.frombuffer(data, dtype=np.uint8)


def _pattern(pcm: PCM16) -> npt.NDArray[np.uint16]:
    if pcm.dtype != np.int16:
        # A silent astype would wrap floats or int32 values around: refuse instead.
        raise TypeError(f"expected int16 samples, got {pcm.dtype}")
    return pcm.view(np.uint16)


def ulaw_to_pcm16(data: bytes | bytearray | memoryview) -> PCM16:
    """Decode G.711 mu-law bytes.

    Args:
        data: one mu-law code per byte (any bytes-like object).

    Returns:
        A new int16 array with one sample per input byte.
    """
    return _ULAW_DECODE.take(_codes(data))


def pcm16_to_ulaw(pcm: PCM16) -> bytes:
    """Encode int16 samples to G.711 mu-law.

    Args:
        pcm: int16 samples (any shape; encoded in C order).

    Returns:
        One mu-law byte per sample.

    Raises:
        TypeError: ``pcm`` is not int16.
    """
    return _ULAW_ENCODE.take(_pattern(pcm)).tobytes()


def alaw_to_pcm16(data: bytes | bytearray | memoryview) -> PCM16:
    """Decode G.711 A-law bytes.

    Args:
        data: one A-law code per byte (any bytes-like object).

    Returns:
        A new int16 array with one sample per input byte.
    """
    return _ALAW_DECODE.take(_codes(data))


def pcm16_to_alaw(pcm: PCM16) -> bytes:
    """Encode int16 samples to G.711 A-law.

    Args:
        pcm: int16 samples (any shape; encoded in C order).

    Returns:
        One A-law byte per sample.

    Raises:
        TypeError: ``pcm`` is not int16.
    """
    return _ALAW_ENCODE.take(_pattern(pcm)).tobytes()


def ulaw_energy(data: bytes | bytearray | memoryview) -> float:
    """Sum of the squared samples the mu-law bytes decode to (no array of samples made).

    Args:
        data: one mu-law code per byte.

    Returns:
        ``sum(ulaw_to_pcm16(data) ** 2)``, exactly.
    """
    return float(_ULAW_ENERGY.take(_codes(data)).sum())


def alaw_energy(data: bytes | bytearray | memoryview) -> float:
    """Sum of the squared samples the A-law bytes decode to (no array of samples made).

    Args:
        data: one A-law code per byte.

    Returns:
        ``sum(alaw_to_pcm16(data) ** 2)``, exactly.
    """
    return float(_ALAW_ENERGY.take(_codes(data)).sum())
