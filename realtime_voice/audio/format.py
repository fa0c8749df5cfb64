"""The wire audio format of one call and its 20 ms frame arithmetic."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FRAME_MS", "PCM16", "AudioEncoding", "AudioFormat", "UnsupportedFormatError"]

PCM16 = npt.NDArray[np.int16]
"""Mono signed 16-bit samples: the one in-memory audio type every layer shares."""

FRAME_MS = 20
"""Every frame on the media path, in and out, is 20 ms long."""


class UnsupportedFormatError(ValueError):
    """The gateway asked for an encoding, rate or channel count we do not speak."""


class AudioEncoding(enum.Enum):
    """Sample encodings a gateway may negotiate."""

    MULAW = "mulaw"
    ALAW = "alaw"
    PCM16 = "pcm16"

    @property
    def bytes_per_sample(self) -> int:
        """Bytes one sample of one channel takes on the wire."""
        return 2 if self is AudioEncoding.PCM16 else 1


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """The negotiated wire format of one call (one place owns it: lesson 5).

    Attributes:
        encoding: sample encoding on the wire.
        sample_rate: 8000 or 16000 Hz.
        channels: 1, or 2 for interleaved stereo that we mix down to mono.
    """

    encoding: AudioEncoding = AudioEncoding.MULAW
    sample_rate: int = 8000
    channels: int = 1

    def __post_init__(self) -> None:
        if self.sample_rate not in (8000, 16000):
            raise UnsupportedFormatError(f"sample rate {self.sample_rate} (expected 8000 or 16000)")
        if self.channels not in (1, 2):
            raise UnsupportedFormatError(f"channels {self.channels} (expected 1 or 2)")

    @classmethod
    def parse(cls, encoding: str, sample_rate: str | int, channels: str | int) -> AudioFormat:
        """Build a format from query-string or JSON values.

        Raises:
            UnsupportedFormatError: any value we do not support.
        """
        try:
            enc = AudioEncoding(str(encoding).lower())
        except ValueError:
            raise UnsupportedFormatError(
                f"encoding {encoding!r} (expected mulaw, alaw or pcm16)"
            ) from None
        try:
            rate = int(sample_rate)
            chans = int(channels)
        except (TypeError, ValueError):
            raise UnsupportedFormatError(
                f"sample rate {sample_rate!r} / channels {channels!r} must be integers"
            ) from None
        return cls(enc, rate, chans)

    @property
    def samples_per_frame(self) -> int:
        """Samples per channel in one 20 ms frame."""
        return self.sample_rate * FRAME_MS // 1000

    @property
    def frame_bytes(self) -> int:
        """Wire bytes in one 20 ms frame (160 for mu-law 8 kHz mono)."""
        return self.samples_per_frame * self.channels * self.encoding.bytes_per_sample

    @property
    def mono(self) -> AudioFormat:
        """The same format with one channel (what we send back)."""
        return AudioFormat(self.encoding, self.sample_rate, 1)

    def bytes_to_seconds(self, n: int) -> float:
        """Duration of ``n`` wire bytes."""
        return n / (self.sample_rate * self.channels * self.encoding.bytes_per_sample)


MULAW_8K = AudioFormat()
