"""RFC 4733 telephone-events: payload codec, receiver (each digit once), sender ticks."""

from __future__ import annotations

import itertools

import pytest

from realtime_voice.rtp.dtmf import (
    DIGITS,
    DtmfDigit,
    DtmfError,
    DtmfReceiver,
    TelephoneEvent,
    dtmf_packets,
    is_stray_telephone_event,
)
from realtime_voice.rtp.packet import RtpPacket, RtpSequencer

EVENT_PT = 101
AUDIO_PT = 0


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _receiver(clock: FakeClock | None = None) -> DtmfReceiver:
    return DtmfReceiver(EVENT_PT, AUDIO_PT, clock=clock or FakeClock(), end_timeout_s=0.5)


def _event_packet(
    seq: int, ts: int, event: TelephoneEvent, *, marker: bool = False, ssrc: int = 1
) -> RtpPacket:
    return RtpPacket(EVENT_PT, seq, ts, ssrc, event.to_bytes(), marker=marker)


def _digit_run(code: int, ts: int, seq: int = 0, *, ends: int = 3) -> list[RtpPacket]:
    """What a peer sends for one 100 ms digit: 4 updates, then ``ends`` end packets."""
    run = [
        _event_packet(seq + i, ts, TelephoneEvent(code, False, 10, 160 * (i + 1)), marker=i == 0)
        for i in range(4)
    ]
    end = TelephoneEvent(code, True, 10, 800)
    run += [_event_packet(seq + 4 + i, ts, end) for i in range(ends)]
    return run


def _feed_all(receiver: DtmfReceiver, packets: list[RtpPacket]) -> list[DtmfDigit]:
    return [d for p in packets for d in receiver.feed(p).digits]


def test_payload_round_trip() -> None:
    event = TelephoneEvent(11, end=True, volume=63, duration=65535)
    assert event.to_bytes() == bytes((11, 0x80 | 63, 0xFF, 0xFF))
    assert TelephoneEvent.from_bytes(event.to_bytes()) == event


def test_payload_fields_by_hand() -> None:
    event = TelephoneEvent.from_bytes(bytes.fromhex("05 0a 03 20"))
    assert (event.event, event.end, event.volume, event.duration) == (5, False, 10, 800)
    assert event.digit == "5"


def test_reserved_bit_is_ignored() -> None:
    assert TelephoneEvent.from_bytes(b"\x01\xca\x00\xa0") == TelephoneEvent(1, True, 10, 160)


def test_several_blocks_decode_to_the_last() -> None:
    payload = TelephoneEvent(1, True, 10, 800).to_bytes() + TelephoneEvent(2).to_bytes()
    assert TelephoneEvent.from_bytes(payload).event == 2


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05"])
def test_wrong_sizes_raise_dtmf_error(payload: bytes) -> None:
    with pytest.raises(DtmfError, match="telephone-event payload"):
        TelephoneEvent.from_bytes(payload)


@pytest.mark.parametrize(
    ("fields", "words"),
    [({"event": 256}, "event"), ({"event": 0, "volume": 64}, "volume"),
     ({"event": 0, "duration": 65536}, "duration")],
)
def test_fields_out_of_range(fields: dict[str, int], words: str) -> None:
    with pytest.raises(DtmfError, match=words):
        TelephoneEvent(**fields)


def test_digit_names_for_all_sixteen_events() -> None:
    assert [TelephoneEvent(i).digit for i in range(16)] == list(DIGITS)
    assert TelephoneEvent(16).digit is None


def test_a_digit_comes_out_once_for_its_whole_run() -> None:
    receiver = _receiver()
    digits = _feed_all(receiver, _digit_run(4, ts=8000))
    assert digits == [DtmfDigit("4", 100, "end")]
    assert receiver.stats.repeats == 2  # the second and third end packets
    assert receiver.stats.digits == 1


def test_two_presses_of_the_same_digit_are_two_digits() -> None:
    receiver = _receiver()
    digits = _feed_all(receiver, _digit_run(1, ts=8000) + _digit_run(1, ts=9600, seq=7))
    assert [d.digit for d in digits] == ["1", "1"]


def test_duplicated_and_reordered_packets_do_not_repeat_a_digit() -> None:
    receiver = _receiver()
    run = _digit_run(9, ts=1000)
    shuffled = [run[0], run[2], run[1], run[1], run[3], run[5], run[4], run[6], run[0]]
    assert [d.digit for d in _feed_all(receiver, shuffled)] == ["9"]


