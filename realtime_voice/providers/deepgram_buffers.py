"""The Deepgram bridge's two bounded buffers: the audio inbox and the replay buffer.

`AudioInbox` carries frames from the event loop to the socket's worker thread. It is
bounded, and the producer never waits: when it is full the *oldest* audio frame is
dropped (newer speech is worth more to a live conversation than speech the caller said
seconds ago). Control items (Finalize, Stop) are never dropped and keep their place in
the order. It is a deque under one `threading.Condition` rather than a `queue.Queue`
because dropping the oldest audio item, while keeping control items, has to be one
atomic step; the semantics are otherwise the same (FIFO, blocking ``get`` with timeout).

`ReplayBuffer` keeps the audio already sent on the current socket that no final result
has covered yet, addressed by absolute byte offsets of the stream, so that after a
reconnect that audio is sent again and results can be mapped back to stream time.
"""

from __future__ import annotations

import collections
import enum
import threading
from dataclasses import dataclass

__all__ = ["AudioInbox", "Control", "PendingAudio", "ReplayBuffer"]


class Control(enum.Enum):
    """Instructions for the worker that travel in order with the audio."""

    FINALIZE = "finalize"
    STOP = "stop"


class AudioInbox:
    """Bounded FIFO of audio frames (drop-oldest) and control items (never dropped).

    One producer (the event loop) and one consumer (the worker thread).

    Args:
        max_frames: audio frames held at most.
        wake_frames: wake a waiting consumer only once this many audio frames are
            queued (control items always wake it). With 2, a consumer that also wakes
            on a short timeout sends 40 ms per message and wakes half as often as with
            1; under many concurrent calls those thread wake-ups are the bridge's main
            cost (GIL hand-overs and futex calls).

    Raises:
        ValueError: ``max_frames`` or ``wake_frames`` < 1.
    """

    def __init__(self, max_frames: int, *, wake_frames: int = 1) -> None:
        if max_frames < 1 or wake_frames < 1:
            raise ValueError("max_frames and wake_frames must be at least 1")
        self._max = max_frames
        self._wake = wake_frames
        self._items: collections.deque[bytes | Control] = collections.deque()
        self._audio = 0
        self._controls = 0
        self._cond = threading.Condition(threading.Lock())
        self._woken = False

    @property
    def max_frames(self) -> int:
        """The bound on queued audio frames."""
        return self._max

    @property
    def wake_frames(self) -> int:
        """Audio frames queued before a waiting consumer is woken."""
        return self._wake

    def set_wake_frames(self, frames: int) -> None:
        """Change how many queued audio frames wake the consumer (from now on).

        Raises:
            ValueError: ``frames`` < 1.
        """
        if frames < 1:
            raise ValueError("wake_frames must be at least 1")
        with self._cond:
            self._wake = frames
            if self._audio >= frames:
                self._cond.notify()

    @property
    def audio_frames(self) -> int:
        """Audio frames waiting now."""
        return self._audio

    def put_audio(self, frame: bytes) -> bool:
        """Queue a frame without ever blocking.

        Returns:
            True when the queue was full and its oldest audio frame was dropped.
        """
        with self._cond:
            dropped = False
            if self._audio >= self._max:
                for index, item in enumerate(self._items):
                    if isinstance(item, bytes):
                        del self._items[index]
                        break
                self._audio -= 1
                dropped = True
            self._items.append(frame)
            self._audio += 1
            if self._audio >= self._wake:
                self._cond.notify()
        return dropped

    def put_control(self, item: Control) -> None:
        """Queue a control item after everything already queued."""
        with self._cond:
            self._items.append(item)
            self._controls += 1
            self._cond.notify()

    def wake(self) -> None:
        """Make a waiting (or the next) `get` return at once, empty-handed."""
        with self._cond:
            self._woken = True
            self._cond.notify()

    def get(self, timeout: float, max_frames: int) -> list[bytes | Control]:
        """Take the next item(s), waiting up to ``timeout`` seconds.

        Args:
            timeout: longest wait, in seconds.
            max_frames: most consecutive audio frames to take at once.

        Returns:
            ``[control]``, or 1..max_frames audio frames in order (fewer than
            ``wake_frames`` only when the wait timed out), or ``[]`` when nothing is
            queued at the timeout or `wake` was called.
        """
        with self._cond:
            if not self._woken and not self._controls and self._audio < self._wake:
                self._cond.wait(timeout)
            if self._woken:
                self._woken = False
                return []
            if not self._items:
                return []
            first = self._items[0]
            if isinstance(first, Control):
                self._items.popleft()
                self._controls -= 1
                return [first]
            batch: list[bytes | Control] = []
            while self._items and len(batch) < max_frames:
                item = self._items[0]
                if not isinstance(item, bytes):
                    break
                batch.append(self._items.popleft())
            self._audio -= len(batch)
            return batch


@dataclass(frozen=True, slots=True)
class PendingAudio:
    """Audio to send again on a new socket.

    Attributes:
        start: absolute byte offset (in the stream) of the first chunk.
        chunks: the audio, in order and contiguous.
    """

    start: int
    chunks: tuple[bytes, ...]


class ReplayBuffer:
    """Sent audio not yet covered by a final result, bounded by its duration. Thread-safe.

    Args:
        max_bytes: bytes held at most; beyond, the oldest chunks are forgotten (counted
            in `overflow_bytes`: they could no longer be replayed).

    Raises:
        ValueError: ``max_bytes`` < 1.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self._max = max_bytes
        self._chunks: collections.deque[tuple[int, bytes]] = collections.deque()
        self._held = 0
        self._end = 0
        self._lock = threading.Lock()
        self.overflow_bytes = 0
        """Bytes forgotten before a final result covered them."""

    @property
    def end(self) -> int:
        """Absolute byte offset just after the newest audio appended."""
        return self._end

    @property
    def held_bytes(self) -> int:
        """Bytes held now."""
        return self._held

    def append(self, data: bytes) -> int:
        """Record ``data`` as sent next; return its absolute start offset."""
        with self._lock:
            start = self._end
            self._chunks.append((start, data))
            self._held += len(data)
            self._end += len(data)
            while self._held > self._max and len(self._chunks) > 1:
                _, old = self._chunks.popleft()
                self._held -= len(old)
                self.overflow_bytes += len(old)
            return start

    def covered_until(self, offset: int) -> None:
        """A final result covers the stream up to ``offset``: forget chunks wholly before it."""
        with self._lock:
            while self._chunks:
                start, data = self._chunks[0]
                if start + len(data) > offset:
                    break
                self._chunks.popleft()
                self._held -= len(data)

    def pending(self) -> PendingAudio:
        """What a new socket must be sent first (everything still held)."""
        with self._lock:
            if not self._chunks:
                return PendingAudio(self._end, ())
            return PendingAudio(self._chunks[0][0], tuple(data for _, data in self._chunks))
