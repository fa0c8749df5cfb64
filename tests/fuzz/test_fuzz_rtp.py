"""Fuzzing the RTP media primitives: whatever arrives, only the documented error or drop.

- `parse_rtp` returns a packet or raises `RtpError`; what it returns serialises back
  to the same header fields and payload.
- `SrtpContext.unprotect` returns None (counted) for anything not protected with the
  peer's key, and never raises.
- `TelephoneEvent.from_bytes` returns an event or raises `DtmfError`; `DtmfReceiver`
  never raises and emits each digit at most once per event.
- `JitterBuffer` never raises, never holds more than ``max_packets`` and gives each
  pushed payload out at most once.
- Opus decode of random bytes gives PCM (concealment on a bad packet), never raises.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from realtime_voice.rtp.codecs import OpusCodec
from realtime_voice.rtp.dtmf import DtmfError, DtmfReceiver, TelephoneEvent
from realtime_voice.rtp.jitter import LOST, JitterBuffer
from realtime_voice.rtp.packet import RtpError, RtpPacket, parse_rtp
from realtime_voice.rtp.srtp import SrtpContext, generate_key
from tests.fuzz import EXAMPLES

# Random bytes, and bytes that start like RTP so the parser gets past its first check.
RTP_LIKE = st.builds(
    lambda first, rest: bytes([0x80 | (first & 0x3F)]) + rest,
    st.integers(0, 255),
    st.binary(max_size=200),
)
DATAGRAMS = st.one_of(st.binary(max_size=300), RTP_LIKE, st.binary(min_size=1400, max_size=1700))

KEY_A, KEY_B = generate_key(), generate_key()


@settings(max_examples=2000 * EXAMPLES)
@given(data=DATAGRAMS)
def test_parse_rtp_only_raises_rtp_error(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpError as exc:
        assert str(exc)
        return
    again = parse_rtp(packet.to_bytes())
    assert again == packet


@settings(max_examples=1000 * EXAMPLES)
@given(datagrams=st.lists(DATAGRAMS, min_size=1, max_size=10))
def test_srtp_unprotect_drops_garbage_and_counts_it(datagrams: list[bytes]) -> None:
    receiver = SrtpContext(KEY_A, KEY_B)
    for data in datagrams:
        assert receiver.unprotect(data) is None
    assert receiver.stats.dropped == len(datagrams)
    assert receiver.stats.unprotected == 0


@settings(max_examples=500 * EXAMPLES)
@given(
    payload=st.binary(max_size=200),
    seq=st.integers(0, 0xFFFF),
    flips=st.lists(st.integers(0, 10_000), min_size=1, max_size=4, unique=True),
)
def test_srtp_tampered_real_packets_are_dropped(payload: bytes, seq: int, flips: list[int]) -> None:
    sender, receiver = SrtpContext(KEY_B, KEY_A), SrtpContext(KEY_A, KEY_B)
    wire = bytearray(sender.protect(RtpPacket(0, seq, 0, 7, payload).to_bytes()))
    for bit in flips:
        wire[(bit // 8) % len(wire)] ^= 1 << (bit % 8)
    result = receiver.unprotect(bytes(wire))
    # Flips can cancel out (the same bit twice lands on one byte): then it is genuine.
    if result is None:
        assert receiver.stats.dropped == 1
    else:
        assert result == RtpPacket(0, seq, 0, 7, payload).to_bytes()


@settings(max_examples=2000 * EXAMPLES)
@given(payload=st.binary(max_size=24))
def test_telephone_event_decode_only_raises_dtmf_error(payload: bytes) -> None:
    try:
        event = TelephoneEvent.from_bytes(payload)
    except DtmfError:
        return
    assert TelephoneEvent.from_bytes(event.to_bytes()) == event


PACKETS = st.builds(
    RtpPacket,
    payload_type=st.sampled_from([0, 101, 109, 13]),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.sampled_from([0, 160, 800, 2**32 - 160]) | st.integers(0, 2**32 - 1),
    ssrc=st.sampled_from([1, 2]),
    payload=st.binary(max_size=8) | st.builds(lambda e: e.to_bytes(), st.builds(
        TelephoneEvent, st.integers(0, 20), st.booleans(), st.integers(0, 63),
        st.integers(0, 0xFFFF),
    )),
)


@settings(max_examples=500 * EXAMPLES)
@given(
    packets=st.lists(PACKETS, max_size=40),
    ticks=st.lists(st.floats(0, 1.0), min_size=40, max_size=40),
)
def test_dtmf_receiver_never_raises_and_emits_an_event_once(
    packets: list[RtpPacket], ticks: list[float]
) -> None:
    now = [0.0]
    receiver = DtmfReceiver(101, 0, clock=lambda: now[0], remember=64)
    emitted = 0
    for packet, tick in zip(packets, ticks, strict=False):
        now[0] += tick
        emitted += len(receiver.feed(packet).digits) + len(receiver.poll())
    # One digit at most per distinct (SSRC, timestamp) of a telephone-event packet.
    events = {(p.ssrc, p.timestamp) for p in packets if p.payload_type == 101}
    assert emitted == receiver.stats.digits <= len(events)


@settings(max_examples=500 * EXAMPLES)
@given(
    ops=st.lists(
        st.one_of(
            st.tuples(st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1), st.sampled_from([1, 2])),
            st.tuples(st.integers(0, 40), st.just(-1), st.just(1)),  # near the start
            st.none(),  # a pop
        ),
        max_size=200,
    )
)
def test_jitter_buffer_is_bounded_and_plays_each_payload_once(
    ops: list[tuple[int, int, int] | None],
) -> None:
    jb = JitterBuffer(8000, max_packets=16, max_depth_ms=200)
    played: list[bytes] = []
    for i, op in enumerate(ops):
        if op is None:
            out = jb.pop()
            if out is not None and out is not LOST:
                played.append(out)
        else:
            seq, ts, ssrc = op
            jb.push(seq, seq * 160 if ts < 0 else ts, str(i).encode(), ssrc)
        assert len(jb._frames) <= 16  # the bound is the point: peek at it
    assert len(played) == len(set(played))
    assert jb.stats.played == len(played)


OPUS = OpusCodec()


@settings(max_examples=1000 * EXAMPLES)
@given(payload=st.binary(max_size=400))
def test_opus_decode_of_random_bytes_gives_pcm(payload: bytes) -> None:
    pcm = OPUS.decode(payload)
    assert pcm.ndim == 1
    assert pcm.size % 40 == 0  # whole 2.5 ms Opus frames at 16 kHz
