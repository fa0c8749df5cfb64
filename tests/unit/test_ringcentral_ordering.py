"""Deduplication set and per-session reorder buffer of the RingCentral webhook."""

from __future__ import annotations

import pytest

from webhooks.ringcentral_ordering import ReorderBuffer, SeenSet


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_seen_set_reports_duplicates_until_the_ttl_passes() -> None:
    clock = Clock()
    seen = SeenSet(ttl_s=60, max_items=10, clock=clock)
    assert seen.add("a")
    assert not seen.add("a")
    clock.now += 59
    assert not seen.add("a")
    clock.now += 2
    assert seen.add("a")  # forgotten after the TTL, so taken as new


def test_seen_set_is_bounded_oldest_first() -> None:
    seen = SeenSet(ttl_s=60, max_items=3, clock=Clock())
    for key in "abcd":
        assert seen.add(key)
    assert len(seen) == 3
    assert seen.add("a")  # evicted to make room for d
    assert not seen.add("d")


def test_seen_set_discard() -> None:
    seen = SeenSet(ttl_s=60, max_items=3, clock=Clock())
    seen.add("a")
    seen.discard("a")
    assert seen.add("a")


def test_seen_set_rejects_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        SeenSet(ttl_s=0, max_items=3)


def test_first_event_waits_for_the_window_then_lower_sequences_come_first() -> None:
    clock = Clock()
    buf: ReorderBuffer[str] = ReorderBuffer(window_s=0.5, clock=clock)
    assert buf.push("s", 3, "three").ready == []
    assert buf.next_deadline() == pytest.approx(100.5)
    clock.now += 0.2
    assert buf.push("s", 2, "two").ready == []
    assert buf.due() == []
    clock.now += 0.3
    # "three" is due; "two" (lower, not yet due itself) goes out before it.
    assert buf.due() == ["two", "three"]
    assert buf.held == 0
    assert buf.next_deadline() is None


def test_the_next_sequence_is_released_at_once() -> None:
    clock = Clock()
    buf: ReorderBuffer[str] = ReorderBuffer(window_s=0.5, clock=clock)
    buf.push("s", 1, "one")
    clock.now += 1
    assert buf.due() == ["one"]
    assert buf.push("s", 2, "two").ready == ["two"]
    # A gap (other parties' events are not delivered) waits for the window.
    assert buf.push("s", 5, "five").ready == []
    assert buf.held == 1


def test_late_events_are_reported_and_dropped() -> None:
    clock = Clock()
    buf: ReorderBuffer[str] = ReorderBuffer(window_s=0.5, clock=clock)
    buf.push("s", 4, "four")
    clock.now += 1
    assert buf.due() == ["four"]
    result = buf.push("s", 2, "two")
    assert result.late
    assert result.ready == []
    assert buf.push("s", 4, "four again").late


def test_keys_are_independent() -> None:
    clock = Clock()
    buf: ReorderBuffer[str] = ReorderBuffer(window_s=0.5, clock=clock)
    buf.push("a", 9, "a9")
    clock.now += 0.4
    buf.push("b", 1, "b1")
    clock.now += 0.1
    assert buf.due() == ["a9"]
    assert not buf.push("b", 0, "b0").late  # b released nothing yet
    clock.now += 0.5
    assert buf.due() == ["b0", "b1"]


def test_zero_window_releases_immediately_in_arrival_order() -> None:
    buf: ReorderBuffer[str] = ReorderBuffer(window_s=0.0, clock=Clock())
    assert buf.push("s", 3, "three").ready == ["three"]
    assert buf.push("s", 2, "two").late
    assert buf.push("s", 7, "seven").ready == ["seven"]


def test_held_items_are_bounded_per_key() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(window_s=10, max_pending=2, clock=Clock())
    assert buf.push("s", 5, 5).ready == []
    assert buf.push("s", 3, 3).ready == []
    assert buf.push("s", 4, 4).ready == [3]
    assert buf.held == 2


def test_flush_releases_everything_in_order() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(window_s=10, clock=Clock())
    for seq in (4, 2, 3):
        buf.push("s", seq, seq)
    buf.push("t", 1, 1)
    assert buf.flush() == [2, 3, 4, 1]
    assert buf.held == 0


def test_idle_sessions_are_forgotten_beyond_the_bound() -> None:
    clock = Clock()
    buf: ReorderBuffer[str] = ReorderBuffer(window_s=0.0, max_keys=2, clock=clock)
    buf.push("a", 5, "a5")
    buf.push("b", 5, "b5")
    buf.push("c", 5, "c5")  # "a" is forgotten: its next event is no longer late
    assert not buf.push("a", 1, "a1").late
    assert buf.push("c", 1, "c1").late
