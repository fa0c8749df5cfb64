"""Deepgram streaming STT: the SDK's synchronous socket in threads, bridged to the call's loop.

Per call there are two threads. The **worker** owns the socket opened by
``client.listen.v1.connect(...)``: it takes audio from a bounded inbox and sends it,
sends KeepAlive after 4 s without audio, Finalize and CloseStream when asked, and
reconnects. The **reader** iterates the socket's messages, turns them into our neutral
events (`TranscriptResult`, `SpeechStarted`, `UtteranceEnd`) and hands each to the
event loop with ``loop.call_soon_threadsafe``. The thread side lives in
`deepgram_socket.SocketWorker`; this module is the loop side. Threads share nothing with
the loop but the inbox, the replay buffer and a few counters; the loop never waits on a
thread except in `stop`, and then with a bound. (websockets' sync client adds two threads
per socket of its own: a background reader and the keepalive pinger.)

Overflow policy (the loop never blocks, memory never grows without bound):

- Inbox (loop → worker): at most ``max_queued_frames`` frames (250 = 5 s by default).
  When Deepgram or the network stalls and it fills, the **oldest** audio frame is
  dropped for each new one, counted in ``metrics.dropped_frames``, and logged once per
  burst (a warning at the first drop, a summary when frames flow again).
- Replay buffer: at most ``replay_seconds`` of audio sent but not yet covered by a
  final result; older audio is forgotten (``metrics.replay_overflow_bytes``).
- Events (loop side, to the consumer): 256 at most; when the consumer falls behind,
  interim results are dropped first (at half full), then any event
  (``metrics.dropped_events``); the end-of-stream marker always fits (the policy of
  every recogniser, `stt_stream.SpeechEventStream`).

Reconnects: a retryable failure (close 1011/1006, timeout, OSError, handshake 429/5xx)
makes the worker connect again with tenacity (exponential backoff with jitter, capped,
bounded attempts; a connection that stayed up ``stable_after_s`` and answered earns a
fresh budget). A connection that takes audio and answers nothing for ``stall_timeout_s``
is dropped like a failed one; ``ReconnectPolicy.max_stalls`` of them in a row end the
stream (a stalled service must not leave the caller talking to nobody).
The new socket is first sent the replay buffer, and its timestamps (which restart at 0)
are offset by where that audio starts in the stream, so every timestamp we emit is
seconds of audio since the stream began; final results are additionally clamped so
they never start before the previous final ended. Non-retryable failures (400, 401,
403, ``DATA-0000``) end the stream at once with a `DeepgramSttError(retryable=False)`
raised by `events()` (or by `start()` if it happens while connecting).

Batching: the worker is woken once per ``send_batch_frames`` frames (2 = 40 ms per
message) rather than per frame; with many calls, thread wake-ups dominate the bridge's
CPU cost (measured: 100 calls at 20 ms per message took 2.6 times the CPU of 40 ms).
In a long silence (frames `send_wire` is told are silent, for longer than the
endpointing and utterance-end gaps plus half a second, so no result waits on it) the
worker is woken per ``idle_batch_frames`` (5 = 100 ms, the top of Deepgram's advised
chunk sizes); the first voiced frame brings the 40 ms batches back at once, so an onset
is never held back. A caller is silent most of a call (the bot is talking).

Stream time counts the audio actually sent: frames dropped by the inbox are not part of
it (there is no way to tell Deepgram about a gap).

Audio goes in as 16 kHz PCM (`send_audio`, what the AudioProcessor produces) and is
encoded here for the stream: as is for linear16, resampled to 8 kHz and G.711-encoded
for mulaw/alaw. For a mu-law call the better path is `send_wire`: the gateway's own
bytes go to Deepgram untouched (no decode, no resample, no re-quantisation), which is
what `WireAudioSink` lets the session detect. The server opens mu-law and A-law calls'
streams that way (`DeepgramSttOptions.for_passthrough`): a quarter of the bytes of 16 kHz
linear16, and none of the event loop's time spent converting audio twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import threading
from dataclasses import replace
from typing import Final

import numpy as np
from deepgram import DeepgramClient

from realtime_voice.audio import codec
from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.providers.base import PCM16, SttError, WireAudioSink
from realtime_voice.providers.deepgram_buffers import AudioInbox, Control, ReplayBuffer
from realtime_voice.providers.deepgram_client import WS_CLOSE_TIMEOUT_S
from realtime_voice.providers.deepgram_errors import DeepgramSttError
from realtime_voice.providers.deepgram_options import DeepgramSttOptions, ReconnectPolicy
from realtime_voice.providers.deepgram_socket import (
    Connected,
    DeepgramSttMetrics,
    FinalizeDone,
    SocketWorker,
    WorkerDone,
    WorkerOutput,
)
from realtime_voice.providers.stt_stream import SpeechEventStream

__all__ = [
    "DeepgramSTTBridge",
    "DeepgramSpeechToText",
    "DeepgramSttMetrics",
    "WireAudioSink",
]

log = logging.getLogger(__name__)

_INPUT_RATE: Final = 16000
_JOIN_MARGIN_S: Final = 1.0
_ids = itertools.count(1)


class DeepgramSpeechToText(SpeechEventStream):
    """`SpeechToText` on Deepgram's streaming API (the DeepgramSTTBridge).

    `stop` sends CloseStream, drains until Metadata and joins every thread (all
    bounded); ``events()`` raises `DeepgramSttError` when the stream fails for good
    (after the events before the failure).

    Args:
        client: the process-wide sync SDK client (`deepgram_client.create_client`).
        options: the ``/v1/listen`` query.
        reconnect: the reconnect schedule.
        max_queued_frames: inbox bound (frames of 20 ms).
        replay_seconds: replay buffer bound.
        keepalive_s: send KeepAlive after this long without audio (Deepgram closes
            the stream after 10 s of neither).
        finalize_timeout_s: longest `finalize` waits for the ``from_finalize`` result.
        drain_timeout_s: longest `stop` waits for Metadata after CloseStream.
        stall_timeout_s: drop a connection that has answered nothing this long after
            audio went out (Deepgram answers within seconds, with empty results in
            silence; 10 s is its own idle limit).
        send_batch_frames: 20 ms frames per WebSocket message in steady state (1-5;
            Deepgram advises 20-100 ms chunks). 2 (40 ms) halves the worker's
            wake-ups, the main cost with many calls, for at most 20 ms of added delay.
        idle_batch_frames: frames per message in a long silence (``send_batch_frames``
            to 5).

    Raises:
        ValueError: a bound is not positive.
    """

    confirms_speech_start = False
    """Deepgram's SpeechStarted fires on any sound: barge-in waits for real words."""

    _label = "Deepgram STT"

    def __init__(
        self,
        client: DeepgramClient,
        options: DeepgramSttOptions | None = None,
        *,
        reconnect: ReconnectPolicy | None = None,
        max_queued_frames: int = 250,
        replay_seconds: float = 20.0,
        keepalive_s: float = 4.0,
        finalize_timeout_s: float = 3.0,
        drain_timeout_s: float = 3.0,
        send_batch_frames: int = 2,
        stall_timeout_s: float = 10.0,
        idle_batch_frames: int = 5,
    ) -> None:
        timeouts = (keepalive_s, finalize_timeout_s, drain_timeout_s, stall_timeout_s)
        if min(replay_seconds, *timeouts) <= 0:
            raise ValueError("timeouts and replay_seconds must be positive")
        if not 1 <= send_batch_frames <= 5:
            raise ValueError(f"send_batch_frames must be 1..5, not {send_batch_frames}")
        if not send_batch_frames <= idle_batch_frames <= 5:
            raise ValueError(
                f"idle_batch_frames must be {send_batch_frames}..5, not {idle_batch_frames}"
            )
        self.options = options or DeepgramSttOptions()
        self._bps = self.options.bytes_per_second
        self._inbox = AudioInbox(max_queued_frames, wake_frames=send_batch_frames)
        self._batch_frames = send_batch_frames
        self._idle_batch_frames = idle_batch_frames
        # A silence this long has nothing left to end: no endpoint or UtteranceEnd waits.
        gaps_ms = (self.options.endpointing or 0, self.options.utterance_end_ms or 0)
        self._idle_after_frames = (max(gaps_ms) + 500) // 20
        self._silent_run = 0
        self._replay = ReplayBuffer(max(1, int(replay_seconds * self._bps)))
        self._finalize_timeout_s = finalize_timeout_s
        self._drain_timeout_s = drain_timeout_s
        self._metrics = DeepgramSttMetrics()
        self._name = f"deepgram-stt-{next(_ids)}"
        self._wire = self.options.wire_format
        self._resampler: StreamingResampler | None = None
        if self.options.sample_rate != _INPUT_RATE:
            self._resampler = StreamingResampler(_INPUT_RATE, self.options.sample_rate)
        # Loop side (the event queue and the stop task are SpeechEventStream's).
        super().__init__()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._finalize_waiters: list[asyncio.Future[None]] = []
        self._worker_done = asyncio.Event()
        self._failed = False
        self._dropping = 0
        # Thread side.
        self._closing = threading.Event()
        self._socket_worker = SocketWorker(
            client=client,
            options=self.options,
            policy=reconnect or ReconnectPolicy(),
            inbox=self._inbox,
            replay=self._replay,
            metrics=self._metrics,
            closing=self._closing,
            post=self._post,
            name=self._name,
            keepalive_s=keepalive_s,
            drain_timeout_s=drain_timeout_s,
            stall_timeout_s=stall_timeout_s,
        )
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------------ public API

    @property
    def metrics(self) -> DeepgramSttMetrics:
        """A snapshot of the stream's counters."""
        return replace(
            self._metrics,
            replay_overflow_bytes=self._replay.overflow_bytes,
            dropped_events=self.dropped_events,
        )

    @property
    def queued_frames(self) -> int:
        """Frames waiting in the inbox (never more than its bound)."""
        return self._inbox.audio_frames

    @property
    def batch_frames(self) -> int:
        """Frames per message now: ``send_batch_frames``, or ``idle_batch_frames`` in a
        long silence."""
        return self._inbox.wake_frames

    @property
    def max_queued_frames(self) -> int:
        """The inbox bound."""
        return self._inbox.max_frames

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The live threads of this stream (worker and current reader)."""
        found = [t for t in threading.enumerate() if t.name.startswith(self._name + "-")]
        return tuple(found)

    async def start(self) -> None:
        """Start the worker and wait until the first connection is open.

        Raises:
            DeepgramSttError: the stream could not be opened (``retryable`` says
                whether the reconnect budget ran out or the failure was permanent).
            SttError: called twice.
        """
        if self._loop is not None:
            raise SttError("DeepgramSpeechToText.start() called twice")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._connected = loop.create_future()
        worker = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._socket_worker.run,),
            name=f"{self._name}-worker",
            daemon=True,
        )
        self._worker = worker
        worker.start()
        try:
            await asyncio.shield(self._connected)
        except BaseException:
            await self.stop()
            raise

    def send_audio(self, pcm: PCM16) -> None:
        """Queue one frame of 16 kHz mono PCM (converted to the stream's encoding here).

        Never blocks; a full inbox drops its oldest frame (see the module docstring).
        Audio after `stop` or after the stream failed is ignored.

        Raises:
            SttError: called before `start`.
        """
        if self._loop is None:
            raise SttError("send_audio() before start()")
        if self._closing.is_set() or self._failed:
            return
        if self._silent_run:
            # Fed PCM now (the call's format changed): no silence hints, 40 ms messages.
            self._silent_run = 0
            self._inbox.set_wake_frames(self._batch_frames)
        samples = np.asarray(pcm, dtype=np.int16).reshape(-1)
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        self._enqueue(codec.encode(samples, self._wire))

    def accepts_wire(self, encoding: str, sample_rate: int) -> bool:
        """Whether `send_wire` can take the call's bytes as they are."""
        return encoding == self._wire.encoding.value and sample_rate == self._wire.sample_rate

    def send_wire(self, payload: bytes, *, silent: bool = False) -> None:
        """Queue wire bytes already in the stream's encoding (mu-law passthrough).

        Use either this or `send_audio` for a stream, not both. Never blocks.

        Args:
            payload: one frame of the call's audio as the gateway sent it.
            silent: the frame is below the call's silence threshold (long silences go
                out in larger messages; see the module docstring).

        Raises:
            SttError: called before `start`.
        """
        if self._loop is None:
            raise SttError("send_wire() before start()")
        if self._closing.is_set() or self._failed or not payload:
            return
        self._enqueue(bytes(payload))
        if silent:
            self._silent_run += 1
            if self._silent_run == self._idle_after_frames:
                self._inbox.set_wake_frames(self._idle_batch_frames)
        else:
            if self._silent_run >= self._idle_after_frames:
                # Speech again: what is queued goes now, then 40 ms messages.
                self._inbox.set_wake_frames(self._batch_frames)
            self._silent_run = 0

    async def finalize(self) -> None:
        """Send Finalize and wait (bounded) for the ``from_finalize`` result."""
        loop = self._loop
        if loop is None or self._closing.is_set() or self._failed:
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._finalize_waiters.append(waiter)
        self._inbox.put_control(Control.FINALIZE)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._finalize_timeout_s)
        except TimeoutError:
            log.debug(
                "Deepgram sent no from_finalize result within %.1f s", self._finalize_timeout_s
            )
        finally:
            if waiter in self._finalize_waiters:
                self._finalize_waiters.remove(waiter)

    # ------------------------------------------------------------------ loop side

    def _enqueue(self, frame: bytes) -> None:
        self._metrics.frames_processed += 1
        if self._inbox.put_audio(frame):
            self._metrics.dropped_frames += 1
            if self._dropping == 0:
                log.warning(
                    "Deepgram is not keeping up: inbox full (%d frames), dropping the oldest audio",
                    self._inbox.max_frames,
                )
            self._dropping += 1
        elif self._dropping and self._inbox.audio_frames <= self._inbox.max_frames // 2:
            # The burst is over once the backlog has halved, not at the first free slot.
            log.warning("Deepgram caught up after %d dropped frame(s)", self._dropping)
            self._dropping = 0

    async def _stop(self) -> None:
        """CloseStream, drain until Metadata, join every thread (all bounded)."""
        self._closing.set()
        worker = self._worker
        if worker is None:
            self._end_events()
            return
        self._inbox.put_control(Control.STOP)
        budget = self._drain_timeout_s + WS_CLOSE_TIMEOUT_S + _JOIN_MARGIN_S
        if not await self._wait_worker(budget):
            log.warning("Deepgram stream did not close within %.1f s: aborting its socket", budget)
            self._socket_worker.abort()
            if not await self._wait_worker(budget):
                log.error("Deepgram worker thread %s is stuck; leaving it", worker.name)
                return
        # The worker's last act was to post _WorkerDone: it is past every blocking call.
        worker.join(_JOIN_MARGIN_S)

    async def _wait_worker(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._worker_done.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _post(self, item: WorkerOutput) -> None:
        """From a thread: hand ``item`` to the loop (dropped if the loop is gone)."""
        loop = self._loop
        if loop is None:
            return
        # RuntimeError: the loop is closed, nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._on_item, item)

    def _on_item(self, item: WorkerOutput) -> None:
        if isinstance(item, Connected):
            if self._connected is not None and not self._connected.done():
                self._connected.set_result(None)
        elif isinstance(item, FinalizeDone):
            self._resolve_finalizers()
        elif isinstance(item, WorkerDone):
            self._on_worker_done(item.error)
        else:
            self._emit(item)

    def _on_worker_done(self, error: DeepgramSttError | None) -> None:
        self._resolve_finalizers()
        connected = self._connected
        if error is not None and not self._closing.is_set():
            self._failed = True
            log.error("Deepgram stream failed: %s", error)
            if connected is not None and not connected.done():
                connected.set_exception(error)
            else:
                self._fail_events(error)
        elif connected is not None and not connected.done():
            connected.set_exception(SttError("Deepgram stream stopped before it connected"))
            connected.exception()  # retrieved: start() may already be gone
        self._end_events()  # after a failure: already ended, nothing more is queued
        self._worker_done.set()

    def _resolve_finalizers(self) -> None:
        for waiter in self._finalize_waiters:
            if not waiter.done():
                waiter.set_result(None)


DeepgramSTTBridge = DeepgramSpeechToText
"""The name the design documents use."""
