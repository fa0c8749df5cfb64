"""`CallSession`: one call's lifecycle, from the leg's first event to its saved record.

The session knows no carrier and no wire (it talks to a `CallLeg`) and no provider (it
talks to `SpeechToText`, `TextToSpeech` and a `Responder`). What happens in between
is delegated: the caller's audio goes through `SpeechInput` to the recogniser, the
recogniser's events to the `Conversation` (turn-taking), answers to the `Speaker`
(pacer, marks, barge-in), and the end of the call to `record_call_end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ai_pipeline.responder import ConversationContext
from realtime_voice.call_meter import BILLED_PROVIDERS, CallMeter
from realtime_voice.config import Settings
from realtime_voice.legs.base import (
    CLOSE_INTERNAL,
    CLOSE_NORMAL,
    AudioEvent,
    CallLeg,
    ConfigEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    PlatformControlError,
    ProtocolError,
    StartEvent,
    StopEvent,
)
from realtime_voice.log import call_id_var, session_id_var
from realtime_voice.providers.base import (
    ReportsRecognizerFallback,
    SttError,
)
from realtime_voice.session.actions import carry_out, end_reason_of
from realtime_voice.session.conversation import Conversation
from realtime_voice.session.engines import SpeechEngines
from realtime_voice.session.media_stream import MediaStream
from realtime_voice.session.observer import SessionObserver
from realtime_voice.session.recognition import SpeechInput
from realtime_voice.session.services import CallServices
from realtime_voice.session.speaker import Action, Speaker
from realtime_voice.session.state import TERMINAL_STATES, CallState
from realtime_voice.session.stats import CallStats, LiveCounters
from realtime_voice.session.summary import record_call_end
from realtime_voice.storage.journal import CallJournal, RecordSink, utc_from_timestamp

__all__ = ["CallSession", "CallStats", "LiveCounters"]

log = logging.getLogger(__name__)


class CallSession:
    """Everything about one live call.

    Args:
        call_id: the carrier's call id (also the log context).
        session_id: our id for this media session.
        from_number: caller number.
        to_number: dialled number.
        leg: the call's connection to the carrier.
        settings: server settings.
        engines: shared providers and responder.
        records: where the call record, turns and events go (the `CallRecorder`);
            ``None`` keeps nothing.
        observer: told about latencies, barge-ins, errors and the call's totals.
        clock: monotonic clock; default: the running loop's (`time.monotonic`).
        direction: ``inbound``, or ``outbound`` for a call we placed (the record says so).
    """

    def __init__(
        self,
        *,
        call_id: str,
        session_id: str,
        from_number: str,
        to_number: str,
        leg: CallLeg,
        settings: Settings,
        engines: SpeechEngines,
        records: RecordSink | None = None,
        observer: SessionObserver | None = None,
        clock: Callable[[], float] | None = None,
        direction: str = "inbound",
    ) -> None:
        self.call_id = call_id
        self.direction = direction
        self.session_id = session_id
        self.leg = leg
        self.settings = settings
        self.engines = engines
        self.state = CallState.INITIALIZING
        self.end_reason: str | None = None
        self.started_at = time.time()
        self.ended_at: float | None = None
        self._numbers = (from_number, to_number)
        clock = clock if clock is not None else asyncio.get_running_loop().time
        self.call = call = CallServices(
            settings=settings,
            context=ConversationContext(call_id, from_number, to_number),
            journal=CallJournal(records if records is not None else _Discard(), call_id),
            stats=CallStats(),
            meter=CallMeter(clock),
            observer=observer,
            clock=clock,
        )
        self.stats, self.journal = call.stats, call.journal
        self.context, self.meter = call.context, call.meter
        call.meter.on_error = call.count_error
        # The responder hands it to the chat model: its requests are charged to this call.
        call.context.usage = call.meter
        self.input = SpeechInput(
            leg.audio_format,
            silence_threshold=settings.silence_threshold,
            stats=call.stats,
            billed=engines.stt_name in BILLED_PROVIDERS,
            clock=clock,
        )
        self.speaker = Speaker(
            leg=leg,
            engines=engines,
            call=call,
            on_heard=lambda: self.conversation.turns.answered(),
            on_spoken=lambda action: self.conversation.on_spoken(action),
        )
        self.conversation = Conversation(
            speaker=self.speaker,
            responder=engines.responder,
            call=call,
            confirms_speech_start=lambda: self.input.confirms_speech_start,
            last_voiced_at=lambda: self.input.last_voiced_at,
            on_action=self._finish_with,
        )
        self._stt_task: asyncio.Task[None] | None = None
        self._end_task: asyncio.Task[None] | None = None
        self._action_task: asyncio.Task[None] | None = None
        self._ending = False
        self._ended = asyncio.Event()
        self.media = MediaStream(leg, call, self.input, self.speaker, self.end)

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_ended(self) -> bool:
        """The session reached ENDED or FAILED."""
        return self.state in TERMINAL_STATES

    async def wait_ended(self) -> None:
        """Wait until the session has fully ended."""
        await self._ended.wait()

    async def start(self) -> None:
        """Leg accepted: open the recogniser at once (lesson 4) and start the pacer.

        Raises:
            SttError: no recogniser could start; the caller ends the call.
        """
        self.state = CallState.CONNECTED
        self.journal.started(
            session_id=self.session_id,
            from_number=self._numbers[0],
            to_number=self._numbers[1],
            protocol=self.leg.name,
            direction=self.direction,
            started_at=utc_from_timestamp(self.started_at),
        )
        self.speaker.start()
        stt = self.engines.open_stt(self.leg.audio_format)
        await stt.start()
        self.input.use(stt)
        if isinstance(stt, ReportsRecognizerFallback) and stt.on_fallback:
            # Never silence: the call goes on with the offline recogniser.
            self.journal.event("error", {"code": "stt_fallback", "message": stt.fallback_reason})
            self.call.count_error("stt")
        self._stt_task = asyncio.get_running_loop().create_task(self._listen(), name="stt")

    async def end(self, reason: str, *, code: int = CLOSE_NORMAL, failed: bool = False) -> None:
        """End the call: stop every task, release the engines, close the leg. Idempotent.

        Args:
            reason: why (``completed``, ``caller_hangup``, ``transferred``, ...).
            code: close code (WebSocket semantics; see `realtime_voice.legs.base`).
            failed: the call ends in FAILED rather than ENDED.
        """
        if self._ending:
            await self._ended.wait()
            return
        self._ending = True
        self.end_reason = reason
        if self.state not in TERMINAL_STATES:
            self.state = CallState.ENDING
        log.info("call ending: %s (close %d)", reason, code)
        try:
            await self._release(code, reason)
        finally:
            # Even if the task running end() is cancelled half-way, the session is over:
            # anyone waiting on it (the media handler, the manager's drain) must wake up.
            self.stats.frames_out = self.speaker.frames_sent
            self.state = CallState.FAILED if failed else CallState.ENDED
            self.ended_at = time.time()
            record_call_end(
                self.call,
                state=self.state.value,
                reason=reason,
                live=self.live_counters(),
                started_at=self.started_at,
                ended_at=self.ended_at,
                billed_stt_frames=self.input.billed_frames,
            )
            self._ended.set()

    async def _release(self, code: int, reason: str) -> None:
        """Stop speaking and listening, close the leg, stop the recogniser."""
        self.conversation.stop()
        stt_task = self._stt_task
        if stt_task is not None and stt_task is not asyncio.current_task():
            stt_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stt_task
        await self.speaker.close()
        try:
            done = await self.leg.close(reason, code=code)
            if done is not None:
                self.journal.event("transfer", {"platform_done": done})
        except PlatformControlError:
            self.call.count_error("platform")
            log.exception("platform call control did not finish")
        stt = self.input.recognizer
        if stt is not None:
            try:
                await stt.stop()
            except Exception:
                log.exception("recogniser did not stop cleanly")

    async def say_goodbye_and_end(self, reason: str) -> None:
        """End politely (server shutdown): cut any answer, say goodbye, hang up."""
        # Called from the shutdown task: put the call's ids in this task's log context so
        # its lines, and the goodbye task's, carry them.
        call_id_var.set(self.call_id)
        session_id_var.set(self.session_id)
        if self._ending:
            await self._ended.wait()
            return
        self.conversation.say_goodbye(reason)
        try:
            await asyncio.wait_for(self._ended.wait(), self.settings.mark_timeout_s + 10)
        except TimeoutError:
            await self.end(reason)

    def request_end(self, reason: str, *, code: int = CLOSE_NORMAL, failed: bool = False) -> None:
        """Schedule `end` from inside one of the session's own tasks."""
        if self._end_task is None:
            # Keep a reference: the loop holds tasks only weakly.
            self._end_task = asyncio.get_running_loop().create_task(
                self.end(reason, code=code, failed=failed), name="end"
            )

    # ------------------------------------------------------------------ the leg's events

    async def handle(self, event: MediaEvent) -> None:
        """Act on one inbound event from the leg."""
        if self._ending:
            return
        if isinstance(event, AudioEvent):
            self.input.feed(event.payload)
        elif isinstance(event, MarkEvent):
            self.speaker.on_played(event.name)
        elif isinstance(event, StartEvent):
            await self._on_start(event)
        elif isinstance(event, DtmfEvent):
            self.conversation.on_dtmf(event.digit)
        elif isinstance(event, ConfigEvent):
            await self.media.set_format(event.audio_format)
        elif isinstance(event, StopEvent):
            await self.end("caller_hangup")

    async def on_rejected(self, error: ProtocolError) -> None:
        """A message was rejected: answer per protocol, count it, end at ``VOICE_MAX_ERRORS``."""
        await self.media.reject(error)

    def on_inactive(self, idle_s: float) -> None:
        """Nothing came from the leg for too long: the far end is gone."""
        # In its own task: ending closes the leg, which ends its receive loop, which
        # cancels its watchdog (the caller of this); end() must not be what gets cancelled.
        self.request_end("inactivity_timeout")

    async def _on_start(self, event: StartEvent) -> None:
        if await self.media.start(event):
            self.state = CallState.IN_PROGRESS
            self.conversation.greet(self.engines.responder.greeting(self.context))

    # ------------------------------------------------------------------ recognition

    async def _listen(self) -> None:
        try:
            await self.input.listen(self.conversation)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.call.count_error("stt")
            if isinstance(exc, SttError):
                log.error("speech recognition failed: %s", exc)
            else:
                log.exception("speech recognition loop crashed")
            await self._apologise_and_end("stt_failed")

    # ------------------------------------------------------------------ endings

    def request_action(self, action: Action) -> bool:
        """Transfer or hang up now, asked from outside the call (an operator's console).

        The bot is not waited for: the action goes to the leg at once and the call ends.
        Returns False (nothing done) when the call is already ending.
        """
        if self._ending or self.state in (CallState.ENDING, *TERMINAL_STATES):
            return False
        self.state = CallState.ENDING
        if self._action_task is None:
            # Keep a reference: the loop holds tasks only weakly.
            self._action_task = asyncio.get_running_loop().create_task(
                self._operator_action(action), name="operator-action"
            )
        return True

    async def _operator_action(self, action: Action) -> None:
        # Runs in the HTTP request's task context: give its log lines the call's ids.
        call_id_var.set(self.call_id)
        session_id_var.set(self.session_id)
        log.info("operator action: %s", end_reason_of(action))
        try:
            await self._finish_with(action)
        except Exception:
            # The leg's transport failed: the far end is gone; the call ends all the same.
            log.exception("operator action %s failed on the leg", end_reason_of(action))

    async def _finish_with(self, action: Action) -> None:
        """Carry out a transfer or hang-up (its last words were heard), then end."""
        self.state = CallState.ENDING
        try:
            await carry_out(action, self.leg, self.call)
        finally:
            self.request_end(end_reason_of(action))

    async def _apologise_and_end(self, reason: str) -> None:
        """Never leave the caller in silence: say sorry, then end the call as failed."""
        await self.conversation.apologise(within_s=self.settings.mark_timeout_s + 10)
        self.request_end(reason, code=CLOSE_INTERNAL, failed=True)

    # ------------------------------------------------------------------ reporting

    def live_counters(self) -> LiveCounters:
        """Frame counters of this call so far (cheap; read at metrics scrape time)."""
        return LiveCounters.of(self.stats, self.speaker, self.input.recognizer)

    def snapshot(self) -> dict[str, object]:
        """A JSON-able summary for health/ops."""
        return {
            "call_id": self.call_id,
            "session_id": self.session_id,
            "state": self.state.value,
            "protocol": self.leg.name,
            "frames_in": self.stats.frames_in,
            "frames_out": self.speaker.frames_sent,
            "turns": self.stats.turns,
            "barge_ins": self.stats.barge_ins,
        }


class _Discard:
    """A record sink that keeps nothing (no recorder configured)."""

    def record(self, record: object) -> None:
        """Drop ``record``."""
