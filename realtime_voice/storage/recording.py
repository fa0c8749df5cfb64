"""Call recordings: one stereo WAV per call, written off the event loop as the call goes.

The event loop only stamps each frame with the time and puts it on a queue (`CallTap`);
one writer thread for every call (`RecordingWriter`) decodes it, places it on the call's
timeline (`recording_timeline.CallTimeline`: caller left, bot right as the caller heard
it) and appends what is due to the file (`recording_wav.RecordingFiles`), rewriting the
header's sizes about once a second. The queue is bounded in audio frames: when the
writer falls behind, frames are dropped and counted (logged once per call), never
waited for; cuts and ends are never dropped, so a recording is always closed.

`Recordings` is what the server holds: the files (read, erased and swept for retention
whether or not recording is on) and, when ``VOICE_RECORDINGS`` is on, the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from realtime_voice.audio.codec import decode
from realtime_voice.audio.format import PCM16, AudioFormat
from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.storage.recording_timeline import CallTimeline
from realtime_voice.storage.recording_wav import (
    MAX_DATA_BYTES,
    RecordingFiles,
    RecordingInfo,
    write_sizes,
)

__all__ = ["CallTap", "RecordingWriter", "Recordings"]

log = logging.getLogger(__name__)

_CALLER: Final = 0
_BOT: Final = 1
_CUT: Final = 2
_CLOSE: Final = 3


class _CallState:
    """One call's recording. Fields after ``t0`` belong to the writer thread, except
    ``dropped``, ``enqueued`` and ``closed`` (the loop's)."""

    __slots__ = (
        "call_id", "closed", "data_bytes", "dropped", "enqueued", "failed", "fd",
        "header_at", "resamplers", "t0", "timeline",
    )

    def __init__(self, call_id: str, t0: float) -> None:
        self.call_id = call_id
        self.t0 = t0
        self.dropped = 0
        self.enqueued = False
        self.closed = False
        self.timeline: CallTimeline | None = None
        self.fd: int | None = None
        self.data_bytes = 0
        self.header_at = 0.0
        self.failed = False
        self.resamplers: list[StreamingResampler | None] = [None, None]


_Item = tuple[int, _CallState, float, bytes, AudioFormat | None]


@dataclass(frozen=True, slots=True)
class _Control:
    stop: bool
    done: Callable[[], None]


class CallTap:
    """The loop's side of one call's recording: each method stamps the time and queues.

    Non-blocking and cheap (a clock read and a queue put per frame); never raises.
    """

    __slots__ = ("_state", "_writer")

    def __init__(self, writer: RecordingWriter, state: _CallState) -> None:
        self._writer = writer
        self._state = state

    @property
    def dropped(self) -> int:
        """Frames of this call dropped because the writer was behind."""
        return self._state.dropped

    def caller_audio(self, payload: bytes, fmt: AudioFormat) -> None:
        """Caller audio just received, in the call's wire format ``fmt``."""
        self._writer._audio(self._state, _CALLER, payload, fmt)

    def bot_audio(self, frame: bytes, fmt: AudioFormat) -> None:
        """A frame of bot audio just sent to the far end (``fmt``: mono wire format)."""
        self._writer._audio(self._state, _BOT, frame, fmt)

    def cut(self) -> None:
        """Barge-in: the far end drops the bot audio it holds."""
        self._writer._control(self._state, _CUT)

    def close(self) -> None:
        """The call is over: finish the file. Idempotent."""
        state = self._state
        if not state.closed:
            state.closed = True
            self._writer._control(state, _CLOSE)


class RecordingWriter:
    """The one thread that writes every call's recording.

    Args:
        files: the recordings directory.
        max_pending_frames: audio frames (all calls) that may wait for the thread;
            beyond it new frames are dropped and counted.
        margin_s: how long samples wait before being written (a barge-in can still
            remove bot audio younger than this; see `CallTimeline`).
        header_interval_s: how often an open file's header sizes are brought up to date.
        clock: monotonic clock in seconds.
    """

    def __init__(
        self,
        files: RecordingFiles,
        *,
        max_pending_frames: int = 20_000,
        margin_s: float = 0.3,
        header_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_pending_frames < 1:
            raise ValueError("max_pending_frames must be positive")
        self.files = files
        self.max_pending_frames = max_pending_frames
        self.margin_s = margin_s
        self.header_interval_s = header_interval_s
        self._clock = clock
        self._queue: queue.SimpleQueue[_Item | _Control] = queue.SimpleQueue()
        # Single-writer counters (the loop bumps one, the thread the other): their
        # difference is the backlog, with no lock on the per-frame path.
        self._queued = 0
        self._processed = 0
        self._open: set[_CallState] = set()
        self._thread: threading.Thread | None = None
        self._accepting = False
        self.dropped_frames = 0
        """Frames dropped (all calls) because the writer was behind."""

    # ------------------------------------------------------------------ the loop's side

    def tap(self, call_id: str) -> CallTap:
        """Start recording a call; its timeline starts now. The file opens on its first audio."""
        return CallTap(self, _CallState(call_id, self._clock()))

    @property
    def backlog(self) -> int:
        """Audio frames waiting for the writer thread."""
        return self._queued - self._processed

    def _audio(self, state: _CallState, kind: int, payload: bytes, fmt: AudioFormat) -> None:
        if state.closed or not self._accepting:
            return
        if self._queued - self._processed >= self.max_pending_frames:
            state.dropped += 1
            self.dropped_frames += 1
            if state.dropped == 1:
                log.warning("recording of call %s: writer behind, dropping frames",
                            state.call_id)
            return
        self._queued += 1
        state.enqueued = True
        self._queue.put((kind, state, self._clock() - state.t0, payload, fmt))

    def _control(self, state: _CallState, kind: int) -> None:
        if state.enqueued and self._accepting:
            self._queue.put((kind, state, self._clock() - state.t0, b"", None))

    async def flush(self) -> None:
        """Wait until the thread has handled everything queued before this call."""
        if self._thread is None or not self._thread.is_alive():
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle)

        self._queue.put(_Control(stop=False, done=wake))
        await done

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the writer thread (once)."""
        if self._thread is None:
            self._accepting = True
            self._thread = threading.Thread(target=self._run, name="recordings", daemon=True)
            self._thread.start()

    async def close(self, timeout_s: float = 10.0) -> None:
        """Finish every open recording (cut at this moment) and stop the thread."""
        self._accepting = False
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_Control(stop=True, done=lambda: None))
        await asyncio.to_thread(thread.join, timeout_s)
        if thread.is_alive():
            log.error("recordings writer did not finish within %.0f s", timeout_s)
        self._thread = None

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        get = self._queue.get
        idle_s = min(0.5, self.header_interval_s)
        while True:
            try:
                item = get(timeout=idle_s)
            except queue.Empty:
                self._idle()
                continue
            if isinstance(item, _Control):
                if item.stop:
                    for state in list(self._open):
                        self._finish(state, self._clock() - state.t0)
                    item.done()
                    return
                item.done()
                continue
            kind, state, t, payload, fmt = item
            if kind <= _BOT:
                self._processed += 1
            if state.failed:
                continue
            try:
                self._apply(kind, state, t, payload, fmt)
            except OSError as exc:
                self._fail(state, exc)
            except Exception:
                log.exception("recording of call %s failed", state.call_id)
                self._fail(state, None)

    def _idle(self) -> None:
        # Nothing queued: calls move on to now (silence) and get their header brought up
        # to date. Only when idle: with a backlog, "now" is ahead of the queued frames'
        # times, and committing to it would push those frames later than they belong.
        now = self._clock()
        for state in list(self._open):
            try:
                self._write(state, now - state.t0, final=False)
            except OSError as exc:
                self._fail(state, exc)

    def _apply(
        self, kind: int, state: _CallState, t: float, payload: bytes, fmt: AudioFormat | None
    ) -> None:
        if kind == _CLOSE:
            if state.timeline is not None:
                self._finish(state, t)
            return
        timeline = state.timeline
        if kind == _CUT:
            if timeline is not None:
                timeline.cut(t)
            return
        assert fmt is not None
        pcm = _decode(payload, fmt)
        if timeline is None:
            # The rate is fixed at the call's first audio (by then its format is agreed).
            timeline = CallTimeline(fmt.sample_rate, margin_s=self.margin_s)
            state.fd = self.files.create(state.call_id, fmt.sample_rate)
            state.timeline = timeline
            state.header_at = t
            self._open.add(state)
        if fmt.sample_rate != timeline.sample_rate:
            pcm = self._resample(state, kind, pcm, fmt.sample_rate, timeline.sample_rate)
        if kind == _CALLER:
            timeline.caller(t, pcm)
        else:
            timeline.bot(t, pcm)
        self._write(state, t, final=False)

    def _resample(
        self, state: _CallState, kind: int, pcm: PCM16, in_rate: int, out_rate: int
    ) -> PCM16:
        resampler = state.resamplers[kind]
        if resampler is None or resampler.in_rate != in_rate:
            resampler = state.resamplers[kind] = StreamingResampler(in_rate, out_rate)
        return resampler.process(pcm)

    def _write(self, state: _CallState, now: float, *, final: bool) -> None:
        timeline, fd = state.timeline, state.fd
        if timeline is None or fd is None:
            return
        # At most ~10 writes a second per call: 100 ms of stereo at a time.
        data = timeline.take(now, final=final, min_samples=timeline.sample_rate // 10)
        if data:
            room = MAX_DATA_BYTES - state.data_bytes
            full = len(data) > room
            view = memoryview(data)[:room]
            state.data_bytes += len(view)
            while view:
                view = view[os.write(fd, view):]
            if full:
                log.error("recording of call %s reached the WAV size limit: stopped",
                          state.call_id)
                self._fail(state, None)
                return
        if final or now - state.header_at >= self.header_interval_s:
            with self.files.header_lock:
                write_sizes(fd, state.data_bytes)
            state.header_at = now

    def _finish(self, state: _CallState, t: float) -> None:
        self._open.discard(state)
        if state.fd is None:
            return
        try:
            self._write(state, t, final=True)
        finally:
            fd, state.fd = state.fd, None
            if fd is not None:
                os.close(fd)
        timeline = state.timeline
        if timeline is not None:
            log.info("recording of call %s: %.1f s%s", state.call_id,
                     timeline.committed / timeline.sample_rate,
                     f", {state.dropped} frame(s) dropped" if state.dropped else "")

    def _fail(self, state: _CallState, exc: OSError | None) -> None:
        if exc is not None:
            log.error("recording of call %s stopped: %s", state.call_id, exc)
        state.failed = True
        self._open.discard(state)
        fd, state.fd = state.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                with self.files.header_lock:
                    write_sizes(fd, state.data_bytes)
                os.close(fd)


def _decode(payload: bytes, fmt: AudioFormat) -> PCM16:
    unit = fmt.encoding.bytes_per_sample * fmt.channels
    whole = len(payload) - len(payload) % unit  # a carrier's odd byte is not worth a crash
    return decode(memoryview(payload)[:whole], fmt)


class Recordings:
    """The server's recordings: files to read, erase and sweep; a writer when enabled.

    Args:
        directory: where recordings are kept.
        enabled: record calls (``VOICE_RECORDINGS``); off, existing files are still
            served, erased and swept.
        retention_days: recordings older than this are deleted at start and every
            ``sweep_interval_s`` (0 keeps them).
        sweep_interval_s: time between retention sweeps.
        max_pending_frames: the writer's queue bound (see `RecordingWriter`).
    """

    def __init__(
        self,
        directory: Path,
        *,
        enabled: bool,
        retention_days: float = 0.0,
        sweep_interval_s: float = 3600.0,
        max_pending_frames: int = 20_000,
    ) -> None:
        self.files = RecordingFiles(directory)
        self.writer = (
            RecordingWriter(self.files, max_pending_frames=max_pending_frames)
            if enabled else None
        )
        self.retention_days = retention_days
        self.sweep_interval_s = sweep_interval_s
        self._sweeper: asyncio.Task[None] | None = None

    def tap(self, call_id: str) -> CallTap | None:
        """A new call's recording tap, or ``None`` when recording is off."""
        return self.writer.tap(call_id) if self.writer is not None else None

    async def start(self) -> None:
        """Start the writer and the retention sweeps."""
        if self.writer is not None:
            self.writer.start()
        if self.retention_days > 0 and self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="recording-retention"
            )

    async def close(self) -> None:
        """Stop sweeping; finish every open recording and stop the writer."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self.writer is not None:
            await self.writer.close()

    async def info(self, call_id: str) -> RecordingInfo | None:
        """The call's recording (header repaired to match what is on disk), or ``None``."""
        return await asyncio.to_thread(self.files.info, call_id)

    async def erase(self, call_id: str) -> bool:
        """Delete the call's recording once the writer is done with it. Returns whether
        there was one."""
        if self.writer is not None:
            await self.writer.flush()  # a queued first frame must not recreate the file
        return await asyncio.to_thread(self.files.delete, call_id)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.files.sweep, self.retention_days)
            except OSError as exc:
                log.warning("recording retention sweep failed: %s", exc)
            await asyncio.sleep(self.sweep_interval_s)
