"""The live part of one simulated call: pacing, playback, the script, the ending.

`SimulatedCaller` sets the call up (webhook, WebSocket) and hands the open connection
to a `CallSession`, which runs three tasks until the call ends:

- the pacer sends one 20 ms frame of caller audio per tick on an absolute-deadline
  schedule (speech when a line is being said, mu-law silence otherwise), and on each
  tick plays the gateway's playback buffer forward, echoing marks it reaches;
- the receiver takes the server's audio and control messages;
- the script follows the `CallerLine` values, waiting on conditions of the playback
  (bot finished, bot started) that the other two re-check as things change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections import deque
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from realtime_voice.audio.g711 import ulaw_to_pcm16
from realtime_voice.testing.call_report import (
    BotUtterance,
    CallerLineReport,
    CallReport,
    EndReason,
    MarkRecord,
    TimelineEvent,
    UtteranceTracker,
)
from realtime_voice.testing.gateway_wire import (
    BotAudio,
    BotClear,
    BotError,
    BotHangup,
    BotMark,
    BotTransfer,
    GatewayWire,
    Unexpected,
)
from realtime_voice.testing.playback import GatewayPlayback, PlayedAudio, ReachedMark
from realtime_voice.testing.speech import transcribe_mulaw
from realtime_voice.testing.wav import Segment, write_stereo_wav

if TYPE_CHECKING:
    from realtime_voice.testing.caller import CallerLine, CallOptions

__all__ = ["FRAME_BYTES", "FRAME_S", "CallSession", "LineAudio"]

FRAME_S = 0.02
FRAME_BYTES = 160
"""One 20 ms frame of mu-law 8 kHz mono."""
_SILENCE = b"\xff" * FRAME_BYTES
_QUIET_WITHOUT_MARK_S = 1.0
"""A bot that sends no marks is taken to have finished after this much silence."""
_CLOSE_WAIT_S = 5.0


@dataclass(frozen=True)
class LineAudio:
    """A script line with its audio ready (empty for DTMF)."""

    line: CallerLine
    audio: bytes


@dataclass
class _Speech:
    report: CallerLineReport
    audio: bytes
    done: asyncio.Future[float]
    position: int = 0


_Predicate = Callable[[float], bool]


class CallSession:
    """One connected call, from the first ``start`` message to the close.

    Args:
        options: the call's options.
        ws: the open media WebSocket (the session closes it; the owner still wraps it
            in ``async with`` so it is closed on any error).
        wire: the gateway side of the media protocol.
        report: filled in as the call goes.
    """

    def __init__(
        self, options: CallOptions, ws: ClientConnection, wire: GatewayWire, report: CallReport
    ) -> None:
        """Prepare the session; nothing is sent until `run`."""
        self._options = options
        self._ws = ws
        self._wire = wire
        self.report = report
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._playback = GatewayPlayback()
        self._tracker = UtteranceTracker(options.utterance_gap_s)
        self._speech: deque[_Speech] = deque()
        self._speaking: _Speech | None = None
        self._caller_audio = bytearray()
        self._caller_audio_start = 0.0
        self._played: list[PlayedAudio] = []
        self._open_marks: deque[MarkRecord] = deque()
        self._waiters: list[tuple[_Predicate, asyncio.Future[bool]]] = []
        self._latency_pending: list[tuple[CallerLineReport, float]] = []
        self._last_bot_rx = -math.inf
        self._last_clear = -math.inf
        self._last_play_start = -math.inf
        self._cleared_since_audio = False
        self._last_enqueued_mark = False
        self._server_end: EndReason | None = None
        self._server_ended = asyncio.Event()
        self._closed = False
        self._transcriptions: list[asyncio.Task[None]] = []
        self._transcribe_enabled = options.transcribe_bot

    def _now(self) -> float:
        return self._loop.time() - self._t0

    def _emit(self, who: str, what: str, t: float | None = None) -> None:
        event = TimelineEvent(self._now() if t is None else t, who, what)
        if who == "CALL":
            self.report.call_events.append(event)
        if self._options.on_event is not None:
            self._options.on_event(event)

    # ----------------------------------------------------------------- lifecycle

    async def run(
        self,
        custom_parameters: Mapping[str, str],
        script: Sequence[LineAudio] | AsyncIterable[LineAudio],
    ) -> None:
        """Play the call out and close the connection; fills in `report`.

        Args:
            custom_parameters: for the ``start`` message.
            script: the caller's lines with their audio.
        """
        self._emit("CALL", f"connected to {self.report.media_url.split('?')[0]}")
        tasks: list[asyncio.Task[None]] = []
        try:
            for message in self._wire.opening(custom_parameters):
                await self._ws.send(message)
            receiver = asyncio.create_task(self._receive(), name="caller-receive")
            pacer = asyncio.create_task(self._pace(), name="caller-pace")
            player = asyncio.create_task(self._script(script), name="caller-script")
            ended = asyncio.create_task(self._wait_server_end(), name="caller-server-end")
            tasks = [receiver, pacer, player, ended]
            remaining = self._options.max_call_s - self._now()
            done, _ = await asyncio.wait(
                {receiver, player, ended},
                timeout=max(0.0, remaining),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if receiver in done:
                self.report.ended_by = self._server_end or "server_closed"
            elif ended in done:
                assert self._server_end is not None
                self.report.ended_by = self._server_end
                # The gateway lets the bot's last words play out before it hangs up.
                await self._wait_for(
                    lambda now: not self._playback.playing(now),
                    self._options.max_call_s - self._now(),
                )
            elif player in done:
                player.result()  # a failing script (TTS error) surfaces here
                self.report.ended_by = "caller_hangup"
            else:
                self.report.ended_by = "max_duration"
                self._emit("CALL", f"max call duration {self._options.max_call_s:g} s reached")
            await self._hang_up(pacer, receiver)
        except ConnectionClosed:
            self.report.ended_by = self._server_end or "server_closed"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._wake_all()
            self._finish_playback()

    async def _hang_up(self, pacer: asyncio.Task[None], receiver: asyncio.Task[None]) -> None:
        if receiver.done():
            return
        # The line goes quiet first: no audio may follow the stop.
        pacer.cancel()
        await asyncio.gather(pacer, return_exceptions=True)
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(self._wire.stop())
            self._emit("CALL", "stop sent (caller hangs up)")
            await self._ws.close(1000, "caller hung up")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(receiver), _CLOSE_WAIT_S)

    async def _wait_server_end(self) -> None:
        await self._server_ended.wait()

    def _finish_playback(self) -> None:
        now = self._now()
        # Audio still queued when the line dropped was never heard.
        self._on_playback(self._playback.advance(now), send_marks=False)
        for utterance in self._tracker.flush():
            self._utterance_closed(utterance)
        report = self.report
        report.bot_utterances = list(self._tracker.finished)
        report.duration_s = now
        report.close_code = self._ws.close_code
        report.close_reason = self._ws.close_reason or ""
        self._emit("CALL", f"closed {report.close_code} {report.close_reason}".rstrip())

    async def finish(self) -> None:
        """After the close: transcribe the bot (if asked) and write the recording."""
        if self._transcriptions:
            await asyncio.gather(*self._transcriptions, return_exceptions=True)
        for utterance in self.report.bot_utterances:
            if self._transcribe_enabled and utterance.text is None:
                await self._transcribe(utterance)
        if self._options.record_path:
            left: list[Segment] = [
                (self._caller_audio_start, ulaw_to_pcm16(bytes(self._caller_audio)))
            ]
            right: list[Segment] = [(p.start, ulaw_to_pcm16(p.audio)) for p in self._played]
            write_stereo_wav(self._options.record_path, left, right)
            self.report.record_path = self._options.record_path

    async def discard(self) -> None:
        """Cancel transcriptions still running (the call failed or was cancelled)."""
        pending = [t for t in self._transcriptions if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _transcribe(self, utterance: BotUtterance) -> None:
        try:
            utterance.text = await transcribe_mulaw(utterance.audio)
        except Exception as exc:
            # The call itself succeeded; a missing recogniser only loses the text.
            self.report.notes.append(f"bot speech not transcribed: {exc}")
            self._transcribe_enabled = False

    async def _transcribe_live(self, utterance: BotUtterance) -> None:
        await self._transcribe(utterance)
        self._emit("BOT", utterance.describe(), utterance.start)

    # ----------------------------------------------------------------- waiting

    async def _wait_for(self, predicate: _Predicate, limit_s: float | None = None) -> bool:
        """Wait until ``predicate(now)`` holds; False on timeout or when the call closed."""
        if predicate(self._now()):
            return True
        if self._closed:
            return False
        future: asyncio.Future[bool] = self._loop.create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            return await asyncio.wait_for(future, limit_s)
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(entry)

    def _check_waiters(self) -> None:
        now = self._now()
        for predicate, future in self._waiters:
            if not future.done() and predicate(now):
                future.set_result(True)

    def _wake_all(self) -> None:
        self._closed = True
        for _, future in self._waiters:
            if not future.done():
                future.set_result(False)

    # ----------------------------------------------------------------- pacer

    async def _pace(self) -> None:
        start = self._loop.time()
        self._caller_audio_start = start - self._t0
        frame_index = 0
        try:
            while True:
                # Absolute deadlines: a late tick shortens the next sleep, so the
                # stream never drifts from real time.
                deadline = start + (frame_index + 1) * FRAME_S
                delay = deadline - self._loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                frame, started, finished = self._next_frame()
                message = self._wire.audio(frame, frame_index * 20)
                if message:  # a wire that batches frames sends one message per group
                    await self._ws.send(message)
                self._caller_audio += frame
                frame_index += 1
                now = self._now()
                if started is not None:
                    started.report.start = now - FRAME_S
                    self._emit("CALLER", started.report.label, now - FRAME_S)
                if finished is not None:
                    self._end_line(finished.report, now)
                    finished.done.set_result(now)
                await self._advance(now)
                self._check_waiters()
        except ConnectionClosed:
            return

    def _next_frame(self) -> tuple[bytes, _Speech | None, _Speech | None]:
        started = None
        if self._speaking is None:
            if not self._speech:
                return _SILENCE, None, None
            self._speaking = started = self._speech.popleft()
        speech = self._speaking
        frame = speech.audio[speech.position : speech.position + FRAME_BYTES]
        speech.position += FRAME_BYTES
        finished = None
        if speech.position >= len(speech.audio):
            self._speaking = None
            finished = speech
        return frame.ljust(FRAME_BYTES, b"\xff"), started, finished

    def _end_line(self, line: CallerLineReport, now: float) -> None:
        line.end = now
        self._latency_pending.append((line, now))

    async def _advance(self, now: float) -> None:
        for name in self._on_playback(self._playback.advance(now), send_marks=True):
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(self._wire.mark(name))

    def _on_playback(
        self, events: list[PlayedAudio | ReachedMark], *, send_marks: bool
    ) -> list[str]:
        to_echo: list[str] = []
        for event in events:
            if isinstance(event, PlayedAudio):
                self._played.append(event)
            elif send_marks:
                record = self._take_open_mark(event.name)
                if record is not None:
                    record.echoed_at = event.at
                to_echo.append(event.name)
                self._emit("CALL", f"mark {event.name} played", event.at)
        for utterance in self._tracker.feed(events):
            self._utterance_closed(utterance)
        return to_echo

    def _take_open_mark(self, name: str) -> MarkRecord | None:
        for record in self._open_marks:
            if record.name == name:
                self._open_marks.remove(record)
                return record
        return None

    def _utterance_closed(self, utterance: BotUtterance) -> None:
        if self._transcribe_enabled and self._options.transcribe_during_call:
            self._transcriptions.append(asyncio.create_task(self._transcribe_live(utterance)))
        else:
            self._emit("BOT", utterance.describe(), utterance.start)

    # ----------------------------------------------------------------- receiver

    async def _receive(self) -> None:
        try:
            async for message in self._ws:
                await self._handle(self._wire.parse(message))
                self._check_waiters()
        except ConnectionClosed:
            pass
        finally:
            self._wake_all()

    async def _handle(
        self,
        message: BotAudio | BotMark | BotClear | BotTransfer | BotHangup | BotError | Unexpected,
    ) -> None:
        now = self._now()
        report = self.report
        if isinstance(message, BotAudio):
            # A reply starts on a frame that finds the line idle (or follows a clear):
            # that is when the caller's latency clock stops.
            if self._cleared_since_audio or not self._playback.playing(now):
                self._reply_started(now)
            self._cleared_since_audio = False
            self._playback.enqueue_audio(message.payload, now)
            self._last_bot_rx = now
            self._last_enqueued_mark = False
        elif isinstance(message, BotMark):
            record = MarkRecord(message.name, now)
            report.marks_received.append(record)
            self._open_marks.append(record)
            self._playback.enqueue_mark(message.name, now)
            self._last_enqueued_mark = True
        elif isinstance(message, BotClear):
            await self._clear(now)
        elif isinstance(message, BotTransfer):
            report.transfer = dict(message.target)
            self._emit("CALL", f"transfer to {json.dumps(report.transfer)}", now)
            self._end_by_server("transfer")
        elif isinstance(message, BotHangup):
            report.hangup_reason = message.reason
            self._emit("CALL", f"hangup ({message.reason})", now)
            self._end_by_server("server_hangup")
        elif isinstance(message, BotError):
            report.errors.append(dict(message.raw))
            self._emit("CALL", f"error {message.code}: {message.message}", now)
        else:
            report.unexpected.append(f"{message.problem}: {message.raw[:200]}")
            self._emit("CALL", f"unexpected message: {message.problem}", now)

    def _reply_started(self, now: float) -> None:
        if self._playback.play_end <= now:
            self._last_play_start = now
        for line, end in self._latency_pending:
            line.turn_latency_s = now - end
        self._latency_pending.clear()

    async def _clear(self, now: float) -> None:
        report = self.report
        report.clears.append(now)
        self._last_clear = now
        self._cleared_since_audio = True
        await self._advance(now)
        cut = self._playback.clear(now)
        # The played head of the frame in progress, then the cut utterance.
        self._on_playback(self._playback.advance(now), send_marks=True)
        for utterance in self._tracker.clear():
            self._utterance_closed(utterance)
        echoed = f"; marks {', '.join(cut)} echoed" if cut else ""
        self._emit("CALL", f"clear (bot audio dropped{echoed})", now)
        lines = report.caller_lines
        latest = lines[-1] if lines else None
        # Only the first clear after the interruption began answers it.
        if (
            latest is not None
            and latest.barge_in
            and latest.start is not None
            and latest.barge_in_latency_s is None
        ):
            latest.barge_in_latency_s = now - latest.start
        for name in cut:
            record = self._take_open_mark(name)
            if record is not None:
                record.echoed_at = now
                record.cleared = True
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(self._wire.mark(name))

    def _end_by_server(self, reason: EndReason) -> None:
        if self._server_end is None:
            self._server_end = reason
            self._server_ended.set()

    # ----------------------------------------------------------------- script

    async def _script(self, script: Sequence[LineAudio] | AsyncIterable[LineAudio]) -> None:
        since = 0.0
        if isinstance(script, Sequence):
            for index, item in enumerate(script):
                since = await self._perform(index, item, since)
        else:
            iterator = aiter(script)
            try:
                index = 0
                async for item in iterator:
                    since = await self._perform(index, item, since)
                    index += 1
            finally:
                # A cancelled call must not leave a half-run generator to the GC.
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
        await self._wait_reply(since)
        end_after = self._options.end_after_last_line_s
        await self._wait_for(
            lambda now: (
                not self._playback.playing(now)
                and now - max(since, self._last_bot_rx, self._playback.play_end) >= end_after
            )
        )

    def _replied(self, since: float) -> bool:
        return self._last_bot_rx >= max(since, self._last_clear)

    async def _wait_reply(self, since: float) -> bool:
        """Wait for the bot to start answering (after ``since`` and any clear)."""
        timeout = self._options.reply_timeout_s
        if await self._wait_for(lambda _: self._replied(since), timeout):
            return True
        if not self._closed:
            self._emit("CALL", f"no bot audio within {timeout:g} s")
        return False

    def _bot_done(self, since: float, now: float) -> bool:
        if not self._replied(since) or self._playback.playing(now):
            return False
        return self._last_enqueued_mark or now - self._playback.play_end >= _QUIET_WITHOUT_MARK_S

    async def _perform(self, index: int, item: LineAudio, since: float) -> float:
        line = item.line
        report = CallerLineReport(
            index=index,
            kind="dtmf" if line.dtmf is not None else "speech",
            label=line.label,
            barge_in=line.barge_in_after_s is not None,
        )
        self.report.caller_lines.append(report)
        if line.barge_in_after_s is not None:
            if await self._wait_reply(since) and await self._wait_for(
                lambda _: self._last_play_start >= since, self._options.reply_timeout_s
            ):
                delay = self._last_play_start + line.barge_in_after_s - self._now()
                if delay > 0:
                    await asyncio.sleep(delay)
        elif await self._wait_reply(since):
            await self._wait_for(lambda now: self._bot_done(since, now))
            await asyncio.sleep(line.pause_before_s)
        else:
            await asyncio.sleep(line.pause_before_s)
        if line.dtmf is not None:
            await self._ws.send(self._wire.dtmf(line.dtmf))
            now = self._now()
            report.start = now
            self._emit("CALLER", f"DTMF {line.dtmf}", now)
            self._end_line(report, now)
            return now
        if not item.audio:
            report.start = self._now()
            self._end_line(report, report.start)
            return report.start
        done: asyncio.Future[float] = self._loop.create_future()
        self._speech.append(_Speech(report, item.audio, done))
        return await done
