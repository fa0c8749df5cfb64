"""RFC 4733 telephone-events: the 4-byte payload, a receiver that yields digits, a sender.

Payload (RFC 4733 §2.3)::

    event (8) | E (1) R (1) volume (6) | duration (16)

One event is sent as a run of packets that all carry the event's *start* timestamp: the
first with the marker bit, then updates whose duration grows, then the end packet (E
bit) sent three times with the same final duration. `DtmfReceiver` turns such runs into
each digit exactly once, whatever the network does to them: retransmitted end packets
and duplicates share the timestamp and are ignored; an event whose end packets were all
lost is ended by the next event or by a timeout on an injected clock.

RingCentral quirk (its softphone SDK does the same): 4-byte payloads that look like a
telephone-event arrive under the *audio* payload type too. Decoding them as audio gives
a click (PCMU) or a decoder error (Opus), so `DtmfReceiver.feed` drops them; the real
event arrives under the telephone-event payload type.

`dtmf_packets` is the sender: a sans-I/O generator with one packet per 20 ms tick, so the
leg sends them on its frame clock (``RtpSequencer.next_other``, then ``skip`` for the
audio clock).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from realtime_voice.rtp.packet import RtpPacket

__all__ = [
    "DIGITS",
    "DtmfDigit",
    "DtmfError",
    "DtmfInput",
    "DtmfPacket",
    "DtmfReceiver",
    "DtmfStats",
    "TelephoneEvent",
    "dtmf_packets",
    "is_stray_telephone_event",
]

DIGITS = "0123456789*#ABCD"
"""DTMF digits in event-code order: events 0-15 (RFC 4733 §3.2)."""

_FLASH = 16
_EVENT_SIZE = 4
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_HALF = 1 << 31
_END_REPEATS = 3  # RFC 4733 §2.5.1.4: the end packet is sent three times.


class DtmfError(ValueError):
    """A payload is not a telephone-event, or an event's fields are out of range."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 telephone-event payload.

    Attributes:
        event: event code, 0-255 (0-15 are DTMF digits, 16 is flash).
        end: the E bit: this is (a repeat of) the event's last packet.
        volume: power level in -dBm0, 0-63.
        duration: length so far, in RTP timestamp units, 0-65535.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise DtmfError(f"event {self.event} outside 0-255")
        if not 0 <= self.volume <= 63:
            raise DtmfError(f"volume {self.volume} outside 0-63")
        if not 0 <= self.duration <= _U16:
            raise DtmfError(f"duration {self.duration} outside 16 bits")

    @property
    def digit(self) -> str | None:
        """The DTMF digit for events 0-15, else None."""
        return DIGITS[self.event] if self.event < len(DIGITS) else None

    def to_bytes(self) -> bytes:
        """The 4-byte payload (the reserved bit is sent as zero).

        Returns:
            event, E|R|volume, duration (network order).
        """
        flags = (0x80 if self.end else 0) | self.volume
        return bytes((self.event, flags, self.duration >> 8, self.duration & 0xFF))

    @classmethod
    def from_bytes(cls, payload: bytes | bytearray | memoryview) -> TelephoneEvent:
        """Decode a telephone-event payload.

        A payload of several 4-byte blocks (RFC 4733 §2.5.1.5 lets a packet repeat the
        end of earlier events before the current one) decodes to its last block.

        Args:
            payload: the RTP payload.

        Returns:
            The event (the reserved bit is ignored, as RFC 4733 asks of receivers).

        Raises:
            DtmfError: the payload is empty or not a whole number of 4-byte blocks.
        """
        size = len(payload)
        if size == 0 or size % _EVENT_SIZE:
            raise DtmfError(f"telephone-event payload of {size} bytes (expected 4)")
        block = bytes(payload[size - _EVENT_SIZE :])
        return cls(
            event=block[0],
            end=bool(block[1] & 0x80),
            volume=block[1] & 0x3F,
            duration=(block[2] << 8) | block[3],
        )


