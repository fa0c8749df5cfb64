"""Lean asyncio callers for the capacity benchmark and the soak: many calls per process.

`SimulatedCaller` (realtime_voice.testing) records a full two-sided report per call;
hundreds of calls in one process need less: this module keeps only the figures the
benchmarks print, and spends a few microseconds per frame.

A `CallSlot` keeps one call going at a time: it answers the call through the inbound
webhook, opens the media WebSocket (RingCentral bridge or Twilio Media Streams, through
the gateway codecs of `realtime_voice.testing.gateway_wire`), waits for the greeting to
finish playing, then alternates the caller's prerecorded utterances with silence, each
time waiting for the bot's answer to finish playing, until it is told to stop (or its
call length is up, or the server ends the call; then it places the next call).

Caller audio goes out on a `FrameClock`: one task per group of calls sends every
call's next 20 ms frame on an absolute schedule (calls are spread over the groups so
the server does not get every call's frame in the same millisecond). The clock's own
lateness is recorded: when it is high, the load generator, not the server, is the
bottleneck and the step's figures are not trusted.

Measured, per frame or per turn, only inside the measurement window:

- turn latency: end of the caller's utterance (its last frame sent) → first frame of
  the bot's answer received;
- outbound jitter: each bot frame's lateness against a 20 ms grid anchored on the
  earliest-arriving frame of its burst so far (the first frames the server sends ahead
  of real time never count as late); a burst restarts after a mark, a ``clear`` or a
  gap of `_NEW_BURST_GAP_S`;
- call outcomes: placed, failed to set up, ended by the server (and how).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from realtime_voice.testing.carrier_answers import (
    CarrierCall,
    answer_exotel,
    answer_plivo,
    answer_telnyx,
    answer_vonage,
)
from realtime_voice.testing.gateway_wire import (
    BotAudio,
    BotClear,
    BotHangup,
    BotMark,
    BotTransfer,
    GatewayWire,
    RingCentralGatewayWire,
    TwilioGatewayWire,
    new_twilio_sid,
)

__all__ = [
    "FRAME_S",
    "JITTER_BINS_MS",
    "CallSlot",
    "FrameClock",
    "Measurements",
    "Protocol",
    "SlotConfig",
    "hist_quantile",
]

Protocol = Literal["ringcentral", "twilio", "exotel", "telnyx", "plivo", "vonage"]
# Carriers answered through their own webhook (`realtime_voice.testing.carrier_answers`).
_CARRIER_ANSWERS = {
    "exotel": answer_exotel,
    "telnyx": answer_telnyx,
    "plivo": answer_plivo,
    "vonage": answer_vonage,
}

FRAME_S = 0.02
FRAME_BYTES = 160
SILENCE = b"\xff" * FRAME_BYTES
JITTER_BINS_MS = 1000
"""Jitter is histogrammed in 1 ms bins up to this (the last bin holds everything above)."""
_NEW_BURST_GAP_S = 0.25
_TWILIO_WS_PATH = "/api/voice/twilio/ws"


@dataclass
class Measurements:
    """What one load-generator process measured inside the window (mergeable)."""

    turn_latencies_s: list[float] = field(default_factory=list)
    jitter_hist: list[int] = field(default_factory=lambda: [0] * (JITTER_BINS_MS + 1))
    clock_lateness_hist: list[int] = field(default_factory=lambda: [0] * (JITTER_BINS_MS + 1))
    bot_frames: int = 0
    caller_frames: int = 0
    turns: int = 0
    unanswered_turns: int = 0
    calls_placed: int = 0
    calls_failed: int = 0
    calls_ended_by_server: int = 0
    abnormal_closes: int = 0
    live_calls_mean: float = 0.0
    """Calls live on average inside the window (sampled every 0.5 s)."""
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (see `merge`)."""
        return dict(self.__dict__)

    @classmethod
    def merge(cls, parts: Sequence[dict[str, Any]]) -> Measurements:
        """Add up what several processes measured."""
        total = cls()
        for part in parts:
            for key, value in part.items():
                mine = getattr(total, key)
                if key.endswith("_hist"):
                    setattr(total, key, [a + b for a, b in zip(mine, value, strict=True)])
                elif isinstance(mine, list):
                    mine.extend(value)
                else:
                    setattr(total, key, mine + value)
        return total


def _bin(hist: list[int], seconds: float) -> None:
    hist[min(max(int(seconds * 1000), 0), JITTER_BINS_MS)] += 1


