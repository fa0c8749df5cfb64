"""One call: inbound audio → STT → responder → TTS → pacer, with barge-in and clean endings.

The session knows no wire protocol (it talks to a `MediaProtocol`) and no provider (it
talks to `SpeechToText`/`TextToSpeech`/`Responder`). The media server feeds it parsed
events; the session sends through the ``send`` and ``close`` callables it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field

from ai_pipeline.flow_responder import outcome_of
from ai_pipeline.nlp import is_backchannel
from ai_pipeline.responder import (
    ConversationContext,
    HandlesSilence,
    HangupAction,
    HistoryEntry,
    SayText,
    TransferAction,
    UserTurn,
)
from realtime_voice.audio.format import FRAME_MS, AudioFormat
from realtime_voice.audio.processor import AudioProcessor
from realtime_voice.call_meter import BILLED_PROVIDERS, CallMeter, Prices
from realtime_voice.config import Settings
from realtime_voice.log import call_id_var, log_transcript, session_id_var
from realtime_voice.protocols.base import (
    AudioEvent,
    ConfigEvent,
    ConnectedEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    MediaProtocol,
    ProtocolError,
    StartEvent,
    StopEvent,
)
from realtime_voice.providers.base import (
    SpeechStarted,
    SpeechToText,
    SttError,
    TextToSpeech,
    TranscriptResult,
    TtsError,
    UtteranceEnd,
    WireAudioSink,
)
from realtime_voice.session.call_control import PlatformCallControl
from realtime_voice.session.engines import SpeechEngines
from realtime_voice.session.observer import Component, FinishedCall, SessionObserver, Stage
from realtime_voice.session.pacer import OutboundPacer
from realtime_voice.session.state import TERMINAL_STATES, CallState
from realtime_voice.storage.journal import (
    CallJournal,
    RecordSink,
    default_outcome,
    metrics_from_stats,
    utc_from_timestamp,
)

__all__ = ["CallSession", "CallStats", "CloseCallback", "LiveCounters", "SendCallback"]

log = logging.getLogger(__name__)

SendCallback = Callable[[str | bytes], Awaitable[None]]
CloseCallback = Callable[[int, str], Awaitable[None]]

_LEAD_FRAMES = 3  # the pacer's 60 ms lead: audio the gateway holds but has not played


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


@dataclass(frozen=True, slots=True)
class LiveCounters:
    """Per-frame counters of a live call, read at metrics scrape time."""

    frames_in: int
    frames_out: int
    dropped_frames: int
    late_frames: int
    stt_reconnects: int


@dataclass
class _Utterance:
    """One thing the bot says (greeting or one response), tracked for barge-in."""

    mark: str
    start_frame: int  # pacer frame index (sent + queued) where this utterance begins
    sentences: list[tuple[str, int]] = field(default_factory=list)  # (text, frames)
    audio_started: bool = False
    recorded: bool = False  # in the call record already (played out or cut by barge-in)
    first_item_at: float | None = None  # when the responder produced its first line
    tts_wait_s: float | None = None  # synthesis request → first audio, first sentence

    def heard_text(self, frames_played: int) -> str:
        """The words the caller heard if ``frames_played`` frames of this utterance played."""
        heard: list[str] = []
        remaining = frames_played
        for text, frames in self.sentences:
            if remaining >= frames:
                heard.append(text)
                remaining -= frames
                continue
            if remaining > 0 and frames > 0:
                words = text.split()
                heard.append(" ".join(words[: len(words) * remaining // frames]))
            break
        return " ".join(part for part in heard if part)

    @property
    def text(self) -> str:
        return " ".join(text for text, _ in self.sentences)


class CallSession:
    """Everything about one live call.

    Args:
        call_id: the gateway's call id (also the log context).
        session_id: our id for this media session.
        from_number: caller number.
        to_number: dialled number.
        protocol: the call's wire codec.
        send: sends one WebSocket message.
        close: closes the WebSocket with a code and reason.
        settings: server settings.
        engines: shared providers and responder.
        records: where the call record, turns and events go (the `CallRecorder`);
            ``None`` keeps nothing.
        platform: transfers and hangs up on the telephony platform too, when it knows
            the call (RingCentral Call Control).
        observer: told about latencies, barge-ins, errors and the call's totals
            (the process's metrics).
        clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        *,
        call_id: str,
        session_id: str,
        from_number: str,
        to_number: str,
        protocol: MediaProtocol,
        send: SendCallback,
        close: CloseCallback,
        settings: Settings,
        engines: SpeechEngines,
        records: RecordSink | None = None,
        platform: PlatformCallControl | None = None,
        observer: SessionObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.call_id = call_id
        self.session_id = session_id
        self.protocol = protocol
        self.settings = settings
        self.engines = engines
        self.state = CallState.INITIALIZING
        self.stats = CallStats()
        self.end_reason: str | None = None
        self.started_at = time.time()
        self.ended_at: float | None = None
        self.context = ConversationContext(
            call_id=call_id, from_number=from_number, to_number=to_number
        )
        self.journal = CallJournal(records if records is not None else _Discard(), call_id)
        self._platform = platform
        self._observer = observer
        self.meter = CallMeter(clock)
        self.meter.on_error = self._count_error
        # The responder hands it to the chat model: its requests are charged to this call.
        self.context.usage = self.meter
        self._prices = Prices.from_settings(settings)
        self._tts_billed = engines.tts_name in BILLED_PROVIDERS
        self._stt_billed = False
        self._on_fallback_stt = False
        self._billed_stt_frames = 0
        self._last_voiced_at: float | None = None
        self._from_number = from_number
        self._to_number = to_number
        self._send_raw = send
        self._close_socket = close
        self._clock = clock
        self._audio_format = protocol.audio_format
        self._processor = AudioProcessor(
            self._audio_format,
            target_rate=16000,
            silence_threshold=settings.silence_threshold,
        )
        self._voice: str | None = None
        self._tts: TextToSpeech = engines.make_tts(self._audio_format.mono)
        self._pacer = self._new_pacer(self._audio_format)
        self._stt: SpeechToText | None = None
        # Set when the recogniser takes this call's wire bytes as they are.
        self._wire_sink: WireAudioSink | None = None
        self._stt_task: asyncio.Task[None] | None = None
        self._speech_task: asyncio.Task[None] | None = None
        self._speaking: _Utterance | None = None
        self._utterance_count = 0
        self._turn_parts: list[str] = []
        self._turn_confidence: list[float] = []
        self._unanswered: str = ""
        self._turn_ended_at: float | None = None
        self._awaiting_first_frame = False
        self._mark_waiters: dict[str, asyncio.Future[None]] = {}
        self._played_marks: set[str] = set()
        self._ending = False
        self._ended = asyncio.Event()
        self._media_started = False
        self._end_task: asyncio.Task[None] | None = None
        self._platform_task: asyncio.Task[bool] | None = None
        self._silence_task: asyncio.Task[None] | None = None
        self._reprompts = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_ended(self) -> bool:
        """The session reached ENDED or FAILED."""
        return self.state in TERMINAL_STATES

    async def wait_ended(self) -> None:
        """Wait until the session has fully ended."""
        await self._ended.wait()

    async def start(self) -> None:
        """Socket accepted: open the recogniser at once (lesson 4) and start the pacer.

        Raises:
            SttError: the recogniser could not start; the caller ends the call.
        """
        self.state = CallState.CONNECTED
        self.journal.started(
            session_id=self.session_id,
            from_number=self._from_number,
            to_number=self._to_number,
            protocol=self.protocol.name,
            started_at=utc_from_timestamp(self.started_at),
        )
        self._pacer.start()
        stt = self.engines.make_stt(self._audio_format)
        try:
            await stt.start()
        except SttError as exc:
            fallback = self.engines.make_fallback_stt
            if fallback is None:
                raise
            # Never silence: the call goes on with the offline recogniser.
            log.error(
                "speech recognition %s unavailable (%s): using the offline recogniser",
                self.engines.stt_name,
                exc,
            )
            self.journal.event("error", {"code": "stt_fallback", "message": str(exc)[:200]})
            self._count_error("stt")
            stt = fallback(self._audio_format)
            await stt.start()
            self._on_fallback_stt = True
        else:
            self._stt_billed = self.engines.stt_name in BILLED_PROVIDERS
        self._use_stt(stt)
        self._stt_task = asyncio.get_running_loop().create_task(self._stt_loop(), name="stt")

    async def end(self, reason: str, *, code: int = 1000, failed: bool = False) -> None:
        """End the call: stop every task, release the engines, close the socket. Idempotent.

        Args:
            reason: why (``completed``, ``caller_hangup``, ``transferred``, ...).
            code: WebSocket close code.
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
            self.stats.frames_out = self._pacer.stats.frames_sent
            live = self.live_counters()
            self.state = CallState.FAILED if failed else CallState.ENDED
            self.ended_at = time.time()
            flow_outcome = outcome_of(self.context)
            how_it_ended = default_outcome(self.state.value, reason)
            outcome = (
                flow_outcome.outcome
                if flow_outcome
                and flow_outcome.outcome
                # A failure or a shutdown says more than the flow's default outcome; what
                # the flow reached itself (booked, escalated...) still stands.
                and (flow_outcome.decided or how_it_ended in ("completed", "transferred"))
                else how_it_ended
            )
            usage = self.meter.usage
            usage.call_seconds = max(0.0, self.ended_at - self.started_at)
            usage.stt_audio_seconds = self._billed_stt_frames * FRAME_MS / 1000
            cost = usage.cost_breakdown(self._prices)["total"]
            self.journal.ended(
                state=self.state.value,
                end_reason=reason,
                outcome=outcome,
                escalated=flow_outcome.escalated if flow_outcome else None,
                metrics=metrics_from_stats(self.stats),
                ended_at=utc_from_timestamp(self.ended_at),
                usage=usage.as_record(self._prices),
                cost_usd=round(cost, 6),
            )
            if self._observer is not None:
                self._observer.call_finished(
                    FinishedCall(
                        outcome=outcome,
                        frames_in=live.frames_in,
                        frames_out=live.frames_out,
                        dropped_frames=live.dropped_frames,
                        late_frames=live.late_frames,
                        stt_reconnects=live.stt_reconnects,
                        usage=usage,
                        cost_usd=cost,
                    )
                )
            self._ended.set()
        log.info(
            "call ended: state=%s frames_in=%d frames_out=%d turns=%d barge_ins=%d",
            self.state.value,
            self.stats.frames_in,
            self.stats.frames_out,
            self.stats.turns,
            self.stats.barge_ins,
        )

    async def _release(self, code: int, reason: str) -> None:
        """Stop the call's tasks, the pacer and the recogniser; close the socket."""
        current = asyncio.current_task()
        tasks = [
            t for t in (self._speech_task, self._stt_task, self._silence_task) if t is not None
        ]
        for task in tasks:
            if task is not current:
                task.cancel()
        for task in tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        utterance = self._speaking
        if utterance is not None and utterance.audio_started and not utterance.recorded:
            # The call ended while the bot was talking (the caller hung up or vanished):
            # the record keeps what the caller heard of it, as after a barge-in.
            played = self._pacer.stats.frames_sent - utterance.start_frame - _LEAD_FRAMES
            utterance.recorded = True
            self.journal.turn("bot", utterance.heard_text(max(0, played)), interrupted=True)
        for waiter in self._mark_waiters.values():
            if not waiter.done():
                waiter.cancel()
        await self._pacer.close()
        if self._platform_task is not None:
            try:
                done = await asyncio.wait_for(asyncio.shield(self._platform_task), 15)
                self.journal.event("transfer", {"platform_done": done})
            except Exception:
                self._count_error("platform")
                log.exception("platform call control did not finish")
        if self._stt is not None:
            try:
                await self._stt.stop()
            except Exception:
                log.exception("recogniser did not stop cleanly")
        with contextlib.suppress(Exception):
            await self._close_socket(code, reason[:120])

    async def say_goodbye_and_end(self, reason: str) -> None:
        """End politely (server shutdown): cut any answer, say goodbye, hang up."""
        # Called from the shutdown task (gather wraps this in its own task): put the call's
        # ids in this task's log context so its lines, and the goodbye task's, carry them.
        call_id_var.set(self.call_id)
        session_id_var.set(self.session_id)
        if self._ending:
            await self._ended.wait()
            return
        task = self._speech_task
        if task is not None and not task.done():
            utterance = self._speaking
            if utterance is not None and self._bot_audible():
                await self._barge_in(utterance)
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        line = "I'm sorry, we have to end this call now. Please call back later. Goodbye."
        self._speech_task = asyncio.get_running_loop().create_task(
            self._speak_items(
                _single(SayText(line, cacheable=True), HangupAction(reason)), "goodbye_done"
            ),
            name="goodbye",
        )
        try:
            await asyncio.wait_for(self._ended.wait(), self.settings.mark_timeout_s + 10)
        except TimeoutError:
            await self.end(reason)

    def request_end(self, reason: str, *, code: int = 1000, failed: bool = False) -> None:
        """Schedule `end` from inside one of the session's own tasks."""
        if self._end_task is None:
            # Keep a reference: the loop holds tasks only weakly.
            self._end_task = asyncio.get_running_loop().create_task(
                self.end(reason, code=code, failed=failed), name="end"
            )

    # ------------------------------------------------------------------ inbound

    async def handle(self, event: MediaEvent) -> None:
        """Act on one parsed gateway event."""
        if self._ending:
            return
        if isinstance(event, AudioEvent):
            self._on_audio(event.payload)
        elif isinstance(event, MarkEvent):
            self._on_mark(event.name)
        elif isinstance(event, StartEvent):
            await self._on_start(event)
        elif isinstance(event, DtmfEvent):
            self._on_dtmf(event.digit)
        elif isinstance(event, ConfigEvent):
            await self._on_config(event.audio_format)
        elif isinstance(event, StopEvent):
            await self.end("caller_hangup")
        elif isinstance(event, ConnectedEvent):
            pass

    async def on_bad_message(self, error: ProtocolError) -> None:
        """A frame was rejected: answer per protocol, count it, end at ``VOICE_MAX_ERRORS``."""
        self.stats.bad_messages += 1
        log.warning(
            "rejected frame (%d/%d): %s", self.stats.bad_messages, self.settings.max_errors, error
        )
        self.journal.event("error", {"code": error.code, "message": error.message[:200]})
        self._count_error("protocol")
        frame = self.protocol.format_error(error.code, error.message)
        if frame is not None:
            await self._send(frame)
        if self.stats.bad_messages >= self.settings.max_errors:
            await self.end("too_many_errors", code=1008, failed=True)

    def _on_audio(self, payload: bytes) -> None:
        self.stats.bytes_in += len(payload)
        sink = self._wire_sink
        voiced = False
        if sink is not None:
            # The recogniser takes the gateway's bytes: re-frame and measure, no decoding.
            wire_frames = self._processor.process_wire(payload)
            count = len(wire_frames)
            for wire_frame in wire_frames:
                if wire_frame.is_silence:
                    self.stats.silent_frames_in += 1
                else:
                    voiced = True
                sink.send_wire(wire_frame.wire, silent=wire_frame.is_silence)
        else:
            frames = self._processor.process(payload)
            count = len(frames)
            stt = self._stt
            for frame in frames:
                if frame.is_silence:
                    self.stats.silent_frames_in += 1
                else:
                    voiced = True
                if stt is not None:
                    stt.send_audio(frame.pcm)
        self.stats.frames_in += count
        if voiced:
            self._last_voiced_at = self._clock()
        if self._stt is not None and self._stt_billed:
            self._billed_stt_frames += count

    def _use_stt(self, stt: SpeechToText) -> None:
        """Make ``stt`` the call's recogniser, fed wire bytes when it takes them."""
        self._stt = stt
        fmt = self._audio_format
        self._wire_sink = None
        if (
            isinstance(stt, WireAudioSink)
            and fmt.channels == 1
            and stt.accepts_wire(fmt.encoding.value, fmt.sample_rate)
        ):
            self._wire_sink = stt

    async def _on_start(self, event: StartEvent) -> None:
        if self._media_started:
            await self.on_bad_message(ProtocolError("bad_message", "duplicate start message"))
            return
        self._media_started = True
        params = dict(self.context.custom_parameters)
        params.update({k: v for k, v in event.custom_parameters.items() if k != "token"})
        self.context.custom_parameters = params
        if event.audio_format is not None and event.audio_format != self._audio_format:
            await self._on_config(event.audio_format)
        voice = params.get("voice") or None
        if voice != self._voice:
            self._voice = voice
            self._tts = self.engines.make_tts(self._audio_format.mono, voice)
        self.state = CallState.IN_PROGRESS
        self.journal.updated(
            state=CallState.IN_PROGRESS.value,
            answered_at=utc_from_timestamp(time.time()),
            custom_parameters=params,
            flow=params.get("flow"),
        )
        self.journal.state_changed(CallState.CONNECTED.value, CallState.IN_PROGRESS.value)
        greeting = self.engines.responder.greeting(self.context)
        self._speech_task = asyncio.get_running_loop().create_task(
            self._speak_items(_single(SayText(greeting, cacheable=True)), "greeting_done"),
            name="greeting",
        )

    async def _on_config(self, fmt: AudioFormat) -> None:
        if fmt == self._audio_format:
            return
        if self._pacer.busy or self._speaking is not None:
            await self.on_bad_message(
                ProtocolError("bad_message", "config ignored: bot audio is playing")
            )
            return
        log.info("audio format now %s/%d/%d", fmt.encoding.value, fmt.sample_rate, fmt.channels)
        self._audio_format = fmt
        self._processor.set_format(fmt)
        if self._stt is not None:
            # The recogniser's stream keeps its encoding: new bytes may need converting.
            self._use_stt(self._stt)
        await self._pacer.close()
        self._pacer = self._new_pacer(fmt)
        self._pacer.start()
        self._tts = self.engines.make_tts(fmt.mono, self._voice)

    def _on_dtmf(self, digit: str) -> None:
        self.stats.dtmf_digits += 1
        # Keypad input is what the caller "said" (PINs, account numbers): a transcript.
        log_transcript(log, self.settings.log_transcripts, "dtmf %s", digit)
        self.journal.event("dtmf", {"digit": digit})
        self._start_response(UserTurn(text=f"[dtmf {digit}]", dtmf=digit))

    def _on_mark(self, name: str) -> None:
        self._played_marks.add(name)
        waiter = self._mark_waiters.pop(name, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------ recognition

    async def _stt_loop(self) -> None:
        while True:
            stt = self._stt
            assert stt is not None
            try:
                async for event in stt.events():
                    if isinstance(event, SpeechStarted):
                        await self._on_speech_started()
                    elif isinstance(event, TranscriptResult):
                        await self._on_transcript(event)
                    elif isinstance(event, UtteranceEnd) and self._turn_parts:
                        self._end_of_turn()
                return
            except asyncio.CancelledError:
                raise
            except SttError as exc:
                self._count_error("stt")
                if await self._switch_to_fallback_stt(stt, exc):
                    continue
                log.error("speech recognition failed: %s", exc)
                await self._apologise_and_end("stt_failed")
                return
            except Exception:
                self._count_error("stt")
                log.exception("speech recognition loop crashed")
                await self._apologise_and_end("stt_failed")
                return

    async def _switch_to_fallback_stt(self, failed: SpeechToText, exc: SttError) -> bool:
        """The recogniser gave up mid-call (it stalled or its retries ran out): go on with
        the offline one, as at start-up, and ask the caller to repeat what was lost.

        Returns False when there is nothing to fall back to (the caller is told, and the
        call ends) or the offline recogniser itself failed.
        """
        make = self.engines.make_fallback_stt
        if make is None or self._on_fallback_stt:
            return False
        log.error(
            "speech recognition %s failed mid-call (%s): switching to the offline recogniser",
            self.engines.stt_name,
            exc,
        )
        self.journal.event("error", {"code": "stt_fallback", "message": str(exc)[:200]})
        with contextlib.suppress(Exception):
            await failed.stop()
        fallback = make(self._audio_format)
        try:
            await fallback.start()
        except SttError as again:
            log.error("the offline recogniser did not start either: %s", again)
            return False
        self._use_stt(fallback)
        self._stt_billed = False
        self._on_fallback_stt = True
        self._turn_parts.clear()
        self._turn_confidence.clear()
        task = self._speech_task
        if task is None or task.done():
            # What the caller said while the recogniser was failing is lost: say so.
            line = "Sorry, I missed that. Could you say it again?"
            self._speech_task = asyncio.get_running_loop().create_task(
                self._speak_items(
                    _single(SayText(line, cacheable=True)),
                    f"response_{self._next_utterance()}_done",
                ),
                name="stt-fallback-prompt",
            )
        return True

    def _next_utterance(self) -> int:
        self._utterance_count += 1
        return self._utterance_count

    async def _on_transcript(self, result: TranscriptResult) -> None:
        text = result.text.strip()
        utterance = self._speaking
        if text and utterance is not None and self._bot_audible():
            if is_backchannel(text):
                # "uh-huh", "yeah" while the bot talks: neither an interruption nor a turn.
                if result.is_final:
                    log_transcript(log, self.settings.log_transcripts, "back-channel: %s", text)
                    self.stats.transcripts += 1
                    return
            else:
                await self._barge_in(utterance)
        if not result.is_final:
            return
        self.stats.transcripts += 1
        if text:
            log_transcript(log, self.settings.log_transcripts, "caller said: %s", text)
            self._turn_parts.append(text)
            self._turn_confidence.append(result.confidence)
        if result.speech_final and self._turn_parts:
            self._end_of_turn()

    def _end_of_turn(self) -> None:
        text = " ".join([self._unanswered, *self._turn_parts]).strip()
        confidence = min(self._turn_confidence, default=1.0)
        self._turn_parts.clear()
        self._turn_confidence.clear()
        if not text:
            return
        self._unanswered = text
        self.stats.turns += 1
        if self._last_voiced_at is not None:
            # The recogniser's endpointing: last audible caller audio → the turn's end.
            waited = self._clock() - self._last_voiced_at
            if waited < 10.0:
                self._observe_stage("stt_final", waited)
        self.context.history.append(HistoryEntry("caller", text))
        self.journal.turn("caller", text, confidence=confidence)
        self._start_response(UserTurn(text=text, confidence=confidence))

    async def _on_speech_started(self) -> None:
        self._cancel_silence_timer()
        self._reprompts = 0
        utterance = self._speaking
        task = self._speech_task
        if utterance is not None and self._bot_audible():
            if self._stt is not None and not self._stt.confirms_speech_start:
                return  # wait for words (`_on_transcript`): a cough must not cut the bot
            await self._barge_in(utterance)
        elif (
            task is not None
            and not task.done()
            and utterance is not None
            and not utterance.audio_started
            and utterance.mark != "greeting_done"
        ):
            # The caller went on talking before any answer audio: drop the half-made answer;
            # its turn text stays in `_unanswered` and is merged into the next turn.
            task.cancel()
            if self.context.history and self.context.history[-1].speaker == "caller":
                self.context.history.pop()
                self.stats.turns -= 1

    def _bot_audible(self) -> bool:
        """Bot audio is queued here, or sent but its mark not yet echoed (still playing)."""
        utterance = self._speaking
        if utterance is None or not utterance.audio_started:
            return False
        return self._pacer.busy or utterance.mark not in self._played_marks

    async def _barge_in(self, utterance: _Utterance) -> None:
        started = self._clock()
        task = self._speech_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        sent_before = self._pacer.stats.frames_sent
        await self._pacer.clear()
        played = max(0, sent_before - utterance.start_frame - _LEAD_FRAMES)
        heard = utterance.heard_text(played)
        self.context.history.append(HistoryEntry("bot", heard, interrupted=True))
        self.journal.turn("bot", heard, interrupted=True)
        self.journal.event("barge_in", {"played_ms": played * FRAME_MS})
        self._speaking = None
        waiter = self._mark_waiters.pop(utterance.mark, None)
        if waiter is not None and not waiter.done():
            waiter.cancel()
        self.stats.barge_ins += 1
        self.stats.barge_in_latencies_ms.append((self._clock() - started) * 1000)
        if self._observer is not None:
            self._observer.barge_in()
        log.info("barge-in: bot cut after %d ms of audio", played * FRAME_MS)

    # ------------------------------------------------------------------ speaking

    def _start_response(self, turn: UserTurn) -> None:
        """Answer ``turn``; an answer still under way is cut (barge-in rules apply)."""
        self._cancel_silence_timer()
        previous = self._speech_task
        self._turn_ended_at = self._clock()
        self._awaiting_first_frame = True
        self.meter.new_turn()
        self._speech_task = asyncio.get_running_loop().create_task(
            self._respond(turn, previous),
            name="response",
        )

    async def _respond(self, turn: UserTurn, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            utterance = self._speaking
            if utterance is not None and utterance.audio_started and self._bot_audible():
                await self._barge_in(utterance)
            else:
                previous.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await previous
        self._utterance_count += 1
        items = self.engines.responder.respond(turn, self.context)
        await self._speak_items(items, f"response_{self._utterance_count}_done")

    async def _speak_items(
        self, items: AsyncIterator[SayText | TransferAction | HangupAction], mark: str
    ) -> None:
        """Say each text as it arrives, then carry out a trailing transfer/hang-up."""
        utterance = _Utterance(
            mark=mark, start_frame=self._pacer.stats.frames_sent + self._pacer_pending_frames()
        )
        self._speaking = utterance
        action: TransferAction | HangupAction | None = None
        try:
            async for item in items:
                if utterance.first_item_at is None:
                    utterance.first_item_at = self._clock()
                if isinstance(item, SayText):
                    await self._say(item, utterance)
                else:
                    action = item
                    break
        except asyncio.CancelledError:
            raise
        except TtsError as exc:
            self._count_error("tts")
            log.error("speech synthesis failed: %s", exc)
        except Exception:
            self._count_error("responder")
            log.exception("responder failed")
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if utterance.audio_started:
            self._pacer.end_utterance(mark)
            self._unanswered = ""
        if action is not None:
            await self._finish_with(action, utterance)
            return
        if utterance.audio_started:
            await self._wait_played(utterance)
            self._record_bot(utterance)
        if self._speaking is utterance:
            self._speaking = None
            self._start_silence_timer()

    async def _say(self, item: SayText, utterance: _Utterance) -> None:
        text = item.text.strip()
        if not text:
            return
        log_transcript(log, self.settings.log_transcripts, "bot says: %s", text)
        fmt = self._audio_format.mono
        cache = self.engines.line_cache
        voice = self._voice or ""
        synthesized = not (item.cacheable and cache.get(text, fmt, voice) is not None)
        stream = (
            cache.speak(self._tts, text, fmt, voice)
            if item.cacheable
            else self._tts.synthesize(text)
        )
        if synthesized and self._tts_billed:
            self.meter.usage.tts_characters += len(text)
        frames_before = self._pacer_total_frames()
        requested_at = self._clock()
        first = True
        try:
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    if first:
                        first = False
                        waited = self._clock() - requested_at
                        if utterance.tts_wait_s is None and not utterance.audio_started:
                            utterance.tts_wait_s = waited
                        if synthesized:
                            self._observe_stage("tts_first_audio", waited)
                    utterance.audio_started = True
                    await self._pacer.put_audio(chunk)
        finally:
            utterance.sentences.append((text, self._pacer_total_frames() - frames_before))

    def _pacer_pending_frames(self) -> int:
        return self._pacer.queued_ms // FRAME_MS

    def _pacer_total_frames(self) -> int:
        return self._pacer.stats.frames_sent + self._pacer_pending_frames()

    async def _wait_played(self, utterance: _Utterance) -> bool:
        """Wait for the gateway's echo of the utterance's mark (bounded by the mark timeout)."""
        await self._pacer.wait_idle()
        if utterance.mark in self._played_marks:
            return True
        waiter = self._mark_waiters.setdefault(
            utterance.mark, asyncio.get_running_loop().create_future()
        )
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.settings.mark_timeout_s)
            return True
        except TimeoutError:
            log.warning(
                "no mark echo for %s within %.0f s", utterance.mark, self.settings.mark_timeout_s
            )
            return False

    def _start_silence_timer(self) -> None:
        """After the bot finished speaking: re-prompt a silent caller, then end politely."""
        if not isinstance(self.engines.responder, HandlesSilence) or self._ending:
            return
        self._cancel_silence_timer()
        self._silence_task = asyncio.get_running_loop().create_task(
            self._silence_after(self.settings.silence_reprompt_s), name="silence"
        )

    def _cancel_silence_timer(self) -> None:
        task = self._silence_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._silence_task = None

    async def _silence_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if self._turn_parts or (self._speech_task is not None and not self._speech_task.done()):
            return  # the caller is mid-turn, or an answer is being made
        responder = self.engines.responder
        assert isinstance(responder, HandlesSilence)
        final = self._reprompts >= self.settings.silence_max_reprompts
        self._reprompts += 1
        log.info(
            "caller silent for %.0f s: %s", delay_s, "ending the call" if final else "re-prompt"
        )
        self.journal.event("silence", {"final": final, "after_s": delay_s})
        items = responder.silence(self.context, final=final)
        self._utterance_count += 1
        self._silence_task = None
        self._speech_task = asyncio.get_running_loop().create_task(
            self._speak_items(_single(*items), f"response_{self._utterance_count}_done"),
            name="silence-prompt",
        )

    def _record_bot(self, utterance: _Utterance) -> None:
        """The utterance played to its end: it goes into the history and the record."""
        utterance.recorded = True
        self.context.history.append(HistoryEntry("bot", utterance.text))
        self.journal.turn("bot", utterance.text)

    async def _finish_with(
        self, action: TransferAction | HangupAction, utterance: _Utterance
    ) -> None:
        if utterance.audio_started:
            await self._wait_played(utterance)
            self._record_bot(utterance)
        self.state = CallState.ENDING
        if isinstance(action, TransferAction):
            log.info("transferring the caller")
            target = action.target.phone_number or action.target.extension_number
            self.journal.updated(escalated=True, transfer_target=target)
            self.journal.event("transfer", {"target": action.target.as_wire()})
            if self._observer is not None:
                self._observer.transfer()
            if self._platform is not None:
                self._run_platform(self._platform.transfer(self.call_id, action.target))
            frame = self.protocol.format_transfer(action.target.as_wire())
            if frame is not None:
                await self._send(frame)
            self.request_end("transferred")
        else:
            if self._platform is not None:
                self._run_platform(self._platform.hangup(self.call_id))
            frame = self.protocol.format_hangup(action.reason)
            if frame is not None:
                await self._send(frame)
            self.request_end(action.reason)

    def _run_platform(self, request: Coroutine[object, object, bool]) -> None:
        """Start a platform request that the call's ending must wait for, not cancel: the
        gateway may close the socket the moment it sees the transfer frame."""
        self._platform_task = asyncio.get_running_loop().create_task(request, name="platform")

    async def _apologise_and_end(self, reason: str) -> None:
        """Never leave the caller in silence: say sorry, then end the call as failed."""
        line = "I'm sorry, we're having technical difficulties. Please call back later. Goodbye."
        try:
            await asyncio.wait_for(
                self._speak_items(_single(SayText(line, cacheable=True)), "apology_done"),
                self.settings.mark_timeout_s + 10,
            )
        except Exception:
            log.exception("could not say the apology")
        self.request_end(reason, code=1011, failed=True)

    # ------------------------------------------------------------------ output

    def _new_pacer(self, fmt: AudioFormat) -> OutboundPacer:
        pacer = OutboundPacer(self._send, self.protocol, fmt.mono, max_lead_ms=60, ticks="shared")
        pacer.on_frame_sent = self._on_frame_sent
        return pacer

    def _on_frame_sent(self) -> None:
        if self._awaiting_first_frame and self._turn_ended_at is not None:
            self._awaiting_first_frame = False
            latency = self._clock() - self._turn_ended_at
            self.stats.response_latencies_ms.append(latency * 1000)
            if self._observer is not None:
                self._observer.turn_answered(latency, latency - self._provider_wait())
                if self.meter.llm_first_token_s is not None:
                    self._observer.stage_ttfb("llm_first_token", self.meter.llm_first_token_s)

    def _provider_wait(self) -> float:
        """Of this turn's latency, the time spent waiting on the chat model's first line
        and on the voice's first audio (what the server did not add itself)."""
        utterance = self._speaking
        if utterance is None:
            return 0.0
        waited = utterance.tts_wait_s or 0.0
        llm_started = self.meter.llm_started_at
        if llm_started is not None and utterance.first_item_at is not None:
            waited += max(0.0, utterance.first_item_at - llm_started)
        return waited

    def _observe_stage(self, stage: Stage, seconds: float) -> None:
        if self._observer is not None:
            self._observer.stage_ttfb(stage, seconds)

    def _count_error(self, component: Component) -> None:
        self.stats.errors += 1
        if self._observer is not None:
            self._observer.error(component)

    def live_counters(self) -> LiveCounters:
        """Frame counters of this call so far (cheap; read at metrics scrape time)."""
        dropped = reconnects = 0
        stt_metrics = getattr(self._stt, "metrics", None)
        if stt_metrics is not None:
            dropped = int(getattr(stt_metrics, "dropped_frames", 0))
            reconnects = int(getattr(stt_metrics, "reconnects", 0))
        pacer = self._pacer.stats
        return LiveCounters(
            frames_in=self.stats.frames_in,
            frames_out=pacer.frames_sent,
            dropped_frames=dropped,
            late_frames=pacer.late_frames,
            stt_reconnects=reconnects,
        )

    async def _send(self, message: str | bytes) -> None:
        await self._send_raw(message)

    def snapshot(self) -> dict[str, object]:
        """A JSON-able summary for health/ops."""
        return {
            "call_id": self.call_id,
            "session_id": self.session_id,
            "state": self.state.value,
            "protocol": self.protocol.name,
            "frames_in": self.stats.frames_in,
            "frames_out": self._pacer.stats.frames_sent,
            "turns": self.stats.turns,
            "barge_ins": self.stats.barge_ins,
        }


async def _single(
    *items: SayText | TransferAction | HangupAction,
) -> AsyncIterator[SayText | TransferAction | HangupAction]:
    for item in items:
        yield item


class _Discard:
    """A record sink that keeps nothing (no recorder configured)."""

    def record(self, record: object) -> None:
        """Drop ``record``."""
