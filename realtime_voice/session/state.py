"""The lifecycle of one call."""

from __future__ import annotations

import enum

__all__ = ["TERMINAL_STATES", "CallState"]


class CallState(enum.Enum):
    """Where a call is in its life.

    INITIALIZING → (RINGING: answered by webhook, media not yet connected) → CONNECTED
    (media socket accepted) → IN_PROGRESS (media started, conversation running) → ENDING
    (last words, transfer or hang-up under way) → ENDED, or FAILED from any state.
    """

    INITIALIZING = "initializing"
    RINGING = "ringing"
    CONNECTED = "connected"
    IN_PROGRESS = "in_progress"
    ENDING = "ending"
    ENDED = "ended"
    FAILED = "failed"


TERMINAL_STATES = frozenset({CallState.ENDED, CallState.FAILED})
