"""WAV files for the simulated caller: call recordings out, caller audio in.

A call recording is a stereo 8 kHz 16-bit WAV with the caller on the left channel and
the bot on the right, each placed on the call's timeline from ``(start_time, PCM16)``
segments, so a developer hears exactly who spoke when (and where the bot was cut off).

Reading accepts what people have lying around: mono or stereo, 16-bit, at 8, 16,
22.05, 44.1 or 48 kHz, and returns mono PCM16 at the rate asked for. The telephone
rates (8 <-> 16 kHz) go through the same `StreamingResampler` the server uses; other
rates use plain linear interpolation (see `linear_resample`), which is fine for test
prompts but not studio quality.
"""

from __future__ import annotations

import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.providers.base import PCM16

__all__ = [
    "READABLE_RATES",
    "Segment",
    "WavFormatError",
    "linear_resample",
    "read_wav_mono",
    "write_stereo_wav",
]

Segment = tuple[float, PCM16]
"""``(start_time_s, samples)``: mono PCM16 that starts playing at ``start_time_s``."""

READABLE_RATES = (8000, 16000, 22050, 44100, 48000)
"""Sample rates `read_wav_mono` accepts."""

_TELEPHONE_RATES = {8000, 16000}


class WavFormatError(ValueError):
    """A WAV file is not one we can read (not 16-bit, odd rate, too many channels)."""


def _place(segments: Iterable[Segment], rate: int, length: int) -> PCM16:
    # Sum in int32 then saturate: overlapping segments on one channel (rare: a caller
    # line queued while the previous one still sounds) mix instead of overwriting.
    track = np.zeros(length, dtype=np.int32)
    for start, pcm in segments:
        offset = max(0, round(start * rate))
        if offset >= length or pcm.size == 0:
            continue
        chunk = pcm[: length - offset].astype(np.int32)
        track[offset : offset + chunk.size] += chunk
    return np.clip(track, -32768, 32767).astype(np.int16)


def _extent(segments: Iterable[Segment], rate: int) -> int:
    return max((max(0, round(start * rate)) + pcm.size for start, pcm in segments), default=0)


def write_stereo_wav(
    path: str | Path,
    left: Iterable[Segment],
    right: Iterable[Segment],
    sample_rate: int = 8000,
) -> float:
    """Write a two-channel 16-bit WAV from two timelines of segments.

    Time 0 of the timelines is the first sample of the file; a segment that starts
    before 0 is clipped at 0. Silence fills the gaps.

    Args:
        path: where to write (parent directories are created).
        left: segments for the left channel (the caller, in a call recording).
        right: segments for the right channel (the bot).
        sample_rate: rate of every segment and of the file.

    Returns:
        The file's duration in seconds.
    """
    left_segments = list(left)
    right_segments = list(right)
    length = max(_extent(left_segments, sample_rate), _extent(right_segments, sample_rate))
    frames = np.empty((length, 2), dtype="<i2")
    frames[:, 0] = _place(left_segments, sample_rate, length)
    frames[:, 1] = _place(right_segments, sample_rate, length)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(target), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(frames.tobytes())
    return length / sample_rate


def linear_resample(pcm: PCM16, in_rate: int, out_rate: int) -> PCM16:
    """Resample by linear interpolation between neighbouring samples.

    No anti-aliasing filter is applied, so downsampling folds content above the new
    Nyquist frequency back into the band. Speech prompts survive this well enough for
    recognisers and listeners; do not use it for anything that must sound clean.

    Args:
        pcm: mono samples at ``in_rate``.
        in_rate: source rate in Hz.
        out_rate: target rate in Hz.

    Returns:
        Mono samples at ``out_rate`` covering the same duration.
    """
    if in_rate == out_rate or pcm.size == 0:
        return pcm.copy()
    n_out = max(1, round(pcm.size * out_rate / in_rate))
    positions = np.arange(n_out, dtype=np.float64) * (in_rate / out_rate)
    resampled = np.interp(positions, np.arange(pcm.size, dtype=np.float64), pcm.astype(np.float64))
    return np.clip(np.rint(resampled), -32768, 32767).astype(np.int16)


def read_wav_mono(path: str | Path, sample_rate: int = 8000) -> PCM16:
    """Read a 16-bit WAV as mono PCM16 at ``sample_rate``.

    Stereo is mixed down by averaging the two channels.

    Args:
        path: the file.
        sample_rate: the rate wanted (8000 or 16000 for the media path).

    Returns:
        Mono samples at ``sample_rate``.

    Raises:
        WavFormatError: not 16-bit, more than two channels, or a rate not in
            `READABLE_RATES`.
        FileNotFoundError: no such file.
    """
    try:
        with wave.open(str(path), "rb") as src:
            channels = src.getnchannels()
            width = src.getsampwidth()
            rate = src.getframerate()
            raw = src.readframes(src.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavFormatError(f"{path}: not a PCM WAV file ({exc})") from None
    if width != 2:
        raise WavFormatError(f"{path}: {8 * width}-bit samples (only 16-bit WAV is supported)")
    if channels not in (1, 2):
        raise WavFormatError(f"{path}: {channels} channels (only mono or stereo)")
    if rate not in READABLE_RATES:
        raise WavFormatError(
            f"{path}: {rate} Hz (supported: {', '.join(str(r) for r in READABLE_RATES)})"
        )
    samples = np.frombuffer(raw, dtype="<i2")
    samples = samples[: samples.size - samples.size % channels]
    if channels == 2:
        pairs = samples.reshape(-1, 2).astype(np.int32)
        mono: PCM16 = ((pairs[:, 0] + pairs[:, 1]) // 2).astype(np.int16)
    else:
        mono = samples.astype(np.int16)
    if rate == sample_rate:
        return mono
    if rate in _TELEPHONE_RATES and sample_rate in _TELEPHONE_RATES:
        return StreamingResampler(rate, sample_rate).process(mono)
    return linear_resample(mono, rate, sample_rate)
