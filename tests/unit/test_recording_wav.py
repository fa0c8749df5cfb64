"""Call recordings: where samples land, barge-in cuts, the WAV on disk, crash repair."""

from __future__ import annotations

import asyncio
import os
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from realtime_voice.audio.codec import encode
from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.legs.recording import RecordingLeg, recorded
from realtime_voice.protocols.base import AudioEvent, StopEvent
from realtime_voice.storage.recording import Recordings, RecordingWriter
from realtime_voice.storage.recording_timeline import CallTimeline
from realtime_voice.storage.recording_wav import (
    HEADER_BYTES,
    RecordingFiles,
    parse_header,
    wav_header,
)
from realtime_voice.testing.fake_leg import FakeLeg

RATE = 8000
FRAME = 160  # 20 ms at 8 kHz
MULAW = AudioFormat()
L16_16K = AudioFormat(AudioEncoding.PCM16, 16000)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tone(value: int, n: int = FRAME) -> np.ndarray:
    return np.full(n, value, dtype=np.int16)


def channels(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    stereo = np.frombuffer(data, dtype="<i2").reshape(-1, 2)
    return stereo[:, 0], stereo[:, 1]


def read_wav(path: Path) -> tuple[int, np.ndarray, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2)
        left, right = channels(wav.readframes(wav.getnframes()))
        return wav.getframerate(), left, right


# ---------------------------------------------------------------- the timeline (pure)


def test_caller_lands_where_it_arrived_and_a_gap_stays_silent() -> None:
    timeline = CallTimeline(RATE)
    for k in range(50):  # one second of steady 20 ms frames, frame k holds k + 1
        timeline.caller(0.02 * (k + 1), tone(k + 1))
    timeline.caller(2.0, tone(99))  # the stream paused for a second
    left, right = channels(timeline.take(2.0, final=True))
    assert left.size == 2 * RATE
    for k in range(50):
        assert (left[k * FRAME:(k + 1) * FRAME] == k + 1).all(), k
    assert not left[50 * FRAME:2 * RATE - FRAME].any()
    assert (left[2 * RATE - FRAME:] == 99).all()
    assert not right.any()


def test_jittery_caller_frames_are_laid_end_to_end() -> None:
    timeline = CallTimeline(RATE)
    # Three frames held up by the network arrive together, 40 ms late.
    timeline.caller(0.02, tone(1))
    for k in (2, 3, 4):
        timeline.caller(0.10, tone(k))
    left, _ = channels(timeline.take(0.10, final=True))
    assert [int(left[k * FRAME]) for k in range(4)] == [1, 2, 3, 4]


def test_a_backlog_read_in_one_burst_is_placed_where_it_was_sent() -> None:
    timeline = CallTimeline(RATE)
    # The stream started at 0 but nobody read the socket until 0.25 s (call set-up):
    # twelve frames then arrive at once, and the stream goes on in real time.
    for k in range(12):
        timeline.caller(0.25, tone(k + 1))
    for k in range(12, 30):
        timeline.caller(0.02 * (k + 1) + 0.005, tone(k + 1))
    left, _ = channels(timeline.take(1.0, final=True))
    starts = [int(np.flatnonzero(left == k + 1)[0]) for k in range(30)]
    assert starts == [round(0.005 * RATE) + k * FRAME for k in range(30)]


def test_bot_is_placed_where_the_far_end_plays_it() -> None:
    timeline = CallTimeline(RATE)
    # The pacer sends 3 frames of lead at once at 0.5 s, then one every 20 ms.
    for j in range(10):
        timeline.bot(0.5 + max(0, j - 3) * 0.02, tone(j + 1))
    _, right = channels(timeline.take(1.0, final=True))
    start = round(0.5 * RATE)
    assert not right[:start].any()
    for j in range(10):
        assert (right[start + j * FRAME:start + (j + 1) * FRAME] == j + 1).all(), j
    assert not right[start + 10 * FRAME:].any()


def test_barge_in_removes_the_bot_audio_the_caller_never_heard() -> None:
    timeline = CallTimeline(RATE)
    for j in range(14):  # 280 ms of bot audio from 0.5 s, the last 60 ms still held
        timeline.bot(0.5 + max(0, j - 3) * 0.02, tone(7))
    timeline.cut(0.70)
    assert timeline.bot_end == round(0.70 * RATE)
    timeline.bot(0.80, tone(8))  # the next reply starts after the cut
    _, right = channels(timeline.take(1.0, final=True))
    heard = right[round(0.5 * RATE):round(0.70 * RATE)]
    assert (heard == 7).all()
    assert not right[round(0.70 * RATE):round(0.80 * RATE)].any()
    assert (right[round(0.80 * RATE):round(0.80 * RATE) + FRAME] == 8).all()


def test_samples_are_handed_out_only_once_older_than_the_margin() -> None:
    timeline = CallTimeline(RATE, margin_s=0.3)
    for k in range(50):
        timeline.caller(0.02 * (k + 1), tone(5))
    assert timeline.take(0.2) == b""
    first = timeline.take(1.0)
    assert len(first) == round(0.7 * RATE) * 4
    assert timeline.take(1.0) == b""
    rest = timeline.take(1.0, final=True)
    assert len(first) + len(rest) == RATE * 4


def test_final_take_cuts_the_bot_at_the_end_of_the_call() -> None:
    timeline = CallTimeline(RATE)
    for _ in range(50):  # a second of bot audio sent at once (an unpaced leg)
        timeline.bot(0.0, tone(3))
    _, right = channels(timeline.take(0.5, final=True))
    assert right.size == round(0.5 * RATE)  # the caller hung up at 0.5 s
    assert (right == 3).all()


# ---------------------------------------------------------------- the files


def test_header_round_trip_and_foreign_files_are_refused() -> None:
    header = parse_header(wav_header(16000, 640))
    assert header is not None and (header.sample_rate, header.data_bytes) == (16000, 640)
    assert parse_header(b"RIFF" + bytes(40)) is None
    assert parse_header(wav_header(8000, 0)[:20]) is None


def test_call_ids_never_become_paths(tmp_path: Path) -> None:
    files = RecordingFiles(tmp_path / "rec")
    for call_id in ("../../etc/passwd", "/abs", "a\x00b", "CA123", "é" * 300):
        path = files.path_for(call_id)
        assert path.parent == tmp_path / "rec"
        assert path.name.endswith(".wav") and all(c in "0123456789abcdef" for c in path.stem)
    assert files.path_for("CA1") != files.path_for("CA2")


def test_a_crashed_recordings_header_is_repaired_on_open(tmp_path: Path) -> None:
    files = RecordingFiles(tmp_path)
    samples = np.arange(2 * 8000, dtype=np.int16)  # a second of stereo at 8 kHz
    # What a killed process leaves: the header still says "empty", plus a torn frame.
    files.path_for("crashed").write_bytes(wav_header(8000, 0) + samples.tobytes() + b"\x01")
    info = files.info("crashed")
    assert info is not None
    assert info.duration_s == pytest.approx(1.0)
    assert info.bytes == HEADER_BYTES + samples.nbytes + 1
    rate, left, right = read_wav(info.path)
    assert rate == 8000 and left.size == 8000
    assert (left == samples[0::2]).all() and (right == samples[1::2]).all()
    assert files.info("never-recorded") is None
    files.path_for("junk").write_bytes(b"not a wav at all" * 10)
    assert files.info("junk") is None


def test_retention_deletes_only_old_recordings(tmp_path: Path) -> None:
    files = RecordingFiles(tmp_path)
    for name in ("old", "new"):
        files.path_for(name).write_bytes(wav_header(8000, 0))
    old = files.path_for("old")
    week_ago = old.stat().st_mtime - 7 * 86400
    os.utime(old, (week_ago, week_ago))
    (tmp_path / "notes.txt").write_text("not a recording")
    assert files.sweep(0) == 0  # 0 keeps everything
    assert files.sweep(30) == 0
    assert files.sweep(5) == 1
    assert not old.exists() and files.path_for("new").exists()
    assert (tmp_path / "notes.txt").exists()


# ---------------------------------------------------------------- the writer thread


async def test_writer_records_both_sides_and_keeps_the_header_current(tmp_path: Path) -> None:
    clock = Clock()
    files = RecordingFiles(tmp_path)
    writer = RecordingWriter(files, clock=clock, header_interval_s=1.0)
    writer.start()
    try:
        tap = writer.tap("call-1")
        for k in range(100):  # two seconds of caller audio; the bot speaks from 1 s
            clock.now += 0.02
            tap.caller_audio(encode(tone(1000), MULAW), MULAW)
            if k >= 50:
                tap.bot_audio(encode(tone(-2000), MULAW), MULAW)
        await writer.flush()
        # Mid-call, two seconds in: the header was rewritten on the way (about once a
        # second), never claiming more than is on disk.
        head = files.path_for("call-1").read_bytes()
        header = parse_header(head[:HEADER_BYTES])
        assert header is not None and header.sample_rate == RATE
        assert RATE * 4 // 2 <= header.data_bytes <= len(head) - HEADER_BYTES
        tap.close()
        tap.close()
        await writer.flush()
    finally:
        await writer.close()
    size = files.path_for("call-1").stat().st_size
    header = parse_header(files.path_for("call-1").read_bytes()[:HEADER_BYTES])
    assert header is not None and header.data_bytes == size - HEADER_BYTES
    rate, left, right = read_wav(files.path_for("call-1"))
    assert (rate, left.size) == (RATE, 2 * RATE)
    assert (np.abs(left.astype(int) - 1000) < 40).all()
    # The bot's first frame went out at 1.02 s (with caller frame 50, which ended then)
    # and plays from then on; its last, sent at 2.0 s as the call ended, was never heard.
    assert not right[:RATE + FRAME].any()
    assert (np.abs(right[RATE + FRAME:].astype(int) + 2000) < 80).all()
    assert oct(files.path_for("call-1").stat().st_mode & 0o777) == "0o600"


async def test_a_format_change_is_resampled_to_the_calls_rate(tmp_path: Path) -> None:
    clock = Clock()
    writer = RecordingWriter(RecordingFiles(tmp_path), clock=clock)
    writer.start()
    try:
        tap = writer.tap("call-2")
        clock.now += 0.02
        tap.caller_audio(encode(tone(500), MULAW), MULAW)  # fixes the rate at 8 kHz
        for _ in range(25):
            clock.now += 0.02
            tap.caller_audio(encode(tone(500, 320), L16_16K), L16_16K)
        tap.close()
    finally:
        await writer.close()
    rate, left, _ = read_wav(tmp_path / RecordingFiles.file_name("call-2"))
    assert (rate, left.size) == (RATE, 26 * FRAME)
    assert (np.abs(left[-FRAME:].astype(int) - 500) < 30).all()


class StuckFiles(RecordingFiles):
    """A disk that hangs on the first file until released."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.entered = threading.Event()
        self.release = threading.Event()

    def create(self, call_id: str, sample_rate: int) -> int:
        self.entered.set()
        self.release.wait(10)
        return super().create(call_id, sample_rate)


async def test_a_full_queue_drops_frames_never_blocks_and_still_closes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = StuckFiles(tmp_path)
    writer = RecordingWriter(files, max_pending_frames=10)
    writer.start()
    try:
        tap = writer.tap("slow-call")
        frame = encode(tone(100), MULAW)
        tap.caller_audio(frame, MULAW)
        assert await asyncio.to_thread(files.entered.wait, 5)
        for _ in range(30):
            tap.caller_audio(frame, MULAW)  # returns at once: the writer is stuck
        assert tap.dropped == 20 and writer.dropped_frames == 20
        warnings = [r for r in caplog.records if "slow-call" in r.getMessage()]
        assert len(warnings) == 1 and "dropping" in warnings[0].getMessage()
        tap.cut()
        tap.close()  # control items are never dropped
        files.release.set()
        await writer.flush()
    finally:
        files.release.set()
        await writer.close()
    assert writer.backlog == 0
    assert files.info("slow-call") is not None


# ---------------------------------------------------------------- the leg wrapper


async def test_recording_leg_tees_caller_bot_and_cut_and_closes(tmp_path: Path) -> None:
    recordings = Recordings(tmp_path, enabled=True)
    await recordings.start()
    try:
        fake = FakeLeg()
        leg = recorded(fake, recordings, "leg-call")
        assert isinstance(leg, RecordingLeg) and leg.inner is fake
        assert recorded(fake, Recordings(tmp_path, enabled=False), "x") is fake
        assert recorded(fake, None, "x") is fake

        class Listener:
            is_ended = False

            def __init__(self) -> None:
                self.heard: list[object] = []

            async def handle(self, event: object) -> None:
                self.heard.append(event)

            async def on_rejected(self, error: object) -> None: ...

            def on_inactive(self, idle_s: float) -> None: ...

        listener = Listener()
        frame = encode(tone(3000), MULAW)
        fake.receive(AudioEvent(frame))
        fake.receive(StopEvent())
        fake.disconnect()
        await leg.send_audio(encode(tone(-3000), MULAW))
        await leg.clear()
        await asyncio.wait_for(leg.run(listener), 5)
        assert [type(e) for e in listener.heard] == [AudioEvent, StopEvent]
        assert fake.frames and any(s.kind == "clear" for s in fake.sent)
        await leg.close("ended")
        assert fake.closed is not None
        assert recordings.writer is not None
        await recordings.writer.flush()
        info = await recordings.info("leg-call")
        assert info is not None and info.duration_s > 0
        assert await recordings.erase("leg-call")
        assert await recordings.info("leg-call") is None
        assert not await recordings.erase("leg-call")
    finally:
        await recordings.close()
