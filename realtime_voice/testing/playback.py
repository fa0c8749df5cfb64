"""A pure model of a telephony gateway's outbound playback buffer.

A gateway (Twilio, or our RingCentral media gateway) does not play the bot's audio
the moment it arrives: the server paces its frames at real time "with a small lead",
so frames queue up and the gateway plays them one after another. A mark sent after
some audio is echoed only when playback reaches it; ``clear`` drops everything still
queued and returns the marks that will now never be reached (Twilio echoes them at
once). That is exactly what barge-in and "the bot finished speaking" depend on, so the
simulated caller models it here rather than treating "received" as "heard".

There is no clock inside: every method takes the current time ``now`` in seconds (any
monotonic origin, e.g. ``loop.time()``), which makes the model deterministic to test.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["GatewayPlayback", "PlaybackEvent", "PlayedAudio", "ReachedMark"]

_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class PlayedAudio:
    """A frame (or, when cut by ``clear``, the played head of a frame) that was heard.

    Attributes:
        start: when it started playing.
        end: when it finished playing.
        audio: the wire bytes that played.
    """

    start: float
    end: float
    audio: bytes


@dataclass(frozen=True, slots=True)
class ReachedMark:
    """Playback reached a mark: everything queued before it has played.

    Attributes:
        name: the mark's name, to echo to the server.
        at: when playback reached it.
    """

    name: str
    at: float


PlaybackEvent = PlayedAudio | ReachedMark


@dataclass(slots=True)
class _QueuedAudio:
    start: float
    end: float
    audio: bytes


@dataclass(slots=True)
class _QueuedMark:
    name: str
    at: float


class GatewayPlayback:
    """The outbound audio queue of one call, played at real time.

    Audio is scheduled back to back: a frame enqueued while earlier audio is still
    playing starts when that audio ends; a frame enqueued while the queue is empty
    (an underrun, or the first frame of an utterance) starts at once. A mark is due at
    the end of the audio queued before it.

    Args:
        bytes_per_second: wire bytes played per second (8000 for mu-law 8 kHz mono).
        sample_width: bytes per sample, so a frame cut by ``clear`` is cut on a sample.
    """

    def __init__(self, bytes_per_second: int = 8000, sample_width: int = 1) -> None:
        """Create an empty, idle playback queue."""
        if bytes_per_second <= 0 or sample_width <= 0:
            raise ValueError("bytes_per_second and sample_width must be positive")
        self._bytes_per_second = bytes_per_second
        self._sample_width = sample_width
        self._queue: deque[_QueuedAudio | _QueuedMark] = deque()
        self._play_end = float("-inf")
        # Events that became due inside clear(); handed out by the next advance().
        self._pending: list[PlaybackEvent] = []

    def enqueue_audio(self, frame: bytes, now: float) -> float:
        """Queue one frame of bot audio.

        Args:
            frame: wire bytes (any length; empty frames are ignored).
            now: the current time.

        Returns:
            When the frame will start playing.
        """
        start = max(now, self._play_end)
        if not frame:
            return start
        end = start + len(frame) / self._bytes_per_second
        self._queue.append(_QueuedAudio(start, end, frame))
        self._play_end = end
        return start

    def enqueue_mark(self, name: str, now: float) -> float:
        """Queue a mark after the audio queued so far.

        Args:
            name: the mark's name.
            now: the current time.

        Returns:
            When playback will reach it (``now`` when nothing is queued).
        """
        at = max(now, self._play_end)
        self._queue.append(_QueuedMark(name, at))
        return at

    def advance(self, now: float) -> list[PlaybackEvent]:
        """Play up to ``now``.

        Args:
            now: the current time.

        Returns:
            In order: every frame that finished playing by ``now`` and every mark
            reached by ``now`` (plus anything cut by an earlier `clear`).
        """
        events = self._pending
        self._pending = []
        queue = self._queue
        while queue:
            head = queue[0]
            if isinstance(head, _QueuedAudio):
                if head.end > now + _EPSILON:
                    break
                events.append(PlayedAudio(head.start, head.end, head.audio))
            else:
                if head.at > now + _EPSILON:
                    break
                events.append(ReachedMark(head.name, head.at))
            queue.popleft()
        return events

    def clear(self, now: float) -> list[str]:
        """Drop all queued audio, as the gateway does on the server's ``clear``.

        What already played by ``now`` is kept: finished frames and the played head of
        the frame in progress come out of the next `advance`.

        Args:
            now: the current time.

        Returns:
            The names of the marks that were still pending, in order, to echo at once.
        """
        # advance() hands out and resets the pending list, so keep what it returns.
        self._pending = self.advance(now)
        cut_marks: list[str] = []
        for item in self._queue:
            if isinstance(item, _QueuedMark):
                cut_marks.append(item.name)
            elif item.start < now:
                played = int((now - item.start) * self._bytes_per_second)
                played -= played % self._sample_width
                if played > 0:
                    end = item.start + played / self._bytes_per_second
                    self._pending.append(PlayedAudio(item.start, end, item.audio[:played]))
        self._queue.clear()
        self._play_end = min(self._play_end, now)
        return cut_marks

    def playing(self, now: float) -> bool:
        """Whether queued audio is still playing (or waiting to play) at ``now``."""
        return self._play_end > now + _EPSILON

    def queued_seconds(self, now: float) -> float:
        """Seconds of audio still to play after ``now``."""
        return max(0.0, self._play_end - now)

    @property
    def play_end(self) -> float:
        """When everything queued so far will have played (``-inf`` if nothing ever was)."""
        return self._play_end
