"""The process-wide registry of calls: admission, capacity, stats and draining."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from realtime_voice.session.state import CallState

if TYPE_CHECKING:
    from realtime_voice.session.session import CallSession

__all__ = [
    "AdmissionError",
    "CallSessionManager",
    "InboundCall",
]

log = logging.getLogger(__name__)


class AdmissionError(Exception):
    """A call could not be admitted.

    Attributes:
        reason: ``at_capacity``, ``draining`` or ``duplicate_call``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class InboundCall:
    """A call the webhook answered whose media has not necessarily connected yet (RINGING).

    Attributes:
        call_id: the gateway call id.
        session_id: the id handed out in the media URL.
        from_number: caller.
        to_number: dialled number.
        answer: the exact JSON answer given, repeated for a duplicate webhook.
        created: monotonic time of the answer.
    """

    call_id: str
    session_id: str
    from_number: str
    to_number: str
    answer: dict[str, object]
    created: float = field(default_factory=time.monotonic)
    state: CallState = CallState.RINGING


class CallSessionManager:
    """Holds every live session and answered-but-not-connected call of this process.

    Args:
        max_calls: live sessions plus ringing calls this process accepts.
        ringing_ttl_s: how long an answered call waits for its media before its slot frees.
    """

    def __init__(self, *, max_calls: int, ringing_ttl_s: float = 60.0) -> None:
        self.max_calls = max_calls
        self._ringing_ttl = ringing_ttl_s
        self._ringing: dict[str, InboundCall] = {}
        self._sessions: dict[str, CallSession] = {}
        self._accepting = True
        self.started_at = time.monotonic()
        self.total_calls = 0
        self.completed_calls = 0
        self.failed_calls = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # -- admission ---------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """False once draining for shutdown."""
        return self._accepting

    @property
    def active_calls(self) -> int:
        """Live media sessions."""
        return len(self._sessions)

    def ringing(self, call_id: str) -> InboundCall | None:
        """The answered call with this id, if it is still waiting or live."""
        self._expire_ringing()
        return self._ringing.get(call_id)

    def check_capacity(self) -> None:
        """Raise `AdmissionError` when no new call can be taken now."""
        if not self._accepting:
            raise AdmissionError("draining")
        self._expire_ringing()
        if len(self._sessions) + self._waiting() >= self.max_calls:
            raise AdmissionError("at_capacity")

    def add_ringing(self, call: InboundCall) -> None:
        """Remember a call the webhook answered (its slot is held until media or expiry)."""
        self._ringing[call.call_id] = call

    def admit(self, session: CallSession) -> None:
        """Register a live session.

        Raises:
            AdmissionError: duplicate call id, draining, or at capacity.
        """
        if session.call_id in self._sessions:
            raise AdmissionError("duplicate_call")
        if not self._accepting:
            raise AdmissionError("draining")
        self._expire_ringing()
        own = self._ringing.get(session.call_id)
        own_slot = 1 if own is not None and own.state is CallState.RINGING else 0
        if len(self._sessions) + self._waiting() - own_slot >= self.max_calls:
            raise AdmissionError("at_capacity")
        self._sessions[session.call_id] = session
        if own is not None:
            own.state = CallState.CONNECTED
        self.total_calls += 1
        self._idle.clear()

    def release(self, session: CallSession) -> None:
        """Forget an ended session and count its outcome."""
        if self._sessions.get(session.call_id) is not session:
            return
        del self._sessions[session.call_id]
        answered = self._ringing.get(session.call_id)
        if answered is not None:
            answered.state = session.state
        if session.state is CallState.FAILED:
            self.failed_calls += 1
        else:
            self.completed_calls += 1
        if not self._sessions:
            self._idle.set()

    def get(self, call_id: str) -> CallSession | None:
        """The live session of ``call_id``."""
        return self._sessions.get(call_id)

    def sessions(self) -> list[CallSession]:
        """A snapshot of live sessions."""
        return list(self._sessions.values())

    # -- stats -------------------------------------------------------------------

    @property
    def success_rate(self) -> float:
        """Completed / finished calls (1.0 before any call finished)."""
        finished = self.completed_calls + self.failed_calls
        return 1.0 if finished == 0 else self.completed_calls / finished

    def stats(self) -> dict[str, object]:
        """Counters for the health endpoint."""
        return {
            "active_calls": self.active_calls,
            "total_calls": self.total_calls,
            "completed_calls": self.completed_calls,
            "failed_calls": self.failed_calls,
            "success_rate": round(self.success_rate, 4),
        }

    async def wait_idle(self) -> None:
        """Wait until no session is live (every ended call has been released)."""
        await self._idle.wait()

    # -- shutdown ----------------------------------------------------------------

    async def drain(self, timeout_s: float) -> None:
        """Stop taking calls, let live ones finish for ``timeout_s``, then end the rest."""
        self._accepting = False
        if self._sessions:
            log.info("draining %d live call(s) for up to %.0f s", len(self._sessions), timeout_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout_s)
        remaining = list(self._sessions.values())
        if remaining:
            log.info("ending %d call(s) still live after the drain timeout", len(remaining))
            await asyncio.gather(
                *(s.say_goodbye_and_end("server_shutdown") for s in remaining),
                return_exceptions=True,
            )

    def _waiting(self) -> int:
        return sum(1 for c in self._ringing.values() if c.state is CallState.RINGING)

    def _expire_ringing(self) -> None:
        # Answers are kept for the TTL so a repeated webhook gets the same answer; a call
        # whose media never came frees its slot then.
        now = time.monotonic()
        stale = [
            cid
            for cid, call in self._ringing.items()
            if now - call.created > self._ringing_ttl and cid not in self._sessions
        ]
        for cid in stale:
            del self._ringing[cid]
