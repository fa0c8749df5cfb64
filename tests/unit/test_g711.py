"""G.711 tables against the stdlib reference, and the wire codec helpers built on them."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest

from realtime_voice.audio import codec, g711
from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.providers.base import PCM16

with warnings.catch_warnings():
    # audioop is the reference implementation; it warns that it leaves in Python 3.13.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)


def test_ulaw_decode_matches_audioop_for_every_code() -> None:
    assert g711.ulaw_to_pcm16(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_audioop_for_every_code() -> None:
    assert g711.alaw_to_pcm16(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES, 2)


def test_ulaw_encode_matches_audioop_for_every_sample() -> None:
    assert g711.pcm16_to_ulaw(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2)


def test_alaw_encode_matches_audioop_for_every_sample() -> None:
    assert g711.pcm16_to_alaw(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2)


@pytest.mark.parametrize(
    ("decode", "encode"),
    [
        (g711.ulaw_to_pcm16, g711.pcm16_to_ulaw),
        (g711.alaw_to_pcm16, g711.pcm16_to_alaw),
    ],
    ids=["ulaw", "alaw"],
)
def test_every_decoded_level_encodes_back_to_the_same_level(
    decode: Callable[[bytes], PCM16], encode: Callable[[PCM16], bytes]
) -> None:
    levels = decode(ALL_CODES)
    assert np.array_equal(decode(encode(levels)), levels)


def test_decoders_accept_any_bytes_like_and_return_writable_arrays() -> None:
    data = bytearray(b"\x00\x7f\xff")
    for pcm in (g711.ulaw_to_pcm16(data), g711.alaw_to_pcm16(memoryview(data))):
        assert pcm.dtype == np.int16
        assert pcm.size == 3
        pcm[0] = 1  # the caller owns the result


def test_encoders_refuse_samples_that_are_not_int16() -> None:
    with pytest.raises(TypeError):
        g711.pcm16_to_ulaw(np.zeros(4, dtype=np.int32))
    with pytest.raises(TypeError):
        g711.pcm16_to_alaw(np.zeros(4, dtype=np.float64))


def _tone(freq: float, rate: int, n: int, amplitude: float) -> PCM16:
    t = np.arange(n) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


@pytest.mark.parametrize("encoding", list(AudioEncoding))
def test_codec_mono_round_trip(encoding: AudioEncoding) -> None:
    fmt = AudioFormat(encoding, 8000, 1)
    pcm = _tone(440, 8000, 160, 12000)
    wire = codec.encode(pcm, fmt)
    assert len(wire) == fmt.frame_bytes
    decoded = codec.decode(wire, fmt)
    if encoding is AudioEncoding.PCM16:
        assert np.array_equal(decoded, pcm)
    else:
        # G.711 keeps about 3 significant bits of mantissa: error under 1/16 of the level.
        assert np.all(np.abs(decoded.astype(int) - pcm) <= np.abs(pcm.astype(int)) // 16 + 16)


def test_codec_pcm16_is_little_endian() -> None:
    fmt = AudioFormat(AudioEncoding.PCM16, 16000, 1)
    assert codec.encode(np.array([1, -2], dtype=np.int16), fmt) == b"\x01\x00\xfe\xff"
    assert codec.decode(b"\x01\x00\xfe\xff", fmt).tolist() == [1, -2]


def test_codec_decode_mixes_stereo_by_averaging() -> None:
    fmt = AudioFormat(AudioEncoding.PCM16, 16000, 2)
    left = np.array([1000, -32768, 32767, 5, -5], dtype=np.int16)
    right = np.array([3000, -32768, 32767, -5, 6], dtype=np.int16)
    interleaved = np.column_stack([left, right]).reshape(-1).astype("<i2").tobytes()
    mono = codec.decode(interleaved, fmt)
    assert mono.dtype == np.int16
    # The floor of the mean: extremes do not overflow.
    assert mono.tolist() == [2000, -32768, 32767, 0, 0]


def test_codec_decode_stereo_mulaw_of_identical_channels_is_the_channel() -> None:
    fmt = AudioFormat(AudioEncoding.MULAW, 8000, 2)
    codes = bytes(range(256))
    doubled = bytes(b for c in codes for b in (c, c))
    assert np.array_equal(codec.decode(doubled, fmt), g711.ulaw_to_pcm16(codes))


def test_codec_encode_stereo_duplicates_the_signal_into_both_channels() -> None:
    fmt = AudioFormat(AudioEncoding.ALAW, 8000, 2)
    pcm = _tone(300, 8000, 160, 8000)
    wire = codec.encode(pcm, fmt)
    assert len(wire) == fmt.frame_bytes == 320
    assert wire[0::2] == wire[1::2] == g711.pcm16_to_alaw(pcm)


@pytest.mark.parametrize(
    ("fmt", "size"),
    [
        (AudioFormat(AudioEncoding.PCM16, 8000, 1), 3),
        (AudioFormat(AudioEncoding.PCM16, 8000, 2), 6),
        (AudioFormat(AudioEncoding.MULAW, 8000, 2), 5),
    ],
)
def test_codec_decode_refuses_partial_samples(fmt: AudioFormat, size: int) -> None:
    with pytest.raises(ValueError, match="whole number"):
        codec.decode(bytes(size), fmt)


def test_rms_is_relative_to_full_scale() -> None:
    assert codec.rms(np.zeros(0, dtype=np.int16)) == 0.0
    assert codec.rms(np.zeros(160, dtype=np.int16)) == 0.0
    assert codec.rms(np.full(160, -32768, dtype=np.int16)) == 1.0
    sine = _tone(1000, 8000, 8000, 16384)  # whole periods
    assert codec.rms(sine) == pytest.approx(0.5 / math.sqrt(2), rel=1e-4)


@pytest.mark.parametrize("encoding", list(AudioEncoding))
def test_silence_byte_decodes_to_near_zero(encoding: AudioEncoding) -> None:
    fmt = AudioFormat(encoding, 8000, 1)
    pad = bytes([codec.silence_byte(encoding)]) * fmt.frame_bytes
    assert np.all(np.abs(codec.decode(pad, fmt)) <= 8)


@pytest.mark.parametrize("encoding", [AudioEncoding.MULAW, AudioEncoding.ALAW])
def test_energy_tables_equal_the_squares_of_every_decoded_code(encoding: AudioEncoding) -> None:
    every_code = bytes(range(256))
    energy = g711.ulaw_energy if encoding is AudioEncoding.MULAW else g711.alaw_energy
    decoded = codec.decode(every_code, AudioFormat(encoding, 8000, 1)).astype(np.int64)
    assert energy(every_code) == float(np.sum(decoded**2))
    assert energy(b"") == 0.0


@pytest.mark.parametrize("encoding", list(AudioEncoding))
def test_wire_rms_is_the_rms_of_the_decoded_samples(encoding: AudioEncoding) -> None:
    fmt = AudioFormat(encoding, 8000, 1)
    rng = np.random.default_rng(3)
    for scale in (0.0, 30.0, 3000.0, 30000.0):
        pcm = np.clip(rng.normal(0, scale, 160), -32768, 32767).round().astype(np.int16)
        wire = codec.encode(pcm, fmt)
        assert codec.wire_rms(wire, fmt) == pytest.approx(codec.rms(codec.decode(wire, fmt)))
    assert codec.wire_rms(b"", fmt) == 0.0
