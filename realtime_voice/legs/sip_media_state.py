"""The bounded queues and the counters of `RtpStream` (`legs.sip_media`).

`SendQueue` holds the frames the leg hands the stream and the marks between them: one
frame leaves per tick, and a mark is due once the frames before it have left (the
stream's playout clock is what "heard up to here" means on a SIP call). `EventQueue`
holds the inbound events for the leg: when the consumer lags, the oldest *audio* goes,
never a mark or a digit. `RtpStreamStats` is the snapshot the leg exports.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from realtime_voice.protocols.base import AudioEvent, DtmfEvent, MarkEvent

__all__ = ["Counters", "EventQueue", "RtpEvent", "RtpStreamStats", "SendQueue"]

RtpEvent = AudioEvent | DtmfEvent | MarkEvent
"""What `RtpStream.next_event` delivers: decoded caller audio, a digit, a played mark."""


@dataclass(frozen=True, slots=True)
class RtpStreamStats:
    """Counters of one `RtpStream` (the counts only grow), for logs and metrics.

    Attributes:
        packets_sent: RTP packets sent (audio, silence and DTMF).
        bytes_sent: their bytes on the wire (after SRTP).
        audio_packets_sent: packets that carried a queued frame.
        silence_packets_sent: packets of encoded silence (nothing was queued).
        dtmf_packets_sent: RFC 4733 packets sent.
        dtmf_sent: digits sent.
        send_errors: datagrams the OS refused or reported failed (ICMP unreachable).
        ticks_skipped: clock ticks this stream missed (the loop was late); their RTP
            timestamps were accounted, their frames stayed queued.
        frames_unsent_on_hold: frames consumed at playout pace while on hold, not sent.
        audio_frames_dropped: outbound frames dropped because the send queue was full.
        frames_cleared: outbound frames dropped by `RtpStream.clear`.
        packets_received: datagrams received on the socket.
        bytes_received: their bytes.
        packets_accepted: packets that passed SRTP and parsing and came from the peer.
        packets_lost: frames concealed because their packet never came (JitterStats).
        packets_late: packets that came after their frame was played or concealed.
        packets_reordered: packets that came after a later-numbered one.
        packets_duplicate: duplicates the jitter buffer dropped.
        jitter_overflow: packets dropped to keep the jitter buffer bounded.
        jitter_trimmed: frames skipped to bring the jitter buffer back to its depth.
        jitter_resets: new inbound streams (SSRC change, jump, codec change).
        srtp_auth_failures: packets whose SRTP tag did not verify (dropped).
        srtp_replays: packets SRTP dropped as replays.
        srtp_malformed: packets SRTP dropped before authentication.
        rtp_malformed: authenticated packets that are not valid RTP.
        rtcp_ignored: RTCP datagrams on the RTP port (ignored, not unprotected).
        foreign_packets: plain-RTP packets from an unknown source with a foreign PT.
        packets_before_start: datagrams that came before `RtpStream.start`.
        decode_errors: payloads the codec could not decode (concealed instead).
        audio_events_dropped: inbound audio dropped because the consumer lagged.
        frames_concealed: frames decoded as packet-loss concealment.
        dtmf_received: digits received.
        stray_dtmf_dropped: 4-byte telephone-events under the audio PT (RingCentral).
        latched_address: where we send since the peer's media came from elsewhere than
            its SDP said, or None.
        remote_address: where we send now (None before start or without an address).
    """

    packets_sent: int = 0
    bytes_sent: int = 0
    audio_packets_sent: int = 0
    silence_packets_sent: int = 0
    dtmf_packets_sent: int = 0
    dtmf_sent: int = 0
    send_errors: int = 0
    ticks_skipped: int = 0
    frames_unsent_on_hold: int = 0
    audio_frames_dropped: int = 0
    frames_cleared: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    packets_accepted: int = 0
    packets_lost: int = 0
    packets_late: int = 0
    packets_reordered: int = 0
    packets_duplicate: int = 0
    jitter_overflow: int = 0
    jitter_trimmed: int = 0
    jitter_resets: int = 0
    srtp_auth_failures: int = 0
    srtp_replays: int = 0
    srtp_malformed: int = 0
    rtp_malformed: int = 0
    rtcp_ignored: int = 0
    foreign_packets: int = 0
    packets_before_start: int = 0
    decode_errors: int = 0
    audio_events_dropped: int = 0
    frames_concealed: int = 0
    dtmf_received: int = 0
    stray_dtmf_dropped: int = 0
    latched_address: tuple[str, int] | None = None
    remote_address: tuple[str, int] | None = None


@dataclass(slots=True)
class Counters:
    """What `RtpStream` counts itself (same names and meaning as in `RtpStreamStats`)."""

    packets_sent: int = 0
    bytes_sent: int = 0
    audio_packets_sent: int = 0
    silence_packets_sent: int = 0
    dtmf_packets_sent: int = 0
    dtmf_sent: int = 0
    send_errors: int = 0
    ticks_skipped: int = 0
    frames_unsent_on_hold: int = 0
    frames_cleared: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    packets_accepted: int = 0
    packets_reordered: int = 0
    rtp_malformed: int = 0
    rtcp_ignored: int = 0
    foreign_packets: int = 0
    packets_before_start: int = 0
    frames_concealed: int = 0
    dtmf_received: int = 0


class SendQueue:
    """Outbound frames and the marks between them, bounded by frame count.

    Args:
        max_frames: frames held at most; beyond it the oldest frame is dropped.
    """

    def __init__(self, max_frames: int) -> None:
        self._max = max(1, max_frames)
        self._items: deque[bytes | str] = deque()  # bytes: a frame; str: a mark name
        self._frames = 0
        self.dropped = 0

    @property
    def frames(self) -> int:
        """Frames queued."""
        return self._frames

    def put_frame(self, frame: bytes) -> list[str]:
        """Queue one frame.

        Returns:
            Marks now due because an overflow dropped the frames before them.
        """
        self._items.append(frame)
        self._frames += 1
        due: list[str] = []
        while self._frames > self._max:
            # The oldest audio is the least useful: the caller is waiting on the newest.
            item = self._items.popleft()
            if isinstance(item, bytes):
                self._frames -= 1
                self.dropped += 1
            else:
                due.append(item)
            due.extend(self._due_marks())
        return due

    def put_mark(self, name: str) -> bool:
        """Queue a mark behind the frames queued now.

        Returns:
            True when no frame is queued: the mark is due at once.
        """
        if self._frames == 0:
            return True
        self._items.append(name)
        return False

    def pop_frame(self) -> tuple[bytes | None, list[str]]:
        """The next frame to send, and the marks due once it has gone."""
        due = self._due_marks()
        if not self._frames:
            return None, due
        item = self._items.popleft()
        assert isinstance(item, bytes)  # _due_marks left a frame at the head
        self._frames -= 1
        due.extend(self._due_marks())
        return item, due

    def clear(self) -> tuple[int, list[str]]:
        """Drop every frame.

        Returns:
            The frames dropped and the marks that were pending, in order.
        """
        dropped = self._frames
        marks = [item for item in self._items if isinstance(item, str)]
        self._items.clear()
        self._frames = 0
        return dropped, marks

    def _due_marks(self) -> list[str]:
        due: list[str] = []
        while self._items and isinstance(self._items[0], str):
            due.append(self._items.popleft())  # type: ignore[arg-type]
        return due


class EventQueue:
    """Inbound events for one consumer; the oldest audio goes first when it lags.

    Args:
        max_audio: audio events held at most (50 are one second).
        max_other: marks and digits held at most (a safety net: none is dropped unless
            the consumer has stopped reading altogether).
    """

    def __init__(self, max_audio: int = 250, max_other: int = 1000) -> None:
        self._items: deque[RtpEvent] = deque()
        self._audio = 0
        self._max_audio = max_audio
        self._max_other = max_other
        self._wakeup = asyncio.Event()
        self._closed = False
        self.audio_dropped = 0
        self.other_dropped = 0

    def put(self, event: RtpEvent) -> None:
        """Queue one event (ignored once closed)."""
        if self._closed:
            return
        if isinstance(event, AudioEvent):
            if self._audio >= self._max_audio:
                self._drop_oldest_audio()
            self._audio += 1
        elif len(self._items) - self._audio >= self._max_other:
            self.other_dropped += 1
            return
        self._items.append(event)
        self._wakeup.set()

    def _drop_oldest_audio(self) -> None:
        for index, item in enumerate(self._items):
            if isinstance(item, AudioEvent):
                del self._items[index]
                self._audio -= 1
                self.audio_dropped += 1
                return

    async def get(self) -> RtpEvent | None:
        """The next event, waiting for one; None once closed."""
        while not self._items:
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._closed:
            return None
        event = self._items.popleft()
        if isinstance(event, AudioEvent):
            self._audio -= 1
        return event

    def close(self) -> None:
        """Wake the consumer; `get` returns None from now on."""
        self._closed = True
        self._items.clear()
        self._audio = 0
        self._wakeup.set()