def hist_quantile(hist: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a 1 ms-bin histogram, in ms (upper edge of its bin)."""
    total = sum(hist)
    if not total:
        return None
    need = q * total
    seen = 0
    for index, count in enumerate(hist):
        seen += count
        if seen >= need:
            return float(index + 1)
    return float(len(hist))


@dataclass(frozen=True)
class SlotConfig:
    """How the calls of one load-generator process behave.

    Attributes:
        http_url: the server's HTTP control plane.
        protocol: ``ringcentral`` (bridge) or ``twilio`` (Media Streams).
        utterances: what callers say, as 8 kHz mu-law, used in turn.
        window: ``(start, end)`` of the measurement window, in ``time.monotonic()``
            seconds (the same clock in every process of the machine).
        pause_s: silence before each utterance after the bot finished (uniform range).
        reply_timeout_s: give up waiting for an answer (counted as unanswered).
        call_length_s: hang up after this long and place the next call (None: keep the
            call until told to stop).
    """

    http_url: str
    protocol: Protocol
    utterances: tuple[bytes, ...]
    window: tuple[float, float]
    pause_s: tuple[float, float] = (0.4, 1.0)
    reply_timeout_s: float = 10.0
    call_length_s: float | None = None


class FrameClock:
    """Sends every registered call's next frame each 20 ms; ``groups`` staggered tasks."""

    def __init__(
        self, groups: int, measurements: Measurements, window: tuple[float, float]
    ) -> None:
        self._groups: list[set[_Call]] = [set() for _ in range(groups)]
        self._tasks: list[asyncio.Task[None]] = []
        self._m = measurements
        self._window = window

    def start(self) -> None:
        """Start the group tasks (each offset by 20 ms / groups)."""
        t0 = time.monotonic()
        for index, group in enumerate(self._groups):
            offset = FRAME_S * index / len(self._groups)
            self._tasks.append(asyncio.create_task(self._run(group, t0 + offset)))

    def add(self, call: _Call) -> None:
        """Register a call (to the group with the fewest calls, round robin on ties)."""
        group = min(self._groups, key=len)
        group.add(call)
        call.clock_group = group

    async def aclose(self) -> None:
        """Stop the group tasks."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, group: set[_Call], t0: float) -> None:
        tick = 0
        start, end = self._window
        while True:
            due = t0 + tick * FRAME_S
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            if start <= now <= end:
                _bin(self._m.clock_lateness_hist, now - due)
            for call in list(group):
                await call.send_frame(now)
            tick += 1
            if now - due > 10 * FRAME_S:
                # Far behind (the machine is saturated): skip ticks rather than burst.
                tick = int((now - t0) / FRAME_S) + 1


class _Call:
    """One live call: what to send next, what arrived, the conversation."""

    def __init__(
        self, config: SlotConfig, ws: ClientConnection, wire: GatewayWire, m: Measurements
    ) -> None:
        self.config = config
        self.ws = ws
        self.wire = wire
        self.m = m
        self.clock_group: set[_Call] | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.ended_by_server = False
        self._speech: bytes = b""
        self._speech_pos = 0
        self._speech_done: asyncio.Future[float] | None = None
        self._timestamp_ms = 0
        self._controls: list[tuple[float, str]] = []  # (due, message): mark echoes
        # Playback model: when the audio received so far finishes playing.
        self._play_end = 0.0
        self._marks_played: asyncio.Queue[str] = asyncio.Queue()
        self._echoed = asyncio.Event()  # every mark received so far was echoed
        self._echoed.set()
        # Reply tracking.
        self._awaiting_reply_since: float | None = None
        self._reply_started = asyncio.Event()
        # Jitter tracking of the current burst.
        self._burst_k = -1
        self._burst_best = 0.0
        self._last_arrival = 0.0

    # ------------------------------------------------------------------ sending

    async def send_frame(self, now: float) -> None:
        """Called by the clock every 20 ms: one caller frame plus any due mark echoes."""
        if self.closed.is_set():
            return
        frame = SILENCE
        if self._speech_pos < len(self._speech):
            frame = self._speech[self._speech_pos : self._speech_pos + FRAME_BYTES]
            frame = frame.ljust(FRAME_BYTES, b"\xff")
            self._speech_pos += FRAME_BYTES
            if self._speech_pos >= len(self._speech) and self._speech_done is not None:
                self._speech_done.set_result(now)
        try:
            message = self.wire.audio(frame, self._timestamp_ms)
            if message:  # a wire that batches frames (Exotel) sends one per group
                await self.ws.send(message)
            self._timestamp_ms += 20
            if self._controls and self._controls[0][0] <= now:
                due = [c for c in self._controls if c[0] <= now]
                self._controls = [c for c in self._controls if c[0] > now]
                for _, message in due:
                    await self.ws.send(message)
                if not self._controls:
                    self._echoed.set()
        except ConnectionClosed:
            self.closed.set()
            return
        if self.config.window[0] <= now <= self.config.window[1]:
            self.m.caller_frames += 1

    async def say(self, audio: bytes) -> float:
        """Stream ``audio`` at real time; returns when its last frame was sent."""
        loop = asyncio.get_running_loop()
        self._speech_done = loop.create_future()
        self._speech, self._speech_pos = audio, 0
        done = self._speech_done
        closed = asyncio.ensure_future(self.closed.wait())
        waits: set[asyncio.Future[Any]] = {done, closed}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        return done.result() if done.done() else time.monotonic()

    # ------------------------------------------------------------------ receiving

    async def read(self) -> None:
        """Take the server's messages until the connection closes."""
        try:
            async for message in self.ws:
                self._on_message(message, time.monotonic())
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            self._reply_started.set()  # wake a waiting conversation

    def _on_message(self, message: str | bytes, now: float) -> None:
        parsed = self.wire.parse(message)
        if isinstance(parsed, BotAudio):
            self._on_audio(now)
        elif isinstance(parsed, BotMark):
            # Echo when playback reaches the mark, as a gateway does.
            due = max(self._play_end, now)
            self._controls.append((due, self.wire.mark(parsed.name)))
            self._controls.sort()
            self._echoed.clear()
            self._marks_played.put_nowait(parsed.name)
            self._burst_k = -1
        elif isinstance(parsed, BotClear):
            self._play_end = now
            self._burst_k = -1
        elif isinstance(parsed, BotHangup | BotTransfer):
            self.ended_by_server = True

    def _on_audio(self, now: float) -> None:
        self._play_end = max(self._play_end, now) + FRAME_S
        if self._awaiting_reply_since is not None:
            since, self._awaiting_reply_since = self._awaiting_reply_since, None
            if self.config.window[0] <= since <= self.config.window[1]:
                self.m.turn_latencies_s.append(now - since)
            self._reply_started.set()
        if self._burst_k < 0 or now - self._last_arrival > _NEW_BURST_GAP_S:
            self._burst_k = 0
            self._burst_best = now
        else:
            self._burst_k += 1
            offset = now - self._burst_k * FRAME_S
            self._burst_best = min(self._burst_best, offset)
        self._last_arrival = now
        if self.config.window[0] <= now <= self.config.window[1]:
            self.m.bot_frames += 1
            _bin(self.m.jitter_hist, now - self._burst_k * FRAME_S - self._burst_best)

    # ------------------------------------------------------------------ conversation

    async def wait_bot_done(self, timeout_s: float) -> bool:
        """Wait until the bot's current utterance finished playing (its mark echoed)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._marks_played.get()
                await self._echoed.wait()
            return True
        except TimeoutError:
            return False

    async def turn(self, audio: bytes) -> None:
        """Say ``audio``, then wait for the answer to start and to finish playing."""
        while not self._marks_played.empty():  # marks of earlier utterances
            self._marks_played.get_nowait()
        end = await self.say(audio)
        if self.closed.is_set():
            return
        self._reply_started.clear()
        self._awaiting_reply_since = end
        in_window = self.config.window[0] <= end <= self.config.window[1]
        if in_window:
            self.m.turns += 1
        try:
            async with asyncio.timeout(self.config.reply_timeout_s):
                await self._reply_started.wait()
        except TimeoutError:
            self._awaiting_reply_since = None
            if in_window:
                self.m.unanswered_turns += 1
            return
        await self.wait_bot_done(self.config.reply_timeout_s + 30.0)


class CallSlot:
    """Keeps one call going at a time until `stop` (see the module docstring).

    Args:
        config: how calls behave.
        clock: sends the caller's frames.
        http: the process's shared HTTP client (webhooks).
        measurements: where figures go.
        first_utterance: index of the first utterance (spreads what callers say).
    """

    def __init__(
        self,
        config: SlotConfig,
        clock: FrameClock,
        http: aiohttp.ClientSession,
        measurements: Measurements,
        first_utterance: int = 0,
    ) -> None:
        self.config = config
        self._clock = clock
        self._http = http
        self._m = measurements
        self._next = first_utterance
        self._stopping = asyncio.Event()
        self._rng = random.Random(first_utterance)
        self.live = False

    def stop(self) -> None:
        """Hang up the current call (``stop``) and place no more."""
        self._stopping.set()

    async def run(self) -> None:
        """Place calls one after the other until stopped."""
        while not self._stopping.is_set():
            try:
                await self._one_call()
            except (OSError, aiohttp.ClientError, InvalidHandshake, TimeoutError, ValueError,
                    KeyError) as exc:  # fmt: skip
                self._m.calls_failed += 1
                if len(self._m.errors) < 20:
                    self._m.errors.append(f"{type(exc).__name__}: {exc}")
                # Do not hammer a server that refuses: back off a little.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._stopping.wait()

    async def _one_call(self) -> None:
        url, wire, params = await self._answer()
        ws = await connect(url, compression=None, proxy=None, open_timeout=10, max_size=2**20)
        self._m.calls_placed += 1
        call = _Call(self.config, ws, wire, self._m)
        reader = asyncio.create_task(call.read())
        for message in wire.opening(params):
            await ws.send(message)
        self._clock.add(call)
        self.live = True
        try:
            await self._converse(call)
        finally:
            self.live = False
            if call.clock_group is not None:
                call.clock_group.discard(call)
            hung_up = not call.closed.is_set()
            if hung_up:
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(wire.stop())
                with contextlib.suppress(ConnectionClosed, TimeoutError):
                    await asyncio.wait_for(ws.close(), 5.0)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(reader, 5.0)
            if not hung_up and not self._stopping.is_set():
                if call.ended_by_server or call.close_code == 1000:
                    self._m.calls_ended_by_server += 1
                else:
                    self._m.abnormal_closes += 1
                    if len(self._m.errors) < 20:
                        self._m.errors.append(f"closed with {call.close_code}")

    async def _converse(self, call: _Call) -> None:
        config = self.config
        deadline = (
            time.monotonic() + config.call_length_s if config.call_length_s is not None else None
        )
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        closed_wait = asyncio.ensure_future(call.closed.wait())
        try:
            script = asyncio.ensure_future(self._script(call, deadline))
            await asyncio.wait(
                {script, stop_wait, closed_wait}, return_when=asyncio.FIRST_COMPLETED
            )
            script.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await script
        finally:
            stop_wait.cancel()
            closed_wait.cancel()

    async def _script(self, call: _Call, deadline: float | None) -> None:
        config = self.config
        await call.wait_bot_done(config.reply_timeout_s)  # the greeting
        while deadline is None or time.monotonic() < deadline:
            await asyncio.sleep(self._rng.uniform(*config.pause_s))
            audio = config.utterances[self._next % len(config.utterances)]
            self._next += 1
            await call.turn(audio)

    async def _answer(self) -> tuple[str, GatewayWire, dict[str, str]]:
        """The answer webhook: the media URL, the wire codec and the custom parameters."""
        carrier_answer = _CARRIER_ANSWERS.get(self.config.protocol)
        if carrier_answer is not None:
            call = CarrierCall(
                self.config.http_url, str(uuid.uuid4()), "+15555551234", "+15555555678"
            )
            answer = await carrier_answer(self._http, call)
            return answer.media_url, answer.wire, answer.custom_parameters
        twilio = self.config.protocol == "twilio"
        call_id = new_twilio_sid("CA") if twilio else f"load-{secrets.token_hex(8)}"
        body = {
            "event": "call.inbound",
            "body": {"id": call_id, "from": {"phoneNumber": "+15555551234"},
                     "to": {"phoneNumber": "+15555555678"}},
        }  # fmt: skip
        async with self._http.post(
            f"{self.config.http_url}/api/voice/inbound", json=body
        ) as response:
            text = await response.text()
            if response.status != 200:
                raise ValueError(f"webhook answered HTTP {response.status}: {text[:200]}")
        media_url = json.loads(text)["media"]["url"]
        if not twilio:
            return media_url, RingCentralGatewayWire(), {}
        token = parse_qs(urlsplit(media_url).query)["token"][0]
        parts = urlsplit(media_url)
        url = urlunsplit((parts.scheme, parts.netloc, _TWILIO_WS_PATH, "", ""))
        return url, TwilioGatewayWire(call_id), {"token": token}
