"""A small fixed-depth jitter buffer for one inbound stream of 20 ms audio packets.

The leg pushes every audio packet as it arrives and pops once per tick of its 20 ms
frame clock. Playout is by sequence number (one packet is one frame):

- nothing (None) comes out until ``target_ms`` of audio is buffered: that is the
  playout delay, which absorbs network jitter and lets reordered packets fall in place;
- then each pop gives the next frame's payload, or `LOST` when its packet has not come,
  so the codec can conceal it (Opus PLC); a packet arriving after its slot is dropped as
  late;
- after ``target_ms`` of consecutive empty ticks (the peer paused: hold, DTX, a network
  outage) it goes back to buffering instead of concealing forever.

Fixed rather than adaptive: a voice bot's callers sit behind RingCentral's media
servers, whose jitter is low and steady, and a fixed delay is predictable for barge-in
and for the ``playout_lead_ms`` the leg reports. The buffer does trim itself when it
holds more than ``max_depth_ms`` (a sender clock faster than ours, or a burst after a
stall), so its delay cannot creep up.

A new SSRC, or a sequence or timestamp jump larger than ``max_jump`` frames, is a new
stream: the buffer resets and buffers afresh. Memory is bounded by ``max_packets``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["LOST", "JitterBuffer", "JitterStats", "Lost", "PushResult"]

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


class Lost(enum.Enum):
    """The type of `LOST`."""

    LOST = "lost"


LOST = Lost.LOST
"""What `JitterBuffer.pop` returns for a frame whose packet is missing: conceal it."""


class PushResult(enum.Enum):
    """What `JitterBuffer.push` did with a packet."""

    QUEUED = "queued"
    LATE = "late"
    DUPLICATE = "duplicate"
    RESET = "reset"


@dataclass(slots=True)
class JitterStats:
    """Counters of one `JitterBuffer` (they only grow).

    Attributes:
        pushed: packets offered.
        played: frames popped with a payload.
        lost: frames popped as `LOST` (concealed).
        late: packets dropped because their slot had already been played or concealed.
        duplicates: packets dropped because the same sequence number was already held
            or recently played.
        overflow: packets dropped to keep within ``max_packets``.
        trimmed: frames skipped to bring the depth back under ``max_depth_ms``.
        resets: new streams started (SSRC change, big jump).
        rebuffers: returns to buffering after the stream went quiet.
    """

    pushed: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    overflow: int = 0
    trimmed: int = 0
    resets: int = 0
    rebuffers: int = 0


class JitterBuffer:
    """Reorders one stream's packets and plays them out one 20 ms frame per tick.

    Args:
        clock_rate: the stream's RTP clock in Hz (to judge timestamp jumps).
        target_ms: playout delay: audio buffered before playout starts (40-60 ms).
        max_depth_ms: depth above which the oldest frames are skipped.
        max_jump: sequence or timestamp jump, in frames, treated as a new stream.
        max_packets: most packets held at once.
        frame_ms: duration of one packet.

    Raises:
        ValueError: sizes that do not make sense together.
    """

    def __init__(
        self,
        clock_rate: int,
        *,
        target_ms: int = 60,
        max_depth_ms: int = 200,
        max_jump: int = 100,
        max_packets: int = 64,
        frame_ms: int = 20,
    ) -> None:
        self._target = max(1, -(-target_ms // frame_ms))
        self._max_depth = max_depth_ms // frame_ms
        if self._max_depth < self._target or max_packets < self._max_depth:
            raise ValueError(
                f"need target_ms {target_ms} <= max_depth_ms {max_depth_ms} and "
                f"max_packets {max_packets} >= max_depth_ms / frame_ms"
            )
        self._frame_ms = frame_ms
        self._step = clock_rate * frame_ms // 1000
        self._max_jump = max_jump
        self._max_packets = max_packets
        self.stats = JitterStats()
        self._ssrc: int | None = None
        self._reset_stream()

    def _reset_stream(self) -> None:
        # Extended (unwrapped) sequence numbers, so 65535 -> 0 is just +1.
        self._frames: dict[int, bytes] = {}
        self._highest: int | None = None  # highest extended seq seen
        self._highest_ts = 0
        self._next: int | None = None  # next extended seq to play; None while buffering
        self._played_upto: int | None = None  # every seq below this has had its slot
        # Sequence numbers played lately: a repeat of one is a duplicate, not late.
        self._recent: set[int] = set()
        self._empty_ticks = 0

    @property
    def depth_ms(self) -> int:
        """Audio held from the next frame to play to the newest packet, in ms."""
        if self._highest is None:
            return 0
        start = self._next if self._next is not None else min(self._frames, default=None)
        if start is None:
            return 0
        return max(0, self._highest - start + 1) * self._frame_ms

    @property
    def playing(self) -> bool:
        """Whether playout has started (pop returns frames or `LOST`, not None)."""
        return self._next is not None

    def push(self, sequence: int, timestamp: int, payload: bytes, ssrc: int = 0) -> PushResult:
        """Offer one received audio packet.

        Args:
            sequence: its 16-bit RTP sequence number.
            timestamp: its 32-bit RTP timestamp.
            payload: its payload (the encoded frame).
            ssrc: its SSRC; a change starts a new stream.

        Returns:
            What became of it (`PushResult.RESET` when it started a new stream).
        """
        self.stats.pushed += 1
        sequence &= _U16
        timestamp &= _U32
        result = PushResult.QUEUED
        if self._ssrc != ssrc or self._highest is None:
            if self._ssrc is not None:
                self.stats.resets += 1
                result = PushResult.RESET
            self._ssrc = ssrc
            self._reset_stream()
            ext = sequence
        else:
            ext = self._extend(sequence)
            if self._is_jump(ext, timestamp):
                self.stats.resets += 1
                self._reset_stream()
                ext = sequence
                result = PushResult.RESET
        if self._played_upto is not None and ext < self._played_upto:
            # Its slot is gone: either it was played (a duplicate) or concealed (late).
            if ext in self._recent:
                self.stats.duplicates += 1
                return PushResult.DUPLICATE
            self.stats.late += 1
            return PushResult.LATE
        if ext in self._frames:
            self.stats.duplicates += 1
            return PushResult.DUPLICATE
        self._frames[ext] = payload
        if self._highest is None or ext > self._highest:
            self._highest = ext
            self._highest_ts = timestamp
        while len(self._frames) > self._max_packets:
            # Nobody is popping fast enough: the oldest audio is the least useful.
            oldest = min(self._frames)
            del self._frames[oldest]
            self.stats.overflow += 1
            self._mark_played(oldest + 1, ())
        return result

    def pop(self) -> bytes | Lost | None:
        """The frame for this 20 ms tick.

        Returns:
            The payload to decode; `LOST` when its packet is missing (conceal); None
            while buffering (before playout starts, or after the stream went quiet).
        """
        if self._next is None:
            if not self._frames:
                return None
            first = min(self._frames)
            assert self._highest is not None
            if self._highest - first + 1 < self._target:
                return None
            self._next = first
        if self._highest is not None and self._highest - self._next + 1 > self._max_depth:
            # Skip ahead to the target depth: the delay must not creep up.
            skip_to = self._highest - self._target + 1
            for seq in range(self._next, skip_to):
                if self._frames.pop(seq, None) is not None:
                    self.stats.trimmed += 1
            self._next = skip_to
        seq = self._next
        self._next = seq + 1
        payload = self._frames.pop(seq, None)
        if payload is not None:
            self._empty_ticks = 0
            self._mark_played(seq + 1, (seq,))
            self.stats.played += 1
            return payload
        self._mark_played(seq + 1, ())
        if self._frames:
            self._empty_ticks = 0
        else:
            self._empty_ticks += 1
            if self._empty_ticks > self._target:
                # The peer has gone quiet: stop concealing and wait for it to resume.
                # Its next packet follows the last one it sent, not the slots we
                # concealed since, so it must not count as late.
                self._next = None
                assert self._highest is not None
                self._played_upto = self._highest + 1
                self._empty_ticks = 0
                self.stats.rebuffers += 1
                return None
        self.stats.lost += 1
        return LOST

    def _mark_played(self, upto: int, played: tuple[int, ...]) -> None:
        if self._played_upto is None or upto > self._played_upto:
            self._played_upto = upto
        recent = self._recent
        recent.update(played)
        if len(recent) > self._max_packets:
            floor = self._played_upto - self._max_packets
            self._recent = {s for s in recent if s >= floor}

    def _extend(self, sequence: int) -> int:
        assert self._highest is not None
        delta = (sequence - self._highest) & _U16
        if delta >= 0x8000:
            delta -= 0x10000
        return self._highest + delta

    def _is_jump(self, ext: int, timestamp: int) -> bool:
        assert self._highest is not None
        frames = ext - self._highest
        if abs(frames) > self._max_jump:
            return True
        if self._step <= 0:
            return False
        expected = (self._highest_ts + frames * self._step) & _U32
        drift = (timestamp - expected) & _U32
        if drift >= 1 << 31:
            drift = (1 << 32) - drift
        return drift > self._max_jump * self._step
