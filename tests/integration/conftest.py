"""Shared fixtures for the offline speech engine tests: real models, loaded once.

Imports of the engines stay inside the fixtures, so collecting the other integration
tests works on a machine without the offline extra.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pytest

from realtime_voice.providers.base import PCM16

if TYPE_CHECKING:
    from realtime_voice.providers.moonshine import MoonshineRecognizer


@pytest.fixture(scope="session")
def recognizer() -> MoonshineRecognizer:
    """The process-wide Moonshine recogniser."""
    from realtime_voice.providers.moonshine import MoonshineRecognizer

    return MoonshineRecognizer.shared()


@pytest.fixture(scope="session")
def piper_speech_16k() -> Callable[[str], PCM16]:
    """Text → piper (joe voice) speech resampled to 16 kHz, memoised per text."""
    import soxr

    from realtime_voice.providers.local_tts import PiperSynthesizer

    voice = PiperSynthesizer.shared()

    @functools.cache
    def speak(text: str) -> PCM16:
        audio = np.concatenate(list(voice.synthesize_pcm(text)))
        out = soxr.resample(audio, voice.sample_rate, 16000)
        return np.asarray(out, dtype=np.int16)

    return speak
