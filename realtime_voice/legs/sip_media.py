"""`RtpStream`: the RTP media of one SIP call over one UDP socket, on the shared clock.

The pure pieces live in `realtime_voice.rtp` (packets, SRTP, RFC 4733, jitter buffer,
codecs); this is the I/O around them, shaped by RingCentral (docs/RINGCENTRAL_SIP.md §3
and §4.2):

- **Symmetric RTP.** One socket, bound by `RtpStream.open` before the SDP is written
  (its port goes in our SDP), sends and receives. The first packet goes out on the tick
  after `start`, which opens the NAT pinhole RingCentral's media server latches on to,
  and a packet goes out every tick after that, silence included (a NAT with a short UDP
  timeout would otherwise close the path), except while the peer holds us.
- **Latching.** Media may come from another address than the SDP's (a NAT, a media
  server that moved). The first packet from a new address that passes SRTP
  authentication (for plain RTP: that has the audio or event PT) moves our sending
  there. An unauthenticated one never does.
- **One clock.** Every stream sends and plays out on the `MediaClock` tick; a tick the
  loop missed is not made up with a burst, but its RTP timestamp is accounted so the
  peer's playout stays in step.
- **Inbound.** RTCP on the port is counted and ignored; SRTP failures are dropped and
  counted; RFC 4733 digits become `DtmfEvent`; audio goes through the jitter buffer,
  one frame per tick, decoded (Opus concealment for a lost one) to 640-byte PCM16 16 kHz
  frames delivered as `AudioEvent`.
- **Outbound.** The leg queues 640-byte PCM16 16 kHz frames and marks; one frame leaves
  per tick, and a mark comes back as `MarkEvent` on the tick that sent the last frame
  before it: the stream's playout clock is what the caller has heard.

Nothing the network sends raises out of here: a bad packet is counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final

import numpy as np

from realtime_voice.legs.media_clock import MediaClock
from realtime_voice.legs.sip_media_socket import Address, RtpSocketProtocol, bind_udp, is_ip
from realtime_voice.legs.sip_media_state import (
    Counters,
    EventQueue,
    RtpEvent,
    RtpStreamStats,
    SendQueue,
)
from realtime_voice.protocols.base import AudioEvent, DtmfEvent, MarkEvent
from realtime_voice.rtp.codecs import CodecSpec, OpusCodec, PcmuCodec, make_codec
from realtime_voice.rtp.dtmf import DtmfPacket, DtmfReceiver, dtmf_packets
from realtime_voice.rtp.jitter import LOST, JitterBuffer, JitterStats
from realtime_voice.rtp.packet import RtpError, RtpSequencer, looks_like_rtcp, parse_rtp
from realtime_voice.rtp.srtp import SrtpContext, SrtpStats
from realtime_voice.sip.sdp_negotiation import NegotiatedMedia, compare

__all__ = ["FRAME_BYTES", "RtpEvent", "RtpStream", "RtpStreamStats"]

log = logging.getLogger(__name__)

FRAME_BYTES: Final = 640
"""One 20 ms frame of PCM16 mono at 16 kHz: what the stream takes and gives."""

_FRAME_SAMPLES: Final = FRAME_BYTES // 2
_SILENCE: Final = np.zeros(_FRAME_SAMPLES, dtype=np.int16)
_MAX_DTMF_PENDING: Final = 64
_MAX_CATCH_UP: Final = 5  # frames played out at once after the loop missed ticks
_U16: Final = 0xFFFF
_U32: Final = 0xFFFFFFFF

def _spec(media: NegotiatedMedia) -> CodecSpec:
    return CodecSpec(media.codec.name, media.clock_rate, media.codec.channels or 1)


class RtpStream:
    """The RTP media of one SIP call (see the module docstring). Build with `open`."""

    def __init__(
        self,
        *,
        transport: asyncio.DatagramTransport,
        sock_name: Address,
        clock: MediaClock,
        jitter_target_ms: int,
        send_queue_s: float,
        name: str,
    ) -> None:
        self._transport = transport
        self.local_host, self.local_port = sock_name
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._jitter_target_ms = jitter_target_ms
        self._name = name or f"rtp:{self.local_port}"
        self._send_queue = SendQueue(int(send_queue_s * 50))
        self._events = EventQueue()
        self._media: NegotiatedMedia | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False
        self._last_rx = self._loop.time()
        self._last_tick: int | None = None
        self._talking = False
        # Set up by start.
        self._codec: PcmuCodec | OpusCodec | None = None
        self._sequencer: RtpSequencer | None = None
        self._jitter: JitterBuffer | None = None
        self._dtmf_rx: DtmfReceiver | None = None
        self._srtp: SrtpContext | None = None
        self._sdp_remote: Address | None = None
        self._remote: Address | None = None
        self._latched: Address | None = None
        self._resolving: asyncio.Task[None] | None = None
        self._dtmf_pending: deque[str] = deque()
        self._dtmf_current: Iterator[DtmfPacket] | None = None
        self._rx_ssrc: int | None = None
        self._rx_highest: int | None = None
        # Counters that outlive a rebuilt codec, jitter buffer or SRTP context.
        self._retired_jitter: list[JitterStats] = []
        self._retired_srtp: list[SrtpStats] = []
        self._retired_decode_errors = 0
        self._retired_stray = 0
        self._n = Counters()
        self._extra_decode_errors = 0
        self._warned_frame_size = False

    # -- life cycle ------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        *,
        host: str,
        clock: MediaClock,
        port_range: tuple[int, int] | None = None,
        jitter_target_ms: int = 60,
        send_queue_s: float = 10.0,
        name: str = "",
    ) -> RtpStream:
        """Bind the call's UDP socket; nothing is sent until `start`.

        Args:
            host: the local address to bind (an IP literal; its family is the socket's).
            clock: the process's shared 20 ms clock.
            port_range: ports to choose from (inclusive), else one the OS picks.
            jitter_target_ms: the inbound playout delay.
            send_queue_s: outbound audio held at most; beyond it the oldest is dropped.
            name: for logs (the SIP Call-ID, say).

        Returns:
            The stream; put `local_port` in our SDP.

        Raises:
            OSError: no port could be bound.
            ValueError: a port range that makes no sense.
        """
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, 0, type=socket.SOCK_DGRAM)
        sock = bind_udp(host, port_range, infos[0][0])
        try:
            transport, protocol = await loop.create_datagram_endpoint(RtpSocketProtocol,
                                                                      sock=sock)
        except BaseException:
            sock.close()
            raise
        bound = sock.getsockname()
        stream = cls(transport=transport, sock_name=(host, int(bound[1])), clock=clock,
                     jitter_target_ms=jitter_target_ms, send_queue_s=send_queue_s, name=name)
        protocol.on_datagram = stream._on_datagram
        protocol.on_error = stream._on_send_error
        return stream

    def start(self, media: NegotiatedMedia) -> None:
        """Begin sending and receiving on the clock: the first packet goes on the next tick.

        Args:
            media: what the offer/answer agreed.

        Raises:
            RuntimeError: started twice, or after close.
            UnsupportedCodecError: a codec `make_codec` does not know.
        """
        if self._closed or self._media is not None:
            raise RuntimeError(f"{self._name}: start on a stream already started or closed")
        self._codec = make_codec(_spec(media))
        self._sequencer = RtpSequencer(media.payload_type, media.clock_rate, ptime_ms=20)
        self._jitter = self._new_jitter(media)
        self._dtmf_rx = self._new_dtmf_receiver(media)
        if media.srtp is not None:
            self._srtp = SrtpContext(media.srtp.local_key, media.srtp.remote_key)
        self._media = media
        self._set_sdp_remote(media)
        self._last_rx = self._loop.time()
        self._unsubscribe = self._clock.subscribe(self._on_tick)

    def update(self, media: NegotiatedMedia) -> None:
        """Apply what a re-INVITE or UPDATE changed (`sdp_negotiation.compare`).

        A new key rebuilds that direction's SRTP session; a moved peer gets our packets
        at its new address; hold stops our sending, unhold resumes it; a new codec or
        payload type gets a new codec, a new timestamp clock and an empty jitter buffer.

        Args:
            media: the media now agreed.
        """
        old = self._media
        if self._closed:
            return
        if old is None:
            self.start(media)
            return
        changes = compare(old, media)
        self._media = media
        if changes.remote_rekey or changes.local_rekey:
            self._rekey(media, inbound=changes.remote_rekey, outbound=changes.local_rekey)
        if changes.remote_moved:
            self._set_sdp_remote(media)
        if changes.codec:
            self._change_codec(media)
        elif changes.telephone_event:
            self._dtmf_rx = self._new_dtmf_receiver(media)
        if media.telephone_event_pt is None:
            self._dtmf_pending.clear()
            self._dtmf_current = None
        if changes.unhold and self._sequencer is not None:
            self._sequencer.start_talkspurt()
        if changes.any:
            log.info("%s: media updated (%s)", self._name, ", ".join(
                field for field in ("hold", "unhold", "remote_rekey", "local_rekey",
                                    "remote_moved", "codec", "telephone_event", "direction")
                if getattr(changes, field)))

    async def close(self) -> None:
        """Stop sending, release the socket; `next_event` returns None. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = None
        if self._resolving is not None:
            self._resolving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._resolving
        self._transport.close()
        self._events.close()

    # -- what the leg does -----------------------------------------------------------

    async def next_event(self) -> RtpEvent | None:
        """The next inbound event (audio, digit, played mark), in order; None once closed
        (or after `end_events`)."""
        return await self._events.get()

    def end_events(self) -> None:
        """The call is over (a BYE): `next_event` returns None from now on."""
        self._events.close()

    def send_audio(self, frame: bytes) -> None:
        """Queue one 640-byte PCM16 16 kHz frame; it leaves on a tick of its own.

        Another length is cut into 640-byte frames (the last padded with silence) and
        logged once: the session's frames are always 640 bytes.
        """
        if self._closed:
            return
        if len(frame) != FRAME_BYTES:
            if not self._warned_frame_size:
                self._warned_frame_size = True
                log.warning("%s: %d-byte audio frame (expected %d): re-framed",
                            self._name, len(frame), FRAME_BYTES)
            if len(frame) % 2:
                frame = frame[:-1]
            for offset in range(0, len(frame), FRAME_BYTES):
                chunk = frame[offset : offset + FRAME_BYTES]
                self._queue_frame(chunk.ljust(FRAME_BYTES, b"\0"))
            return
        self._queue_frame(bytes(frame))

    def _queue_frame(self, frame: bytes) -> None:
        for name in self._send_queue.put_frame(frame):
            self._events.put(MarkEvent(name))

    def send_mark(self, name: str) -> None:
        """Report ``MarkEvent(name)`` on the tick that sends the last frame queued now."""
        if self._closed:
            return
        if self._send_queue.put_mark(name):
            self._events.put(MarkEvent(name))

    def clear(self) -> int:
        """Barge-in: drop the queued frames; pending marks come back at once.

        Returns:
            The frames dropped.
        """
        dropped, marks = self._send_queue.clear()
        self._n.frames_cleared += dropped
        for name in marks:
            self._events.put(MarkEvent(name))
        return dropped

    def send_dtmf(self, digit: str) -> None:
        """Send one RFC 4733 digit (one packet per tick; audio waits meanwhile).

        Raises:
            ValueError: the peer offered no telephone-event, the stream is not started,
                the digit is not one of 0-9 * # A-D, or too many digits are waiting.
        """
        media = self._media
        if media is None or media.telephone_event_pt is None:
            raise ValueError(f"{self._name}: the peer offered no telephone-event")
        # The generator checks the digit lazily; check it now, where the caller is.
        next(dtmf_packets(digit, timestamp=0, clock_rate=media.telephone_event_clock or 8000))
        if len(self._dtmf_pending) >= _MAX_DTMF_PENDING:
            raise ValueError(f"{self._name}: {_MAX_DTMF_PENDING} digits already waiting")
        self._dtmf_pending.append(digit)

    @property
    def queued_ms(self) -> int:
        """Outbound audio queued and not yet sent, in ms."""
        return self._send_queue.frames * 20

    def idle_s(self) -> float:
        """Seconds since the last valid inbound packet (since start, before the first)."""
        return self._loop.time() - self._last_rx

    @property
    def sending(self) -> bool:
        """Whether packets go out on each tick now (started, not on hold, an address)."""
        media = self._media
        return (media is not None and media.sending and self._remote is not None
                and not self._closed)

    def stats(self) -> RtpStreamStats:
        """A snapshot of the counters."""
        jitter = [*self._retired_jitter, *([self._jitter.stats] if self._jitter else [])]
        srtp = [*self._retired_srtp, *([self._srtp.stats] if self._srtp else [])]
        codec_errors = self._codec.decode_errors if self._codec else 0
        stray = self._dtmf_rx.stats.stray_audio_events if self._dtmf_rx else 0
        return RtpStreamStats(
            **dataclasses.asdict(self._n),
            audio_frames_dropped=self._send_queue.dropped,
            packets_lost=sum(s.lost for s in jitter),
            packets_late=sum(s.late for s in jitter),
            packets_duplicate=sum(s.duplicates for s in jitter),
            jitter_overflow=sum(s.overflow for s in jitter),
            jitter_trimmed=sum(s.trimmed for s in jitter),
            jitter_resets=sum(s.resets for s in jitter),
            srtp_auth_failures=sum(s.auth_failures for s in srtp),
            srtp_replays=sum(s.replays for s in srtp),
            srtp_malformed=sum(s.malformed for s in srtp),
            decode_errors=self._retired_decode_errors + codec_errors + self._extra_decode_errors,
            audio_events_dropped=self._events.audio_dropped,
            stray_dtmf_dropped=self._retired_stray + stray,
            latched_address=self._latched,
            remote_address=self._remote,
        )

    # -- media changes ---------------------------------------------------------------

    def _new_jitter(self, media: NegotiatedMedia) -> JitterBuffer:
        target = self._jitter_target_ms
        return JitterBuffer(media.clock_rate, target_ms=target,
                            max_depth_ms=max(200, 2 * target), max_packets=max(64, target))

    def _new_dtmf_receiver(self, media: NegotiatedMedia) -> DtmfReceiver:
        old = self._dtmf_rx
        if old is not None:
            self._retired_stray += old.stats.stray_audio_events
        # Without a telephone-event PT, -1 matches no packet: every event is "other".
        return DtmfReceiver(
            media.telephone_event_pt if media.telephone_event_pt is not None else -1,
            media.payload_type, clock_rate=media.telephone_event_clock or 8000,
            clock=self._loop.time,
        )

    def _rekey(self, new: NegotiatedMedia, *, inbound: bool, outbound: bool) -> None:
        keys = new.srtp
        if keys is None or self._srtp is None:
            # SRTP switched on or off (plain RTP is only for test peers): start afresh.
            if self._srtp is not None:
                self._retired_srtp.append(self._srtp.stats)
            self._srtp = SrtpContext(keys.local_key, keys.remote_key) if keys else None
            return
        if inbound:
            self._srtp.rekey_inbound(keys.remote_key)
        if outbound:
            self._srtp.rekey_outbound(keys.local_key)

    def _change_codec(self, media: NegotiatedMedia) -> None:
        old_codec, old_seq = self._codec, self._sequencer
        self._codec = make_codec(_spec(media))
        if old_codec is not None:
            self._retired_decode_errors += old_codec.decode_errors
        # Same SSRC and sequence space; the timestamp moves to the new clock's scale,
        # which the peer sees as the jump a codec change is. The marker starts it.
        if old_seq is not None:
            ts = old_seq.next_timestamp * media.clock_rate // old_seq.clock_rate
            self._sequencer = RtpSequencer(media.payload_type, media.clock_rate,
                                           ssrc=old_seq.ssrc, sequence=old_seq.next_sequence,
                                           timestamp=ts & _U32)
        else:
            self._sequencer = RtpSequencer(media.payload_type, media.clock_rate)
        if self._jitter is not None:
            self._retired_jitter.append(self._jitter.stats)
        self._jitter = self._new_jitter(media)
        self._dtmf_rx = self._new_dtmf_receiver(media)
        self._rx_ssrc = self._rx_highest = None

    def _set_sdp_remote(self, media: NegotiatedMedia) -> None:
        self._latched = None
        address, port = media.remote_address, media.remote_port
        if address in ("0.0.0.0", "::") or not port:
            # RFC 2543 hold, or no port: nowhere to send (sending stops with on_hold).
            self._sdp_remote = self._remote = None
            return
        if is_ip(address):
            self._sdp_remote = self._remote = (address, port)
            return
        # A host name: resolving it inside sendto would block the loop.
        self._sdp_remote = self._remote = None
        if self._resolving is not None:
            self._resolving.cancel()
        self._resolving = self._loop.create_task(self._resolve(address, port),
                                                 name=f"{self._name}-resolve")

    async def _resolve(self, host: str, port: int) -> None:
        try:
            infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM,
                                                 family=self._transport.get_extra_info(
                                                     "socket").family)
        except OSError as exc:
            log.warning("%s: cannot resolve the peer's RTP host %s: %s", self._name, host, exc)
            return
        resolved = (str(infos[0][4][0]), port)
        if self._latched is None:
            self._sdp_remote = self._remote = resolved

    # -- inbound ---------------------------------------------------------------------

    def _on_send_error(self, exc: Exception) -> None:
        del exc  # which error matters less than how many
        self._n.send_errors += 1

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        self._n.packets_received += 1
        self._n.bytes_received += len(data)
        media = self._media
        if media is None:
            self._n.packets_before_start += 1
            return
        if looks_like_rtcp(data):
            self._n.rtcp_ignored += 1
            return
        plain: bytes | None = data
        if self._srtp is not None:
            plain = self._srtp.unprotect(data)
        if plain is None:
            return  # counted by cause in SrtpContext.stats
        try:
            packet = parse_rtp(plain)
        except RtpError:
            self._n.rtp_malformed += 1
            return
        if addr != self._remote:
            known_pt = packet.payload_type in (media.payload_type, media.telephone_event_pt)
            if self._srtp is None and not known_pt:
                self._n.foreign_packets += 1
                return
            # Authenticated (or, on plain RTP, of a PT we agreed): the peer's media
            # really comes from here, so answer here (symmetric RTP through its NAT).
            sdp = f"{self._sdp_remote[0]}:{self._sdp_remote[1]}" if self._sdp_remote else "none"
            log.info("%s: latched RTP to %s:%d (SDP said %s)", self._name, addr[0], addr[1], sdp)
            self._latched = self._remote = addr
        self._n.packets_accepted += 1
        self._last_rx = self._loop.time()
        assert self._dtmf_rx is not None and self._jitter is not None
        result = self._dtmf_rx.feed(packet)
        for digit in result.digits:
            self._n.dtmf_received += 1
            self._events.put(DtmfEvent(digit.digit))
        if not result.audio:
            return
        self._count_order(packet.ssrc, packet.sequence)
        self._jitter.push(packet.sequence, packet.timestamp, packet.payload, packet.ssrc)

    def _count_order(self, ssrc: int, sequence: int) -> None:
        if ssrc != self._rx_ssrc or self._rx_highest is None:
            self._rx_ssrc, self._rx_highest = ssrc, sequence
            return
        delta = (sequence - self._rx_highest) & _U16
        if delta == 0:
            return
        if delta < 0x8000:
            self._rx_highest = sequence
        else:
            self._n.packets_reordered += 1

    def _play_out(self, frames: int) -> None:
        codec, jitter = self._codec, self._jitter
        assert codec is not None and jitter is not None
        for _ in range(frames):
            payload = jitter.pop()
            if payload is None:
                return
            try:
                if payload is LOST:
                    self._n.frames_concealed += 1
                    pcm = codec.decode(None)
                else:
                    pcm = codec.decode(payload)
            except Exception:  # a codec bug must not stop the clock for every call
                self._extra_decode_errors += 1
                log.exception("%s: decode failed", self._name)
                continue
            if pcm.size:
                self._events.put(AudioEvent(pcm.astype(np.int16, copy=False).tobytes()))

    # -- the tick --------------------------------------------------------------------

    def _on_tick(self) -> None:
        if self._closed or self._media is None:
            return
        index = self._clock.tick_index
        missed = 0 if self._last_tick is None else max(0, index - self._last_tick - 1)
        self._last_tick = index
        self._n.ticks_skipped += missed
        seq = self._sequencer
        assert seq is not None and self._dtmf_rx is not None
        if missed:
            # Real time moved on by those ticks: so does the RTP clock, and the audio
            # after the gap starts a new talkspurt. Queued frames stay queued.
            seq.skip(missed)
            seq.start_talkspurt()
        if self.sending:
            self._send_tick(seq)
        else:
            self._hold_tick(seq)
        for digit in self._dtmf_rx.poll():
            self._n.dtmf_received += 1
            self._events.put(DtmfEvent(digit.digit))
        self._play_out(1 + min(missed, _MAX_CATCH_UP))

    def _send_tick(self, seq: RtpSequencer) -> None:
        media, codec = self._media, self._codec
        assert media is not None and codec is not None
        if self._dtmf_current is None and self._dtmf_pending and (
                media.telephone_event_pt is not None):
            digit = self._dtmf_pending.popleft()
            self._dtmf_current = dtmf_packets(digit, timestamp=seq.next_timestamp,
                                              clock_rate=media.telephone_event_clock or 8000)
            self._n.dtmf_sent += 1
        if self._dtmf_current is not None and media.telephone_event_pt is not None:
            event = next(self._dtmf_current, None)
            if event is not None:
                packet = seq.next_other(event.payload, payload_type=media.telephone_event_pt,
                                        timestamp=event.timestamp, marker=event.marker)
                seq.skip(1)  # this tick's audio slot went to the event
                self._n.dtmf_packets_sent += 1
                self._send(packet.to_bytes())
                return
            self._dtmf_current = None
            seq.start_talkspurt()
        frame, due = self._send_queue.pop_frame()
        if frame is None:
            pcm = _SILENCE
            self._talking = False
        else:
            pcm = np.frombuffer(frame, dtype=np.int16)
            if not self._talking:
                seq.start_talkspurt()
                self._talking = True
        try:
            payload = codec.encode(pcm)
        except Exception:
            log.exception("%s: encode failed; sending nothing this tick", self._name)
            seq.skip(1)
        else:
            self._send(seq.next_audio(payload).to_bytes())
            if frame is None:
                self._n.silence_packets_sent += 1
            else:
                self._n.audio_packets_sent += 1
        for name in due:
            self._events.put(MarkEvent(name))

    def _hold_tick(self, seq: RtpSequencer) -> None:
        # On hold the caller hears nothing we send, but our playout clock runs on: the
        # queued speech is spent at real pace (its marks fire) so that the session's
        # idea of what was said stays true, and the RTP clock stays tied to real time.
        frame, due = self._send_queue.pop_frame()
        if frame is not None:
            self._n.frames_unsent_on_hold += 1
        self._talking = False
        seq.skip(1)
        for name in due:
            self._events.put(MarkEvent(name))

    def _send(self, rtp: bytes) -> None:
        remote = self._remote
        if remote is None:
            return
        data = self._srtp.protect(rtp) if self._srtp is not None else rtp
        try:
            self._transport.sendto(data, remote)
        except OSError:
            self._n.send_errors += 1
            return
        self._n.packets_sent += 1
        self._n.bytes_sent += len(data)
