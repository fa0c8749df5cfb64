"""The thread side of the Deepgram STT bridge: one worker and one reader per socket.

`SocketWorker.run` is the worker thread's body. It owns the socket opened by the SDK's
``client.listen.v1.connect(...)``, takes audio and control items from the `AudioInbox`,
sends KeepAlive after ``keepalive_s`` without audio, and reconnects with tenacity after a
retryable failure, replaying the `ReplayBuffer` first. A socket that takes audio but
answers nothing for ``stall_timeout_s`` counts as failed (Deepgram answers streamed audio,
silence included, within seconds): it is dropped and replaced, and after
``ReconnectPolicy.max_stalls`` such sockets in a row the stream fails, so a stalled
service ends in a clear error instead of a caller nobody hears. Each socket has a reader thread
that iterates its messages, decodes them into stream-time events (`decode_message`) and
posts them. Nothing here touches the event loop: everything leaves through ``post``,
which the bridge implements with ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from deepgram import DeepgramClient
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential_jitter,
)

from realtime_voice.providers.base import SpeechEvent
from realtime_voice.providers.deepgram_buffers import AudioInbox, Control, ReplayBuffer
from realtime_voice.providers.deepgram_client import WS_CLOSE_TIMEOUT_S, last_connection
from realtime_voice.providers.deepgram_errors import DeepgramSttError, stt_error
from realtime_voice.providers.deepgram_messages import decode_message
from realtime_voice.providers.deepgram_options import DeepgramSttOptions, ReconnectPolicy

__all__ = [
    "Connected",
    "DeepgramSttMetrics",
    "FinalizeDone",
    "SocketWorker",
    "WorkerDone",
    "WorkerOutput",
]

log = logging.getLogger(__name__)

# Frames sent per WebSocket message when several are waiting (a backlog after a stall):
# 5 × 20 ms = 100 ms, the top of Deepgram's recommended 20-100 ms chunk size.
_MAX_BATCH_FRAMES: Final = 5
_FRAME_S: Final = 0.02


@dataclass
class DeepgramSttMetrics:
    """Counters of one stream (each written by one thread; read them as a snapshot).

    Attributes:
        frames_processed: frames handed to `send_audio`/`send_wire`.
        bytes_sent: audio bytes written to sockets, replays included.
        replayed_bytes: of which re-sent after a reconnect.
        transcripts_received: Results messages received (interim and final).
        finals_received: of which final.
        errors: socket failures and refused connection attempts.
        reconnects: connections opened after the first one.
        dropped_frames: frames dropped because the inbox was full.
        replay_overflow_bytes: sent audio forgotten before a final covered it.
        keepalives_sent: KeepAlive messages sent.
        dropped_events: events dropped because the consumer fell behind.
        stalls: connections dropped because Deepgram answered nothing.
    """

    frames_processed: int = 0
    bytes_sent: int = 0
    replayed_bytes: int = 0
    transcripts_received: int = 0
    finals_received: int = 0
    errors: int = 0
    reconnects: int = 0
    dropped_frames: int = 0
    replay_overflow_bytes: int = 0
    keepalives_sent: int = 0
    dropped_events: int = 0
    stalls: int = 0


@dataclass(frozen=True, slots=True)
class Connected:
    """A socket is open (the first one ends `start`)."""


@dataclass(frozen=True, slots=True)
class FinalizeDone:
    """The ``from_finalize`` result arrived."""


@dataclass(frozen=True, slots=True)
class WorkerDone:
    """The worker is finishing: its last message.

    Attributes:
        error: why the stream ended, or None for a requested stop.
    """

    error: DeepgramSttError | None


WorkerOutput = SpeechEvent | Connected | FinalizeDone | WorkerDone
"""What the threads hand to the event loop."""


@dataclass(eq=False)
class _Socket:
    """State of one connection, shared by its worker and reader."""

    base: int  # absolute byte offset of this socket's time 0
    opened_at: float
    connection: Any = None  # websockets ClientConnection, for aborting a stuck send
    heard_at: float | None = None  # monotonic time of the last message received
    failure: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    drained: threading.Event = field(default_factory=threading.Event)


class _Stalled(DeepgramSttError):
    """The socket took audio but Deepgram answered nothing for the stall timeout."""


class _StableDrop(Exception):
    """A long-lived connection dropped: reconnect at once with a fresh retry budget."""

    def __init__(self, error: DeepgramSttError) -> None:
        super().__init__(str(error))
        self.error = error


class SocketWorker:
    """Everything one stream does in threads.

    Args:
        client: the sync SDK client.
        options: the ``/v1/listen`` query.
        policy: the reconnect schedule.
        inbox: audio and control items from the loop.
        replay: sent audio not yet covered by a final result.
        metrics: counters to update.
        closing: set by the loop when the stream is being stopped.
        post: hands an item to the event loop (thread-safe, never blocks).
        name: thread name prefix.
        keepalive_s: KeepAlive after this long without audio.
        drain_timeout_s: wait for Metadata after CloseStream at most this long.
        stall_timeout_s: drop a socket that has answered nothing this long after audio
            went out.
    """

    def __init__(
        self,
        *,
        client: DeepgramClient,
        options: DeepgramSttOptions,
        policy: ReconnectPolicy,
        inbox: AudioInbox,
        replay: ReplayBuffer,
        metrics: DeepgramSttMetrics,
        closing: threading.Event,
        post: Callable[[WorkerOutput], None],
        name: str,
        keepalive_s: float,
        drain_timeout_s: float,
        stall_timeout_s: float,
    ) -> None:
        self._client = client
        self.options = options
        self._policy = policy
        self._inbox = inbox
        self._replay = replay
        self._metrics = metrics
        self._closing = closing
        self._post = post
        self._name = name
        self._keepalive_s = keepalive_s
        self._drain_timeout_s = drain_timeout_s
        self._stall_timeout_s = stall_timeout_s
        self._bps = options.bytes_per_second
        self._state_lock = threading.Lock()
        self._current: _Socket | None = None
        self._final_end = 0.0  # stream seconds covered by the finals emitted so far
        self._connections = 0
        self._stalls = 0  # stalled connections in a row

    def run(self) -> None:
        """The worker thread's body; always ends by posting `WorkerDone`."""
        error: DeepgramSttError | None = None
        try:
            self._connect_loop()
        except BaseException as exc:
            error = stt_error(exc)
        finally:
            self._post(WorkerDone(error))

    def abort(self) -> None:
        """From any thread: drop the current socket (unblocks a send to a stalled peer)."""
        current = self._current
        if current is not None:
            _abort(current)

    def _connect_loop(self) -> None:
        policy = self._policy
        while not self._closing.is_set():
            retrying = Retrying(
                stop=stop_after_attempt(policy.max_attempts) | stop_when_event_set(self._closing),
                wait=wait_exponential_jitter(
                    multiplier=policy.initial_s, max=policy.max_wait_s, jitter=policy.jitter_s
                ),
                retry=retry_if_exception(self._should_retry),
                sleep=self._backoff_sleep,
                before_sleep=lambda state: log.warning(
                    "Deepgram connection lost (%s); reconnecting in %.2f s (attempt %d/%d)",
                    state.outcome.exception() if state.outcome else "?",
                    state.upcoming_sleep,
                    state.attempt_number + 1,
                    policy.max_attempts,
                ),
                reraise=True,
            )
            try:
                retrying(self._run_socket)
                return
            except _StableDrop as drop:
                log.warning("Deepgram connection lost (%s); reconnecting", drop.error)
            except DeepgramSttError as exc:
                if not exc.retryable or self._closing.is_set():
                    raise
                raise DeepgramSttError(
                    f"gave up after {policy.max_attempts} connection attempts: {exc}",
                    retryable=True,
                    status=exc.status,
                    close_code=exc.close_code,
                ) from exc

    def _backoff_sleep(self, seconds: float) -> None:
        # Returns early when stop() is called, so a call never waits out a backoff.
        self._closing.wait(seconds)

    def _should_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, DeepgramSttError) and exc.retryable and not self._closing.is_set()

    def _run_socket(self) -> None:
        """One connection: replay, pump audio until Stop. Raises on any failure."""
        if self._closing.is_set():
            return
        current: _Socket | None = None
        reader: threading.Thread | None = None
        try:
            with self._client.listen.v1.connect(**self.options.connect_kwargs()) as conn:
                pending = self._replay.pending()
                current = _Socket(
                    base=pending.start, opened_at=time.monotonic(), connection=last_connection()
                )
                self._current = current
                if self._connections:
                    self._metrics.reconnects += 1
                    log.info(
                        "Deepgram reconnected; replaying %.2f s of audio",
                        sum(len(c) for c in pending.chunks) / self._bps,
                    )
                self._connections += 1
                reader = threading.Thread(
                    target=contextvars.copy_context().run,
                    args=(self._read_loop, conn, current),
                    name=f"{self._name}-reader",
                    daemon=True,
                )
                reader.start()
                self._post(Connected())
                try:
                    self._pump(conn, current, pending.chunks)
                except _Stalled:
                    raise
                except Exception as exc:
                    # The reader's exception carries the close code; a failed send only
                    # says the socket is gone.
                    current.done.wait(WS_CLOSE_TIMEOUT_S)
                    raise current.failure or exc from None
        except Exception as exc:
            self._metrics.errors += 1
            error = stt_error(exc)
            heard = current is not None and current.heard_at is not None
            if heard:
                self._stalls = 0
            elif isinstance(exc, _Stalled):
                self._stalls += 1
                if self._stalls >= self._policy.max_stalls:
                    raise DeepgramSttError(
                        f"{exc}, on {self._stalls} connections in a row: giving up",
                        retryable=False,
                    ) from exc
            # Only a connection that answered earns a fresh budget: one that took audio
            # for a long time and said nothing is no evidence that the service works.
            if (
                current is not None
                and heard
                and error.retryable
                and time.monotonic() - current.opened_at >= self._policy.stable_after_s
            ):
                raise _StableDrop(error) from exc
            raise error from exc
        finally:
            if reader is not None:
                reader.join(self._drain_timeout_s + WS_CLOSE_TIMEOUT_S)
                if reader.is_alive():
                    log.error("Deepgram reader thread did not end")

    def _pump(self, conn: Any, current: _Socket, replay: tuple[bytes, ...]) -> None:
        for start in range(0, len(replay), _MAX_BATCH_FRAMES):
            data = b"".join(replay[start : start + _MAX_BATCH_FRAMES])
            conn.send_media(data)
            self._metrics.bytes_sent += len(data)
            self._metrics.replayed_bytes += len(data)
        last_audio = time.monotonic()
        # When audio first went out with no message heard since (None: nothing owed).
        unanswered_since: float | None = last_audio if replay else None
        while True:
            if current.done.is_set():
                raise current.failure or DeepgramSttError(
                    "Deepgram closed the stream unexpectedly (1000)",
                    retryable=True,
                    close_code=1000,
                )
            now = time.monotonic()
            heard = current.heard_at
            if unanswered_since is not None and heard is not None and heard >= unanswered_since:
                unanswered_since = None
            if unanswered_since is not None and now - unanswered_since >= self._stall_timeout_s:
                self._drop_stalled(current, now - unanswered_since)
            wait = max(0.0, last_audio + self._keepalive_s - now)
            if self._inbox.wake_frames > 1:
                # The inbox wakes us per wake_frames frames; a partial batch goes out
                # after as long as a full one takes to arrive at the real-time pace.
                wait = min(wait, self._inbox.wake_frames * _FRAME_S)
            if unanswered_since is not None:
                wait = min(wait, max(0.0, unanswered_since + self._stall_timeout_s - now))
            batch = self._inbox.get(wait, _MAX_BATCH_FRAMES)
            if not batch:
                if time.monotonic() - last_audio >= self._keepalive_s and not current.done.is_set():
                    conn.send_keep_alive()
                    self._metrics.keepalives_sent += 1
                    last_audio = time.monotonic()
                    # Audio stopped (hold, mute, a caller gone): Deepgram may keep a
                    # half-heard word until more audio comes, so its silence is no stall.
                    unanswered_since = None
                continue
            first = batch[0]
            if first is Control.FINALIZE:
                conn.send_finalize()
            elif first is Control.STOP:
                self._close_stream(conn, current)
                return
            else:
                data = b"".join(item for item in batch if isinstance(item, bytes))
                self._replay.append(data)
                conn.send_media(data)
                self._metrics.bytes_sent += len(data)
                last_audio = time.monotonic()
                if unanswered_since is None:
                    unanswered_since = last_audio

    def _drop_stalled(self, current: _Socket, silent_s: float) -> None:
        """Give up on a socket that answers nothing; raises `_Stalled`."""
        self._metrics.stalls += 1
        log.warning(
            "Deepgram answered nothing for %.1f s after audio went out: dropping the connection",
            silent_s,
        )
        # Shut it down first: a peer that stopped reading would hold the close handshake.
        _abort(current)
        raise _Stalled(f"Deepgram answered nothing for {silent_s:.1f} s", retryable=True)

    def _close_stream(self, conn: Any, current: _Socket) -> None:
        if current.done.is_set():
            return
        try:
            conn.send_close_stream()
        except Exception as exc:
            log.debug("CloseStream not sent: %r", exc)
            return
        if not current.drained.wait(self._drain_timeout_s):
            # A server that ignores CloseStream will not answer a close frame either:
            # drop the connection rather than wait out the close handshake too.
            log.warning(
                "Deepgram sent no Metadata within %.1f s of CloseStream: dropping the socket",
                self._drain_timeout_s,
            )
            _abort(current)

    # ------------------------------------------------------------------ reader thread

    def _read_loop(self, conn: Any, current: _Socket) -> None:
        try:
            for message in conn:
                current.heard_at = time.monotonic()
                if message is None or isinstance(message, bytes):
                    continue  # unknown message type (newer API) or stray binary
                try:
                    self._on_message(message, current)
                except Exception:
                    self._metrics.errors += 1
                    log.exception("bad Deepgram message skipped")
        except BaseException as exc:
            current.failure = exc
        finally:
            current.drained.set()
            current.done.set()
            self._inbox.wake()

    def _on_message(self, message: Any, current: _Socket) -> None:
        kind = getattr(message, "type", None)
        if kind == "Results":
            self._metrics.transcripts_received += 1
        with self._state_lock:
            floor = self._final_end
            decoded = decode_message(message, base=current.base / self._bps, floor=floor)
            if decoded.covered_until is not None:
                self._metrics.finals_received += 1
                self._replay.covered_until(round(decoded.covered_until * self._bps))
                self._final_end = max(floor, decoded.covered_until)
        if decoded.event is not None:
            self._post(decoded.event)
        if decoded.from_finalize:
            self._post(FinalizeDone())
        if decoded.metadata:
            log.debug("Deepgram Metadata: request %s", getattr(message, "request_id", "?"))
            current.drained.set()
        if decoded.error is not None:
            self._metrics.errors += 1
            log.warning("Deepgram error message: %s", decoded.error)


def _abort(current: _Socket) -> None:
    """Shut the socket down under a thread stuck in send or recv (they fail at once)."""
    sock = getattr(current.connection, "socket", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
