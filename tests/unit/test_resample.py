"""StreamingResampler: exact streaming behaviour and the filter's audible properties.

Frequency-domain checks feed real sine tones through `process` in 20 ms frames and
measure the output with numpy. Every tone has a whole number of cycles in the 1 s
analysis window, so a single DFT coefficient measures one frequency with no leakage.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.providers.base import PCM16

AMPLITUDE = 10000.0
SETTLE_S = 0.1  # well past the 2.5 ms the 40-tap filter needs to fill
WINDOW_S = 1.0


def tone(freq: float, rate: int, seconds: float = SETTLE_S + WINDOW_S) -> PCM16:
    n = np.arange(round(seconds * rate))
    return np.round(AMPLITUDE * np.sin(2 * np.pi * freq * n / rate)).astype(np.int16)


def in_frames(resampler: StreamingResampler, pcm: PCM16) -> PCM16:
    """Feed ``pcm`` 20 ms at a time, as the media path does."""
    step = resampler.in_rate // 50
    return np.concatenate([resampler.process(pcm[i : i + step]) for i in range(0, pcm.size, step)])


def coefficient(y: PCM16, freq: float, rate: int) -> complex:
    """Complex amplitude of ``freq`` over the settled 1 s window, relative to AMPLITUDE.

    Its phase is measured against a sine that started at t = 0 of the stream.
    """
    start = round(SETTLE_S * rate)
    m = np.arange(start, start + round(WINDOW_S * rate))
    basis = np.exp(-2j * np.pi * freq * m / rate)
    c = 2.0 * np.dot(y[m].astype(np.float64), basis) / m.size
    return complex(c * 1j / AMPLITUDE)  # x 1j: a sine projects onto -1j


def db(x: float) -> float:
    return 20.0 * math.log10(max(x, 1e-12))


def reference(x: PCM16, taps: npt.NDArray[np.float64], up: bool) -> PCM16:
    """The same filter computed the slow obvious way over the whole signal at once."""
    if up:
        stuffed = np.zeros(2 * x.size)
        stuffed[0::2] = x
        y = np.convolve(stuffed, 2.0 * taps)[: stuffed.size]
    else:
        y = np.convolve(x.astype(np.float64), taps)[: x.size][0::2]
    assert np.abs(y).max() > 32767, "the signal should exercise saturation"
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def loud_signal(rate: int) -> PCM16:
    """Full-scale noise then a full-scale square wave: overshoots int16 after filtering."""
    rng = np.random.default_rng(20240611)
    noise = rng.integers(-32768, 32768, size=rate // 2, dtype=np.int16)
    square = np.where(np.arange(rate // 4) % 40 < 20, 32767, -32768).astype(np.int16)
    return np.concatenate([noise, square])


def test_unsupported_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="in_rate 44100"):
        StreamingResampler(44100, 16000)
    with pytest.raises(ValueError, match="out_rate 22050"):
        StreamingResampler(8000, 22050)


def test_equal_rates_pass_samples_through_unchanged() -> None:
    resampler = StreamingResampler(16000, 16000)
    pcm = tone(440, 16000, 0.02)
    assert np.array_equal(resampler.process(pcm), pcm)
    assert resampler.group_delay_ms == 0.0


def test_input_must_be_mono_int16() -> None:
    resampler = StreamingResampler(8000, 16000)
    with pytest.raises(TypeError):
        resampler.process(np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError, match="mono"):
        resampler.process(np.zeros((160, 2), dtype=np.int16))


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000)])
def test_every_20ms_in_gives_exactly_20ms_out(in_rate: int, out_rate: int) -> None:
    resampler = StreamingResampler(in_rate, out_rate)
    signal = tone(1000, in_rate, 1.0)
    step = in_rate // 50
    for i in range(0, signal.size, step):
        out = resampler.process(signal[i : i + step])
        assert out.dtype == np.int16
        assert out.size == out_rate // 50


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000)])
def test_random_chunking_gives_bit_identical_output(in_rate: int, out_rate: int) -> None:
    signal = loud_signal(in_rate)
    whole = StreamingResampler(in_rate, out_rate).process(signal)

    rng = np.random.default_rng(7)
    chunked = StreamingResampler(in_rate, out_rate)
    pieces, i = [], 0
    while i < signal.size:
        size = int(rng.integers(0, 700))  # zero-length and odd sizes included
        pieces.append(chunked.process(signal[i : i + size]))
        i += size
    joined = np.concatenate(pieces)

    # Total output is exact: twice the input, or one per even-indexed input sample.
    expected = 2 * signal.size if out_rate > in_rate else (signal.size + 1) // 2
    assert whole.size == joined.size == expected
    assert np.array_equal(joined, whole)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000)])
def test_output_is_the_causal_filter_of_everything_received(in_rate: int, out_rate: int) -> None:
    # Chunk by chunk, the output equals the full-signal convolution truncated at the
    # current input: nothing is held back beyond the filter's own delay, nothing reset.
    signal = loud_signal(in_rate)
    resampler = StreamingResampler(in_rate, out_rate)
    expected = reference(signal, resampler.filter_taps, up=out_rate > in_rate)
    step = 333  # odd, so downsampling must alternate its phase
    produced = 0
    for i in range(0, signal.size, step):
        out = resampler.process(signal[i : i + step])
        assert np.array_equal(out, expected[produced : produced + out.size])
        produced += out.size
    assert produced == expected.size


def test_an_impulse_comes_out_in_the_same_call() -> None:
    resampler = StreamingResampler(8000, 16000)
    frame = np.zeros(160, dtype=np.int16)
    frame[-1] = 16384
    out = resampler.process(frame)
    taps = resampler.filter_taps
    # The last input sample already drives the last two outputs of this very call.
    assert out[-2:].tolist() == [round(2 * 16384 * taps[0]), round(2 * 16384 * taps[1])]
    assert np.count_nonzero(out[:-2]) == 0


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000)])
def test_a_burst_dies_out_within_the_filter_length(in_rate: int, out_rate: int) -> None:
    resampler = StreamingResampler(in_rate, out_rate)
    resampler.process(tone(1000, in_rate, 0.1))
    tail = in_frames(resampler, np.zeros(in_rate // 50 * 5, dtype=np.int16))
    filter_len_out = resampler.filter_taps.size * out_rate // 16000
    assert np.count_nonzero(tail[filter_len_out:]) == 0


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000)])
@pytest.mark.parametrize("freq", [100, 200, 300, 500, 1000, 1500, 2000, 2500, 3000, 3400])
def test_passband_is_flat_within_half_a_db(in_rate: int, out_rate: int, freq: int) -> None:
    out = in_frames(StreamingResampler(in_rate, out_rate), tone(freq, in_rate))
    gain_db = db(abs(coefficient(out, freq, out_rate)))
    assert abs(gain_db) <= 0.5


@pytest.mark.parametrize("freq", [300, 1000, 2000, 3000, 3400])
def test_upsampling_images_are_50db_down(freq: int) -> None:
    out = in_frames(StreamingResampler(8000, 16000), tone(freq, 8000))
    image = 8000 - freq
    assert db(abs(coefficient(out, image, 16000))) <= -50.0
    # Nothing else above 4.6 kHz either.
    settled = out[round(SETTLE_S * 16000) :].astype(np.float64)
    spectrum = 2.0 * np.abs(np.fft.rfft(settled)) / settled.size / AMPLITUDE
    freqs = np.fft.rfftfreq(settled.size, 1 / 16000)
    assert db(float(spectrum[freqs >= 4600].max())) <= -50.0


@pytest.mark.parametrize("freq", [4600, 5000, 6000, 7000, 7900])
def test_downsampling_aliases_are_50db_down(freq: int) -> None:
    out = in_frames(StreamingResampler(16000, 8000), tone(freq, 16000))
    assert db(abs(coefficient(out, 8000 - freq, 8000))) <= -50.0
    settled = out[round(SETTLE_S * 8000) :].astype(np.float64)
    spectrum = 2.0 * np.abs(np.fft.rfft(settled)) / settled.size / AMPLITUDE
    assert db(float(spectrum.max())) <= -50.0


def test_filter_group_delay_is_under_1ms_across_the_passband() -> None:
    resampler = StreamingResampler(8000, 16000)
    taps = resampler.filter_taps
    n_fft = 1 << 14
    spectrum = np.fft.rfft(taps, n_fft)
    omega = 2 * np.pi * np.fft.rfftfreq(n_fft)  # radians per 16 kHz sample
    phase = np.unwrap(np.angle(spectrum))
    delay_ms = -np.gradient(phase, omega) / 16.0
    band = (omega * 16000 / (2 * np.pi) >= 300) & (omega * 16000 / (2 * np.pi) <= 3400)
    assert delay_ms[band].max() <= 1.0
    assert resampler.group_delay_ms == pytest.approx(delay_ms[band].mean(), abs=0.01)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(8000, 16000), (16000, 8000)])
def test_measured_group_delay_through_process_is_under_1ms(in_rate: int, out_rate: int) -> None:
    freqs = np.arange(300, 3401, 100)
    phases = []
    for freq in freqs:
        resampler = StreamingResampler(in_rate, out_rate)
        out = in_frames(resampler, tone(float(freq), in_rate))
        phases.append(np.angle(coefficient(out, float(freq), out_rate)))
    # Group delay = -d(phase)/d(angular frequency), in seconds here.
    delay_ms = -np.gradient(np.unwrap(phases), 2 * np.pi * freqs) * 1000.0
    assert delay_ms.max() <= 1.0
    assert delay_ms.min() >= 0.0
    assert float(delay_ms.mean()) == pytest.approx(resampler.group_delay_ms, abs=0.05)


def test_a_1khz_tone_survives_a_round_trip_at_the_same_frequency() -> None:
    up, down = StreamingResampler(8000, 16000), StreamingResampler(16000, 8000)
    original = tone(1000, 8000)
    step = 160
    back = np.concatenate(
        [down.process(up.process(original[i : i + step])) for i in range(0, original.size, step)]
    )
    assert back.size == original.size
    settled = back[round(SETTLE_S * 8000) :].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(settled))
    peak_hz = np.fft.rfftfreq(settled.size, 1 / 8000)[spectrum.argmax()]
    assert peak_hz == 1000.0
    assert abs(db(abs(coefficient(back, 1000, 8000)))) <= 1.0
