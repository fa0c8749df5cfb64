"""Caller speech: trimming, WAV to mu-law, and synthesized lines a recogniser understands."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from realtime_voice.audio.g711 import ulaw_to_pcm16
from realtime_voice.testing.speech import (
    caller_audio,
    transcribe_mulaw,
    trim_silence,
    wav_to_mulaw,
)


def test_trim_silence_keeps_a_little_padding() -> None:
    speech = np.full(800, 3000, dtype=np.int16)
    padded = np.concatenate([np.zeros(4000, np.int16), speech, np.zeros(4000, np.int16)])
    trimmed = trim_silence(padded, 8000, keep_s=0.05)
    assert trimmed.size == 800 + 2 * 400
    assert np.all(trimmed[400:1200] == 3000)
    assert trim_silence(np.zeros(100, np.int16)).size == 0


def test_wav_to_mulaw_reads_a_stereo_16k_file(tmp_path: Path) -> None:
    t = np.arange(16000) / 16000
    tone = (8000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16)
    path = tmp_path / "prompt.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.column_stack([tone, tone]).reshape(-1).tobytes())
    audio = wav_to_mulaw(path)
    assert len(audio) == 8000  # one second at 8 kHz, one byte a sample
    pcm = ulaw_to_pcm16(audio)
    assert np.abs(pcm[200:]).max() == pytest.approx(8000, rel=0.05)


async def test_synthesized_caller_line_is_understood_and_memoised() -> None:
    pytest.importorskip("piper")
    pytest.importorskip("onnxruntime")
    text = "What time do you open on Saturday?"
    audio = await caller_audio(text)
    assert await caller_audio(text) is audio
    pcm = ulaw_to_pcm16(audio)
    # Trimmed: speech reaches close to both edges.
    assert np.abs(pcm[:800]).max() > 200 and np.abs(pcm[-800:]).max() > 200
    heard = (await transcribe_mulaw(audio)).lower()
    assert "open" in heard and "saturday" in heard
