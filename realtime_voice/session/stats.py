"""Per-call counters: what the call record's metrics and the health/metrics scrape read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CallStats", "LiveCounters", "OutboundCounters"]


@dataclass
class CallStats:
    """Per-call counters (exported with the call record and to health/metrics)."""

    frames_in: int = 0
    bytes_in: int = 0
    silent_frames_in: int = 0
    frames_out: int = 0
    transcripts: int = 0
    turns: int = 0
    dtmf_digits: int = 0
    bad_messages: int = 0
    errors: int = 0
    barge_ins: int = 0
    response_latencies_ms: list[float] = field(default_factory=list)
    """End of the caller's turn detected → first frame of the answer sent, per turn."""
    barge_in_latencies_ms: list[float] = field(default_factory=list)
    """Speech onset reported by the recogniser → ``clear`` sent."""


class OutboundCounters(Protocol):
    """The outbound side's counters (the `Speaker`'s pacer)."""

    @property
    def frames_sent(self) -> int:
        """Frames played out so far."""
        ...

    @property
    def late_frames(self) -> int:
        """Frames sent more than a frame period late."""
        ...


@dataclass(frozen=True, slots=True)
class LiveCounters:
    """Per-frame counters of a live call, read at metrics scrape time."""

    frames_in: int
    frames_out: int
    dropped_frames: int
    late_frames: int
    stt_reconnects: int

    @classmethod
    def of(
        cls, stats: CallStats, outbound: OutboundCounters, recognizer: object | None
    ) -> LiveCounters:
        """The counters now; the recogniser's come from its ``metrics``, if it keeps any."""
        dropped = reconnects = 0
        stt_metrics = getattr(recognizer, "metrics", None)
        if stt_metrics is not None:
            dropped = int(getattr(stt_metrics, "dropped_frames", 0))
            reconnects = int(getattr(stt_metrics, "reconnects", 0))
        return cls(
            frames_in=stats.frames_in,
            frames_out=outbound.frames_sent,
            dropped_frames=dropped,
            late_frames=outbound.late_frames,
            stt_reconnects=reconnects,
        )
