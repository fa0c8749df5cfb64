"""What a session tells the process about itself as it happens (metrics, in practice).

The session reports events through this narrow interface instead of importing the
metrics module, so the call logic stays testable without a registry and the metrics
backend can change without touching the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from realtime_voice.call_meter import CallUsage

__all__ = ["Component", "FinishedCall", "SessionObserver", "Stage"]

Stage = Literal["stt_final", "llm_first_token", "tts_first_audio"]
"""A provider stage whose time to first result is measured per turn."""

Component = Literal["stt", "tts", "llm", "responder", "protocol", "platform"]
"""Where an error happened."""


@dataclass(frozen=True, slots=True)
class FinishedCall:
    """The totals of one call, reported once when it ends.

    Attributes:
        outcome: the call's recorded outcome (``completed``, ``transferred``, ...).
        frames_in: inbound 20 ms frames.
        frames_out: outbound frames sent.
        dropped_frames: inbound frames the recogniser dropped (it fell behind).
        late_frames: outbound frames sent more than a frame period late.
        stt_reconnects: recogniser connections re-opened during the call.
        usage: billable usage.
        cost_usd: its estimated cost.
    """

    outcome: str
    frames_in: int
    frames_out: int
    dropped_frames: int
    late_frames: int
    stt_reconnects: int
    usage: CallUsage
    cost_usd: float


class SessionObserver(Protocol):
    """Receives a session's events; every method must be cheap and never raise."""

    def turn_answered(self, latency_s: float, server_added_s: float | None) -> None:
        """The first frame of an answer went out ``latency_s`` after the caller's turn
        ended; ``server_added_s`` is the part not spent waiting on providers."""

    def stage_ttfb(self, stage: Stage, seconds: float) -> None:
        """A provider stage produced its first result after ``seconds``."""

    def barge_in(self) -> None:
        """The caller interrupted the bot."""

    def transfer(self) -> None:
        """The call is being handed to a human."""

    def error(self, component: Component) -> None:
        """Something failed in ``component`` (the call may well go on)."""

    def call_finished(self, call: FinishedCall) -> None:
        """The call ended; its totals move from the live view to the finished totals."""
