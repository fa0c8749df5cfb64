"""`RtpStream` over real UDP on 127.0.0.1 with real libsrtp and libopus; `MediaClock`.

Two streams on one clock talk to each other with media from the real SDP functions, or
a stream talks to a raw socket that crafts (and captures) packets itself. Timing is only
ever asserted as generous bounds on counts. The `MediaClock` tests at the end run on
virtual time, so their schedule is exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest

from realtime_voice.legs.media_clock import MediaClock
from realtime_voice.legs.sip_media import FRAME_BYTES, RtpStream
from realtime_voice.protocols.base import AudioEvent, DtmfEvent, MarkEvent
from realtime_voice.rtp.codecs import CodecSpec, make_codec
from realtime_voice.rtp.packet import RtpPacket, RtpSequencer, parse_rtp
from realtime_voice.rtp.srtp import SrtpContext, generate_key
from realtime_voice.sip.sdp import Direction
from realtime_voice.sip.sdp_negotiation import (
    OPUS_16000,
    OPUS_48000,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    NegotiatedMedia,
    SrtpKeys,
    answer,
    apply_answer,
    offer,
)
from realtime_voice.testing.virtual_time import virtual_test

HOST = "127.0.0.1"
TIMEOUT = 10.0
CODECS = [pytest.param(PCMU, id="PCMU"), pytest.param(OPUS_16000, id="OPUS16000-109"),
          pytest.param(OPUS_48000, id="opus48000-111")]


# -- helpers ---------------------------------------------------------------------------


def tone(frames: int, hz: float = 1000.0, amplitude: int = 8000) -> list[bytes]:
    """``frames`` 640-byte frames of a continuous sine at 16 kHz."""
    t = np.arange(frames * 320) / 16000
    pcm = (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    return [pcm[i * 320 : (i + 1) * 320].tobytes() for i in range(frames)]


def peak_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.fft.rfftfreq(pcm.size, 1 / 16000)[int(np.argmax(spectrum))])


def rms(frame: bytes) -> float:
    return float(np.sqrt(np.mean(np.frombuffer(frame, dtype=np.int16).astype(np.float64) ** 2)))


async def until(check: Callable[[], bool], limit: float = TIMEOUT) -> None:
    """Wait until ``check()`` holds (looked at every 2 ms); fail after ``limit`` seconds."""
    if check():
        return
    done = asyncio.get_running_loop().create_future()

    def look() -> None:
        if not done.done() and check():
            done.set_result(None)

    stop = MediaClock(0.002).subscribe(look)
    try:
        await asyncio.wait_for(done, limit)
    finally:
        stop()


async def ticks(clock: MediaClock, count: int) -> None:
    """Wait for ``count`` ticks of ``clock`` to pass."""
    target = clock.tick_index + count
    await until(lambda: clock.tick_index >= target)


class Collector:
    """Reads a stream's events in the background, keeping them in order."""

    def __init__(self, stream: RtpStream) -> None:
        self.stream = stream
        self.events: list[AudioEvent | DtmfEvent | MarkEvent] = []
        self.marks_seen_at: dict[str, int] = {}
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while (event := await self.stream.next_event()) is not None:
            if isinstance(event, MarkEvent):
                self.marks_seen_at[event.name] = self.stream.stats().audio_packets_sent
            self.events.append(event)

    def audio(self) -> list[bytes]:
        return [e.payload for e in self.events if isinstance(e, AudioEvent)]

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class RawPeer(asyncio.DatagramProtocol):
    """A bare UDP socket: captures what arrives, sends what a test crafts."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls) -> RawPeer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(cls, local_addr=(HOST, 0))
        _OPEN_PEERS.append(peer)
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received.append((data, (str(addr[0]), int(addr[1]))))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, stream: RtpStream) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (stream.local_host, stream.local_port))

    def close(self) -> None:
        assert self.transport is not None
        self.transport.close()


_OPEN_PEERS: list[RawPeer] = []


@pytest.fixture(autouse=True)
async def _close_raw_peers() -> Any:
    yield
    while _OPEN_PEERS:
        _OPEN_PEERS.pop().close()
    await asyncio.sleep(0)  # let the transports finish closing on this loop


def media_for(codec: Codec, *, port: int, keys: SrtpKeys | None,
              telephone_event: bool = True, address: str = HOST) -> NegotiatedMedia:
    return NegotiatedMedia(
        remote_address=address, remote_port=port, remote_rtcp_port=port + 1, codec=codec,
        payload_type=codec.payload_type, clock_rate=codec.clock_rate,
        telephone_event_pt=101 if telephone_event else None,
        telephone_event_clock=8000 if telephone_event else None,
        srtp=keys, direction=Direction.SENDRECV, ptime=20, on_hold=False)


def crossed_keys() -> tuple[SrtpKeys, SrtpKeys]:
    a, b = generate_key(), generate_key()
    suite = "AES_CM_128_HMAC_SHA1_80"
    return SrtpKeys(suite, 1, a, b), SrtpKeys(suite, 1, b, a)


@pytest.fixture
async def clock() -> MediaClock:
    return MediaClock()


@pytest.fixture
async def streams(clock: MediaClock) -> Any:
    opened: list[RtpStream] = []

    async def make(name: str = "") -> RtpStream:
        stream = await RtpStream.open(host=HOST, clock=clock, name=name)
        opened.append(stream)
        return stream

    yield make
    for stream in opened:
        await stream.close()
    assert clock.stats.subscribers == 0


async def negotiated_pair(make: Any, codec: Codec, *, srtp: bool = True,
                          ) -> tuple[RtpStream, RtpStream, NegotiatedMedia, NegotiatedMedia]:
    """A offers ``codec`` (+ telephone-event), B answers: the real SDP functions."""
    a, b = await make("A"), await make("B")
    sdp_offer = offer(address=HOST, port=a.local_port, key=generate_key(), codecs=(codec,),
                      srtp=srtp)
    result = answer(sdp_offer, address=HOST, port=b.local_port, key=generate_key(),
                    codecs=(codec,), allow_plain_rtp=not srtp)
    media_a = apply_answer(sdp_offer, result.sdp, codecs=(codec,))
    return a, b, media_a, result.media


# -- audio both ways -------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "srtp"), [
    pytest.param(PCMU, True, id="srtp-PCMU"),
    pytest.param(OPUS_16000, True, id="srtp-OPUS16000-109"),
    pytest.param(OPUS_48000, True, id="srtp-opus48000-111"),
    pytest.param(PCMU, False, id="rtp-PCMU"),
    pytest.param(OPUS_16000, False, id="rtp-OPUS16000-109"),
])
async def test_a_1khz_tone_crosses_and_peaks_at_1khz(streams: Any, codec: Codec,
                                                     srtp: bool) -> None:
    a, b, media_a, media_b = await negotiated_pair(streams, codec, srtp=srtp)
    assert (media_a.srtp is None) is (not srtp)
    received = Collector(b)
    a.start(media_a)
    b.start(media_b)
    for frame in tone(50):
        a.send_audio(frame)

    def loud() -> list[bytes]:
        return [f for f in received.audio() if rms(f) > 1000]

    await until(lambda: len(loud()) >= 40)
    frames = loud()
    assert all(len(f) == FRAME_BYTES for f in received.audio())
    pcm = np.frombuffer(b"".join(frames[5:35]), dtype=np.int16)
    assert abs(peak_hz(pcm) - 1000) < 40
    stats_b = b.stats()
    assert stats_b.srtp_auth_failures == stats_b.srtp_replays == 0
    assert stats_b.decode_errors == 0
    await until(lambda: a.stats().audio_packets_sent == 50)
    await received.stop()


@pytest.mark.parametrize("codec", CODECS)
async def test_silence_keeps_flowing_at_50_packets_a_second_with_continuous_timestamps(
    streams: Any, clock: MediaClock, codec: Codec
) -> None:
    peer = await RawPeer.open()
    a = await streams("A")
    a.start(media_for(codec, port=peer.port, keys=None))
    await until(lambda: len(peer.received) >= 1)
    start, first = clock.tick_index, len(peer.received)
    await ticks(clock, 50)
    assert 40 <= len(peer.received) - first <= 60
    for frame in tone(5):
        a.send_audio(frame)
    await until(lambda: a.stats().audio_packets_sent == 5)
    await ticks(clock, 3)
    packets = [parse_rtp(data) for data, _ in peer.received]
    step = codec.clock_rate // 50
    for before, after in itertools.pairwise(packets):
        assert after.sequence == (before.sequence + 1) & 0xFFFF
        assert after.timestamp == (before.timestamp + step) & 0xFFFFFFFF
        assert after.ssrc == before.ssrc and after.payload_type == codec.payload_type
    markers = [i for i, p in enumerate(packets) if p.marker]
    # The first packet of the stream, then the first of the talkspurt after silence.
    assert markers[0] == 0 and len(markers) == 2
    assert a.stats().silence_packets_sent >= 40
    assert clock.tick_index > start


async def test_srtp_packets_are_the_rtp_size_plus_the_tag(streams: Any) -> None:
    peer = await RawPeer.open()
    a = await streams("A")
    keys_a, keys_peer = crossed_keys()
    a.start(media_for(PCMU, port=peer.port, keys=keys_a))
    await until(lambda: len(peer.received) >= 5)
    peer_ctx = SrtpContext(keys_peer.local_key, keys_peer.remote_key)
    for data, _ in peer.received[:5]:
        assert len(data) == 12 + 160 + 10
        plain = peer_ctx.unprotect(data)
        assert plain is not None and parse_rtp(plain).payload_type == 0


# -- inbound robustness ----------------------------------------------------------------


class CraftingPeer:
    """A raw socket with its own SRTP context and sequencer: the far end, hand-made."""

    def __init__(self, peer: RawPeer, keys: SrtpKeys, codec: Codec) -> None:
        self.peer = peer
        self.ctx = SrtpContext(keys.local_key, keys.remote_key)
        self.seq = RtpSequencer(codec.payload_type, codec.clock_rate, sequence=100)
        self.codec = make_codec(CodecSpec(codec.name, codec.clock_rate, codec.channels or 1))

    def packets(self, frames: list[bytes]) -> list[RtpPacket]:
        return [self.seq.next_audio(self.codec.encode(np.frombuffer(f, dtype=np.int16)))
                for f in frames]

    def send(self, packet: RtpPacket, stream: RtpStream) -> bytes:
        data = self.ctx.protect(packet.to_bytes())
        self.peer.send(data, stream)
        return data


async def test_tampered_and_replayed_packets_are_counted_and_dropped(streams: Any) -> None:
    peer = await RawPeer.open()
    keys_b, keys_peer = crossed_keys()
    b = await streams("B")
    b.start(media_for(OPUS_16000, port=peer.port, keys=keys_b))
    far = CraftingPeer(peer, keys_peer, OPUS_16000)
    good = far.packets(tone(6))
    first = far.send(good[0], b)
    await until(lambda: b.stats().packets_accepted == 1)
    tampered = bytearray(far.ctx.protect(good[1].to_bytes()))
    tampered[20] ^= 0x01
    peer.send(bytes(tampered), b)
    peer.send(first, b)  # a replay of a packet already accepted
    for packet in good[2:]:
        far.send(packet, b)
    await until(lambda: b.stats().packets_accepted == 5)
    stats = b.stats()
    assert stats.srtp_auth_failures == 1
    assert stats.srtp_replays == 1
    assert stats.rtp_malformed == 0 and stats.latched_address is None


async def test_rtcp_on_the_rtp_port_is_ignored_and_counted(streams: Any) -> None:
    peer = await RawPeer.open()
    keys_b, _ = crossed_keys()
    b = await streams("B")
    b.start(media_for(PCMU, port=peer.port, keys=keys_b))
    receiver_report = bytes([0x80, 201, 0, 1]) + b"\0\0\0\1"
    peer.send(receiver_report, b)
    await until(lambda: b.stats().rtcp_ignored == 1)
    assert b.stats().srtp_auth_failures == 0 and b.stats().srtp_malformed == 0


async def test_reordering_is_repaired_and_a_lost_opus_packet_is_concealed(
    streams: Any,
) -> None:
    peer = await RawPeer.open()
    keys_b, keys_peer = crossed_keys()
    b = await streams("B")
    received = Collector(b)
    b.start(media_for(OPUS_16000, port=peer.port, keys=keys_b))
    far = CraftingPeer(peer, keys_peer, OPUS_16000)
    packets = far.packets(tone(10))
    # 0 1 2 4 3 5 6 8 9: 3 and 4 swapped, 7 lost. The burst lands in one go, well within
    # the 60 ms the buffer holds before playout.
    order = [0, 1, 2, 4, 3, 5, 6, 8, 9]
    for index in order:
        far.send(packets[index], b)
    await until(lambda: len(received.audio()) >= 10)
    stats = b.stats()
    assert stats.packets_reordered == 1
    assert stats.packets_late == 0 and stats.packets_duplicate == 0
    assert stats.frames_concealed >= 1 and stats.packets_lost >= 1
    audio = received.audio()
    # Slot 7 is Opus concealment of the tone, not silence; its neighbours are the tone.
    assert rms(audio[7]) > 300
    assert all(rms(frame) > 1000 for frame in audio[3:7])
    await received.stop()


# -- DTMF --------------------------------------------------------------------------------


async def test_dtmf_both_ways_and_the_stray_audio_pt_event_is_dropped(streams: Any) -> None:
    a, b, media_a, media_b = await negotiated_pair(streams, OPUS_16000)
    assert media_a.telephone_event_pt == TELEPHONE_EVENT.payload_type
    at_a, at_b = Collector(a), Collector(b)
    a.start(media_a)
    b.start(media_b)
    a.send_dtmf("5")
    a.send_dtmf("#")
    b.send_dtmf("9")
    await until(lambda: len(at_b.of(DtmfEvent)) == 2 and len(at_a.of(DtmfEvent)) == 1)
    assert [e.digit for e in at_b.of(DtmfEvent)] == ["5", "#"]
    assert [e.digit for e in at_a.of(DtmfEvent)] == ["9"]
    # A digit is known at its first end packet; the end goes out three times (7 each).
    await until(lambda: a.stats().dtmf_packets_sent == 14)
    assert a.stats().dtmf_sent == 2
    assert b.stats().dtmf_received == 2
    with pytest.raises(ValueError):
        a.send_dtmf("x")
    await at_a.stop()
    await at_b.stop()


async def test_a_4_byte_event_under_the_audio_pt_is_dropped(streams: Any) -> None:
    peer = await RawPeer.open()
    keys_b, keys_peer = crossed_keys()
    b = await streams("B")
    received = Collector(b)
    b.start(media_for(OPUS_16000, port=peer.port, keys=keys_b))
    far = CraftingPeer(peer, keys_peer, OPUS_16000)
    # RingCentral's stray: digit 1, E bit, volume 10, duration 960, under audio PT 109.
    stray = far.seq.next_audio(bytes([1, 0x80 | 10, 960 >> 8, 960 & 0xFF]))
    far.send(stray, b)
    await until(lambda: b.stats().stray_dtmf_dropped == 1)
    assert received.of(DtmfEvent) == [] and b.stats().packets_accepted == 1
    await received.stop()


async def test_send_dtmf_without_telephone_event_raises(streams: Any) -> None:
    peer = await RawPeer.open()
    a = await streams("A")
    with pytest.raises(ValueError):
        a.send_dtmf("1")  # not started
    a.start(media_for(PCMU, port=peer.port, keys=None, telephone_event=False))
    with pytest.raises(ValueError, match="telephone-event"):
        a.send_dtmf("1")


# -- marks -----------------------------------------------------------------------------


async def test_a_mark_fires_on_the_tick_that_sent_the_last_frame_before_it(
    streams: Any,
) -> None:
    peer = await RawPeer.open()
    a = await streams("A")
    own = Collector(a)
    a.send_mark("before-start")  # nothing queued: due at once
    a.start(media_for(PCMU, port=peer.port, keys=None))
    for frame in tone(10):
        a.send_audio(frame)
    a.send_mark("after-10")
    a.send_audio(tone(1)[0])
    assert a.queued_ms == 220
    await until(lambda: "after-10" in own.marks_seen_at)
    # Never before the 10th frame went; at most a tick later by the time we looked.
    assert 10 <= own.marks_seen_at["after-10"] <= 11
    assert own.marks_seen_at["before-start"] == 0
    await own.stop()


async def test_clear_drops_the_queue_and_fires_pending_marks_at_once(
    streams: Any, clock: MediaClock
) -> None:
    peer = await RawPeer.open()
    a = await streams("A")
    a.start(media_for(PCMU, port=peer.port, keys=None))
    for frame in tone(100):
        a.send_audio(frame)
    a.send_mark("end")
    await until(lambda: a.stats().audio_packets_sent >= 2)
    sent = a.stats().audio_packets_sent
    dropped = a.clear()
    assert 80 <= dropped <= 100 - sent
    assert a.queued_ms == 0 and a.stats().frames_cleared == dropped
    # The mark is already queued for the consumer: it needs no further tick.
    event = await asyncio.wait_for(a.next_event(), TIMEOUT)
    assert event == MarkEvent("end")
    await ticks(clock, 3)
    assert a.stats().audio_packets_sent <= sent + 1


# -- latching, hold, rekey ---------------------------------------------------------------


async def test_latches_to_the_authenticated_source_and_ignores_an_impostor(
    streams: Any,
) -> None:
    sdp_target = await RawPeer.open()  # where B's SDP says A is: nobody reads it
    impostor = await RawPeer.open()
    a, b = await streams("A"), await streams("B")
    keys_a, keys_b = crossed_keys()
    a.start(media_for(PCMU, port=b.local_port, keys=keys_a))
    b.start(media_for(PCMU, port=sdp_target.port, keys=keys_b))
    await until(lambda: b.stats().latched_address == (HOST, a.local_port))
    assert len(sdp_target.received) >= 1  # B's pinhole packet went where the SDP said
    await until(lambda: a.stats().packets_accepted >= 5)  # B now answers A's address
    # An impostor with the wrong key: counted, never latched to.
    wrong = SrtpContext(generate_key(), generate_key())
    bogus = RtpSequencer(0, 8000).next_audio(b"\xff" * 160)
    impostor.send(wrong.protect(bogus.to_bytes()), b)
    await until(lambda: b.stats().srtp_auth_failures == 1)
    assert b.stats().latched_address == (HOST, a.local_port)
    assert b.stats().remote_address == (HOST, a.local_port)


async def test_hold_stops_sending_and_unhold_resumes(streams: Any, clock: MediaClock) -> None:
    a, b, media_a, media_b = await negotiated_pair(streams, PCMU)
    a.start(media_a)
    b.start(media_b)
    await until(lambda: a.stats().packets_accepted >= 5)
    b.update(dataclasses.replace(media_b, on_hold=True))
    await ticks(clock, 2)
    held = a.stats().packets_accepted
    await ticks(clock, 10)
    assert a.stats().packets_accepted <= held + 1
    b.send_audio(tone(1)[0])
    await until(lambda: b.queued_ms == 0)
    assert b.stats().frames_unsent_on_hold == 1
    b.update(media_b)
    await until(lambda: a.stats().packets_accepted >= held + 5)


async def test_rekey_via_update_keeps_audio_flowing(streams: Any) -> None:
    a, b, media_a, media_b = await negotiated_pair(streams, OPUS_16000)
    a.start(media_a)
    b.start(media_b)
    await until(lambda: b.stats().packets_accepted >= 5)
    assert media_a.srtp is not None and media_b.srtp is not None
    new_key = generate_key()
    a.update(dataclasses.replace(media_a, srtp=dataclasses.replace(media_a.srtp,
                                                                   local_key=new_key)))
    b.update(dataclasses.replace(media_b, srtp=dataclasses.replace(media_b.srtp,
                                                                   remote_key=new_key)))
    accepted = b.stats().packets_accepted
    await until(lambda: b.stats().packets_accepted >= accepted + 10)
    # At most a packet or two in flight across the switch fail; then all pass.
    assert b.stats().srtp_auth_failures <= 2


async def test_codec_change_via_update(streams: Any) -> None:
    peer = await RawPeer.open()
    a = await streams("A")
    media = media_for(PCMU, port=peer.port, keys=None)
    a.start(media)
    await until(lambda: len(peer.received) >= 3)
    a.update(dataclasses.replace(media, codec=OPUS_48000, payload_type=111, clock_rate=48000))
    await until(lambda: any(parse_rtp(d).payload_type == 111 for d, _ in peer.received))
    packets = [parse_rtp(d) for d, _ in peer.received]
    opus = [p for p in packets if p.payload_type == 111]
    assert opus[0].marker and opus[0].ssrc == packets[0].ssrc
    assert all(p.sequence == (q.sequence + 1) & 0xFFFF for q, p in itertools.pairwise(packets))


async def test_close_is_idempotent_and_ends_next_event(streams: Any, clock: MediaClock) -> None:
    a = await streams("A")
    a.start(media_for(PCMU, port=9, keys=None))
    waiting = asyncio.ensure_future(a.next_event())
    await ticks(clock, 1)
    await a.close()
    await a.close()
    assert await asyncio.wait_for(waiting, TIMEOUT) is None
    assert await a.next_event() is None
    a.send_audio(tone(1)[0])  # ignored, not raised


async def test_port_range_is_honoured(clock: MediaClock) -> None:
    probe = await RtpStream.open(host=HOST, clock=clock)
    port = probe.local_port
    await probe.close()
    stream = await RtpStream.open(host=HOST, clock=clock, port_range=(port, port))
    try:
        assert stream.local_port == port
        with pytest.raises(OSError):
            await RtpStream.open(host=HOST, clock=clock, port_range=(port, port))
    finally:
        await stream.close()


# -- MediaClock (virtual time: the schedule is exact) --------------------------------------


@virtual_test
async def test_frame_clock_ticks_on_an_absolute_schedule_without_drift() -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock()
    times: list[float] = []
    done = asyncio.Event()

    def on_tick() -> None:
        times.append(loop.time())
        if len(times) == 100:
            done.set()

    unsubscribe = clock.subscribe(on_tick)
    await asyncio.wait_for(done.wait(), 10)
    unsubscribe()
    offsets = [t - times[0] - n * 0.020 for n, t in enumerate(times)]
    assert max(abs(o) for o in offsets) < 1e-6
    assert clock.stats.ticks == 100 and clock.stats.late_ticks == 0


@virtual_test
async def test_frame_clock_counts_a_late_tick_and_skips_the_missed_ones() -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock()
    seen: list[int] = []
    done = asyncio.Event()

    def on_tick() -> None:
        seen.append(clock.tick_index)
        if len(seen) == 3:
            # The loop is blocked for 65 ms: virtual time jumps as if it had been.
            loop._virtual.now += 0.065  # type: ignore[attr-defined]
        if len(seen) == 10:
            done.set()

    unsubscribe = clock.subscribe(on_tick)
    await asyncio.wait_for(done.wait(), 10)
    unsubscribe()
    stats = clock.stats
    # Tick 4 was due 20 ms after tick 3 and ran 45 ms late: counted, and ticks 4 and 5
    # skipped (no burst); indices jump so that a stream can account the RTP time.
    assert stats.late_ticks == 1 and stats.skipped_ticks == 2
    assert seen[3] - seen[2] == 3
    assert all(b - a == 1 for a, b in itertools.pairwise(seen[3:]))
    assert 44 <= stats.max_lateness_ms <= 46


@virtual_test
async def test_frame_clock_stops_when_the_last_subscriber_goes() -> None:
    clock = MediaClock()
    calls: list[str] = []
    first = clock.subscribe(lambda: calls.append("a"))
    second = clock.subscribe(lambda: calls.append("b"))
    assert clock.running
    await asyncio.sleep(0.041)
    first()
    first()  # idempotent
    assert clock.running
    await asyncio.sleep(0.040)
    second()
    assert not clock.running and clock.next_tick_at() is None
    count = len(calls)
    await asyncio.sleep(0.2)
    assert len(calls) == count
    assert calls.count("a") == 2 and calls.count("b") == 4
    index = clock.tick_index
    again = clock.subscribe(lambda: calls.append("c"))
    await asyncio.sleep(0.021)
    again()
    assert calls[-1] == "c" and clock.tick_index == index + 1


@virtual_test
async def test_a_raising_subscriber_is_logged_and_the_others_still_tick(
) -> None:
    clock = MediaClock()
    calls: list[int] = []

    def bad() -> None:
        raise RuntimeError("boom")

    logging.getLogger("realtime_voice.legs.media_clock").disabled = True
    try:
        off_bad = clock.subscribe(bad)
        off_good = clock.subscribe(lambda: calls.append(1))
        await asyncio.sleep(0.061)
        off_bad()
        off_good()
    finally:
        logging.getLogger("realtime_voice.legs.media_clock").disabled = False
    assert len(calls) == 3 and clock.stats.callback_errors == 3
