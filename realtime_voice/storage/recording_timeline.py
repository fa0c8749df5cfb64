"""One call's two recording channels on one sample clock: where each sample goes.

Pure (no I/O, no clock of its own): every input carries its time in seconds since the
call started, so the placement rules can be tested sample for sample.

- **Caller (left)**: a run of audio is laid end to end (so network jitter does not chop
  it) from where the run began; a chunk arriving more than ``gap_s`` after the run's end
  starts a new run where its arrival says, the gap left silent. A run begins where its
  least delayed chunk puts it: audio that waited in a socket buffer (the stream's first
  frames while the call was being set up) arrives in a burst, and counting back from
  the end of the burst places it where it was sent. The start can move earlier only
  while none of the run has been handed out.
- **Bot (right)**: placed where the caller hears it. The far end plays what we send in
  order and in real time, so a frame starts playing when it is sent, or when the one
  before it finishes, whichever is later: exactly the far end's playout buffer, whatever
  lead the pacer keeps.
- **Cut (barge-in)**: the far end drops what it holds, so the bot audio placed after the
  cut's time was never heard and is removed.

Samples are held until they are ``margin_s`` old, then handed out (`take`) as
interleaved stereo: a cut can only remove audio that is not yet handed out, and the bot
is never more than a playout lead (60 ms) ahead of real time, so the margin covers it.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from realtime_voice.audio.format import PCM16

__all__ = ["CallTimeline"]

_INITIAL_S: Final = 2.0


class CallTimeline:
    """The left (caller) and right (bot) channels of one call's recording.

    Args:
        sample_rate: the recording's rate (the call's, fixed at its start).
        margin_s: how long samples are held before `take` hands them out.
        gap_s: caller audio this late starts a new run (the gap is silence).
        max_ahead_s: audio placed further ahead than this of what was handed out is
            dropped (a leg that is not paced must not make the buffer grow without end).
    """

    __slots__ = (
        "_bot_end",
        "_committed",
        "_gap",
        "_left",
        "_margin",
        "_max_ahead",
        "_prev_end",
        "_rate",
        "_right",
        "_run",
        "_run_len",
        "_run_start",
        "dropped_samples",
    )

    def __init__(
        self,
        sample_rate: int,
        *,
        margin_s: float = 0.3,
        gap_s: float = 0.1,
        max_ahead_s: float = 120.0,
    ) -> None:
        self._rate = sample_rate
        self._margin = round(margin_s * sample_rate)
        self._gap = round(gap_s * sample_rate)
        self._max_ahead = round(max_ahead_s * sample_rate)
        size = round(_INITIAL_S * sample_rate)
        # Index 0 of both buffers is the first sample not yet handed out.
        self._left = np.zeros(size, dtype=np.int16)
        self._right = np.zeros(size, dtype=np.int16)
        self._committed = 0
        self._prev_end = 0  # where the last finished caller run ended
        self._run_start: int | None = None  # the caller run going on (None: none)
        self._run_len = 0
        self._run: list[PCM16] | None = None  # its audio while its start may still move
        self._bot_end = 0
        self.dropped_samples = 0
        """Samples refused for being too far ahead (see ``max_ahead_s``)."""

    @property
    def sample_rate(self) -> int:
        """Samples per second per channel."""
        return self._rate

    @property
    def committed(self) -> int:
        """Samples (per channel) handed out so far."""
        return self._committed

    @property
    def bot_end(self) -> int:
        """Where the bot's audio placed so far stops being heard (in samples)."""
        return self._bot_end

    @property
    def caller_end(self) -> int:
        """Where the caller's next sample goes unless it arrives late (in samples)."""
        if self._run_start is None:
            return self._prev_end
        return self._run_start + self._run_len

    def _at(self, t: float) -> int:
        return round(t * self._rate)

    def _place(self, right: bool, start: int, pcm: PCM16) -> bool:
        end = start + pcm.size
        need = end - self._committed
        if need > self._max_ahead:
            self.dropped_samples += pcm.size
            return False
        if need > self._left.size:
            self._grow(need)
        buffer = self._right if right else self._left
        offset = start - self._committed
        buffer[offset:offset + pcm.size] = pcm
        return True

    def _grow(self, need: int) -> None:
        extra = np.zeros(max(need, 2 * self._left.size) - self._left.size, dtype=np.int16)
        self._left = np.concatenate((self._left, extra))
        self._right = np.concatenate((self._right, extra))

    def caller(self, t: float, pcm: PCM16) -> None:
        """Caller audio that arrived ``t`` seconds into the call (its last sample then)."""
        n = pcm.size
        if n == 0:
            return
        arrived_end = self._at(t)
        run_end = None if self._run_start is None else self._run_start + self._run_len
        if run_end is not None and arrived_end - n - run_end > self._gap:
            self._end_run()  # the stream paused: silence until this chunk's arrival
        floor = max(self._prev_end, self._committed)
        if self._run_start is None:
            if arrived_end - n - floor > self._max_ahead:
                self.dropped_samples += n
                return
            self._run_start = max(arrived_end - n, floor)
            self._run_len = 0
            self._run = []
        elif self._run is not None:
            # Counted back from this chunk's arrival, the run began here: the earliest
            # such start is the least delayed (a burst drains a backlog).
            self._run_start = max(min(self._run_start, arrived_end - self._run_len - n), floor)
        if self._run is not None:
            self._run.append(pcm)
        elif not self._place(False, self._run_start + self._run_len, pcm):
            return
        self._run_len += n

    def _settle_run(self) -> None:
        """Fix the run's start: its audio goes into the channel."""
        run, self._run = self._run, None
        if run and self._run_start is not None:
            self._place(False, self._run_start, np.concatenate(run))

    def _end_run(self) -> None:
        self._settle_run()
        if self._run_start is not None:
            self._prev_end = self._run_start + self._run_len
        self._run_start = None
        self._run_len = 0

    def bot(self, t: float, pcm: PCM16) -> None:
        """Bot audio sent ``t`` seconds into the call: heard once what precedes it played."""
        if pcm.size == 0:
            return
        start = max(self._bot_end, self._at(t), self._committed)
        if self._place(True, start, pcm):
            self._bot_end = start + pcm.size

    def cut(self, t: float) -> None:
        """Barge-in at ``t``: the bot audio that would have played after it is removed."""
        cut = max(self._at(t), self._committed)
        if self._bot_end > cut:
            self._right[cut - self._committed:self._bot_end - self._committed] = 0
            self._bot_end = cut

    def take(self, now: float, *, final: bool = False, min_samples: int = 0) -> bytes:
        """Hand out the samples older than the margin, as interleaved little-endian int16.

        Args:
            now: seconds since the call started.
            final: the call is over: hand out everything placed so far and up to ``now``
                (the bot is cut at ``now`` first: what had not played by then never did).
            min_samples: hand out nothing unless at least this many samples are due
                (fewer, larger writes).

        Returns:
            Stereo frames (left = caller, right = bot); empty when nothing is due.
        """
        if final:
            self.cut(now)
            self._end_run()
        horizon = self._at(now)
        if final:
            horizon = max(horizon, self._prev_end, self._bot_end)
        else:
            horizon -= self._margin
        count = horizon - self._committed
        if count <= 0 or (not final and count < min_samples):
            return b""
        if self._run is not None and self._run_start is not None and self._run_start < horizon:
            self._settle_run()  # part of the run goes out now: its start is final
        if count > self._left.size:
            self._grow(count)  # silence up to now, longer than anything placed
        out = np.empty(2 * count, dtype="<i2")
        out[0::2] = self._left[:count]
        out[1::2] = self._right[:count]
        for buffer in (self._left, self._right):
            buffer[:-count or None] = buffer[count:]
            buffer[buffer.size - count:] = 0
        self._committed = horizon
        return out.tobytes()
