"""The fixed-depth jitter buffer: buffering, reorder, loss, late/duplicate, wrap, reset, bounds."""

from __future__ import annotations

import pytest

from realtime_voice.rtp.jitter import LOST, JitterBuffer, Lost, PushResult

STEP = 160  # 20 ms at 8 kHz


def _buffer(**kwargs: int) -> JitterBuffer:
    return JitterBuffer(8000, **kwargs)


def _push(jb: JitterBuffer, seq: int, *, ssrc: int = 1, ts: int | None = None) -> PushResult:
    timestamp = (seq * STEP if ts is None else ts) & 0xFFFFFFFF
    return jb.push(seq & 0xFFFF, timestamp, f"p{seq}".encode(), ssrc)


def _pops(jb: JitterBuffer, n: int) -> list[bytes | Lost | None]:
    return [jb.pop() for _ in range(n)]


def test_nothing_comes_out_before_the_target_depth() -> None:
    jb = _buffer(target_ms=60)
    assert jb.pop() is None
    _push(jb, 10)
    _push(jb, 11)
    assert jb.pop() is None
    assert not jb.playing
    _push(jb, 12)
    assert jb.depth_ms == 60
    assert _pops(jb, 3) == [b"p10", b"p11", b"p12"]
    assert jb.playing


def test_target_of_40_ms_starts_after_two_packets() -> None:
    jb = _buffer(target_ms=40)
    _push(jb, 1)
    assert jb.pop() is None
    _push(jb, 2)
    assert jb.pop() == b"p1"


def test_reordered_packets_within_the_depth_play_in_order() -> None:
    jb = _buffer(target_ms=60)
    for seq in (3, 1, 2, 5, 4, 6):
        assert _push(jb, seq) is PushResult.QUEUED
    assert _pops(jb, 6) == [b"p1", b"p2", b"p3", b"p4", b"p5", b"p6"]
    assert jb.stats.played == 6


def test_a_missing_packet_is_lost_so_the_codec_can_conceal() -> None:
    jb = _buffer(target_ms=40)
    for seq in (1, 2, 4, 5):
        _push(jb, seq)
    assert _pops(jb, 4) == [b"p1", b"p2", LOST, b"p4"]
    assert jb.stats.lost == 1


def test_a_packet_after_its_slot_is_late_and_dropped() -> None:
    jb = _buffer(target_ms=40)
    for seq in (1, 2, 4):
        _push(jb, seq)
    assert _pops(jb, 3) == [b"p1", b"p2", LOST]
    assert _push(jb, 3) is PushResult.LATE
    assert jb.pop() == b"p4"
    assert jb.stats.late == 1


def test_duplicates_are_dropped_whether_held_or_already_played() -> None:
    jb = _buffer(target_ms=40)
    _push(jb, 1)
    assert _push(jb, 1) is PushResult.DUPLICATE
    _push(jb, 2)
    assert jb.pop() == b"p1"
    assert _push(jb, 1) is PushResult.DUPLICATE
    assert jb.stats.duplicates == 2
    assert jb.stats.late == 0
    assert _pops(jb, 1) == [b"p2"]


def test_sequence_wrap_around_is_seamless() -> None:
    jb = _buffer(target_ms=60)
    for seq in (65534, 0, 65535, 1, 2):
        assert _push(jb, seq, ts=(seq - 65534) % 65536 * STEP) is PushResult.QUEUED
    assert _pops(jb, 5) == [b"p65534", b"p65535", b"p0", b"p1", b"p2"]
    assert jb.stats.resets == 0


def test_late_detection_works_across_the_wrap() -> None:
    jb = _buffer(target_ms=40)
    for seq in (65534, 65535, 1):
        _push(jb, seq, ts=(seq - 65534) % 65536 * STEP)
    assert _pops(jb, 3) == [b"p65534", b"p65535", LOST]
    assert _push(jb, 0, ts=2 * STEP) is PushResult.LATE