def test_lost_end_packets_are_ended_by_the_next_event() -> None:
    receiver = _receiver()
    digits = _feed_all(receiver, _digit_run(2, ts=1000, ends=0) + _digit_run(3, ts=3000, seq=4))
    assert digits == [DtmfDigit("2", 80, "next"), DtmfDigit("3", 100, "end")]


def test_lost_end_packets_are_ended_by_the_timeout() -> None:
    clock = FakeClock()
    receiver = _receiver(clock)
    assert _feed_all(receiver, _digit_run(7, ts=1000, ends=0)) == []
    clock.now += 0.49
    assert receiver.poll() == ()
    clock.now += 0.02
    assert receiver.poll() == (DtmfDigit("7", 80, "timeout"),)
    assert receiver.poll() == ()
    assert receiver.stats.timeouts == 1


def test_end_packets_after_the_timeout_do_not_repeat_the_digit() -> None:
    clock = FakeClock()
    receiver = _receiver(clock)
    run = _digit_run(7, ts=1000)
    _feed_all(receiver, run[:4])
    clock.now += 1.0
    assert [d.ended_by for d in receiver.poll()] == ["timeout"]
    assert _feed_all(receiver, run[4:]) == []


def test_the_timeout_is_also_checked_when_the_next_packet_arrives() -> None:
    clock = FakeClock()
    receiver = _receiver(clock)
    _feed_all(receiver, _digit_run(5, ts=1000, ends=0))
    clock.now += 2.0
    result = receiver.feed(RtpPacket(AUDIO_PT, 9, 5000, 1, b"\xff" * 160))
    assert result.audio
    assert result.digits == (DtmfDigit("5", 80, "timeout"),)


def test_a_long_press_with_steady_updates_does_not_time_out() -> None:
    clock = FakeClock()
    receiver = _receiver(clock)
    for i in range(100):
        clock.now += 0.05
        receiver.feed(_event_packet(i, 1000, TelephoneEvent(0, False, 10, 400 * (i + 1) % 65536)))
        assert receiver.poll() == ()


def test_a_late_packet_of_an_event_already_ended_is_a_repeat() -> None:
    receiver = _receiver()
    first, second = _digit_run(1, ts=1000), _digit_run(2, ts=3000, seq=7)
    digits = _feed_all(receiver, first[:2] + second[:2] + first[2:3] + second[2:])
    assert [(d.digit, d.ended_by) for d in digits] == [("1", "next"), ("2", "end")]
    assert receiver.stats.stale == 0


def test_a_straggler_from_an_unseen_earlier_event_is_stale() -> None:
    receiver = _receiver()
    current, straggler = _digit_run(2, ts=3000), _digit_run(1, ts=1000, seq=20)
    digits = _feed_all(receiver, current[:2] + straggler[4:5] + current[2:])
    assert [d.digit for d in digits] == ["2"]
    assert receiver.stats.stale == 1


def test_timestamps_that_wrap_still_order_events() -> None:
    receiver = _receiver()
    digits = _feed_all(
        receiver, _digit_run(1, ts=2**32 - 400, ends=0) + _digit_run(2, ts=400, seq=4)
    )
    assert [d.digit for d in digits] == ["1", "2"]


def test_a_new_ssrc_with_the_same_timestamp_is_a_new_event() -> None:
    receiver = _receiver()
    other = [
        RtpPacket(p.payload_type, p.sequence, p.timestamp, 2, p.payload, marker=p.marker)
        for p in _digit_run(6, ts=1000)
    ]
    assert [d.digit for d in _feed_all(receiver, _digit_run(6, ts=1000) + other)] == ["6", "6"]


def test_non_digit_events_are_consumed_silently() -> None:
    receiver = _receiver()
    flash = [_event_packet(0, 1000, TelephoneEvent(16, True, 10, 800))]
    assert _feed_all(receiver, flash) == []
    assert receiver.stats.other_events == 1


def test_audio_packets_are_passed_as_audio() -> None:
    result = _receiver().feed(RtpPacket(AUDIO_PT, 1, 160, 1, b"\xff" * 160))
    assert result.audio
    assert result.digits == ()


