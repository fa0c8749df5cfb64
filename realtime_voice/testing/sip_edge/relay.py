"""The fake edge's media relay: UDP between a real caller and the device, untouched.

RingCentral's media servers sit between the two parties; the fake B2BUA puts this relay
there instead. Each side gets an RTP/RTCP port pair on the edge's address (RTCP on
RTP+1, so a peer that sends RTCP to port+1 without ``a=rtcp`` still reaches us). A
datagram arriving on one side's socket leaves from the other side's matching socket,
to that side's address: first the one its SDP named, then the source of the last
datagram it sent us (symmetric RTP latching, as RingCentral's media servers do and as
the device's "hello" datagram relies on). Payloads are never looked at, so SRTP with
SDES keys carried end to end in the SDP passes through.

`rewrite_sdp` points one SDP at a relay side and reports where the original pointed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from typing import Literal, cast

from realtime_voice.sip import sdp
from realtime_voice.sip.sdp import Connection, RtcpAddress

__all__ = ["MediaRelay", "MediaTarget", "RelayCounters", "Side", "rewrite_sdp"]

log = logging.getLogger(__name__)

Side = Literal["caller", "device"]
Kind = Literal["rtp", "rtcp"]
_OTHER: dict[Side, Side] = {"caller": "device", "device": "caller"}
_PAIR_ATTEMPTS = 32


@dataclass(frozen=True)
class MediaTarget:
    """Where a party said (in its SDP) it receives media."""

    host: str
    rtp_port: int
    rtcp_port: int


@dataclass
class RelayCounters:
    """Datagrams relayed (and dropped for want of a destination) so far."""

    caller_to_device: int = 0
    device_to_caller: int = 0
    rtcp_caller_to_device: int = 0
    rtcp_device_to_caller: int = 0
    dropped: int = 0


def rewrite_sdp(body: bytes, host: str, rtp_port: int, rtcp_port: int) -> tuple[bytes,
                                                                                  MediaTarget]:
    """Point ``body``'s first audio stream at ``host:rtp_port`` (RTCP ``rtcp_port``).

    Other streams are refused (port 0): the relay carries one. The origin and every
    connection line name ``host``. Everything else (codecs, ``a=crypto``...) is kept.

    Returns:
        The new body, and where the original's audio went.

    Raises:
        SdpError: ``body`` is not usable SDP, or has no audio stream.
    """
    description = sdp.parse(body)
    audio = next((m for m in description.media if m.media == "audio" and m.port != 0), None)
    if audio is None:
        raise sdp.SdpError("no audio stream to relay")
    connection = description.media_connection(audio)
    if connection is None:
        raise sdp.SdpError("the audio stream has no connection address")
    target_rtcp = audio.port if audio.rtcp_mux else audio.port + 1
    if audio.rtcp is not None:
        target_rtcp = audio.rtcp.port
    target = MediaTarget(connection.address.split("/")[0], audio.port, target_rtcp)
    media = []
    for m in description.media:
        if m is audio:
            m = dataclasses.replace(
                m, port=rtp_port, connection=None,
                rtcp=None if m.rtcp is None else RtcpAddress(rtcp_port))
        else:
            m = dataclasses.replace(m, port=0, connection=None)
        media.append(m)
    rewritten = dataclasses.replace(
        description, origin=dataclasses.replace(description.origin, address=host),
        connection=Connection(host), media=tuple(media))
    return sdp.serialize(rewritten).encode("utf-8"), target


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, relay: MediaRelay, side: Side, kind: Kind) -> None:
        self._relay, self._side, self._kind = relay, side, kind
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._relay.received(self._side, self._kind, data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP from a closed peer port
        log.debug("sip edge relay: %s %s socket: %s", self._side, self._kind, exc)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


class MediaRelay:
    """Relays UDP between the caller side and the device side. Make one with `open`.

    Attributes:
        counters: datagrams relayed each way.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        self.counters = RelayCounters()
        self._sockets: dict[tuple[Side, Kind], _Socket] = {}
        self._targets: dict[tuple[Side, Kind], tuple[str, int]] = {}
        self._latched: dict[tuple[Side, Kind], tuple[str, int]] = {}

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> MediaRelay:
        """A relay with an RTP/RTCP port pair for each side, on OS-chosen ports."""
        relay = cls(host)
        try:
            for side in ("caller", "device"):
                await relay._open_pair(side)
        except BaseException:
            relay.close()
            raise
        return relay

    async def _open_pair(self, side: Side) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(_PAIR_ATTEMPTS):
            _, rtp = await loop.create_datagram_endpoint(
                lambda: _Socket(self, side, "rtp"), local_addr=(self.host, 0))
            try:
                _, rtcp = await loop.create_datagram_endpoint(
                    lambda: _Socket(self, side, "rtcp"), local_addr=(self.host, rtp.port + 1))
            except OSError:  # port+1 taken (or rtp got 65535): another pair
                assert rtp.transport is not None
                rtp.transport.close()
                continue
            self._sockets[(side, "rtp")], self._sockets[(side, "rtcp")] = rtp, rtcp
            return
        raise OSError(f"no free UDP port pair on {self.host}")

    def port(self, side: Side) -> int:
        """The RTP port ``side`` sends to (RTCP is the next one)."""
        return self._sockets[(side, "rtp")].port

    def rtcp_port(self, side: Side) -> int:
        """The RTCP port ``side`` sends to."""
        return self._sockets[(side, "rtcp")].port

    def set_target(self, side: Side, target: MediaTarget) -> None:
        """Where ``side`` receives, from its SDP (used until it sends us something)."""
        self._targets[(side, "rtp")] = (target.host, target.rtp_port)
        self._targets[(side, "rtcp")] = (target.host, target.rtcp_port)

    def peer(self, side: Side) -> tuple[str, int] | None:
        """Where RTP for ``side`` goes now: its latched source, else its SDP address."""
        return self._latched.get((side, "rtp")) or self._targets.get((side, "rtp"))

    def received(self, side: Side, kind: Kind, data: bytes, source: tuple[str, int]) -> None:
        """A datagram from ``side``: latch onto its source, forward it to the other side."""
        self._latched[(side, kind)] = source
        other = _OTHER[side]
        destination = self._latched.get((other, kind)) or self._targets.get((other, kind))
        out = self._sockets.get((other, kind))
        if destination is None or out is None or out.transport is None:
            self.counters.dropped += 1
            return
        out.transport.sendto(data, destination)
        if kind == "rtp":
            if side == "caller":
                self.counters.caller_to_device += 1
            else:
                self.counters.device_to_caller += 1
        elif side == "caller":
            self.counters.rtcp_caller_to_device += 1
        else:
            self.counters.rtcp_device_to_caller += 1

    def close(self) -> None:
        """Close every socket (idempotent)."""
        for socket in self._sockets.values():
            if socket.transport is not None:
                with contextlib.suppress(Exception):
                    socket.transport.close()
        self._sockets.clear()