def test_an_ssrc_change_resets_and_buffers_afresh() -> None:
    jb = _buffer(target_ms=40)
    for seq in (1, 2, 3):
        _push(jb, seq)
    assert jb.pop() == b"p1"
    assert _push(jb, 500, ssrc=2) is PushResult.RESET
    assert jb.pop() is None  # buffering the new stream
    _push(jb, 501, ssrc=2)
    assert _pops(jb, 2) == [b"p500", b"p501"]
    assert jb.stats.resets == 1


def test_a_big_sequence_jump_resets() -> None:
    jb = _buffer(target_ms=40, max_jump=50)
    for seq in (1, 2):
        _push(jb, seq)
    assert jb.pop() == b"p1"
    assert _push(jb, 1000) is PushResult.RESET
    _push(jb, 1001)
    assert _pops(jb, 2) == [b"p1000", b"p1001"]


def test_a_big_backward_jump_resets_too() -> None:
    jb = _buffer(target_ms=40, max_jump=50)
    for seq in (30000, 30001):
        _push(jb, seq)
    assert _push(jb, 5) is PushResult.RESET


def test_a_timestamp_jump_with_contiguous_sequence_resets() -> None:
    jb = _buffer(target_ms=40, max_jump=50)
    _push(jb, 1)
    _push(jb, 2)
    assert _push(jb, 3, ts=3 * STEP + 51 * STEP) is PushResult.RESET
    assert _push(jb, 4, ts=4 * STEP + 51 * STEP) is PushResult.QUEUED


def test_a_small_timestamp_wobble_is_not_a_jump() -> None:
    jb = _buffer(target_ms=40, max_jump=50)
    _push(jb, 1)
    assert _push(jb, 2, ts=2 * STEP + 3 * STEP) is PushResult.QUEUED


def test_memory_is_bounded_by_max_packets() -> None:
    jb = _buffer(target_ms=40, max_depth_ms=200, max_packets=10, max_jump=100)
    for seq in range(1, 40):
        _push(jb, seq)
    assert jb.stats.overflow == 29
    assert jb.depth_ms <= 200
    assert jb.pop() == b"p30"


def test_depth_is_trimmed_back_to_the_target() -> None:
    jb = _buffer(target_ms=40, max_depth_ms=100, max_packets=20)
    _push(jb, 1)
    _push(jb, 2)
    assert jb.pop() == b"p1"
    for seq in range(3, 12):  # a burst: 9 packets at once
        _push(jb, seq)
    assert jb.pop() == b"p10"  # skipped to the last target_ms of audio
    assert jb.pop() == b"p11"
    assert jb.stats.trimmed == 8  # p2 to p9


def test_a_quiet_stream_rebuffers_instead_of_concealing_forever() -> None:
    jb = _buffer(target_ms=40)
    for seq in (1, 2):
        _push(jb, seq)
    assert _pops(jb, 2) == [b"p1", b"p2"]
    assert _pops(jb, 2) == [LOST, LOST]  # short gap: concealed
    assert _pops(jb, 3) == [None, None, None]  # the peer paused: wait
    assert jb.stats.rebuffers == 1
    # It resumes where it left off (a pause, not a loss): not late.
    assert _push(jb, 3) is PushResult.QUEUED
    _push(jb, 4)
    assert _pops(jb, 2) == [b"p3", b"p4"]


def test_depth_reports_the_buffered_audio() -> None:
    jb = _buffer(target_ms=60)
    assert jb.depth_ms == 0
    for seq in (1, 2, 3, 4):
        _push(jb, seq)
    assert jb.depth_ms == 80
    jb.pop()
    assert jb.depth_ms == 60


def test_sizes_must_fit_together() -> None:
    with pytest.raises(ValueError, match="target_ms"):
        JitterBuffer(8000, target_ms=100, max_depth_ms=60)
    with pytest.raises(ValueError, match="max_packets"):
        JitterBuffer(8000, max_depth_ms=200, max_packets=5)


def test_every_push_is_counted() -> None:
    jb = _buffer()
    for seq in (1, 1, 2):
        _push(jb, seq)
    assert jb.stats.pushed == 3
