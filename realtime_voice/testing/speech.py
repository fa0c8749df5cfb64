"""Caller speech for the simulated gateway: text or WAV in, 8 kHz mu-law out.

The audio is encoded exactly as a carrier would send it (mu-law 8 kHz mono), so the
server hears the same bytes it would get from a phone network.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from ai_pipeline.text_split import split_sentences
from realtime_voice.audio.format import MULAW_8K
from realtime_voice.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.providers.base import PCM16
from realtime_voice.testing.wav import read_wav_mono

__all__ = [
    "caller_audio",
    "clear_speech_cache",
    "load_recogniser",
    "transcribe_mulaw",
    "trim_silence",
    "wav_to_mulaw",
]

_SAMPLE_RATE = 8000
_SILENCE_LEVEL = 200
"""Peak |sample| below which the edge of a synthesized prompt counts as silence.

About -44 dBFS: well above mu-law's idle noise, well below any spoken syllable.
"""
_KEEP_S = 0.05

_RECOGNISER_RATE = 16000
_MAX_SEGMENT_S = 14.0
"""Moonshine decodes whole segments and is tuned for at most ~15 s of speech."""
_SPLIT_SEARCH_S = 4.0

_cache: dict[str, bytes] = {}


def trim_silence(pcm: PCM16, sample_rate: int = _SAMPLE_RATE, keep_s: float = _KEEP_S) -> PCM16:
    """Cut leading and trailing silence, keeping ``keep_s`` of it on each side.

    Synthesizers pad their output with silence; left in, the padding would count as
    "caller still speaking" and inflate every measured turn latency.

    Args:
        pcm: mono samples.
        sample_rate: their rate.
        keep_s: silence to keep before the first and after the last loud sample.

    Returns:
        The trimmed samples (empty if everything is silence).
    """
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) >= _SILENCE_LEVEL)
    if loud.size == 0:
        return pcm[:0]
    keep = int(keep_s * sample_rate)
    return pcm[max(0, int(loud[0]) - keep) : int(loud[-1]) + 1 + keep]


async def caller_audio(text: str) -> bytes:
    """What a caller saying ``text`` sends: 8 kHz mu-law, edges trimmed.

    Synthesized with the offline TTS (`LocalTextToSpeech`) and memoised per text for
    the life of the process, so a load test repeating the same lines synthesizes each
    once.

    Args:
        text: the words to say.

    Returns:
        Mu-law bytes at 8 kHz.

    Raises:
        ValueError: ``text`` is blank.
        TtsError: synthesis failed.
    """
    key = text.strip()
    if not key:
        raise ValueError("caller text is empty")
    cached = _cache.get(key)
    if cached is not None:
        return cached
    # Imported on first use: the TTS engine is an optional extra and heavy to import.
    from realtime_voice.providers.local_tts import LocalTextToSpeech, synthesize_all

    raw = await synthesize_all(LocalTextToSpeech(MULAW_8K, split_text=split_sentences), key)
    audio = pcm16_to_ulaw(trim_silence(ulaw_to_pcm16(raw)))
    _cache[key] = audio
    return audio


def clear_speech_cache() -> None:
    """Forget every memoised `caller_audio` result."""
    _cache.clear()


def wav_to_mulaw(path: str | Path) -> bytes:
    """Read a 16-bit WAV (see `read_wav_mono`) as 8 kHz mu-law caller audio.

    Args:
        path: the WAV file.

    Returns:
        Mu-law bytes at 8 kHz, untrimmed (the file is played as given).

    Raises:
        WavFormatError: a WAV format we cannot read.
        FileNotFoundError: no such file.
    """
    return pcm16_to_ulaw(read_wav_mono(path, _SAMPLE_RATE))


def _segments(pcm: PCM16, rate: int) -> list[PCM16]:
    # Long speech is cut at the quietest 20 ms in the last few seconds before the
    # limit, so a cut rarely lands inside a word.
    limit = int(_MAX_SEGMENT_S * rate)
    window = int(0.02 * rate)
    pieces: list[PCM16] = []
    rest = pcm
    while rest.size > limit:
        search_from = limit - int(_SPLIT_SEARCH_S * rate)
        frames = rest[search_from:limit].astype(np.float64)
        frames = frames[: frames.size - frames.size % window].reshape(-1, window)
        quietest = int(np.argmin(np.sum(frames * frames, axis=1)))
        cut = search_from + quietest * window + window // 2
        pieces.append(rest[:cut])
        rest = rest[cut:]
    pieces.append(rest)
    return [trimmed for piece in pieces if (trimmed := _trim_silence(piece, rate)).size]


_VOICED_RMS = 300.0
"""A 20 ms window louder than this (about -40 dBFS) holds sound worth recognising."""


def _trim_silence(pcm: PCM16, rate: int, margin_s: float = 0.25) -> PCM16:
    # Moonshine answers nothing for a few words inside many seconds of digital silence
    # (a whole call's channel, say): keep the voiced part and a margin, drop a silent piece.
    window = int(0.02 * rate)
    usable = pcm[: pcm.size - pcm.size % window].astype(np.float64).reshape(-1, window)
    voiced = np.flatnonzero(np.sqrt(np.mean(usable * usable, axis=1)) > _VOICED_RMS)
    if voiced.size == 0:
        return pcm[:0]
    margin = int(margin_s * rate)
    start = max(0, int(voiced[0]) * window - margin)
    end = min(pcm.size, (int(voiced[-1]) + 1) * window + margin)
    return pcm[start:end]


async def load_recogniser() -> None:
    """Load the offline recogniser now (in a thread), so a call never waits for it.

    Raises:
        ImportError: the offline engines are not installed.
        SttError: the model could not be loaded.
    """
    from realtime_voice.providers.moonshine import MoonshineRecognizer

    await asyncio.to_thread(MoonshineRecognizer.shared)


def _transcribe_blocking(pcm16k: PCM16) -> str:
    # Imported on first use: the recogniser is an optional extra.
    from realtime_voice.providers.moonshine import MoonshineRecognizer

    recogniser = MoonshineRecognizer.shared()
    texts = (recogniser.transcribe(piece) for piece in _segments(pcm16k, _RECOGNISER_RATE))
    return " ".join(t for t in texts if t)


async def transcribe_mulaw(audio: bytes) -> str:
    """Transcribe 8 kHz mu-law speech (e.g. one bot utterance) with the offline recogniser.

    Decodes, resamples to 16 kHz and runs Moonshine in a worker thread, so the event
    loop keeps pacing audio meanwhile.

    Args:
        audio: mu-law bytes at 8 kHz.

    Returns:
        The text ("" for silence or noise).

    Raises:
        ImportError: the offline engines are not installed.
        SttError: the model could not be loaded or decoding failed.
    """
    pcm16k = StreamingResampler(_SAMPLE_RATE, _RECOGNISER_RATE).process(ulaw_to_pcm16(audio))
    return await asyncio.to_thread(_transcribe_blocking, pcm16k)


async def transcribe_pcm16(pcm16k: PCM16) -> str:
    """Transcribe 16 kHz PCM16 speech (what a SIP leg's RTP decodes to) offline.

    Raises:
        ImportError: the offline engines are not installed.
        SttError: the model could not be loaded or decoding failed.
    """
    return await asyncio.to_thread(_transcribe_blocking, pcm16k)


async def caller_audio_pcm16(text: str) -> PCM16:
    """`caller_audio` as 16 kHz PCM16 (the caller of a SIP leg)."""
    return StreamingResampler(_SAMPLE_RATE, _RECOGNISER_RATE).process(
        ulaw_to_pcm16(await caller_audio(text)))
