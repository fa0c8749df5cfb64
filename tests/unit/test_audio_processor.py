"""AudioProcessor and OutboundEncoder end to end: wire bytes ↔ 20 ms PCM frames."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_voice.audio import codec, g711
from realtime_voice.audio.format import MULAW_8K, AudioEncoding, AudioFormat
from realtime_voice.audio.processor import AudioProcessor, InboundFrame, OutboundEncoder
from realtime_voice.providers.base import PCM16


def tone(freq: float, rate: int, seconds: float, amplitude: float = 8000.0) -> PCM16:
    n = np.arange(round(seconds * rate))
    return np.round(amplitude * np.sin(2 * np.pi * freq * n / rate)).astype(np.int16)


def feed_randomly(processor: AudioProcessor, wire: bytes, seed: int = 5) -> list[InboundFrame]:
    rng = np.random.default_rng(seed)
    frames: list[InboundFrame] = []
    i = 0
    while i < len(wire):
        size = int(rng.integers(1, 700))
        frames += processor.process(wire[i : i + size])
        i += size
    return frames


def dominant_hz(pcm: PCM16, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("encoding", [AudioEncoding.MULAW, AudioEncoding.ALAW])
def test_g711_8k_tone_in_random_chunks_becomes_16k_frames_of_the_tone(
    encoding: AudioEncoding,
) -> None:
    fmt = AudioFormat(encoding, 8000, 1)
    wire = codec.encode(tone(1000, 8000, 1.0), fmt)
    processor = AudioProcessor(fmt)
    frames = feed_randomly(processor, wire)

    assert len(frames) == len(wire) // 160 == 50
    for frame in frames:
        assert frame.pcm.dtype == np.int16
        assert frame.pcm.shape == (320,)
        # 320 samples at 16 kHz: 50 Hz bins, 1 kHz falls exactly on one.
        assert dominant_hz(frame.pcm, 16000) == 1000.0
        assert not frame.is_silence
    assert processor.frames_out == 50
    assert processor.bytes_in == len(wire)
    assert processor.dropped_bytes == 0


def test_frames_join_into_one_continuous_16k_signal() -> None:
    processor = AudioProcessor(MULAW_8K)
    wire = g711.pcm16_to_ulaw(tone(440, 8000, 1.0))
    pcm = np.concatenate([f.pcm for f in feed_randomly(processor, wire)])
    # No glitch at frame joins: the whole second is one clean 440 Hz tone.
    spectrum = np.abs(np.fft.rfft(pcm[1600:].astype(np.float64)))
    freqs = np.fft.rfftfreq(pcm.size - 1600, 1 / 16000)
    peak = spectrum.argmax()
    assert freqs[peak] == pytest.approx(440, abs=1)
    away = np.abs(freqs - 440) > 40
    assert spectrum[away].max() < spectrum[peak] * 10 ** (-35 / 20)


def test_silence_and_speech_levels_are_told_apart() -> None:
    processor = AudioProcessor(MULAW_8K, silence_threshold=0.01)
    idle = bytes([codec.silence_byte(AudioEncoding.MULAW)]) * 160
    hiss = g711.pcm16_to_ulaw(
        np.random.default_rng(0).normal(0, 100, 160).round().astype(np.int16)
    )  # ~ -50 dBFS
    speech = g711.pcm16_to_ulaw(tone(300, 8000, 0.02, amplitude=6000))  # ~ -18 dBFS

    frames = processor.process(idle + hiss + speech + speech)
    assert [f.is_silence for f in frames] == [True, True, False, False]
    assert frames[0].rms == 0.0
    assert 0.0 < frames[1].rms < 0.01
    assert frames[3].rms == pytest.approx(6000 / 32768 / np.sqrt(2), rel=0.1)
    assert processor.silent_frames == 2
    assert processor.frames_out == 4


def test_rms_describes_the_frame_it_rides_with() -> None:
    processor = AudioProcessor(MULAW_8K)
    for frame in processor.process(g711.pcm16_to_ulaw(tone(700, 8000, 0.2))):
        assert frame.rms == codec.rms(frame.pcm)


def test_stereo_pcm16_16k_is_mixed_to_mono_without_resampling() -> None:
    fmt = AudioFormat(AudioEncoding.PCM16, 16000, 2)
    left = tone(500, 16000, 0.5, amplitude=10000)
    right = tone(1500, 16000, 0.5, amplitude=4000)
    wire = np.column_stack([left, right]).reshape(-1).astype("<i2").tobytes()
    processor = AudioProcessor(fmt, target_rate=16000)
    frames = feed_randomly(processor, wire)

    assert len(frames) == 25
    assert all(f.pcm.shape == (320,) for f in frames)
    mono = np.concatenate([f.pcm for f in frames])
    expected = ((left.astype(np.int32) + right) >> 1).astype(np.int16)
    assert np.array_equal(mono, expected)


def test_16k_wire_to_8k_target_gives_160_sample_frames() -> None:
    fmt = AudioFormat(AudioEncoding.PCM16, 16000, 1)
    processor = AudioProcessor(fmt, target_rate=8000)
    frames = feed_randomly(processor, tone(1000, 16000, 0.2).astype("<i2").tobytes())
    assert len(frames) == 10
    for frame in frames[1:]:
        assert frame.pcm.shape == (160,)
        assert dominant_hz(frame.pcm, 8000) == 1000.0


def test_format_change_drops_the_partial_frame_and_switches_pipeline() -> None:
    processor = AudioProcessor(MULAW_8K)
    assert processor.process(bytes(100)) == []
    new = AudioFormat(AudioEncoding.PCM16, 16000, 1)
    processor.set_format(new)
    assert processor.audio_format == new
    assert processor.dropped_bytes == 100
    frames = processor.process(tone(1000, 16000, 0.04).astype("<i2").tobytes())
    assert len(frames) == 2
    assert dominant_hz(frames[1].pcm, 16000) == 1000.0
    assert processor.bytes_in == 100 + 1280


def test_overflow_is_bounded_and_counted() -> None:
    # A bound below one frame can only happen by misconfiguration; it still holds.
    processor = AudioProcessor(MULAW_8K, max_pending_bytes=100)
    assert processor.process(bytes(150)) == []
    assert processor.dropped_bytes == 50


def test_outbound_16k_pcm_becomes_8k_mulaw_of_the_same_tone() -> None:
    encoder = OutboundEncoder(MULAW_8K, source_rate=16000)
    pcm = tone(800, 16000, 1.0)
    wire = b"".join(encoder.encode(pcm[i : i + 320]) for i in range(0, pcm.size, 320))
    assert len(wire) == 8000
    back = g711.ulaw_to_pcm16(wire)
    assert dominant_hz(back[800:], 8000) == pytest.approx(800, abs=1)
    assert np.abs(back[800:]).max() == pytest.approx(8000, rel=0.1)


def test_outbound_without_rate_change_is_plain_g711() -> None:
    pcm = tone(300, 8000, 0.1)
    assert OutboundEncoder(MULAW_8K, source_rate=8000).encode(pcm) == g711.pcm16_to_ulaw(pcm)
    stereo = AudioFormat(AudioEncoding.ALAW, 8000, 2)
    wire = OutboundEncoder(stereo, source_rate=8000).encode(pcm)
    assert wire[0::2] == wire[1::2] == g711.pcm16_to_alaw(pcm)


def test_outbound_reset_forgets_the_previous_utterance() -> None:
    encoder = OutboundEncoder(MULAW_8K, source_rate=16000)
    first = tone(1000, 16000, 0.1, amplitude=20000)
    silence = np.zeros(320, dtype=np.int16)
    encoder.encode(first)
    carried = encoder.encode(silence)
    encoder.reset()
    fresh = encoder.encode(silence)
    # The filter tail of the last utterance only leaks into the next without a reset.
    assert np.abs(g711.ulaw_to_pcm16(carried)).max() > 100
    assert np.abs(g711.ulaw_to_pcm16(fresh)).max() == 0
    assert fresh == OutboundEncoder(MULAW_8K, source_rate=16000).encode(silence)


def test_unsupported_target_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="out_rate"):
        AudioProcessor(MULAW_8K, target_rate=24000)
    with pytest.raises(ValueError, match="in_rate"):
        OutboundEncoder(MULAW_8K, source_rate=22050)


def test_wire_frames_are_the_callers_bytes_with_their_levels() -> None:
    # The passthrough path (Deepgram takes mu-law as it is): same framing, same counters,
    # bytes untouched, silence told apart as on the decoding path.
    idle = bytes([codec.silence_byte(AudioEncoding.MULAW)]) * 160
    speech = g711.pcm16_to_ulaw(tone(300, 8000, 0.2, amplitude=6000))
    wire = idle * 5 + speech + idle * 5
    decoding = AudioProcessor(MULAW_8K, silence_threshold=0.01)
    passing = AudioProcessor(MULAW_8K, silence_threshold=0.01)

    decoded = feed_randomly(decoding, wire)
    rng = np.random.default_rng(5)
    frames = []
    i = 0
    while i < len(wire):
        size = int(rng.integers(1, 700))
        frames += passing.process_wire(wire[i : i + size])
        i += size

    assert b"".join(f.wire for f in frames) == wire
    assert all(len(f.wire) == 160 for f in frames)
    assert [f.is_silence for f in frames] == [True] * 5 + [False] * 10 + [True] * 5
    for frame in frames:
        assert frame.rms == pytest.approx(codec.rms(g711.ulaw_to_pcm16(frame.wire)))
    # Inside the speech the level is the decoding path's within 0.3 dB (at its edges the
    # resampler's 0.6 ms delay moves a few samples of speech into the neighbouring frame).
    for frame, pcm_frame in zip(frames[6:14], decoded[6:14], strict=True):
        assert frame.rms == pytest.approx(pcm_frame.rms, rel=0.03)
    assert (passing.frames_out, passing.bytes_in) == (20, len(wire))
    assert passing.silent_frames == 10
