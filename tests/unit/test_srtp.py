"""SRTP (AES_CM_128_HMAC_SHA1_80) per call: round trip, drops counted by cause, rekey, ROC."""

from __future__ import annotations

import pytest

from realtime_voice.rtp.packet import RtpPacket, RtpSequencer, parse_rtp
from realtime_voice.rtp.srtp import (
    SRTP_AUTH_TAG_SIZE,
    SRTP_KEY_SIZE,
    SrtpContext,
    SrtpStats,
    generate_key,
)

# libsrtp's own known-answer test (test/srtp_driver.c, srtp_validate): the first 30
# bytes of its test_key, a 28-byte RTP packet with SSRC 0xcafebabe, and the SRTP packet
# libsrtp must produce from it.
LIBSRTP_KEY = bytes.fromhex(
    "e1f97a0d3e018be0d64fa32c06de4139"  # master key
    "0ec675ad498afeebb6960b3aabe6"  # master salt
)
LIBSRTP_PLAIN = bytes.fromhex("800f1234decafbadcafebabe") + b"\xab" * 16
LIBSRTP_CIPHER = bytes.fromhex(
    "800f1234decafbadcafebabe"
    "4e55dc4ce79978d88ca4d215949d2402"
    "b78d6acc99ea179b8dbb"
)


def _pair() -> tuple[SrtpContext, SrtpContext]:
    """Our context and the peer's: each side's outbound key is the other's inbound."""
    ours, theirs = generate_key(), generate_key()
    return SrtpContext(ours, theirs), SrtpContext(theirs, ours)


def _rtp(seq: int, payload: bytes = b"\xff" * 160, ssrc: int = 0x1234) -> bytes:
    return RtpPacket(0, seq, seq * 160, ssrc, payload).to_bytes()


def test_generated_keys_are_fresh_and_30_bytes() -> None:
    keys = {generate_key() for _ in range(4)}
    assert len(keys) == 4
    assert all(len(k) == SRTP_KEY_SIZE for k in keys)


def test_known_answer_from_libsrtp_test_vector() -> None:
    sender = SrtpContext(LIBSRTP_KEY, generate_key())
    assert sender.protect(LIBSRTP_PLAIN) == LIBSRTP_CIPHER
    receiver = SrtpContext(generate_key(), LIBSRTP_KEY)
    assert receiver.unprotect(LIBSRTP_CIPHER) == LIBSRTP_PLAIN


def test_round_trip_both_directions() -> None:
    ours, theirs = _pair()
    wire = ours.protect(_rtp(1))
    assert len(wire) == len(_rtp(1)) + SRTP_AUTH_TAG_SIZE
    assert wire[12:] != _rtp(1)[12:]  # the payload is encrypted, the header is not
    assert theirs.unprotect(wire) == _rtp(1)
    assert ours.unprotect(theirs.protect(_rtp(7, b"back"))) == _rtp(7, b"back")
    assert ours.stats == SrtpStats(protected=1, unprotected=1)


def test_any_inbound_ssrc_is_accepted() -> None:
    ours, theirs = _pair()
    for ssrc in (1, 2, 0xFFFFFFFF):
        assert theirs.unprotect(ours.protect(_rtp(5, ssrc=ssrc))) == _rtp(5, ssrc=ssrc)


