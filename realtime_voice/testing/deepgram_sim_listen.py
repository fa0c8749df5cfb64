"""The Deepgram simulator's ``/v1/listen``: one WebSocket stream, transcribed for real.

`ListenSession` runs one accepted stream: audio is decoded to 16 kHz,
endpointed with Silero VAD (`StreamSegmenter`) and each segment transcribed by the
offline recogniser in a worker thread, one at a time and in order, so the messages
follow Deepgram's order: SpeechStarted, interim Results, final Results (``speech_final``
at an endpoint), UtteranceEnd, and Metadata after CloseStream. Stream time is seconds of
audio received on this socket, as with Deepgram.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import datetime
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from aiohttp import WSMsgType, web

from realtime_voice.audio import codec
from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.providers.base import PCM16
from realtime_voice.providers.moonshine import Recognition
from realtime_voice.testing.deepgram_sim_asr import SAMPLE_RATE, Segment, StreamSegmenter
from realtime_voice.testing.deepgram_sim_messages import (
    ModelInfo,
    error_message,
    metadata_message,
    results_message,
    speech_started_message,
    transcript_message,
    utterance_end_message,
)
from realtime_voice.testing.deepgram_sim_query import ListenQuery, QueryError
from realtime_voice.testing.deepgram_sim_scripted import ScriptedSpeech, ScriptedTranscriber

__all__ = ["ListenQuery", "ListenSession", "QueryError", "SegmentRecognizer", "SessionHost"]

log = logging.getLogger(__name__)

_INTERIM_MIN_S: Final = 1.0  # Moonshine invents words on shorter buffers
_INTERIM_EVERY_S: Final = 0.8
_SILENCE_FINAL_S: Final = 3.0  # Deepgram finalises silence every few seconds
_CLOSE_WAIT_S: Final = 2.0


class SegmentRecognizer(Protocol):
    """What the simulator needs from the offline recogniser (`MoonshineRecognizer`)."""

    def recognize(self, pcm16k: PCM16) -> Recognition:
        """Transcribe one segment (blocking)."""
        ...


class SessionHost(Protocol):
    """What a session needs from the simulator that accepted it."""

    faults: Any
    stats: Any

    def changed(self) -> None:
        """Counters changed: wake whoever waits on them."""
        ...


@dataclass(frozen=True, slots=True)
class _Job:
    """Work for the in-order transcription task."""

    segment: Segment | None = None  # a final segment to transcribe
    interim: PCM16 | None = None  # audio of the open segment, for an interim
    up_to: float = 0.0  # an empty final covering the stream up to here
    from_finalize: bool = False
    barrier: asyncio.Future[None] | None = None


class ListenSession:
    """One accepted ``/v1/listen`` WebSocket.

    Args:
        ws: the prepared WebSocket.
        transport: its TCP transport (to drop a peer that stopped reading).
        query: its validated options.
        host: the simulator (fault knobs, counters).
        index: 0 for the simulator's first stream, 1 for the next, ...
        recognizer: the offline recogniser; None in tick and scripted modes.
        executor: where transcriptions run.
        make_vad: builds a fresh VAD (blocking; run in the executor).
        scripted: the load mode (energy endpointing, scripted text) instead of recognition.
    """

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        query: ListenQuery,
        host: SessionHost,
        index: int,
        recognizer: SegmentRecognizer | None,
        executor: concurrent.futures.Executor,
        make_vad: Callable[[], Any] | None,
        scripted: ScriptedSpeech | None = None,
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._query = query
        self._host = host
        self._faults = host.faults
        self._index = index
        self._recognizer = recognizer
        self._executor = executor
        self._make_vad = make_vad
        self._model = ModelInfo(str(uuid.uuid4()), query.model)
        self._scripted = (
            None if scripted is None else ScriptedTranscriber(scripted, query, self._model, index)
        )
        self._created = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        self._segmenter: StreamSegmenter | None = None
        self._resampler = StreamingResampler(query.audio_format.sample_rate, SAMPLE_RATE)
        self._sha = hashlib.sha256()
        self._received_s = 0.0
        self._opened = time.monotonic()
        self._last_message = time.monotonic()
        self._outgoing: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        self._jobs: asyncio.Queue[_Job] = asyncio.Queue()
        self._busy = False
        self._last_final_end = 0.0
        self._last_interim = 0.0
        self._pending_utterance_end: float | None = None
        self._onsets: collections.deque[float] = collections.deque(maxlen=32)
        self._tick_next = 0.0
        self._tick_seq = 0
        self._closing = False
        self.close_code: int | None = None

    async def run(self) -> None:
        """Serve the stream until either side closes it."""
        loop = asyncio.get_running_loop()
        faults = self._faults
        if faults.stall:
            # Accept, then neither read nor write: the client's sends back up.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
            return
        if self._recognizer is not None and self._make_vad is not None:
            vad = await loop.run_in_executor(self._executor, self._make_vad)
            end_silence = self._query.endpointing_ms or 500
            self._segmenter = StreamSegmenter(vad, end_silence_ms=max(end_silence, 100))
        tasks = [
            loop.create_task(self._sender(), name="dg-sim-send"),
            loop.create_task(self._transcriber(), name="dg-sim-asr"),
            loop.create_task(self._watchdog(), name="dg-sim-watchdog"),
        ]
        try:
            await self._receive()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def abort(self) -> None:
        """Close from the server side (the simulator is shutting down)."""
        await self._close(1001, "simulator shutting down")

    # ------------------------------------------------------------------ receiving

    async def _receive(self) -> None:
        async for msg in self._ws:
            if self._closing:
                break
            self._last_message = time.monotonic()
            if msg.type is WSMsgType.BINARY:
                if not msg.data:
                    # An empty binary frame is Deepgram's legacy close signal.
                    await self._close_stream()
                    break
                self._on_audio(msg.data)
                if self._should_fault_close():
                    await self._fault_close()
                    break
            elif msg.type is WSMsgType.TEXT:
                if await self._on_text(msg.data):
                    break
            else:
                break

    def _on_audio(self, data: bytes) -> None:
        fmt = self._query.audio_format
        stats = self._host.stats
        stats.audio_bytes += len(data)
        self._host.changed()
        self._sha.update(data)
        try:
            pcm = codec.decode(data, fmt)
        except ValueError:
            data = data[: len(data) - len(data) % (fmt.encoding.bytes_per_sample)]
            pcm = codec.decode(data, fmt)
        if self._scripted is not None:
            # Load mode: endpoint at the stream's own rate; nothing to resample.
            for message in self._scripted.push(pcm):
                self._send(message)
            self._received_s = self._scripted.position
            return
        pcm16k = self._resampler.process(pcm)
        self._received_s += pcm16k.size / SAMPLE_RATE
        if self._faults.tick_results_ms:
            self._tick()
            return
        segmenter = self._segmenter
        if segmenter is None:
            return
        for item in segmenter.push(pcm16k):
            if isinstance(item, Segment):
                self._jobs.put_nowait(_Job(segment=item))
            else:
                self._pending_utterance_end = None
                self._onsets.append(item)
                if self._query.vad_events:
                    self._send(speech_started_message(item))
        self._maybe_interim(segmenter)
        self._check_utterance_end()
        idle = self._jobs.empty() and not self._busy and not segmenter.in_speech
        if idle and self._received_s - self._last_final_end >= _SILENCE_FINAL_S:
            self._jobs.put_nowait(_Job(up_to=self._received_s))

    def _maybe_interim(self, segmenter: StreamSegmenter) -> None:
        if not self._query.interim_results or self._busy or not self._jobs.empty():
            return
        opened = segmenter.open_speech
        if opened is None:
            return
        speech_start, audio = opened
        now = self._received_s
        if now - speech_start < _INTERIM_MIN_S or now - self._last_interim < _INTERIM_EVERY_S:
            return
        self._last_interim = now
        self._jobs.put_nowait(_Job(interim=audio, up_to=now))

    def _tick(self) -> None:
        """Benchmark mode: one final result per ``tick_results_ms`` of audio, no recognition."""
        step = self._faults.tick_results_ms / 1000.0
        while self._received_s >= self._tick_next + step:
            start = self._tick_next
            self._tick_next += step
            self._tick_seq += 1
            message = results_message(
                model=self._model,
                transcript=f"tick {self._tick_seq}",
                confidence=1.0,
                words=[],
                start=start,
                duration=step,
                is_final=True,
                speech_final=False,
                from_finalize=False,
            )
            message["_stamp"] = True
            self._send(message)

    async def _on_text(self, data: str) -> bool:
        """Handle a control message; True when the stream is over."""
        try:
            message = json.loads(data)
            kind = message.get("type") if isinstance(message, dict) else None
        except ValueError:
            kind = None
        stats = self._host.stats
        if kind == "KeepAlive":
            stats.keepalives += 1
        elif kind == "Finalize":
            stats.finalizes += 1
            self._finalize()
        elif kind == "CloseStream":
            stats.close_streams += 1
            self._host.changed()
            await self._close_stream()
            return True
        else:
            self._send(error_message("Unknown or malformed control message", data[:200]))
        self._host.changed()
        return False

    def _finalize(self) -> None:
        if self._scripted is not None:
            for message in self._scripted.finalize():
                self._send(message)
            return
        segment = self._segmenter.flush() if self._segmenter is not None else None
        if segment is not None:
            self._jobs.put_nowait(_Job(segment=segment, from_finalize=True))
        else:
            self._jobs.put_nowait(_Job(up_to=self._received_s, from_finalize=True))

    async def _close_stream(self) -> None:
        if self._scripted is not None:
            for message in self._scripted.close():
                self._send(message)
        segment = self._segmenter.flush() if self._segmenter is not None else None
        if segment is not None:
            self._jobs.put_nowait(_Job(segment=segment))
        barrier: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait(_Job(barrier=barrier))
        await barrier
        self._send(
            metadata_message(
                model=self._model,
                created=self._created,
                duration=self._received_s,
                sha256=self._sha.hexdigest(),
            )
        )
        await self._outgoing.join()
        await self._close(1000, "")

    # ------------------------------------------------------------------ transcribing

    async def _transcriber(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._jobs.get()
            self._busy = True
            try:
                if job.barrier is not None:
                    if not job.barrier.done():
                        job.barrier.set_result(None)
                elif job.segment is not None:
                    result = await self._recognize(loop, job.segment.audio)
                    self._final(job.segment, result, job.from_finalize)
                elif job.interim is not None:
                    result = await self._recognize(loop, job.interim)
                    if result.text:
                        self._results(result, self._last_final_end, job.up_to, final=False)
                else:
                    self._empty_final(job.up_to, job.from_finalize)
            finally:
                self._busy = False

    async def _recognize(self, loop: asyncio.AbstractEventLoop, audio: PCM16) -> Recognition:
        assert self._recognizer is not None
        return await loop.run_in_executor(self._executor, self._recognizer.recognize, audio)

    def _final(self, segment: Segment, result: Recognition, from_finalize: bool) -> None:
        start = self._last_final_end
        end = max(segment.speech_end, start)
        endpoint = segment.end_of_turn and self._query.endpointing_ms is not None
        self._results(
            result,
            start,
            end,
            final=True,
            speech_final=endpoint and not from_finalize,
            from_finalize=from_finalize,
            words_from=max(segment.speech_start, start),
        )
        self._last_final_end = end
        # UtteranceEnd follows the last word after a gap of utterance_end_ms of audio,
        # unless speech resumed within that gap (it may have while this was decoding).
        gap = (self._query.utterance_end_ms or 0) / 1e3
        resumed = any(segment.speech_end < t < segment.speech_end + gap for t in self._onsets)
        if result.text and segment.end_of_turn and gap and not resumed:
            self._pending_utterance_end = segment.speech_end
            self._check_utterance_end()

    def _check_utterance_end(self) -> None:
        due = self._pending_utterance_end
        gap = (self._query.utterance_end_ms or 0) / 1e3
        if due is not None and self._received_s >= due + gap:
            self._pending_utterance_end = None
            self._send(utterance_end_message(due))

    def _empty_final(self, up_to: float, from_finalize: bool) -> None:
        start = self._last_final_end
        end = max(up_to, start)
        self._results(Recognition("", 0.0, 0), start, end, final=True, from_finalize=from_finalize)
        self._last_final_end = end

    def _results(
        self,
        result: Recognition,
        start: float,
        end: float,
        *,
        final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
        words_from: float | None = None,
    ) -> None:
        self._send(
            transcript_message(
                self._model,
                result.text,
                result.confidence,
                punctuate=self._query.punctuate,
                start=start,
                end=end,
                words_start=words_from if words_from is not None else start,
                words_end=end,
                is_final=final,
                speech_final=speech_final,
                from_finalize=from_finalize,
            )
        )

    # ------------------------------------------------------------------ sending

    def _send(self, message: dict[str, Any]) -> None:
        delay = self._faults.result_delay_ms / 1000.0
        self._outgoing.put_nowait((time.monotonic() + delay, message))

    async def _sender(self) -> None:
        while True:
            due, message = await self._outgoing.get()
            try:
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if message.pop("_stamp", False):
                    # Benchmark side channel: when the result left, in the shared
                    # CLOCK_MONOTONIC nanoseconds (comparable across processes).
                    alt = message["channel"]["alternatives"][0]
                    alt["transcript"] = f"{alt['transcript']} sent_ns={time.monotonic_ns()}"
                if not self._ws.closed:
                    await self._ws.send_str(json.dumps(message))
                    if message["type"] == "Results":
                        self._host.stats.results_sent += 1
                        self._host.changed()
            except (ConnectionError, RuntimeError) as exc:
                log.debug("simulator could not send: %r", exc)
            finally:
                self._outgoing.task_done()

    # ------------------------------------------------------------------ faults and timers

    def _fault_applies(self) -> bool:
        limit = self._faults.close_connections
        return limit is None or self._index < limit

    def _should_fault_close(self) -> bool:
        after = self._faults.close_after_audio_s
        return after is not None and self._received_s >= after and self._fault_applies()

    async def _fault_close(self) -> None:
        self._host.stats.fault_closes += 1
        self._host.changed()
        await self._close(1011, "NET-0000: the service has encountered an internal error")

    async def _watchdog(self) -> None:
        faults = self._faults
        while not self._closing:
            now = time.monotonic()
            idle_due = self._last_message + faults.idle_timeout_s
            due = idle_due
            close_after = faults.close_after_s
            if close_after is not None and self._fault_applies():
                due = min(due, self._opened + close_after)
            if due > now:
                await asyncio.sleep(due - now)
                continue
            if (
                close_after is not None
                and self._fault_applies()
                and now >= self._opened + close_after
            ):
                await self._fault_close()
            elif time.monotonic() >= self._last_message + faults.idle_timeout_s:
                self._host.stats.idle_timeouts += 1
                self._host.changed()
                await self._close(
                    1011, "NET-0001: no audio or text message within the timeout window"
                )
            return

    async def _close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self.close_code = code
        try:
            await asyncio.wait_for(
                self._ws.close(code=code, message=reason.encode()), _CLOSE_WAIT_S
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            # The peer stopped reading: drop the TCP connection instead.
            if isinstance(self._transport, asyncio.Transport):
                self._transport.abort()
