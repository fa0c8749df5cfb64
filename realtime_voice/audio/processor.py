"""The per-call audio pipelines: wire bytes → 20 ms PCM frames in, PCM → wire bytes out.

`AudioProcessor` is what the media handler calls for every inbound audio message: it
re-frames at the wire level, decodes, mixes to mono, resamples to the recogniser's rate
with one resampler kept for the whole call, and measures the level of every frame.
When the recogniser takes the call's own bytes (Deepgram with mu-law: no decode, no
resample, no re-quantisation), `AudioProcessor.process_wire` only re-frames and measures
the level from the codes. `OutboundEncoder` goes the other way for synthesized speech.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime_voice.audio import codec
from realtime_voice.audio.format import PCM16, AudioFormat
from realtime_voice.audio.framing import FrameChunker
from realtime_voice.audio.resample import StreamingResampler

__all__ = ["AudioProcessor", "InboundFrame", "OutboundEncoder", "WireFrame"]


@dataclass(frozen=True, slots=True)
class InboundFrame:
    """One 20 ms frame of caller audio, ready for speech recognition.

    Attributes:
        pcm: mono int16 samples at the processor's target rate (exactly 20 ms).
        rms: level of ``pcm`` relative to full scale (0..1).
        is_silence: ``rms`` is below the processor's silence threshold.
    """

    pcm: PCM16
    rms: float
    is_silence: bool


@dataclass(frozen=True, slots=True)
class WireFrame:
    """One 20 ms frame of caller audio as it came from the gateway (not decoded).

    Attributes:
        wire: the frame's bytes in the call's wire format.
        rms: level of the decoded samples relative to full scale (0..1).
        is_silence: ``rms`` is below the processor's silence threshold.
    """

    wire: bytes
    rms: float
    is_silence: bool


class AudioProcessor:
    """Turn a call's inbound wire audio, in any chunk sizes, into 20 ms PCM frames.

    Args:
        audio_format: the call's negotiated wire format.
        target_rate: sample rate of the frames produced (8000 or 16000).
        silence_threshold: RMS (0..1 of full scale) below which a frame is silence.
        max_pending_bytes: bound on the partial-frame bytes held between messages.

    Raises:
        ValueError: unsupported ``target_rate`` or a negative bound.
    """

    __slots__ = (
        "_bytes_in",
        "_chunker",
        "_dropped_before",
        "_format",
        "_frames_out",
        "_max_pending",
        "_resampler",
        "_silent_frames",
        "_target_rate",
        "_threshold",
    )

    def __init__(
        self,
        audio_format: AudioFormat,
        *,
        target_rate: int = 16000,
        silence_threshold: float = 0.01,
        max_pending_bytes: int = 64_000,
    ) -> None:
        self._target_rate = target_rate
        self._threshold = silence_threshold
        self._max_pending = max_pending_bytes
        self._format = audio_format
        self._chunker = FrameChunker(audio_format.frame_bytes, max_pending_bytes)
        self._resampler = StreamingResampler(audio_format.sample_rate, target_rate)
        # Bytes dropped by chunkers replaced on a format change.
        self._dropped_before = 0
        self._bytes_in = 0
        self._frames_out = 0
        self._silent_frames = 0

    @property
    def audio_format(self) -> AudioFormat:
        """The wire format being decoded."""
        return self._format

    @property
    def target_rate(self) -> int:
        """Sample rate of the frames produced."""
        return self._target_rate

    @property
    def frames_out(self) -> int:
        """Frames produced so far."""
        return self._frames_out

    @property
    def bytes_in(self) -> int:
        """Wire bytes received so far."""
        return self._bytes_in

    @property
    def dropped_bytes(self) -> int:
        """Wire bytes discarded (buffer overflow, partial frame at a format change)."""
        return self._dropped_before + self._chunker.dropped_bytes

    @property
    def silent_frames(self) -> int:
        """Frames produced so far that were below the silence threshold."""
        return self._silent_frames

    def process(self, payload: bytes | bytearray | memoryview) -> list[InboundFrame]:
        """Take the next wire bytes and return every 20 ms frame now complete.

        Args:
            payload: caller audio in the wire format, any length.

        Returns:
            Zero or more frames, in order.
        """
        self._bytes_in += len(payload)
        fmt = self._format
        resampler = self._resampler
        threshold = self._threshold
        frames: list[InboundFrame] = []
        for wire in self._chunker.push(payload):
            pcm = resampler.process(codec.decode(wire, fmt))
            level = codec.rms(pcm)
            silent = level < threshold
            if silent:
                self._silent_frames += 1
            frames.append(InboundFrame(pcm, level, silent))
        self._frames_out += len(frames)
        return frames

    def process_wire(self, payload: bytes | bytearray | memoryview) -> list[WireFrame]:
        """Like `process`, but the frames stay in the wire format (levels only).

        For a recogniser that takes the call's own bytes. The level is that of the wire
        samples (`codec.wire_rms`), which for speech matches the resampled PCM's within
        a fraction of a dB. The resampler is not fed: if `process` is used again later
        (the recogniser changed mid-call), its first frame carries a few samples of
        filter history from before the switch.

        Args:
            payload: caller audio in the wire format, any length.

        Returns:
            Zero or more frames, in order.
        """
        self._bytes_in += len(payload)
        fmt = self._format
        threshold = self._threshold
        frames: list[WireFrame] = []
        for wire in self._chunker.push(payload):
            level = codec.wire_rms(wire, fmt)
            silent = level < threshold
            if silent:
                self._silent_frames += 1
            frames.append(WireFrame(wire, level, silent))
        self._frames_out += len(frames)
        return frames

    def set_format(self, fmt: AudioFormat) -> None:
        """Switch to a new wire format (the gateway's ``config`` message).

        The partial frame of the old format is dropped (and counted) and the resampler
        starts afresh, since the two streams are not continuous.
        """
        self._dropped_before += self._chunker.dropped_bytes + self._chunker.pending
        self._format = fmt
        self._chunker = FrameChunker(fmt.frame_bytes, self._max_pending)
        self._resampler = StreamingResampler(fmt.sample_rate, self._target_rate)


class OutboundEncoder:
    """Convert synthesized mono PCM to the call's wire format.

    Resampling (8 kHz ↔ 16 kHz) is stateful, so one encoder serves one continuous
    stream of speech; call `reset` when a new utterance starts so the filter does not
    smear the end of the previous one into it.

    Args:
        audio_format: the call's wire format (the output is mono-mixed to it: for
            2 channels the signal is duplicated).
        source_rate: sample rate of the PCM given to `encode` (8000 or 16000).

    Raises:
        ValueError: unsupported ``source_rate``.
    """

    __slots__ = ("_format", "_resampler", "_source_rate")

    def __init__(self, audio_format: AudioFormat, *, source_rate: int) -> None:
        self._format = audio_format
        self._source_rate = source_rate
        self._resampler = StreamingResampler(source_rate, audio_format.sample_rate)

    @property
    def audio_format(self) -> AudioFormat:
        """The wire format produced."""
        return self._format

    @property
    def source_rate(self) -> int:
        """Sample rate of the PCM accepted by `encode`."""
        return self._source_rate

    def encode(self, pcm: PCM16) -> bytes:
        """Resample (if needed) and encode the next chunk of the stream.

        Args:
            pcm: mono int16 samples at ``source_rate``, any length.

        Returns:
            Wire bytes; re-frame them with `FrameChunker` for pacing.
        """
        return codec.encode(self._resampler.process(pcm), self._format)

    def reset(self) -> None:
        """Start a new utterance: forget the filter history."""
        self._resampler = StreamingResampler(self._source_rate, self._format.sample_rate)