def is_stray_telephone_event(payload: bytes | bytearray | memoryview) -> bool:
    """Whether an *audio* payload is really a telephone-event (the RingCentral quirk).

    RingCentral's SDK matches an exact shape (digits 0-11, E bit, volume 10, duration
    960); this accepts any 4-byte payload with a DTMF or flash event code and the
    reserved bit clear, so a change of volume or duration on their side still matches.
    No 20 ms audio frame is 4 bytes in PCMU; an Opus packet that small is a frame of
    silence, and dropping it only makes the decoder conceal 20 ms.

    Args:
        payload: an RTP payload received under the audio payload type.

    Returns:
        True when the payload should be dropped rather than decoded.
    """
    return len(payload) == _EVENT_SIZE and payload[0] <= _FLASH and not payload[1] & 0x40


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A digit the peer pressed.

    Attributes:
        digit: one of `DIGITS`.
        duration_ms: how long it was held, from the last duration seen (0 if unknown).
        ended_by: "end" (an end packet), "next" (the next event began) or "timeout".
    """

    digit: str
    duration_ms: int
    ended_by: str


@dataclass(frozen=True, slots=True)
class DtmfInput:
    """What `DtmfReceiver.feed` made of one packet.

    Attributes:
        audio: the packet is audio for the codec (otherwise it was an event, a stray
            event under the audio type, or a payload type we do not decode).
        digits: digits completed by this packet, in order (usually none or one).
    """

    audio: bool
    digits: tuple[DtmfDigit, ...] = ()


@dataclass(slots=True)
class DtmfStats:
    """Counters of one `DtmfReceiver` (they only grow).

    Attributes:
        events: telephone-event packets accepted (all packets of an event count).
        digits: digits emitted.
        repeats: packets of an event already ended (end retransmissions, duplicates).
        stale: packets of an event older than the current one (reordered past it).
        stray_audio_events: 4-byte events under the audio payload type, dropped.
        malformed: payloads under the event type that do not decode.
        other_events: valid events that are not DTMF digits (flash, tones), ignored.
        other_payload_types: packets of neither the audio nor the event type.
        timeouts: events ended by the timeout because no end packet arrived.
    """

    events: int = 0
    digits: int = 0
    repeats: int = 0
    stale: int = 0
    stray_audio_events: int = 0
    malformed: int = 0
    other_events: int = 0
    other_payload_types: int = 0
    timeouts: int = 0


@dataclass(slots=True)
class _Current:
    ssrc: int
    timestamp: int
    digit: str | None
    duration: int
    last_seen: float


class DtmfReceiver:
    """Turns the received packet stream into DTMF digits, each exactly once.

    Feed it every packet after SRTP unprotect; it says whether the packet is audio for
    the codec, and which digits ended. Call `poll` on the frame clock so that a digit
    whose end packets were all lost still comes out after ``end_timeout_s``.

    Args:
        event_payload_type: the ``telephone-event`` payload type from SDP (often 101).
        audio_payload_type: the audio payload type from SDP.
        clock_rate: the telephone-event clock (8000 unless SDP says otherwise).
        end_timeout_s: silence after an event's last packet that ends it. Updates come
            every 50 ms or faster (RFC 4733 §2.5.1.2), so 0.5 s allows for jitter.
        clock: monotonic seconds (injectable for tests).
        remember: ended events kept for de-duplication (by SSRC and timestamp).
    """

    def __init__(
        self,
        event_payload_type: int,
        audio_payload_type: int,
        *,
        clock_rate: int = 8000,
        end_timeout_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        remember: int = 16,
    ) -> None:
        self._event_pt = event_payload_type
        self._audio_pt = audio_payload_type
        self._clock_rate = clock_rate
        self._timeout = end_timeout_s
        self._clock = clock
        self._ended: deque[tuple[int, int]] = deque(maxlen=remember)
        self._current: _Current | None = None
        self.stats = DtmfStats()

    def feed(self, packet: RtpPacket) -> DtmfInput:
        """Take one received packet.

        Args:
            packet: a parsed RTP packet.

        Returns:
            Whether it is audio to decode, and the digits it (or the timeout it
            triggered) completed.
        """
        digits = self._check_timeout()
        if packet.payload_type == self._audio_pt:
            if is_stray_telephone_event(packet.payload):
                self.stats.stray_audio_events += 1
                return DtmfInput(audio=False, digits=digits)
            return DtmfInput(audio=True, digits=digits)
        if packet.payload_type != self._event_pt:
            self.stats.other_payload_types += 1
            return DtmfInput(audio=False, digits=digits)
        try:
            event = TelephoneEvent.from_bytes(packet.payload)
        except DtmfError:
            self.stats.malformed += 1
            return DtmfInput(audio=False, digits=digits)
        return DtmfInput(audio=False, digits=digits + self._on_event(packet, event))

    def poll(self) -> tuple[DtmfDigit, ...]:
        """End the current event if it has been silent for ``end_timeout_s``.

        Returns:
            The digit so ended, if any.
        """
        return self._check_timeout()

    def _check_timeout(self) -> tuple[DtmfDigit, ...]:
        current = self._current
        if current is None or self._clock() - current.last_seen < self._timeout:
            return ()
        self.stats.timeouts += 1
        return self._finish("timeout")

    def _on_event(self, packet: RtpPacket, event: TelephoneEvent) -> tuple[DtmfDigit, ...]:
        key = (packet.ssrc, packet.timestamp)
        if key in self._ended:
            self.stats.repeats += 1
            return ()
        out: tuple[DtmfDigit, ...] = ()
        current = self._current
        if current is not None and (current.ssrc, current.timestamp) != key:
            if current.ssrc == packet.ssrc and _before(packet.timestamp, current.timestamp):
                # A straggler from before the event in progress: it cannot be newer news.
                self.stats.stale += 1
                return ()
            out = self._finish("next")
            current = None
        self.stats.events += 1
        if event.digit is None:
            self.stats.other_events += 1
        if current is None:
            current = _Current(packet.ssrc, packet.timestamp, event.digit, 0, 0.0)
            self._current = current
        current.duration = max(current.duration, event.duration)
        current.last_seen = self._clock()
        if event.end:
            out += self._finish("end")
        return out

    def _finish(self, ended_by: str) -> tuple[DtmfDigit, ...]:
        current = self._current
        self._current = None
        if current is None:
            return ()
        self._ended.append((current.ssrc, current.timestamp))
        if current.digit is None:
            return ()
        self.stats.digits += 1
        duration_ms = current.duration * 1000 // self._clock_rate
        return (DtmfDigit(current.digit, duration_ms, ended_by),)


def _before(a: int, b: int) -> bool:
    """Whether 32-bit timestamp ``a`` is earlier than ``b`` (serial-number arithmetic)."""
    return a != b and ((b - a) & _U32) < _HALF


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """One packet of an outbound event, for one 20 ms tick.

    Attributes:
        payload: the 4-byte telephone-event payload.
        marker: set on the event's first packet.
        timestamp: the event's start timestamp (the same on every packet of it).
        end: the E bit (the last three packets).
    """

    payload: bytes
    marker: bool
    timestamp: int
    end: bool


def dtmf_packets(
    digit: str,
    *,
    timestamp: int,
    clock_rate: int = 8000,
    duration_ms: int = 100,
    volume: int = 10,
    ptime_ms: int = 20,
) -> Iterator[DtmfPacket]:
    """The packets of one digit, one per ``ptime_ms`` tick.

    The first packet has the marker; each update's duration grows by one packet
    interval; once it reaches ``duration_ms`` the end packet goes out three times with
    that same duration (RFC 4733 §2.5.1.4), one per tick. A 100 ms digit at 20 ms
    takes 7 ticks: 4 updates (20-80 ms) and 3 end packets (100 ms).

    Args:
        digit: one of `DIGITS` (lower-case a-d accepted).
        timestamp: the event's start timestamp: the audio stream's
            ``RtpSequencer.next_timestamp`` at the tick the digit starts.
        clock_rate: the telephone-event clock (its rtpmap; 8000 unless SDP says other).
        duration_ms: how long the digit is held (RingCentral's SDK sends 100 ms).
        volume: power level in -dBm0 (0-63).
        ptime_ms: tick length.

    Yields:
        One `DtmfPacket` per tick; stop sending audio packets while they last (move the
        audio clock on with ``RtpSequencer.skip`` for each tick instead).

    Raises:
        DtmfError: an unknown digit, or a duration that does not fit 16 bits of the
            clock (about 8 s at 8 kHz) or is shorter than one tick.
    """
    code = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise DtmfError(f"{digit!r} is not a DTMF digit (expected one of {DIGITS})")
    step = clock_rate * ptime_ms // 1000
    total = clock_rate * duration_ms // 1000
    if not step <= total <= _U16:
        raise DtmfError(f"duration {duration_ms} ms does not fit at {clock_rate} Hz")
    ts = timestamp & _U32
    # Validate volume once, before the first packet goes out.
    TelephoneEvent(code, volume=volume)
    elapsed = step
    first = True
    while elapsed < total:
        payload = TelephoneEvent(code, False, volume, elapsed).to_bytes()
        yield DtmfPacket(payload, first, ts, end=False)
        first = False
        elapsed += step
    end_payload = TelephoneEvent(code, True, volume, total).to_bytes()
    for _ in range(_END_REPEATS):
        yield DtmfPacket(end_payload, first, ts, end=True)
        first = False
