"""`MediaStream`: the state of one call's media as the leg reports it — started, format, bad input.

A call's media starts once (a second ``start`` is a protocol error, answered and
counted); its wire format may change only while no bot audio is queued or playing
(otherwise the change is refused: the frames in flight would be misread); every message
the leg could not parse is answered per protocol, journaled and counted, and the call
ends once ``VOICE_MAX_ERRORS`` is reached.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from realtime_voice.audio.format import AudioFormat
from realtime_voice.legs.base import CLOSE_POLICY, CallLeg, ProtocolError, StartEvent
from realtime_voice.session.recognition import SpeechInput
from realtime_voice.session.services import CallServices
from realtime_voice.session.speaker import Speaker
from realtime_voice.session.state import CallState
from realtime_voice.storage.journal import utc_from_timestamp

__all__ = ["MediaStream"]

log = logging.getLogger(__name__)


class MediaStream:
    """One call's media state.

    Args:
        leg: the call's leg (error frames go back through it).
        call: the call's bookkeeping.
        speech_input: told of format changes (the inbound side).
        speaker: told of format changes and the call's voice (the outbound side).
        end: ends the call (reason, close code, failed).
    """

    def __init__(
        self,
        leg: CallLeg,
        call: CallServices,
        speech_input: SpeechInput,
        speaker: Speaker,
        end: Callable[..., Awaitable[None]],
    ) -> None:
        self._leg = leg
        self._call = call
        self._input = speech_input
        self._speaker = speaker
        self._end = end
        self.format = leg.audio_format
        """The call's wire format now."""
        self.started = False

    async def start(self, event: StartEvent) -> bool:
        """Media begins: keep the call's parameters (not the token) and record the answer.

        Returns False for a repeated ``start`` (rejected).
        """
        if self.started:
            await self.reject(ProtocolError("bad_message", "duplicate start message"))
            return False
        self.started = True
        context = self._call.context
        params = dict(context.custom_parameters)
        params.update({k: v for k, v in event.custom_parameters.items() if k != "token"})
        context.custom_parameters = params
        if event.audio_format is not None:
            await self.set_format(event.audio_format)
        self._speaker.set_voice(params.get("voice") or None)
        journal = self._call.journal
        journal.updated(
            state=CallState.IN_PROGRESS.value,
            answered_at=utc_from_timestamp(time.time()),
            custom_parameters=params,
            flow=params.get("flow"),
        )
        journal.state_changed(CallState.CONNECTED.value, CallState.IN_PROGRESS.value)
        return True

    async def set_format(self, fmt: AudioFormat) -> None:
        """The far end changed the wire format (refused while bot audio plays)."""
        if fmt == self.format:
            return
        if self._speaker.busy:
            await self.reject(ProtocolError("bad_message", "config ignored: bot audio is playing"))
            return
        log.info("audio format now %s/%d/%d", fmt.encoding.value, fmt.sample_rate, fmt.channels)
        self.format = fmt
        self._input.set_format(fmt)
        await self._speaker.set_format(fmt)

    async def reject(self, error: ProtocolError) -> None:
        """A message was rejected: answer per protocol, count it, end at the limit."""
        call = self._call
        stats, limit = call.stats, call.settings.max_errors
        stats.bad_messages += 1
        log.warning("rejected frame (%d/%d): %s", stats.bad_messages, limit, error)
        call.journal.event("error", {"code": error.code, "message": error.message[:200]})
        call.count_error("protocol")
        with contextlib.suppress(Exception):
            await self._leg.send_error(error.code, error.message)
        if stats.bad_messages >= limit:
            await self._end("too_many_errors", code=CLOSE_POLICY, failed=True)
