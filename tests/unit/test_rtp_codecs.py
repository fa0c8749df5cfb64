"""PCMU and Opus at the pipeline's 16 kHz: tone in, same tone out; PLC; 48 kHz stereo in."""

from __future__ import annotations

import numpy as np
import opuslib_next  # type: ignore[import-untyped]
import pytest

from realtime_voice.audio.format import PCM16
from realtime_voice.rtp.codecs import (
    SAMPLES_PER_FRAME,
    CodecSpec,
    OpusCodec,
    PcmuCodec,
    RtpCodec,
    UnsupportedCodecError,
    make_codec,
)

RATE = 16000
AMPLITUDE = 8000


def _tone(freq: float, seconds: float, rate: int = RATE, channels: int = 1) -> PCM16:
    t = np.arange(int(rate * seconds)) / rate
    mono = (AMPLITUDE * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return np.repeat(mono, channels) if channels > 1 else mono


def _frames(pcm: PCM16) -> list[PCM16]:
    return [pcm[i : i + SAMPLES_PER_FRAME] for i in range(0, pcm.size, SAMPLES_PER_FRAME)]


def _peak_hz(pcm: PCM16) -> float:
    windowed = pcm.astype(np.float64) * np.hanning(pcm.size)
    spectrum = np.abs(np.fft.rfft(windowed))
    return float(np.fft.rfftfreq(pcm.size, 1 / RATE)[int(np.argmax(spectrum))])


def _rms(pcm: PCM16) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))


def _through(codec: RtpCodec, pcm: PCM16) -> PCM16:
    return np.concatenate([codec.decode(codec.encode(f)) for f in _frames(pcm)])


@pytest.mark.parametrize(
    "codec", [PcmuCodec(), OpusCodec(16000), OpusCodec(48000)], ids=["pcmu", "opus16", "opus48"]
)
def test_a_440_hz_tone_comes_back_at_440_hz_and_its_level(codec: RtpCodec) -> None:
    out = _through(codec, _tone(440, 1.0))
    assert out.dtype == np.int16
    assert out.size == RATE
    steady = out[RATE // 4 :]  # past the codecs' start-up
    assert _peak_hz(steady) == pytest.approx(440, abs=3)
    expected_rms = AMPLITUDE / np.sqrt(2)
    assert _rms(steady) == pytest.approx(expected_rms, rel=0.15)


@pytest.mark.parametrize(
    ("codec", "clock", "step"),
    [(PcmuCodec(), 8000, 160), (OpusCodec(16000), 16000, 320), (OpusCodec(48000), 48000, 960)],
)
def test_clock_and_timestamp_step(codec: RtpCodec, clock: int, step: int) -> None:
    assert (codec.clock_rate, codec.timestamp_step) == (clock, step)


def test_pcmu_payload_is_160_bytes_per_frame() -> None:
    assert len(PcmuCodec().encode(_tone(440, 0.02))) == 160


@pytest.mark.parametrize("codec", [PcmuCodec(), OpusCodec()], ids=["pcmu", "opus"])
def test_plc_returns_20_ms(codec: RtpCodec) -> None:
    for frame in _frames(_tone(440, 0.2)):
        codec.decode(codec.encode(frame))
    concealed = codec.decode(None)
    assert concealed.dtype == np.int16
    assert concealed.shape == (SAMPLES_PER_FRAME,)


def test_opus_plc_carries_the_tone_on() -> None:
    codec = OpusCodec()
    for frame in _frames(_tone(440, 0.3)):
        codec.decode(codec.encode(frame))
    concealed = codec.decode(None)
    assert _rms(concealed) > AMPLITUDE / 10  # not silence: the decoder extrapolates


def test_pcmu_plc_is_silence() -> None:
    codec = PcmuCodec()
    codec.decode(None)
    assert not codec.decode(None).any()


def test_a_48_khz_stereo_packet_decodes_to_320_mono_samples() -> None:
    stereo_encoder = opuslib_next.Encoder(48000, 2, opuslib_next.APPLICATION_VOIP)
    stereo = _tone(440, 0.5, rate=48000, channels=2)
    codec = OpusCodec(48000)
    decoded = []
    for i in range(0, stereo.size, 960 * 2):
        packet = stereo_encoder.encode(stereo[i : i + 960 * 2].tobytes(), 960)
        out = codec.decode(packet)
        assert out.shape == (320,)
        decoded.append(out)
    tail = np.concatenate(decoded)[RATE // 8 :]
    assert _peak_hz(tail) == pytest.approx(440, abs=5)


def test_a_corrupt_opus_payload_is_concealed_and_counted() -> None:
    codec = OpusCodec()
    codec.decode(codec.encode(_tone(440, 0.02)))
    out = codec.decode(b"\xff\xff\xff")  # code 3 with an impossible frame count
    assert out.shape == (SAMPLES_PER_FRAME,)
    assert codec.decode_errors == 1


def test_empty_opus_payload_conceals() -> None:
    assert OpusCodec().decode(b"").shape == (SAMPLES_PER_FRAME,)


def test_pcmu_decodes_any_length() -> None:
    assert PcmuCodec().decode(b"\xff" * 80).shape == (160,)


@pytest.mark.parametrize("codec", [PcmuCodec(), OpusCodec()], ids=["pcmu", "opus"])
def test_encode_refuses_the_wrong_frame(codec: RtpCodec) -> None:
    with pytest.raises(ValueError, match="320 mono samples"):
        codec.encode(np.zeros(160, dtype=np.int16))
    with pytest.raises(TypeError, match="int16"):
        codec.encode(np.zeros(320, dtype=np.float32))  # type: ignore[arg-type]


def test_opus_bitrate_is_applied() -> None:
    low, high = OpusCodec(bitrate=8000), OpusCodec(bitrate=40000)
    frames = _frames(_tone(440, 0.5))
    size_low = sum(len(low.encode(f)) for f in frames)
    size_high = sum(len(high.encode(f)) for f in frames)
    assert size_low < size_high


@pytest.mark.parametrize(
    ("spec", "kind", "clock"),
    [
        (CodecSpec("PCMU", 8000), PcmuCodec, 8000),
        (CodecSpec("pcmu", 8000, 1), PcmuCodec, 8000),
        (CodecSpec("OPUS", 16000), OpusCodec, 16000),
        (CodecSpec("opus", 48000, 2), OpusCodec, 48000),
    ],
)
def test_make_codec_from_rtpmap(spec: CodecSpec, kind: type, clock: int) -> None:
    codec = make_codec(spec)
    assert isinstance(codec, kind)
    assert codec.clock_rate == clock


@pytest.mark.parametrize(
    "spec",
    [CodecSpec("PCMA", 8000), CodecSpec("opus", 48000, 1), CodecSpec("PCMU", 16000),
     CodecSpec("G722", 8000)],
)
def test_make_codec_refuses_the_rest(spec: CodecSpec) -> None:
    with pytest.raises(UnsupportedCodecError, match=spec.name):
        make_codec(spec)


def test_opus_refuses_other_clocks() -> None:
    with pytest.raises(UnsupportedCodecError, match="8000"):
        OpusCodec(8000)