def test_ringcentral_events_under_the_audio_type_are_dropped() -> None:
    receiver = _receiver()
    # The exact shape RingCentral's SDK filters: digit, E bit, volume 10, duration 960.
    stray = RtpPacket(AUDIO_PT, 1, 160, 1, bytes((3, 0x8A, 0x03, 0xC0)))
    result = receiver.feed(stray)
    assert not result.audio
    assert result.digits == ()
    assert receiver.stats.stray_audio_events == 1


@pytest.mark.parametrize(
    ("payload", "stray"),
    [
        (bytes((0, 0x8A, 0x03, 0xC0)), True),
        (bytes((15, 0x0A, 0x00, 0xA0)), True),
        (bytes((16, 0x80, 0x03, 0x20)), True),
        (bytes((17, 0x8A, 0x03, 0xC0)), False),  # not a DTMF/flash event code
        (bytes((3, 0xCA, 0x03, 0xC0)), False),  # reserved bit set
        (bytes((3, 0x8A, 0x03)), False),
        (b"\xff" * 160, False),
    ],
)
def test_stray_event_shape(payload: bytes, stray: bool) -> None:
    assert is_stray_telephone_event(payload) is stray


def test_malformed_event_payloads_are_counted() -> None:
    receiver = _receiver()
    result = receiver.feed(RtpPacket(EVENT_PT, 1, 160, 1, b"\x01\x02"))
    assert not result.audio
    assert receiver.stats.malformed == 1


def test_other_payload_types_are_neither_audio_nor_events() -> None:
    receiver = _receiver()
    assert not receiver.feed(RtpPacket(13, 1, 160, 1, b"\x40")).audio  # comfort noise
    assert receiver.stats.other_payload_types == 1


def test_sender_ticks_for_a_default_digit() -> None:
    packets = list(dtmf_packets("5", timestamp=12345))
    events = [TelephoneEvent.from_bytes(p.payload) for p in packets]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert {p.timestamp for p in packets} == {12345}
    assert {e.event for e in events} == {5}
    assert {e.volume for e in events} == {10}


def test_sender_at_other_clocks_and_durations() -> None:
    events = [
        TelephoneEvent.from_bytes(p.payload)
        for p in dtmf_packets("#", timestamp=0, clock_rate=16000, duration_ms=60)
    ]
    assert [(e.event, e.duration, e.end) for e in events] == [
        (11, 320, False), (11, 640, False), (11, 960, True), (11, 960, True), (11, 960, True),
    ]


def test_sender_for_a_one_tick_digit_is_three_end_packets_with_the_marker_first() -> None:
    packets = list(dtmf_packets("a", timestamp=2**32 + 5, duration_ms=20))
    assert [(p.marker, p.end, p.timestamp) for p in packets] == [
        (True, True, 5), (False, True, 5), (False, True, 5),
    ]


@pytest.mark.parametrize(
    ("digit", "kwargs"),
    [("x", {}), ("12", {}), ("", {}), ("1", {"duration_ms": 10}), ("1", {"duration_ms": 9000}),
     ("1", {"volume": 64})],
)
def test_sender_refuses_bad_input(digit: str, kwargs: dict[str, int]) -> None:
    with pytest.raises(DtmfError):
        list(dtmf_packets(digit, timestamp=0, **kwargs))


def test_sender_and_receiver_agree_through_the_sequencer() -> None:
    seq = RtpSequencer(AUDIO_PT, 8000, ssrc=3, sequence=65533, timestamp=2**32 - 160)
    receiver = _receiver()
    wire: list[RtpPacket] = [seq.next_audio(b"\xff" * 160)]
    for digit in "19#":
        for p in dtmf_packets(digit, timestamp=seq.next_timestamp):
            wire.append(
                seq.next_other(p.payload, payload_type=EVENT_PT, timestamp=p.timestamp,
                               marker=p.marker)
            )
            seq.skip()
        wire.append(seq.next_audio(b"\xff" * 160))
    results = [receiver.feed(p) for p in wire]
    assert "".join(d.digit for r in results for d in r.digits) == "19#"
    assert sum(r.audio for r in results) == 4
    # Audio timestamps stayed on the frame clock: one audio tick and 7 event ticks apart.
    audio_ts = [p.timestamp for p in wire if p.payload_type == AUDIO_PT]
    assert [(b - a) % 2**32 for a, b in itertools.pairwise(audio_ts)] == [8 * 160] * 3
