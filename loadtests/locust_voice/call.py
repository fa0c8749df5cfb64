"""One connected call, played out as a telephony gateway would, with its measurements.

`MediaCall` opens the media WebSocket and runs three greenlets until the call ends:

- the pacer sends one 20 ms frame of caller audio per tick on an absolute-deadline
  schedule (the script's utterance while the caller speaks, mu-law silence otherwise: a
  phone line never goes quiet on the wire) and plays the gateway's playback buffer
  forward, echoing each mark when playback reaches it;
- the `MediaSocket` reader takes the server's audio and control messages;
- the caller's own greenlet follows the script, waiting on what the other two observe.

The playback buffer is the project's pure model of a gateway (`GatewayPlayback`): the
server paces its audio with a small lead, so "received" is not "heard"; marks, the bot
finishing and barge-in all depend on what has played. Wire formats come from the
project's sans-I/O gateway codecs (`realtime_voice.testing.gateway_wire`).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import gevent  # type: ignore[import-untyped]
import gevent.event  # type: ignore[import-untyped]
import websocket

from locust_voice.fixtures import FRAME_BYTES, load_utterance
from locust_voice.media_socket import Closed, MediaSocket, SocketClosedError
from locust_voice.scripts import Step
from locust_voice.stats import BARGE_IN, CONNECT, GREETING, TURN, WHOLE_CALL, CallStats
from realtime_voice.testing.gateway_wire import (
    BotAudio,
    BotClear,
    BotError,
    BotHangup,
    BotMark,
    BotTransfer,
    GatewayWire,
    ServerMessage,
)
from realtime_voice.testing.playback import GatewayPlayback, PlaybackEvent, ReachedMark

__all__ = ["CallLimits", "MediaCall"]

log = logging.getLogger(__name__)

FRAME_S = 0.02
_SILENCE = b"\xff" * FRAME_BYTES  # mu-law 0xFF decodes to 0
_QUIET_WITHOUT_MARK_S = 1.0
"""A reply not closed by a mark counts as finished after this much silence."""
_UNDERRUN_S = 0.6
"""A gap in the bot's audio shorter than this, with no mark before it, is the same
utterance running late (network or scheduling jitter), not a new one."""
_LATE_S = 0.1
"""A pacer this far behind its schedule means the load generator stalled."""


@dataclass(frozen=True)
class CallLimits:
    """Deadlines of one call (seconds); missing one is a failure with a reason.

    Attributes:
        connect_s: the media WebSocket handshake.
        greeting_s: media start → the greeting's first audio.
        turn_s: end of the caller's speech → the first audio of the bot's reply.
        barge_in_s: start of talking over the bot → ``clear``.
        reply_s: a reply's first audio → the bot finished it (replies can be long).
        close_s: our close (or stop) → the server's close.
    """

    connect_s: float = 10.0
    greeting_s: float = 10.0
    turn_s: float = 10.0
    barge_in_s: float = 3.0
    reply_s: float = 60.0
    close_s: float = 5.0


class _Wait(enum.Enum):
    OK = "ok"
    TIMEOUT = "timeout"
    CLOSED = "closed"
    STOPPING = "stopping"


class _Stop(Exception):
    """The script cannot go on: a failure (already recorded), the bot ended the call,
    or the test is stopping. The caller hangs up next."""


class MediaCall:
    """One call over an already-answered media URL, following a script.

    Args:
        url: the media WebSocket URL (with its token, for the bridge protocol).
        wire: the gateway side of the media protocol.
        custom_parameters: sent in the opening ``start`` message.
        script: what the caller says.
        stats: where measurements go.
        limits: deadlines.
        stopping: returns True once the load test is stopping (the caller then hangs up
            at the next opportunity and reports nothing more).
    """

    def __init__(
        self,
        url: str,
        wire: GatewayWire,
        custom_parameters: Mapping[str, str],
        script: Sequence[Step],
        stats: CallStats,
        limits: CallLimits,
        stopping: Callable[[], bool],
    ) -> None:
        """Prepare the call; nothing is sent until `run`."""
        self._url = url
        self._wire = wire
        self._custom_parameters = dict(custom_parameters)
        self._script = script
        self._stats = stats
        self._limits = limits
        self._stopping = stopping
        self._socket: MediaSocket | None = None
        self._changed = gevent.event.Event()
        self._playback = GatewayPlayback()
        self._reply_starts: list[float] = []
        self._clears: list[float] = []
        self._cleared_since_audio = False
        self._last_enqueued_mark = False
        self._server_end: str | None = None
        self._problems: list[str] = []
        self._speech = b""
        self._speech_pos = 0
        self._speech_start = math.inf
        self._speech_end = math.inf
        self._stalls = 0
        self._lagging = False
        self._max_lag_s = 0.0
        self._skipped_barge_ins = 0
        self._pacer: gevent.Greenlet | None = None
        self._pacing = True
        self._t0 = time.perf_counter()
        self._timeline: list[str] = []

    # ------------------------------------------------------------------ the call

    def run(self, started: float) -> None:
        """Place the call, follow the script, hang up, and report.

        Args:
            started: ``perf_counter`` time the call began (before its webhook), the start
                of the ``whole_call`` sample.
        """
        limits = self._limits
        opened = time.perf_counter()
        try:
            self._socket = MediaSocket.connect(
                self._url, self._on_message, self._on_close, timeout_s=limits.connect_s
            )
        except (websocket.WebSocketException, OSError) as exc:
            reason = _describe_connect_error(exc)
            self._stats.report(CONNECT, time.perf_counter() - opened, reason)
            self._stats.report(WHOLE_CALL, time.perf_counter() - started, reason)
            return
        self._stats.report(CONNECT, time.perf_counter() - opened)
        try:
            for message in self._wire.opening(self._custom_parameters):
                self._socket.send(message)
            start_sent = time.perf_counter()
            self._pacer = gevent.spawn(self._pace)
            self._follow_script(start_sent)
        except (_Stop, SocketClosedError):
            pass
        try:
            self._end_call()
        finally:
            self._stop_pacer()
            if self._socket.closed is None:
                self._socket.abort()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("call timeline (s from connect):\n%s", "\n".join(self._timeline))
        if self._stopping() and not self._problems:
            return  # cut short by the end of the test: not a whole call
        self._stats.report(
            WHOLE_CALL,
            time.perf_counter() - started,
            self._problems[0] if self._problems else None,
        )

    def _follow_script(self, start_sent: float) -> None:
        limits = self._limits
        got = self._wait(lambda: self._reply_after(start_sent) is not None, limits.greeting_s)
        self._check(got, GREETING, start_sent, f"no greeting within {limits.greeting_s:g} s")
        reply_start = self._reply_after(start_sent)
        assert reply_start is not None
        self._stats.report(GREETING, reply_start - start_sent)
        since = start_sent
        for step in self._script:
            if self._stopping():
                raise _Stop
            if self._bot_ended():
                return  # the bot ended the call (a transfer, a goodbye): a normal end
            since, reply_start = self._perform(step, since, reply_start)
        got = self._wait(lambda: self._bot_done(since) or self._bot_ended(), limits.reply_s)
        self._check(got, None, since, f"the bot did not finish within {limits.reply_s:g} s")

    def _perform(self, step: Step, since: float, reply_start: float) -> tuple[float, float]:
        """Say one line; returns the new ``since`` (end of speech) and the reply's start."""
        limits = self._limits
        barging = False
        if step.barge_in_after_s is None:
            got = self._wait(lambda: self._bot_done(since), limits.reply_s)
            self._check(got, None, since, f"the bot did not finish within {limits.reply_s:g} s")
            gevent.sleep(step.pause_s)
        else:
            gevent.sleep(max(0.0, reply_start + step.barge_in_after_s - time.perf_counter()))
            barging = self._bot_talking(time.perf_counter())
            if not barging:
                # A short reply: nothing to talk over. Not the server's fault, so not a
                # failure; the line is said anyway and its answer measured.
                self._skipped_barge_ins += 1
        audio = load_utterance(step.utterance)
        self._speech_start = self._speech_end = math.inf
        self._speech, self._speech_pos = audio, 0
        got = self._wait(lambda: self._speech_end < math.inf, len(audio) / 8000 + 5.0)
        self._check(got, None, since, "the caller's speech could not be sent in time")
        speech_start, speech_end = self._speech_start, self._speech_end
        # Bot audio before the clear is the reply being talked over (the line may even
        # run dry for a moment while the server decides it is a barge-in), not an answer.
        answer_after = speech_start
        if barging:
            got = self._wait(
                lambda: self._clear_after(speech_start) is not None,
                speech_start + limits.barge_in_s - time.perf_counter(),
            )
            clear = self._clear_after(speech_start)
            if clear is not None:
                self._stats.report(BARGE_IN, clear - speech_start)
                answer_after = clear
            elif got is _Wait.TIMEOUT:
                # The call goes on: the bot's answer to this line is still measured.
                reason = f"no clear within {limits.barge_in_s:g} s of talking over the bot"
                self._stats.report(BARGE_IN, time.perf_counter() - speech_start, reason)
                self._problem(reason)
            else:
                self._check(got, BARGE_IN, speech_start, "")
        early = self._reply_after(answer_after)
        if early is not None and early <= speech_end:
            reason = "the bot answered before the caller finished"
            self._stats.report(TURN, 0.0, reason)
            self._problem(reason)
            return speech_end, early
        after = max(speech_end, answer_after)
        got = self._wait(lambda: self._reply_after(after) is not None, limits.turn_s)
        self._check(got, TURN, speech_end, f"no answer within {limits.turn_s:g} s")
        answer = self._reply_after(after)
        assert answer is not None
        self._stats.report(TURN, answer - speech_end)
        return speech_end, answer

    def _bot_ended(self) -> bool:
        """The bot ended the call: a transfer or hang-up message, or its normal close."""
        if self._server_end is not None:
            return True
        closed = self._socket.closed if self._socket is not None else None
        return closed is not None and closed.by_server and closed.code == 1000

    def _check(
        self, got: _Wait, measure: tuple[str, str] | None, since: float, timeout_reason: str
    ) -> None:
        """Turn a failed wait into a reported failure and end the call (`_Stop`).

        A wait that measures nothing and ends because the bot ended the call is the call
        ending normally (still `_Stop`, without a failure).
        """
        if got is _Wait.OK:
            return
        if got is _Wait.STOPPING or (measure is None and self._bot_ended()):
            raise _Stop
        reason = self._closed_reason() if got is _Wait.CLOSED else timeout_reason
        if measure is not None:
            self._stats.report(measure, time.perf_counter() - since, reason)
        self._problem(reason)
        raise _Stop

    def _end_call(self) -> None:
        """Hang up as a gateway does, once the bot's last words have played."""
        socket = self._socket
        assert socket is not None
        if socket.closed is None:
            self._wait(
                lambda: not self._playback.playing(time.perf_counter()), self._limits.reply_s
            )
        self._hang_up()
        closed = socket.closed
        assert closed is not None
        if closed.error is not None and not closed.by_server:
            self._problem(f"close not answered: {closed.error}")
        elif closed.code != 1000:
            self._problem(self._closed_reason())

    def _stop_pacer(self) -> None:
        # The line goes quiet before the stop: no audio may follow it. The pacer is
        # asked to finish rather than killed, so it never leaves half a frame on the wire.
        self._pacing = False
        if self._pacer is not None:
            self._pacer.join(timeout=1.0)
            self._pacer.kill(block=True)
            self._pacer = None

    def _hang_up(self) -> None:
        """``stop`` and a 1000 close, unless the server closed first."""
        socket = self._socket
        self._stop_pacer()
        if socket is None or socket.closed is not None:
            return
        with contextlib.suppress(SocketClosedError):
            socket.send(self._wire.stop())
        socket.close(1000, "caller hung up", wait_s=self._limits.close_s)

    def _closed_reason(self) -> str:
        closed = self._socket.closed if self._socket is not None else None
        if closed is None:
            return "the call closed"
        if closed.error is not None:
            return f"connection dropped ({closed.error})"
        if closed.code == 1000:
            return "the bot ended the call without answering"
        return f"server closed the call ({closed.code} {closed.reason})".replace(" )", ")")

    def _problem(self, reason: str) -> None:
        self._note(f"PROBLEM {reason}")
        self._problems.append(reason)

    def _note(self, what: str, at: float | None = None) -> None:
        """Add to the call's timeline (logged at DEBUG when the call ends)."""
        t = (time.perf_counter() if at is None else at) - self._t0
        self._timeline.append(f"{t:8.3f} {what}")

    # ------------------------------------------------------------------ waiting

    def _wait(self, predicate: Callable[[], bool], timeout_s: float) -> _Wait:
        """Wait until ``predicate()`` holds, re-checking whenever something changed.

        The pacer signals every 20 ms and the reader on every message, so a predicate on
        time alone is re-checked at frame rate.
        """
        deadline = time.perf_counter() + timeout_s
        while True:
            self._changed.clear()
            if predicate():
                return _Wait.OK
            if self._stopping():
                return _Wait.STOPPING
            if self._socket is None or self._socket.closed is not None:
                return _Wait.CLOSED
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return _Wait.TIMEOUT
            self._changed.wait(remaining)

    def _reply_after(self, t: float) -> float | None:
        """The first reply start after ``t``, if any."""
        for start in self._reply_starts:
            if start > t:
                return start
        return None

    def _clear_after(self, t: float) -> float | None:
        for at in self._clears:
            if at > t:
                return at
        return None

    def _bot_talking(self, now: float) -> bool:
        """The bot's utterance is playing, or only briefly starved (no end mark yet)."""
        playback = self._playback
        if playback.playing(now):
            return True
        return not self._last_enqueued_mark and now - playback.play_end < _UNDERRUN_S

    def _bot_done(self, since: float) -> bool:
        """The bot replied after ``since`` and its reply has finished playing."""
        now = time.perf_counter()
        if self._reply_after(since) is None or self._playback.playing(now):
            return False
        return self._last_enqueued_mark or now - self._playback.play_end >= _QUIET_WITHOUT_MARK_S

    # ------------------------------------------------------------------ pacer

    def _pace(self) -> None:
        socket = self._socket
        assert socket is not None
        start = time.perf_counter()
        index = 0
        try:
            while self._pacing:
                # Absolute deadlines: a late tick shortens the next sleep, so the stream
                # never drifts from real time.
                delay = start + (index + 1) * FRAME_S - time.perf_counter()
                if delay > 0:
                    gevent.sleep(delay)
                    if not self._pacing:
                        return
                self._count_lag(max(0.0, -delay))
                message = self._wire.audio(self._next_frame(), index * 20)
                if message:  # a wire that batches frames (Exotel) sends one per group
                    socket.send(message)
                index += 1
                now = time.perf_counter()
                if self._speech_pos and self._speech_start == math.inf:
                    self._speech_start = now - FRAME_S
                    self._note("caller starts speaking", self._speech_start)
                if self._speech_pos >= len(self._speech) and self._speech:
                    self._speech, self._speech_pos = b"", 0
                    self._speech_end = now
                    self._note("caller stops speaking", now)
                for name in _reached(self._playback.advance(now)):
                    socket.send(self._wire.mark(name))
                self._changed.set()
        except SocketClosedError:
            self._changed.set()

    def _next_frame(self) -> bytes:
        if not self._speech:
            return _SILENCE
        frame = self._speech[self._speech_pos : self._speech_pos + FRAME_BYTES]
        self._speech_pos += FRAME_BYTES
        return frame.ljust(FRAME_BYTES, b"\xff")

    def _count_lag(self, lag_s: float) -> None:
        # One stall makes several ticks late in a row while the pacer catches up: count
        # the stall once, keep the worst lag.
        late = lag_s > _LATE_S
        if late and not self._lagging:
            self._stalls += 1
        self._lagging = late
        self._max_lag_s = max(self._max_lag_s, lag_s)

    @property
    def stalls(self) -> int:
        """Times the pacer fell over 100 ms behind real time (the load generator stalled)."""
        return self._stalls

    @property
    def max_lag_s(self) -> float:
        """The pacer's worst lag behind real time."""
        return self._max_lag_s

    @property
    def skipped_barge_ins(self) -> int:
        """Barge-ins not attempted because the bot had finished its reply already."""
        return self._skipped_barge_ins

    # ------------------------------------------------------------------ reader

    def _on_message(self, message: str | bytes, now: float) -> None:
        self._handle(self._wire.parse(message), now)
        self._changed.set()

    def _handle(self, message: ServerMessage, now: float) -> None:
        playback = self._playback
        if isinstance(message, BotAudio):
            # A reply starts on the first frame after a clear, after the previous
            # utterance's end mark, or after a real silence (a short underrun inside an
            # utterance is jitter): the caller's latency clock stops there.
            if (
                self._cleared_since_audio
                or self._last_enqueued_mark
                or now - playback.play_end >= _UNDERRUN_S
            ):
                self._reply_starts.append(now)
                self._note("bot audio starts", now)
            self._cleared_since_audio = False
            playback.enqueue_audio(message.payload, now)
            self._last_enqueued_mark = False
        elif isinstance(message, BotMark):
            self._note(f"mark {message.name} (plays at +{playback.queued_seconds(now):.2f} s)", now)
            playback.enqueue_mark(message.name, now)
            self._last_enqueued_mark = True
        elif isinstance(message, BotClear):
            self._clears.append(now)
            self._note("clear", now)
            self._cleared_since_audio = True
            # Marks already played are echoed as usual; marks whose audio was dropped
            # will never play and are echoed at once, as Twilio does.
            echo = _reached(playback.advance(now))
            echo += playback.clear(now)
            echo += _reached(playback.advance(now))
            self._echo_marks(echo)
        elif isinstance(message, BotTransfer):
            self._note("transfer", now)
            self._server_end = "transfer"
        elif isinstance(message, BotHangup):
            self._note(f"hangup {message.reason}", now)
            self._server_end = "hangup"
        elif isinstance(message, BotError):
            self._problem(f"error frame from the server: {message.code}")
        else:
            self._problem(f"unexpected message from the server: {message.problem}")

    def _echo_marks(self, names: list[str]) -> None:
        socket = self._socket
        for name in names:
            if socket is None:
                return
            try:
                socket.send(self._wire.mark(name))
            except SocketClosedError:
                return

    def _on_close(self, closed: Closed) -> None:
        who = "server" if closed.by_server else "caller"
        self._note(f"closed by {who}: {closed.code} {closed.reason} {closed.error or ''}")
        self._changed.set()


def _reached(events: list[PlaybackEvent]) -> list[str]:
    return [event.name for event in events if isinstance(event, ReachedMark)]


def _describe_connect_error(exc: BaseException) -> str:
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return f"media WebSocket refused with HTTP {exc.status_code}"
    if isinstance(exc, ConnectionRefusedError):
        return "media WebSocket: connection refused"
    if isinstance(exc, TimeoutError | websocket.WebSocketTimeoutException):
        return "media WebSocket handshake timed out"
    return f"media WebSocket failed: {type(exc).__name__}"
