"""`Speaker`: the bot's voice on one call — speaking, marks, barge-in; it owns the pacer.

A response is a stream of lines and at most one trailing action. Each line is
synthesised (or taken from the line cache) and queued on the pacer, which feeds the leg
in real time; after the last line a mark is placed, and the utterance counts as heard
once the leg reports the mark played. Only then does a trailing transfer or hang-up
go ahead, so the caller always hears the last words.

Barge-in cuts the utterance: the task making it is cancelled, the pacer and the leg
drop what they hold, and the record keeps what the caller heard — the frames sent,
less the leg's playout lead, mapped back onto the words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from ai_pipeline.responder import (
    HangupAction,
    HistoryEntry,
    SayText,
    TransferAction,
)
from realtime_voice.audio.format import FRAME_MS, AudioFormat
from realtime_voice.call_meter import BILLED_PROVIDERS
from realtime_voice.legs.base import CallLeg
from realtime_voice.log import log_transcript
from realtime_voice.providers.base import TextToSpeech, TtsError
from realtime_voice.session.engines import SpeechEngines
from realtime_voice.session.pacer import OutboundPacer
from realtime_voice.session.services import CallServices
from realtime_voice.session.utterance import Utterance

__all__ = ["Action", "Item", "Speaker"]

log = logging.getLogger(__name__)

Action = TransferAction | HangupAction
Item = SayText | TransferAction | HangupAction
ItemSource = Callable[[], AsyncIterator[Item]]


class Speaker:
    """Says what the responder produces on one call.

    Args:
        leg: the call's leg (the pacer's outlet; its playout lead).
        engines: the synthesiser factory and the line cache.
        call: the call's bookkeeping (history, record, counters, usage, metrics).
        on_heard: an utterance started playing (the caller's pending turn was answered).
        on_spoken: an utterance finished: with its trailing action (after the caller
            heard it all), or None when it played to its end; not called when cut.
    """

    def __init__(
        self,
        *,
        leg: CallLeg,
        engines: SpeechEngines,
        call: CallServices,
        on_heard: Callable[[], None],
        on_spoken: Callable[[Action | None], Awaitable[None]],
    ) -> None:
        self._leg = leg
        self._engines = engines
        self._call = call
        self._mark_timeout_s = call.settings.mark_timeout_s
        self._log_transcripts = call.settings.log_transcripts
        self._on_heard = on_heard
        self._on_spoken = on_spoken
        self._tts_billed = engines.tts_name in BILLED_PROVIDERS
        self._format = leg.audio_format
        self._voice: str | None = None
        self._tts: TextToSpeech = engines.make_tts(self._format.mono)
        self._pacer = self._new_pacer(self._format)
        self._task: asyncio.Task[None] | None = None
        self._responses = 0
        self._mark_waiters: dict[str, asyncio.Future[None]] = {}
        self._played_marks: set[str] = set()
        self._turn_ended_at: float | None = None
        self._awaiting_first_frame = False
        self.utterance: Utterance | None = None
        """What the bot is saying now (None between utterances)."""

    # -- state -------------------------------------------------------------------------

    @property
    def frames_sent(self) -> int:
        """Frames played out so far."""
        return self._pacer.stats.frames_sent

    @property
    def late_frames(self) -> int:
        """Frames sent more than a frame period late."""
        return self._pacer.stats.late_frames

    @property
    def making(self) -> bool:
        """An utterance is being made or played (its task is alive)."""
        return self._task is not None and not self._task.done()

    @property
    def busy(self) -> bool:
        """Audio is queued or playing: the format must not change under it."""
        return self._pacer.busy or self.utterance is not None

    def audible(self) -> bool:
        """Bot audio is queued here, or sent but its mark not yet echoed (still playing)."""
        utterance = self.utterance
        if utterance is None or not utterance.audio_started:
            return False
        return self._pacer.busy or utterance.mark not in self._played_marks

    # -- speaking ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the pacer (once the call is connected)."""
        self._pacer.start()

    def say(self, items: ItemSource, mark: str | None = None, *, name: str) -> None:
        """Say what ``items()`` yields, cutting what is being said first (barge-in rules).

        Args:
            items: makes the stream of lines (called once the previous utterance is cut).
            mark: the mark after its last frame; None: ``response_<n>_done``.
            name: the task's name (logs).
        """
        previous = self._task
        self._task = asyncio.get_running_loop().create_task(
            self._replace(previous, items, mark), name=name
        )

    def expect_answer(self) -> None:
        """A caller turn just ended: time its answer's first frame from now."""
        self._turn_ended_at = self._call.clock()
        self._awaiting_first_frame = True

    def cancel_unvoiced(self) -> bool:
        """Drop an answer still being made with none of its audio out (not the greeting).

        Returns whether one was dropped.
        """
        utterance = self.utterance
        if (
            self.making
            and utterance is not None
            and not utterance.audio_started
            and utterance.mark != "greeting_done"
        ):
            assert self._task is not None
            self._task.cancel()
            return True
        return False

    async def barge_in(self) -> None:
        """The caller spoke over the bot: cut the utterance and record what was heard."""
        await self._cut(self._task)

    async def _cut(self, task: asyncio.Task[None] | None) -> None:
        """Cut the utterance ``task`` is making and record what the caller heard of it."""
        utterance = self.utterance
        if utterance is None:
            return
        started = self._call.clock()
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        sent_before = self._pacer.stats.frames_sent
        await self._pacer.clear()
        played = max(0, sent_before - utterance.start_frame - self._lead_frames)
        heard = utterance.heard_text(played)
        self._call.context.history.append(HistoryEntry("bot", heard, interrupted=True))
        self._call.journal.turn("bot", heard, interrupted=True)
        self._call.journal.event("barge_in", {"played_ms": played * FRAME_MS})
        utterance.recorded = True
        self.utterance = None
        waiter = self._mark_waiters.pop(utterance.mark, None)
        if waiter is not None and not waiter.done():
            waiter.cancel()
        self._call.stats.barge_ins += 1
        self._call.stats.barge_in_latencies_ms.append((self._call.clock() - started) * 1000)
        if self._call.observer is not None:
            self._call.observer.barge_in()
        log.info("barge-in: bot cut after %d ms of audio", played * FRAME_MS)

    def on_played(self, mark: str) -> None:
        """The leg reports the audio before ``mark`` has played."""
        self._played_marks.add(mark)
        waiter = self._mark_waiters.pop(mark, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Wait for the utterance under way to finish (or be cut)."""
        task = self._task
        if task is not None and task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(task)

    # -- format and voice --------------------------------------------------------------

    def set_voice(self, voice: str | None) -> None:
        """Speak with ``voice`` from the next line on (the call's ``voice`` parameter)."""
        if voice != self._voice:
            self._voice = voice
            self._tts = self._engines.make_tts(self._format.mono, voice)

    async def set_format(self, fmt: AudioFormat) -> None:
        """The call's wire format changed (only while nothing is playing)."""
        self._format = fmt
        await self._pacer.close()
        self._pacer = self._new_pacer(fmt)
        self._pacer.start()
        self._tts = self._engines.make_tts(fmt.mono, self._voice)

    # -- the end -----------------------------------------------------------------------

    async def close(self) -> None:
        """Stop speaking; an utterance cut by the call's end keeps what was heard of it."""
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        utterance = self.utterance
        if utterance is not None and utterance.audio_started and not utterance.recorded:
            # The call ended while the bot was talking (the caller hung up or vanished):
            # the record keeps what the caller heard of it, as after a barge-in.
            played = self._pacer.stats.frames_sent - utterance.start_frame - self._lead_frames
            utterance.recorded = True
            self._call.journal.turn("bot", utterance.heard_text(max(0, played)), interrupted=True)
        for waiter in self._mark_waiters.values():
            if not waiter.done():
                waiter.cancel()
        await self._pacer.close()

    # -- internals ---------------------------------------------------------------------

    @property
    def _lead_frames(self) -> int:
        # Audio the leg holds but has not played: sent is not heard.
        return self._leg.playout_lead_ms // FRAME_MS

    async def _replace(
        self, previous: asyncio.Task[None] | None, items: ItemSource, mark: str | None
    ) -> None:
        if previous is not None and not previous.done():
            if self.audible():
                await self._cut(previous)
            else:
                previous.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await previous
        if mark is None:
            self._responses += 1
            mark = f"response_{self._responses}_done"
        await self._speak(items(), mark)

    async def _speak(self, items: AsyncIterator[Item], mark: str) -> None:
        utterance = Utterance(mark=mark, start_frame=self._total_frames())
        self.utterance = utterance
        action: Action | None = None
        try:
            async for item in items:
                if utterance.first_item_at is None:
                    utterance.first_item_at = self._call.clock()
                if isinstance(item, SayText):
                    await self._say_line(item, utterance)
                else:
                    action = item
                    break
        except asyncio.CancelledError:
            raise
        except TtsError as exc:
            self._call.count_error("tts")
            log.error("speech synthesis failed: %s", exc)
        except Exception:
            self._call.count_error("responder")
            log.exception("responder failed")
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if utterance.audio_started:
            self._pacer.end_utterance(mark)
            self._on_heard()
            await self._wait_played(utterance)
            self._record(utterance)
        if action is not None:
            await self._on_spoken(action)
        elif self.utterance is utterance:
            self.utterance = None
            await self._on_spoken(None)

    async def _say_line(self, item: SayText, utterance: Utterance) -> None:
        text = item.text.strip()
        if not text:
            return
        log_transcript(log, self._log_transcripts, "bot says: %s", text)
        fmt = self._format.mono
        cache = self._engines.line_cache
        voice = self._voice or ""
        synthesized = not (item.cacheable and cache.get(text, fmt, voice) is not None)
        stream = (
            cache.speak(self._tts, text, fmt, voice)
            if item.cacheable
            else self._tts.synthesize(text)
        )
        if synthesized and self._tts_billed:
            self._call.meter.usage.tts_characters += len(text)
        frames_before = self._total_frames()
        requested_at = self._call.clock()
        first = True
        try:
            async with contextlib.aclosing(stream):
                async for chunk in stream:
                    if first:
                        first = False
                        waited = self._call.clock() - requested_at
                        if utterance.tts_wait_s is None and not utterance.audio_started:
                            utterance.tts_wait_s = waited
                        if synthesized:
                            self._call.stage("tts_first_audio", waited)
                    utterance.audio_started = True
                    await self._pacer.put_audio(chunk)
        finally:
            utterance.sentences.append((text, self._total_frames() - frames_before))

    def _total_frames(self) -> int:
        return self._pacer.stats.frames_sent + self._pacer.queued_ms // FRAME_MS

    async def _wait_played(self, utterance: Utterance) -> bool:
        """Wait for the leg's report that the utterance's mark played (bounded)."""
        await self._pacer.wait_idle()
        if utterance.mark in self._played_marks:
            return True
        waiter = self._mark_waiters.setdefault(
            utterance.mark, asyncio.get_running_loop().create_future()
        )
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._mark_timeout_s)
            return True
        except TimeoutError:
            log.warning("no mark echo for %s within %.0f s", utterance.mark, self._mark_timeout_s)
            return False

    def _record(self, utterance: Utterance) -> None:
        """The utterance played to its end: it goes into the history and the record."""
        utterance.recorded = True
        self._call.context.history.append(HistoryEntry("bot", utterance.text))
        self._call.journal.turn("bot", utterance.text)

    def _new_pacer(self, fmt: AudioFormat) -> OutboundPacer:
        pacer = OutboundPacer(
            self._leg,
            fmt.mono,
            max_lead_ms=self._leg.playout_lead_ms,
            clock=self._call.clock,
            ticks="shared",
        )
        pacer.on_frame_sent = self._on_frame_sent
        return pacer

    def _on_frame_sent(self) -> None:
        if not self._awaiting_first_frame or self._turn_ended_at is None:
            return
        self._awaiting_first_frame = False
        latency = self._call.clock() - self._turn_ended_at
        self._call.stats.response_latencies_ms.append(latency * 1000)
        if self._call.observer is not None:
            self._call.observer.turn_answered(latency, latency - self._provider_wait())
            if self._call.meter.llm_first_token_s is not None:
                self._call.observer.stage_ttfb(
                    "llm_first_token", self._call.meter.llm_first_token_s
                )

    def _provider_wait(self) -> float:
        """Of this turn's latency, the time spent waiting on the chat model's first line
        and on the voice's first audio (what the server did not add itself)."""
        utterance = self.utterance
        if utterance is None:
            return 0.0
        waited = utterance.tts_wait_s or 0.0
        llm_started = self._call.meter.llm_started_at
        if llm_started is not None and utterance.first_item_at is not None:
            waited += max(0.0, utterance.first_item_at - llm_started)
        return waited
