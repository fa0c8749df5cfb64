"""RTP header parse/serialise (RFC 3550 §5.1) and the outbound sequencer."""

from __future__ import annotations

import random
import struct

import pytest

from realtime_voice.rtp.packet import (
    RtpError,
    RtpPacket,
    RtpSequencer,
    looks_like_rtcp,
    parse_rtp,
    timestamp_step,
)

# A PCMU packet written out by hand: V=2, no P/X/CC, M=1, PT 0, seq 0x1234,
# ts 0xDEADBEEF, SSRC 0xCAFEBABE.
HAND_MADE = bytes.fromhex("80 80 1234 deadbeef cafebabe") + b"\xff" * 160


def test_parse_reads_every_fixed_field() -> None:
    packet = parse_rtp(HAND_MADE)
    assert packet == RtpPacket(0, 0x1234, 0xDEADBEEF, 0xCAFEBABE, b"\xff" * 160, marker=True)


def test_serialise_writes_the_same_bytes() -> None:
    assert parse_rtp(HAND_MADE).to_bytes() == HAND_MADE


def test_round_trip_with_csrcs_and_extension() -> None:
    packet = RtpPacket(
        111, 65535, 2**32 - 1, 1, b"opus", marker=False, csrcs=(7, 2**32 - 1),
        extension_profile=0xBEDE, extension=b"\x10\xaa\x00\x00",
    )
    wire = packet.to_bytes()
    assert wire[0] == 0x80 | 0x10 | 2
    assert parse_rtp(wire) == packet


def test_extension_is_skipped_to_find_the_payload() -> None:
    header = bytearray(HAND_MADE[:12])
    header[0] |= 0x10
    ext = struct.pack("!HH", 0x1000, 2) + b"12345678"
    packet = parse_rtp(bytes(header) + ext + b"payload")
    assert packet.payload == b"payload"
    assert packet.extension_profile == 0x1000
    assert packet.extension == b"12345678"


def test_padding_is_removed_count_included() -> None:
    header = bytearray(HAND_MADE[:12])
    header[0] |= 0x20
    packet = parse_rtp(bytes(header) + b"abc" + b"\x00\x00\x03")
    assert packet.payload == b"abc"


def test_padding_only_payload_is_empty() -> None:
    header = bytearray(HAND_MADE[:12])
    header[0] |= 0x20
    assert parse_rtp(bytes(header) + b"\x00\x02").payload == b""


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x80\x00\x00", "shorter than the 12-byte"),
        (b"\x40" + HAND_MADE[1:], "version 1"),
        (b"\x00" + HAND_MADE[1:], "version 0"),
        (b"\x83" + HAND_MADE[1:12] + b"\x00" * 8, "cannot hold the 3 CSRCs"),
        (b"\x90" + HAND_MADE[1:12] + b"\x00\x00", "no extension header"),
        (b"\x90" + HAND_MADE[1:12] + b"\x00\x00\x00\x05abcd", "runs past the packet"),
        (b"\xa0" + HAND_MADE[1:12] + b"ab\x00", "padding count 0"),
        (b"\xa0" + HAND_MADE[1:12] + b"ab\x04", "padding count 4"),
        (b"\xa0" + HAND_MADE[1:12], "padding count 0 does not fit the 0-byte"),
    ],
)
def test_bad_packets_raise_one_error_naming_the_problem(data: bytes, words: str) -> None:
    with pytest.raises(RtpError, match=words):
        parse_rtp(data)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"payload_type": 128}, "payload type"),
        ({"sequence": 65536}, "sequence"),
        ({"timestamp": -1}, "timestamp"),
        ({"ssrc": 2**32}, "SSRC"),
        ({"csrcs": tuple(range(16))}, "CSRC"),
        ({"extension": b"abcd"}, "without an extension profile"),
        ({"extension_profile": 1, "extension": b"abc"}, "whole words"),
        ({"extension_profile": 65536}, "extension profile"),
    ],
)
def test_fields_out_of_range_are_refused(fields: dict[str, object], words: str) -> None:
    base: dict[str, object] = {
        "payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0, "payload": b"",
    }
    with pytest.raises(RtpError, match=words):
        RtpPacket(**{**base, **fields})  # type: ignore[arg-type]


