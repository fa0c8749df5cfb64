"""`SipLeg`: a call leg over a SIP dialog and its RTP stream (the RingCentral softphone).

The session sees the same `CallLeg` as for a WebSocket carrier. Inbound, the leg starts
the call with a `StartEvent` (the SIP Call-ID, caller and callee as parameters, and the
wire format: PCM16 at 16 kHz, what `RtpStream` decodes every codec to), then delivers the
stream's decoded audio, DTMF digits and marks, and a `StopEvent` when the far end hangs
up (BYE). Outbound, frames and marks go to the stream, which sends them on the shared
20 ms clock: "heard up to here" is its local playout clock. A barge-in flushes its
send queue. Transfer is a REFER (blind, RFC 3515), hang-up a BYE.

Media changes the peer asks for in a re-INVITE or UPDATE (hold, a new key, a new
address) reach the stream through `SipCall.on_media` while the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping
from typing import Final

from ai_pipeline.responder import TransferTarget
from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.legs.base import (
    CLOSE_NORMAL,
    LegListener,
    PlatformCallControl,
    PlatformControlError,
)
from realtime_voice.legs.sip_media import RtpStream
from realtime_voice.protocols.base import StartEvent, StopEvent
from realtime_voice.sip.call import MediaUpdate, SipCall, TransferOutcome

__all__ = ["SIP_AUDIO_FORMAT", "SipLeg"]

log = logging.getLogger(__name__)

SIP_AUDIO_FORMAT: Final = AudioFormat(AudioEncoding.PCM16, 16000)
"""What a SIP leg hands the session and takes from it, whatever the RTP codec."""

_LEAD_MS: Final = 40
# The stream sends one queued frame per tick: two frames ahead keep a tick from finding
# the queue empty after a scheduling hiccup, and leave a clear with almost no tail.
_CLOSE_TIMEOUT_S: Final = 15.0


class SipLeg:
    """One SIP call as a `CallLeg`.

    Args:
        call: the established dialog.
        stream: its RTP stream, already started.
        transfer_domain: the host for transfer targets (``sip:<number>@<domain>``).
        parameters: custom parameters for the conversation (flow, persona...).
        media_timeout_s: no RTP at all this long means the far end is gone.
        platform: RingCentral Call Control: a transfer goes through it when the call's
            telephony session is known (joined by ``sipData.callId``), else by REFER.
    """

    def __init__(self, call: SipCall, stream: RtpStream, *, transfer_domain: str,
                 parameters: Mapping[str, str] | None = None,
                 media_timeout_s: float = 30.0,
                 platform: PlatformCallControl | None = None) -> None:
        self._call = call
        self._platform = platform
        self._stream = stream
        self._domain = transfer_domain
        self._parameters = dict(parameters or {})
        self._media_timeout_s = media_timeout_s
        self._request: asyncio.Task[bool] | None = None
        self._closed = False
        self._done: asyncio.Future[None] | None = None
        self.transfer_outcome: TransferOutcome | None = None
        call.on_media = self._on_media
        call.on_ended = self._on_ended
        if call.ended.is_set():  # a BYE raced the leg's making
            stream.end_events()

    @property
    def name(self) -> str:
        """``sip``."""
        return "sip"

    @property
    def call(self) -> SipCall:
        """The SIP dialog."""
        return self._call

    @property
    def audio_format(self) -> AudioFormat:
        """PCM16 at 16 kHz, both directions."""
        return SIP_AUDIO_FORMAT

    @property
    def playout_lead_ms(self) -> int:
        """The stream is fed up to two frames ahead of its clock."""
        return _LEAD_MS

    def _completed(self) -> Awaitable[None]:
        # The stream's calls never block: one finished future serves every await.
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            self._done.set_result(None)
        return self._done

    def send_audio(self, frame: bytes) -> Awaitable[None]:
        """Queue one 20 ms PCM16 frame on the stream."""
        self._stream.send_audio(frame)
        return self._completed()

    def send_mark(self, name: str) -> Awaitable[None]:
        """A mark the stream reports once the audio before it has gone out."""
        self._stream.send_mark(name)
        return self._completed()

    def clear(self) -> Awaitable[None]:
        """Barge-in: drop the stream's queued audio (its pending marks come back)."""
        self._stream.clear()
        return self._completed()

    async def send_error(self, code: str, message: str) -> None:
        """SIP has no in-call error message: logged only."""
        log.warning("call %s: %s: %s", self._call.call_id, code, message)

    def send_dtmf(self, digits: str) -> None:
        """Send RFC 4733 digits to the far end (an IVR behind a transfer, say)."""
        for digit in digits:
            self._stream.send_dtmf(digit)

    def transfer_uri(self, target: TransferTarget) -> str:
        """The SIP URI a transfer target becomes."""
        number = target.phone_number or target.extension_number or ""
        return f"sip:{number}@{self._domain}"

    async def transfer(self, target: TransferTarget) -> None:
        """Blind transfer: RingCentral Call Control when it knows the call, else REFER;
        `close` waits for the outcome (bounded)."""
        uri = self.transfer_uri(target)
        call_id = self._call.call_id

        async def refer() -> bool:
            if self._platform is not None and await self._platform.transfer(call_id, target):
                self.transfer_outcome = TransferOutcome(
                    True, None, "RingCentral Call Control transferred the caller")
                return True
            outcome = await self._call.transfer(uri)
            self.transfer_outcome = outcome
            log.info("call %s: transfer to %s: %s", self._call.call_id, uri, outcome.detail)
            return outcome.accepted

        self._request = asyncio.get_running_loop().create_task(refer(), name="sip-refer")

    async def hang_up(self, reason: str) -> None:
        """End the call with a BYE (sent when the leg closes, after the last words)."""

        async def bye() -> bool:
            await self._call.hang_up(reason)
            return True

        if self._request is None:
            self._request = asyncio.get_running_loop().create_task(bye(), name="sip-bye")

    async def run(self, listener: LegListener) -> None:
        """Deliver the start, then media events, until the far end goes or the call ends."""
        call = self._call
        await listener.handle(StartEvent(
            custom_parameters={**self._parameters, "sip_call_id": call.call_id},
            call_id=call.call_id, audio_format=SIP_AUDIO_FORMAT))
        watchdog = asyncio.ensure_future(self._watch_media(listener))
        try:
            # One await per event, no task per frame: the dialog's end (a BYE) ends the
            # stream's events (`_on_ended`), which is how this loop hears of it.
            while not listener.is_ended:
                event = await self._stream.next_event()
                if event is None:
                    if call.ended.is_set() and not listener.is_ended:
                        await listener.handle(StopEvent())
                    return
                await listener.handle(event)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _watch_media(self, listener: LegListener) -> None:
        timeout = self._media_timeout_s
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            idle = self._stream.idle_s()
            if idle > timeout:
                log.warning("call %s: no RTP for %.0f s: ending the call",
                            self._call.call_id, idle)
                listener.on_inactive(idle)
                return

    def disconnect_reason(self) -> str:
        """``caller_disconnected`` after a BYE, else why the dialog ended."""
        reason = self._call.end_reason
        if reason in (None, "remote_bye"):
            return "caller_disconnected"
        return reason

    def _on_ended(self, reason: str) -> None:
        self._stream.end_events()

    def _on_media(self, update: MediaUpdate) -> None:
        self._stream.update(update.media)

    async def close(self, reason: str, *, code: int = CLOSE_NORMAL) -> bool | None:
        """Finish a REFER or BYE in flight (bounded), BYE if the call is still up, and
        close the stream."""
        if self._closed:
            return None
        self._closed = True
        try:
            return await self._request_result()
        finally:
            if not self._call.ended.is_set():
                with contextlib.suppress(Exception):
                    await self._call.hang_up(reason)
            await self._stream.close()
            await self._call.close()

    async def _request_result(self) -> bool | None:
        task = self._request
        if task is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(task), _CLOSE_TIMEOUT_S)
        except Exception as exc:
            raise PlatformControlError(f"SIP transfer/hang-up did not finish: {exc!r}") from exc
