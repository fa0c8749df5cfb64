"""`WebSocketLeg`: a call leg over a gateway WebSocket, speaking one `MediaProtocol` codec.

Both WebSocket carriers (our RingCentral media bridge, Twilio Media Streams) are this one
leg: the codec turns messages into events and events into messages; the leg does the
I/O. It owns the receive loop, the answer to a malformed message (the codec's error
frame), the inactivity watchdog, and the platform side of transfer and hang-up
(RingCentral Call Control, when configured and the call is known), so that escalation
really hands the caller over even on a gateway that cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from typing import Final, Protocol

from ai_pipeline.responder import TransferTarget
from realtime_voice.audio.format import AudioFormat
from realtime_voice.legs.base import (
    CLOSE_NORMAL,
    LegListener,
    PlatformCallControl,
    PlatformControlError,
)
from realtime_voice.protocols.base import MediaEvent, MediaProtocol, ProtocolError

__all__ = ["MessageSocket", "PlatformCallControl", "WebSocketLeg"]

log = logging.getLogger(__name__)

_GATEWAY_LEAD_MS: Final = 60
# Audio a gateway may hold ahead of real time: enough to ride out a scheduling hiccup,
# little enough that a ``clear`` leaves no audible tail (docs/PROTOCOLS.md §2).
_PLATFORM_TIMEOUT_S: Final = 15.0


class MessageSocket(Protocol):
    """The part of a `websockets` connection the leg uses (a test can hand in its own)."""

    @property
    def close_code(self) -> int | None:
        """The close code once the connection closed."""
        ...

    def send(self, message: str | bytes) -> Awaitable[None]:
        """Send one message."""
        ...

    def close(self, code: int = 1000, reason: str = "") -> Awaitable[None]:
        """Close the connection."""
        ...

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Messages until the connection closes."""
        ...


class WebSocketLeg:
    """One call over a gateway WebSocket.

    Args:
        socket: the accepted connection.
        codec: the call's wire protocol (pure; one instance per call).
        call_id: the gateway's call id (platform requests name it).
        inactivity_timeout_s: nothing received this long means the far end is gone.
        platform: asked to transfer/hang up too, when configured.
        first_events: events the server already parsed during the handshake (Twilio's
            ``start``), delivered before anything else.
    """

    def __init__(
        self,
        socket: MessageSocket,
        codec: MediaProtocol,
        *,
        call_id: str,
        inactivity_timeout_s: float,
        platform: PlatformCallControl | None = None,
        first_events: Sequence[MediaEvent] = (),
    ) -> None:
        self._socket = socket
        self._codec = codec
        self._call_id = call_id
        self._timeout_s = inactivity_timeout_s
        self._platform = platform
        self._first_events = list(first_events)
        self._platform_task: asyncio.Task[bool] | None = None
        self._closed = False

    @property
    def name(self) -> str:
        """The codec's name: ``ringcentral`` or ``twilio``."""
        return self._codec.name

    @property
    def audio_format(self) -> AudioFormat:
        """The call's current wire format (the codec follows ``start``/``config``)."""
        return self._codec.audio_format

    @property
    def playout_lead_ms(self) -> int:
        """The gateway is fed up to 60 ms ahead of real time."""
        return _GATEWAY_LEAD_MS

    # -- outbound ---------------------------------------------------------------------
    # These return the socket's own awaitable rather than wrapping it in a coroutine:
    # send_audio runs 50 times a second per call.

    def send_audio(self, frame: bytes) -> Awaitable[None]:
        """One frame of bot audio."""
        return self._socket.send(self._codec.format_audio(frame))

    def send_mark(self, name: str) -> Awaitable[None]:
        """A mark the gateway echoes once the audio before it has played."""
        return self._socket.send(self._codec.format_mark(name))

    def clear(self) -> Awaitable[None]:
        """Tell the gateway to drop all queued bot audio now."""
        return self._socket.send(self._codec.format_clear())

    async def send_error(self, code: str, message: str) -> None:
        """An error frame, where the protocol has one (Twilio has none)."""
        frame = self._codec.format_error(code, message)
        if frame is not None:
            await self._socket.send(frame)

    async def transfer(self, target: TransferTarget) -> None:
        """Ask the platform (if any) and the gateway (if it can) to hand the caller over."""
        if self._platform is not None:
            self._start_platform(self._platform.transfer(self._call_id, target))
        frame = self._codec.format_transfer(target.as_wire())
        if frame is not None:
            await self._socket.send(frame)

    async def hang_up(self, reason: str) -> None:
        """Ask the platform (if any) and the gateway (if it can) to end the call."""
        if self._platform is not None:
            self._start_platform(self._platform.hangup(self._call_id))
        frame = self._codec.format_hangup(reason)
        if frame is not None:
            await self._socket.send(frame)

    def _start_platform(self, request: Coroutine[object, object, bool]) -> None:
        # A task of its own that `close` waits for rather than cancels: the gateway may
        # close the socket the moment it sees the transfer frame.
        self._platform_task = asyncio.get_running_loop().create_task(request, name="platform")

    # -- inbound ----------------------------------------------------------------------

    async def run(self, listener: LegListener) -> None:
        """Parse and deliver messages until the socket closes or the call ends.

        A watchdog task (one timer per call, not a timeout per message: this loop runs
        every 20 ms) tells the listener when nothing has arrived for the timeout.
        """
        for event in self._first_events:
            await listener.handle(event)
        self._first_events.clear()
        last_activity = time.monotonic()
        timeout = self._timeout_s

        async def watchdog() -> None:
            while True:
                await asyncio.sleep(min(1.0, timeout / 4))
                idle = time.monotonic() - last_activity
                if idle > timeout:
                    log.warning("no audio or message for %.0f s: ending the call", timeout)
                    listener.on_inactive(idle)
                    return

        dog = asyncio.get_running_loop().create_task(watchdog(), name="watchdog")
        try:
            async for message in self._socket:
                last_activity = time.monotonic()
                try:
                    events = self._codec.parse(message)
                except ProtocolError as exc:
                    await listener.on_rejected(exc)
                    continue
                for event in events:
                    await listener.handle(event)
                if listener.is_ended:
                    break
        finally:
            dog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dog

    def disconnect_reason(self) -> str:
        """``caller_disconnected`` for a clean close, else ``connection_lost_<code>``."""
        code = self._socket.close_code
        if code in (None, CLOSE_NORMAL, 1001):
            return "caller_disconnected"
        return f"connection_lost_{code}"

    # -- the end ----------------------------------------------------------------------

    async def close(self, reason: str, *, code: int = CLOSE_NORMAL) -> bool | None:
        """Wait (≤ 15 s) for a platform request in flight, then close the socket."""
        if self._closed:
            return None
        self._closed = True
        try:
            return await self._platform_result()
        finally:
            with contextlib.suppress(Exception):
                await self._socket.close(code, reason[:120])

    async def _platform_result(self) -> bool | None:
        task = self._platform_task
        if task is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(task), _PLATFORM_TIMEOUT_S)
        except Exception as exc:
            raise PlatformControlError(f"platform call control did not finish: {exc!r}") from exc