def test_rtcp_is_told_apart_from_rtp() -> None:
    sender_report = bytes.fromhex("80c8 0006") + b"\x00" * 24
    assert looks_like_rtcp(sender_report)
    assert not looks_like_rtcp(HAND_MADE)
    assert not looks_like_rtcp(b"\x80")


@pytest.mark.parametrize(("clock", "step"), [(8000, 160), (16000, 320), (48000, 960)])
def test_timestamp_step_per_codec_clock(clock: int, step: int) -> None:
    assert timestamp_step(clock) == step
    assert RtpSequencer(0, clock, rng=random.Random(1)).timestamp_step == step


def test_timestamp_step_must_be_whole() -> None:
    with pytest.raises(ValueError, match="whole number"):
        timestamp_step(8000, 0)


def test_sequencer_steps_seq_by_one_and_timestamp_by_the_clock() -> None:
    seq = RtpSequencer(109, 16000, ssrc=5, sequence=10, timestamp=1000)
    packets = [seq.next_audio(b"x") for _ in range(3)]
    assert [(p.sequence, p.timestamp, p.ssrc, p.payload_type) for p in packets] == [
        (10, 1000, 5, 109), (11, 1320, 5, 109), (12, 1640, 5, 109),
    ]


def test_marker_on_the_first_packet_of_each_talkspurt_only() -> None:
    seq = RtpSequencer(0, 8000, rng=random.Random(2))
    markers = [seq.next_audio(b"").marker for _ in range(3)]
    seq.start_talkspurt()
    markers += [seq.next_audio(b"").marker for _ in range(2)]
    assert markers == [True, False, False, True, False]


def test_sequence_and_timestamp_wrap() -> None:
    seq = RtpSequencer(0, 48000, sequence=65535, timestamp=2**32 - 960, ssrc=1)
    first, second = seq.next_audio(b""), seq.next_audio(b"")
    assert (first.sequence, first.timestamp) == (65535, 2**32 - 960)
    assert (second.sequence, second.timestamp) == (0, 0)


def test_initial_values_come_from_the_injected_rng() -> None:
    a = RtpSequencer(0, 8000, rng=random.Random(42))
    b = RtpSequencer(0, 8000, rng=random.Random(42))
    c = RtpSequencer(0, 8000, rng=random.Random(43))
    assert (a.ssrc, a.next_sequence, a.next_timestamp) == (
        b.ssrc, b.next_sequence, b.next_timestamp,
    )
    assert (a.ssrc, a.next_sequence, a.next_timestamp) != (
        c.ssrc, c.next_sequence, c.next_timestamp,
    )


def test_default_initial_values_are_random() -> None:
    values = {(s.ssrc, s.next_sequence) for s in (RtpSequencer(0, 8000) for _ in range(8))}
    assert len(values) == 8


def test_other_payloads_take_a_sequence_number_but_not_the_audio_clock() -> None:
    seq = RtpSequencer(0, 8000, ssrc=9, sequence=100, timestamp=8000)
    audio = seq.next_audio(b"a")
    event = seq.next_other(b"evnt", payload_type=101, timestamp=seq.next_timestamp, marker=True)
    seq.skip(1)
    after = seq.next_audio(b"b")
    assert (event.sequence, event.timestamp, event.payload_type, event.marker) == (
        101, 8160, 101, True,
    )
    assert (after.sequence, after.timestamp, after.ssrc) == (102, 8320, 9)
    assert audio.timestamp == 8000


def test_skip_refuses_negative_frames() -> None:
    with pytest.raises(ValueError, match="skip"):
        RtpSequencer(0, 8000, rng=random.Random(0)).skip(-1)


def test_bad_payload_type_fails_when_the_sequencer_is_made() -> None:
    with pytest.raises(RtpError, match="payload type"):
        RtpSequencer(200, 8000)
