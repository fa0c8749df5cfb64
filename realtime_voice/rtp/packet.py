"""RTP packets (RFC 3550 §5.1): parse and build, and the sequencer of our sending side.

`parse_rtp` reads everything a peer may put in the fixed header and its optional parts
(CSRC list, one header extension, padding) and raises one exception type, `RtpError`,
whose message names what is wrong; nothing else escapes for any input. `RtpPacket.to_bytes`
writes the inverse (never padding: we have no block cipher to pad for, and SRTP does
not need it).

`RtpSequencer` numbers our outbound stream: one SSRC, a sequence number that steps by one
per packet and an RTP timestamp that steps by the codec clock per 20 ms frame (160 at
8 kHz PCMU, 320 for RingCentral's ``OPUS/16000``, 960 for ``opus/48000/2``). DTMF events
share the stream's SSRC and sequence space but carry their own timestamp (RFC 4733), so
the sequencer hands out sequence numbers for them without moving the audio clock.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpError",
    "RtpPacket",
    "RtpSequencer",
    "looks_like_rtcp",
    "parse_rtp",
    "timestamp_step",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
"""Bytes in the fixed header, before any CSRC or extension."""

_FIXED = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_MAX_CSRC = 15
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


class RtpError(ValueError):
    """A datagram is not a valid RTP packet, or a packet's fields do not fit the header."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet, header fields decoded.

    Attributes:
        payload_type: 0-127 (PCMU is 0; Opus and telephone-event are dynamic, 96-127).
        sequence: 16-bit sequence number.
        timestamp: 32-bit RTP timestamp in the payload's clock.
        ssrc: 32-bit synchronisation source.
        payload: the payload, padding removed.
        marker: the M bit (first packet of a talkspurt; first packet of a DTMF event).
        csrcs: contributing sources, at most 15.
        extension_profile: the 16-bit "defined by profile" word when the packet carries
            a header extension, else None.
        extension: the extension's data (a multiple of 4 bytes), empty without one.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""

    def __post_init__(self) -> None:
        # Checked here so that a bad field fails where it was made, not at send time.
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type {self.payload_type} outside 0-127")
        if not 0 <= self.sequence <= _U16:
            raise RtpError(f"sequence number {self.sequence} outside 16 bits")
        if not 0 <= self.timestamp <= _U32:
            raise RtpError(f"timestamp {self.timestamp} outside 32 bits")
        if not 0 <= self.ssrc <= _U32:
            raise RtpError(f"SSRC {self.ssrc} outside 32 bits")
        if len(self.csrcs) > _MAX_CSRC or any(not 0 <= c <= _U32 for c in self.csrcs):
            raise RtpError(f"CSRC list {self.csrcs!r}: at most 15 values of 32 bits")
        if self.extension_profile is None:
            if self.extension:
                raise RtpError("extension data without an extension profile")
        elif not 0 <= self.extension_profile <= _U16:
            raise RtpError(f"extension profile {self.extension_profile} outside 16 bits")
        elif len(self.extension) % 4 or len(self.extension) > 4 * _U16:
            raise RtpError(f"extension of {len(self.extension)} bytes is not whole words")

    def to_bytes(self) -> bytes:
        """Serialise the packet (no padding).

        Returns:
            The wire bytes: fixed header, CSRCs, extension, payload.
        """
        has_ext = self.extension_profile is not None
        first = (RTP_VERSION << 6) | (0x10 if has_ext else 0) | len(self.csrcs)
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_FIXED.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension_profile is not None:
            parts.append(_EXT_HEADER.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        return b"".join(parts)


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Parse one RTP datagram.

    Args:
        data: the datagram (after SRTP unprotect, on a secure call).

    Returns:
        The packet, with padding stripped and any header extension kept apart.

    Raises:
        RtpError: the datagram is shorter than its header says, is not version 2, or
            its padding count is 0 or larger than what follows the header.
    """
    raw = bytes(data)
    if len(raw) < RTP_HEADER_SIZE:
        raise RtpError(f"{len(raw)} bytes is shorter than the 12-byte RTP header")
    first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(raw)
    version = first >> 6
    if version != RTP_VERSION:
        raise RtpError(f"RTP version {version} (expected 2)")
    offset = RTP_HEADER_SIZE
    csrc_count = first & 0x0F
    end_csrc = offset + 4 * csrc_count
    if len(raw) < end_csrc:
        raise RtpError(f"{len(raw)} bytes cannot hold the {csrc_count} CSRCs the header lists")
    csrcs = struct.unpack_from(f"!{csrc_count}I", raw, offset) if csrc_count else ()
    offset = end_csrc
    extension_profile: int | None = None
    extension = b""
    if first & 0x10:
        if len(raw) < offset + 4:
            raise RtpError("header extension flag set but no extension header follows")
        extension_profile, words = _EXT_HEADER.unpack_from(raw, offset)
        offset += 4
        if len(raw) < offset + 4 * words:
            raise RtpError(f"header extension of {words} words runs past the packet")
        extension = raw[offset : offset + 4 * words]
        offset += 4 * words
    end = len(raw)
    if first & 0x20:
        # The last byte counts the padding bytes, itself included (RFC 3550 §5.1).
        pad = raw[-1] if end > offset else 0
        if pad == 0 or pad > end - offset:
            raise RtpError(f"padding count {pad} does not fit the {end - offset}-byte payload")
        end -= pad
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=raw[offset:end],
        marker=bool(second & 0x80),
        csrcs=tuple(csrcs),
        extension_profile=extension_profile,
        extension=extension,
    )


def looks_like_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """Whether a datagram on the RTP port is RTCP (RFC 5761 §4 demultiplexing).

    A peer that muxes RTCP onto the RTP port sends packet types 200-206 there; read as
    RTP they are payload types 72-78 with the marker set. Telling them apart before
    SRTP unprotect keeps them out of the authentication-failure count.

    Args:
        data: a datagram received on the RTP port.

    Returns:
        True for version 2 with packet type 192-223 (the RTCP range RFC 5761 reserves).
    """
    return len(data) >= 2 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223


def timestamp_step(clock_rate: int, ptime_ms: int = 20) -> int:
    """RTP timestamp units in one packet of ``ptime_ms`` at ``clock_rate``.

    Args:
        clock_rate: the rtpmap clock (8000 PCMU, 16000 RingCentral OPUS, 48000 opus).
        ptime_ms: packet duration in milliseconds.

    Returns:
        160, 320 or 960 for 20 ms at those clocks.

    Raises:
        ValueError: the packet is not a whole number of clock ticks.
    """
    units, rest = divmod(clock_rate * ptime_ms, 1000)
    if units <= 0 or rest:
        raise ValueError(f"{ptime_ms} ms at {clock_rate} Hz is not a whole number of ticks")
    return units


class RtpSequencer:
    """Numbers the packets of one outbound RTP stream.

    Sequence number, timestamp and SSRC start at random values (RFC 3550 §5.1: it makes
    known-plaintext attacks on SRTP harder and SSRC collisions unlikely); each can be
    fixed for tests or for peers that need it (SIPp's SRTP fails for a first sequence
    number of 32768 or more). The first packet, and the first after
    `start_talkspurt`, carries the marker bit.

    Args:
        payload_type: the audio payload type negotiated in SDP.
        clock_rate: the audio RTP clock in Hz.
        ptime_ms: milliseconds of audio per packet.
        ssrc: fixed SSRC, else random.
        sequence: first sequence number, else random.
        timestamp: first timestamp, else random.
        rng: source of the random values (default: the OS's, via `random.SystemRandom`).
    """

    def __init__(
        self,
        payload_type: int,
        clock_rate: int,
        *,
        ptime_ms: int = 20,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        rand = rng if rng is not None else random.SystemRandom()
        self._payload_type = payload_type
        self._step = timestamp_step(clock_rate, ptime_ms)
        self._clock_rate = clock_rate
        self._ssrc = rand.getrandbits(32) if ssrc is None else ssrc
        self._sequence = rand.getrandbits(16) if sequence is None else sequence
        self._timestamp = rand.getrandbits(32) if timestamp is None else timestamp
        self._marker = True
        # Built once, so that a bad payload type or SSRC fails here.
        RtpPacket(payload_type, self._sequence, self._timestamp, self._ssrc, b"")

    @property
    def ssrc(self) -> int:
        """The stream's SSRC."""
        return self._ssrc

    @property
    def clock_rate(self) -> int:
        """The audio RTP clock in Hz."""
        return self._clock_rate

    @property
    def timestamp_step(self) -> int:
        """Timestamp units per packet (160, 320 or 960 for 20 ms)."""
        return self._step

    @property
    def next_sequence(self) -> int:
        """Sequence number the next packet will carry."""
        return self._sequence

    @property
    def next_timestamp(self) -> int:
        """Timestamp of the current frame tick (what the next audio packet carries)."""
        return self._timestamp

    def start_talkspurt(self) -> None:
        """Set the marker on the next audio packet (speech resumes after a silence)."""
        self._marker = True

    def next_audio(self, payload: bytes) -> RtpPacket:
        """The packet for this tick's audio frame; moves the clock on by one frame.

        Args:
            payload: the encoded frame.

        Returns:
            The packet, with the marker set if it starts a talkspurt.
        """
        packet = RtpPacket(
            self._payload_type, self._sequence, self._timestamp, self._ssrc, payload,
            marker=self._marker,
        )
        self._marker = False
        self._sequence = (self._sequence + 1) & _U16
        self._timestamp = (self._timestamp + self._step) & _U32
        return packet

    def next_other(
        self, payload: bytes, *, payload_type: int, timestamp: int, marker: bool = False
    ) -> RtpPacket:
        """A packet of another payload type in this stream (an RFC 4733 event).

        It takes the next sequence number but leaves the audio clock alone: the event
        carries its own start timestamp, and the caller moves the clock with `skip`
        for every tick the event took instead of audio.

        Args:
            payload: the payload (a 4-byte telephone-event).
            payload_type: its payload type.
            timestamp: its timestamp (the event's start).
            marker: the marker bit (set on an event's first packet).

        Returns:
            The packet.
        """
        packet = RtpPacket(
            payload_type, self._sequence, timestamp & _U32, self._ssrc, payload, marker=marker
        )
        self._sequence = (self._sequence + 1) & _U16
        return packet

    def skip(self, frames: int = 1) -> None:
        """Move the clock on by ``frames`` ticks that sent no audio packet.

        Keeps the audio timestamps tied to real time across a DTMF event or a silence
        that was not sent, so the receiver's playout stays in step.

        Args:
            frames: ticks to skip (zero or more).

        Raises:
            ValueError: ``frames`` is negative.
        """
        if frames < 0:
            raise ValueError(f"cannot skip {frames} frames")
        self._timestamp = (self._timestamp + frames * self._step) & _U32
