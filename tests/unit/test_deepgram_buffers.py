"""The Deepgram bridge's inbox (drop-oldest, control never dropped) and replay buffer."""

from __future__ import annotations

import threading

import pytest

from realtime_voice.providers.deepgram_buffers import AudioInbox, Control, ReplayBuffer


def frame(n: int) -> bytes:
    return n.to_bytes(2, "little") * 160


def test_inbox_drops_the_oldest_audio_and_keeps_its_bound() -> None:
    inbox = AudioInbox(3)
    dropped = [inbox.put_audio(frame(n)) for n in range(5)]
    assert dropped == [False, False, False, True, True]
    assert inbox.audio_frames == 3
    assert inbox.get(0.0, 10) == [frame(2), frame(3), frame(4)]
    assert inbox.audio_frames == 0


def test_control_items_are_never_dropped_and_keep_their_place() -> None:
    inbox = AudioInbox(2)
    inbox.put_audio(frame(0))
    inbox.put_control(Control.FINALIZE)
    inbox.put_audio(frame(1))
    inbox.put_audio(frame(2))  # full: frame 0 goes, the Finalize before frame 1 stays
    inbox.put_control(Control.STOP)
    assert inbox.get(0.0, 10) == [Control.FINALIZE]
    assert inbox.get(0.0, 10) == [frame(1), frame(2)]
    assert inbox.get(0.0, 10) == [Control.STOP]
    assert inbox.get(0.0, 10) == []


def test_batches_stop_at_a_control_item_and_at_the_batch_size() -> None:
    inbox = AudioInbox(10)
    for n in range(3):
        inbox.put_audio(frame(n))
    inbox.put_control(Control.STOP)
    inbox.put_audio(frame(3))
    assert inbox.get(0.0, 2) == [frame(0), frame(1)]
    assert inbox.get(0.0, 2) == [frame(2)]
    assert inbox.get(0.0, 2) == [Control.STOP]
    assert inbox.get(0.0, 2) == [frame(3)]


def test_wake_releases_a_waiting_consumer_empty_handed() -> None:
    inbox = AudioInbox(4)
    got: list[list[bytes | Control]] = []
    waiting = threading.Thread(target=lambda: got.append(inbox.get(30.0, 5)))
    waiting.start()
    inbox.wake()
    waiting.join(10.0)
    assert not waiting.is_alive()
    assert got == [[]]


def test_inbox_rejects_a_zero_bound() -> None:
    with pytest.raises(ValueError, match="max_frames"):
        AudioInbox(0)


def test_replay_buffer_keeps_what_no_final_has_covered() -> None:
    replay = ReplayBuffer(10_000)
    starts = [replay.append(frame(n)) for n in range(4)]
    assert starts == [0, 320, 640, 960]
    replay.covered_until(700)  # frames 0 and 1 end before 700; frame 2 spans it
    pending = replay.pending()
    assert pending.start == 640
    assert pending.chunks == (frame(2), frame(3))
    assert replay.held_bytes == 640
    replay.covered_until(5_000)
    assert replay.pending().chunks == ()
    assert replay.pending().start == replay.end == 1280


def test_replay_buffer_forgets_the_oldest_beyond_its_bound_and_counts_it() -> None:
    replay = ReplayBuffer(700)
    for n in range(4):
        replay.append(frame(n))
    assert replay.held_bytes <= 700
    assert replay.overflow_bytes == 640
    assert replay.pending().start == 640


def test_a_consumer_is_woken_per_wake_frames_and_at_once_for_control() -> None:
    inbox = AudioInbox(10, wake_frames=2)
    inbox.put_audio(frame(0))
    got: list[list[bytes | Control]] = []
    waiting = threading.Thread(target=lambda: got.append(inbox.get(30.0, 5)))
    waiting.start()  # one frame is not enough: it waits for the second
    inbox.put_audio(frame(1))
    waiting.join(10.0)
    assert got == [[frame(0), frame(1)]]
    inbox.put_audio(frame(2))
    assert inbox.get(0.0, 5) == [frame(2)]  # a partial batch goes out at the timeout
    waiting = threading.Thread(target=lambda: got.append(inbox.get(30.0, 5)))
    waiting.start()
    inbox.put_control(Control.FINALIZE)
    waiting.join(10.0)
    assert got[-1] == [Control.FINALIZE]


def test_raising_wake_frames_holds_the_consumer_and_lowering_it_wakes_it() -> None:
    inbox = AudioInbox(10, wake_frames=2)
    inbox.set_wake_frames(5)
    for k in range(4):
        inbox.put_audio(frame(k))
    got: list[list[bytes | Control]] = []
    waiting = threading.Thread(target=lambda: got.append(inbox.get(30.0, 5)))
    waiting.start()  # four frames are not a batch of five: it waits
    waiting.join(0.05)
    assert waiting.is_alive() and inbox.wake_frames == 5
    inbox.set_wake_frames(2)  # four queued ≥ two: the waiting consumer goes at once
    waiting.join(10.0)
    assert got == [[frame(0), frame(1), frame(2), frame(3)]]
    with pytest.raises(ValueError, match="at least 1"):
        inbox.set_wake_frames(0)
