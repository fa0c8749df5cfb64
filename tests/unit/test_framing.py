"""FrameChunker: arbitrary chunks in, exact frames out, bounded remainder."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_voice.audio.framing import FrameChunker


def stream(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_random_chunks_reassemble_to_the_same_stream(kind: type) -> None:
    data = stream(50_000)
    rng = np.random.default_rng(3)
    chunker = FrameChunker(160, 64_000)
    frames: list[bytes] = []
    i = 0
    while i < len(data):
        size = int(rng.integers(0, 500))
        frames += chunker.push(kind(data[i : i + size]))
        i += size
        assert chunker.pending < 160
    assert all(type(f) is bytes and len(f) == 160 for f in frames)
    whole = len(data) // 160 * 160
    assert b"".join(frames) == data[:whole]
    assert chunker.pending == len(data) - whole
    assert chunker.flush() == data[whole:]
    assert chunker.dropped_bytes == 0


def test_exact_frames_pass_straight_through() -> None:
    chunker = FrameChunker(160, 64_000)
    frame = stream(160)
    assert chunker.push(frame) == [frame]
    assert chunker.pending == 0


def test_a_big_push_yields_many_frames_and_keeps_the_rest() -> None:
    chunker = FrameChunker(160, 64_000)
    data = stream(160 * 7 + 5)
    frames = chunker.push(data)
    assert len(frames) == 7
    assert chunker.pending == 5
    # The remainder completes with the next push.
    rest = stream(155, seed=2)
    assert chunker.push(rest) == [data[-5:] + rest]


def test_flush_returns_the_remainder_once() -> None:
    chunker = FrameChunker(160, 64_000)
    assert chunker.flush() is None
    chunker.push(b"\x01\x02\x03")
    assert chunker.flush() == b"\x01\x02\x03"
    assert chunker.pending == 0
    assert chunker.flush() is None


def test_flush_pads_to_a_whole_frame() -> None:
    chunker = FrameChunker(8, 64_000)
    chunker.push(b"abc")
    assert chunker.flush(pad_byte=0xFF) == b"abc" + b"\xff" * 5
    assert chunker.flush(pad_byte=0xFF) is None


def test_flush_refuses_a_pad_that_is_not_a_byte() -> None:
    chunker = FrameChunker(8, 64_000)
    chunker.push(b"abc")
    with pytest.raises(ValueError, match="pad_byte"):
        chunker.flush(pad_byte=256)
    assert chunker.pending == 3


def test_overflow_drops_the_oldest_bytes_and_counts_them() -> None:
    # A frame larger than the bound can never complete across pushes: the bound wins.
    chunker = FrameChunker(frame_bytes=100, max_pending_bytes=30)
    assert chunker.push(b"A" * 20) == []
    assert chunker.push(b"B" * 20) == []
    assert chunker.pending == 30
    assert chunker.dropped_bytes == 10
    assert chunker.push(b"C" * 5) == []
    assert chunker.dropped_bytes == 15
    assert chunker.flush() == b"A" * 5 + b"B" * 20 + b"C" * 5


def test_a_whole_frame_in_one_push_is_still_delivered_over_the_bound() -> None:
    chunker = FrameChunker(frame_bytes=100, max_pending_bytes=30)
    data = stream(250)
    assert chunker.push(data) == [data[:100], data[100:200]]
    assert chunker.pending == 30
    assert chunker.dropped_bytes == 20
    assert chunker.flush() == data[-30:]


def test_format_change_drops_the_partial_frame_and_uses_the_new_size() -> None:
    chunker = FrameChunker(160, 64_000)
    chunker.push(stream(100))
    chunker.set_frame_bytes(320)
    assert chunker.frame_bytes == 320
    assert chunker.pending == 0
    assert chunker.dropped_bytes == 100
    data = stream(640, seed=9)
    assert chunker.push(data) == [data[:320], data[320:]]


@pytest.mark.parametrize("bad", [0, -160])
def test_frame_size_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError, match="frame_bytes"):
        FrameChunker(bad, 64_000)
    with pytest.raises(ValueError, match="frame_bytes"):
        FrameChunker(160, 64_000).set_frame_bytes(bad)


def test_bound_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_pending_bytes"):
        FrameChunker(160, -1)


def test_pushed_buffers_are_not_retained() -> None:
    # The chunker copies what it keeps, so callers may reuse their receive buffer.
    chunker = FrameChunker(8, 64_000)
    buffer = bytearray(b"12345")
    chunker.push(buffer)
    buffer[:] = b"xxxxx"
    assert chunker.push(b"678") == [b"12345678"]