@pytest.mark.parametrize("bit", [0, 6, 7, 8 * 11, 8 * 12 + 3, 8 * 100, 8 * 172 + 1, 8 * 181 + 7])
def test_a_flipped_bit_anywhere_is_dropped_and_counted(bit: int) -> None:
    ours, theirs = _pair()
    wire = bytearray(ours.protect(_rtp(1)))
    wire[bit // 8] ^= 1 << (bit % 8)
    assert theirs.unprotect(bytes(wire)) is None
    stats = theirs.stats
    # A flip in the version bits makes it not RTP at all; elsewhere the tag fails.
    if bit in (6, 7):
        assert (stats.malformed, stats.auth_failures) == (1, 0)
    else:
        assert (stats.auth_failures, stats.malformed) == (1, 0)
    assert stats.unprotected == 0
    assert stats.dropped == 1


def test_every_single_bit_flip_is_rejected() -> None:
    ours, theirs = _pair()
    wire = ours.protect(_rtp(1, b"\x00" * 20))
    for bit in range(len(wire) * 8):
        tampered = bytearray(wire)
        tampered[bit // 8] ^= 1 << (bit % 8)
        assert theirs.unprotect(bytes(tampered)) is None
    assert theirs.stats.dropped == len(wire) * 8
    assert theirs.stats.replays == 0
    assert theirs.unprotect(wire) == _rtp(1, b"\x00" * 20)  # the original still passes


def test_replay_is_dropped_and_counted_apart_from_auth_failures() -> None:
    ours, theirs = _pair()
    wire = ours.protect(_rtp(1))
    assert theirs.unprotect(wire) is not None
    assert theirs.unprotect(wire) is None
    assert theirs.unprotect(wire) is None
    assert (theirs.stats.replays, theirs.stats.auth_failures) == (2, 0)


def test_packet_older_than_the_replay_window_is_dropped_as_replay() -> None:
    ours, theirs = _pair()
    old = ours.protect(_rtp(1))
    for seq in range(2, 400):
        assert theirs.unprotect(ours.protect(_rtp(seq))) is not None
    assert theirs.unprotect(old) is None
    assert theirs.stats.replays == 1


def test_reordered_packets_within_the_window_pass() -> None:
    ours, theirs = _pair()
    wires = [ours.protect(_rtp(seq)) for seq in range(10)]
    for i in (0, 2, 1, 5, 3, 4, 9, 6, 8, 7):
        assert theirs.unprotect(wires[i]) == _rtp(i)


def test_key_mismatch_counts_as_auth_failure() -> None:
    sender = SrtpContext(generate_key(), generate_key())
    receiver = SrtpContext(generate_key(), generate_key())
    assert receiver.unprotect(sender.protect(_rtp(1))) is None
    assert receiver.stats.auth_failures == 1


@pytest.mark.parametrize(
    "data",
    [b"", b"\x80", b"\x80" * 21, b"\x00" * 40, b"\x40" + b"\x00" * 40, bytes(3000)],
)
def test_garbage_is_dropped_as_malformed(data: bytes) -> None:
    _, theirs = _pair()
    assert theirs.unprotect(data) is None
    assert theirs.stats.dropped == 1


def test_oversized_packet_is_dropped_not_raised() -> None:
    _, theirs = _pair()
    assert theirs.unprotect(b"\x80" + b"\x00" * 1600) is None
    assert theirs.stats.malformed == 1


def test_bytearray_and_memoryview_are_accepted() -> None:
    ours, theirs = _pair()
    assert theirs.unprotect(bytearray(ours.protect(_rtp(1)))) == _rtp(1)
    assert theirs.unprotect(memoryview(ours.protect(_rtp(2)))) == _rtp(2)


def test_rekey_inbound_takes_the_new_remote_key() -> None:
    ours, theirs = _pair()
    assert theirs.unprotect(ours.protect(_rtp(1))) is not None
    new_key = generate_key()
    ours.rekey_outbound(new_key)
    old_context_packet = ours.protect(_rtp(2))
    assert theirs.unprotect(old_context_packet) is None  # still on the old key
    theirs.rekey_inbound(new_key)
    assert theirs.unprotect(ours.protect(_rtp(3))) == _rtp(3)
    # The other direction is untouched by either rekey.
    assert ours.unprotect(theirs.protect(_rtp(4))) == _rtp(4)
    assert theirs.stats.auth_failures == 1
    assert theirs.stats.unprotected == 2


def test_rekey_refuses_a_bad_key() -> None:
    ours, _ = _pair()
    with pytest.raises(ValueError, match="30 bytes"):
        ours.rekey_inbound(b"short")
    with pytest.raises(ValueError, match="30 bytes"):
        ours.rekey_outbound(bytes(31))


def test_bad_keys_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="local_key must be 30 bytes"):
        SrtpContext(bytes(29), generate_key())
    with pytest.raises(ValueError, match=r"remote_key must be 30 bytes \(key \+ salt\), got str"):
        SrtpContext(generate_key(), "x" * 30)  # type: ignore[arg-type]


def test_protect_of_a_non_rtp_packet_raises() -> None:
    ours, _ = _pair()
    with pytest.raises(ValueError, match="SRTP protect failed"):
        ours.protect(b"\x80\x00")


def test_rollover_counter_advances_across_the_sequence_wrap() -> None:
    ours, theirs = _pair()
    seq = RtpSequencer(0, 8000, sequence=65530, timestamp=0, ssrc=77)
    seen = []
    for _ in range(20):
        wire = ours.protect(seq.next_audio(b"\x55" * 160).to_bytes())
        plain = theirs.unprotect(wire)
        assert plain is not None
        seen.append(parse_rtp(plain).sequence)
    assert seen == [*range(65530, 65536), *range(14)]
    assert theirs.stats.unprotected == 20
    assert theirs.stats.dropped == 0


def test_a_replay_from_before_the_wrap_is_still_caught() -> None:
    ours, theirs = _pair()
    seq = RtpSequencer(0, 8000, sequence=65534, timestamp=0, ssrc=77)
    wires = [ours.protect(seq.next_audio(b"").to_bytes()) for _ in range(4)]
    for wire in wires:
        assert theirs.unprotect(wire) is not None
    assert theirs.unprotect(wires[0]) is None
    assert theirs.stats.replays == 1


def test_protecting_one_sequence_number_twice_raises() -> None:
    ours, _ = _pair()
    ours.protect(_rtp(1))
    with pytest.raises(ValueError, match="replay check"):
        ours.protect(_rtp(1))
