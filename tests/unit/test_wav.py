"""WAV recording (stereo timeline) and reading (any common rate to mono PCM16)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from realtime_voice.testing.wav import (
    WavFormatError,
    linear_resample,
    read_wav_mono,
    write_stereo_wav,
)


def _tone(freq: float, seconds: float, rate: int, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _write(path: Path, samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def _dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[int(np.argmax(spectrum))])


def test_stereo_recording_places_each_side_on_the_timeline(tmp_path: Path) -> None:
    caller = np.full(800, 1000, dtype=np.int16)  # 0.1 s
    bot = np.full(400, -2000, dtype=np.int16)  # 0.05 s
    path = tmp_path / "calls" / "call.wav"
    duration = write_stereo_wav(path, [(0.5, caller)], [(0.0, bot), (1.0, bot)])

    assert duration == pytest.approx(1.05)
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    left, right = frames[:, 0], frames[:, 1]
    assert frames.shape[0] == 8400
    assert np.all(left[4000:4800] == 1000)
    assert not left[:4000].any() and not left[4800:].any()
    assert np.all(right[:400] == -2000) and np.all(right[8000:8400] == -2000)
    assert not right[400:8000].any()


def test_overlapping_segments_mix_and_saturate(tmp_path: Path) -> None:
    loud = np.full(80, 30000, dtype=np.int16)
    path = tmp_path / "mix.wav"
    write_stereo_wav(path, [(0.0, loud), (0.0, loud)], [])
    with wave.open(str(path), "rb") as wav:
        frames = np.frombuffer(wav.readframes(80), dtype="<i2").reshape(-1, 2)
    assert np.all(frames[:, 0] == 32767)


def test_empty_recording_is_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    assert write_stereo_wav(path, [], []) == 0.0
    with wave.open(str(path), "rb") as wav:
        assert wav.getnframes() == 0


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_reading_any_supported_rate_keeps_duration_and_pitch(tmp_path: Path, rate: int) -> None:
    path = tmp_path / f"tone{rate}.wav"
    _write(path, _tone(440, 1.0, rate), rate)
    for wanted in (8000, 16000):
        pcm = read_wav_mono(path, wanted)
        assert pcm.dtype == np.int16
        assert abs(pcm.size - wanted) <= 2
        assert _dominant_frequency(pcm, wanted) == pytest.approx(440, abs=2)


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left = np.full(8000, 1000, dtype=np.int16)
    right = np.full(8000, 3000, dtype=np.int16)
    path = tmp_path / "stereo.wav"
    _write(path, np.column_stack([left, right]).reshape(-1), 8000, channels=2)
    pcm = read_wav_mono(path, 8000)
    assert pcm.size == 8000
    assert np.all(pcm == 2000)


def test_eight_bit_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "eight.wav"
    _write(path, np.full(100, 128, dtype=np.uint8), 8000, width=1)
    with pytest.raises(WavFormatError, match="8-bit"):
        read_wav_mono(path)


def test_unsupported_rate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.wav"
    _write(path, _tone(440, 0.1, 11025), 11025)
    with pytest.raises(WavFormatError, match="11025 Hz"):
        read_wav_mono(path)


def test_not_a_wav_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "text.wav"
    path.write_text("hello")
    with pytest.raises(WavFormatError, match="not a PCM WAV"):
        read_wav_mono(path)


def test_linear_resample_interpolates_between_samples() -> None:
    ramp = np.array([0, 100, 200, 300], dtype=np.int16)
    assert linear_resample(ramp, 8000, 16000).tolist() == [0, 50, 100, 150, 200, 250, 300, 300]
    assert linear_resample(ramp, 16000, 8000).tolist() == [0, 200]
